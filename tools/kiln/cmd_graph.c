/* cmd_graph.c — `kiln graph MODEL`: builds the training step of a model as kn_train does
 * (model on a [batch, ...] input, softmax cross-entropy, backward, clipping and gradient
 * accumulation when the recipe asks, one optimizer update per parameter), compiles it with
 * and without the graph passes, prints what the passes did and the arena sizes, and writes
 * Graphviz DOT of the plan after the passes (default) or of the raw graph (--before).
 * `--inference` does the same for the inference graph (logits only).
 * Not here: rendering (pipe into `dot -Tsvg`). */
#include <math.h>
#include <string.h>

#include "cli.h"

#define MAX_PARAMS 512

typedef struct step_graph {
    kn_graph *g;
    kn_node *logits, *loss;
    kn_node *outs[3 * MAX_PARAMS + 2];
    int n_outs;
} step_graph;

static kn_node *state_of(kn_graph *g, kn_node *p, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", kn_node_name(p), suffix);
    kn_node *s = kn_graph_find(g, name);
    if (s)
        return s;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < kn_node_ndim(p); i++)
        shape[i] = kn_node_dim(p, i);
    return kn_graph_param(g, name, kn_node_dtype(p), kn_node_ndim(p), shape, false);
}

static kn_node *update(kn_graph *g, const kn_recipe *r, kn_node *p, kn_node *gr, kn_node *lr, kn_node *t)
{
    if (!strcmp(r->optimizer, "sgd"))
        return kn_graph_sgd_update(g, p, gr, lr, r->momentum > 0 ? state_of(g, p, "momentum_buffer") : NULL,
                                   r->momentum, r->weight_decay, r->nesterov);
    return kn_graph_adam_update(g, p, gr, lr, t, state_of(g, p, "exp_avg"), state_of(g, p, "exp_avg_sq"), r->beta1,
                                r->beta2, r->eps, r->weight_decay, !strcmp(r->optimizer, "adamw"));
}

/* The graph of src/train/trainer.c's build_branch (kept in step with it). */
static kn_status build(const kn_model *m, int64_t batch, bool inference, step_graph *s, kn_error *err)
{
    const kn_recipe *r = kn_model_recipe(m);
    kn_graph *g = s->g = kn_graph_new();
    if (!g)
        return kn_error_set(err, KN_ERR_OOM, "out of memory");
    kn_graph_set_seed(g, 42);
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(m, shape + 1);
    kn_node *x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
    s->logits = kn_model_build(m, g, x, err);
    if (!s->logits)
        return err->status ? err->status : kn_error_set(err, kn_graph_status(g), "%s", kn_graph_error(g));
    s->outs[s->n_outs++] = s->logits;
    if (inference)
        return KN_OK;
    kn_node *y = kn_graph_input(g, "y", KN_I32, 1, shape);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL), *t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    s->loss = kn_graph_softmax_cross_entropy(g, s->logits, y);
    kn_node *params[MAX_PARAMS], *grads[MAX_PARAMS];
    int np = kn_graph_params(g, true, params, MAX_PARAMS);
    if (np > MAX_PARAMS)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "the model has %d parameter tensors; at most %d", np, MAX_PARAMS);
    if (!s->loss || kn_graph_backward(g, s->loss, params, np, grads))
        return kn_error_set(err, kn_graph_status(g), "%s", kn_graph_error(g));
    s->outs[s->n_outs++] = s->loss;
    int accum = r->accum > 1 ? r->accum : 1;
    kn_node *one = kn_graph_scalar(g, KN_F32, 1.0), *inv = kn_graph_scalar(g, KN_F32, -1.0 / accum);
    for (int i = 0; accum > 1 && i < np; i++)
        grads[i] = kn_graph_sgd_update(g, state_of(g, params[i], "grad_accum"), grads[i], inv, NULL, 0, 0, false);
    if (r->clip_norm > 0) {
        kn_node *sq = NULL;
        for (int i = 0; i < np; i++) {
            kn_node *q = kn_graph_sum(g, kn_graph_mul(g, grads[i], grads[i]), 0, false);
            sq = sq ? kn_graph_add(g, sq, q) : q;
        }
        kn_node *factor = kn_graph_div(g, kn_graph_scalar(g, KN_F32, r->clip_norm),
                                       kn_graph_clamp(g, kn_graph_sqrt(g, sq), r->clip_norm, INFINITY));
        for (int i = 0; i < np; i++)
            grads[i] = kn_graph_mul(g, grads[i], factor);
    }
    for (int i = 0; i < np; i++)
        s->outs[s->n_outs++] = update(g, r, params[i], grads[i], lr, t);
    for (int i = 0; accum > 1 && i < np; i++) {
        kn_node *acc = state_of(g, params[i], "grad_accum");
        int64_t sh[KN_MAX_DIMS];
        for (int d = 0; d < kn_node_ndim(acc); d++)
            sh[d] = kn_node_dim(acc, d);
        kn_node *zero = kn_graph_const(g, kn_node_dtype(acc), kn_node_ndim(acc), sh, NULL);
        s->outs[s->n_outs++] = kn_graph_sgd_update(g, acc, zero, one, NULL, 0, 1.0, false);
    }
    if (kn_graph_status(g))
        return kn_error_set(err, kn_graph_status(g), "%s", kn_graph_error(g));
    return KN_OK;
}

