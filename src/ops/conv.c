/* conv.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_CONV2D = {0};
const kn__op_info kn__opdef_CONV2D_BWD_DATA = {0};
const kn__op_info kn__opdef_CONV2D_BWD_WEIGHT = {0};
