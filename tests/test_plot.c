/* test_plot.c — kn__plot_png (src/train/plot.c): the curves.png charts. Renders loss and
 * accuracy panels (train and validation each) for 5 epochs, 1 epoch, and series with NaNs,
 * no points, a single value and all-equal values; every file must start with the PNG
 * signature, decode with libpng to the requested size, and show pixels of each series'
 * exact colour inside its own panel (and none in the other). Also: dashed lines cover less
 * than solid ones, a missing directory is KN_ERR_IO, bad arguments are KN_ERR_ARG, and
 * failing every allocation in turn gives KN_ERR_OOM without leaks. Not here: how the chart
 * looks (checked by eye) and the trainer writing curves.png (the trainer tests). */
#define _GNU_SOURCE /* mkdtemp */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "train/report.h"
#include "util.h"

#define W 1200
#define H 500
#define BLUE 0x1f77b4u
#define ORANGE 0xff7f0eu
#define GREEN 0x2ca02cu
#define RED 0xd62728u

static char dir[64];
static char paths[16][128];
static int n_paths;

static const char *out_path(const char *name)
{
    snprintf(paths[n_paths], sizeof paths[n_paths], "%s/%s", dir, name);
    return paths[n_paths++];
}

static int has_png_signature(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(b, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(b, sig, 8) == 0;
}

/* RGB pixels of a PNG file (malloc'ed), or NULL. */
static unsigned char *decode(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        return NULL;
    im.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(im));
    if (!buf || !png_image_finish_read(&im, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&im);
        return NULL;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return buf;
}

/* Pixels of exactly colour rgb in columns [x0, x1). */
static long count_colour(const unsigned char *px, int w, int h, int x0, int x1, uint32_t rgb)
{
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = x0; x < x1; x++) {
            const unsigned char *p = px + ((size_t)y * w + x) * 3;
            n += p[0] == (rgb >> 16 & 0xff) && p[1] == (rgb >> 8 & 0xff) && p[2] == (rgb & 0xff);
        }
    return n;
}

/* Decodes path, checks its size, and returns the count of rgb pixels in panel i of n. */
static long panel_colour(const char *path, int w, int h, int i, int n, uint32_t rgb)
{
    int dw = 0, dh = 0;
    unsigned char *px = decode(path, &dw, &dh);
    CHECK(px != NULL, "%s does not decode as a PNG", path);
    if (!px)
        return -1;
    CHECK(dw == w && dh == h, "%s is %dx%d, expected %dx%d", path, dw, dh, w, h);
    long c = (dw == w && dh == h) ? count_colour(px, w, h, w * i / n, w * (i + 1) / n, rgb) : -1;
    free(px);
    return c;
}

typedef struct curves {
    double x[8], train_loss[8], val_loss[8], train_acc[8], val_acc[8];
    kn__plot_series loss[2], acc[2];
    kn__plot_panel panels[2];
} curves;

static void make_curves(curves *c, int epochs)
{
    for (int i = 0; i < epochs; i++) {
        c->x[i] = i + 1;
        c->train_loss[i] = 2.0 * exp(-0.5 * i) + 0.1;
        c->val_loss[i] = 1.8 * exp(-0.4 * i) + 0.25;
        c->train_acc[i] = 0.95 - 0.6 * exp(-0.6 * i);
        c->val_acc[i] = 0.9 - 0.55 * exp(-0.5 * i);
    }
    c->loss[0] = (kn__plot_series){"train", c->x, c->train_loss, epochs, BLUE, false};
    c->loss[1] = (kn__plot_series){"validation", c->x, c->val_loss, epochs, ORANGE, true};
    c->acc[0] = (kn__plot_series){"train", c->x, c->train_acc, epochs, GREEN, false};
    c->acc[1] = (kn__plot_series){"validation", c->x, c->val_acc, epochs, RED, true};
    c->panels[0] = (kn__plot_panel){"Loss", "epoch", "cross-entropy", c->loss, 2};
    c->panels[1] = (kn__plot_panel){"Accuracy", "epoch", "accuracy", c->acc, 2};
}