static void mib(char *buf, size_t size, size_t bytes)
{
    snprintf(buf, size, "%.2f MiB (%zu B)", (double)bytes / (1024.0 * 1024.0), bytes);
}

int cmd_graph(int argc, char **argv)
{
    const char *model = NULL, *out_path = NULL;
    long long batch = 0;
    bool before = false, inference = false;
    kn_backend_kind backend = KN_BACKEND_CPU;
    int device = 0;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            printf("usage: kiln graph MODEL [--batch N] [--before|--after] [--inference] [--device D] [-o FILE]\n"
                   "  Writes the training step of MODEL (a .kiln file or a built-in name) as Graphviz DOT:\n"
                   "  --after (default) the plan after the graph passes, with each node's arena offset and\n"
                   "  size or 'in place', 'view', 'folded'; --before the raw graph. --batch defaults to the\n"
                   "  recipe's. Fused nodes are labelled with what they absorbed ('conv2d + batch_norm +\n"
                   "  relu', 'chain mul → sum'). Prints the passes' statistics and the arena sizes to\n"
                   "  stderr. KILN_PASSES=none|all|LIST (dce,cse,fold,fuse,inplace,memplan) picks the passes.\n"
                   "  --device cuda[:N] shows the plan a GPU runs (no epilogues; elementwise chains; the\n"
                   "  optimizer updates grouped into one launch, counted as 'grouped'); needs the GPU.\n"
                   "  Render with: dot -Tsvg FILE > graph.svg\n");
            return 0;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r > 0 && !cli_int("graph", "--batch", v, 1, 1 << 20, &batch))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "-o", &v)) || (r = cli_opt(argc, argv, &i, "--out", &v))) {
            out_path = v;
        } else if ((r = cli_opt(argc, argv, &i, "--device", &v))) {
            if (r > 0 && !cli_device("graph", v, &backend, &device))
                return 2;
        } else if (cli_flag(argv, i, "--before")) {
            before = true;
        } else if (cli_flag(argv, i, "--after")) {
            before = false;
        } else if (cli_flag(argv, i, "--inference")) {
            inference = true;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "kiln graph: unknown option '%s' (try kiln graph --help)\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln graph: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "kiln graph: give a model (a .kiln file or one of: model_b, model_a, mlp, resnet_cifar)\n");
        return 2;
    }
    kn_error err = {0};
    kn_model *m = NULL;
    if (cli_load_model(model, &m, &err))
        return cli_fail("graph", &err);
    if (!batch)
        batch = kn_model_recipe(m)->batch > 0 ? kn_model_recipe(m)->batch : 64;
    step_graph s = {0};
    kn_plan *raw = NULL, *opt = NULL;
    int rc = 0;
    kn_status st = build(m, batch, inference, &s, &err);
    kn_plan_opts po = {.backend = backend, .device = device, .training = !inference, .passes = KN_PASS_NONE};
    if (!st && (st = kn_plan_compile(&raw, s.g, s.outs, s.n_outs, &po)))
        kn_error_set(&err, st, "compiling without passes: %s", kn_plan_last_error());
    po.passes = 0; /* the default pipeline (KILN_PASSES applies) */
    if (!st && (st = kn_plan_compile(&opt, s.g, s.outs, s.n_outs, &po)))
        kn_error_set(&err, st, "compiling: %s", kn_plan_last_error());
    if (st) {
        rc = cli_fail("graph", &err);
    } else {
        kn_plan_stats a, b;
        kn_plan_get_stats(raw, &a);
        kn_plan_get_stats(opt, &b);
        char ra[64], ob[64], pk[64], sc[64];
        mib(ra, sizeof ra, a.arena_bytes);
        mib(ob, sizeof ob, b.arena_bytes);
        mib(pk, sizeof pk, b.peak_bytes);
        mib(sc, sizeof sc, b.scratch_bytes);
        fprintf(stderr,
                "kiln graph: %s, %s step, batch %lld: %d nodes, %d steps before the passes, %d after "
                "(%d merged, %d folded, %d dead, %d fused, %d in place, %d grouped)\n"
                "kiln graph: arena %s before the passes, %s after (peak live %s, largest scratch %s)\n",
                model, inference ? "inference" : "training", batch, a.nodes, a.steps, b.steps, b.merged, b.folded,
                b.dead, b.fused, b.inplace, b.grouped, ra, ob, pk, sc);
        FILE *f = out_path ? fopen(out_path, "w") : stdout;
        if (!f) {
            fprintf(stderr, "kiln graph: cannot write %s\n", out_path);
            rc = 1;
        } else {
            kn_node *fwd[2] = {s.logits, s.loss};
            st = kn_plan_write_dot(before ? raw : opt, f, !before, fwd, s.loss ? 2 : 1);
            if (out_path && fclose(f))
                st = KN_ERR_IO;
            if (st) {
                fprintf(stderr, "kiln graph: writing %s failed\n", out_path ? out_path : "the output");
                rc = 1;
            }
        }
    }
    kn_plan_free(raw);
    kn_plan_free(opt);
    kn_graph_free(s.g);
    kn_model_free(m);
    return rc;
}
