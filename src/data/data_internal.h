/* data_internal.h — helpers shared by the data set readers (src/data/): allocating a
 * kn_dataset with overflow-checked sizes, naming it, computing its class count. Not part of
 * the public API; tests may use kn__dataset_open_in to point the search at a fake system
 * directory. */
#ifndef KN_DATA_INTERNAL_H
#define KN_DATA_INTERNAL_H

#include "augment.h"
#include "kiln/data.h"

/* A new data set of n examples of `shape` (ndim 1..3) and dtype KN_U8 or KN_F32, with y
 * allocated (zeroed) and x allocated (uninitialised) when alloc_x, else left NULL for the
 * caller to set with a kn__alloc'ed block. `path` names the file in error messages.
 * KN_ERR_FORMAT when the sizes overflow, KN_ERR_OOM when allocation fails. */
kn_status kn__dataset_new(kn_dataset **out, int64_t n, int ndim, const int64_t *shape, kn_dtype dt,
                          bool alloc_x, const char *path, kn_error *err);
/* Sets ds->name from a path's last component (or a given string); truncates safely. */
void kn__dataset_set_name(kn_dataset *ds, const char *name);
/* ds->classes = max(y) + 1, at least min_classes. */
void kn__dataset_set_classes(kn_dataset *ds, int32_t min_classes);
/* The last component of a path ("a/b/c.gz" -> "c.gz"); borrowed from path. */
const char *kn__path_base(const char *path);

/* Fisher–Yates shuffle of a[0..n) driven by kn_rng_uniform(seed, stream, ·): the result
 * depends only on (seed, stream, n). Two 24-bit draws make each index choice 48 bits. */
void kn__shuffle(int64_t *a, int64_t n, uint64_t seed, uint64_t stream);

/* The loader's normalisation, dst[i] = (src[i] · scale − mean) / std (the one place it is
 * computed: the loader's byte lookup table, float examples, padding and the tables a plan
 * gathers from on its own all come from here, so they agree bit for bit). */
void kn__normalise(const float *src, int64_t n, float scale, float mean, float std, float *dst);
/* The same for every byte value (lut[v] for a raw byte v) and for a zero pixel (*pad, the
 * crop's padding): what the loader applies to u8 data sets. */
void kn__normalise_bytes(float scale, float mean, float std, float lut[256], float *pad);

/* kn_dataset_open with the system data directory (normally /usr/share/datasets) replaced. */
kn_status kn__dataset_open_in(const char *spec, const char *system_root, kn_dataset **train, kn_dataset **test,
                              kn_error *err);

#endif
