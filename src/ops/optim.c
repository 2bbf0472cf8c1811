/* optim.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_SGD_UPDATE = {0};
const kn__op_info kn__opdef_ADAM_UPDATE = {0};
