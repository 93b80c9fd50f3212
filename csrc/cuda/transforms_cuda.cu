// XLA FFI handlers for the Legendre stage of the spin-weighted spherical harmonic
// transforms on NVIDIA GPUs (the longitude FFT is done by XLA around them).
//
// With B leading axes flattened, L = ell_max + 1, M = 2L - 1 orders at index
// mi = m + ell_max, S spins (attribute `spins`), C channels and ring_scale w (n,):
//   sphcnn_legendre_analysis_cuda:  F (B, n, M, S, C) -> a (B, L, M, S, C),
//     a[l, mi] = sum_j w_j lambda_{l,m,s}(theta_j) F[j, mi], exactly 0 for
//     l < max(|m|, |s|);
//   sphcnn_legendre_synthesis_cuda: a (B, L, M, S, C) -> G (B, n, M, S, C),
//     G[j, mi] = w_j sum_{l >= max(|m|,|s|)} lambda_{l,m,s}(theta_j) a[l, mi].
// lambda comes from a device table built once per (device, n, ell_max, spins,
// dtype) and cached (mode 1), or from the recurrence inside the kernels (mode 2,
// O(L) shared memory per block, for large ell_max). See legendre_blocks.h for what
// the blocks do.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "legendre_blocks.h"
#include "transforms_cuda.h"
#include "sphcnn/shape_string.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace cuda {
namespace {

// ---------------------------------------------------------------------------
// Kernels: the block functions of legendre_blocks.h with the CUDA thread context.

struct DeviceCtx {
  __device__ __forceinline__ int tid() const { return static_cast<int>(threadIdx.x); }
  __device__ __forceinline__ int bx() const { return static_cast<int>(blockIdx.x); }
  __device__ __forceinline__ int by() const { return static_cast<int>(blockIdx.y); }
  __device__ __forceinline__ int bz() const { return static_cast<int>(blockIdx.z); }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
};

template <typename T, bool kTable>
__global__ void __launch_bounds__(kThreads, 2) analysis_kernel(const StageArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  analysis_block<T, kTable>(DeviceCtx{}, args, smem);
}

template <typename T, bool kTable>
__global__ void __launch_bounds__(kThreads, 2) synthesis_kernel(const StageArgs<T> args) {
  extern __shared__ __align__(16) unsigned char smem[];
  synthesis_block<T, kTable>(DeviceCtx{}, args, smem);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) table_kernel(T* table, int n, int ell_max,
                                                         int total_spins, const SpinGroup spins) {
  extern __shared__ __align__(16) unsigned char smem[];
  table_block<T>(DeviceCtx{}, table, n, ell_max, total_spins, spins, smem);
}

// ---------------------------------------------------------------------------
// Host helpers.

constexpr size_t kDefaultSmem = 48 * 1024;

ffi::Error cuda_error(const char* what, cudaError_t err) {
  return ffi::Error(ffi::ErrorCode::kInternal,
                    std::string("sphcnn: ") + what + ": " + cudaGetErrorName(err) + ": " +
                        cudaGetErrorString(err));
}

// The error of the last launch, if any.
ffi::Error check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return cuda_error(what, err);
  return ffi::Error::Success();
}

// Makes `device` current for the lifetime of the guard (normally it already is).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current != device) {
      if (cudaSetDevice(device) == cudaSuccess) previous_ = current;
    }
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The device of XLA's stream; the current device where the runtime or the driver
// is too old to ask the stream (XLA makes the stream's device current anyway).
ffi::ErrorOr<int> stream_device(cudaStream_t stream) {
  int device = -1;
#if CUDART_VERSION >= 12080
  if (cudaStreamGetDevice(stream, &device) == cudaSuccess) return device;
  cudaGetLastError();  // clear the error of the call above
#else
  (void)stream;
#endif
  const cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return ffi::Unexpected(cuda_error("cannot get the current device", err));
  return device;
}

