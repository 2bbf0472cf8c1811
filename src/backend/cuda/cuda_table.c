/* cuda_table.c — the CUDA backend's kernel table, filled once from every family file that
 * exists (src/backend/cuda/<family>.cu defines kn__cuda_register_<family>; CMake defines
 * KN_CUDA_FAMILY_<FAMILY> for each file it finds, so the table links whichever families are
 * present: no weak symbols, which static archives would not resolve reliably). An op without
 * an entry, or whose supports() refuses a node, runs on the CPU with copies (the plan logs
 * it). KILN_CUDA_FALLBACK_OPS=op,op,... forces ops to the CPU path, for debugging a kernel
 * and for the fallback test. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"

static kn__backend_kernel table[KN__CUDA_TABLE_SIZE];
static pthread_once_t once = PTHREAD_ONCE_INIT;

typedef void (*register_fn)(kn__backend_kernel *t);

static void fill_table(void)
{
    static const register_fn families[] = {
#ifdef KN_CUDA_FAMILY_ELEMENTWISE
        kn__cuda_register_elementwise,
#endif
#ifdef KN_CUDA_FAMILY_CHAIN
        kn__cuda_register_chain,
#endif
#ifdef KN_CUDA_FAMILY_REDUCE
        kn__cuda_register_reduce,
#endif
#ifdef KN_CUDA_FAMILY_SOFTMAX
        kn__cuda_register_softmax,
#endif
#ifdef KN_CUDA_FAMILY_LOSS
        kn__cuda_register_loss,
#endif
#ifdef KN_CUDA_FAMILY_MATMUL
        kn__cuda_register_matmul,
#endif
#ifdef KN_CUDA_FAMILY_CONV
        kn__cuda_register_conv,
#endif
#ifdef KN_CUDA_FAMILY_POOL
        kn__cuda_register_pool,
#endif
#ifdef KN_CUDA_FAMILY_NORM
        kn__cuda_register_norm,
#endif
#ifdef KN_CUDA_FAMILY_RANDOM
        kn__cuda_register_random,
#endif
#ifdef KN_CUDA_FAMILY_SHAPE
        kn__cuda_register_shape,
#endif
#ifdef KN_CUDA_FAMILY_DATA
        kn__cuda_register_data,
#endif
#ifdef KN_CUDA_FAMILY_QUANT
        kn__cuda_register_quant,
#endif
#ifdef KN_CUDA_FAMILY_OPTIM
        kn__cuda_register_optim,
#endif
        NULL, /* keeps the list non-empty when no family file exists yet */
    };
    for (size_t i = 0; families[i]; i++)
        families[i](table);
}

const kn__backend_kernel *kn__cuda_kernel(int op)
{
    pthread_once(&once, fill_table);
    if (op < 0 || op >= KN__CUDA_TABLE_SIZE || !table[op].fn)
        return NULL;
    return &table[op];
}

/* Whether KILN_CUDA_FALLBACK_OPS names op. */
static bool forced_to_cpu(int op)
{
    const char *env = getenv("KILN_CUDA_FALLBACK_OPS");
    if (!env || !*env)
        return false;
    const char *name = kn__op_names[op];
    size_t len = strlen(name);
    for (const char *s = env; *s;) {
        size_t n = strcspn(s, ",");
        if ((n == len && !strncmp(s, name, n)) || (n == 3 && !strncmp(s, "all", 3)))
            return true;
        s += n + (s[n] == ',');
    }
    return false;
}

bool kn__cuda_supports(const kn_node *n)
{
    const kn__backend_kernel *k = kn__cuda_kernel(n->op);
    if (!k || forced_to_cpu(n->op))
        return false;
    return kn__backend_accepts(k, n);
}
