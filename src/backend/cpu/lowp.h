/* lowp.h — the native AVX-512 BF16 kernels lowp.c dispatches to at run time (lowp_bf16dot.c). */
#ifndef KN_BACKEND_CPU_LOWP_H
#define KN_BACKEND_CPU_LOWP_H

#include "../backend.h"

/* True when this build has the AVX-512 BF16 kernels and the CPU runs them (checked once). */
bool kn__bf16dot_available(void);
/* LINEAR whose float operands and output are all bf16 (see lowp_bf16dot.c). */
kn_status kn__linear_bf16dot(const kn__kargs *a);

#endif
