/* shape.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_PERMUTE = {0};
const kn__op_info kn__opdef_CONCAT = {0};
const kn__op_info kn__opdef_SLICE = {0};
const kn__op_info kn__opdef_PAD = {0};
