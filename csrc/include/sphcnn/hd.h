// SPHCNN_HD marks the functions shared by host code (C++ kernels, the CPU
// emulation of the CUDA blocks) and device code (the CUDA kernels).
#pragma once

#if defined(__CUDACC__)
#define SPHCNN_HD __host__ __device__ inline
#else
#define SPHCNN_HD inline
#endif
