/* test_passes.c — the graph passes one by one on small graphs (dead-node removal, CSE, constant
 * folding, in-place reuse, the memory planner with an independent layout checker), the
 * pipeline switches (kn_plan_opts.passes, KILN_PASSES), DOT output (library and `kiln graph`),
 * out-of-memory injection through the passes, and for every example model: loss, logits,
 * parameter gradients and updated parameters bit-identical with the passes on and off, in
 * training and in inference, with a smaller arena when they are on. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/nn.h"
#include "passes/passes.h"
#include "util.h"

#define ON KN_PASS_ALL
#define OFF KN_PASS_NONE

static kn_plan *compile(kn_graph *g, kn_node *const *outs, int n, bool training, unsigned passes)
{
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CPU, .training = training, .passes = passes};
    kn_status st = kn_plan_compile(&p, g, outs, n, &o);
    CHECK(st == KN_OK, "compile: %s: %s", kn_status_name(st), kn_plan_last_error());
    return p;
}

static bool live(const kn_plan *p, const kn_node *n)
{
    return (kn__plan_ir(p)->nodes[kn_node_id(n)].flags & KN__IR_LIVE) != 0;
}

static void fill(float *d, int64_t n, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static const void *value_of(const kn_plan *p, const kn_node *n)
{
    return kn__plan_addr(p, kn_node_id(n));
}

static bool same_bytes(kn_plan *a, kn_plan *b, const kn_node *na, const kn_node *nb)
{
    const void *x = kn_plan_data(a, na), *y = kn_plan_data(b, nb);
    return x && y && !memcmp(x, y, (size_t)kn_node_numel(na) * kn_dtype_size(kn_node_dtype(na)));
}

/* ---- the independent layout checker ----------------------------------------------------
 * Recomputes from the IR, without the planner's own intervals, when every value in the arena
 * is written and last read, and checks with the plan's real addresses that no two values
 * live at the same time share a byte — except an in-place node overwriting an input whose
 * last read is that very step — and that no step's scratch overlaps a value live at it. */
static int follow_views(const kn__ir *ir, int i)
{
    i = kn__ir_rep(ir, i);
    while (kn__ir_is_view(&ir->nodes[i]))
        i = kn__ir_rep(ir, ir->nodes[i].src[0]);
    return i;
}

static int check_layout(const kn_plan *p, char *msg, size_t size)
{
    const kn__ir *ir = kn__plan_ir(p);
    const kn__memplan *mp = kn__plan_memplan(p);
    const unsigned char *arena = kn__plan_arena(p);
    int n = ir->n, end = ir->n_live, bad = 0;
    int *def = malloc(sizeof(int) * (size_t)n), *last = malloc(sizeof(int) * (size_t)n);
    bool *val = calloc((size_t)n, 1);
    msg[0] = 0;
    for (int i = 0; i < n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        const unsigned char *a = kn__plan_addr(p, i);
        int op = v->node->op;
        val[i] = (v->flags & KN__IR_LIVE) && !(v->flags & KN__IR_FOLDED) && !(kn__op_flags[op] & KN_OPF_ALIAS) &&
                 op != KN_OP_PARAM && op != KN_OP_CONST;
        def[i] = op == KN_OP_INPUT ? -1 : v->pos;
        last[i] = (op == KN_OP_INPUT && val[i]) ? end : -1;
        if (val[i] && (!a || a < arena || a + kn__nbytes(v->node) > arena + mp->arena_bytes) && !bad++)
            snprintf(msg, size, "node %d: its value is not inside the arena", i);
    }
    for (int o = 0; o < ir->n_outputs; o++)
        last[follow_views(ir, ir->outputs[o])] = end;
    for (int j = 0; j < n; j++) {
        const kn__ir_node *v = &ir->nodes[j];
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || kn__ir_is_view(v))
            continue;
        for (int s = 0; s < v->nsrc; s++) {
            int u = follow_views(ir, v->src[s]);
            if (last[u] < v->pos)
                last[u] = v->pos;
        }
    }
    for (int u = 0; u < n; u++) {
        if (!val[u])
            continue;
        const unsigned char *au = kn__plan_addr(p, u);
        size_t bu = kn__nbytes(ir->nodes[u].node);
        int lu = last[u] > def[u] ? last[u] : def[u];
        for (int w = u + 1; w < n; w++) {
            if (!val[w])
                continue;
            const unsigned char *aw = kn__plan_addr(p, w);
            size_t bw = kn__nbytes(ir->nodes[w].node);
            int lw = last[w] > def[w] ? last[w] : def[w];
            bool time = def[u] <= lw && def[w] <= lu, space = au < aw + bw && aw < au + bu;
            if (!time || !space)
                continue;
            bool inplace = (ir->nodes[w].flags & KN__IR_INPLACE) && def[w] == lu && aw == au && bw == bu;
            if (!inplace && !bad++)
                snprintf(msg, size, "nodes %d (%s, live %d..%d) and %d (%s, live %d..%d) share memory", u,
                         kn__op_names[ir->nodes[u].node->op], def[u], lu, w, kn__op_names[ir->nodes[w].node->op],
                         def[w], lw);
        }
        for (int q = 0; q < end; q++) {
            int b = mp->scratch[q];
            if (b < 0 || q < def[u] || q > lu)
                continue;
            const unsigned char *as = arena + mp->bufs[b].offset;
            if (as < au + bu && au < as + mp->bufs[b].bytes && !bad++)
                snprintf(msg, size, "the scratch of step %d overlaps node %d (live %d..%d)", q, u, def[u], lu);
        }
    }
    free(def);
    free(last);
    free(val);
    char m2[256];
    if (kn__memplan_check(mp, m2, sizeof m2) && !bad++)
        snprintf(msg, size, "kn__memplan_check: %s", m2);
    return bad;
}

