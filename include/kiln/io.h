/* kiln/io.h — checkpoints as safetensors files, and small file helpers.
 *
 * A checkpoint holds every parameter of a graph (trainable weights and frozen state: batch-
 * norm running statistics, optimizer moments) under its node name, plus string metadata
 * (model description, epoch, step, schedule position, RNG state, ...) in the safetensors
 * "__metadata__" object, so other tools read the weights as usual. kiln adds the key
 * "kiln.crc32": a CRC-32 of the whole file computed with that value's 8 hex digits set to
 * '0', verified on load.
 *
 * Writes are atomic: the file is written as PATH.tmp.<pid>, fsync'ed, renamed over PATH and
 * the directory fsync'ed; on any failure the temporary file is removed and PATH is left as it
 * was. */
#ifndef KILN_IO_H
#define KILN_IO_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KN_META_MAX 64

/* String metadata: up to KN_META_MAX key/value pairs (keys ≤ 63 bytes). */
typedef struct kn_meta {
    int n;
    char *keys[KN_META_MAX];
    char *values[KN_META_MAX];
} kn_meta;

/* Sets (replacing) a key; copies both strings. KN_ERR_ARG when full or the key is too long. */
kn_status kn_meta_set(kn_meta *m, const char *key, const char *value);
const char *kn_meta_get(const kn_meta *m, const char *key); /* NULL if absent */
void kn_meta_clear(kn_meta *m);                            /* frees the strings */

/* Saves every named parameter of g (all params must have unique, non-empty names). */
kn_status kn_checkpoint_save(kn_graph *g, const char *path, const kn_meta *meta, kn_error *err);

/* Loads into g's parameters: the file's checksum must match (KN_ERR_FORMAT "checksum
 * mismatch: the file is corrupted"), and every parameter of g must be present with the same
 * dtype and shape (KN_ERR_SHAPE naming the tensor: "checkpoint of a different model?").
 * Tensors in the file that g lacks are an error too unless allow_extra. Parameters are only
 * written once the whole file has been validated. meta (may be NULL) receives the metadata. */
kn_status kn_checkpoint_load(kn_graph *g, const char *path, bool allow_extra, kn_meta *meta, kn_error *err);

/* Reads only the metadata of a checkpoint (checksum verified). */
kn_status kn_checkpoint_read_meta(const char *path, kn_meta *meta, kn_error *err);

/* Writes data to path atomically (temporary file, fsync, rename). */
kn_status kn_write_file_atomic(const char *path, const void *data, size_t size, kn_error *err);
/* Reads a whole file (≤ max_size bytes) into memory freed with kn_free. */
kn_status kn_read_file(const char *path, size_t max_size, void **data, size_t *size, kn_error *err);

#ifdef __cplusplus
}
#endif
#endif