// cudaDevAttrMaxSharedMemoryPerBlockOptin, queried once per device.
ffi::ErrorOr<size_t> max_shared_memory(int device) {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached];
  if (device >= 0 && device < kCached) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return static_cast<size_t>(v);
  }
  int value = 0;
  const cudaError_t err =
      cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return ffi::Unexpected(cuda_error("cudaDeviceGetAttribute", err));
  if (device >= 0 && device < kCached) cache[device].store(value, std::memory_order_relaxed);
  return static_cast<size_t>(value);
}

// Allows `bytes` of dynamic shared memory for `kernel` (needed above 48 KiB).
template <typename Kernel>
ffi::Error allow_shared_memory(Kernel kernel, size_t bytes, size_t limit, const char* name) {
  if (bytes > limit) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("sphcnn: ") + name + " needs " + std::to_string(bytes) +
                          " bytes of shared memory per block, the device allows " +
                          std::to_string(limit));
  }
  if (bytes > kDefaultSmem) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (err != cudaSuccess) return cuda_error("cudaFuncSetAttribute", err);
  }
  return ffi::Error::Success();
}

// The spins of launch `group` (kSpinsPerLaunch per launch), clamped to
// [-(ell_max + 1), ell_max + 1]: only whether |s| exceeds ell_max matters beyond.
SpinGroup spin_group(ffi::Span<const int64_t> spins, int ell_max, int group) {
  SpinGroup g{};
  g.offset = group * kSpinsPerLaunch;
  g.count = static_cast<int>(std::min<int64_t>(kSpinsPerLaunch,
                                               static_cast<int64_t>(spins.size()) - g.offset));
  const int64_t bound = static_cast<int64_t>(ell_max) + 1;
  for (int i = 0; i < g.count; ++i) {
    g.value[i] = static_cast<int>(std::clamp<int64_t>(spins[g.offset + i], -bound, bound));
  }
  return g;
}

int spin_groups(size_t spin_count) {
  return static_cast<int>((spin_count + kSpinsPerLaunch - 1) / kSpinsPerLaunch);
}

// ---------------------------------------------------------------------------
// The lambda tables: (S, M, L, n/2) in the data precision, built by table_kernel on
// the stream of the first call that needs them, kept until clear_table_cache().
// Later calls on any stream wait for the build through an event.

struct TableKey {
  int device;
  int n;
  int ell_max;
  bool is_double;
  std::vector<int64_t> spins;
  bool operator<(const TableKey& o) const {
    return std::tie(device, n, ell_max, is_double, spins) <
           std::tie(o.device, o.n, o.ell_max, o.is_double, o.spins);
  }
};

struct TableEntry {
  void* data;
  size_t bytes;
  cudaEvent_t ready;
};

struct TableCache {
  std::mutex mu;
  std::map<TableKey, TableEntry> entries;
};

// Never destroyed: device memory is not freed from static destructors at exit.
TableCache& table_cache() {
  static TableCache* cache = new TableCache();
  return *cache;
}

