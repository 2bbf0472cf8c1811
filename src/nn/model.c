/* model.c — the parser of kiln's model description format (docs/model-format.md): one
 * layer per line, `train` lines for the recipe, '#' comments. It turns the text into the
 * layer list of nn_internal.h, checks every word (keywords, positional arguments, key=value
 * options, names in from=/add) and then checks that the layers fit together by building the
 * model once on a batch of 1 in a scratch graph (build.c), so every error names source:line.
 * It also holds the model's accessors. Deliberately not here: building for real, printing
 * summaries (build.c), and any layer the format does not list. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "nn_internal.h"

#define MAX_FILE_BYTES (4u << 20) /* a description is text of at most a few KB; refuse more */

/* ---- layer keywords ------------------------------------------------------------------------ */

typedef struct layer_def {
    const char *keyword;
    const char *alias;
    const char *prefix;  /* automatic names: <prefix><k> */
    int max_pos;         /* positional arguments at most */
    const char *usage;   /* the positional arguments, for messages */
    const char *options; /* accepted keys, ", " separated, for matching and for messages */
} layer_def;

static const layer_def defs[KN_L_COUNT] = {
    [KN_L_INPUT] = {"input", NULL, "input", 3, "input C H W | input F", ""},
    [KN_L_CONV2D] = {"conv2d", NULL, "conv", 2, "conv2d FILTERS KERNEL",
                     "stride, pad, dilation, groups, bias, name, from"},
    [KN_L_DENSE] = {"dense", "linear", "dense", 1, "dense UNITS", "bias, name, from"},
    [KN_L_RELU] = {"relu", NULL, "relu", 0, "relu", "name, from"},
    [KN_L_LEAKY_RELU] = {"leaky_relu", NULL, "leaky_relu", 1, "leaky_relu [SLOPE]", "name, from"},
    [KN_L_SIGMOID] = {"sigmoid", NULL, "sigmoid", 0, "sigmoid", "name, from"},
    [KN_L_TANH] = {"tanh", NULL, "tanh", 0, "tanh", "name, from"},
    [KN_L_GELU] = {"gelu", NULL, "gelu", 0, "gelu", "name, from"},
    [KN_L_SILU] = {"silu", NULL, "silu", 0, "silu", "name, from"},
    [KN_L_MAXPOOL] = {"maxpool", NULL, "maxpool", 1, "maxpool KERNEL", "stride, pad, name, from"},
    [KN_L_AVGPOOL] = {"avgpool", NULL, "avgpool", 1, "avgpool KERNEL", "stride, pad, name, from"},
    [KN_L_GLOBALAVGPOOL] = {"globalavgpool", NULL, "gap", 0, "globalavgpool", "name, from"},
    [KN_L_BATCHNORM] = {"batchnorm", NULL, "bn", 0, "batchnorm", "momentum, eps, name, from"},
    [KN_L_LAYERNORM] = {"layernorm", NULL, "ln", 0, "layernorm", "eps, name, from"},
    [KN_L_DROPOUT] = {"dropout", NULL, "dropout", 1, "dropout P", "name, from"},
    [KN_L_FLATTEN] = {"flatten", NULL, "flatten", 0, "flatten", "name, from"},
    [KN_L_ADD] = {"add", NULL, "add", 1, "add NAME", "name, from"},
};

#define KNOWN_LAYERS                                                                                    \
    "input, conv2d, dense (linear), relu, leaky_relu, sigmoid, tanh, gelu, silu, maxpool, avgpool, "    \
    "globalavgpool, batchnorm, layernorm, dropout, flatten, add; and train for the recipe"

const char *kn__layer_keyword(kn__layer_kind kind)
{
    return (unsigned)kind < KN_L_COUNT ? defs[kind].keyword : "?";
}

/* ---- parse context and messages ------------------------------------------------------------ */

typedef struct pctx {
    kn_model *m;
    const char *src;
    int line;
    const char *kw; /* keyword of the line being parsed, for messages */
    kn_error *err;
} pctx;

/* "src:line: kw: message", KN_ERR_FORMAT unless told otherwise. */
__attribute__((format(printf, 3, 4))) static kn_status perr(pctx *c, kn_status st, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->kw)
        return kn_error_set(c->err, st, "%s:%d: %s: %s", c->src, c->line, c->kw, msg);
    return kn_error_set(c->err, st, "%s:%d: %s", c->src, c->line, msg);
}

