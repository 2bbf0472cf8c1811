/* op_lab.c — one op at a model's shape: checks the CPU kernels (forward and every gradient)
 * against the float64 reference backend, then times each CPU kernel of the graph.
 * Not part of the CMake build; see bench/kernels/README.md for the build line.
 *
 *   op_lab pool  N C H W [--ties] [--nan]      max_pool2d 2×2 (+ its backward)
 *   op_lab conv  N C H W O K PAD [STRIDE DIL GROUPS]   conv2d with bias (+ bwd data, bwd weight)
 *   op_lab relu  N C H W                        relu (+ unary_bwd)
 *   op_lab sum   N C H W                        sum over {0,2,3} (the conv bias gradient)
 * options: --threads T (2), --reps R (50), --ties (values from a small set: many equal maxima),
 * --nan (a few NaNs in x), --nocheck, --notime, --only OP (time only nodes of op OP, e.g.
 * conv2d_bwd_data: handy under perf record).
 * The graph is loss = sum(op(x, w...) · r) with x and the weights trainable parameters, so
 * backward() creates the op's backward nodes; r is a random constant (= dy). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kiln.h"
#include "backend/backend.h"

/* LAB_CLOCK=cpu: process CPU time instead of wall time (on a shared machine this discounts
 * time slices lost to other processes; meaningful with --threads 1). */
