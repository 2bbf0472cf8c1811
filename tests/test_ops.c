/* test_ops.c — the table-driven op tests (rows in tests/ops/<family>.c, format in
 * tests/ops/op_rows.h) and the self-check that every op of the op table has a check, a
 * gradient rule (or NONDIFF), a FLOP count, a reference kernel, a CPU kernel and a test row
 * with a bad case. Usage: test_ops [substring]: only rows whose label contains it. */
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "ops/op_rows.h"
#include "util.h"

/* ---- the harness ------------------------------------------------------------------------ */
typedef struct built {
    kn_graph *g;
    kn_plan *plan;
    kn_node *out, *loss;
    kn_node *params[64];
    kn_node *grads[64];
    int n_params;
} built;

static void built_free(built *b)
{
    kn_plan_free(b->plan);
    kn_graph_free(b->g);
    memset(b, 0, sizeof *b);
}

/* Builds row/variant in dtype dt, adds loss = Σ out·R and its gradients when differentiable,
 * and compiles on the given backend. Returns false (after recording a failure) on error. */
static bool build(const op_row *row, int v, kn_dtype dt, kn_backend_kind be, built *b)
{
    memset(b, 0, sizeof *b);
    b->g = kn_graph_new();
    kt_inputs_reset();
    b->out = row->build(b->g, dt, v);
    CHECK(b->out, "%s v%d (%s): build failed: %s", row->label, v, kn_dtype_name(dt), kn_graph_error(b->g));
    if (!b->out)
        return false;
    CHECK(b->out->op == row->op || row->op == KN_OP_RESHAPE || row->op == KN_OP_SLICE,
          "%s v%d: built op %s, row is for %s", row->label, v, kn__op_names[b->out->op], kn__op_names[row->op]);
    bool diff = !(kn__op_flags[row->op] & KN_OPF_NONDIFF) && kn_dtype_is_float(b->out->dtype);
    kn_node *outs[130];
    int n_outs = 0;
    outs[n_outs++] = b->out;
    if (diff) {
        kn_node *r = kt_const(b->g, b->out->dtype, b->out->ndim, b->out->shape, -1, 1);
        b->loss = kn_graph_sum(b->g, kn_graph_mul(b->g, b->out, r), 0, false);
        b->n_params = kn_graph_params(b->g, true, b->params, 64);
        kn_status st = kn_graph_backward(b->g, b->loss, b->params, b->n_params, b->grads);
        CHECK(st == KN_OK, "%s v%d: backward failed: %s", row->label, v, kn_graph_error(b->g));
        if (st)
            return false;
        outs[n_outs++] = b->loss;
        for (int i = 0; i < b->n_params; i++)
            if (b->grads[i])
                outs[n_outs++] = b->grads[i];
    }
    kn_plan_opts o = {.backend = be, .training = row->training};
    kn_status st = kn_plan_compile(&b->plan, b->g, outs, n_outs, &o);
    CHECK(st == KN_OK, "%s v%d (%s): compile failed: %s", row->label, v, kn_dtype_name(dt), kn_plan_last_error());
    return st == KN_OK;
}

static bool run(const op_row *row, int v, built *b)
{
    kn_plan_set_step_count(b->plan, 0);
    kn_status st = kn_plan_run(b->plan);
    CHECK(st == KN_OK, "%s v%d: run failed: %s", row->label, v, kn_plan_error(b->plan));
    return st == KN_OK;
}

static double value(built *b, const kn_node *n, int64_t i)
{
    kn_tensor *t = NULL;
    if (kn_plan_tensor(b->plan, n, &t))
        return NAN;
    int64_t idx[KN_MAX_DIMS], rem = i;
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = rem % t->shape[d];
        rem /= t->shape[d];
    }
    double x = kn_tensor_get(t, idx);
    kn_tensor_free(t);
    return x;
}

