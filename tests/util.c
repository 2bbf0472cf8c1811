/* util.c — test framework helpers and the out-of-memory injecting allocation hooks. */
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>

int kt_failures;
int kt_checks;

int kt_finish(const char *name)
{
    if (kt_failures)
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, kt_failures, kt_checks);
    else
        printf("%s: all %d checks passed\n", name, kt_checks);
    return kt_failures ? 1 : 0;
}

int kt_close(double a, double b, double rtol, double atol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return fabs(a - b) <= atol + rtol * fabs(b);
}

static long oom_fail_at, oom_count, oom_live;

static void *oom_alloc(size_t bytes, size_t align, void *user)
{
    (void)user;
    oom_count++;
    if (oom_fail_at && oom_count == oom_fail_at)
        return NULL;
    void *p = aligned_alloc(align, (bytes + align - 1) / align * align);
    if (p)
        oom_live++;
    return p;
}

static void oom_free(void *p, void *user)
{
    (void)user;
    if (p)
        oom_live--;
    free(p);
}

void kt_oom_install(long fail_at)
{
    oom_fail_at = fail_at;
    oom_count = 0;
    oom_live = 0;
    kn_alloc_hooks h = {oom_alloc, oom_free, NULL};
    kn_set_alloc_hooks(&h);
}

void kt_oom_remove(void) { kn_set_alloc_hooks(NULL); }
long kt_oom_live(void) { return oom_live; }
long kt_oom_count(void) { return oom_count; }

long kt_oom_loop(const char *what, kn_status (*fn)(void *arg), void *arg, long max)
{
    long n;
    kn_status st = KN_ERR_OOM;
    for (n = 1; n <= max; n++) {
        kt_oom_install(n);
        st = fn(arg);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "%s, allocation %ld failing: status %s", what, n, kn_status_name(st));
        CHECK(live == 0, "%s, allocation %ld failing: %ld allocations leaked", what, n, live);
        if (st != KN_ERR_OOM)
            break;
    }
    CHECK(st == KN_OK, "%s: still failing after %ld injected failures", what, max);
    return n - 1;
}

char kt_out[65536];

int kt_run(const char *fmt, ...)
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
    size_t n = fread(kt_out, 1, sizeof kt_out - 1, p);
    kt_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

kn_dataset *kt_lines_dataset(int64_t n, uint64_t seed, int side)
{
    kn_dataset *ds = calloc(1, sizeof *ds);
    ds->n = n;
    ds->ndim = 3;
    ds->shape[0] = 1, ds->shape[1] = side, ds->shape[2] = side;
    ds->dtype = KN_U8;
    ds->classes = 3;
    snprintf(ds->name, sizeof ds->name, "synthetic");
    int pix = side * side;
    uint8_t *x = malloc((size_t)(n * pix));
    ds->y = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(kn_rng_uniform(seed, 1, (uint64_t)i) * 3), k = (int)(kn_rng_uniform(seed, 2, (uint64_t)i) * side);
        ds->y[i] = c;
        for (int p = 0; p < pix; p++) {
            int r = p / side, col = p % side;
            bool on = (c == 0 && r == k) || (c == 1 && col == k) || (c == 2 && r == col);
            x[i * pix + p] = (uint8_t)(on ? 200 : kn_rng_uniform(seed, 3, (uint64_t)(i * pix + p)) * 80);
        }
    }
    ds->x = x;
    return ds;
}

void kt_free_dataset(kn_dataset *ds)
{
    if (ds) {
        free(ds->x);
        free(ds->y);
        free(ds);
    }
}