template <typename T>
ffi::ErrorOr<const T*> lambda_table(cudaStream_t stream, int device, int n, int ell_max,
                                    ffi::Span<const int64_t> spins) {
  TableKey key{device, n, ell_max, sizeof(T) == 8,
               std::vector<int64_t>(spins.begin(), spins.end())};
  TableCache& cache = table_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.entries.find(key);
  if (it == cache.entries.end()) {
    const int L = ell_max + 1;
    const int M = 2 * ell_max + 1;
    const double count = static_cast<double>(spins.size()) * M * L * (n / 2);
    const double bytes_d = count * sizeof(T);
    if (bytes_d > 9.0e18) {
      return ffi::Unexpected(ffi::Error(ffi::ErrorCode::kResourceExhausted,
                                        "sphcnn: the lambda table would be too large; use "
                                        "mode='onthefly'"));
    }
    const size_t bytes = static_cast<size_t>(spins.size()) * M * static_cast<size_t>(L) *
                         static_cast<size_t>(n / 2) * sizeof(T);
    void* data = nullptr;
    cudaError_t err = cudaMalloc(&data, std::max<size_t>(bytes, 16));
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the allocation error
      return ffi::Unexpected(ffi::Error(
          ffi::ErrorCode::kResourceExhausted,
          "sphcnn: cannot allocate the " + std::to_string(bytes) + "-byte lambda table (n=" +
              std::to_string(n) + ", ell_max=" + std::to_string(ell_max) + ", " +
              std::to_string(spins.size()) + " spins) on device " + std::to_string(device) +
              ": " + cudaGetErrorString(err) + "; use mode='onthefly'"));
    }
    for (int grp = 0; grp < spin_groups(spins.size()); ++grp) {
      const SpinGroup g = spin_group(spins, ell_max, grp);
      table_kernel<T><<<dim3(M, g.count), kThreads, kTableBlockSmem, stream>>>(
          static_cast<T*>(data), n, ell_max, static_cast<int>(spins.size()), g);
    }
    ffi::Error launched = check_launch("building the lambda table");
    if (launched.failure()) {
      cudaFree(data);
      return ffi::Unexpected(launched);
    }
    cudaEvent_t ready = nullptr;
    err = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    if (err == cudaSuccess) err = cudaEventRecord(ready, stream);
    if (err != cudaSuccess) {
      cudaStreamSynchronize(stream);  // error path only: the table is freed at once
      cudaFree(data);
      if (ready != nullptr) cudaEventDestroy(ready);
      return ffi::Unexpected(cuda_error("recording the table event", err));
    }
    it = cache.entries.emplace(std::move(key), TableEntry{data, bytes, ready}).first;
  }
  // Orders this stream after the build (a no-op once it has completed, or on the
  // stream that built it).
  const cudaError_t err = cudaStreamWaitEvent(stream, it->second.ready, 0);
  if (err != cudaSuccess) return ffi::Unexpected(cuda_error("cudaStreamWaitEvent", err));
  return static_cast<const T*>(it->second.data);
}

// ---------------------------------------------------------------------------
// Shapes.

struct Geometry {
  int64_t batch;     // B: product of the leading axes
  int n;             // number of rings
  int ell_max;       // L - 1
  int spins;         // S
  int64_t channels;  // C
};

// Checks the ring and spectral shapes against each other and the spin count.
ffi::ErrorOr<Geometry> geometry(const char* name, ffi::Span<const int64_t> rings,
                                ffi::Span<const int64_t> spectral, size_t spin_count) {
  if (rings.size() < 4 || rings.size() != spectral.size()) {
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        std::string(name) + ": ring shape " + shape_string(rings) + " and spectral shape " +
        shape_string(spectral) + " must have the same rank >= 4"));
  }
  const size_t r = rings.size();
  Geometry g;
  g.batch = 1;
  for (size_t i = 0; i + 4 < r; ++i) {
    if (rings[i] != spectral[i]) {
      return ffi::Unexpected(ffi::Error::InvalidArgument(
          std::string(name) + ": batch axes of " + shape_string(rings) + " and " +
          shape_string(spectral) + " differ"));
    }
    g.batch *= rings[i];
  }
  const int64_t n = rings[r - 4];
  const int64_t L = spectral[r - 4];
  const bool ok = n >= 4 && n % 2 == 0 && n <= (int64_t{1} << 30) && L >= 1 && L <= n / 2 &&
                  L <= 65535 && rings[r - 3] == 2 * L - 1 && spectral[r - 3] == 2 * L - 1 &&
                  rings[r - 2] == spectral[r - 2] &&
                  rings[r - 2] == static_cast<int64_t>(spin_count) &&
                  rings[r - 1] == spectral[r - 1];
  if (!ok) {
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        std::string(name) + ": inconsistent shapes: rings " + shape_string(rings) +
        ", spectral " + shape_string(spectral) + ", " + std::to_string(spin_count) +
        " spins; expected (..., n, 2L-1, S, C) and (..., L, 2L-1, S, C) with n even >= 4, "
        "1 <= L <= n/2 (and L <= 65535) and S the number of spins"));
  }
  g.n = static_cast<int>(n);
  g.ell_max = static_cast<int>(L) - 1;
  g.spins = static_cast<int>(spin_count);
  g.channels = rings[r - 1];
  return g;
}