static void gradcheck(const op_row *row, int v)
{
    built b;
    if (!build(row, v, KN_F64, KN_BACKEND_REF, &b) || !b.loss || !run(row, v, &b)) {
        built_free(&b);
        return;
    }
    double tol = row->grad_tol > 0 ? row->grad_tol : 1e-6;
    /* read every analytic gradient before perturbing anything */
    double *ana[64] = {0};
    for (int pi = 0; pi < b.n_params; pi++) {
        int64_t n = kn_node_numel(b.params[pi]);
        ana[pi] = malloc(sizeof(double) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++)
            ana[pi][i] = b.grads[pi] ? value(&b, b.grads[pi], i) : 0.0;
    }
    for (int pi = 0; pi < b.n_params; pi++) {
        kn_node *p = b.params[pi];
        int64_t n = kn_node_numel(p);
        double *data = kn_graph_param_data(b.g, p);
        int64_t stride = n > 40 ? n / 40 + 1 : 1;
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 3; i += stride) {
            double x = data[i], h = 1e-6 * fmax(1.0, fabs(x));
            data[i] = x + h;
            run(row, v, &b);
            double lp = kn_plan_scalar(b.plan, b.loss);
            data[i] = x - h;
            run(row, v, &b);
            double lm = kn_plan_scalar(b.plan, b.loss);
            data[i] = x;
            double num = (lp - lm) / (2 * h), an = ana[pi][i];
            bool ok = fabs(num - an) <= tol * fmax(1.0, fmax(fabs(num), fabs(an)));
            CHECK(ok, "%s v%d: d loss/d input%d[%lld]: backward %.10g, central difference %.10g", row->label,
                  v, pi, (long long)i, an, num);
            bad += !ok;
        }
    }
    for (int pi = 0; pi < b.n_params; pi++)
        free(ana[pi]);
    built_free(&b);
}

static void compare_node(const op_row *row, int v, const char *what, built *b32, const kn_node *n32,
                         built *b64, const kn_node *n64, double tol)
{
    int64_t n = kn_node_numel(n64);
    CHECK(kn_node_numel(n32) == n, "%s v%d: %s sizes differ", row->label, v, what);
    if (kn_node_numel(n32) != n)
        return;
    double mean_abs = 0;
    for (int64_t i = 0; i < n; i++)
        mean_abs += fabs(value(b64, n64, i));
    mean_abs = n ? mean_abs / (double)n : 0;
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 3; i++) {
        double a = value(b32, n32, i), r = value(b64, n64, i);
        bool ok = kn_dtype_is_float(n64->dtype) ? fabs(a - r) <= tol * (fabs(r) + mean_abs + 1e-30) : a == r;
        CHECK(ok, "%s v%d: %s[%lld]: f32 CPU %.8g vs f64 reference %.8g", row->label, v, what, (long long)i, a, r);
        bad += !ok;
    }
}

static void compare_f32(const op_row *row, int v)
{
    built b64, b32;
    bool ok64 = build(row, v, KN_F64, KN_BACKEND_REF, &b64) && run(row, v, &b64);
    bool ok32 = build(row, v, KN_F32, KN_BACKEND_CPU, &b32);
    if (ok32) {
        CHECK(kn_plan_num_fallbacks(b32.plan) == 0, "%s v%d: the f32 CPU plan ran %d steps on reference kernels",
              row->label, v, kn_plan_num_fallbacks(b32.plan));
        ok32 = run(row, v, &b32);
    }
    if (ok64 && ok32) {
        double tol = row->tol > 0 ? row->tol : 1e-4;
        compare_node(row, v, "output", &b32, b32.out, &b64, b64.out, tol);
        for (int i = 0; i < b64.n_params && i < b32.n_params; i++)
            if (b64.grads[i] && b32.grads[i])
                compare_node(row, v, "gradient", &b32, b32.grads[i], &b64, b64.grads[i], 5 * tol);
    }
    built_free(&b64);
    built_free(&b32);
}

/* Ops with CPU kernels for bf16/f16 operands (src/backend/cpu/lowp.c, mixed precision). */
static bool has_lowp_kernel(int op)
{
    return op == KN_OP_CONV2D || op == KN_OP_CONV2D_BWD_DATA || op == KN_OP_CONV2D_BWD_WEIGHT ||
           op == KN_OP_MATMUL || op == KN_OP_LINEAR;
}

/* The op's output in dt (bf16/f16) on the CPU vs the f64 reference on the same values (rounded
 * to dt): FP32 accumulation, one rounding of the output to dt; no reference fallbacks. */