/* Tokens are printed at most this long in messages (a 1000-character token helps nobody). */
#define TOK "%.60s"

/* ---- numbers and names ------------------------------------------------------------------- */

static kn_status get_int(pctx *c, const char *what, const char *tok, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = *tok ? strtoll(tok, &end, 10) : 0;
    if (!*tok || *end)
        return perr(c, KN_ERR_FORMAT, "%s '" TOK "' is not a whole number", what, tok);
    if (errno == ERANGE || v < lo || v > hi)
        return perr(c, KN_ERR_FORMAT, "%s " TOK " is out of range (%lld to %lld)", what, tok, (long long)lo,
                    (long long)hi);
    *out = v;
    return KN_OK;
}

static kn_status get_int32(pctx *c, const char *what, const char *tok, int lo, int hi, int *out)
{
    int64_t v;
    kn_status st = get_int(c, what, tok, lo, hi, &v);
    if (!st)
        *out = (int)v;
    return st;
}

/* A finite real in [lo, hi] (hi_open: [lo, hi)). */
static kn_status get_real(pctx *c, const char *what, const char *tok, double lo, double hi, bool hi_open,
                          double *out)
{
    char *end;
    errno = 0;
    double v = *tok ? strtod(tok, &end) : 0;
    if (!*tok || *end || !isfinite(v) || errno == ERANGE)
        return perr(c, KN_ERR_FORMAT, "%s '" TOK "' is not a number", what, tok);
    if (v < lo || (hi_open ? v >= hi : v > hi))
        return perr(c, KN_ERR_FORMAT, "%s " TOK " is out of range (%g to %g%s)", what, tok, lo, hi,
                    hi_open ? ", exclusive" : "");
    *out = v;
    return KN_OK;
}

static kn_status get_bool(pctx *c, const char *what, const char *tok, bool *out)
{
    if (!strcmp(tok, "1") || !strcmp(tok, "true")) {
        *out = true;
        return KN_OK;
    }
    if (!strcmp(tok, "0") || !strcmp(tok, "false")) {
        *out = false;
        return KN_OK;
    }
    return perr(c, KN_ERR_FORMAT, "%s '" TOK "' must be 0 or 1", what, tok);
}

/* Square "3" or rectangular "3x5" kernels. */
static kn_status get_kernel(pctx *c, const char *tok, bool rect_ok, int *kh, int *kw)
{
    const char *x = strchr(tok, 'x');
    if (x && rect_ok) {
        char a[32];
        size_t n = (size_t)(x - tok);
        if (n == 0 || n >= sizeof a)
            return perr(c, KN_ERR_FORMAT, "KERNEL '" TOK "' is not a whole number or HxW", tok);
        memcpy(a, tok, n);
        a[n] = 0;
        kn_status st = get_int32(c, "KERNEL height", a, 1, 1024, kh);
        return st ? st : get_int32(c, "KERNEL width", x + 1, 1, 1024, kw);
    }
    kn_status st = get_int32(c, "KERNEL", tok, 1, 1024, kh);
    *kw = *kh;
    return st;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > KN_NN_MAX_NAME)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

static int find_layer(const kn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name))
            return i;
    return -1;
}

/* Looks up a name an option or argument refers to; it must be an earlier layer. */
static kn_status get_ref(pctx *c, const char *tok, int *out)
{
    int i = valid_name(tok) ? find_layer(c->m, tok) : -1;
    if (i < 0)
        return perr(c, KN_ERR_FORMAT, "no earlier layer is named '" TOK "'", tok);
    *out = i;
    return KN_OK;
}

/* Whether key is one of the ", " separated words of list. */
static bool in_list(const char *list, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = list; *p;) {
        const char *e = strstr(p, ", ");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, key, n))
            return true;
        if (!e)
            break;
        p = e + 2;
    }
    return false;
}

/* ---- one line ------------------------------------------------------------------------------ */

