/* softmax.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_SOFTMAX = {0};
const kn__op_info kn__opdef_LOG_SOFTMAX = {0};
const kn__op_info kn__opdef_SOFTMAX_BWD = {0};
const kn__op_info kn__opdef_LOG_SOFTMAX_BWD = {0};
