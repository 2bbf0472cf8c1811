/* binary.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_ADD = {0};
const kn__op_info kn__opdef_SUB = {0};
const kn__op_info kn__opdef_MUL = {0};
const kn__op_info kn__opdef_DIV = {0};
const kn__op_info kn__opdef_POW = {0};
