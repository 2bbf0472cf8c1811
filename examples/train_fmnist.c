/* train_fmnist.c — a C program training model B on Fashion-MNIST through kiln's public API:
 * the starting point for C users. Built by `make` as build/examples/train_fmnist.
 *
 *   build/examples/train_fmnist [epochs]
 *
 * It opens the data set, parses a model description (the same text as
 * examples/model_b.kiln), trains with the model's recipe, saves the run into
 * runs/train_fmnist/ and prints the test accuracy. See docs/api.md for the lower-level
 * graph API (build, differentiate, compile, run). */
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"
#include "kiln/nn.h"
#include "kiln/train.h"

static const char *MODEL_B =
    "input 1 28 28\n"
    "conv2d 32 3 pad=1\n"
    "relu\n"
    "maxpool 2\n"
    "conv2d 64 3 pad=1\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "dense 128 name=fc1\n"
    "relu\n"
    "dense 10 name=fc2\n"
    "train optimizer=adam lr=0.001 batch=64 epochs=5 schedule=cosine\n";

int main(int argc, char **argv)
{
    kn_error err = {0};
    kn_dataset *train = NULL, *test = NULL;
    if (kn_dataset_open("fashion-mnist", &train, &test, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    kn_model *model = NULL;
    if (kn_model_parse(&model, MODEL_B, "model B", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    kn_train_opts opts;
    kn_train_opts_defaults(&opts);
    opts.recipe = *kn_model_recipe(model);
    if (argc > 1)
        opts.recipe.epochs = atoi(argv[1]);
    opts.out_dir = "runs/train_fmnist";
    opts.progress = true;

    kn_train_result res;
    int rc = 0;
    if (kn_train(model, train, test, &opts, &res, &err)) {
        fprintf(stderr, "training failed: %s\n", err.msg);
        rc = 1;
    } else {
        printf("test accuracy %.4f after %d epochs (%.0f images/s); saved in %s\n", res.test.accuracy, res.epochs_done,
               res.train_images_per_s, opts.out_dir);
        kn_train_result_free(&res);
    }
    kn_model_free(model);
    kn_dataset_free(train);
    kn_dataset_free(test);
    return rc;
}
