/* main.c — the `kiln` command line: dispatches to the subcommands (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int usage(FILE *f)
{
    fprintf(f,
            "usage: kiln <command> [options]   (kiln <command> --help for its options)\n"
            "commands:\n"
            "  train     train a model on a data set (default: model_b on Fashion-MNIST)\n"
            "  distill   train a student model from a teacher checkpoint (knowledge distillation)\n"
            "  eval      accuracy, loss and confusion matrix of a saved model; several side by side\n"
            "  predict   top classes for images or data-set examples\n"
            "  info      layers, shapes, parameters and FLOPs of a model or checkpoint\n"
            "  graph     the training step as Graphviz DOT, before or after the graph passes\n"
            "  bench     time a training step or inference: ms, images/s, GFLOP/s, fraction of peak\n"
            "  prune     prune a trained model (unstructured masks or whole conv filters) and fine-tune it\n"
            "  quantize  int8 post-training quantisation of a checkpoint (calibrated on training data)\n"
            "  version   print the version\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *c = argv[1];
    if (!strcmp(c, "train"))
        return cmd_train(argc, argv);
    if (!strcmp(c, "distill"))
        return cmd_distill(argc, argv);
    if (!strcmp(c, "eval"))
        return cmd_eval(argc, argv);
    if (!strcmp(c, "predict"))
        return cmd_predict(argc, argv);
    if (!strcmp(c, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(c, "graph"))
        return cmd_graph(argc, argv);
    if (!strcmp(c, "bench"))
        return cmd_bench(argc, argv);
    if (!strcmp(c, "quantize"))
        return cmd_quantize(argc, argv);
    if (!strcmp(c, "prune"))
        return cmd_prune(argc, argv);
    if (!strcmp(c, "version") || !strcmp(c, "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    if (!strcmp(c, "help") || !strcmp(c, "--help") || !strcmp(c, "-h"))
        return usage(stdout);
    fprintf(stderr, "kiln: unknown command '%s' (try 'kiln help')\n", c);
    return 2;
}
