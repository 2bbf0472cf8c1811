/* test_cli.c — the `kiln` command line end to end on a tiny IDX data set written here:
 * train → eval (--json) → predict → info, then bad inputs, each answered with a clear
 * error and a non-zero exit (never a crash): truncated IDX, label count ≠ image count,
 * missing data directory, unknown layer (line named), shape mismatch, corrupted checkpoint
 * byte, resuming with a different model, data that does not fit the model. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef KILN_BIN
#error "KILN_BIN must name the kiln executable"
#endif

static char tmp[] = "/tmp/kiln_cli_XXXXXX";
static char out[65536];

/* Runs a shell command; returns its exit status and keeps stdout+stderr in `out`. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* images (and labels) in IDX; n_labels may differ to make a bad set; trunc > 0 cuts bytes */
static void write_idx(const char *dir, const char *prefix, int n, int n_labels, long trunc)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *f = fopen(path, "wb");
    be32(f, 0x803), be32(f, (uint32_t)n), be32(f, 28), be32(f, 28);
    for (long i = 0; i < (long)n * 784 - trunc; i++)
        fputc((int)(kn_rng_uniform(5, (uint64_t)n, (uint64_t)i) * 256), f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    f = fopen(path, "wb");
    be32(f, 0x801), be32(f, (uint32_t)n_labels);
    for (int i = 0; i < n_labels; i++)
        fputc(i % 10, f);
    fclose(f);
}

static void make_data(const char *name, int train_labels, long trunc)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0777);
    write_idx(dir, "train", 100, train_labels, trunc);
    write_idx(dir, "t10k", 20, 20, 0);
}

static void write_text(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

#define EXPECT_FAIL(what, needle, ...)                                                                      \
    do {                                                                                                    \
        int rc_ = run(__VA_ARGS__);                                                                         \
        CHECK(rc_ == 1 || rc_ == 2, "%s: exit %d (expected a clean failure): %s", what, rc_, out);          \
        CHECK(strstr(out, needle) != NULL, "%s: message lacks \"%s\": %s", what, needle, out);              \
    } while (0)

int main(void)
{
    if (!mkdtemp(tmp))
        return 1;
    make_data("good", 100, 0);
    const char *K = KILN_BIN;

    int rc = run("%s train --model mlp --data %s/good --epochs 2 --batch 16 --out %s/run --quiet --threads 2", K, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "test accuracy"), "train: exit %d: %s", rc, out);
    CHECK(strstr(out, "confusion matrix") && strstr(out, "saved:"), "train prints the confusion matrix and outputs");
    const char *files[] = {"model.safetensors", "metrics.csv", "curves.png", "summary.json"};
    for (int i = 0; i < 4; i++) {
        char p[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/run/%s", tmp, files[i]);
        CHECK(stat(p, &sb) == 0 && sb.st_size > 0, "%s written", files[i]);
    }
    rc = run("cat %s/run/summary.json", tmp);
    CHECK(strstr(out, "\"test_accuracy\"") && strstr(out, "\"epochs\": 2") && strstr(out, "\"train_images_per_s\"") &&
              strstr(out, "\"seconds\""),
          "summary.json fields: %s", out);
    rc = run("head -1 %s/run/metrics.csv && wc -l < %s/run/metrics.csv", tmp, tmp);
    CHECK(strstr(out, "train_loss") && strstr(out, "val_accuracy") && strstr(out, "images_per_s") && strstr(out, "\n3"),
          "metrics.csv header and one row per epoch: %s", out);

    rc = run("%s eval --model %s/run/model.safetensors --data %s/good --json", K, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "\"accuracy\"") && strstr(out, "\"loss\""), "eval --json: %s", out);
    rc = run("%s eval --model %s/run/model.safetensors --data %s/good", K, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "confusion matrix"), "eval: %s", out);
    rc = run("%s predict --model %s/run/model.safetensors --data %s/good --index 3 --top 2", K, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "[3]"), "predict: %s", out);
    rc = run("%s info mlp", K);
    CHECK(rc == 0 && strstr(out, "235,146"), "info: %s", out);

    /* resume: continue the finished 2-epoch run to 3 epochs */
    rc = run("%s train --model mlp --data %s/good --epochs 3 --batch 16 --out %s/run --resume %s/run --quiet --threads 2", K,
             tmp, tmp, tmp);
    CHECK(rc == 0 && strstr(out, "test accuracy"), "resume: %s", out);

    /* bad inputs */
    make_data("truncated", 100, 500);
    EXPECT_FAIL("truncated IDX", "truncated", "%s train --model mlp --data %s/truncated --epochs 1 --quiet", K, tmp);
    make_data("labels", 99, 0);
    EXPECT_FAIL("label count", "labels", "%s train --model mlp --data %s/labels --epochs 1 --quiet", K, tmp);
    EXPECT_FAIL("missing data", "not", "%s train --model mlp --data %s/nowhere --epochs 1 --quiet", K, tmp);
    write_text("unknown.kiln", "input 1 28 28\nflatten\nconv3d 4 3\ndense 10\n");
    EXPECT_FAIL("unknown layer", ":3", "%s train --model %s/unknown.kiln --data %s/good --quiet", K, tmp, tmp);
    CHECK(strstr(out, "conv3d"), "unknown layer named: %s", out);
    write_text("shape.kiln", "input 1 28 28\nconv2d 4 3\ndense 10\n");
    EXPECT_FAIL("shape mismatch", ":3", "%s train --model %s/shape.kiln --data %s/good --quiet", K, tmp, tmp);
    write_text("rgb.kiln", "input 3 32 32\nflatten\ndense 10\n");
    EXPECT_FAIL("data that does not fit", "shape", "%s train --model %s/rgb.kiln --data %s/good --quiet", K, tmp, tmp);
    EXPECT_FAIL("resume with another model", "different model",
                "%s train --model model_a --data %s/good --epochs 3 --out %s/other --resume %s/run --quiet", K, tmp, tmp, tmp);
    /* flip one byte in the middle of the checkpoint */
    run("cp %s/run/model.safetensors %s/bad.safetensors && printf '\\x55' | dd of=%s/bad.safetensors bs=1 seek=5000 "
        "conv=notrunc status=none",
        tmp, tmp, tmp);
    EXPECT_FAIL("corrupted checkpoint", "checksum", "%s eval --model %s/bad.safetensors --data %s/good", K, tmp, tmp);
    EXPECT_FAIL("unknown option", "unknown option", "%s train --epoch 3", K);
    EXPECT_FAIL("bad number", "not valid", "%s train --epochs many", K);

    run("rm -rf %s", tmp);
    return kt_finish("test_cli");
}
