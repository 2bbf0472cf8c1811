/* recipe.c — the training recipe a model file carries (`train key=value ...` lines): its
 * defaults and the validated setting of one key from text. It only stores and checks values;
 * what they mean for training (optimizer nodes, schedules, augmentation) lives in src/train.
 * Deliberately not here: combinations across keys (those are the trainer's to judge). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

void kn_recipe_defaults(kn_recipe *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    strcpy(r->optimizer, "adam");
    r->lr = 1e-3;
    r->momentum = 0.9;
    r->nesterov = false;
    r->weight_decay = 0.0;
    r->beta1 = 0.9;
    r->beta2 = 0.999;
    r->eps = 1e-8;
    r->batch = 64;
    r->epochs = 5;
    strcpy(r->schedule, "constant");
    r->warmup_epochs = 0.0;
    r->step_size = 30;
    r->gamma = 0.1;
    r->clip_norm = 0.0;
    r->accum = 1;
    r->crop_pad = 0;
    r->hflip = false;
    r->val_split = 0.0;
    r->label_smoothing = 0.0;
}

#define KEYS_HELP                                                                                    \
    "optimizer, lr, momentum, nesterov, weight_decay (wd), beta1, beta2, eps, batch, epochs, schedule, " \
    "warmup, step_size, gamma, clip (clip_norm), accum, crop (crop_pad), flip (hflip), val_split"

/* A finite real written in full (no trailing characters). */
static bool parse_real(const char *s, double *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, long long lo, long long hi, int *out)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == ERANGE || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes")) {
        *out = true;
        return true;
    }
    if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no")) {
        *out = false;
        return true;
    }
    return false;
}

typedef enum { REAL, INT, BOOL, WORD } kind_t;

/* One recipe key: where it goes and the allowed range. Real ranges are [lo, hi] with
 * lo_open making the lower bound exclusive (lr > 0). */
typedef struct key_def {
    const char *key, *alias;
    kind_t kind;
    size_t offset;
    double lo, hi;
    bool lo_open;
    const char *rule;   /* the rule as the message states it */
    const char *words;  /* WORD: the allowed values, '|' separated */
} key_def;

#define F(field) offsetof(kn_recipe, field)
static const key_def keys[] = {
    {"optimizer", NULL, WORD, F(optimizer), 0, 0, false, "one of sgd, adam, adamw", "sgd|adam|adamw"},
    {"lr", NULL, REAL, F(lr), 0, 100, true, "a number > 0 (and <= 100)", NULL},
    {"momentum", NULL, REAL, F(momentum), 0, 1, false, "a number in [0, 1)", NULL},
    {"nesterov", NULL, BOOL, F(nesterov), 0, 0, false, "0 or 1", NULL},
    {"weight_decay", "wd", REAL, F(weight_decay), 0, 1, false, "a number in [0, 1]", NULL},
    {"beta1", NULL, REAL, F(beta1), 0, 1, false, "a number in [0, 1)", NULL},
    {"beta2", NULL, REAL, F(beta2), 0, 1, false, "a number in [0, 1)", NULL},
    {"eps", NULL, REAL, F(eps), 0, 1, true, "a number > 0 (and <= 1)", NULL},
    {"batch", NULL, INT, F(batch), 1, 1 << 20, false, "a whole number from 1 to 1048576", NULL},
    {"epochs", NULL, INT, F(epochs), 1, 1000000, false, "a whole number from 1 to 1000000", NULL},
    {"schedule", NULL, WORD, F(schedule), 0, 0, false, "one of constant, step, cosine", "constant|step|cosine"},
    {"warmup", "warmup_epochs", REAL, F(warmup_epochs), 0, 1000000, false, "a number of epochs >= 0", NULL},
    {"step_size", NULL, INT, F(step_size), 1, 1000000, false, "a whole number of epochs >= 1", NULL},
    {"gamma", NULL, REAL, F(gamma), 0, 1, true, "a number in (0, 1]", NULL},
    {"clip", "clip_norm", REAL, F(clip_norm), 0, 1e12, false, "a number >= 0 (0 = off)", NULL},
    {"accum", NULL, INT, F(accum), 1, 1024, false, "a whole number from 1 to 1024", NULL},
    {"crop", "crop_pad", INT, F(crop_pad), 0, 64, false, "a whole number of pixels from 0 to 64", NULL},
    {"flip", "hflip", BOOL, F(hflip), 0, 0, false, "0 or 1", NULL},
    {"val_split", NULL, REAL, F(val_split), 0, 0.9, false, "a fraction in [0, 0.9]", NULL},
};
#undef F

/* Whether v is inside the key's range; momentum, betas are half-open at 1. */
static bool in_range(const key_def *k, double v)
{
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo))
        return false;
    bool hi_open = !strcmp(k->key, "momentum") || !strcmp(k->key, "beta1") || !strcmp(k->key, "beta2");
    return hi_open ? v < k->hi : v <= k->hi;
}

static bool word_allowed(const char *words, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = words; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

kn_status kn_recipe_set(kn_recipe *r, const char *key, const char *value, kn_error *err)
{
    if (!r || !key || !value)
        return kn_error_set(err, KN_ERR_ARG, "recipe: NULL %s", !r ? "recipe" : !key ? "key" : "value");
    const key_def *k = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].key, key) || (keys[i].alias && !strcmp(keys[i].alias, key)))
            k = &keys[i];
    if (!k)
        return kn_error_set(err, KN_ERR_ARG, "unknown recipe key '%.64s' (known: " KEYS_HELP ")", key);
    char *field = (char *)r + k->offset;
    switch (k->kind) {
    case REAL: {
        double v;
        if (!parse_real(value, &v) || !in_range(k, v))
            break;
        *(double *)field = v;
        return KN_OK;
    }
    case INT: {
        int v;
        if (!parse_int(value, (long long)k->lo, (long long)k->hi, &v))
            break;
        *(int *)field = v;
        return KN_OK;
    }
    case BOOL: {
        bool v;
        if (!parse_bool(value, &v))
            break;
        *(bool *)field = v;
        return KN_OK;
    }
    case WORD:
        if (!word_allowed(k->words, value))
            break;
        /* both WORD fields are char[16] and every allowed word is shorter */
        strcpy(field, value);
        return KN_OK;
    }
    return kn_error_set(err, KN_ERR_ARG, "recipe: %s=%.64s is not valid: %s must be %s", key, value, k->key, k->rule);
}
