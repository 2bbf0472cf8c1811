/* test_embedding_range.c — embedding's run-time index checks, which op table rows cannot
 * express (a row's run must succeed): an index ≥ V or < 0 fails the run with KN_ERR_RANGE and
 * a message naming the index and its position, on the CPU and reference backends, for the
 * lookup and for the backward scatter-add; the same plan then runs again once the data is
 * fixed. Not here: values (tests/ops/embedding.c compares them and checks gradients). */
#include "ops/op_table.h"
#include "util.h"

enum { V = 5, D = 3, NIDX = 6 };

static void fill_weight(kn_graph *g, kn_node *w)
{
    float *d = kn_graph_param_data(g, w);
    for (int i = 0; i < V * D; i++)
        d[i] = (float)i;
}

/* forward: weight [V, D], indices i64 input [2, 3] */
static void lookup(kn_backend_kind be, kn_dtype idt)
{
    const char *bn = be == KN_BACKEND_CPU ? "cpu" : "ref";
    kn_graph *g = kn_graph_new();
    kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (const int64_t[]){V, D}, true);
    kn_node *idx = kn_graph_input(g, "idx", idt, 2, (const int64_t[]){2, 3});
    kn_node *y = kn_graph_embedding(g, w, idx);
    CHECK(y, "build failed: %s", kn_graph_error(g));
    fill_weight(g, w);
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = be};
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &o));
    int64_t good[NIDX] = {0, 4, 2, 2, 1, 3}, bad[NIDX] = {0, 4, 2, 2, 7, 3}, neg[NIDX] = {-1, 0, 0, 0, 0, 0};
    const struct { const int64_t *v; kn_status want; const char *msg; } runs[] = {
        {good, KN_OK, ""},
        {bad, KN_ERR_RANGE, "embedding: index 7 at position 4 is outside [0, 5)"},
        {neg, KN_ERR_RANGE, "embedding: index -1 at position 0 is outside [0, 5)"},
        {good, KN_OK, ""},
    };
    for (int r = 0; p && r < 4; r++) {
        int32_t v32[NIDX];
        for (int i = 0; i < NIDX; i++)
            v32[i] = (int32_t)runs[r].v[i];
        size_t bytes = idt == KN_I32 ? sizeof v32 : sizeof(int64_t) * NIDX;
        CHECK_OK(kn_plan_set_input(p, idx, idt == KN_I32 ? (const void *)v32 : (const void *)runs[r].v, bytes));
        kn_status st = kn_plan_run(p);
        CHECK(st == runs[r].want, "%s %s run %d: status %s, expected %s (%s)", bn, kn_dtype_name(idt), r,
              kn_status_name(st), kn_status_name(runs[r].want), kn_plan_error(p));
        CHECK(strstr(kn_plan_error(p), runs[r].msg) != NULL, "%s %s run %d: message \"%s\" lacks \"%s\"", bn,
              kn_dtype_name(idt), r, kn_plan_error(p), runs[r].msg);
        if (st == KN_OK) { /* row 4 of w is 12, 13, 14 */
            const float *out = kn_plan_data(p, y);
            CHECK(out && out[3] == 12 && out[5] == 14, "%s %s run %d: wrong rows looked up", bn, kn_dtype_name(idt), r);
        }
    }
    kn_plan_free(p);
    kn_graph_free(g);
}

/* backward: EMBEDDING_BWD(indices, dy) with V rows; repeated indices accumulate */
static void scatter(kn_backend_kind be)
{
    const char *bn = be == KN_BACKEND_CPU ? "cpu" : "ref";
    kn_graph *g = kn_graph_new();
    kn_node *idx = kn_graph_input(g, "idx", KN_I64, 1, (const int64_t[]){NIDX});
    kn_node *dy = kn_graph_param(g, "dy", KN_F32, 2, (const int64_t[]){NIDX, D}, false);
    kn_graph_param_init(g, dy, KN_INIT_ONES, 0, 0);
    kn_node *s[2] = {idx, dy};
    kn_node *n = kn__node_new(g, KN_OP_EMBEDDING_BWD, 2, s);
    if (n)
        n->ai[0] = V;
    n = kn__node_finish(g, n);
    CHECK(n, "build failed: %s", kn_graph_error(g));
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = be};
    CHECK_OK(kn_plan_compile(&p, g, &n, 1, &o));
    const int64_t good[NIDX] = {1, 1, 4, 1, 0, 4}, bad[NIDX] = {1, 1, 4, 5, 0, 4};
    if (p) {
        CHECK_OK(kn_plan_set_input(p, idx, bad, sizeof bad));
        kn_status st = kn_plan_run(p);
        CHECK(st == KN_ERR_RANGE, "%s bwd: status %s for index 5", bn, kn_status_name(st));
        CHECK(strstr(kn_plan_error(p), "embedding_bwd: index 5 at position 3 is outside [0, 5)") != NULL,
              "%s bwd: message \"%s\"", bn, kn_plan_error(p));
        CHECK_OK(kn_plan_set_input(p, idx, good, sizeof good));
        CHECK_OK(kn_plan_run(p));
        const float *dw = kn_plan_data(p, n);
        const float want[V] = {1, 3, 0, 0, 2}; /* how often each row is named */
        for (int r = 0; dw && r < V; r++)
            for (int j = 0; j < D; j++)
                CHECK(dw[r * D + j] == want[r], "%s bwd: dw[%d][%d] = %g, expected %g", bn, r, j, dw[r * D + j],
                      want[r]);
    }
    kn_plan_free(p);
    kn_graph_free(g);
}

int main(void)
{
    const kn_backend_kind bes[2] = {KN_BACKEND_CPU, KN_BACKEND_REF};
    for (int i = 0; i < 2; i++) {
        lookup(bes[i], KN_I64);
        lookup(bes[i], KN_I32);
        scatter(bes[i]);
    }
    return kt_finish("test_embedding_range");
}