static void compare_lowp(const op_row *row, int v, kn_dtype dt)
{
    built bl = {0}, b64 = {0};
    kt_inputs_round(dt);
    bool ok64 = build(row, v, KN_F64, KN_BACKEND_REF, &b64) && run(row, v, &b64);
    bl.g = kn_graph_new();
    kt_inputs_reset();
    bl.out = row->build(bl.g, dt, v);
    kt_inputs_round(KN_F32);
    CHECK(bl.out, "%s v%d (%s): build failed: %s", row->label, v, kn_dtype_name(dt), kn_graph_error(bl.g));
    kn_plan_opts o = {.backend = KN_BACKEND_CPU};
    bool okl = bl.out && kn_plan_compile(&bl.plan, bl.g, &bl.out, 1, &o) == KN_OK;
    CHECK(!bl.out || okl, "%s v%d (%s): compile failed: %s", row->label, v, kn_dtype_name(dt), kn_plan_last_error());
    if (okl) {
        CHECK(kn_plan_num_fallbacks(bl.plan) == 0, "%s v%d: the %s CPU plan ran %d steps on reference kernels",
              row->label, v, kn_dtype_name(dt), kn_plan_num_fallbacks(bl.plan));
        okl = run(row, v, &bl);
    }
    if (ok64 && okl)
        compare_node(row, v, dt == KN_BF16 ? "bf16 output" : "f16 output", &bl, bl.out, &b64, b64.out,
                     dt == KN_BF16 ? 0x1p-8 : 0x1p-11);
    built_free(&bl);
    built_free(&b64);
}

static void bad_case(const op_row *row)
{
    kn_graph *g = kn_graph_new();
    kt_inputs_reset();
    kn_node *n = row->bad(g);
    CHECK(n == NULL, "%s: bad case returned a node", row->label);
    CHECK(kn_graph_status(g) == row->bad_code, "%s: bad case status %s, expected %s (message: %s)", row->label,
          kn_status_name(kn_graph_status(g)), kn_status_name(row->bad_code), kn_graph_error(g));
    CHECK(strstr(kn_graph_error(g), row->bad_msg) != NULL, "%s: bad case message \"%s\" lacks \"%s\"",
          row->label, kn_graph_error(g), row->bad_msg);
    kn_graph_free(g);
}

/* ---- self-check and main ---------------------------------------------------------------- */
typedef struct family {
    const op_row *rows;
    const int *n;
} family;

static const family families[] = {
#define F(f) {kt_rows_##f, &kt_n_rows_##f},
    F(binary) F(unary) F(activation) F(random) F(softmax) F(loss) F(reduce) F(view) F(matmul) F(conv) F(pool) F(norm) F(embedding) F(data) F(shape) F(optim) F(quant)
#undef F
};
#define N_FAMILIES (int)(sizeof families / sizeof families[0])

static void self_check(void)
{
    for (int op = 0; op < KN_OP_COUNT; op++) {
        unsigned fl = kn__op_flags[op];
        if (fl & KN_OPF_LEAF)
            continue;
        const kn__op_info *info = kn__op_table[op];
        const char *name = kn__op_names[op];
        CHECK(info->check, "op %s has no shape check", name);
        CHECK(info->grad || (fl & KN_OPF_NONDIFF), "op %s has no gradient rule and is not NONDIFF", name);
        CHECK(!(info->grad && (fl & KN_OPF_NONDIFF)), "op %s is NONDIFF but has a gradient rule", name);
        CHECK(info->flops, "op %s has no FLOP count", name);
        CHECK(info->ref, "op %s has no reference kernel", name);
        CHECK(kn__cpu_kernel(op), "op %s has no CPU kernel", name);
        int rows = 0, variants = 0, bads = 0;
        for (int f = 0; f < N_FAMILIES; f++)
            for (int r = 0; r < *families[f].n; r++)
                if (families[f].rows[r].op == op) {
                    rows++;
                    variants += families[f].rows[r].n_variants;
                    bads += families[f].rows[r].bad != NULL;
                }
        CHECK(rows > 0, "op %s has no test row", name);
        CHECK(bads > 0, "op %s has no bad-case test", name);
        CHECK((fl & KN_OPF_NONDIFF) || variants >= 3, "op %s has %d variants, needs >= 3 shapes", name, variants);
    }
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    if (!filter)
        self_check();
    int n_rows = 0;
    for (int f = 0; f < N_FAMILIES; f++) {
        for (int r = 0; r < *families[f].n; r++) {
            const op_row *row = &families[f].rows[r];
            if (filter && !strstr(row->label, filter))
                continue;
            int before = kt_failures;
            for (int v = 0; v < row->n_variants; v++) {
                if (!(kn__op_flags[row->op] & KN_OPF_NONDIFF) && !row->straight_through)
                    gradcheck(row, v);
                compare_f32(row, v);
                if (has_lowp_kernel(row->op)) {
                    compare_lowp(row, v, KN_BF16);
                    compare_lowp(row, v, KN_F16);
                }
            }
            if (row->bad)
                bad_case(row);
            n_rows++;
            printf("%-40s %s\n", row->label, kt_failures == before ? "ok" : "FAILED");
        }
    }
    printf("%d rows\n", n_rows);
    return kt_finish("test_ops");
}
