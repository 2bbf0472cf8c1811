/* alloc.h — kiln's internal allocation entry points. Everything goes through the hooks set
 * with kn_set_alloc_hooks (kiln/core.h), so tests can inject out-of-memory at any call. */
#ifndef KN_CORE_ALLOC_H
#define KN_CORE_ALLOC_H

#include <stddef.h>

#define KN_ALIGN 64

void *kn__alloc(size_t bytes);              /* 64-byte aligned; NULL on failure or 0 bytes */
void *kn__calloc(size_t count, size_t size); /* zeroed; NULL on overflow or failure */
/* Whole pages (4096-byte aligned, size rounded up to pages): memory that shares no page with
 * any other allocation, so it can be pinned (cudaHostRegister) on its own. kn__free frees it. */
void *kn__alloc_pages(size_t bytes);
void *kn__realloc(void *p, size_t old_bytes, size_t new_bytes); /* copies min(old,new) */
void kn__free(void *p);
char *kn__strdup(const char *s);

/* a·b, or SIZE_MAX when it overflows (then allocation fails cleanly). */
size_t kn__mul_size(size_t a, size_t b);

#endif
