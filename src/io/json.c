/* json.c — the strict, bounds-checked JSON reader of json.h (safetensors headers) and the
 * string escaper the checkpoint writer uses. Recursive descent with a depth limit; every
 * read of the input is checked against its length. Not a general JSON library: no floats,
 * no writer beyond string escaping, no streaming. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    kn__json *doc;
    char *msg;
    size_t msg_size;
    kn_status st;
} parser;

__attribute__((format(printf, 3, 4))) static int fail(parser *p, kn_status st, const char *fmt, ...)
{
    if (p->st == KN_OK) {
        p->st = st;
        if (p->msg && p->msg_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->msg, p->msg_size, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* "'x'" for a printable byte, "byte 0xNN" otherwise, for messages. */
static const char *show(unsigned char c, char buf[16])
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int new_node(parser *p, kn__json_type type, size_t off)
{
    kn__json *d = p->doc;
    if (d->n == d->cap) {
        if (d->cap > (1 << 29))
            return fail(p, KN_ERR_FORMAT, "more than %d values", d->cap);
        int cap = d->cap ? 2 * d->cap : 64;
        kn__json_node *q = kn__realloc(d->nodes, (size_t)d->n * sizeof *q, (size_t)cap * sizeof *q);
        if (!q)
            return fail(p, KN_ERR_OOM, "out of memory for %d JSON values", cap);
        d->nodes = q;
        d->cap = cap;
    }
    kn__json_node *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->next = n->child = -1;
    n->off = off;
    return d->n++;
}

/* Length of the well-formed UTF-8 sequence at s (avail bytes readable), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool kn__utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static int hex4(parser *p, size_t at, unsigned *out)
{
    if (at + 4 > p->len)
        return fail(p, KN_ERR_FORMAT, "unterminated \\u escape at byte %zu", at);
    unsigned v = 0;
    for (size_t i = 0; i < 4; i++) {
        unsigned char c = p->s[at + i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fail(p, KN_ERR_FORMAT, "bad hex digit in \\u escape at byte %zu", at + i);
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(unsigned cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses the string starting at the opening quote at p->pos; decodes it into the arena. The
 * arena was sized to the input, which always suffices: a decoded string plus its NUL is never
 * longer than its quoted form. */
static int parse_string(parser *p, const char **out, size_t *out_len, size_t *raw_off, size_t *raw_len)
{
    kn__json *d = p->doc;
    size_t start = p->pos;
    p->pos++; /* opening quote */
    char *o = d->strings + d->strings_len;
    size_t k = 0;
    char sb[16];
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, KN_ERR_FORMAT, "unterminated string starting at byte %zu", start);
        unsigned char c = p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, KN_ERR_FORMAT, "control character %s inside a string at byte %zu (escape it)",
                        show(c, sb), p->pos);
        if (c == '\\') {
            if (p->pos + 1 >= p->len)
                return fail(p, KN_ERR_FORMAT, "unterminated string starting at byte %zu", start);
            unsigned char e = p->s[p->pos + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                o[k++] = map[simple - "\"\\/bfnrt"];
                p->pos += 2;
                continue;
            }
            if (e != 'u')
                return fail(p, KN_ERR_FORMAT, "invalid escape \\%c at byte %zu", e >= 0x20 && e < 0x7f ? e : '?',
                            p->pos);
            unsigned cp;
            if (hex4(p, p->pos + 2, &cp))
                return -1;
            size_t at = p->pos;
            p->pos += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(p, KN_ERR_FORMAT, "lone low surrogate \\u%04x at byte %zu", cp, at);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return fail(p, KN_ERR_FORMAT, "high surrogate \\u%04x without a low one at byte %zu", cp, at);
                if (hex4(p, p->pos + 2, &lo))
                    return -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(p, KN_ERR_FORMAT, "high surrogate \\u%04x without a low one at byte %zu", cp, at);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p->pos += 6;
            }
            if (cp == 0)
                return fail(p, KN_ERR_FORMAT, "\\u0000 (NUL) in a string at byte %zu is not supported", at);
            k += utf8_put(cp, o + k);
            continue;
        }
        size_t n = utf8_seq(p->s + p->pos, p->len - p->pos);
        if (!n)
            return fail(p, KN_ERR_FORMAT, "invalid UTF-8 at byte %zu", p->pos);
        memcpy(o + k, p->s + p->pos, n);
        k += n;
        p->pos += n;
    }
    o[k] = '\0';
    *out = o;
    *out_len = k;
    *raw_off = start + 1;
    *raw_len = p->pos - start - 1;
    d->strings_len += k + 1;
    p->pos++; /* closing quote */
    return 0;
}