// ---------------------------------------------------------------------------
// Launches.

template <typename T, bool kAnalysis>
ffi::Error run(const char* name, cudaStream_t stream, int device, const void* in,
               const void* scale, void* out, const Geometry& g,
               ffi::Span<const int64_t> spins, bool table_mode) {
  const int64_t maps = g.batch * g.channels;
  const int64_t tiles = (maps + kMapsPerBlock - 1) / kMapsPerBlock;
  if (tiles > INT_MAX) {
    return ffi::Error::InvalidArgument(std::string(name) + ": too many maps (batch x channels)");
  }
  const int L = g.ell_max + 1;

  StageArgs<T> args{};
  args.in = static_cast<const Cpx<T>*>(in);
  args.out = static_cast<Cpx<T>*>(out);
  args.ring_scale = static_cast<const T*>(scale);
  args.table = nullptr;
  args.state_d = nullptr;
  args.state_i = nullptr;
  args.n = g.n;
  args.ell_max = g.ell_max;
  args.total_spins = g.spins;
  args.channels = g.channels;
  args.maps = maps;

  ffi::ErrorOr<size_t> limit = max_shared_memory(device);
  if (limit.has_error()) return limit.error();

  if (table_mode) {
    ffi::ErrorOr<const T*> table = lambda_table<T>(stream, device, g.n, g.ell_max, spins);
    if (table.has_error()) return table.error();
    args.table = *table;
  }

  // Analysis on the fly keeps the recurrence state of all n/2 north rings and both
  // signs per block: in shared memory while it fits, else in global scratch.
  void* scratch = nullptr;
  size_t smem = 0;
  if (kAnalysis) {
    smem = analysis_layout<T>(g.n, !table_mode, true).total;
    if (!table_mode && smem > *limit) {
      smem = analysis_layout<T>(g.n, true, false).total;
      const int per_launch = std::min<int>(g.spins, kSpinsPerLaunch);
      const size_t blocks = static_cast<size_t>(tiles) * L * per_launch;
      const size_t doubles = blocks * 2 * static_cast<size_t>(g.n);
      const size_t bytes = doubles * sizeof(double) + blocks * static_cast<size_t>(g.n) * sizeof(int);
      const cudaError_t err = cudaMallocAsync(&scratch, bytes, stream);
      if (err != cudaSuccess) {
        cudaGetLastError();
        return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                          std::string(name) + ": cannot allocate " + std::to_string(bytes) +
                              " bytes of recurrence state: " + cudaGetErrorString(err));
      }
      args.state_d = static_cast<double*>(scratch);
      args.state_i = reinterpret_cast<int*>(args.state_d + doubles);
    }
  } else {
    smem = synthesis_layout<T>(!table_mode).total;
  }

  void (*kernel)(const StageArgs<T>);
  if (kAnalysis) {
    kernel = table_mode ? analysis_kernel<T, true> : analysis_kernel<T, false>;
  } else {
    kernel = table_mode ? synthesis_kernel<T, true> : synthesis_kernel<T, false>;
  }
  ffi::Error status = allow_shared_memory(kernel, smem, *limit, name);
  if (status.success()) {
    for (int grp = 0; grp < spin_groups(spins.size()); ++grp) {
      args.spins = spin_group(spins, g.ell_max, grp);
      const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(L),
                      static_cast<unsigned>(args.spins.count));
      kernel<<<grid, kThreads, smem, stream>>>(args);
      status = check_launch(name);
      if (status.failure()) break;
    }
  }
  if (scratch != nullptr) {
    const cudaError_t err = cudaFreeAsync(scratch, stream);
    if (err != cudaSuccess && status.success()) status = cuda_error("cudaFreeAsync", err);
  }
  return status;
}

