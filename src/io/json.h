/* json.h — a small, strict, bounds-checked JSON reader, enough for safetensors headers.
 *
 * It parses a whole buffer (not NUL-terminated; never read past `len`) into a flat array of
 * nodes: objects, arrays, strings (escapes decoded to UTF-8, NUL-terminated) and integers,
 * plus true/false/null. It is strict: UTF-8 is validated, control characters in strings,
 * lone surrogates, "\u0000", leading zeros, duplicate object keys and trailing non-space
 * bytes are errors; nesting is limited to KN__JSON_MAX_DEPTH. It deliberately is not a
 * general JSON library: numbers with a fraction or exponent are refused (safetensors headers
 * hold only integers), and there is no writer (the checkpoint writer escapes strings itself
 * with kn__json_escape). Memory: the decoded strings take at most the input's size, the nodes
 * up to ~72 bytes per input byte in the worst case ("[0,0,0,...]"), so callers bound the input
 * (safetensors headers: 100 MB). Not thread-hostile: no global state. */
#ifndef KN_IO_JSON_H
#define KN_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/core.h"

#define KN__JSON_MAX_DEPTH 64

typedef enum kn__json_type {
    KN__JSON_NULL,
    KN__JSON_BOOL,
    KN__JSON_INT,
    KN__JSON_STRING,
    KN__JSON_ARRAY,
    KN__JSON_OBJECT,
} kn__json_type;

/* One value. Children of an array/object are linked through `next` (-1 ends the list). For
 * a member of an object, `key` is its decoded key. Indices refer to kn__json.nodes. */
typedef struct kn__json_node {
    kn__json_type type;
    int next;          /* next sibling, -1 if none */
    int child;         /* first child (array/object), -1 if none */
    int count;         /* number of children (array/object) */
    int64_t ival;      /* INT value; BOOL: 0 or 1 */
    const char *str;   /* STRING: decoded, NUL-terminated (no embedded NUL) */
    size_t str_len;    /* STRING: decoded length in bytes */
    size_t raw_off;    /* STRING: offset of the first byte after the opening quote in the input */
    size_t raw_len;    /* STRING: bytes between the quotes in the input (escapes undecoded) */
    const char *key;   /* member of an object: its key (decoded); NULL otherwise */
    size_t off;        /* offset of the value's first byte in the input */
} kn__json_node;

typedef struct kn__json {
    kn__json_node *nodes; /* nodes[0] is the root */
    int n, cap;
    char *strings;        /* arena of decoded strings */
    size_t strings_len, strings_cap;
} kn__json;

/* Parses buf[0..len) as exactly one JSON value surrounded by optional whitespace. On failure
 * returns KN_ERR_FORMAT (or KN_ERR_OOM) and writes a message such as "expected ':' after an
 * object key at byte 17" into msg (no file name: the caller adds that); doc is then empty.
 * Free with kn__json_free in either case. */
kn_status kn__json_parse(kn__json *doc, const char *buf, size_t len, char *msg, size_t msg_size);
void kn__json_free(kn__json *doc);

/* The member `key` of object node `obj` (linear search), or NULL. */
const kn__json_node *kn__json_get(const kn__json *doc, const kn__json_node *obj, const char *key);
/* The node after `n` in its parent, or NULL. */
const kn__json_node *kn__json_next(const kn__json *doc, const kn__json_node *n);
/* The first child of an array/object, or NULL. */
const kn__json_node *kn__json_child(const kn__json *doc, const kn__json_node *n);

/* Writes s as a JSON string literal (with quotes) into out; returns the number of bytes it
 * needs (call with out = NULL to size it). Bytes ≥ 0x80 are copied as they are (the caller
 * validates UTF-8 with kn__utf8_valid). */
size_t kn__json_escape(const char *s, char *out);
/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool kn__utf8_valid(const char *s, size_t len);

#endif
