/* plan_device.h — the seam between the plan compiler (plan.c, backend-neutral) and the CUDA
 * side of a plan (src/backend/cuda/plan_cuda.c, built only with CUDA; device_stub.c stands
 * in otherwise). No CUDA header here: plan.c stays plain C.
 *
 * A CUDA plan is an ordinary plan (IR, memory plan, host arena, steps with CPU/reference
 * kernels and host addresses) plus device state: the same arena layout in device memory,
 * the parameters mirrored on the device, the constants uploaded once, and for every step
 * either a CUDA kernel with device addresses or the step's host kernel run on copies. The
 * host arena doubles as the pinned staging area for inputs and the mirror for results. */
#ifndef KN_PLAN_DEVICE_H
#define KN_PLAN_DEVICE_H

#include "../passes/passes.h"

typedef struct kn__cuda_plan kn__cuda_plan;

/* ---- implemented by the CUDA backend (or the stubs without it) ---- */
/* Checks that CUDA device `device` is usable: KN_ERR_UNSUPPORTED without CUDA, KN_ERR_DEVICE
 * without a device, KN_ERR_ARG when out of range; the message says what to do. */
kn_status kn__cuda_check_device(int device, char *msg, size_t size);
/* Whether the CUDA table has a kernel for n, and its device workspace in bytes. */
bool kn__cuda_step_supported(const kn_node *n, size_t *workspace);
/* Creates the device side of p (compiled, host arena allocated and resolved). */
kn_status kn__cuda_plan_new(kn__cuda_plan **out, kn_plan *p, char *msg, size_t size);
void kn__cuda_plan_free(kn__cuda_plan *d);
/* One run: upload inputs, every step, wait; errors in msg. launch returns once the inputs
 * are on the device (the staging buffers may be refilled); wait finishes the run. */
kn_status kn__cuda_plan_run(kn__cuda_plan *d, char *msg, size_t size);
kn_status kn__cuda_plan_launch(kn__cuda_plan *d, char *msg, size_t size);
kn_status kn__cuda_plan_wait(kn__cuda_plan *d, char *msg, size_t size);
/* Starts uploading input i (IR index) into the plan's second input buffer on the copy
 * stream; the next launch takes it from there. cancel: forget a prefetch of i (its host
 * buffer changed). */
kn_status kn__cuda_plan_prefetch(kn__cuda_plan *d, int i, char *msg, size_t size);
void kn__cuda_plan_cancel_prefetch(kn__cuda_plan *d, int i);
/* Copies IR node i's value from the device to its host address (kn__plan_addr). */
kn_status kn__cuda_plan_fetch(kn__cuda_plan *d, int i, char *msg, size_t size);
int kn__cuda_plan_num_fallbacks(const kn__cuda_plan *d);
int kn__cuda_plan_num_grouped(const kn__cuda_plan *d); /* steps run inside a grouped launch */
bool kn__cuda_plan_uses_graph(const kn__cuda_plan *d);

/* ---- provided by plan.c to the device side ---- */
kn_graph *kn__plan_graph(const kn_plan *p);
const kn_plan_opts *kn__plan_opts(const kn_plan *p);
int kn__plan_step_node(const kn_plan *p, int s);            /* IR index of step s */
const kn__kargs *kn__plan_step_args(const kn_plan *p, int s); /* host arguments of step s */
/* Runs step s on the host exactly as a CPU plan does (float64 copies for reference kernels;
 * the plan's step counter drives randomness); message in the plan's error buffer. */
kn_status kn__plan_run_step_host(kn_plan *p, int s);
size_t kn__plan_param_bytes(const kn_plan *p);               /* graph parameter bytes at compile */
bool kn__plan_fuses(const kn_plan *p); /* the fuse pass is on: the device side may fuse too (grouped updates) */
void kn__plan_add_step_seconds(kn_plan *p, int s, double seconds); /* opts.profile: time of step s */

#endif
