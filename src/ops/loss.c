/* loss.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_SOFTMAX_CE = {0};
const kn__op_info kn__opdef_SOFTMAX_CE_BWD = {0};
const kn__op_info kn__opdef_NLL = {0};
const kn__op_info kn__opdef_NLL_BWD = {0};
const kn__op_info kn__opdef_MSE = {0};
const kn__op_info kn__opdef_BCE_LOGITS = {0};
const kn__op_info kn__opdef_KL_DIV = {0};
