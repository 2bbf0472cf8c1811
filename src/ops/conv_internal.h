/* conv_internal.h — what the conv family shares between its op file (src/ops/conv.c), its
 * CPU kernels (src/backend/cpu/conv.c) and its test rows: the geometry of a convolution read
 * from any of its three nodes, and the builders of the two backward ops (not public API:
 * autodiff creates them). Not a place for kernels. */
#ifndef KN_OPS_CONV_INTERNAL_H
#define KN_OPS_CONV_INTERNAL_H

#include "op_table.h"

/* Attribute slots shared by CONV2D, CONV2D_BWD_DATA and CONV2D_BWD_WEIGHT. */
enum {
    KN_CONV_SH, KN_CONV_SW, KN_CONV_PH, KN_CONV_PW, KN_CONV_DH, KN_CONV_DW, KN_CONV_G, /* ai[0..6] */
    KN_CONV_X0 = 7, /* ai[7..10]: BWD_DATA: x's [N,C,H,W]; BWD_WEIGHT: w's [O,C/groups,KH,KW] */
};

typedef struct kn__conv_geom {
    int64_t N, C, H, W;      /* input  [N, C, H, W] */
    int64_t O, KH, KW;       /* weight [O, C/G, KH, KW] */
    int64_t OH, OW;          /* output [N, O, OH, OW] */
    int64_t sh, sw, ph, pw, dh, dw, G;
    int64_t Cg, Og;          /* channels per group: C/G in, O/G out */
} kn__conv_geom;

/* Output extent along one axis; < 1 when the (dilated) kernel does not fit. */
static inline int64_t kn__conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

/* Geometry of a checked CONV2D / CONV2D_BWD_DATA / CONV2D_BWD_WEIGHT node. */
static inline kn__conv_geom kn__conv_geom_of(const kn_node *n)
{
    kn__conv_geom q;
    const int64_t *ai = n->ai;
    q.sh = ai[KN_CONV_SH], q.sw = ai[KN_CONV_SW], q.ph = ai[KN_CONV_PH], q.pw = ai[KN_CONV_PW];
    q.dh = ai[KN_CONV_DH], q.dw = ai[KN_CONV_DW], q.G = ai[KN_CONV_G];
    const kn_node *x, *w, *y;
    if (n->op == KN_OP_CONV2D_BWD_DATA) { /* (dy, w) → dx */
        x = n, w = n->src[1], y = n->src[0];
    } else if (n->op == KN_OP_CONV2D_BWD_WEIGHT) { /* (x, dy) → dw */
        x = n->src[0], w = n, y = n->src[1];
    } else { /* (x, w[, b]) → y */
        x = n->src[0], w = n->src[1], y = n;
    }
    q.N = x->shape[0], q.C = x->shape[1], q.H = x->shape[2], q.W = x->shape[3];
    q.O = w->shape[0], q.KH = w->shape[2], q.KW = w->shape[3];
    q.OH = y->shape[2], q.OW = y->shape[3];
    q.Cg = q.C / q.G, q.Og = q.O / q.G;
    return q;
}

/* dx [N,C,H,W] (x_shape) of a convolution with attributes conv[0..6] (ai[0..6] of the CONV2D
 * node), from dy [N,O,OH,OW] and w [O,C/G,KH,KW]. NULL (error in g) on a mismatch. */
kn_node *kn__conv2d_bwd_data(kn_graph *g, kn_node *dy, kn_node *w, const int64_t *conv, const int64_t *x_shape);
/* dw [O,C/G,KH,KW] (w_shape) from x [N,C,H,W] and dy [N,O,OH,OW]. */
kn_node *kn__conv2d_bwd_weight(kn_graph *g, kn_node *x, kn_node *dy, const int64_t *conv, const int64_t *w_shape);

#endif