static int parse_int(parser *p, int64_t *out)
{
    size_t start = p->pos;
    bool neg = false;
    if (p->s[p->pos] == '-') {
        neg = true;
        p->pos++;
    }
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return fail(p, KN_ERR_FORMAT, "invalid number at byte %zu", start);
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
        return fail(p, KN_ERR_FORMAT, "number with a leading zero at byte %zu", start);
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned dgt = p->s[p->pos] - '0';
        if (v > (limit - dgt) / 10)
            return fail(p, KN_ERR_FORMAT, "integer at byte %zu does not fit in 64 bits", start);
        v = v * 10 + dgt;
        p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
        return fail(p, KN_ERR_FORMAT, "number with a fraction or exponent at byte %zu: only integers are supported",
                    start);
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_value(parser *p, int depth);

/* Parses the members of an object or array whose opening bracket is at p->pos. */
static int parse_container(parser *p, int depth, bool object)
{
    char close = object ? '}' : ']';
    int self = new_node(p, object ? KN__JSON_OBJECT : KN__JSON_ARRAY, p->pos);
    if (self < 0)
        return -1;
    if (depth >= KN__JSON_MAX_DEPTH)
        return fail(p, KN_ERR_FORMAT, "values nested deeper than %d levels at byte %zu", KN__JSON_MAX_DEPTH, p->pos);
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return self;
    }
    int last = -1;
    char sb[16];
    for (;;) {
        const char *key = NULL;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len)
                return fail(p, KN_ERR_FORMAT, "unexpected end inside an object");
            if (p->s[p->pos] != '"')
                return fail(p, KN_ERR_FORMAT, "expected a string key, found %s at byte %zu", show(p->s[p->pos], sb),
                            p->pos);
            size_t kl, ro, rl;
            if (parse_string(p, &key, &kl, &ro, &rl))
                return -1;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, KN_ERR_FORMAT, "expected ':' after the key \"%.64s\" at byte %zu", key, p->pos);
            p->pos++;
        }
        int child = parse_value(p, depth + 1);
        if (child < 0)
            return -1;
        kn__json_node *nodes = p->doc->nodes;
        nodes[child].key = key;
        if (last < 0)
            nodes[self].child = child;
        else
            nodes[last].next = child;
        last = child;
        nodes[self].count++;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail(p, KN_ERR_FORMAT, "unexpected end inside an %s", object ? "object" : "array");
        unsigned char c = p->s[p->pos];
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == (unsigned char)close) {
            p->pos++;
            return self;
        }
        return fail(p, KN_ERR_FORMAT, "expected ',' or '%c', found %s at byte %zu", close, show(c, sb), p->pos);
    }
}

static int parse_value(parser *p, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, KN_ERR_FORMAT, "unexpected end of input, expected a value");
    unsigned char c = p->s[p->pos];
    size_t at = p->pos;
    if (c == '{' || c == '[')
        return parse_container(p, depth, c == '{');
    if (c == '"') {
        int i = new_node(p, KN__JSON_STRING, at);
        if (i < 0)
            return -1;
        const char *s;
        size_t l, ro, rl;
        if (parse_string(p, &s, &l, &ro, &rl))
            return -1;
        kn__json_node *n = &p->doc->nodes[i];
        n->str = s;
        n->str_len = l;
        n->raw_off = ro;
        n->raw_len = rl;
        return i;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        int64_t v = 0;
        if (parse_int(p, &v))
            return -1;
        int i = new_node(p, KN__JSON_INT, at);
        if (i >= 0)
            p->doc->nodes[i].ival = v;
        return i;
    }
    static const struct { const char *word; kn__json_type type; int v; } lits[] = {
        {"true", KN__JSON_BOOL, 1}, {"false", KN__JSON_BOOL, 0}, {"null", KN__JSON_NULL, 0}};
    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        size_t wl = strlen(lits[k].word);
        if (p->len - p->pos >= wl && memcmp(p->s + p->pos, lits[k].word, wl) == 0) {
            p->pos += wl;
            int i = new_node(p, lits[k].type, at);
            if (i >= 0)
                p->doc->nodes[i].ival = lits[k].v;
            return i;
        }
    }
    char sb[16];
    return fail(p, KN_ERR_FORMAT, "unexpected %s at byte %zu, expected a value", show(c, sb), at);
}

