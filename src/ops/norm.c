/* norm.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_BATCH_NORM = {0};
const kn__op_info kn__opdef_BATCH_NORM_BWD = {0};
const kn__op_info kn__opdef_LAYER_NORM = {0};
const kn__op_info kn__opdef_LAYER_NORM_BWD = {0};
