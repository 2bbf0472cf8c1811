/* step_lab.c — times one training step of a kiln model (forward, softmax cross-entropy,
 * backward, Adam updates: the graph kn_train builds) as a whole and per op, on the CPU.
 * Not part of the CMake build; see bench/kernels/README.md for the build line.
 *
 *   step_lab MODEL.kiln [--batch 64] [--threads 2] [--steps 50] [--per-op] [--rounds 5]
 *
 * Whole step: `rounds` rounds of `steps` kn_plan_run calls, median round → images/s.
 * --per-op: the same plan's buffers, driven by this file's own loop over the graph's nodes
 * (in plan order) with a clock around each kernel call; prints time per node and per op,
 * GFLOP/s and share of the step. Uses the library's private headers (kernel table, node
 * struct) — a lab, not an API. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kiln.h"
#include "kiln/nn.h"
#include "backend/backend.h"

#define MAXP 64

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

static kn_node *state(kn_graph *g, kn_node *p, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", kn_node_name(p), suffix);
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < kn_node_ndim(p); i++)
        shape[i] = kn_node_dim(p, i);
    return kn_graph_param(g, name, kn_node_dtype(p), kn_node_ndim(p), shape, false);
}

typedef struct rec {
    const kn_node *n;
    double t, tmin, flops;
} rec;

int main(int argc, char **argv)
{
    const char *path = NULL;
    int batch = 64, threads = 2, steps = 50, rounds = 5, per_op = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--per-op"))
            per_op = 1;
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: step_lab MODEL.kiln [--batch N] [--threads T] [--steps S] [--rounds R] [--per-op]\n");
        return 2;
    }
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_model_load(&m, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 42);
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(m, shape + 1);
    kn_node *x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
    kn_node *y = kn_graph_input(g, "y", KN_I32, 1, shape);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    kn_node *t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    kn_node *logits = kn_model_build(m, g, x, &err);
    kn_node *loss = kn_graph_softmax_cross_entropy(g, logits, y);
    kn_node *params[MAXP], *grads[MAXP], *outs[MAXP + 2] = {loss, logits};
    int np = kn_graph_params(g, true, params, MAXP);
    kn_graph_backward(g, loss, params, np, grads);
    for (int i = 0; i < np; i++)
        outs[2 + i] = kn_graph_adam_update(g, params[i], grads[i], lr, t, state(g, params[i], "exp_avg"),
                                           state(g, params[i], "exp_avg_sq"), 0.9, 0.999, 1e-8, 0, false);
    if (kn_graph_status(g)) {
        fprintf(stderr, "graph: %s\n", kn_graph_error(g));
        return 1;
    }
    kn_plan *plan = NULL;
    kn_plan_opts po = {.backend = KN_BACKEND_CPU, .training = true, .threads = threads};
    if (kn_plan_compile(&plan, g, outs, np + 2, &po)) {
        fprintf(stderr, "compile: %s\n", kn_plan_last_error());
        return 1;
    }
    float *xs = kn_plan_input_data(plan, x);
    int32_t *ys = kn_plan_input_data(plan, y);
    int64_t nx = kn_node_numel(x);
    uint32_t s = 12345;
    for (int64_t i = 0; i < nx; i++) {
        s = s * 1664525u + 1013904223u;
        xs[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    for (int i = 0; i < batch; i++)
        ys[i] = i % kn_model_num_classes(m);
    float lrv = 1e-3f, tv = 1.0f;
    kn_plan_set_input(plan, lr, &lrv, sizeof lrv);
    kn_plan_set_input(plan, t, &tv, sizeof tv);
    omp_set_num_threads(threads);
    for (int i = 0; i < 5; i++)
        if (kn_plan_run(plan)) {
            fprintf(stderr, "run: %s\n", kn_plan_error(plan));
            return 1;
        }
    double rt[64];
    rounds = rounds > 64 ? 64 : rounds;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int i = 0; i < steps; i++)
            kn_plan_run(plan);
        rt[r] = (now() - t0) / steps;
    }
    qsort(rt, (size_t)rounds, sizeof(double), cmp_d);
    double med = rt[rounds / 2];
    printf("%s batch %d threads %d: step %.3f ms (min %.3f), %.0f images/s, %.1f GFLOP/s, loss %.4f\n", path,
           batch, threads, med * 1e3, rt[0] * 1e3, batch / med, kn_plan_flops(plan) / med * 1e-9,
           kn_plan_scalar(plan, loss));
    if (!per_op)
        goto done;

    /* Per-op: our own loop over the plan's nodes and buffers. */
    int nn = g->n_nodes;
    rec *rs = calloc((size_t)nn, sizeof(rec));
    kn__kargs *args = calloc((size_t)nn, sizeof(kn__kargs));
    kn__kernel_fn *fns = calloc((size_t)nn, sizeof(kn__kernel_fn));
    int *ids = calloc((size_t)nn, sizeof(int));
    size_t ws = 0;
    int nsteps = 0;
    char msg[256];
    for (int id = 0; id < nn; id++) {
        kn_node *n = g->nodes[id];
        unsigned fl = kn__op_flags[n->op];
        if ((fl & KN_OPF_LEAF) || ((fl & KN_OPF_ALIAS) && !(fl & KN_OPF_MUTATES)))
            continue;
        if (!kn_plan_data(plan, n))
            continue;
        const kn__backend_kernel *k = kn__cpu_supports(n) ? kn__cpu_kernel(n->op) : NULL;
        if (!k) {
            fprintf(stderr, "node %d %s: no CPU kernel (falls back)\n", id, kn__op_names[n->op]);
            continue;
        }
        size_t w = k->workspace ? k->workspace(n) : 0;
        ws = w > ws ? w : ws;
        kn__kargs *a = &args[nsteps];
        a->node = n;
        a->dst = (void *)kn_plan_data(plan, n);
        for (int i = 0; i < n->nsrc; i++)
            a->src[i] = (void *)kn_plan_data(plan, n->src[i]);
        a->seed = 42;
        a->training = true;
        a->threads = threads;
        a->err = msg;
        a->err_size = sizeof msg;
        fns[nsteps] = k->fn;
        ids[nsteps] = id;
        rs[nsteps].n = n;
        rs[nsteps].flops = kn__op_table[n->op]->flops ? kn__op_table[n->op]->flops(n) : 0;
        nsteps++;
    }
    void *work = aligned_alloc(64, (ws + 64) / 64 * 64);
    for (int i = 0; i < nsteps; i++)
        args[i].work = work;
    int reps = steps * rounds;
    double *tt = calloc((size_t)nsteps * (size_t)reps, sizeof(double));
    for (int r = -3; r < reps; r++)
        for (int i = 0; i < nsteps; i++) {
            args[i].step = (uint64_t)(r + 10);
            double t0 = now();
            fns[i](&args[i]);
            if (r >= 0)
                tt[(size_t)i * (size_t)reps + (size_t)r] = now() - t0;
        }
    double total = 0, total_min = 0;
    for (int i = 0; i < nsteps; i++) {
        qsort(tt + (size_t)i * (size_t)reps, (size_t)reps, sizeof(double), cmp_d);
        rs[i].t = tt[(size_t)i * (size_t)reps + (size_t)reps / 2];
        rs[i].tmin = tt[(size_t)i * (size_t)reps];
        total += rs[i].t;
        total_min += rs[i].tmin;
    }
    printf("\nper node (median and min of %d, in plan order), total of medians %.3f ms, of mins %.3f ms\n", reps,
           total * 1e3, total_min * 1e3);
    printf("%4s %-24s %-22s %9s %9s %6s %8s\n", "id", "op", "shape", "us", "min us", "%", "GFLOP/s");
    for (int i = 0; i < nsteps; i++) {
        const kn_node *n = rs[i].n;
        char sh[64];
        kn__shape_str(n->ndim, n->shape, sh, sizeof sh);
        printf("%4d %-24s %-22s %9.1f %9.1f %6.2f %8.1f\n", ids[i], kn__op_names[n->op], sh, rs[i].t * 1e6,
               rs[i].tmin * 1e6, 100 * rs[i].t / total, rs[i].flops > 0 ? rs[i].flops / rs[i].t * 1e-9 : 0.0);
    }
    printf("\nper op\n%-24s %9s %9s %6s %5s\n", "op", "us", "min us", "%", "nodes");
    for (int op = 0; op < KN_OP_COUNT; op++) {
        double sum = 0, smin = 0;
        int c = 0;
        for (int i = 0; i < nsteps; i++)
            if (rs[i].n->op == op)
                sum += rs[i].t, smin += rs[i].tmin, c++;
        if (c)
            printf("%-24s %9.1f %9.1f %6.2f %5d\n", kn__op_names[op], sum * 1e6, smin * 1e6, 100 * sum / total, c);
    }
    free(tt);
    free(work);
    free(rs);
    free(args);
    free(fns);
    free(ids);
done:
    kn_plan_free(plan);
    kn_graph_free(g);
    kn_model_free(m);
    return 0;
}
