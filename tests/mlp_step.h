/* mlp_step.h — the small MLP training step the CUDA plan tests share (tests/gpu/test_cuda_plan.c
 * on a GPU, tests/mock/test_cuda_mock.c on the mock device): x [B, D] → linear + relu
 * (+ dropout) → linear (× a constant logit scale, if not 1) → softmax cross-entropy → backward
 * → one SGD update per parameter, all requested as outputs. Header-only: each test includes it
 * once. */
#ifndef KT_MLP_STEP_H
#define KT_MLP_STEP_H

#include <string.h>

#include "util.h"

typedef struct kt_mlp {
    kn_graph *g;
    kn_node *x, *y, *lr, *loss, *logits;
    kn_node *params[4]; /* w1, b1, w2, b2 */
    kn_node *outs[8];   /* loss, logits, the four updates */
    int n_outs;
} kt_mlp;

/* Parameters uniform in ±init from graph seed 7; dropout 0 = none; logit_scale 1 = none (a
 * scale ≠ 1 puts a constant into the step). */
static inline void kt_mlp_build(kt_mlp *m, int64_t B, int64_t D, int64_t H, int64_t C, double init, double dropout,
                                double logit_scale)
{
    memset(m, 0, sizeof *m);
    kn_graph *g = m->g = kn_graph_new();
    kn_graph_set_seed(g, 7);
    m->x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){B, D});
    m->y = kn_graph_input(g, "y", KN_I32, 1, (int64_t[]){B});
    m->lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    m->params[0] = kn_graph_param(g, "w1", KN_F32, 2, (int64_t[]){H, D}, true);
    m->params[1] = kn_graph_param(g, "b1", KN_F32, 1, (int64_t[]){H}, true);
    m->params[2] = kn_graph_param(g, "w2", KN_F32, 2, (int64_t[]){C, H}, true);
    m->params[3] = kn_graph_param(g, "b2", KN_F32, 1, (int64_t[]){C}, true);
    for (int i = 0; i < 4; i++)
        kn_graph_param_init(g, m->params[i], KN_INIT_UNIFORM, -init, init);
    kn_node *h = kn_graph_relu(g, kn_graph_linear(g, m->x, m->params[0], m->params[1]));
    if (dropout > 0)
        h = kn_graph_dropout(g, h, dropout);
    m->logits = kn_graph_linear(g, h, m->params[2], m->params[3]);
    if (logit_scale != 1)
        m->logits = kn_graph_mul(g, m->logits, kn_graph_scalar(g, KN_F32, logit_scale));
    m->loss = kn_graph_softmax_cross_entropy(g, m->logits, m->y);
    kn_node *grads[4] = {0};
    kn_graph_backward(g, m->loss, m->params, 4, grads);
    m->outs[m->n_outs++] = m->loss;
    m->outs[m->n_outs++] = m->logits;
    for (int i = 0; i < 4; i++)
        m->outs[m->n_outs++] = kn_graph_sgd_update(g, m->params[i], grads[i], m->lr, NULL, 0, 0, false);
    CHECK(kn_graph_status(g) == KN_OK, "building the MLP: %s", kn_graph_error(g));
}

#endif
