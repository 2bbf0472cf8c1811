/* norm.c — STUB: op test rows to be written. */
#include "op_rows.h"

const op_row kt_rows_norm[] = {{0}};
const int kt_n_rows_norm = 0;
