/* embedding.c — op test rows for embedding and embedding_bwd: i32 and i64 indices, 0-d,
 * 1-d and 3-d index tensors, repeated indices (random labels over a small vocabulary, so the
 * scatter-add accumulates), D = 1 and odd sizes 7, 13, 65. Out-of-range indices at run time
 * are checked in tests/test_embedding_range.c (a row cannot express a failing run). */
#include "op_rows.h"

typedef struct emb_case {
    int64_t V, D;
    kn_dtype idt;
    int ndim;
    int64_t shape[3];
} emb_case;

static const emb_case cases[] = {
    {7, 5, KN_I64, 2, {3, 4}},    /* 12 lookups into 7 rows: repeats */
    {13, 1, KN_I32, 1, {6}},      /* D = 1 */
    {5, 65, KN_I32, 3, {2, 1, 3}}, /* wide rows, size-1 index dim */
    {3, 7, KN_I64, 0, {0}},       /* a single 0-d index → [D] */
    {65, 13, KN_I32, 1, {40}},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static kn_node *emb_b(kn_graph *g, kn_dtype dt, int v)
{
    const emb_case *c = &cases[v];
    kn_node *w = kt_p(g, dt, -1, 1, c->V, c->D);
    return kn_graph_embedding(g, w, kt_labels(g, c->idt, c->ndim, c->shape, c->V));
}

static kn_node *emb_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    const emb_case *c = &cases[v];
    int64_t dshape[4];
    for (int i = 0; i < c->ndim; i++)
        dshape[i] = c->shape[i];
    dshape[c->ndim] = c->D;
    kn_node *s[2] = {kt_labels(g, c->idt, c->ndim, c->shape, c->V), kt_const(g, dt, c->ndim + 1, dshape, -1, 1)};
    kn_node *n = kn__node_new(g, KN_OP_EMBEDDING_BWD, 2, s);
    if (!n)
        return NULL;
    n->ai[0] = c->V;
    return kn__node_finish(g, n);
}

static kn_node *bad_emb(kn_graph *g) /* float indices */
{
    return kn_graph_embedding(g, kt_p(g, KN_F32, -1, 1, 10, 4), kt_p(g, KN_F32, 0, 9, 3));
}

static kn_node *bad_emb_bwd(kn_graph *g) /* dy's leading dims disagree with the indices */
{
    kn_node *s[2] = {kt_labels(g, KN_I64, 1, (const int64_t[]){5}, 10), kt_p(g, KN_F32, -1, 1, 4, 3)};
    kn_node *n = kn__node_new(g, KN_OP_EMBEDDING_BWD, 2, s);
    if (!n)
        return NULL;
    n->ai[0] = 10;
    return kn__node_finish(g, n);
}

const op_row kt_rows_embedding[] = {
    {.op = KN_OP_EMBEDDING, .label = "embedding", .build = emb_b, .n_variants = N_CASES, .bad = bad_emb,
     .bad_code = KN_ERR_DTYPE, .bad_msg = "embedding: input 1 has dtype f32, expected an integer type"},
    {.op = KN_OP_EMBEDDING_BWD, .label = "embedding_bwd", .build = emb_bwd_b, .n_variants = N_CASES,
     .bad = bad_emb_bwd, .bad_code = KN_ERR_SHAPE,
     .bad_msg = "embedding_bwd: dy has shape [4,3], expected the indices' shape [5] plus a last dim D"},
};
const int kt_n_rows_embedding = sizeof kt_rows_embedding / sizeof kt_rows_embedding[0];
