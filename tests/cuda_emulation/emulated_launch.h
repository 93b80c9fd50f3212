// The CUDA grid of tests/cuda_emulation on the CPU: a block context (ctx.tid(),
// ctx.block(), ctx.blocks(), ctx.sync()) over std::threads and a barrier, and a
// grid launch whose persistent threads walk over the blocks together, with
// shared memory (16-byte aligned, as extern __shared__ __align__(16)) refilled
// with garbage (0xff bytes: NaN) before every block, and each thread's window
// of it for the copy checks of emulated_async.h. The blocks run in grid order,
// or from the last to the first in the eager schedule (emulated_schedule.h).
//
// A launch the hardware refuses ends the program (a message on stderr, then
// std::abort) instead of running: threads per block outside [1, 1024], a grid
// (blocks along x) outside [1, 2^31 - 1], dynamic shared memory above 48 KiB
// without the kernel's opt-in (cudaFuncSetAttribute with
// cudaFuncAttributeMaxDynamicSharedMemorySize; no kernel of sphcnn opts in),
// or above 163 KiB with it (the opt-in maximum of sm_80, the smallest of the
// architectures built).
#pragma once

#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "emulated_async.h"
#include "emulated_schedule.h"

namespace sphcnn {
namespace emulation {

constexpr int kMaxThreadsPerBlock = 1024;
constexpr int64_t kMaxGridBlocks = (int64_t{1} << 31) - 1;
constexpr size_t kSharedWithoutOptIn = 48 * 1024;
constexpr size_t kSharedOptInMaximum = 163 * 1024;

// Whether the kernel opted in to more than 48 KiB of dynamic shared memory.
enum class SharedOptIn { kNo, kYes };

// Why the hardware would refuse the launch, or null when it would not.
inline const char* launch_refusal(int threads, int64_t grid, size_t smem_bytes, SharedOptIn opt_in) {
  if (threads < 1 || threads > kMaxThreadsPerBlock) return "threads per block outside [1, 1024]";
  if (grid < 1 || grid > kMaxGridBlocks) return "grid outside [1, 2^31 - 1] blocks";
  if (opt_in == SharedOptIn::kNo && smem_bytes > kSharedWithoutOptIn) {
    return "dynamic shared memory above 48 KiB without the opt-in attribute";
  }
  if (smem_bytes > kSharedOptInMaximum) return "dynamic shared memory above the opt-in maximum of 163 KiB";
  return nullptr;
}

// Aborts with the reason when the hardware would refuse the launch.
inline void check_launch(int threads, int64_t grid, size_t smem_bytes, SharedOptIn opt_in) {
  const char* what = launch_refusal(threads, grid, smem_bytes, opt_in);
  if (what == nullptr) return;
  std::fprintf(stderr, "emulated launch refused: %s (threads %d, grid %lld, dynamic shared memory %zu bytes)\n",
               what, threads, static_cast<long long>(grid), smem_bytes);
  std::fflush(stderr);
  std::abort();
}

struct HostCtx {
  int t;
  int64_t b, grid;
  std::barrier<>* bar;
  int tid() const { return t; }
  int64_t block() const { return b; }
  int64_t blocks() const { return grid; }
  void sync() const { bar->arrive_and_wait(); }
  // __threadfence_block(): the barrier already orders the host threads' memory;
  // counted per thread, so that a check can see which blocks fenced.
  static inline thread_local int64_t fences = 0;
  void fence_block() const { ++fences; }
};

// A grid launch: `threads` persistent threads walk over the blocks together.
// Block functions return uniformly, so the barrier stays balanced.
inline void launch(int threads, int64_t grid, size_t smem_bytes, const std::function<void(const HostCtx&, unsigned char*)>& body,
                   SharedOptIn opt_in = SharedOptIn::kNo) {
  check_launch(threads, grid, smem_bytes, opt_in);
  struct alignas(16) Chunk {
    unsigned char bytes[16];
  };
  // 64 bytes of slack past the block's size: plain stores are not range-checked
  // (cp.async destinations are, against the window below), and an overrun must
  // not corrupt the heap.
  std::vector<Chunk> chunks((smem_bytes + 15) / 16 + 4);
  unsigned char* smem = chunks.front().bytes;
  const bool reverse = emulated_schedule::eager();
  std::barrier<> bar(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t]() {
      emulated_async::shared_window() = emulated_async::SharedWindow{smem, smem + smem_bytes};
      for (int64_t i = 0; i < grid; ++i) {
        const int64_t b = reverse ? grid - 1 - i : i;
        if (t == 0) std::memset(smem, 0xff, chunks.size() * sizeof(Chunk));
        bar.arrive_and_wait();
        body(HostCtx{t, b, grid, &bar}, smem);
        bar.arrive_and_wait();
      }
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace emulation
}  // namespace sphcnn
