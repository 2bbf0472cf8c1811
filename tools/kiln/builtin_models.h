/* builtin_models.h — the example models compiled into the CLI (generated builtin_models.c). */
#ifndef KILN_CLI_BUILTIN_MODELS_H
#define KILN_CLI_BUILTIN_MODELS_H

typedef struct kn_builtin_model {
    const char *name; /* file name without .kiln: "model_b" */
    const char *text;
} kn_builtin_model;

extern const kn_builtin_model kn_builtin_models[]; /* ends with {NULL, NULL} */

#endif
