/* test_cli.c — the `kiln` command line end to end on a tiny IDX data set written here:
 * train → eval (--json) → predict → info → distill → eval side by side (table and --json),
 * then bad inputs, each answered with a clear
 * error and a non-zero exit (never a crash): truncated IDX, label count ≠ image count,
 * missing data directory, unknown layer (line named), shape mismatch, corrupted checkpoint
 * byte, resuming with a different model, data that does not fit the model. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#ifndef KILN_BIN
#error "KILN_BIN must name the kiln executable"
#endif

static char tmp[] = "/tmp/kiln_cli_XXXXXX";

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
        int rc_ = kt_run(__VA_ARGS__);                                                                         \
        CHECK(rc_ == 1 || rc_ == 2, "%s: exit %d (expected a clean failure): %s", what, rc_, kt_out);          \
        CHECK(strstr(kt_out, needle) != NULL, "%s: message lacks \"%s\": %s", what, needle, kt_out);              \
    } while (0)

int main(void)
{
    if (!mkdtemp(tmp))
        return 1;
    make_data("good", 100, 0);
    const char *K = KILN_BIN;

    int rc = kt_run("%s train --model mlp --data %s/good --epochs 2 --batch 16 --out %s/run --quiet --threads 2", K, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "test accuracy"), "train: exit %d: %s", rc, kt_out);
    CHECK(strstr(kt_out, "confusion matrix") && strstr(kt_out, "saved:"), "train prints the confusion matrix and outputs");
    const char *files[] = {"model.safetensors", "metrics.csv", "curves.png", "summary.json"};
    for (int i = 0; i < 4; i++) {
        char p[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/run/%s", tmp, files[i]);
        CHECK(stat(p, &sb) == 0 && sb.st_size > 0, "%s written", files[i]);
    }
    rc = kt_run("cat %s/run/summary.json", tmp);
    CHECK(strstr(kt_out, "\"test_accuracy\"") && strstr(kt_out, "\"epochs\": 2") && strstr(kt_out, "\"train_images_per_s\"") &&
              strstr(kt_out, "\"seconds\""),
          "summary.json fields: %s", kt_out);
    rc = kt_run("head -1 %s/run/metrics.csv && wc -l < %s/run/metrics.csv", tmp, tmp);
    CHECK(strstr(kt_out, "train_loss") && strstr(kt_out, "val_accuracy") && strstr(kt_out, "images_per_s") && strstr(kt_out, "\n3"),
          "metrics.csv header and one row per epoch: %s", kt_out);

    rc = kt_run("%s eval --model %s/run/model.safetensors --data %s/good --json", K, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "\"accuracy\"") && strstr(kt_out, "\"loss\""), "eval --json: %s", kt_out);
    rc = kt_run("%s eval --model %s/run/model.safetensors --data %s/good", K, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "confusion matrix"), "eval: %s", kt_out);
    rc = kt_run("%s predict --model %s/run/model.safetensors --data %s/good --index 3 --top 2", K, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "[3]"), "predict: %s", kt_out);
    rc = kt_run("%s info mlp", K);
    CHECK(rc == 0 && strstr(kt_out, "235,146"), "info: %s", kt_out);

    /* resume: continue the finished 2-epoch run to 3 epochs */
    rc = kt_run("%s train --model mlp --data %s/good --epochs 3 --batch 16 --out %s/run --resume %s/run --quiet --threads 2", K,
             tmp, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "test accuracy"), "resume: %s", kt_out);

    /* distillation from the trained run, then both side by side */
    write_text("small.kiln", "input 1 28 28\nflatten\ndense 16\nrelu\ndense 10\n");
    rc = kt_run("%s distill --teacher %s/run --model %s/small.kiln --data %s/good --epochs 1 --batch 16 --alpha 0.5 "
                "--temperature 2 --out %s/dist --quiet --threads 2", K, tmp, tmp, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "test accuracy") && strstr(kt_out, "temperature 2, alpha 0.5"), "distill: %s", kt_out);
    rc = kt_run("%s info %s/dist/model.safetensors", K, tmp);
    CHECK(rc == 0 && strstr(kt_out, "teacher=") && strstr(kt_out, "12,730"), "info of the student: %s", kt_out);
    rc = kt_run("%s eval %s/run %s/dist/model.safetensors --data %s/good --bench-seconds 0 --threads 2", K, tmp, tmp, tmp);
    CHECK(rc == 0 && strstr(kt_out, "accuracy") && strstr(kt_out, "parameters") && strstr(kt_out, "latency b1") &&
              strstr(kt_out, "throughput b64") && strstr(kt_out, "235,146") && strstr(kt_out, "12,730") &&
              !strstr(kt_out, "confusion"),
          "eval side by side: %s", kt_out);
    rc = kt_run("%s eval --model %s/run --model %s/dist --data %s/good --bench-seconds 0 --threads 2 --json", K, tmp, tmp, tmp);
    CHECK(rc == 0 && kt_out[0] == '[' && strstr(kt_out, "\"params\": 235146") && strstr(kt_out, "\"params\": 12730") &&
              strstr(kt_out, "\"latency_ms_batch1\"") && strstr(kt_out, "\"throughput_batch64\"") &&
              strstr(kt_out, "\"file_bytes\"") && strstr(kt_out, "\"flops_per_example\""),
          "eval side by side --json: %s", kt_out);
    EXPECT_FAIL("distill without a teacher", "--teacher", "%s distill --model mlp --data %s/good --quiet", K, tmp);
    EXPECT_FAIL("distill with a bad alpha", "--alpha", "%s distill --teacher %s/run --model mlp --alpha 2", K, tmp);
    write_text("five.kiln", "input 1 28 28\nflatten\ndense 5\n");
    EXPECT_FAIL("distill with other classes", "classes", "%s distill --teacher %s/run --model %s/five.kiln --data %s/good "
                "--epochs 1 --out %s/bad_dist --quiet", K, tmp, tmp, tmp, tmp);
    EXPECT_FAIL("eval side by side, one missing", "nowhere", "%s eval %s/run %s/nowhere.safetensors --data %s/good "
                "--bench-seconds 0", K, tmp, tmp, tmp);

    /* bad inputs */
    make_data("truncated", 100, 500);
    EXPECT_FAIL("truncated IDX", "truncated", "%s train --model mlp --data %s/truncated --epochs 1 --quiet", K, tmp);
    make_data("labels", 99, 0);
    EXPECT_FAIL("label count", "labels", "%s train --model mlp --data %s/labels --epochs 1 --quiet", K, tmp);
    EXPECT_FAIL("missing data", "not", "%s train --model mlp --data %s/nowhere --epochs 1 --quiet", K, tmp);
    write_text("unknown.kiln", "input 1 28 28\nflatten\nconv3d 4 3\ndense 10\n");
    EXPECT_FAIL("unknown layer", ":3", "%s train --model %s/unknown.kiln --data %s/good --quiet", K, tmp, tmp);
    CHECK(strstr(kt_out, "conv3d"), "unknown layer named: %s", kt_out);
    write_text("shape.kiln", "input 1 28 28\nconv2d 4 3\ndense 10\n");
    EXPECT_FAIL("shape mismatch", ":3", "%s train --model %s/shape.kiln --data %s/good --quiet", K, tmp, tmp);
    write_text("rgb.kiln", "input 3 32 32\nflatten\ndense 10\n");
    EXPECT_FAIL("data that does not fit", "shape", "%s train --model %s/rgb.kiln --data %s/good --quiet", K, tmp, tmp);
    EXPECT_FAIL("resume with another model", "different model",
                "%s train --model model_a --data %s/good --epochs 3 --out %s/other --resume %s/run --quiet", K, tmp, tmp, tmp);
    /* flip one byte in the middle of the checkpoint */
    kt_run("cp %s/run/model.safetensors %s/bad.safetensors && printf '\\x55' | dd of=%s/bad.safetensors bs=1 seek=5000 "
        "conv=notrunc status=none",
        tmp, tmp, tmp);
    EXPECT_FAIL("corrupted checkpoint", "checksum", "%s eval --model %s/bad.safetensors --data %s/good", K, tmp, tmp);
    EXPECT_FAIL("unknown option", "unknown option", "%s train --epoch 3", K);
    EXPECT_FAIL("bad number", "not valid", "%s train --epochs many", K);

    kt_run("rm -rf %s", tmp);
    return kt_finish("test_cli");
}