static kn_status parse_train(pctx *c, char **tok, int ntok)
{
    c->kw = "train";
    if (ntok == 1)
        return perr(c, KN_ERR_FORMAT, "expected key=value settings, e.g. 'train optimizer=adam lr=0.001'");
    for (int i = 1; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i])
            return perr(c, KN_ERR_FORMAT, "'" TOK "' is not a key=value setting", tok[i]);
        *eq = 0;
        kn_error e;
        if (kn_recipe_set(&c->m->recipe, tok[i], eq + 1, &e))
            return perr(c, KN_ERR_FORMAT, "%s", e.msg);
    }
    return KN_OK;
}

/* Says which positional argument is missing. */
static kn_status missing(pctx *c, const char *what)
{
    return perr(c, KN_ERR_FORMAT, "missing %s (usage: %s)", what, defs[c->m->layers[c->m->n_layers].kind].usage);
}

/* Fills L from the positional arguments pos[0..npos-1] (npos is at most the kind's maximum;
 * the ones given are checked before a missing one is reported, so 'conv2d x' is a bad number). */
static kn_status parse_positional(pctx *c, kn__layer *L, char **pos, int npos)
{
    kn_status st = KN_OK;
    switch (L->kind) {
    case KN_L_INPUT: {
        static const char *const what[2][3] = {{"F"}, {"C", "H", "W"}};
        kn_model *m = c->m;
        int dims = npos == 1 ? 1 : 3;
        m->in_ndim = dims;
        int64_t total = 1;
        for (int i = 0; i < npos && !st; i++) {
            st = get_int(c, what[dims == 3][i], pos[i], 1, 1 << 24, &m->in_shape[i]);
            if (!st && total <= ((int64_t)1 << 28))
                total *= m->in_shape[i]; /* ≤ 2^28 · 2^24: no overflow; stops growing past the limit */
        }
        if (st)
            return st;
        if (npos == 0)
            return missing(c, "the example shape");
        if (npos == 2)
            return perr(c, KN_ERR_FORMAT, "expected 'input C H W' (images) or 'input F' (features), got 2 numbers");
        if (total > ((int64_t)1 << 28))
            return perr(c, KN_ERR_FORMAT, "an example of %lld values is larger than the limit of 2^28",
                        (long long)total);
        return KN_OK;
    }
    case KN_L_CONV2D:
        if (npos < 1)
            return missing(c, "FILTERS and KERNEL");
        if ((st = get_int(c, "FILTERS", pos[0], 1, 65536, &L->units)))
            return st;
        if (npos < 2)
            return missing(c, "KERNEL");
        return get_kernel(c, pos[1], true, &L->kh, &L->kw);
    case KN_L_DENSE:
        return npos < 1 ? missing(c, "UNITS") : get_int(c, "UNITS", pos[0], 1, 1 << 24, &L->units);
    case KN_L_LEAKY_RELU:
        return npos ? get_real(c, "SLOPE", pos[0], 0, 1, false, &L->f) : KN_OK;
    case KN_L_MAXPOOL:
    case KN_L_AVGPOOL:
        return npos < 1 ? missing(c, "KERNEL") : get_kernel(c, pos[0], false, &L->kh, &L->kw);
    case KN_L_DROPOUT:
        return npos < 1 ? missing(c, "P") : get_real(c, "P", pos[0], 0, 1, true, &L->f);
    case KN_L_ADD:
        return npos < 1 ? missing(c, "NAME") : get_ref(c, pos[0], &L->other);
    default:
        return KN_OK;
    }
}

