/* cli.c — option parsing, model lookup (files or built-in examples), error printing and
 * the confusion matrix, shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin_models.h"

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

int cli_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }

bool cli_int(const char *cmd, const char *name, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "kiln %s: %s: bad value '%s' (expected an integer in [%lld, %lld])\n", cmd, name, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_double(const char *cmd, const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "kiln %s: %s: bad value '%s' (expected a number in [%g, %g])\n", cmd, name, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

kn_status cli_load_model(const char *spec, kn_model **out, kn_error *err)
{
    /* a file of that name first; a directory of that name (e.g. a run directory called
     * model_b) does not hide the built-in model */
    struct stat sb;
    bool is_dir = stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!is_dir && access(spec, F_OK) == 0)
        return kn_model_load(out, spec, err);
    for (const kn_builtin_model *b = kn_builtin_models; b->name; b++)
        if (!strcmp(b->name, spec)) {
            char src[128];
            snprintf(src, sizeof src, "examples/%s.kiln", b->name);
            return kn_model_parse(out, b->text, src, err);
        }
    char names[512] = "";
    for (const kn_builtin_model *b = kn_builtin_models; b->name; b++) {
        strncat(names, names[0] ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, b->name, sizeof names - strlen(names) - 1);
    }
    if (is_dir)
        return kn_error_set(err, KN_ERR_IO, "model '%s' is a directory, not a model description (.kiln) file nor a "
                            "built-in model (%s)", spec, names);
    return kn_error_set(err, KN_ERR_IO, "model '%s': no such file, and not a built-in model (%s)", spec, names);
}

void cli_list_builtin(FILE *f)
{
    for (const kn_builtin_model *b = kn_builtin_models; b->name; b++)
        fprintf(f, "%s%s", b == kn_builtin_models ? "" : ", ", b->name);
}

int cli_fail(const char *cmd, const kn_error *err)
{
    fprintf(stderr, "kiln %s: %s\n", cmd, err->msg[0] ? err->msg : kn_status_name(err->status));
    return 1;
}

static const char *fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *cifar10_names[10] = {"airplane", "automobile", "bird", "cat",  "deer",
                                        "dog",      "frog",       "horse", "ship", "truck"};

const char *cli_class_name(const char *ds, int c)
{
    if (c < 0 || c >= 10 || !ds)
        return NULL;
    if (strstr(ds, "fashion"))
        return fashion_names[c];
    if (strstr(ds, "cifar10") || strstr(ds, "cifar-10"))
        return cifar10_names[c];
    return NULL;
}

void cli_print_confusion(FILE *f, const kn_eval_result *r, const char *ds)
{
    int c = r->classes;
    if (c > 20) {
        fprintf(f, "(confusion matrix omitted: %d classes)\n", c);
        return;
    }
    fprintf(f, "confusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int j = 0; j < c; j++)
        fprintf(f, " %5d", j);
    fprintf(f, "  recall\n");
    for (int i = 0; i < c; i++) {
        const char *name = cli_class_name(ds, i);
        char label[32];
        snprintf(label, sizeof label, "%d %s", i, name ? name : "");
        fprintf(f, "%-14.14s", label);
        int64_t row = 0;
        for (int j = 0; j < c; j++) {
            fprintf(f, " %5lld", (long long)r->confusion[i * c + j]);
            row += r->confusion[i * c + j];
        }
        fprintf(f, "  %.3f\n", row ? (double)r->confusion[i * c + i] / (double)row : 0.0);
    }
}
