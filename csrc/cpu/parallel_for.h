// parallel_for over XLA's intra-op thread pool (xla::ffi::ThreadPool), so the
// kernels share XLA's CPU threads instead of oversubscribing them with their own.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace sphcnn {

// Number of workers a parallel_for on this pool uses (the caller included).
inline int worker_count(xla::ffi::ThreadPool& pool) {
  const int64_t threads = pool.num_threads();
  return threads > 1 ? static_cast<int>(threads) : 1;
}

// Calls body(item, worker) for every item in [0, count), worker in [0, workers):
// items are claimed dynamically, in increasing order, by the calling thread
// (worker 0) and by workers - 1 tasks on the pool. Returns when all are done.
// A task the pool starts late finds no item left and never touches `body`, so
// `body` may refer to the caller's stack.
inline void parallel_for(xla::ffi::ThreadPool& pool, int64_t count, int workers,
                         const std::function<void(int64_t, int)>& body) {
  if (count <= 0) return;
  if (workers <= 1 || count == 1) {
    for (int64_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    int64_t count = 0;
    const std::function<void(int64_t, int)>* body = nullptr;
    std::mutex mu;
    std::condition_variable cv;
  };
  auto shared = std::make_shared<Shared>();
  shared->count = count;
  shared->body = &body;
  auto run = [](const std::shared_ptr<Shared>& sh, int worker) {
    for (;;) {
      const int64_t item = sh->next.fetch_add(1);
      if (item >= sh->count) return;
      (*sh->body)(item, worker);
      if (sh->done.fetch_add(1) + 1 == sh->count) {
        std::lock_guard<std::mutex> lock(sh->mu);
        sh->cv.notify_all();
      }
    }
  };
  const int tasks = static_cast<int>(std::min<int64_t>(workers, count)) - 1;
  for (int w = 1; w <= tasks; ++w) {
    pool.Schedule([shared, run, w]() { run(shared, w); });
  }
  run(shared, 0);
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done.load() == shared->count; });
}

}  // namespace sphcnn
