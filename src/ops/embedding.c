/* embedding.c — STUB: to be written. */
#include "op_table.h"

const kn__op_info kn__opdef_EMBEDDING = {0};
const kn__op_info kn__opdef_EMBEDDING_BWD = {0};
