/* alloc.c — the allocation hooks and the helpers built on them. Not thread-safe to change
 * hooks while kiln objects are alive (documented in kiln/core.h). */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/core.h"

static void *default_alloc(size_t bytes, size_t align, void *user)
{
    (void)user;
    size_t rounded = (bytes + align - 1) / align * align;
    return aligned_alloc(align, rounded);
}

static void default_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static kn_alloc_hooks hooks = {default_alloc, default_free, NULL};

void kn_set_alloc_hooks(const kn_alloc_hooks *h)
{
    if (h && h->alloc && h->free)
        hooks = *h;
    else
        hooks = (kn_alloc_hooks){default_alloc, default_free, NULL};
}

size_t kn__mul_size(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return SIZE_MAX;
    return a * b;
}

void *kn__alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - KN_ALIGN)
        return NULL;
    return hooks.alloc(bytes, KN_ALIGN, hooks.user);
}

void *kn__alloc_pages(size_t bytes)
{
    const size_t page = 4096;
    if (bytes == 0 || bytes > SIZE_MAX - page)
        return NULL;
    return hooks.alloc((bytes + page - 1) / page * page, page, hooks.user);
}

void *kn__calloc(size_t count, size_t size)
{
    size_t bytes = kn__mul_size(count, size);
    if (bytes == SIZE_MAX)
        return NULL;
    void *p = kn__alloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *kn__realloc(void *p, size_t old_bytes, size_t new_bytes)
{
    void *q = kn__alloc(new_bytes);
    if (!q)
        return NULL;
    if (p)
        memcpy(q, p, old_bytes < new_bytes ? old_bytes : new_bytes);
    kn__free(p);
    return q;
}

void kn__free(void *p)
{
    if (p)
        hooks.free(p, hooks.user);
}

char *kn__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = kn__alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void kn_free(void *p) { kn__free(p); }
