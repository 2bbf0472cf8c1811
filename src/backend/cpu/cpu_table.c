/* cpu_table.c — the CPU backend's kernel table, filled once from every family file. */
#include <pthread.h>

#include "../backend.h"

static kn__backend_kernel table[KN_OP_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fill_table(void)
{
    static const kn__cpu_register_fn families[] = {
        kn__cpu_register_binary,
        kn__cpu_register_unary,
        kn__cpu_register_activation,
        kn__cpu_register_random,
        kn__cpu_register_softmax,
        kn__cpu_register_loss,
        kn__cpu_register_reduce,
        kn__cpu_register_view,
        kn__cpu_register_matmul,
        kn__cpu_register_conv,
        kn__cpu_register_pool,
        kn__cpu_register_norm,
        kn__cpu_register_embedding,
        kn__cpu_register_data,
        kn__cpu_register_shape,
        kn__cpu_register_optim,
        kn__cpu_register_quant,
        kn__cpu_register_lowp, /* last: wraps f32 entries for bf16/f16 operands */
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        families[i](table);
}

const kn__backend_kernel *kn__cpu_kernel(int op)
{
    pthread_once(&once, fill_table);
    if (op < 0 || op >= KN_OP_COUNT || !table[op].fn)
        return NULL;
    return &table[op];
}

bool kn__cpu_supports(const kn_node *n)
{
    const kn__backend_kernel *k = kn__cpu_kernel(n->op);
    if (!k)
        return false;
    return kn__backend_accepts(k, n);
}
