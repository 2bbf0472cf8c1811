/* view.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_RESHAPE = {0};
const kn__op_info kn__opdef_EXPAND = {0};