/* Each series' colour shows in its own panel (at least `min` pixels), never in the other. */
static void check_colours(const char *path, long min)
{
    static const uint32_t colours[2][2] = {{BLUE, ORANGE}, {GREEN, RED}};
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 2; s++) {
            long here = panel_colour(path, W, H, p, 2, colours[p][s]);
            long there = panel_colour(path, W, H, 1 - p, 2, colours[p][s]);
            CHECK(here >= min, "%s: panel %d series %d: %ld pixels of #%06x, expected >= %ld", path, p, s, here,
                  (unsigned)colours[p][s], min);
            CHECK(there == 0, "%s: colour #%06x of panel %d leaks into panel %d (%ld pixels)", path,
                  (unsigned)colours[p][s], p, 1 - p, there);
        }
}

static void test_five_epochs(void)
{
    curves c;
    make_curves(&c, 5);
    const char *path = out_path("five.png");
    kn_error err = {0};
    CHECK_OK(kn__plot_png(path, c.panels, 2, W, H, &err));
    CHECK(has_png_signature(path), "%s lacks the PNG signature", path);
    /* a 2-px line across a ~500-px plot is far more than a legend swatch and a dot */
    check_colours(path, 400);

    /* without labels there is no legend: the colours come from the curves alone */
    for (int s = 0; s < 2; s++)
        c.loss[s].label = c.acc[s].label = NULL;
    const char *bare = out_path("bare.png");
    CHECK_OK(kn__plot_png(bare, c.panels, 2, W, H, &err));
    check_colours(bare, 300);

    /* rewriting a file replaces it */
    make_curves(&c, 5);
    CHECK_OK(kn__plot_png(path, c.panels, 2, W, H, &err));
    check_colours(path, 400);
}

static void test_one_epoch(void)
{
    curves c;
    make_curves(&c, 1);
    const char *path = out_path("one.png");
    kn_error err = {0};
    CHECK_OK(kn__plot_png(path, c.panels, 2, W, H, &err));
    CHECK(has_png_signature(path), "%s lacks the PNG signature", path);
    check_colours(path, 20); /* a dot per series, plus the legend */
}

static void test_nan_and_degenerate(void)
{
    curves c;
    make_curves(&c, 6);
    c.val_loss[1] = NAN;
    c.val_loss[4] = NAN;
    c.train_acc[0] = NAN;
    c.val_acc[5] = INFINITY;
    const char *path = out_path("nan.png");
    kn_error err = {0};
    CHECK_OK(kn__plot_png(path, c.panels, 2, W, H, &err));
    check_colours(path, 300);

    /* one panel holding an all-NaN series, an empty one, one point, and a flat line; a
     * second panel with no series at all and no text */
    double x[4] = {1, 2, 3, 4}, nan4[4] = {NAN, NAN, NAN, NAN}, flat[4] = {0.5, 0.5, 0.5, 0.5}, one[1] = {0.7};
    kn__plot_series odd[4] = {{"all NaN", x, nan4, 4, RED, false},
                              {"empty", NULL, NULL, 0, GREEN, true},
                              {"one point", x, one, 1, ORANGE, false},
                              {"flat", x, flat, 4, BLUE, true}};
    kn__plot_panel panels[2] = {{"Odd cases", "step", "value", odd, 4}, {NULL, NULL, NULL, NULL, 0}};
    const char *odd_path = out_path("odd.png");
    CHECK_OK(kn__plot_png(odd_path, panels, 2, 800, 300, &err));
    CHECK(panel_colour(odd_path, 800, 300, 0, 2, BLUE) > 100, "flat series not drawn");
    CHECK(panel_colour(odd_path, 800, 300, 0, 2, ORANGE) > 10, "single point not drawn");
    CHECK(panel_colour(odd_path, 800, 300, 1, 2, BLUE) == 0, "empty panel has curve pixels");

    /* only NaN points everywhere, a tiny image and a single panel still render */
    kn__plot_panel nan_panel = {"NaN", "x", "y", odd, 1};
    const char *tiny = out_path("tiny.png");
    CHECK_OK(kn__plot_png(tiny, &nan_panel, 1, 16, 16, &err));
    CHECK(panel_colour(tiny, 16, 16, 0, 1, RED) == 0, "an all-NaN series drew something");

    /* values far apart in magnitude: huge, tiny, negative */
    double big[3] = {1e12, 3e12, -2e12}, small[3] = {1e-9, 2e-9, 1.5e-9};
    kn__plot_series mag[2] = {{"big", x, big, 3, BLUE, false}, {"small", x, small, 3, RED, false}};
    kn__plot_panel mag_panels[2] = {{"big", "x", "y", &mag[0], 1}, {"small", "x", "y", &mag[1], 1}};
    const char *mag_path = out_path("magnitude.png");
    CHECK_OK(kn__plot_png(mag_path, mag_panels, 2, 640, 240, &err));
    CHECK(panel_colour(mag_path, 640, 240, 1, 2, RED) > 100, "tiny values not drawn");
}