#define CHECK_LAYOUT(p, what)                                                \
    do {                                                                     \
        char m_[512];                                                        \
        CHECK(check_layout(p, m_, sizeof m_) == 0, "%s: %s", what, m_);      \
    } while (0)

/* ---- dead-node removal ---- */
static void test_dce(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){8});
    kn_node *p = kn_graph_param(g, "p", KN_F32, 1, (int64_t[]){8}, true);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    kn_node *a = kn_graph_relu(g, x), *unused = kn_graph_exp(g, x), *unused2 = kn_graph_neg(g, unused);
    kn_node *y = kn_graph_mul(g, a, p);
    kn_node *upd = kn_graph_sgd_update(g, p, a, lr, NULL, 0, 0, false); /* not an output: must not run */
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    kn__ir ir;
    char msg[128];
    CHECK_OK(kn__ir_build(&ir, g, &y, 1, KN_BACKEND_CPU, false, msg, sizeof msg));
    int dropped = kn__pass_dce(&ir);
    CHECK(dropped == 4, "DCE dropped %d nodes (exp, neg, lr, the update), expected 4", dropped);
    CHECK(!(ir.nodes[kn_node_id(unused)].flags & KN__IR_LIVE) && !(ir.nodes[kn_node_id(unused2)].flags & KN__IR_LIVE) &&
              !(ir.nodes[kn_node_id(upd)].flags & KN__IR_LIVE) && !(ir.nodes[kn_node_id(lr)].flags & KN__IR_LIVE),
          "unused nodes are dead");
    CHECK((ir.nodes[kn_node_id(a)].flags & KN__IR_LIVE) && (ir.nodes[kn_node_id(p)].flags & KN__IR_LIVE),
          "needed nodes stay live");
    CHECK(kn__pass_dce(&ir) == 0, "a second sweep finds nothing");
    kn__ir_free(&ir);

    /* in a plan: two steps, the update never runs */
    kn_plan *pl = compile(g, &y, 1, true, ON & ~KN_PASS_FUSE); /* fusion would chain relu → mul */
    CHECK(kn_plan_num_steps(pl) == 2, "steps %d, expected 2 (relu, mul)", kn_plan_num_steps(pl));
    float *pd = kn_graph_param_data(g, p), xs[8];
    for (int i = 0; i < 8; i++)
        pd[i] = 1.0f, xs[i] = (float)i - 3.0f;
    CHECK_OK(kn_plan_set_input(pl, x, xs, sizeof xs));
    CHECK(kn_plan_input_data(pl, lr) == NULL, "an input the outputs do not need is not in the plan");
    CHECK_OK(kn_plan_run(pl));
    CHECK(pd[5] == 1.0f, "the unlisted update did not run");
    CHECK(((const float *)kn_plan_data(pl, y))[5] == 2.0f, "relu(x)·p");
    CHECK(kn_plan_data(pl, unused) == NULL, "no value for a dead node");
    kn_plan_free(pl);
    kn_graph_free(g);
}