typedef struct keyref {
    const char *key;
    size_t off;
} keyref;

static int cmp_key(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->off < y->off ? -1 : x->off > y->off);
}

/* Rejects duplicate keys in any object: sort each object's keys, compare neighbours. */
static int check_duplicates(parser *p)
{
    kn__json *d = p->doc;
    int maxc = 0;
    for (int i = 0; i < d->n; i++)
        if (d->nodes[i].type == KN__JSON_OBJECT && d->nodes[i].count > maxc)
            maxc = d->nodes[i].count;
    if (maxc < 2)
        return 0;
    keyref *keys = kn__alloc((size_t)maxc * sizeof *keys);
    if (!keys)
        return fail(p, KN_ERR_OOM, "out of memory checking %d object keys", maxc);
    int rc = 0;
    for (int i = 0; i < d->n && rc == 0; i++) {
        const kn__json_node *o = &d->nodes[i];
        if (o->type != KN__JSON_OBJECT || o->count < 2)
            continue;
        int k = 0;
        for (int c = o->child; c >= 0; c = d->nodes[c].next)
            keys[k++] = (keyref){d->nodes[c].key, d->nodes[c].off};
        qsort(keys, (size_t)k, sizeof *keys, cmp_key);
        for (int j = 1; j < k; j++)
            if (strcmp(keys[j].key, keys[j - 1].key) == 0) {
                rc = fail(p, KN_ERR_FORMAT, "duplicate key \"%.200s\" (values at bytes %zu and %zu)", keys[j].key,
                          keys[j - 1].off, keys[j].off);
                break;
            }
    }
    kn__free(keys);
    return rc;
}

void kn__json_free(kn__json *doc)
{
    if (!doc)
        return;
    kn__free(doc->nodes);
    kn__free(doc->strings);
    memset(doc, 0, sizeof *doc);
}

kn_status kn__json_parse(kn__json *doc, const char *buf, size_t len, char *msg, size_t msg_size)
{
    memset(doc, 0, sizeof *doc);
    if (msg && msg_size)
        msg[0] = '\0';
    parser p = {(const unsigned char *)buf, len, 0, doc, msg, msg_size, KN_OK};
    if (!buf && len) {
        fail(&p, KN_ERR_FORMAT, "no input");
        return p.st;
    }
    doc->strings_cap = len + 1;
    doc->strings = kn__alloc(doc->strings_cap);
    if (!doc->strings) {
        fail(&p, KN_ERR_OOM, "out of memory for %zu bytes of JSON strings", len + 1);
        return p.st;
    }
    int root = parse_value(&p, 0);
    if (root >= 0) {
        skip_ws(&p);
        if (p.pos != p.len) {
            char sb[16];
            fail(&p, KN_ERR_FORMAT, "unexpected %s at byte %zu after the end of the JSON value", show(p.s[p.pos], sb),
                 p.pos);
        }
    }
    if (p.st == KN_OK)
        check_duplicates(&p);
    if (p.st != KN_OK) {
        kn__json_free(doc);
        return p.st;
    }
    return KN_OK;
}

const kn__json_node *kn__json_child(const kn__json *doc, const kn__json_node *n)
{
    return (n && n->child >= 0) ? &doc->nodes[n->child] : NULL;
}

const kn__json_node *kn__json_next(const kn__json *doc, const kn__json_node *n)
{
    return (n && n->next >= 0) ? &doc->nodes[n->next] : NULL;
}

const kn__json_node *kn__json_get(const kn__json *doc, const kn__json_node *obj, const char *key)
{
    if (!obj || obj->type != KN__JSON_OBJECT)
        return NULL;
    for (const kn__json_node *c = kn__json_child(doc, obj); c; c = kn__json_next(doc, c))
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

size_t kn__json_escape(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
#define PUT(ch)            \
    do {                   \
        if (out)           \
            out[k] = (ch); \
        k++;               \
    } while (0)
    PUT('"');
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        unsigned char c = *u;
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: break;
        }
        if (e) {
            PUT(e[0]);
            PUT(e[1]);
        } else if (c < 0x20) {
            PUT('\\');
            PUT('u');
            PUT('0');
            PUT('0');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        } else
            PUT((char)c);
    }
    PUT('"');
#undef PUT
    return k;
}