static void test_dashed(void)
{
    double x[2] = {0, 1}, y[2] = {0, 1};
    kn__plot_series solid = {NULL, x, y, 2, BLUE, false}, dashed = {NULL, x, y, 2, BLUE, true};
    kn__plot_panel panels[2] = {{"solid", NULL, NULL, &solid, 1}, {"dashed", NULL, NULL, &dashed, 1}};
    const char *path = out_path("dashed.png");
    kn_error err = {0};
    CHECK_OK(kn__plot_png(path, panels, 2, W, H, &err));
    long s = panel_colour(path, W, H, 0, 2, BLUE), d = panel_colour(path, W, H, 1, 2, BLUE);
    CHECK(s > 500 && d > s / 3 && d < s * 4 / 5, "solid %ld pixels, dashed %ld: expected gaps in the dashed line", s,
          d);
}

static void test_errors(void)
{
    curves c;
    make_curves(&c, 5);
    kn_error err = {0};
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/curves.png", dir);
    CHECK(kn__plot_png(bad, c.panels, 2, W, H, &err) == KN_ERR_IO, "missing directory: %s", err.msg);
    CHECK(err.status == KN_ERR_IO && err.msg[0], "no message for a missing directory");
    CHECK(access(bad, F_OK) != 0, "a file appeared in a missing directory");

    const char *path = out_path("never.png");
    CHECK(kn__plot_png(NULL, c.panels, 2, W, H, &err) == KN_ERR_ARG, "NULL path");
    CHECK(kn__plot_png(path, NULL, 2, W, H, &err) == KN_ERR_ARG, "NULL panels");
    CHECK(kn__plot_png(path, c.panels, 0, W, H, &err) == KN_ERR_ARG, "no panels");
    CHECK(kn__plot_png(path, c.panels, 2, 0, H, &err) == KN_ERR_ARG, "zero width");
    CHECK(kn__plot_png(path, c.panels, 2, W, -5, &err) == KN_ERR_ARG, "negative height");
    CHECK(kn__plot_png(path, c.panels, 2, 100000, H, &err) == KN_ERR_ARG, "huge width");
    c.acc[1].n = -1;
    CHECK(kn__plot_png(path, c.panels, 2, W, H, &err) == KN_ERR_ARG, "negative point count");
    c.acc[1].n = 5;
    c.acc[1].y = NULL;
    CHECK(kn__plot_png(path, c.panels, 2, W, H, &err) == KN_ERR_ARG, "NULL y");
    CHECK(strstr(err.msg, "validation") != NULL, "message does not name the series: %s", err.msg);
    c.panels[1].series = NULL;
    CHECK(kn__plot_png(path, c.panels, 2, W, H, &err) == KN_ERR_ARG, "NULL series array");
    CHECK(kn__plot_png(path, c.panels, 2, W, H, NULL) == KN_ERR_ARG, "NULL err is allowed");
    CHECK(access(path, F_OK) != 0, "a rejected call wrote %s", path);
}

static void test_oom(void)
{
    curves c;
    make_curves(&c, 5);
    const char *path = out_path("oom.png");
    kn_status st = KN_ERR_OOM;
    long n;
    for (n = 1; n < 200 && st != KN_OK; n++) {
        kn_error err = {0};
        kt_oom_install(n);
        st = kn__plot_png(path, c.panels, 2, 600, 250, &err);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "allocation %ld failed: %s (%s)", n, kn_status_name(st), err.msg);
        CHECK(live == 0, "allocation %ld failed: %ld blocks leaked", n, live);
    }
    CHECK(st == KN_OK, "still failing after %ld injected failures", n);
    CHECK(panel_colour(path, 600, 250, 0, 2, BLUE) > 100, "the chart written after OOM retries is wrong");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kiln_test_plot_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_five_epochs();
    test_one_epoch();
    test_nan_and_degenerate();
    test_dashed();
    test_errors();
    test_oom();
    for (int i = 0; i < n_paths; i++)
        unlink(paths[i]);
    /* an empty directory also proves no temporary files were left behind */
    CHECK(rmdir(dir) == 0, "%s not empty after removing the charts", dir);
    return kt_finish("test_plot");
}