/* ---- common-subexpression elimination ---- */
static void test_cse(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 5});
    kn_node *e1 = kn_graph_exp(g, x), *e2 = kn_graph_exp(g, x);                     /* merge */
    kn_node *s = kn_graph_add(g, kn_graph_relu(g, e1), kn_graph_relu(g, e2));      /* relu merges, then add(r, r) */
    kn_node *m1 = kn_graph_mul(g, x, kn_graph_scalar(g, KN_F32, 2.0));
    kn_node *m2 = kn_graph_mul(g, x, kn_graph_scalar(g, KN_F32, 2.0));             /* equal constants: merge */
    kn_node *k1 = kn_graph_scale(g, x, 2.0, 0.0), *k2 = kn_graph_scale(g, x, 3.0, 0.0); /* other attributes */
    kn_node *d1 = kn_graph_dropout(g, x, 0.5), *d2 = kn_graph_dropout(g, x, 0.5);   /* random: never */
    kn_node *y = kn_graph_add(g, kn_graph_add(g, kn_graph_add(g, s, m1), kn_graph_add(g, m2, k1)),
                              kn_graph_add(g, k2, kn_graph_add(g, d1, d2)));
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    kn_node *outs[5] = {y, e2, m2, d1, d2};
    kn_plan *on = compile(g, outs, 5, true, KN_PASS_CSE | KN_PASS_DCE | KN_PASS_MEMPLAN);
    kn_plan *off = compile(g, outs, 5, true, OFF);
    kn_plan_stats st;
    CHECK_OK(kn_plan_get_stats(on, &st));
    CHECK(st.merged == 4, "merged %d nodes (exp, relu, the constant, mul), expected 4", st.merged);
    CHECK(kn_plan_num_steps(on) == kn_plan_num_steps(off) - 3, "steps %d vs %d", kn_plan_num_steps(on),
          kn_plan_num_steps(off));
    CHECK(value_of(on, e1) == value_of(on, e2) && value_of(on, m1) == value_of(on, m2), "merged nodes share a value");
    CHECK(value_of(on, k1) != value_of(on, k2), "scale 2 and scale 3 are not merged");
    CHECK(value_of(on, d1) != value_of(on, d2) && live(on, d1) && live(on, d2), "dropouts are never merged");
    float xs[20];
    fill(xs, 20, 7);
    CHECK_OK(kn_plan_set_input(on, x, xs, sizeof xs));
    CHECK_OK(kn_plan_set_input(off, x, xs, sizeof xs));
    CHECK_OK(kn_plan_run(on));
    CHECK_OK(kn_plan_run(off));
    CHECK(same_bytes(on, off, y, y) && same_bytes(on, off, e2, e2) && same_bytes(on, off, m2, m2),
          "outputs bit-identical with CSE");
    CHECK(!memcmp(kn_plan_data(on, d1), kn_plan_data(off, d1), 80) &&
              memcmp(kn_plan_data(on, d1), kn_plan_data(on, d2), 80),
          "two dropouts draw different masks");
    CHECK_LAYOUT(on, "cse plan");
    kn_plan_free(on);
    kn_plan_free(off);
    kn_graph_free(g);

    /* a parameter read before and after its update: two different values, never merged */
    g = kn_graph_new();
    x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){3});
    kn_node *p = kn_graph_param(g, "p", KN_F32, 1, (int64_t[]){3}, true);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    kn_node *q1 = kn_graph_mul(g, x, p);
    kn_node *view1 = kn_graph_reshape(g, p, 2, (int64_t[]){1, 3});
    kn_node *upd = kn_graph_sgd_update(g, p, x, lr, NULL, 0, 0, false);
    kn_node *q2 = kn_graph_mul(g, x, p);
    kn_node *view2 = kn_graph_reshape(g, p, 2, (int64_t[]){1, 3});
    kn_node *r1 = kn_graph_neg(g, view1), *r2 = kn_graph_neg(g, view2);
    kn_node *o2[5] = {q1, upd, q2, r1, r2};
    kn_plan *pl = compile(g, o2, 5, true, ON);
    CHECK(value_of(pl, q1) != value_of(pl, q2) && value_of(pl, r1) != value_of(pl, r2),
          "reads across a parameter update are not merged");
    float *pd = kn_graph_param_data(g, p), one = 1.0f, xv[3] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        pd[i] = 10.0f;
    CHECK_OK(kn_plan_set_input(pl, x, xv, sizeof xv));
    CHECK_OK(kn_plan_set_input(pl, lr, &one, sizeof one));
    CHECK_OK(kn_plan_run(pl));
    const float *a = kn_plan_data(pl, q1), *b = kn_plan_data(pl, q2), *c = kn_plan_data(pl, r2);
    CHECK(a[2] == 30.0f && b[2] == 21.0f && c[2] == -7.0f, "before %g, after %g, view after %g", a[2], b[2], c[2]);
    kn_plan_free(pl);
    kn_graph_free(g);
}

/* ---- constant folding ---- */
static void test_fold(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){3});
    kn_node *c = kn_graph_const(g, KN_F32, 1, (int64_t[]){3}, (float[]){1, 2, 3});
    kn_node *e = kn_graph_exp(g, c);
    kn_node *v = kn_graph_reshape(g, e, 2, (int64_t[]){3, 1});
    kn_node *f = kn_graph_mul(g, kn_graph_reshape(g, v, 1, (int64_t[]){3}), kn_graph_scalar(g, KN_F32, 0.5));
    kn_node *y = kn_graph_add(g, x, f);
    /* too big to fold: 300000 floats = 1.2 MB */
    kn_node *big = kn_graph_const(g, KN_F32, 1, (int64_t[]){300000}, NULL);
    kn_node *bigexp = kn_graph_exp(g, big);
    /* a kernel that fails on constant data is left to the run, which reports it */
    kn_node *table = kn_graph_const(g, KN_F32, 2, (int64_t[]){4, 2}, NULL);
    kn_node *idx = kn_graph_const(g, KN_I32, 1, (int64_t[]){2}, (int32_t[]){1, 9});
    kn_node *emb = kn_graph_embedding(g, table, idx);
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    kn_node *outs[2] = {y, bigexp};
    kn_plan *on = compile(g, outs, 2, false, ON), *off = compile(g, outs, 2, false, OFF);
    kn_plan_stats st;
    CHECK_OK(kn_plan_get_stats(on, &st));
    CHECK(st.folded == 2, "folded %d nodes (exp, mul), expected 2", st.folded);
    CHECK(kn_plan_num_steps(on) == 2, "steps %d: add and the big exp", kn_plan_num_steps(on));
    CHECK(kn__plan_ir(on)->nodes[kn_node_id(f)].flags & KN__IR_FOLDED, "f is a folded constant");
    CHECK(!live(on, e) && !live(on, c), "the folded subgraph's insides are dropped");
    CHECK(live(on, bigexp) && !(kn__plan_ir(on)->nodes[kn_node_id(bigexp)].flags & KN__IR_FOLDED),
          "a value over 1 MiB is not folded");
    CHECK(st.folded_bytes == 12, "folded bytes %zu", st.folded_bytes);
    float xs[3] = {1, 1, 1};
    CHECK_OK(kn_plan_set_input(on, x, xs, sizeof xs));
    CHECK_OK(kn_plan_set_input(off, x, xs, sizeof xs));
    CHECK_OK(kn_plan_run(on));
    CHECK_OK(kn_plan_run(off));
    CHECK(same_bytes(on, off, y, y) && same_bytes(on, off, bigexp, bigexp), "folded results bit-identical");
    CHECK(fabsf(((const float *)kn_plan_data(on, y))[1] - (1.0f + expf(2.0f) * 0.5f)) < 1e-5f, "value");
    kn_plan_free(on);
    kn_plan_free(off);
    kn_plan *pe = compile(g, &emb, 1, false, ON);
    CHECK(pe && kn_plan_num_steps(pe) == 1, "the failing embedding stays a step");
    CHECK(pe && kn_plan_run(pe) == KN_ERR_RANGE, "and the run reports the bad index");
    CHECK(pe && strstr(kn_plan_error(pe), "9"), "message: %s", pe ? kn_plan_error(pe) : "");
    kn_plan_free(pe);
    kn_graph_free(g);

    /* f16 folding goes through the float64 reference like the run */
    g = kn_graph_new();
    x = kn_graph_input(g, "x", KN_F16, 1, (int64_t[]){4});
    uint16_t h[4];
    for (int i = 0; i < 4; i++)
        h[i] = kn_f32_to_f16(0.3f * (float)(i + 1));
    c = kn_graph_const(g, KN_F16, 1, (int64_t[]){4}, h);
    y = kn_graph_mul(g, x, kn_graph_sqrt(g, c));
    on = compile(g, &y, 1, false, ON);
    off = compile(g, &y, 1, false, OFF);
    CHECK(kn_plan_num_steps(on) == 1, "f16 sqrt folded");
    CHECK_OK(kn_plan_set_input(on, x, h, sizeof h));
    CHECK_OK(kn_plan_set_input(off, x, h, sizeof h));
    CHECK_OK(kn_plan_run(on));
    CHECK_OK(kn_plan_run(off));
    CHECK(same_bytes(on, off, y, y), "f16 folded result bit-identical");
    kn_plan_free(on);
    kn_plan_free(off);
    kn_graph_free(g);
}

