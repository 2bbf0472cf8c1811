/* core_internal.h — helpers shared inside kiln's core (not part of the public API). */
#ifndef KN_CORE_INTERNAL_H
#define KN_CORE_INTERNAL_H

#include <math.h>
#include <time.h>

#include "kiln/core.h"

/* One element of any dtype as double, by flat element index (slow path, any dtype). */
double kn__load_f64(const void *p, kn_dtype dt, int64_t i);
void kn__store_f64(void *p, kn_dtype dt, int64_t i, double v);

/* Monotonic clock in seconds (for timing; never for results). */
static inline double kn__now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
