/* backend.h — how a backend offers kernels to the plan compiler: a table indexed by op of
 * {kernel, workspace size, supports(node)}. An op a backend does not support runs its
 * float64 reference kernel on converted copies (the plan logs it once). */
#ifndef KN_BACKEND_H
#define KN_BACKEND_H

#include "../ops/op_table.h"

typedef struct kn__backend_kernel {
    kn__kernel_fn fn;
    kn__workspace_fn workspace;        /* NULL = no scratch */
    bool (*supports)(const kn_node *n); /* NULL = every float input and the output are f32 */
    bool epilogue;                     /* fn applies kn__kargs.epi (the fusion pass may fuse into it) */
} kn__backend_kernel;

/* The default supports(): every float input and the output are f32 (integer inputs such as
 * labels and indices are fine). */
static inline bool kn__backend_all_f32(const kn_node *n)
{
    if (kn_dtype_is_float(n->dtype) && n->dtype != KN_F32)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype) && n->src[i]->dtype != KN_F32)
            return false;
    return true;
}

/* Whether entry k (which has a kernel) accepts node n: its supports(), else the default. */
static inline bool kn__backend_accepts(const kn__backend_kernel *k, const kn_node *n)
{
    return k->supports ? k->supports(n) : kn__backend_all_f32(n);
}

/* The CPU backend's entry for op, or NULL when it has no kernel for it. */
const kn__backend_kernel *kn__cpu_kernel(int op);
/* True when the CPU entry exists and accepts this node. */
bool kn__cpu_supports(const kn_node *n);

/* The fused elementwise-chain kernel (kn__kargs.chain; backend/cpu/chain.c) and the ops it
 * runs (besides a final full sum or mean). */
kn_status kn__cpu_chain_run(const kn__kargs *k);
bool kn__cpu_chain_op_ok(int op);

/* Family registration: each src/backend/cpu/<family>.c fills its ops' entries. */
typedef void (*kn__cpu_register_fn)(kn__backend_kernel *table);
void kn__cpu_register_binary(kn__backend_kernel *t);
void kn__cpu_register_unary(kn__backend_kernel *t);
void kn__cpu_register_activation(kn__backend_kernel *t);
void kn__cpu_register_random(kn__backend_kernel *t);
void kn__cpu_register_softmax(kn__backend_kernel *t);
void kn__cpu_register_loss(kn__backend_kernel *t);
void kn__cpu_register_reduce(kn__backend_kernel *t);
void kn__cpu_register_view(kn__backend_kernel *t);
void kn__cpu_register_matmul(kn__backend_kernel *t);
void kn__cpu_register_conv(kn__backend_kernel *t);
void kn__cpu_register_pool(kn__backend_kernel *t);
void kn__cpu_register_norm(kn__backend_kernel *t);
void kn__cpu_register_embedding(kn__backend_kernel *t);
void kn__cpu_register_data(kn__backend_kernel *t);
void kn__cpu_register_shape(kn__backend_kernel *t);
void kn__cpu_register_optim(kn__backend_kernel *t);
void kn__cpu_register_quant(kn__backend_kernel *t);
/* lowp.c wraps the f32 entries above for bf16/f16 operands: registered last */
void kn__cpu_register_lowp(kn__backend_kernel *t);

#endif
