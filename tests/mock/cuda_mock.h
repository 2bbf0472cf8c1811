/* cuda_mock.h — what tests read from the mock CUDA device (cuda_mock.c): its counters, its
 * memory size (tests shrink it to provoke out-of-memory) and the violations of the device
 * model it saw (a host pointer handed to a kernel, a copy in the wrong direction, ...). */
#ifndef KN_TEST_CUDA_MOCK_H
#define KN_TEST_CUDA_MOCK_H

#include <stddef.h>

extern size_t capacity, used;     /* "device memory": total and in use (bytes) */
extern long n_mallocs;            /* cudaMalloc calls */
extern long n_launches;           /* cudaGraphLaunch calls */
extern long n_captures;           /* stream captures */
extern long n_d2h;                /* device-to-host copies */
extern long n_device_steps;       /* calls of "CUDA kernels" */
extern long n_chain_steps;        /* of which fused elementwise chains (chain.cu on a GPU) */
extern long n_group_steps;        /* of which grouped optimizer updates (one multi-tensor launch) */
extern long violations;           /* breaches of the device model; the first is described: */
extern char first_violation[512];

#endif