template <bool kAnalysis>
ffi::Error legendre_handler(cudaStream_t stream, ffi::AnyBuffer in, ffi::AnyBuffer scale,
                            ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> spins,
                            int64_t mode) {
  const char* name = kAnalysis ? "sphcnn_legendre_analysis_cuda" : "sphcnn_legendre_synthesis_cuda";
  const ffi::AnyBuffer::Dimensions rings = kAnalysis ? in.dimensions() : out->dimensions();
  const ffi::AnyBuffer::Dimensions spectral = kAnalysis ? out->dimensions() : in.dimensions();
  ffi::ErrorOr<Geometry> g = geometry(name, rings, spectral, spins.size());
  if (g.has_error()) return g.error();
  const ffi::DataType type = in.element_type();
  if (type != out->element_type() || (type != ffi::C64 && type != ffi::C128)) {
    return ffi::Error::InvalidArgument(
        std::string(name) + ": input and output must both be complex64 or both complex128");
  }
  const ffi::DataType real = type == ffi::C64 ? ffi::F32 : ffi::F64;
  if (scale.element_type() != real || scale.element_count() != static_cast<size_t>(g->n)) {
    return ffi::Error::InvalidArgument(
        std::string(name) + ": ring_scale must be a real vector of n = " + std::to_string(g->n) +
        " entries in the data's precision (float32 with complex64, float64 with complex128)");
  }
  if (mode != 1 && mode != 2) {
    return ffi::Error::InvalidArgument(std::string(name) + ": mode must be 1 (table) or 2 (on the fly), got " +
                                       std::to_string(mode));
  }
  const size_t align = type == ffi::C64 ? alignof(Cpx<float>) : alignof(Cpx<double>);
  if (reinterpret_cast<uintptr_t>(in.untyped_data()) % align != 0 ||
      reinterpret_cast<uintptr_t>(out->untyped_data()) % align != 0) {
    return ffi::Error::InvalidArgument(std::string(name) + ": misaligned complex buffers");
  }
  if (out->element_count() == 0) return ffi::Error::Success();

  ffi::ErrorOr<int> device = stream_device(stream);
  if (device.has_error()) return device.error();
  DeviceGuard guard(*device);
  const bool table_mode = mode == 1;
  if (type == ffi::C64) {
    return run<float, kAnalysis>(name, stream, *device, in.untyped_data(), scale.untyped_data(),
                                 out->untyped_data(), *g, spins, table_mode);
  }
  return run<double, kAnalysis>(name, stream, *device, in.untyped_data(), scale.untyped_data(),
                                out->untyped_data(), *g, spins, table_mode);
}

}  // namespace

size_t clear_table_cache() {
  TableCache& cache = table_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  if (cache.entries.empty()) return 0;
  int previous = -1;
  cudaGetDevice(&previous);
  std::set<int> devices;
  for (const auto& kv : cache.entries) devices.insert(kv.first.device);
  // Kernels still reading a table may be in flight on any stream.
  for (int device : devices) {
    cudaSetDevice(device);
    cudaDeviceSynchronize();
  }
  for (auto& kv : cache.entries) {
    cudaSetDevice(kv.first.device);
    cudaFree(kv.second.data);
    cudaEventDestroy(kv.second.ready);
  }
  if (previous >= 0) cudaSetDevice(previous);
  const size_t count = cache.entries.size();
  cache.entries.clear();
  return count;
}

}  // namespace cuda
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnLegendreAnalysisCuda, sphcnn::cuda::legendre_handler<true>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("spins")
                                  .Attr<int64_t>("mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnLegendreSynthesisCuda, sphcnn::cuda::legendre_handler<false>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("spins")
                                  .Attr<int64_t>("mode"));
