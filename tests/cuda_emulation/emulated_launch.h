// The CUDA grid of tests/cuda_emulation on the CPU: a block context (ctx.tid(),
// ctx.block(), ctx.blocks(), ctx.sync()) over std::threads and a barrier, and a
// grid launch whose persistent threads walk over the blocks together, with
// shared memory refilled with garbage (0xff bytes: NaN) before every block.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace sphcnn {
namespace emulation {

struct HostCtx {
  int t;
  int64_t b, grid;
  std::barrier<>* bar;
  int tid() const { return t; }
  int64_t block() const { return b; }
  int64_t blocks() const { return grid; }
  void sync() const { bar->arrive_and_wait(); }
};

// A grid launch: `threads` persistent threads walk over the blocks together.
// Block functions return uniformly, so the barrier stays balanced.
inline void launch(int threads, int64_t grid, size_t smem_bytes, const std::function<void(const HostCtx&, unsigned char*)>& body) {
  std::vector<unsigned char> smem(smem_bytes + 64);
  std::barrier<> bar(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t]() {
      for (int64_t b = 0; b < grid; ++b) {
        if (t == 0) std::memset(smem.data(), 0xff, smem.size());
        bar.arrive_and_wait();
        body(HostCtx{t, b, grid, &bar}, smem.data());
        bar.arrive_and_wait();
      }
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace emulation
}  // namespace sphcnn
