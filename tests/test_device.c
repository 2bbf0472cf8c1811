/* test_device.c — device selection on any machine (runs in CI, GPU or not): parsing
 * cpu|cuda|cuda:N|auto, a CUDA request failing cleanly with a helpful message when kiln was
 * built without CUDA or no GPU is present, auto falling back to the CPU with the same
 * results, and the CLI's --device errors. With a GPU present, the no-GPU checks are replaced
 * by "it compiles" (tests/gpu/test_cuda_plan.c tests the GPU itself). */
#include <stdlib.h>
#include <string.h>

#include "kiln/cuda.h"
#include "util.h"

static void test_parse(void)
{
    static const struct {
        const char *s;
        kn_backend_kind backend;
        int device;
    } good[] = {{"cpu", KN_BACKEND_CPU, 0}, {"cuda", KN_BACKEND_CUDA, 0}, {"cuda:0", KN_BACKEND_CUDA, 0},
                {"cuda:3", KN_BACKEND_CUDA, 3}, {"auto", KN_BACKEND_AUTO, 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kn_backend_kind b = KN_BACKEND_REF;
        int d = -5;
        char err[128];
        kn_status st = kn_device_parse(good[i].s, &b, &d, err, sizeof err);
        CHECK(st == KN_OK && b == good[i].backend && d == good[i].device, "'%s': %s, backend %d, device %d",
              good[i].s, kn_status_name(st), (int)b, d);
    }
    static const char *const bad[] = {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda:99999", "cuda0", "cpu:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_backend_kind b;
        int d;
        char err[256];
        kn_status st = kn_device_parse(bad[i], &b, &d, err, sizeof err);
        CHECK(st == KN_ERR_ARG && strstr(err, "expected cpu, cuda, cuda:N"), "'%s': %s: %s", bad[i],
              kn_status_name(st), err);
    }
    kn_backend_kind b;
    int d;
    CHECK(kn_device_parse(NULL, &b, &d, NULL, 0) == KN_ERR_ARG, "NULL accepted");
    char buf[32];
    CHECK(!strcmp(kn_device_name(KN_BACKEND_CUDA, 2, buf, sizeof buf), "cuda:2"), "name %s", buf);
    CHECK(!strcmp(kn_device_name(KN_BACKEND_CPU, 0, buf, sizeof buf), "cpu"), "name %s", buf);
}

/* y = relu(x·Wᵀ + b) summed: a tiny graph to compile on each backend. */
static kn_graph *tiny(kn_node **x, kn_node **out)
{
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 3);
    *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 5});
    kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){3, 5}, true);
    kn_node *b = kn_graph_param(g, "b", KN_F32, 1, (int64_t[]){3}, true);
    kn_graph_param_init(g, w, KN_INIT_UNIFORM, -1, 1);
    kn_graph_param_init(g, b, KN_INIT_UNIFORM, -1, 1);
    *out = kn_graph_sum(g, kn_graph_relu(g, kn_graph_linear(g, *x, w, b)), 0, false);
    CHECK(kn_graph_status(g) == KN_OK, "tiny graph: %s", kn_graph_error(g));
    return g;
}

