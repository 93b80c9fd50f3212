// The asynchronous copies of csrc/cuda/block_common.h in the CPU emulation:
// each emulated CUDA thread (a std::thread) queues its copies and performs a
// committed group only when a wait needs it complete, the latest moment a GPU
// may complete it, so that reading shared memory before the wait and barrier
// sees stale data, as it may on the GPU.
#pragma once

#include <cstring>
#include <vector>

namespace emulated_async {

struct Copy {
  void* dst;
  const void* src;
  int bytes;
  bool valid;
};

struct Queue {
  std::vector<std::vector<Copy>> groups;  // committed, oldest first
  std::vector<Copy> open;
};

inline Queue& queue() {
  thread_local Queue q;
  return q;
}

inline void copy(void* dst, const void* src, int bytes, bool valid) { queue().open.push_back(Copy{dst, src, bytes, valid}); }

inline void commit() {
  Queue& q = queue();
  q.groups.push_back(std::move(q.open));
  q.open.clear();
}

inline void wait(int in_flight) {
  Queue& q = queue();
  while (q.groups.size() > static_cast<size_t>(in_flight)) {
    for (const Copy& c : q.groups.front()) {
      if (c.valid) {
        std::memcpy(c.dst, c.src, c.bytes);
      } else {
        std::memset(c.dst, 0, c.bytes);
      }
    }
    q.groups.erase(q.groups.begin());
  }
}

}  // namespace emulated_async
