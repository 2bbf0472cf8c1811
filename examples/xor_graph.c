/* xor_graph.c — kiln's graph API in one page: build a small MLP for XOR as a graph,
 * append its backward pass and SGD updates, compile the whole training step once into a
 * plan, run it for many steps, then read the predictions. Exits 0 when it learned XOR
 * (it is also run by the test suite). Built by `make` as build/examples/xor_graph. */
#include <stdio.h>

#include "kiln/kiln.h"

int main(void)
{
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 1);

    /* Inputs are filled before each run; parameters live in the graph. */
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 2});   /* [N=4, 2] */
    kn_node *y = kn_graph_input(g, "y", KN_I32, 1, (int64_t[]){4});      /* [4] class ids */
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);              /* 0-d learning rate */
    kn_node *w1 = kn_graph_param(g, "w1", KN_F32, 2, (int64_t[]){8, 2}, true); /* [out, in] */
    kn_node *b1 = kn_graph_param(g, "b1", KN_F32, 1, (int64_t[]){8}, true);
    kn_node *w2 = kn_graph_param(g, "w2", KN_F32, 2, (int64_t[]){2, 8}, true);
    kn_node *b2 = kn_graph_param(g, "b2", KN_F32, 1, (int64_t[]){2}, true);
    kn_node *params[] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++)
        kn_graph_param_init(g, params[i], KN_INIT_UNIFORM, -1, 1);

    /* Builders only record nodes; an error is kept in the graph and checked once. */
    kn_node *h = kn_graph_tanh(g, kn_graph_linear(g, x, w1, b1));        /* [4, 8] */
    kn_node *logits = kn_graph_linear(g, h, w2, b2);                     /* [4, 2] */
    kn_node *loss = kn_graph_softmax_cross_entropy(g, logits, y);        /* scalar */

    /* Reverse mode: gradient nodes for each parameter, then SGD updates as nodes. */
    kn_node *grads[4], *steps[6] = {loss, logits};
    kn_graph_backward(g, loss, params, 4, grads);
    for (int i = 0; i < 4; i++)
        steps[2 + i] = kn_graph_sgd_update(g, params[i], grads[i], lr, NULL, 0, 0, false);
    if (kn_graph_status(g)) {
        fprintf(stderr, "building the graph: %s\n", kn_graph_error(g));
        return 1;
    }

    /* Compile the whole step once; every run reuses the same buffers. */
    kn_plan *plan = NULL;
    kn_plan_opts opts = {.backend = KN_BACKEND_CPU, .training = true};
    if (kn_plan_compile(&plan, g, steps, 6, &opts)) {
        fprintf(stderr, "compiling: %s\n", kn_plan_last_error());
        return 1;
    }
    float xs[8] = {0, 0, 0, 1, 1, 0, 1, 1}, rate = 0.5f;
    int32_t ys[4] = {0, 1, 1, 0};
    kn_plan_set_input(plan, x, xs, sizeof xs);
    kn_plan_set_input(plan, y, ys, sizeof ys);
    kn_plan_set_input(plan, lr, &rate, sizeof rate);
    for (int step = 0; step < 500; step++)
        if (kn_plan_run(plan)) {
            fprintf(stderr, "run: %s\n", kn_plan_error(plan));
            return 1;
        }

    const float *z = kn_plan_data(plan, logits); /* logits before the last update */
    int correct = 0;
    for (int i = 0; i < 4; i++)
        correct += (z[2 * i + 1] > z[2 * i]) == ys[i];
    printf("xor: loss %.4f, %d/4 correct\n", kn_plan_scalar(plan, loss), correct);
    kn_plan_free(plan);
    kn_graph_free(g);
    return correct == 4 ? 0 : 1;
}
