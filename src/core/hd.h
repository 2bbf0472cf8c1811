/* hd.h — KN_HD marks scalar helpers usable from both C and CUDA (__host__ __device__ under
 * nvcc, plain static inline in C), so elementwise math and the RNG are written once. */
#ifndef KN_CORE_HD_H
#define KN_CORE_HD_H

#ifdef __CUDACC__
#define KN_HD static inline __host__ __device__
#else
#define KN_HD static inline
#endif

#endif