/* ---- in-place reuse ---- */
static void test_inplace(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){2, 3, 6, 6});
    kn_node *w = kn_graph_param(g, "w", KN_F32, 4, (int64_t[]){4, 3, 3, 3}, true);
    kn_graph_param_init(g, w, KN_INIT_KAIMING_UNIFORM, 0, 0);
    kn_node *conv = kn_graph_conv2d(g, x, w, NULL, &(kn_conv2d_opts){.pad_h = 1, .pad_w = 1});
    kn_node *r = kn_graph_relu(g, conv);
    kn_node *b = kn_graph_param(g, "b", KN_F32, 1, (int64_t[]){6}, true);
    kn_node *sh = kn_graph_add(g, kn_graph_sigmoid(g, r), b); /* broadcasting b: writes into sigmoid's buffer */
    kn_node *t = kn_graph_tanh(g, kn_graph_exp(g, x));         /* exp(x) is an intermediate */
    kn_node *keep = kn_graph_sigmoid(g, x);
    kn_node *u = kn_graph_neg(g, keep), *u2 = kn_graph_sqrt(g, kn_graph_abs(g, keep)); /* keep read twice */
    kn_node *outs[4] = {sh, t, u, u2};
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    /* without fusion, which would put the relu inside the conv's kernel (test_fuse.c) */
    kn_plan *on = compile(g, outs, 4, false, ON & ~KN_PASS_FUSE), *off = compile(g, outs, 4, false, OFF);
    const kn__ir *ir = kn__plan_ir(on);
    const kn__ir_node *rv = &ir->nodes[kn_node_id(r)];
    CHECK((rv->flags & KN__IR_INPLACE) && rv->inplace_src == 0, "relu after conv runs in place");
    CHECK(value_of(on, r) == value_of(on, conv), "relu writes into the conv's buffer");
    CHECK(ir->nodes[kn_node_id(sh)].flags & KN__IR_INPLACE, "the broadcast add writes into its full-size input");
    CHECK(ir->nodes[kn_node_id(t)].flags & KN__IR_INPLACE, "tanh(exp(x)) in place");
    CHECK(!(ir->nodes[kn_node_id(u)].flags & KN__IR_INPLACE), "neg does not overwrite a value read later");
    CHECK(ir->nodes[kn_node_id(u2)].flags & KN__IR_INPLACE, "sqrt overwrites abs's buffer");
    CHECK(value_of(on, keep) != value_of(on, u), "input read later keeps its buffer");
    CHECK(value_of(on, kn_graph_find(g, "x")) != value_of(on, t), "inputs are never overwritten");
    float xs[216];
    fill(xs, 216, 3);
    CHECK_OK(kn_plan_set_input(on, x, xs, sizeof xs));
    CHECK_OK(kn_plan_set_input(off, x, xs, sizeof xs));
    CHECK_OK(kn_plan_run(on));
    CHECK_OK(kn_plan_run(off));
    for (int k = 0; k < 4; k++)
        CHECK(same_bytes(on, off, outs[k], outs[k]), "output %d bit-identical in place", k);
    CHECK(!memcmp(kn_plan_input_data(on, x), xs, sizeof xs), "the input is intact after the run");
    CHECK_LAYOUT(on, "in-place plan");
    kn_plan_free(on);
    kn_plan_free(off);

    /* the kernel whitelist */
    CHECK(kn__op_inplace_ok(KN_OP_RELU) && kn__op_inplace_ok(KN_OP_ADD) && kn__op_inplace_ok(KN_OP_UNARY_BWD),
          "elementwise kernels allow dst == src");
    CHECK(!kn__op_inplace_ok(KN_OP_DROPOUT) && !kn__op_inplace_ok(KN_OP_CAST) && !kn__op_inplace_ok(KN_OP_SOFTMAX) &&
              !kn__op_inplace_ok(KN_OP_MATMUL),
          "memcpy/convert-based and non-elementwise kernels do not");
    kn_graph_free(g);
}

