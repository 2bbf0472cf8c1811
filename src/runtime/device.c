/* device.c — device names ("cpu", "cuda", "cuda:N", "auto") and the choice of backend a plan
 * gets: KN_BACKEND_AUTO becomes CUDA when a GPU is usable, else the CPU; a CUDA request is
 * checked here so that every caller (API, trainer, CLI) gets the same clear message. The
 * CUDA checks themselves are in the backend (plan_cuda.c) or its stand-in (device_stub.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_device.h"

static kn_status parse_fail(char *err, size_t size, const char *s)
{
    if (err && size)
        snprintf(err, size, "unknown device '%.100s': expected cpu, cuda, cuda:N (N = 0, 1, ...) or auto", s ? s : "(null)");
    return KN_ERR_ARG;
}

kn_status kn_device_parse(const char *s, kn_backend_kind *backend, int *device, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = 0;
    if (!s || !backend || !device)
        return parse_fail(err, err_size, s);
    if (!strcmp(s, "cpu")) {
        *backend = KN_BACKEND_CPU;
        *device = 0;
        return KN_OK;
    }
    if (!strcmp(s, "auto") || !strcmp(s, "cuda")) {
        *backend = s[0] == 'a' ? KN_BACKEND_AUTO : KN_BACKEND_CUDA;
        *device = 0;
        return KN_OK;
    }
    if (strncmp(s, "cuda:", 5) || s[5] < '0' || s[5] > '9')
        return parse_fail(err, err_size, s);
    char *end;
    errno = 0;
    long v = strtol(s + 5, &end, 10);
    if (*end || errno || v > 1023)
        return parse_fail(err, err_size, s);
    *backend = KN_BACKEND_CUDA;
    *device = (int)v;
    return KN_OK;
}

kn_status kn_device_resolve(kn_backend_kind *backend, int *device, char *err, size_t err_size)
{
    char local[512];
    if (!err || !err_size) {
        err = local;
        err_size = sizeof local;
    }
    err[0] = 0;
    if (!backend || !device) {
        snprintf(err, err_size, "device_resolve: NULL argument");
        return KN_ERR_ARG;
    }
    if (*backend == KN_BACKEND_AUTO) {
        if (*device < 0)
            *device = 0;
        *backend = kn__cuda_check_device(*device, err, err_size) == KN_OK ? KN_BACKEND_CUDA : KN_BACKEND_CPU;
        err[0] = 0;
        return KN_OK;
    }
    if (*backend != KN_BACKEND_CUDA)
        return KN_OK;
    return kn__cuda_check_device(*device, err, err_size);
}

const char *kn_device_name(kn_backend_kind backend, int device, char *buf, size_t size)
{
    if (!buf || !size)
        return "";
    switch (backend) {
    case KN_BACKEND_CUDA: snprintf(buf, size, "cuda:%d", device); break;
    case KN_BACKEND_AUTO: snprintf(buf, size, "auto"); break;
    case KN_BACKEND_REF: snprintf(buf, size, "ref"); break;
    default: snprintf(buf, size, "cpu"); break;
    }
    return buf;
}
