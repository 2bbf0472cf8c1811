/* kiln/data.h — data sets and the batch loader.
 *
 * A kn_dataset holds n labelled examples in memory: inputs as u8 (images, 0..255) or f32
 * (features), each of a fixed shape (e.g. [1,28,28], [3,32,32], [F]), and i32 labels.
 * Readers validate magic numbers, sizes and counts before using them and fail with a
 * kn_error naming the file and what is wrong (KN_ERR_IO: cannot open/read; KN_ERR_FORMAT:
 * malformed; KN_ERR_OOM).
 *
 * The loader turns a data set (or a subset of its indices) into float32 batches: seeded
 * shuffling per epoch, normalisation, augmentation (random crop with padding, horizontal
 * flip), and a background thread that prepares the next batch while the caller computes. */
#ifndef KILN_DATA_H
#define KILN_DATA_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_dataset {
    int64_t n;                 /* number of examples */
    int ndim;                  /* dims of one example (1..3) */
    int64_t shape[3];          /* e.g. {1, 28, 28} (C, H, W) or {F} */
    kn_dtype dtype;            /* KN_U8 or KN_F32 */
    void *x;                   /* n · prod(shape) elements, example-major */
    int32_t *y;                /* n labels in [0, classes) */
    int32_t classes;
    char name[64];             /* "fashion-mnist/train", ... */
} kn_dataset;

int64_t kn_dataset_example_size(const kn_dataset *ds); /* prod(shape) */
void kn_dataset_free(kn_dataset *ds);                  /* NULL is a no-op */

/* IDX files (MNIST family), plain or gzip-compressed (detected by content). Images become
 * u8 [1, rows, cols]; classes = max label + 1 (at least 10). */
kn_status kn_dataset_load_idx(kn_dataset **out, const char *images_path, const char *labels_path, kn_error *err);
/* CIFAR-10 (label byte + 3072 bytes) or CIFAR-100 (coarse, fine, 3072; fine labels used)
 * binary batch files, concatenated. Images become u8 [3, 32, 32]. */
kn_status kn_dataset_load_cifar(kn_dataset **out, const char *const *paths, int n_paths, bool cifar100,
                                kn_error *err);
/* NumPy .npy: x of any numeric dtype with shape [n, ...] (up to 3 example dims; stored as f32,
 * or u8 when it is u8), y of an integer dtype with shape [n]. */
kn_status kn_dataset_load_npy(kn_dataset **out, const char *x_path, const char *y_path, kn_error *err);
/* CSV of numbers, one example per line; label_column (negative counts from the end) holds the
 * integer class; a first line that is not numeric is taken as a header. */
kn_status kn_dataset_load_csv(kn_dataset **out, const char *path, int label_column, kn_error *err);

/* Opens a data set by name or directory: "fashion-mnist" (searched in $KILN_DATA/fashion-mnist,
 * then /usr/share/datasets/fashion-mnist, where the Debian package dataset-fashion-mnist puts
 * it), "mnist", "cifar-10", "cifar-100" (likewise), or a directory holding the four
 * MNIST-named IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; plain or .gz), CIFAR binary batches
 * (data_batch_1..5.bin + test_batch.bin, or train.bin + test.bin for CIFAR-100, also inside
 * the tarballs' cifar-10-batches-bin/ or cifar-100-binary/), x_train.npy + y_train.npy +
 * x_test.npy + y_test.npy, or train.csv + test.csv (label in the last column). Names are
 * "<set>/train" and "<set>/test". test may be NULL (the test split is then not read). A
 * missing data set fails with KN_ERR_IO saying how to install it or where to put it. Free
 * both with kn_dataset_free. */
kn_status kn_dataset_open(const char *spec, kn_dataset **train, kn_dataset **test, kn_error *err);

/* ---- loader ------------------------------------------------------------------------------ */
typedef struct kn_loader kn_loader;

typedef struct kn_loader_opts {
    int batch;           /* examples per batch (> 0) */
    bool shuffle;        /* reshuffle every epoch (seeded by seed and epoch) */
    bool drop_last;      /* skip the last partial batch instead of returning it short */
    uint64_t seed;
    float scale;         /* x = (raw · scale − mean) / std; u8 images: scale = 1/255; 0 means 1 */
    float mean, std;     /* std 0 means 1 */
    int crop_pad;        /* > 0: pad by this many zero pixels and crop randomly back (augmentation) */
    bool hflip;          /* random horizontal flip, probability 0.5 (augmentation) */
                         /* crop and flip need image examples ([C,H,W] or [H,W]); their random
                          * numbers depend only on (seed, epoch, position in the epoch) */
    bool background;     /* prepare the next batch on a background thread */
    bool rows_only;      /* batches carry the examples' rows, positions and labels but no x: for
                          * a plan that gathers and augments them itself (kn_graph_load_batch) */
} kn_loader_opts;

typedef struct kn_batch {
    const float *x;      /* [n, shape...] float32 (NULL with rows_only), borrowed until the next kn_loader_next or
                          * kn_loader_start_epoch (the loader owns two buffers, reused) */
    const int32_t *y;    /* [n] */
    int64_t n;           /* examples in this batch (≤ batch; < batch only for a last partial one) */
    int64_t index;       /* batch number within the epoch */
    const int64_t *rows; /* [n] the data set rows of the batch's examples (borrowed like x) */
    int64_t first;       /* position in the epoch of example 0 (example i is at first + i) */
    int epoch;           /* the epoch (augmentation draws depend on epoch and position) */
} kn_batch;

/* A loader over ds (borrowed: keep it alive) restricted to indices[0..n_indices) (NULL: all
 * examples; indices are copied). Fails with KN_ERR_ARG (bad options), KN_ERR_RANGE (an index
 * outside ds) or KN_ERR_OOM. All buffers are allocated here, none per batch. If the
 * background thread cannot be started, batches are made in the foreground (same results). */
kn_status kn_loader_new(kn_loader **out, const kn_dataset *ds, const int64_t *indices, int64_t n_indices,
                        const kn_loader_opts *opts, kn_error *err);
void kn_loader_free(kn_loader *l); /* stops the background thread; NULL is a no-op */
/* Starts epoch `epoch` (0-based): the order depends only on (seed, epoch). May be called
 * mid-epoch (the rest of the old epoch is dropped). KN_ERR_ARG for NULL or epoch < 0. */
kn_status kn_loader_start_epoch(kn_loader *l, int epoch);
/* The next batch of the epoch; false at the end of the epoch. Before the first
 * kn_loader_start_epoch, epoch 0 is started implicitly. */
bool kn_loader_next(kn_loader *l, kn_batch *b);
int64_t kn_loader_num_batches(const kn_loader *l); /* batches per epoch */
int64_t kn_loader_size(const kn_loader *l);        /* examples per epoch (without the dropped tail) */

/* Splits 0..n-1 into a shuffled training part (n - val indices) and the last `val` examples
 * of the shuffled order as validation (deterministic for a seed). Free both arrays with
 * kn_free. KN_ERR_ARG unless 0 <= val <= n; KN_ERR_OOM. */
kn_status kn_split_indices(int64_t n, int64_t val, uint64_t seed, int64_t **train_idx, int64_t **val_idx);

#ifdef __cplusplus
}
#endif
#endif