/* ---- memory planner ---- */
static void test_memplan(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){1000});
    kn_node *h = x, *mview = NULL;
    for (int i = 0; i < 12; i++) {
        h = kn_graph_exp(g, kn_graph_scale(g, h, 0.01, 0.0));
        if (i == 3) /* a view read at the very end keeps this value's buffer alive */
            mview = kn_graph_reshape(g, h, 2, (int64_t[]){10, 100});
    }
    kn_node *y = kn_graph_add(g, kn_graph_reshape(g, h, 2, (int64_t[]){10, 100}), mview);
    kn_node *z = kn_graph_sum(g, y, 2u, false);
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    /* planner only (no in-place), then everything */
    kn_plan *plan = compile(g, &z, 1, false, KN_PASS_MEMPLAN | KN_PASS_DCE);
    /* (without fusion, which would chain the scale/exp pairs into single steps) */
    kn_plan *all = compile(g, &z, 1, false, ON & ~KN_PASS_FUSE), *off = compile(g, &z, 1, false, OFF);
    kn_plan_stats a, b, c;
    kn_plan_get_stats(plan, &a);
    kn_plan_get_stats(all, &b);
    kn_plan_get_stats(off, &c);
    CHECK(a.arena_bytes < c.arena_bytes / 4, "planned arena %zu vs %zu without planning", a.arena_bytes, c.arena_bytes);
    CHECK(b.arena_bytes <= a.arena_bytes, "in place helps: %zu vs %zu", b.arena_bytes, a.arena_bytes);
    CHECK(a.peak_bytes <= a.arena_bytes && a.arena_bytes <= a.naive_bytes, "peak %zu ≤ arena %zu ≤ naive %zu",
          a.peak_bytes, a.arena_bytes, a.naive_bytes);
    CHECK(c.arena_bytes == c.naive_bytes, "without planning the arena is the naive layout");
    CHECK(kn_plan_peak_bytes(plan) == a.peak_bytes && kn_plan_arena_bytes(plan) == a.arena_bytes, "accessors");
    CHECK(b.inplace > 10, "%d nodes in place", b.inplace);
    CHECK_LAYOUT(plan, "planner");
    CHECK_LAYOUT(all, "all passes");
    CHECK_LAYOUT(off, "no passes");
    float xs[1000];
    fill(xs, 1000, 11);
    kn_plan *ps[3] = {plan, all, off};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(kn_plan_set_input(ps[k], x, xs, sizeof xs));
        CHECK_OK(kn_plan_run(ps[k]));
        CHECK_OK(kn_plan_run(ps[k])); /* twice: reused buffers hold no stale state */
    }
    CHECK(same_bytes(plan, off, z, z) && same_bytes(all, off, z, z), "planned results bit-identical");

    /* the checker catches a bad layout */
    kn__memplan bad = {0};
    kn__buffer bufs[2] = {{.owner = 1, .first = 0, .last = 3, .bytes = 128, .offset = 0},
                          {.owner = 2, .first = 2, .last = 5, .bytes = 64, .offset = 64}};
    bad.bufs = bufs;
    bad.n_bufs = 2;
    bad.arena_bytes = 128;
    char msg[256];
    CHECK(kn__memplan_check(&bad, msg, sizeof msg) == 1 && strstr(msg, "overlap"), "checker: %s", msg);
    bufs[1].first = 4;
    CHECK(kn__memplan_check(&bad, msg, sizeof msg) == 0, "disjoint lifetimes may share: %s", msg);
    bufs[1].offset = 96;
    CHECK(kn__memplan_check(&bad, msg, sizeof msg) == 1, "misaligned: %s", msg);
    for (int k = 0; k < 3; k++)
        kn_plan_free(ps[k]);
    kn_graph_free(g);
}

/* ---- switches: opts.passes and KILN_PASSES ---- */
static void test_switches(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){4});
    kn_node *y = kn_graph_relu(g, kn_graph_exp(g, x));
    kn_plan_stats st;
    unsetenv("KILN_PASSES");
    kn_plan *p = compile(g, &y, 1, false, 0);
    kn_plan_get_stats(p, &st);
    CHECK(st.passes == KN_PASS_ALL, "default: all passes (%#x)", st.passes);
    kn_plan_free(p);
    p = compile(g, &y, 1, false, KN_PASS_NONE);
    kn_plan_get_stats(p, &st);
    CHECK(st.passes == 0 && st.inplace == 0, "KN_PASS_NONE: none (%#x)", st.passes);
    kn_plan_free(p);
    setenv("KILN_PASSES", "cse,fold", 1);
    p = compile(g, &y, 1, false, 0);
    kn_plan_get_stats(p, &st);
    CHECK(st.passes == (KN_PASS_CSE | KN_PASS_FOLD), "KILN_PASSES=cse,fold gives %#x", st.passes);
    kn_plan_free(p);
    p = compile(g, &y, 1, false, KN_PASS_INPLACE);
    kn_plan_get_stats(p, &st);
    CHECK(st.passes == KN_PASS_INPLACE && st.inplace == 1, "explicit opts win over KILN_PASSES");
    kn_plan_free(p);
    setenv("KILN_PASSES", "none", 1);
    p = compile(g, &y, 1, false, 0);
    kn_plan_get_stats(p, &st);
    CHECK(st.passes == 0, "KILN_PASSES=none");
    kn_plan_free(p);
    setenv("KILN_PASSES", "cse,bogus", 1);
    p = NULL;
    CHECK(kn_plan_compile(&p, g, &y, 1, &(kn_plan_opts){0}) == KN_ERR_ARG && !p, "a bad KILN_PASSES is refused");
    CHECK(strstr(kn_plan_last_error(), "KILN_PASSES"), "message: %s", kn_plan_last_error());
    unsetenv("KILN_PASSES");
    CHECK(kn_plan_get_stats(NULL, &st) == KN_ERR_ARG && kn_plan_peak_bytes(NULL) == 0, "NULL plan");
    kn_graph_free(g);
}

