/* device.cu — CUDA backend skeleton: device discovery. Kernels arrive with the CUDA issue. */
#include <cuda_runtime.h>

extern "C" int kn__cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}
