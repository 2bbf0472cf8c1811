/* activation.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_RELU = {0};
const kn__op_info kn__opdef_LEAKY_RELU = {0};
const kn__op_info kn__opdef_SIGMOID = {0};
const kn__op_info kn__opdef_TANH = {0};
const kn__op_info kn__opdef_GELU = {0};
const kn__op_info kn__opdef_SILU = {0};
const kn__op_info kn__opdef_UNARY_BWD = {0};