static kn_status parse_option(pctx *c, kn__layer *L, const char *key, const char *val)
{
    if (!strcmp(key, "name")) {
        if (!valid_name(val))
            return perr(c, KN_ERR_FORMAT,
                        "name '" TOK "' is not valid: use 1 to %d letters, digits, '_' or '-', starting with a letter "
                        "or '_'",
                        val, KN_NN_MAX_NAME);
        int prev = find_layer(c->m, val);
        if (prev >= 0)
            return perr(c, KN_ERR_FORMAT, "name '%s' is already used by the layer on line %d", val,
                        c->m->layers[prev].line);
        strcpy(L->name, val);
        L->named = true;
        return KN_OK;
    }
    if (!strcmp(key, "from")) {
        L->explicit_from = true;
        return get_ref(c, val, &L->from);
    }
    if (!strcmp(key, "bias"))
        return get_bool(c, "bias", val, &L->bias);
    if (!strcmp(key, "stride"))
        return get_int32(c, "stride", val, 1, 1024, &L->stride);
    if (!strcmp(key, "pad")) {
        if (L->kind == KN_L_CONV2D && !strcmp(val, "same")) {
            L->pad_same = true;
            return KN_OK;
        }
        return get_int32(c, "pad", val, 0, 1024, &L->pad);
    }
    if (!strcmp(key, "dilation"))
        return get_int32(c, "dilation", val, 1, 1024, &L->dilation);
    if (!strcmp(key, "groups"))
        return get_int32(c, "groups", val, 1, 65536, &L->groups);
    if (!strcmp(key, "momentum"))
        return get_real(c, "momentum", val, 0, 1, false, &L->f);
    if (!strcmp(key, "eps")) {
        kn_status st = get_real(c, "eps", val, 0, 1, false, &L->eps);
        if (!st && L->eps <= 0)
            return perr(c, KN_ERR_FORMAT, "eps " TOK " must be > 0", val);
        return st;
    }
    return perr(c, KN_ERR_FORMAT, "option '" TOK "' unknown (%s)", key, defs[L->kind].options);
}

/* Cross-argument rules, once every option of the line is known. */
static kn_status check_layer(pctx *c, const kn__layer *L)
{
    switch (L->kind) {
    case KN_L_CONV2D:
        if (L->units % L->groups)
            return perr(c, KN_ERR_FORMAT, "groups %d must divide FILTERS %lld", L->groups, (long long)L->units);
        if (L->pad_same && (L->stride != 1 || L->kh % 2 == 0 || L->kw % 2 == 0))
            return perr(c, KN_ERR_FORMAT, "pad=same needs an odd kernel and stride 1 (kernel %dx%d, stride %d)",
                        L->kh, L->kw, L->stride);
        return KN_OK;
    case KN_L_MAXPOOL:
    case KN_L_AVGPOOL:
        if (L->pad > L->kh / 2)
            return perr(c, KN_ERR_FORMAT, "pad %d is more than half of KERNEL %d", L->pad, L->kh);
        return KN_OK;
    default:
        return KN_OK;
    }
}

/* Name of an unnamed layer: <prefix><k>, k counting the layers of its kind so far. */
static kn_status auto_name(pctx *c, kn__layer *L)
{
    const kn_model *m = c->m;
    if (L->kind == KN_L_INPUT) {
        strcpy(L->name, "input");
    } else {
        int k = 1;
        for (int i = 0; i < m->n_layers; i++)
            k += m->layers[i].kind == L->kind;
        snprintf(L->name, sizeof L->name, "%s%d", defs[L->kind].prefix, k);
    }
    int prev = find_layer(m, L->name);
    if (prev >= 0)
        return perr(c, KN_ERR_FORMAT, "its automatic name '%s' is already used by the layer on line %d; give it "
                    "another with name=", L->name, m->layers[prev].line);
    return KN_OK;
}

