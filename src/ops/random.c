/* random.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_DROPOUT = {0};
