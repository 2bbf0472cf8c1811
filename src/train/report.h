/* report.h — what a training run shows and writes: the progress line, metrics.csv,
 * curves.png, summary.json, and the recipe/history strings kept in checkpoints. */
#ifndef KN_TRAIN_REPORT_H
#define KN_TRAIN_REPORT_H

#include "kiln/train.h"

typedef struct kn__progress {
    bool on, tty;
    double last_draw;
} kn__progress;

void kn__progress_init(kn__progress *p, bool on);
/* Redraws the in-place line (terminal only, at most ~4 times a second). */
void kn__progress_step(kn__progress *p, int epoch, int epochs, int64_t batch, int64_t batches, double loss, double acc,
                       double images_per_s, double elapsed);
/* One line per finished epoch (always, terminal or not): steps, loss, accuracy, images/s,
 * epoch time and the estimated time left for the remaining epochs. */
void kn__progress_epoch(kn__progress *p, const kn_epoch_log *l, int epochs, int64_t batches, double eta);

/* Rewrites DIR/metrics.csv and DIR/curves.png from the logs (atomically). */
kn_status kn__write_epoch_outputs(const char *dir, const kn_epoch_log *logs, int n, kn_error *err);
/* Writes DIR/summary.json. */
kn_status kn__write_summary(const char *dir, const kn_train_result *res, const kn_epoch_log *logs, int n,
                            const kn_eval_result *test, kn_error *err);

/* "key=value ..." of a recipe, and the epoch history as text (one epoch per line), for
 * checkpoint metadata; both allocated with kn__alloc. */
kn_status kn__recipe_string(const kn_recipe *r, char **out);
kn_status kn__history_string(const kn_epoch_log *logs, int n, char **out);
kn_status kn__history_parse(const char *s, kn_epoch_log **logs, int *n, int *cap);

/* plot.c: line charts rendered into a PNG (a built-in bitmap font labels axes and legend). */
typedef struct kn__plot_series {
    const char *label;
    const double *x, *y; /* n points; NaN y values are skipped */
    int n;
    uint32_t rgb;        /* 0xRRGGBB */
    bool dashed;
} kn__plot_series;

typedef struct kn__plot_panel {
    const char *title, *xlabel, *ylabel;
    const kn__plot_series *series;
    int n_series;
} kn__plot_panel;

/* Renders the panels side by side into a width×height RGB image and writes it as a PNG
 * atomically (kn_write_file_atomic). */
kn_status kn__plot_png(const char *path, const kn__plot_panel *panels, int n_panels, int width, int height,
                       kn_error *err);

#endif