static double now(void)
{
    static clockid_t clk = (clockid_t)-1;
    if (clk == (clockid_t)-1)
        clk = getenv("LAB_CLOCK") && !strcmp(getenv("LAB_CLOCK"), "cpu") ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC;
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint32_t rng = 2463534242u;
static float frand(void) /* [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

static void fill(float *p, int64_t n, bool ties, bool nan)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = ties ? (float)(int)(frand() * 3) * 0.5f : frand();
    if (nan)
        for (int64_t i = 0; i < n; i += 997)
            p[i] = NAN;
}

/* max |a − r| / (|r| + mean|r|) over the elements, NaN-aware (NaN must match NaN). */
static double rel_err(const float *a, const float *r, int64_t n, int64_t *bad)
{
    double mean = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        mean += isnan(r[i]) ? 0 : fabs(r[i]);
    mean = n ? mean / (double)n : 0;
    *bad = -1;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(r[i]) || isnan(a[i])) {
            if (isnan(r[i]) != isnan(a[i]) && *bad < 0)
                *bad = i, worst = INFINITY;
            continue;
        }
        double e = fabs((double)a[i] - r[i]) / (fabs(r[i]) + mean + 1e-30);
        if (e > worst)
            worst = e, *bad = i;
    }
    return worst;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: op_lab pool|conv|relu|sum dims... [--threads T] [--reps R] [--ties] [--nan]\n");
        return 2;
    }
    const char *what = argv[1];
    int64_t d[10] = {0};
    int nd = 0, threads = 2, reps = 50;
    bool ties = false, nan = false, check = true, timing = true;
    const char *only = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--ties"))
            ties = true;
        else if (!strcmp(argv[i], "--nan"))
            nan = true;
        else if (!strcmp(argv[i], "--nocheck"))
            check = false;
        else if (!strcmp(argv[i], "--notime"))
            timing = false;
        else if (nd < 10)
            d[nd++] = atoll(argv[i]);
    }
    omp_set_num_threads(threads);
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 7);
    kn_node *x = kn_graph_param(g, "x", KN_F32, 4, d, true), *params[4] = {x}, *out = NULL;
    int np = 1;
    if (!strcmp(what, "pool")) {
        out = kn_graph_max_pool2d(g, x, 2, 2, 0);
    } else if (!strcmp(what, "relu")) {
        out = kn_graph_relu(g, x);
    } else if (!strcmp(what, "sum")) {
        out = kn_graph_sum(g, x, 0xD, false);
    } else if (!strcmp(what, "conv")) {
        int64_t groups = nd > 9 && d[9] ? d[9] : 1;
        int64_t ws[4] = {d[4], d[1] / groups, d[5], d[5]}, bs[1] = {d[4]};
        kn_node *w = kn_graph_param(g, "w", KN_F32, 4, ws, true), *b = kn_graph_param(g, "b", KN_F32, 1, bs, true);
        params[np++] = w;
        params[np++] = b;
        kn_conv2d_opts o = {.pad_h = (int)d[6], .pad_w = (int)d[6], .stride_h = (int)d[7], .stride_w = (int)d[7],
                            .dilation_h = (int)d[8], .dilation_w = (int)d[8], .groups = (int)groups};
        out = kn_graph_conv2d(g, x, w, b, &o);
    } else {
        fprintf(stderr, "unknown op %s\n", what);
        kn_graph_free(g);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "graph: %s\n", kn_graph_error(g));
        kn_graph_free(g);
        return 1;
    }
    int64_t os[KN_MAX_DIMS];
    for (int i = 0; i < kn_node_ndim(out); i++)
        os[i] = kn_node_dim(out, i);
    float *rv = malloc((size_t)kn_node_numel(out) * sizeof(float));
    fill(rv, kn_node_numel(out), false, false);
    kn_node *r = kn_graph_const(g, KN_F32, kn_node_ndim(out), os, rv);
    kn_node *loss = kn_graph_sum(g, kn_graph_mul(g, out, r), 0xFF >> (8 - kn_node_ndim(out)), false);
    kn_node *grads[4], *outs[6] = {out, loss};
    kn_graph_backward(g, loss, params, np, grads);
    for (int i = 0; i < np; i++)
        outs[2 + i] = grads[i];
    if (kn_graph_status(g)) {
        fprintf(stderr, "graph: %s\n", kn_graph_error(g));
        return 1;
    }
    kn_plan *cpu = NULL, *ref = NULL;
    kn_plan_opts oc = {.backend = KN_BACKEND_CPU, .training = true, .threads = threads};
    kn_plan_opts orf = {.backend = KN_BACKEND_REF, .training = true, .threads = threads};
    if (kn_plan_compile(&cpu, g, outs, 2 + np, &oc) || (check && kn_plan_compile(&ref, g, outs, 2 + np, &orf))) {
        fprintf(stderr, "compile: %s\n", kn_plan_last_error());
        return 1;
    }
    for (int i = 0; i < np; i++)
        fill((float *)kn_plan_data(cpu, params[i]), kn_node_numel(params[i]), ties && i == 0, nan && i == 0);
    if (kn_plan_run(cpu)) {
        fprintf(stderr, "run: %s\n", kn_plan_error(cpu));
        return 1;
    }
    int fails = 0;
    if (check) {
        kn_plan_run(ref);
        for (int i = 0; i < 2 + np; i++) {
            if (i == 1)
                continue; /* the loss itself: a sum of products, checked through the rest */
            int64_t bad, n = kn_node_numel(outs[i]);
            double e = rel_err(kn_plan_data(cpu, outs[i]), kn_plan_data(ref, outs[i]), n, &bad);
            bool ok = e <= 1e-4;
            fails += !ok;
            printf("check %-18s %-10s rel err %.2e %s", kn_node_name(outs[i])[0] ? kn_node_name(outs[i]) : "",
                   i == 0 ? "output" : kn_node_name(params[i - 2]), e, ok ? "ok" : "FAIL");
            if (!ok && bad >= 0)
                printf(" (element %lld: cpu %g ref %g)", (long long)bad,
                       ((const float *)kn_plan_data(cpu, outs[i]))[bad],
                       ((const float *)kn_plan_data(ref, outs[i]))[bad]);
            printf("\n");
        }
    }
    if (timing) {
        /* time every CPU kernel on the plan's own buffers, median of reps */
        char msg[256];
        size_t wsz = 0;
        for (int id = 0; id < g->n_nodes; id++) {
            kn_node *n = g->nodes[id];
            const kn__backend_kernel *k = kn__cpu_supports(n) ? kn__cpu_kernel(n->op) : NULL;
            if (k && k->workspace && kn_plan_data(cpu, n))
                wsz = k->workspace(n) > wsz ? k->workspace(n) : wsz;
        }
        void *work = aligned_alloc(64, (wsz + 64) / 64 * 64);
        double *t = malloc((size_t)reps * sizeof(double));
        for (int id = 0; id < g->n_nodes; id++) {
            kn_node *n = g->nodes[id];
            unsigned fl = kn__op_flags[n->op];
            if ((fl & KN_OPF_LEAF) || (fl & KN_OPF_ALIAS) || !kn_plan_data(cpu, n))
                continue;
            if (n->op == KN_OP_MUL || n->op == KN_OP_SUM ? strcmp(what, "sum") || n->op == KN_OP_MUL : 0)
                continue; /* the loss's own nodes */
            const kn__backend_kernel *k = kn__cpu_supports(n) ? kn__cpu_kernel(n->op) : NULL;
            if (!k || (only && strcmp(only, kn__op_names[n->op])))
                continue;
            kn__kargs a = {.node = n, .dst = (void *)kn_plan_data(cpu, n), .work = work, .seed = 7, .training = true,
                           .threads = threads, .err = msg, .err_size = sizeof msg};
            for (int i = 0; i < n->nsrc; i++)
                a.src[i] = (void *)kn_plan_data(cpu, n->src[i]);
            for (int i = 0; i < 3; i++)
                k->fn(&a);
            for (int i = 0; i < reps; i++) {
                double t0 = now();
                k->fn(&a);
                t[i] = now() - t0;
            }
            qsort(t, (size_t)reps, sizeof(double), cmp_d);
            double fl64 = kn__op_table[n->op]->flops ? kn__op_table[n->op]->flops(n) : 0;
            char sh[64];
            kn__shape_str(n->ndim, n->shape, sh, sizeof sh);
            printf("time %-20s %-18s median %9.1f us  min %9.1f us  %7.1f GFLOP/s  %6.1f GB/s out\n",
                   kn__op_names[n->op], sh, t[reps / 2] * 1e6, t[0] * 1e6, fl64 / t[reps / 2] * 1e-9,
                   (double)kn__nbytes(n) / t[reps / 2] * 1e-9);
        }
        free(t);
        free(work);
    }
    kn_plan_free(cpu);
    kn_plan_free(ref);
    kn_graph_free(g);
    free(rv);
    return fails ? 1 : 0;
}
