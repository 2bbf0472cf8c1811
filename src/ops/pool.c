/* pool.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_MAX_POOL2D = {0};
const kn__op_info kn__opdef_MAX_POOL2D_BWD = {0};
const kn__op_info kn__opdef_AVG_POOL2D = {0};
const kn__op_info kn__opdef_AVG_POOL2D_BWD = {0};
const kn__op_info kn__opdef_GLOBAL_AVG_POOL = {0};
