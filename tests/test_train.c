/* test_train.c — the training loop end to end on a small synthetic data set: loss goes down
 * and accuracy up; train k steps, stop, resume, train to K gives weights and optimizer state
 * bit-identical to an uninterrupted run (with dropout, batch norm, a partial last batch and
 * a schedule); resident data trains bit-identically to staged batches; resuming with another
 * model is refused; run outputs exist. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/io.h"
#include "kiln/train.h"
#include "util.h"

static const char *MODEL =
    "# small CNN with batch norm and dropout for 8x8 images\n"
    "input 1 8 8\n"
    "conv2d 4 3 pad=1\n"
    "batchnorm\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "dropout 0.2\n"
    "dense 3\n"
    "train optimizer=adamw lr=0.01 batch=16 epochs=3 schedule=cosine warmup=0.5 weight_decay=0.01\n";

/* Reads a checkpoint's tensors' raw bytes by loading it into a graph built like training. */
static void *file_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *d = malloc(*size);
    if (fread(d, 1, *size, f) != *size) {
        free(d);
        d = NULL;
    }
    fclose(f);
    return d;
}

/* Safetensors data section after the 8-byte length and the JSON header. */
static const unsigned char *data_section(const unsigned char *file, size_t size, size_t *len)
{
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--)
        h = h << 8 | file[i];
    *len = size - 8 - h;
    return file + 8 + h;
}