static kn_status parse_layer(pctx *c, char **tok, int ntok)
{
    kn_model *m = c->m;
    int kind = -1;
    for (int k = 0; k < KN_L_COUNT; k++)
        if (!strcmp(tok[0], defs[k].keyword) || (defs[k].alias && !strcmp(tok[0], defs[k].alias)))
            kind = k;
    if (kind < 0)
        return perr(c, KN_ERR_FORMAT, "unknown layer '" TOK "' (known: " KNOWN_LAYERS ")", tok[0]);
    const layer_def *d = &defs[kind];
    c->kw = d->keyword;
    if (kind == KN_L_INPUT && m->n_layers > 0)
        return perr(c, KN_ERR_FORMAT, "'input' must be the first layer (the model already has %d layer%s, from "
                    "line %d)", m->n_layers, m->n_layers == 1 ? "" : "s", m->layers[0].line);
    if (kind != KN_L_INPUT && m->n_layers == 0)
        return perr(c, KN_ERR_FORMAT, "'input' must be the first layer: start with 'input C H W' (images) or "
                    "'input F' (features)");
    if (m->n_layers == KN_NN_MAX_LAYERS)
        return perr(c, KN_ERR_FORMAT, "more than %d layers", KN_NN_MAX_LAYERS);

    kn__layer *L = &m->layers[m->n_layers];
    memset(L, 0, sizeof *L);
    L->kind = (kn__layer_kind)kind;
    L->line = c->line;
    L->from = m->n_layers - 1;
    L->other = -1;
    L->stride = kind == KN_L_CONV2D ? 1 : 0;
    L->dilation = L->groups = 1;
    L->bias = true;
    L->f = kind == KN_L_LEAKY_RELU ? 0.01 : kind == KN_L_BATCHNORM ? 0.1 : 0.0;
    L->eps = 1e-5;

    int npos = 0;
    while (1 + npos < ntok && !strchr(tok[1 + npos], '='))
        npos++;
    if (npos > d->max_pos)
        return perr(c, KN_ERR_FORMAT, "unexpected argument '" TOK "' (usage: %s)", tok[1 + d->max_pos], d->usage);
    for (int i = 1 + npos; i < ntok; i++)
        if (!strchr(tok[i], '='))
            return perr(c, KN_ERR_FORMAT, "argument '" TOK "' after the key=value options (usage: %s)", tok[i],
                        d->usage);
    kn_status st = parse_positional(c, L, tok + 1, npos);
    if (st)
        return st;
    for (int i = 1 + npos; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        *eq = 0;
        const char *key = tok[i], *val = eq + 1;
        if (!*key)
            return perr(c, KN_ERR_FORMAT, "'=" TOK "' has no key", val);
        if (!in_list(d->options, key)) {
            if (!*d->options)
                return perr(c, KN_ERR_FORMAT, "option '" TOK "' unknown (%s takes no options)", key, d->keyword);
            return perr(c, KN_ERR_FORMAT, "option '" TOK "' unknown (%s)", key, d->options);
        }
        for (int j = 1 + npos; j < i; j++)
            if (!strcmp(tok[j], key))
                return perr(c, KN_ERR_FORMAT, "option '%s' given twice", key);
        if (!*val)
            return perr(c, KN_ERR_FORMAT, "option '%s' has no value", key);
        if ((st = parse_option(c, L, key, val)))
            return st;
    }
    if ((st = check_layer(c, L)))
        return st;
    if (!L->named && (st = auto_name(c, L)))
        return st;
    m->n_layers++;
    return KN_OK;
}

/* Splits line (modified in place) into words and parses them. */
static kn_status parse_line(pctx *c, char *line)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    char *tok[KN_NN_MAX_TOKENS];
    int ntok = 0;
    for (char *p = line;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
            p++;
        if (!*p)
            break;
        if (ntok == KN_NN_MAX_TOKENS)
            return perr(c, KN_ERR_FORMAT, "more than %d words on one line", KN_NN_MAX_TOKENS);
        tok[ntok++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f')
            p++;
        if (*p)
            *p++ = 0;
    }
    if (ntok == 0)
        return KN_OK;
    if (!strcmp(tok[0], "train"))
        return parse_train(c, tok, ntok);
    return parse_layer(c, tok, ntok);
}

/* ---- the model ----------------------------------------------------------------------------- */

void kn_model_free(kn_model *m)
{
    if (!m)
        return;
    kn__free(m->text);
    kn__free(m->source);
    kn__free(m->layers);
    kn__free(m);
}

/* Builds the model once on a batch of 1 in a scratch graph: finds the layers that do not fit
 * (with their line) and records shapes, parameter counts and FLOPs per layer. */
static kn_status probe(kn_model *m, kn_error *err)
{
    kn_graph *g = kn_graph_new();
    if (!g)
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory for the scratch graph", m->source);
    int64_t shape[4] = {1, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1 + m->in_ndim, shape);
    kn_status st;
    if (!x) {
        st = kn_error_set(err, kn_graph_status(g), "%s:%d: input: %s", m->source, m->layers[0].line,
                          kn_graph_error(g));
    } else {
        kn_node *y = kn__model_build(m, g, x, true, m, NULL, err);
        st = y ? KN_OK : (err ? err->status : KN_ERR_SHAPE);
        if (!y && st == KN_OK) /* err was NULL */
            st = kn_graph_status(g) ? kn_graph_status(g) : KN_ERR_SHAPE;
    }
    kn_graph_free(g);
    return st;
}

