// What the CUDA blocks of sphcnn share: complex values, 16-byte vectors, loop
// hints and the block context.
//
// Every kernel is written as a __host__ __device__ function of one thread block
// and a context `ctx` with ctx.tid() (thread index), ctx.block() (linear block
// index), ctx.sync() (__syncthreads) and ctx.fence_block()
// (__threadfence_block). The __global__ wrappers of transforms_cuda.cu and
// fused_cuda.cu pass the CUDA context (DeviceCtx, handler_cuda.h);
// tests/cuda_emulation runs the very same functions on the CPU with one
// std::thread per CUDA thread and a barrier.
//
// Where threads read global memory that other threads of the block wrote (the
// mixing stage's coefficients, the gradient's read back with cp.async.cg
// through L2; K1's tile buffers and K2's accumulators when they live in
// scratch), the writers call ctx.fence_block() before the barrier.
// __syncthreads is documented to order the block's global accesses as well;
// the fence makes that ordering explicit where the code relies on it, for one
// MEMBAR.CTA per thread, and lets the emulation check that each such barrier
// has it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "sphcnn/hd.h"
#if !defined(__CUDA_ARCH__) && defined(SPHCNN_EMULATED_ASYNC)
#include "emulated_async.h"
#endif

// Loop unrolling hints for the device compiler only (host compilers would warn
// about an unknown pragma).
#if defined(__CUDA_ARCH__)
#define SPHCNN_UNROLL _Pragma("unroll")
#define SPHCNN_UNROLL_2 _Pragma("unroll 2")
#define SPHCNN_NO_UNROLL _Pragma("unroll 1")
#else
#define SPHCNN_UNROLL
#define SPHCNN_UNROLL_2
#define SPHCNN_NO_UNROLL
#endif

namespace sphcnn {
namespace cuda {

// A complex number of the data (complex64 / complex128 element), aligned so that
// one load or store moves it whole.
template <typename T>
struct alignas(2 * sizeof(T)) Cpx {
  T re, im;
};

// 16 bytes of T: one vectorized load or store (LDG.128 / STG.128 / LDS.128).
template <typename T>
struct alignas(16) Vec16 {
  static constexpr int kCount = 16 / sizeof(T);
  T v[kCount];
};

template <typename T>
SPHCNN_HD Vec16<T> load16(const T* p) {
  return *reinterpret_cast<const Vec16<T>*>(p);
}

template <typename T>
SPHCNN_HD void store16(T* p, const Vec16<T>& v) {
  *reinterpret_cast<Vec16<T>*>(p) = v;
}

SPHCNN_HD bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

SPHCNN_HD constexpr int imin(int a, int b) { return a < b ? a : b; }
SPHCNN_HD constexpr int imax(int a, int b) { return a > b ? a : b; }
SPHCNN_HD constexpr int iabs(int a) { return a < 0 ? -a : a; }
SPHCNN_HD constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
SPHCNN_HD constexpr size_t align16(size_t v) { return (v + 15) & ~static_cast<size_t>(15); }

// Asynchronous copies global -> shared (cp.async, sm_80+) of 16 or 8 bytes,
// zero-filled when `valid` is false (the source is then not read), committed
// in groups; async_wait<N>() waits until at most N groups are in flight. A
// barrier must follow before other threads read what was copied.
//
// Host code (the CPU emulation of tests/cuda_emulation, which defines
// SPHCNN_EMULATED_ASYNC) defers each copy to the wait that completes its
// group, the latest a GPU may complete it, so that a read before the wait
// sees stale data as it may on the GPU; other host code copies at once.
template <int kBytes>
SPHCNN_HD void async_copy(void* dst, const void* src, bool valid) {
  static_assert(kBytes == 8 || kBytes == 16, "cp.async copies 8 or 16 bytes here");
#if defined(__CUDA_ARCH__)
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int source_bytes = valid ? kBytes : 0;
  if (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(src), "r"(source_bytes)
                 : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(address), "l"(src), "r"(source_bytes)
                 : "memory");
  }
#elif defined(SPHCNN_EMULATED_ASYNC)
  emulated_async::copy(dst, src, kBytes, valid);
#else
  if (valid) {
    std::memcpy(dst, src, kBytes);
  } else {
    std::memset(dst, 0, kBytes);
  }
#endif
}

SPHCNN_HD void async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(SPHCNN_EMULATED_ASYNC)
  emulated_async::commit();
#endif
}

template <int N>
SPHCNN_HD void async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(SPHCNN_EMULATED_ASYNC)
  emulated_async::wait(N);
#endif
}

// Shared memory a block may use without opting in (no cudaFuncSetAttribute
// call is needed, none is made).
constexpr size_t kSharedBudget = 48 * 1024;

}  // namespace cuda
}  // namespace sphcnn
