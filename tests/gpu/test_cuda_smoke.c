/* test_cuda_smoke.c — smoke test of the CUDA backend skeleton: device discovery, backend
 * object, and the axpy kernel against the CPU on a few sizes (1, primes, block size ± 1,
 * a multi-wave size). Without a CUDA device it checks that the backend refuses cleanly with
 * a clear message and exits 77, which CTest reports as SKIPPED, never as passed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cuda.h"
#include "util.h"

static void check_axpy(kn_cuda_backend *b, int64_t n, float alpha)
{
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
    float *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    float *want = malloc((size_t)(n ? n : 1) * sizeof(float));
    CHECK(x && y && want, "out of memory for n = %lld", (long long)n);
    if (x && y && want) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)kn_rng_uniform(7, 0, (uint64_t)i) * 2.0f - 1.0f;
            y[i] = (float)kn_rng_uniform(7, 1, (uint64_t)i) * 2.0f - 1.0f;
            want[i] = fmaf(alpha, x[i], y[i]);
        }
        kn_status st = kn_cuda_axpy_f32(b, n, alpha, x, y);
        CHECK(st == KN_OK, "axpy n = %lld: %s: %s", (long long)n, kn_status_name(st),
              kn_cuda_backend_error(b));
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (!kt_close(y[i], want[i], 1e-6, 1e-7) && bad++ == 0)
                first = i;
        CHECK(bad == 0, "axpy n = %lld: %lld mismatches, first y[%lld] = %.9g, CPU %.9g",
              (long long)n, (long long)bad, (long long)first, first >= 0 ? y[first] : 0.0,
              first >= 0 ? want[first] : 0.0);
    }
    free(x);
    free(y);
    free(want);
}

int main(void)
{
    int count = 0;
    kn_status st = kn_cuda_device_count(&count);
    if (st != KN_OK || count == 0) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", st ? kn_cuda_last_error() : "0 devices");
        /* No device: the backend must refuse with KN_ERR_DEVICE and say why, not crash. */
        kn_cuda_backend *b = NULL;
        kn_status nb = kn_cuda_backend_new(&b, 0);
        CHECK(nb == KN_ERR_DEVICE && b == NULL, "backend_new without a device gave %s",
              kn_status_name(nb));
        CHECK(strstr(kn_cuda_last_error(), "no CUDA device found") != NULL,
              "unexpected message: %s", kn_cuda_last_error());
        char name[64];
        CHECK(kn_cuda_device_name(0, name, sizeof name) != KN_OK, "device_name without a device");
        if (kt_failures)
            return kt_finish("gpu_test_cuda_smoke");
        printf("SKIPPED: no CUDA device (%s)\n", reason);
        return 77;
    }

    char name[256];
    CHECK_OK(kn_cuda_device_name(0, name, sizeof name));
    printf("CUDA devices: %d; device 0: %s\n", count, name);
    CHECK(kn_cuda_device_name(count, name, sizeof name) == KN_ERR_ARG, "device %d accepted", count);
    CHECK(kn_cuda_device_name(0, NULL, 0) == KN_ERR_ARG, "NULL name buffer accepted");

    kn_cuda_backend *bad = NULL;
    CHECK(kn_cuda_backend_new(&bad, count) == KN_ERR_ARG && !bad, "backend on device %d", count);
    CHECK(kn_cuda_backend_new(&bad, -1) == KN_ERR_ARG && !bad, "backend on device -1");
    kn_cuda_backend_free(NULL);

    kn_cuda_backend *b = NULL;
    st = kn_cuda_backend_new(&b, 0);
    CHECK(st == KN_OK && b, "backend_new(0): %s: %s", kn_status_name(st), kn_cuda_last_error());
    if (b) {
        CHECK(kn_cuda_backend_device(b) == 0, "device index %d", kn_cuda_backend_device(b));
        static const int64_t sizes[] = {0, 1, 7, 255, 256, 257, 4099, (1 << 20) + 3, 40000037};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            check_axpy(b, sizes[i], i % 2 ? -0.75f : 1.5f);
        float one = 1;
        CHECK(kn_cuda_axpy_f32(b, -1, 1.0f, &one, &one) == KN_ERR_ARG, "n = -1 accepted");
        CHECK(kn_cuda_axpy_f32(b, 4, 1.0f, NULL, &one) == KN_ERR_ARG, "NULL x accepted");
        CHECK(kn_cuda_axpy_f32(NULL, 1, 1.0f, &one, &one) == KN_ERR_ARG, "NULL backend accepted");
        /* The backend still works after rejected calls. */
        check_axpy(b, 1000, 2.0f);
        kn_cuda_backend_free(b);
    }
    return kt_finish("gpu_test_cuda_smoke");
}
