/* reduce.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_SUM = {0};
const kn__op_info kn__opdef_MEAN = {0};
const kn__op_info kn__opdef_MAX = {0};
const kn__op_info kn__opdef_MIN = {0};
const kn__op_info kn__opdef_ARGMAX = {0};
const kn__op_info kn__opdef_MAXMIN_BWD = {0};
