// The asynchronous copies of csrc/cuda/block_common.h in the CPU emulation:
// each emulated CUDA thread (a std::thread) queues its copies and performs a
// committed group only when a wait needs it complete, the latest moment a GPU
// may complete it, so that reading shared memory before the wait and barrier
// sees stale data, as it may on the GPU. In the eager schedule
// (emulated_schedule.h) a copy lands when it is issued instead, the earliest.
//
// A copy the hardware refuses ends the program (a message on stderr, then
// std::abort): a destination or source address not aligned to the copy's size
// (PTX requires cp.async's addresses aligned to its cp-size, 4, 8 or 16 bytes;
// checked also where the source is not read, which may be stricter than the
// hardware, and is what the blocks do), and a destination outside the dynamic
// shared memory of the block (the window emulated_launch.h sets for each of
// its threads).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "emulated_schedule.h"

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

// The dynamic shared memory [begin, end) of the block the calling thread runs;
// begin is null outside a launch (no range check then).
struct SharedWindow {
  const unsigned char* begin = nullptr;
  const unsigned char* end = nullptr;
};

inline SharedWindow& shared_window() {
  thread_local SharedWindow window;
  return window;
}

[[noreturn]] inline void refuse(const char* what, const void* address, int bytes) {
  std::fprintf(stderr, "emulated cp.async refused: %s (address %p, a %d-byte copy)\n", what, address, bytes);
  std::fflush(stderr);
  std::abort();
}

inline void check(const Copy& c) {
  if (c.bytes != 4 && c.bytes != 8 && c.bytes != 16) refuse("cp.async copies 4, 8 or 16 bytes", c.dst, c.bytes);
  if (reinterpret_cast<uintptr_t>(c.dst) % c.bytes != 0) {
    refuse("shared destination not aligned to the copy's size", c.dst, c.bytes);
  }
  if (reinterpret_cast<uintptr_t>(c.src) % c.bytes != 0) {
    refuse("global source not aligned to the copy's size", c.src, c.bytes);
  }
  const SharedWindow& window = shared_window();
  const unsigned char* dst = static_cast<const unsigned char*>(c.dst);
  if (window.begin != nullptr && (dst < window.begin || dst + c.bytes > window.end)) {
    refuse("shared destination outside the block's dynamic shared memory", c.dst, c.bytes);
  }
}

inline void land(const Copy& c) {
  if (c.valid) {
    std::memcpy(c.dst, c.src, c.bytes);
  } else {
    std::memset(c.dst, 0, c.bytes);
  }
}

inline void copy(void* dst, const void* src, int bytes, bool valid) {
  const Copy c{dst, src, bytes, valid};
  check(c);
  if (emulated_schedule::eager()) {
    land(c);
  } else {
    queue().open.push_back(c);
  }
}

inline void commit() {
  Queue& q = queue();
  q.groups.push_back(std::move(q.open));
  q.open.clear();
}

inline void wait(int in_flight) {
  Queue& q = queue();
  while (q.groups.size() > static_cast<size_t>(in_flight)) {
    for (const Copy& c : q.groups.front()) land(c);
    q.groups.erase(q.groups.begin());
  }
}

}  // namespace emulated_async
