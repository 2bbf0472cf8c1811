/* fuzz_json.c — libFuzzer harness for kiln's strict JSON reader (src/io/json.c, the parser of
 * safetensors headers), fed directly from memory so it runs far faster than through a file.
 * A failure must be KN_ERR_FORMAT or KN_ERR_OOM with a message; a success is walked whole,
 * checking that every node link stays inside the node array and every string inside the
 * input's bounds. Internal API: this harness includes src/io/json.h. */
#include "fuzz_common.h"
#include "io/json.h"

static void walk(const kn__json *doc, const kn__json_node *n, int depth, size_t len)
{
    if (depth > KN__JSON_MAX_DEPTH + 1 || n < doc->nodes || n >= doc->nodes + doc->n)
        abort();
    if (n->type == KN__JSON_STRING && (!n->str || strlen(n->str) != n->str_len || n->raw_off + n->raw_len > len))
        abort();
    if (n->type == KN__JSON_ARRAY || n->type == KN__JSON_OBJECT) {
        int count = 0;
        for (const kn__json_node *c = kn__json_child(doc, n); c; c = kn__json_next(doc, c)) {
            if (n->type == KN__JSON_OBJECT && (!c->key || kn__json_get(doc, n, c->key) != c))
                abort(); /* keys are unique, so lookup finds this very member */
            walk(doc, c, depth + 1, len);
            count++;
        }
        if (count != n->count)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    kn__json doc = {0};
    char msg[512] = "";
    kn_status st = kn__json_parse(&doc, buf, size, msg, sizeof msg);
    if (st == KN_OK) {
        if (doc.n < 1)
            abort();
        walk(&doc, &doc.nodes[0], 0, size);
    } else if ((st != KN_ERR_FORMAT && st != KN_ERR_OOM) || !msg[0]) {
        fprintf(stderr, "kiln fuzz: JSON parse returned %s with message \"%s\"\n", kn_status_name(st), msg);
        abort();
    }
    kn__json_free(&doc);
    free(buf);
    return 0;
}