int main(void)
{
    char dir[] = "/tmp/kiln_train_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    char full[512], part[512], other[512];
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    snprintf(other, sizeof other, "%s/other", dir);

    kn_dataset *train = kt_lines_dataset(200, 1, 8), *test = kt_lines_dataset(60, 2, 8); /* 200 = 12 batches of 16 + 8 */
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, MODEL, "test model", &err));
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return kt_finish("test_train");
    }
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.threads = 2;
    o.seed = 7;

    /* uninterrupted run */
    o.out_dir = full;
    kn_train_result res;
    kn_status st = kn_train(m, train, test, &o, &res, &err);
    CHECK(st == KN_OK, "training failed: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.epochs_done == 3 && res.steps == 3 * 13, "epochs %d steps %lld", res.epochs_done, (long long)res.steps);
        CHECK(res.n_logs == 3 && res.logs[2].train_loss < res.logs[0].train_loss, "loss decreases: %g -> %g",
              res.logs[0].train_loss, res.logs[2].train_loss);
        CHECK(res.test.accuracy > 0.8, "test accuracy %g", res.test.accuracy);
        kn_train_result_free(&res);
    }
    const char *outputs[] = {"model.safetensors", "metrics.csv", "curves.png", "summary.json"};
    for (int i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", full, outputs[i]);
        struct stat sb;
        CHECK(stat(p, &sb) == 0 && sb.st_size > 0, "%s exists", p);
    }

    /* interrupted after 17 steps (inside epoch 2), then resumed to the end */
    o.out_dir = part;
    o.stop_after_steps = 17;
    st = kn_train(m, train, test, &o, &res, &err);
    CHECK(st == KN_OK && res.stopped && res.steps == 17, "stopped run: %s (steps %lld)", err.msg, (long long)res.steps);
    if (st == KN_OK)
        kn_train_result_free(&res);
    o.stop_after_steps = 0;
    o.resume = part;
    st = kn_train(m, train, test, &o, &res, &err);
    CHECK(st == KN_OK && !res.stopped && res.steps == 39, "resumed run: %s", err.msg);
    if (st == KN_OK)
        kn_train_result_free(&res);

    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/model.safetensors", full);
    snprintf(pb, sizeof pb, "%s/model.safetensors", part);
    size_t sa = 0, sb = 0, la = 0, lb = 0;
    unsigned char *fa = file_bytes(pa, &sa), *fb = file_bytes(pb, &sb);
    CHECK(fa && fb, "both checkpoints readable");
    if (fa && fb) {
        const unsigned char *da = data_section(fa, sa, &la), *db = data_section(fb, sb, &lb);
        CHECK(la == lb && memcmp(da, db, la) == 0,
              "weights, optimizer state and batch-norm statistics are bit-identical after resume (%zu vs %zu bytes)", la,
              lb);
    }
    free(fa);
    free(fb);

    /* resident data (the training set inside the plans, gathered and augmented by load_batch)
     * trains bit-identically to batches staged from the host: byte and float data sets, with
     * crop and flip, a short last batch (two plans) and a stop/resume in the middle */
    for (int f32 = 0; f32 < 2; f32++) {
        kn_dataset *ds = train, conv = *train;
        float *xf = NULL;
        if (f32) { /* the same pixels as floats in 0..255 */
            int64_t count = train->n * kn_dataset_example_size(train);
            xf = malloc(sizeof(float) * (size_t)count);
            for (int64_t i = 0; i < count; i++)
                xf[i] = (float)((const uint8_t *)train->x)[i];
            conv.dtype = KN_F32;
            conv.x = xf;
            ds = &conv;
        }
        char staged[600], resident[600];
        snprintf(staged, sizeof staged, "%s/staged%d", dir, f32);
        snprintf(resident, sizeof resident, "%s/resident%d", dir, f32);
        kn_train_opts a = o;
        a.resume = NULL;
        a.recipe.epochs = 2;
        a.recipe.crop_pad = 1;
        a.recipe.hflip = true;
        a.progress = false;
        a.out_dir = staged;
        CHECK_OK(kn_train(m, ds, NULL, &a, NULL, &err));
        a.out_dir = resident;
        a.resident_data = true;
        a.stop_after_steps = 9;
        CHECK_OK(kn_train(m, ds, NULL, &a, NULL, &err));
        a.stop_after_steps = 0;
        a.resume = resident;
        CHECK_OK(kn_train(m, ds, NULL, &a, NULL, &err));
        snprintf(pa, sizeof pa, "%s/model.safetensors", staged);
        snprintf(pb, sizeof pb, "%s/model.safetensors", resident);
        fa = file_bytes(pa, &sa), fb = file_bytes(pb, &sb);
        CHECK(fa && fb, "both checkpoints readable");
        if (fa && fb) {
            const unsigned char *da = data_section(fa, sa, &la), *db = data_section(fb, sb, &lb);
            CHECK(la == lb && memcmp(da, db, la) == 0, "%s data: resident and staged training differ",
                  f32 ? "float" : "byte");
        }
        free(fa);
        free(fb);
        free(xf);
    }

    /* resuming with a different model is refused with a clear message */
    kn_model *m2 = NULL;
    CHECK_OK(kn_model_parse(&m2, "input 1 8 8\nflatten\ndense 3\n", "other model", &err));
    o.resume = full;
    o.out_dir = other;
    st = kn_train(m2, train, test, &o, &res, &err);
    CHECK(st != KN_OK, "resume with another model must fail");
    CHECK(strstr(err.msg, "different model") || strstr(err.msg, "model"), "message: %s", err.msg);

    /* gradient clipping: one SGD step of lr 1 moves the weights by exactly the clip norm */
    {
        kn_model *lin = NULL;
        CHECK_OK(kn_model_parse(&lin, "input 1 8 8\nflatten\ndense 3 bias=0\n", "linear", &err));
        kn_train_opts c;
        kn_train_opts_defaults(&c);
        kn_recipe_set(&c.recipe, "optimizer", "sgd", NULL);
        c.recipe.momentum = 0;
        c.recipe.lr = 1;
        c.recipe.clip_norm = 0.01;
        c.recipe.batch = 200;
        c.recipe.epochs = 1;
        c.out_dir = other;
        c.resume = NULL;
        c.threads = 2;
        /* the initial weights: init depends only on the seed and the parameter names */
        kn_graph *g0 = kn_graph_new();
        kn_graph_set_seed(g0, c.seed);
        kn_node *x0 = kn_graph_input(g0, "x", KN_F32, 4, (int64_t[]){1, 1, 8, 8});
        CHECK(kn_model_build(lin, g0, x0, &err) != NULL, "build: %s", err.msg);
        kn_node *w0 = kn_graph_find(g0, "dense1.weight");
        char ck[600];
        snprintf(ck, sizeof ck, "%s/model.safetensors", other);
        bool saved = w0 != NULL;
        float before[192];
        memcpy(before, kn_graph_param_data(g0, w0), sizeof before);
        c.recipe.epochs = 1;
        CHECK_OK(kn_train(lin, train, NULL, &c, NULL, &err));
        CHECK_OK(kn_checkpoint_load(g0, ck, true, NULL, &err));
        const float *after = kn_graph_param_data(g0, w0);
        double moved = 0;
        for (int i = 0; i < 192; i++)
            moved += ((double)after[i] - before[i]) * ((double)after[i] - before[i]);
        CHECK(saved && fabs(sqrt(moved) - 0.01) < 1e-5, "clipped step moved the weights by %.7f, expected 0.01",
              sqrt(moved));
        kn_graph_free(g0);

        /* gradient accumulation: 2 micro-batches of 100 give the same step as one batch of 200 */
        c.recipe.clip_norm = 0;
        c.recipe.lr = 0.5;
        CHECK_OK(kn_train(lin, train, NULL, &c, NULL, &err));
        kn_graph *ga = kn_graph_new(), *gb = kn_graph_new();
        kn_node *wa = kn_graph_param(ga, "dense1.weight", KN_F32, 2, (int64_t[]){3, 64}, true);
        kn_node *wb = kn_graph_param(gb, "dense1.weight", KN_F32, 2, (int64_t[]){3, 64}, true);
        CHECK_OK(kn_checkpoint_load(ga, ck, true, NULL, &err));
        c.recipe.batch = 100;
        c.recipe.accum = 2;
        kn_status st_acc = kn_train(lin, train, NULL, &c, NULL, &err);
        CHECK(st_acc == KN_OK, "accumulating run: %s", err.msg);
        CHECK_OK(kn_checkpoint_load(gb, ck, true, NULL, &err));
        const float *pa2 = kn_graph_param_data(ga, wa), *pb2 = kn_graph_param_data(gb, wb);
        double worst = 0;
        for (int i = 0; i < 192; i++)
            worst = fmax(worst, fabs((double)pa2[i] - pb2[i]));
        CHECK(worst < 1e-6, "accumulated step differs from the full-batch step by %g", worst);
        kn_graph_free(ga);
        kn_graph_free(gb);
        kn_model_free(lin);
    }

    /* determinism: the same seed and thread count give bit-identical checkpoints */
    {
        char d1[600], d2[600];
        snprintf(d1, sizeof d1, "%s/det1", dir);
        snprintf(d2, sizeof d2, "%s/det2", dir);
        kn_train_opts dopt = o;
        dopt.resume = NULL;
        dopt.stop_after_steps = 0;
        dopt.recipe.epochs = 1;
        dopt.out_dir = d1;
        CHECK_OK(kn_train(m, train, NULL, &dopt, NULL, &err));
        dopt.out_dir = d2;
        CHECK_OK(kn_train(m, train, NULL, &dopt, NULL, &err));
        char p1[700], p2[700];
        snprintf(p1, sizeof p1, "%s/model.safetensors", d1);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
        size_t s1 = 0, s2 = 0, l1 = 0, l2 = 0;
        unsigned char *f1 = file_bytes(p1, &s1), *f2 = file_bytes(p2, &s2);
        if (f1 && f2) {
            const unsigned char *a1 = data_section(f1, s1, &l1), *a2 = data_section(f2, s2, &l2);
            CHECK(l1 == l2 && memcmp(a1, a2, l1) == 0, "two runs with the same seed differ");
        } else {
            CHECK(0, "determinism runs wrote no checkpoint");
        }
        free(f1);
        free(f2);
    }

    /* out of memory anywhere in a whole training run (build, compile, run, evaluate, save):
     * fail the n-th allocation for n = 1, 2, ... until the run succeeds */
    {
        kn_model *tiny = NULL;
        CHECK_OK(kn_model_parse(&tiny, "input 1 8 8\nflatten\ndense 4\nrelu\ndense 3\n", "tiny", &err));
        kn_dataset *small = kt_lines_dataset(24, 3, 8);
        kn_train_opts t = o;
        t.resume = NULL;
        t.stop_after_steps = 0;
        t.recipe.epochs = 1;
        t.recipe.batch = 10;
        t.progress = false;
        char od[600];
        snprintf(od, sizeof od, "%s/oom", dir);
        t.out_dir = od;
        long n;
        int bad = 0;
        for (n = 1; n < 20000; n++) {
            kt_oom_install(n);
            kn_error e = {0};
            kn_train_result r;
            kn_status st2 = kn_train(tiny, small, small, &t, &r, &e);
            if (st2 == KN_OK)
                kn_train_result_free(&r);
            long live = kt_oom_live();
            kt_oom_remove();
            if (st2 != KN_OK && st2 != KN_ERR_OOM && st2 != KN_ERR_IO) {
                bad++;
                fprintf(stderr, "n=%ld: %s: %s\n", n, kn_status_name(st2), e.msg);
            }
            CHECK(st2 == KN_OK || e.msg[0], "n=%ld: failure %s without a message", n, kn_status_name(st2));
            CHECK(live == 0, "n=%ld: %ld allocations leaked (status %s)", n, live, kn_status_name(st2));
            if (live || st2 == KN_OK)
                break;
        }
        CHECK(bad == 0, "%d runs failed with a status other than OOM/IO", bad);
        CHECK(n > 10 && n < 20000, "a training run succeeded after %ld injected failures", n - 1);
        printf("out-of-memory loop over kn_train: %ld allocation sites, each failing cleanly\n", n - 1);
        kt_free_dataset(small);
        kn_model_free(tiny);
    }

    kn_model_free(m2);
    kn_model_free(m);
    kt_free_dataset(train);
    kt_free_dataset(test);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return kt_finish("test_train");
}
