/* kiln/io.h — checkpoints as safetensors files, and small file helpers.
 *
 * A checkpoint holds every parameter of a graph (trainable weights and frozen state: batch-
 * norm running statistics, optimizer moments) under its node name, plus string metadata
 * (model description, epoch, step, schedule position, RNG state, ...) in the safetensors
 * "__metadata__" object, so other tools read the weights as usual. kiln adds two keys:
 * "kiln.version" and "kiln.crc32", a CRC-32 (zlib) of the whole file computed with that
 * value's 8 lowercase hex digits set to '0', verified on load. Files without kiln.crc32
 * (written by other tools) are loaded unverified, but still fully validated; a file with
 * kiln.* keys and no checksum is refused as damaged. Data is little-endian (big-endian hosts
 * get KN_ERR_UNSUPPORTED); tensors follow each other in node order after a header padded with
 * spaces to a multiple of 8 bytes.
 *
 * Writes are atomic: the file is written as PATH.tmp.<pid>, fsync'ed, renamed over PATH and
 * the directory fsync'ed; on any failure (KN_ERR_IO with the system's reason and the path)
 * the temporary file is removed and PATH is left as it was. A process killed while saving
 * leaves PATH intact and may leave PATH.tmp.<pid> behind (safe to delete). Saving the same
 * PATH from two threads of one process at once is not supported. */
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

/* Sets (replacing) a key; copies both strings. KN_ERR_ARG when full, the key is longer than
 * 63 bytes or an argument is NULL; KN_ERR_OOM. Start from a zeroed kn_meta (kn_meta m = {0}). */
kn_status kn_meta_set(kn_meta *m, const char *key, const char *value);
const char *kn_meta_get(const kn_meta *m, const char *key); /* NULL if absent */
void kn_meta_clear(kn_meta *m);                            /* frees the strings */

/* Saves every parameter of g, in node order, with meta's pairs (may be NULL; keys and values
 * must be UTF-8, and the reserved kiln.crc32/kiln.version entries are replaced). Fails with
 * KN_ERR_ARG naming the parameter when one is unnamed or two share a name, KN_ERR_IO (see
 * above), KN_ERR_OOM. */
kn_status kn_checkpoint_save(kn_graph *g, const char *path, const kn_meta *meta, kn_error *err);

/* Loads into g's parameters. The whole file is validated first: header length (at most
 * 100 MB), JSON, checksum (KN_ERR_FORMAT "checksum mismatch: the file is corrupted or
 * truncated"), every entry (dtype, shape, offsets tiling the data exactly); KN_ERR_FORMAT for
 * a damaged file, KN_ERR_UNSUPPORTED for valid safetensors kiln cannot hold (BOOL, > 8 dims).
 * Then every parameter of g must be present with the same dtype (else KN_ERR_DTYPE) and shape
 * (else KN_ERR_SHAPE naming the tensor: "checkpoint of a different model?"). Tensors in the
 * file that g lacks are an error too (KN_ERR_SHAPE) unless allow_extra. Parameters are only
 * written once all of this passed: on any error g is unchanged. meta (may be NULL) receives
 * the metadata without kiln.crc32, replacing what it held (free with kn_meta_clear); it is
 * unchanged on error. A file with more than KN_META_MAX metadata entries or longer keys loads
 * only with meta = NULL (else KN_ERR_UNSUPPORTED). */
kn_status kn_checkpoint_load(kn_graph *g, const char *path, bool allow_extra, kn_meta *meta, kn_error *err);

/* Save and load leaving out the parameters whose names start with skip_prefix (NULL: none):
 * they are not written, not required in the file and left unchanged by the load; e.g. a
 * distillation teacher ("teacher.") held in the student's training graph. A file tensor with
 * such a name counts as extra (see allow_extra). Otherwise as kn_checkpoint_save/load. */
kn_status kn_checkpoint_save_ex(kn_graph *g, const char *path, const kn_meta *meta, const char *skip_prefix,
                                kn_error *err);
kn_status kn_checkpoint_load_ex(kn_graph *g, const char *path, bool allow_extra, const char *skip_prefix, kn_meta *meta,
                                kn_error *err);

/* Reads only the metadata of a checkpoint, as load would hand it out; the checksum and the
 * entries are verified (the data is streamed, not kept in memory). meta as for load. */
kn_status kn_checkpoint_read_meta(const char *path, kn_meta *meta, kn_error *err);

/* Writes data to path atomically (temporary file, fsync, rename, directory fsync); failures
 * as described at the top. */
kn_status kn_write_file_atomic(const char *path, const void *data, size_t size, kn_error *err);
/* Reads a whole file (≤ max_size bytes; pipes and procfs files too) into memory freed with
 * kn_free, followed by a NUL byte not counted in *size (so text can be used as a string).
 * KN_ERR_IO when it cannot be opened or read (or is a directory), KN_ERR_FORMAT when it is
 * larger than max_size, KN_ERR_OOM. *data is NULL and *size 0 on error. */
kn_status kn_read_file(const char *path, size_t max_size, void **data, size_t *size, kn_error *err);

/* mkdir -p: creates dir and its missing parents (mode 0777 & umask). 0, or -1 with errno set
 * (ENOTDIR when a component exists and is not a directory, ENAMETOOLONG past 4095 bytes). */
int kn_make_dirs(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