/* ---- out of memory anywhere in the passes: a clean status, nothing leaked ---- */
static kn_status build_compile_run(void *unused)
{
    (void)unused;
    kn_graph *g = kn_graph_new();
    if (!g)
        return KN_ERR_OOM;
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 8});
    kn_node *c = kn_graph_const(g, KN_F32, 1, (int64_t[]){8}, NULL);
    kn_node *f = kn_graph_exp(g, c);                          /* folded */
    kn_node *a = kn_graph_relu(g, kn_graph_add(g, x, f));    /* in place */
    kn_node *b = kn_graph_relu(g, kn_graph_add(g, x, f));    /* merged */
    kn_node *y = kn_graph_sum(g, kn_graph_mul(g, a, b), 0, false);
    kn_status st = kn_graph_status(g);
    kn_plan *p = NULL;
    if (!st)
        st = kn_plan_compile(&p, g, &y, 1, &(kn_plan_opts){.passes = ON});
    if (!st)
        st = kn_plan_run(p);
    kn_plan_free(p);
    kn_graph_free(g);
    return st;
}

static void test_oom(void)
{
    long n = kt_oom_loop("passes: build, compile, run", build_compile_run, NULL, 2000);
    CHECK(n > 10, "success after %ld failed allocations", n);
}

/* ---- DOT ---- */
/* Smoke-parses DOT: balanced braces, one `digraph` header, every line a comment, a node
 * statement, an edge or a brace; returns the number of node lines (-1 when malformed). */
static int parse_dot(const char *text, int *edges)
{
    int depth = 0, nodes = 0, bad = 0;
    *edges = 0;
    bool header = false;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        bool in_quotes = false;
        for (char *c = buf; *c; c++) {
            if (*c == '\\' && c[1]) {
                c++;
                continue;
            }
            if (*c == '"')
                in_quotes = !in_quotes;
            else if (!in_quotes && *c == '{')
                depth++;
            else if (!in_quotes && *c == '}')
                depth--;
        }
        bad += in_quotes || depth < 0;
        int a, b;
        const char *t = buf + strspn(buf, " ");
        if (!strncmp(t, "digraph ", 8))
            header = true;
        else if (sscanf(t, "n%d -> n%d", &a, &b) == 2)
            ++*edges;
        else if (sscanf(t, "n%d [label=", &a) == 1 && strstr(t, "fillcolor=") && t[strlen(t) - 1] == ';')
            nodes++;
        else if (!(t[0] == '/' && t[1] == '/') && strncmp(t, "node [", 6) && strcmp(t, "}") && *t)
            bad++;
        line = eol ? eol + 1 : line + len;
    }
    return bad || depth || !header ? -1 : nodes;
}

static char *read_all(FILE *f)
{
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = 0;
    return s;
}

static void test_dot(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x \"quoted\"", KN_F32, 2, (int64_t[]){2, 3});
    kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){4, 3}, true);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    kn_node *y = kn_graph_relu(g, kn_graph_linear(g, x, w, NULL));
    kn_node *loss = kn_graph_sum(g, kn_graph_mul(g, y, y), 0, false);
    kn_node *gw = NULL;
    kn_graph_backward(g, loss, &w, 1, &gw);
    kn_node *outs[2] = {loss, kn_graph_sgd_update(g, w, gw, lr, NULL, 0, 0, false)};
    for (int pass = 0; pass < 2; pass++) {
        kn_plan *p = compile(g, outs, 2, true, pass ? ON : OFF);
        FILE *f = tmpfile();
        CHECK_OK(kn_plan_write_dot(p, f, pass == 1, &loss, 1));
        char *text = read_all(f);
        fclose(f);
        int edges, nodes = parse_dot(text, &edges);
        CHECK(nodes == kn__plan_ir(p)->n_live, "DOT has %d node lines for %d live nodes", nodes, kn__plan_ir(p)->n_live);
        CHECK(edges > nodes / 2, "%d edges", edges);
        CHECK(strstr(text, "fillcolor=\"#fff2ae\"") && strstr(text, "fillcolor=\"#f4cae4\"") &&
                  strstr(text, "fillcolor=\"#fdcdac\""),
              "update, backward and forward colours present");
        CHECK(!pass || strstr(text, "in place") || strstr(text, " B\""), "memory labels after the passes");
        free(text);
        kn_plan_free(p);
    }
    CHECK(kn_plan_write_dot(NULL, stdout, false, NULL, 0) == KN_ERR_ARG, "NULL plan");
    kn_graph_free(g);

    /* the CLI: kiln graph model_b --batch 4, before and after */
    const char *args[2] = {"--before", "--after"};
    for (int k = 0; k < 2; k++) {
        char cmd[1024], path[64];
        snprintf(path, sizeof path, "/tmp/kiln_test_passes_%d.dot", (int)getpid());
        snprintf(cmd, sizeof cmd, "%s graph model_b --batch 4 %s -o %s 2>/dev/null", KILN_BIN, args[k], path);
        int rc = system(cmd);
        CHECK(rc == 0, "%s: exit %d", cmd, rc);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL, "%s written", path);
        if (!f)
            continue;
        char *text = read_all(f);
        fclose(f);
        remove(path);
        int edges, nodes = parse_dot(text, &edges);
        CHECK(nodes > 50 && edges > nodes, "kiln graph %s: %d nodes, %d edges", args[k], nodes, edges);
        CHECK(strstr(text, "conv2d") && strstr(text, "adam_update"), "ops named");
        CHECK(k == 0 || strstr(text, "in place"), "after: in-place nodes labelled");
        free(text);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s graph no_such_model >/dev/null 2>&1", KILN_BIN);
    CHECK(system(cmd) != 0, "an unknown model fails cleanly");
    snprintf(cmd, sizeof cmd, "%s graph model_b --batch 0 >/dev/null 2>&1", KILN_BIN);
    CHECK(system(cmd) != 0, "a bad batch fails cleanly");
}

