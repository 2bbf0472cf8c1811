/* embedding.c — STUB: CPU kernels to be written. */
#include "../backend.h"

void kn__cpu_register_embedding(kn__backend_kernel *t)
{
    (void)t;
}
