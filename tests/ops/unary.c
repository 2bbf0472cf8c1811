/* unary.c — op test rows for neg, exp, log, sqrt, abs, clamp, scale, cast: odd sizes (7, 13,
 * 65), size-1 dimensions and a 0-d input; log/sqrt on [0.5, 2]; cast between floats (through
 * f16/bf16 too), int→float, float→int and a saturating int→int. Unary ops do not broadcast.
 * Not here: unary_bwd (the gradient op of abs/clamp/sqrt) has its row in activation.c. */
#include <math.h>

#include "op_rows.h"

typedef kn_node *(*unary_fn)(kn_graph *, kn_node *);

/* Variant shapes of the input. */
static kn_node *input(kn_graph *g, kn_dtype dt, int v, double lo, double hi)
{
    switch (v) {
    case 0: return kt_p(g, dt, lo, hi, 7, 13);
    case 1: return kt_p(g, dt, lo, hi, 1, 65);
    case 2: return kt_p(g, dt, lo, hi, 13, 1, 7);
    default: return kt_param(g, dt, 0, NULL, lo, hi);
    }
}

static kn_node *neg_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_neg(g, input(g, dt, v, -2, 2)); }
static kn_node *exp_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_exp(g, input(g, dt, v, -2, 2)); }
static kn_node *log_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_log(g, input(g, dt, v, 0.5, 2)); }
static kn_node *sqrt_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_sqrt(g, input(g, dt, v, 0.5, 2)); }
static kn_node *abs_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_abs(g, input(g, dt, v, -2, 2)); }

static kn_node *clamp_b(kn_graph *g, kn_dtype dt, int v)
{
    static const double lo[] = {-1, -INFINITY, -0.5, 0.25}, hi[] = {0.5, 1, INFINITY, 0.25};
    return kn_graph_clamp(g, input(g, dt, v, -2, 2), lo[v], hi[v]);
}

static kn_node *scale_b(kn_graph *g, kn_dtype dt, int v)
{
    static const double alpha[] = {2.5, -1, 0.125, 0}, beta[] = {-0.75, 0, 3, 1};
    return kn_graph_scale(g, input(g, dt, v, -2, 2), alpha[v], beta[v]);
}

static kn_node *cast_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_cast(g, kn_graph_cast(g, kt_p(g, dt, -2, 2, 7, 13), KN_F64), dt); /* float↔float */
    case 1: return kn_graph_cast(g, kn_graph_cast(g, kt_p(g, dt, -2, 2, 1, 65), dt), dt);      /* same dtype */
    case 2: return kn_graph_cast(g, kn_graph_cast(g, kt_const(g, dt, 2, (const int64_t[]){13, 5}, -3, 3), KN_F16), dt);
    case 3: return kn_graph_cast(g, kn_graph_cast(g, kt_const(g, dt, 1, (const int64_t[]){65}, -70, 70), KN_BF16), dt);
    case 4: return kn_graph_cast(g, kt_labels(g, KN_I32, 2, (const int64_t[]){13, 5}, 100), dt); /* int→float */
    case 5: return kn_graph_cast(g, kt_p(g, dt, -50, 50, 5, 7), KN_I32);                        /* float→int */
    default: return kn_graph_cast(g, kt_labels(g, KN_I64, 1, (const int64_t[]){65}, 300), KN_I8); /* saturates */
    }
}

static kn_node *bad_neg(kn_graph *g) { return kn_graph_neg(g, kt_labels(g, KN_I32, 1, (const int64_t[]){3}, 4)); }
static kn_node *bad_exp(kn_graph *g) { return kn_graph_exp(g, kt_labels(g, KN_I64, 2, (const int64_t[]){2, 2}, 4)); }
static kn_node *bad_log(kn_graph *g) { return kn_graph_log(g, kt_labels(g, KN_U8, 1, (const int64_t[]){5}, 4)); }
static kn_node *bad_abs(kn_graph *g) { return kn_graph_abs(g, kt_labels(g, KN_I8, 1, (const int64_t[]){5}, 4)); }
static kn_node *bad_clamp(kn_graph *g) { return kn_graph_clamp(g, kt_p(g, KN_F32, 0, 1, 4, 3), 2, 1); }
static kn_node *bad_scale(kn_graph *g) { return kn_graph_scale(g, kt_p(g, KN_F32, 0, 1, 6), NAN, 0); }
static kn_node *bad_cast(kn_graph *g) { return kn_graph_cast(g, kt_p(g, KN_F32, 0, 1, 2, 5), (kn_dtype)99); }

static kn_node *bad_sqrt(kn_graph *g) /* an input from another graph */
{
    kn_graph *other = kn_graph_new();
    kn_node *n = kn_graph_sqrt(g, kt_p(other, KN_F32, 0.5, 2, 3));
    kn_graph_free(other);
    return n;
}

const op_row kt_rows_unary[] = {
    {.op = KN_OP_NEG, .label = "neg", .build = neg_b, .n_variants = 4,
     .bad = bad_neg, .bad_code = KN_ERR_DTYPE, .bad_msg = "neg: input 0 has dtype i32"},
    {.op = KN_OP_EXP, .label = "exp", .build = exp_b, .n_variants = 4,
     .bad = bad_exp, .bad_code = KN_ERR_DTYPE, .bad_msg = "exp: input 0 has dtype i64"},
    {.op = KN_OP_LOG, .label = "log", .build = log_b, .n_variants = 4,
     .bad = bad_log, .bad_code = KN_ERR_DTYPE, .bad_msg = "log: input 0 has dtype u8"},
    {.op = KN_OP_SQRT, .label = "sqrt", .build = sqrt_b, .n_variants = 4,
     .bad = bad_sqrt, .bad_code = KN_ERR_ARG, .bad_msg = "sqrt: input 0 belongs to another graph"},
    {.op = KN_OP_ABS, .label = "abs", .build = abs_b, .n_variants = 4,
     .bad = bad_abs, .bad_code = KN_ERR_DTYPE, .bad_msg = "abs: input 0 has dtype i8"},
    {.op = KN_OP_CLAMP, .label = "clamp", .build = clamp_b, .n_variants = 4,
     .bad = bad_clamp, .bad_code = KN_ERR_ARG, .bad_msg = "clamp: lo 2 and hi 1 on input [4,3]"},
    {.op = KN_OP_SCALE, .label = "scale", .build = scale_b, .n_variants = 4,
     .bad = bad_scale, .bad_code = KN_ERR_ARG, .bad_msg = "scale: alpha nan and beta 0"},
    {.op = KN_OP_CAST, .label = "cast", .build = cast_b, .n_variants = 7,
     .bad = bad_cast, .bad_code = KN_ERR_DTYPE, .bad_msg = "cast: target dtype 99 of input [2,5]"},
};
const int kt_n_rows_unary = sizeof kt_rows_unary / sizeof kt_rows_unary[0];
