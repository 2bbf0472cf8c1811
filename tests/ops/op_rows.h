/* op_rows.h — one row per op of the op table, driving tests/test_ops.c.
 *
 * A row's build(g, dtype, variant) records the op under test on inputs made with the kt_*
 * helpers below and returns the node to test. The harness then, for every variant:
 *   1. float64 gradient check (unless the op is NONDIFF): loss = Σ out·R for a random R,
 *      backward() by every trainable input, compared with central differences;
 *   2. float32 CPU kernels vs the float64 reference kernels: the output and every gradient;
 *      the f32 plan must run without reference fallbacks;
 * and once per row: bad(g) makes an invalid call that must return NULL with bad_code and a
 * message containing bad_msg.
 * Differentiable ops need ≥ 3 variants covering broadcasting (where the op broadcasts),
 * size-1 dimensions and odd sizes (7, 13, 65). */
#ifndef KN_TEST_OP_ROWS_H
#define KN_TEST_OP_ROWS_H

#include "kiln/kiln.h"
#include "ops/op_table.h"

typedef struct op_row {
    int op;                 /* KN_OP_... */
    const char *label;
    kn_node *(*build)(kn_graph *g, kn_dtype dt, int variant);
    int n_variants;
    kn_node *(*bad)(kn_graph *g);
    kn_status bad_code;
    const char *bad_msg;    /* substring of the expected message */
    bool training;          /* compile in training mode (batch norm, dropout) */
    double tol;             /* relative tolerance of f32 vs f64 (0 = 1e-4) */
    double grad_tol;        /* relative tolerance of the f64 gradient check (0 = 1e-6) */
    bool straight_through;  /* the gradient is a straight-through estimate, not the derivative:
                               no finite-difference check (f32 vs f64 still compared) */
} op_row;

/* Inputs for builds (tests/ops/kt_inputs.c). Values come from a fixed seed, identical for f32
 * and f64 graphs; kt_inputs_reset() restarts the streams (call it before each build). */
void kt_inputs_reset(void);
/* Values are rounded to dt (KN_F32 normally; KN_BF16/KN_F16 for the low-precision rows). */
void kt_inputs_round(kn_dtype dt);
/* A trainable parameter with values uniform in [lo, hi). */
kn_node *kt_param(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi);
/* A frozen (non-trainable) parameter with values uniform in [lo, hi). */
kn_node *kt_frozen(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi);
/* An integer constant with values uniform in [0, classes). */
kn_node *kt_labels(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, int64_t classes);
/* A constant with values uniform in [lo, hi). */
kn_node *kt_const(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi);
/* kt_p(g, dt, lo, hi, dims...) — a trainable param of the given dims. */
#define kt_p(g, dt, lo, hi, ...) \
    kt_param(g, dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}, lo, hi)

/* Each family file exports its rows. */
#define KT_FAMILY(f) extern const op_row kt_rows_##f[]; extern const int kt_n_rows_##f;
KT_FAMILY(binary)
KT_FAMILY(unary)
KT_FAMILY(activation)
KT_FAMILY(random)
KT_FAMILY(softmax)
KT_FAMILY(loss)
KT_FAMILY(reduce)
KT_FAMILY(view)
KT_FAMILY(matmul)
KT_FAMILY(conv)
KT_FAMILY(pool)
KT_FAMILY(norm)
KT_FAMILY(embedding)
KT_FAMILY(data)
KT_FAMILY(shape)
KT_FAMILY(optim)
KT_FAMILY(quant)
#undef KT_FAMILY

#endif