static void test_compile(bool gpu)
{
    kn_node *x, *out;
    kn_graph *g = tiny(&x, &out);
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CUDA};
    kn_status st = kn_plan_compile(&p, g, &out, 1, &o);
    const char *msg = kn_plan_last_error();
    if (!kn_cuda_built()) {
        CHECK(st == KN_ERR_UNSUPPORTED && !p, "CUDA in a build without it: %s", kn_status_name(st));
        CHECK(strstr(msg, "built without CUDA") && strstr(msg, "--device cpu"), "message: %s", msg);
    } else if (!gpu) {
        CHECK(st == KN_ERR_DEVICE && !p, "CUDA without a GPU: %s", kn_status_name(st));
        CHECK(strstr(msg, "no CUDA device found") && strstr(msg, "--device cpu"), "message: %s", msg);
    } else {
        CHECK(st == KN_OK && p, "CUDA with a GPU: %s: %s", kn_status_name(st), msg);
    }
    printf("CUDA request: %s%s%s\n", kn_status_name(st), st ? ": " : "", st ? msg : "");
    kn_plan_free(p);
    p = NULL;

    o.backend = (kn_backend_kind)99;
    CHECK(kn_plan_compile(&p, g, &out, 1, &o) == KN_ERR_ARG && !p, "backend 99 accepted");

    /* auto: the GPU when usable, else the CPU; same value either way */
    kn_plan *cpu = NULL, *au = NULL;
    kn_plan_opts oc = {.backend = KN_BACKEND_CPU}, oa = {.backend = KN_BACKEND_AUTO};
    CHECK_OK(kn_plan_compile(&cpu, g, &out, 1, &oc));
    st = kn_plan_compile(&au, g, &out, 1, &oa);
    CHECK(st == KN_OK && au, "auto: %s: %s", kn_status_name(st), kn_plan_last_error());
    if (cpu && au) {
        CHECK(kn_plan_backend(au) == (gpu ? KN_BACKEND_CUDA : KN_BACKEND_CPU), "auto chose backend %d",
              (int)kn_plan_backend(au));
        CHECK(kn_plan_device(cpu) == -1, "a CPU plan has device %d", kn_plan_device(cpu));
        float in[20];
        for (int i = 0; i < 20; i++)
            in[i] = (float)kn_rng_uniform(5, 0, (uint64_t)i) * 2 - 1;
        CHECK_OK(kn_plan_set_input(cpu, x, in, sizeof in));
        CHECK_OK(kn_plan_set_input(au, x, in, sizeof in));
        CHECK_OK(kn_plan_run(cpu));
        CHECK_OK(kn_plan_run_async(au)); /* on the CPU: a plain run */
        CHECK_OK(kn_plan_wait(au));
        CHECK_OK(kn_plan_wait(au));
        double a = kn_plan_scalar(cpu, out), b = kn_plan_scalar(au, out);
        CHECK(kt_close(b, a, 1e-5, 1e-6) && a > 0, "auto %.9g, cpu %.9g", b, a);
    }
    kn_plan_free(cpu);
    kn_plan_free(au);
    /* no device holds the parameters: syncing is a no-op */
    char why[64];
    CHECK(kn_graph_sync_params(g, why, sizeof why) == KN_OK && !why[0], "sync_params: %s", why);
    kn_graph_free(g);
}

static void test_cuda_api(bool gpu)
{
    kn_cuda_cache_stats s;
    CHECK(kn_cuda_cache_get_stats(0, NULL) != KN_OK, "NULL stats accepted");
    CHECK(kn_cuda_cache_get_stats(-1, &s) != KN_OK, "device -1 accepted");
    void *ptr = (void *)&s;
    kn_status st = kn_cuda_malloc(0, 64, &ptr);
    if (!gpu) {
        CHECK(st != KN_OK && ptr == NULL, "cuda_malloc without a GPU: %s", kn_status_name(st));
        CHECK(kn_cuda_last_error()[0] != 0, "no message");
    } else {
        CHECK(st == KN_OK && ptr, "cuda_malloc: %s", kn_cuda_last_error());
        kn_cuda_free(0, ptr);
    }
    kn_cuda_free(0, NULL);
}

static void test_cli(bool gpu)
{
    int rc = kt_run("%s bench --model mlp --device tpu --steps 1", KILN_BIN);
    CHECK(rc == 2 && strstr(kt_out, "unknown device 'tpu'"), "--device tpu: rc %d: %s", rc, kt_out);
    rc = kt_run("%s train --help", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "--device D") && strstr(kt_out, "--deterministic"), "train --help: %s", kt_out);
    rc = kt_run("%s bench --help", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "--device D"), "bench --help: %s", kt_out);
    if (gpu)
        return;
    rc = kt_run("%s bench --model mlp --device cuda --steps 1 --warmup 0", KILN_BIN);
    CHECK(rc == 1 && (strstr(kt_out, "built without CUDA") || strstr(kt_out, "no CUDA device found")),
          "bench --device cuda without a GPU: rc %d: %s", rc, kt_out);
    rc = kt_run("%s train --model mlp --device cuda:1 --epochs 1 --quiet --data /nonexistent", KILN_BIN);
    CHECK(rc == 1 && (strstr(kt_out, "built without CUDA") || strstr(kt_out, "no CUDA device found")),
          "train --device cuda:1 without a GPU: rc %d: %s", rc, kt_out);
}

int main(void)
{
    int count = 0;
    bool gpu = kn_cuda_device_count(&count) == KN_OK && count > 0;
    printf("CUDA built: %s, devices: %d\n", kn_cuda_built() ? "yes" : "no", count);
    test_parse();
    test_compile(gpu);
    test_cuda_api(gpu);
    test_cli(gpu);
    return kt_finish("test_device");
}
