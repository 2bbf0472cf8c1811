/* cublasLt.h (emulation) — just the handle and status types cuda_kernels.h and the test need;
 * cuBLASLt itself is not emulated (matmul.cu is left out of the emulation build). */
#ifndef EMU_CUBLASLT_H
#define EMU_CUBLASLT_H
#include "cuda_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef struct emu_lt *cublasLtHandle_t;
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
const char *cublasLtGetStatusString(cublasStatus_t s);
#ifdef __cplusplus
}
#endif
#endif
