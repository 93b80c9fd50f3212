// Reusable host buffers: large per-call scratch (tens of MB) is taken from a small
// cache instead of being allocated, page-faulted and freed on every call.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace sphcnn {

class BufferCache {
 public:
  struct Release {
    void operator()(void* p) const { BufferCache::instance().give_back(p); }
  };
  using Handle = std::unique_ptr<void, Release>;

  static BufferCache& instance() {
    static BufferCache* cache = new BufferCache();  // never destroyed: outlives XLA
    return *cache;
  }

  // A buffer of at least `bytes` bytes, 64-byte aligned; returned to the cache when
  // the handle goes out of scope. Returns an empty handle if allocation fails.
  Handle take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end()) {
        void* p = it->second;
        sizes_[p] = it->first;
        free_bytes_ -= it->first;
        free_.erase(it);
        return Handle(p);
      }
    }
    // 2 MiB aligned and advised as huge pages: the transforms scatter small
    // chunks over the whole buffer, which thrashes the TLB with 4 KiB pages.
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t rounded = bytes > 0 ? (bytes + kHuge - 1) / kHuge * kHuge : kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (p == nullptr) return Handle(nullptr);
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);  // a hint: ignored where unsupported
#endif
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = rounded;
    return Handle(p);
  }

 private:
  static constexpr size_t kMaxFreeBytes = size_t(1) << 31;  // keep at most 2 GiB idle

  void give_back(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    const size_t size = it->second;
    sizes_.erase(it);
    if (free_bytes_ + size > kMaxFreeBytes) {
      std::free(p);
      return;
    }
    free_.emplace(size, p);
    free_bytes_ += size;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // idle buffers by size
  std::map<void*, size_t> sizes_;      // buffers in use
  size_t free_bytes_ = 0;
};

}  // namespace sphcnn
