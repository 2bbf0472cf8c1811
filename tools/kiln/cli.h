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
/* Prints a confusion matrix with class names when known. */
void cli_print_confusion(FILE *f, const kn_eval_result *r, const char *dataset_name);
const char *cli_class_name(const char *dataset_name, int c); /* NULL when unknown */

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_prune(int argc, char **argv);

#endif