/* ---- every example model: bit-identical with the passes on and off ---- */
#define MAX_P 128

typedef struct step {
    kn_graph *g;
    kn_node *x, *y, *lr, *t, *logits, *loss;
    kn_node *params[MAX_P], *grads[MAX_P], *updates[MAX_P];
    int np;
} step;

static bool build_step(const kn_model *m, int64_t batch, step *s)
{
    memset(s, 0, sizeof *s);
    const kn_recipe *r = kn_model_recipe(m);
    kn_graph *g = s->g = kn_graph_new();
    kn_graph_set_seed(g, 7);
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(m, shape + 1);
    kn_error err = {0};
    s->x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
    s->y = kn_graph_input(g, "y", KN_I32, 1, shape);
    s->lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    s->t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    s->logits = kn_model_build(m, g, s->x, &err);
    s->loss = kn_graph_softmax_cross_entropy(g, s->logits, s->y);
    s->np = kn_graph_params(g, true, s->params, MAX_P);
    if (!s->loss || s->np > MAX_P || kn_graph_backward(g, s->loss, s->params, s->np, s->grads)) {
        CHECK(false, "building the step: %s %s", err.msg, kn_graph_error(g));
        return false;
    }
    for (int i = 0; i < s->np; i++) {
        kn_node *p = s->params[i];
        char a[160], b[160];
        int64_t sh[KN_MAX_DIMS];
        for (int d = 0; d < kn_node_ndim(p); d++)
            sh[d] = kn_node_dim(p, d);
        snprintf(a, sizeof a, "%s.m", kn_node_name(p));
        snprintf(b, sizeof b, "%s.v", kn_node_name(p));
        kn_node *m1 = kn_graph_param(g, a, KN_F32, kn_node_ndim(p), sh, false);
        kn_node *v1 = kn_graph_param(g, b, KN_F32, kn_node_ndim(p), sh, false);
        s->updates[i] = !strcmp(r->optimizer, "sgd")
                            ? kn_graph_sgd_update(g, p, s->grads[i], s->lr, m1, 0.9, r->weight_decay, r->nesterov)
                            : kn_graph_adam_update(g, p, s->grads[i], s->lr, s->t, m1, v1, 0.9, 0.999, 1e-8, 0, false);
    }
    CHECK(kn_graph_status(g) == KN_OK, "optimizer: %s", kn_graph_error(g));
    return kn_graph_status(g) == KN_OK;
}

static void set_inputs(kn_plan *p, const step *s, int64_t batch, int classes, uint32_t seed)
{
    float *x = kn_plan_input_data(p, s->x);
    int32_t *y = kn_plan_input_data(p, s->y);
    float *lr = kn_plan_input_data(p, s->lr), *t = kn_plan_input_data(p, s->t);
    if (x)
        fill(x, kn_node_numel(s->x), seed);
    for (int64_t i = 0; y && i < batch; i++)
        y[i] = (int32_t)((i * 7 + seed) % (uint32_t)classes);
    if (lr)
        *lr = 0.01f;
    if (t)
        *t = 1.0f;
}

/* Parameters (weights, optimizer state, running statistics) that differ between two graphs. */
static int params_differ(kn_graph *ga, kn_graph *gb)
{
    kn_node *pa[4 * MAX_P], *pb[4 * MAX_P];
    int na = kn_graph_params(ga, false, pa, 4 * MAX_P), nb = kn_graph_params(gb, false, pb, 4 * MAX_P);
    if (na != nb || na > 4 * MAX_P)
        return -1;
    int diff = 0;
    for (int i = 0; i < na; i++)
        diff += memcmp(kn_graph_param_data(ga, pa[i]), kn_graph_param_data(gb, pb[i]),
                       (size_t)kn_node_numel(pa[i]) * kn_dtype_size(kn_node_dtype(pa[i]))) != 0;
    return diff;
}

