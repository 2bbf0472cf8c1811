/* cli.h — helpers shared by the kiln subcommands: option parsing, model lookup, printing. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdio.h>

#include "kiln/kiln.h"
#include "kiln/nn.h"
#include "kiln/train.h"

/* Matches argv[*i] against --name (with the value in the next argument or after '=').
 * Returns 1 and sets *val on a match, 0 if it is another option, -1 if the value is missing. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Matches a flag without value. */
int cli_flag(char **argv, int i, const char *name);
/* Parses numbers strictly; prints "kiln <cmd>: --name: bad value 'x'" and returns false on error. */
bool cli_int(const char *cmd, const char *name, const char *s, long long lo, long long hi, long long *out);
bool cli_double(const char *cmd, const char *name, const char *s, double lo, double hi, double *out);

/* A model from a file path or the name of a built-in example (model_b, model_a, mlp, ...). */
kn_status cli_load_model(const char *spec, kn_model **out, kn_error *err);
void cli_list_builtin(FILE *f);
/* Prints "kiln <cmd>: <message>" to stderr and returns exit code 1. */
int cli_fail(const char *cmd, const kn_error *err);
/* --device cpu|cuda|cuda:N|auto (cli_device.c); false after printing the error. */
bool cli_device(const char *cmd, const char *s, kn_backend_kind *backend, int *device);
#define CLI_DEVICE_HELP \
    "  --device D         cpu (default), cuda, cuda:N, or auto (the GPU when one is present)\n" \
    "  --deterministic    on the GPU: the same results run to run (fixed algorithms; docs/cuda.md)\n"
/* Prints a confusion matrix with class names when known. */
void cli_print_confusion(FILE *f, const kn_eval_result *r, const char *dataset_name);
const char *cli_class_name(const char *dataset_name, int c); /* NULL when unknown */

/* `kiln train` and the commands that train like it (`kiln distill`): the shared options
 * (--model, --data, --out, recipe overrides, --seed, --threads, --resume, ...), then the run. */
typedef struct cli_train_ext {
    const char *cmd;            /* "train", "distill": in messages */
    void (*usage)(FILE *f);     /* --help */
    /* The command's own option at argv[*i] (may be NULL): 1 taken (*i advanced past a value),
     * 0 not its own, -1 value missing, 2 bad value (message printed). */
    int (*option)(int argc, char **argv, int *i, kn_train_opts *o);
    /* After parsing (may be NULL): non-zero (message printed) stops with exit code 2. */
    int (*check)(const kn_train_opts *o);
    const char *default_model;  /* NULL: --model is required */
    const char *out_suffix;     /* default output directory runs/<model><suffix> */
} cli_train_ext;
int cli_train_main(int argc, char **argv, const cli_train_ext *x);
void cli_train_options_help(FILE *f); /* the shared options' lines of --help */

int cmd_train(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* The side-by-side table of `kiln eval` with several models (eval_table.c); exit code. */
int cli_eval_table(const char *const *models, int n, const kn_dataset *test, int threads, bool json, double seconds);
int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_prune(int argc, char **argv);

#endif
