/* unary.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_NEG = {0};
const kn__op_info kn__opdef_EXP = {0};
const kn__op_info kn__opdef_LOG = {0};
const kn__op_info kn__opdef_SQRT = {0};
const kn__op_info kn__opdef_ABS = {0};
const kn__op_info kn__opdef_CLAMP = {0};
const kn__op_info kn__opdef_SCALE = {0};
const kn__op_info kn__opdef_CAST = {0};