static void compare_model(const char *label, const kn_model *m, int64_t batch)
{
    step a, b;
    if (!build_step(m, batch, &a) || !build_step(m, batch, &b)) {
        kn_graph_free(a.g);
        kn_graph_free(b.g);
        return;
    }
    int classes = kn_model_num_classes(m);
    CHECK(params_differ(a.g, b.g) == 0, "%s: same seed, same init", label);
    /* 1. training, gradients among the outputs */
    kn_node *oa[2 * MAX_P + 2] = {a.loss, a.logits}, *ob[2 * MAX_P + 2] = {b.loss, b.logits};
    for (int i = 0; i < a.np; i++) {
        oa[2 + i] = a.grads[i], ob[2 + i] = b.grads[i];
        oa[2 + a.np + i] = a.updates[i], ob[2 + a.np + i] = b.updates[i];
    }
    int n = 2 + 2 * a.np;
    kn_plan *pa = compile(a.g, oa, n, true, ON), *pb = compile(b.g, ob, n, true, OFF);
    if (pa && pb) {
        set_inputs(pa, &a, batch, classes, 5);
        set_inputs(pb, &b, batch, classes, 5);
        CHECK_OK(kn_plan_run(pa));
        CHECK_OK(kn_plan_run(pb));
        CHECK(same_bytes(pa, pb, a.loss, b.loss) && same_bytes(pa, pb, a.logits, b.logits),
              "%s training: loss %.9g vs %.9g, logits bit-identical", label, kn_plan_scalar(pa, a.loss),
              kn_plan_scalar(pb, b.loss));
        int diff = 0;
        for (int i = 0; i < a.np; i++)
            diff += !same_bytes(pa, pb, a.grads[i], b.grads[i]);
        CHECK(diff == 0, "%s training: %d of %d gradients differ", label, diff, a.np);
        CHECK(params_differ(a.g, b.g) == 0, "%s training: updated parameters bit-identical", label);
        CHECK_LAYOUT(pa, label);
    }
    kn_plan_free(pa);
    kn_plan_free(pb);

    /* 2. the trainer's outputs (loss, logits, updates): gradients are intermediates; 2 steps */
    kn_node *ta[MAX_P + 2] = {a.loss, a.logits}, *tb[MAX_P + 2] = {b.loss, b.logits};
    for (int i = 0; i < a.np; i++)
        ta[2 + i] = a.updates[i], tb[2 + i] = b.updates[i];
    pa = compile(a.g, ta, 2 + a.np, true, ON);
    pb = compile(b.g, tb, 2 + b.np, true, OFF);
    if (pa && pb) {
        kn_plan_stats sa, sb;
        kn_plan_get_stats(pa, &sa);
        kn_plan_get_stats(pb, &sb);
        CHECK(sa.arena_bytes < sb.arena_bytes, "%s: arena %zu with the passes, %zu without", label, sa.arena_bytes,
              sb.arena_bytes);
        printf("%-14s batch %3lld training: arena %9zu -> %9zu bytes (peak %zu), %d steps, %d in place, %d merged, "
               "%d folded, %d fused\n",
               label, (long long)batch, sb.arena_bytes, sa.arena_bytes, sa.peak_bytes, sa.steps, sa.inplace, sa.merged,
               sa.folded, sa.fused);
        for (int k = 0; k < 2; k++) {
            set_inputs(pa, &a, batch, classes, 11 + (uint32_t)k);
            set_inputs(pb, &b, batch, classes, 11 + (uint32_t)k);
            CHECK_OK(kn_plan_run(pa));
            CHECK_OK(kn_plan_run(pb));
            CHECK(same_bytes(pa, pb, a.loss, b.loss) && same_bytes(pa, pb, a.logits, b.logits),
                  "%s trainer step %d: loss and logits bit-identical", label, k);
        }
        int diff = params_differ(a.g, b.g);
        CHECK(diff == 0, "%s: %d parameters (weights, optimizer state, running statistics) differ after 2 steps",
              label, diff);
        CHECK_LAYOUT(pa, label);
    }
    kn_plan_free(pa);
    kn_plan_free(pb);

    /* 3. inference */
    pa = compile(a.g, &a.logits, 1, false, ON);
    pb = compile(b.g, &b.logits, 1, false, OFF);
    if (pa && pb) {
        set_inputs(pa, &a, batch, classes, 23);
        set_inputs(pb, &b, batch, classes, 23);
        CHECK_OK(kn_plan_run(pa));
        CHECK_OK(kn_plan_run(pb));
        CHECK(same_bytes(pa, pb, a.logits, b.logits), "%s inference: logits bit-identical", label);
        CHECK(kn_plan_arena_bytes(pa) < kn_plan_arena_bytes(pb), "%s inference: arena %zu vs %zu", label,
              kn_plan_arena_bytes(pa), kn_plan_arena_bytes(pb));
        CHECK_LAYOUT(pa, label);
    }
    kn_plan_free(pa);
    kn_plan_free(pb);
    kn_graph_free(a.g);
    kn_graph_free(b.g);
}

static void test_models(void)
{
    const char *files[] = {"examples/mlp.kiln", "examples/model_a.kiln", "examples/model_b.kiln",
                           "examples/resnet_cifar.kiln"};
    const int64_t batches[] = {16, 8, 8, 4};
    for (int k = 0; k < 4; k++) {
        kn_model *m = NULL;
        kn_error err = {0};
        kn_status st = kn_model_load(&m, files[k], &err);
        CHECK(st == KN_OK, "%s: %s", files[k], err.msg);
        if (!st)
            compare_model(files[k] + 9, m, batches[k]);
        kn_model_free(m);
    }
    /* the other layer kinds: batch and layer norm, gelu, silu, residual add, avg pool, dropout */
    const char *text = "train optimizer=adam\n"
                       "input 3 8 8\n"
                       "conv2d 8 3 pad=1\nbatchnorm\ngelu name=a\n"
                       "conv2d 8 3 pad=1\nlayernorm\nadd a\nsilu\n"
                       "avgpool 2\ndropout 0.25\nflatten\ndense 16\ntanh\nleaky_relu\ndense 4\n";
    kn_model *m = NULL;
    kn_error err = {0};
    CHECK(kn_model_parse(&m, text, "mixed", &err) == KN_OK, "mixed model: %s", err.msg);
    if (m)
        compare_model("mixed", m, 6);
    kn_model_free(m);
}

int main(void)
{
    test_dce();
    test_cse();
    test_fold();
    test_inplace();
    test_memplan();
    test_switches();
    test_oom();
    test_dot();
    test_models();
    return kt_finish("test_passes");
}