kn_status kn_model_parse(kn_model **out, const char *text, const char *source, kn_error *err)
{
    if (out)
        *out = NULL;
    if (!out || !text)
        return kn_error_set(err, KN_ERR_ARG, "kn_model_parse: NULL %s", !out ? "out" : "text");
    if (!source)
        source = "<model>";
    kn_model *m = kn__calloc(1, sizeof *m);
    if (m) {
        m->text = kn__strdup(text);
        m->source = kn__strdup(source);
        m->layers = kn__calloc(KN_NN_MAX_LAYERS, sizeof *m->layers);
    }
    if (!m || !m->text || !m->source || !m->layers) {
        kn_model_free(m);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory parsing the model", source);
    }
    kn_recipe_defaults(&m->recipe);

    kn_error local;
    if (!err) /* messages are built even when nobody reads them; keep it simple */
        err = &local;
    pctx c = {.m = m, .src = m->source, .err = err};
    char buf[KN_NN_MAX_LINE + 1];
    kn_status st = KN_OK;
    const char *p = text;
    int line = 0;
    while (*p && !st) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        line++;
        c.line = line;
        c.kw = NULL;
        size_t clen = len;
        if (clen && p[clen - 1] == '\r')
            clen--;
        if (clen > KN_NN_MAX_LINE) {
            st = perr(&c, KN_ERR_FORMAT, "line is %zu characters long, the limit is %d", clen, KN_NN_MAX_LINE);
            break;
        }
        memcpy(buf, p, clen);
        buf[clen] = 0;
        st = parse_line(&c, buf);
        p = e ? e + 1 : p + len;
    }
    if (!st) {
        c.line = line > 0 ? line : 1;
        c.kw = NULL;
        if (m->n_layers == 0)
            st = perr(&c, KN_ERR_FORMAT, "no layers: a model starts with 'input C H W' (images) or 'input F' "
                      "(features) followed by its layers");
        else if (m->n_layers == 1)
            st = perr(&c, KN_ERR_FORMAT, "the model has only its input line; add layers ending in the logits "
                      "(e.g. 'dense 10')");
    }
    if (!st)
        st = probe(m, err);
    if (st) {
        kn_model_free(m);
        return st;
    }
    kn__layer *shrunk = kn__realloc(m->layers, KN_NN_MAX_LAYERS * sizeof *m->layers,
                                    (size_t)m->n_layers * sizeof *m->layers);
    if (shrunk) /* keeping the larger block is fine */
        m->layers = shrunk;
    *out = m;
    return KN_OK;
}

kn_status kn_model_load(kn_model **out, const char *path, kn_error *err)
{
    if (out)
        *out = NULL;
    if (!out || !path)
        return kn_error_set(err, KN_ERR_ARG, "kn_model_load: NULL %s", !out ? "out" : "path");
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "unknown error");
    char *buf = kn__alloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory reading the model", path);
    }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    kn_status st = KN_OK;
    if (bad)
        st = kn_error_set(err, KN_ERR_IO, "%s: read failed", path);
    else if (n > MAX_FILE_BYTES)
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: larger than %u bytes; not a model description", path,
                          MAX_FILE_BYTES);
    else if (memchr(buf, 0, n))
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: contains a NUL byte at offset %zu; not a text file", path,
                          (size_t)((char *)memchr(buf, 0, n) - buf));
    if (!st) {
        buf[n] = 0;
        st = kn_model_parse(out, buf, path, err);
    }
    kn__free(buf);
    return st;
}

const char *kn_model_text(const kn_model *m) { return m ? m->text : NULL; }
const kn_recipe *kn_model_recipe(const kn_model *m) { return m ? &m->recipe : NULL; }

int kn_model_input_shape(const kn_model *m, int64_t shape[3])
{
    if (!m)
        return 0;
    for (int i = 0; shape && i < 3; i++)
        shape[i] = i < m->in_ndim ? m->in_shape[i] : 0;
    return m->in_ndim;
}

int kn_model_num_classes(const kn_model *m) { return m ? m->classes : 0; }

int kn_model_num_layers(const kn_model *m) { return m ? m->n_layers : 0; }
