// Which legal schedule the CPU emulation of tests/cuda_emulation follows,
// chosen at run time so that one binary runs both:
//   deferred (default): an asynchronous copy lands at the wait that completes
//     its group, the latest moment a GPU may complete it, and blocks run in
//     grid order;
//   eager (SPHCNN_EMULATION_EAGER=1): a copy lands when it is issued, the
//     earliest moment, and blocks run from the last to the first.
// A GPU may do either (or anything between), so every output must be
// bit-identical under both.
#pragma once

#include <cstdlib>
#include <cstring>

namespace emulated_schedule {

inline bool eager() {
  static const bool value = [] {
    const char* setting = std::getenv("SPHCNN_EMULATION_EAGER");
    return setting != nullptr && std::strcmp(setting, "1") == 0;
  }();
  return value;
}

}  // namespace emulated_schedule
