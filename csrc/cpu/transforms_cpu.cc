// XLA FFI handlers for the spin-weighted spherical harmonic transforms on the CPU.
//
// Both handlers work on the native layouts of sphcnn_kernels, flattening all
// leading axes into one batch axis B:
//   spatial  x: (B, n, n, S, C) complex, rings theta_j = pi j / (n - 1), longitudes
//               phi_k = 2 pi k / n;
//   spectral a: (B, L, 2L - 1, S, C) complex, a_lm at [l, L - 1 + m], L = ell_max + 1.
// with S spins (attribute `spins`) and C channels.
//
//   analysis:  a_lm = sum_j scale_j lambda_{l,m,s}(theta_j) sum_k x_jk e^{sign i m phi_k}
//   synthesis: x_jk = scale_j sum_m e^{sign i m phi_k} sum_l lambda_{l,m,s}(theta_j) a_lm
//
// The two are transposes of each other for the same (scale, sign); the forward
// transform is analysis(scale = quadrature weights / n, sign = -1) and the inverse
// synthesis(scale = 1, sign = +1). Each handler fuses the FFT over longitude (a
// vector FFT over the contiguous (spin, channel) lanes of a ring) with the
// Legendre stage, threaded over rings, then over (spin, |m|).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "buffer_cache.h"
#include "legendre_stage.h"
#include "parallel_for.h"
#include "sphcnn/vector_fft.h"
#include "transforms_cpu.h"
#include "sphcnn/shape_string.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace {

// FFT plans are cached per (n, sign); building one costs O(n) sin/cos.
template <typename T>
std::shared_ptr<const VectorFft<T>> fft_plan(int n, int sign) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::shared_ptr<const VectorFft<T>>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(n, sign);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  auto plan = std::make_shared<const VectorFft<T>>(n, sign);
  plans.emplace(key, plan);
  return plan;
}

struct Geometry {
  int64_t batch;     // B: product of the leading axes
  int n;             // grid size
  int ell_max;       // L - 1
  int spins;         // S
  int64_t channels;  // C
  int orders() const { return 2 * ell_max + 1; }
};

// Checks the spatial and spectral shapes against each other and the attributes.
ffi::ErrorOr<Geometry> geometry(ffi::Span<const int64_t> spatial, ffi::Span<const int64_t> spectral,
                                size_t spin_count) {
  if (spatial.size() < 4 || spatial.size() != spectral.size()) {
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        "sphcnn: spatial shape " + shape_string(spatial) + " and spectral shape " +
        shape_string(spectral) + " must have the same rank >= 4"));
  }
  const size_t r = spatial.size();
  Geometry g;
  g.batch = 1;
  for (size_t i = 0; i + 4 < r; ++i) {
    if (spatial[i] != spectral[i]) {
      return ffi::Unexpected(ffi::Error::InvalidArgument(
          "sphcnn: batch axes of " + shape_string(spatial) + " and " + shape_string(spectral) +
          " differ"));
    }
    g.batch *= spatial[i];
  }
  g.n = static_cast<int>(spatial[r - 4]);
  g.ell_max = static_cast<int>(spectral[r - 4]) - 1;
  g.spins = static_cast<int>(spatial[r - 2]);
  g.channels = spatial[r - 1];
  const bool ok = spatial[r - 3] == g.n && g.n >= 4 && g.n % 2 == 0 && g.ell_max >= 0 &&
                  g.ell_max <= g.n / 2 - 1 && spectral[r - 3] == g.orders() &&
                  spectral[r - 2] == g.spins && spectral[r - 1] == g.channels &&
                  static_cast<size_t>(g.spins) == spin_count;
  if (!ok) {
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        "sphcnn: inconsistent shapes: spatial " + shape_string(spatial) + ", spectral " +
        shape_string(spectral) + ", " + std::to_string(spin_count) +
        " spins; expected (..., n, n, S, C) and (..., L, 2L-1, S, C) with n even >= 4 and "
        "L <= n/2"));
  }
  return g;
}

template <typename T>
ffi::Error analysis(ffi::ThreadPool& pool, const T* x, const double* scale, T* out,
                    const Geometry& g, ffi::Span<const int64_t> spins, int sign) {
  const int n = g.n;
  const int L = g.ell_max + 1;
  const int M = g.orders();
  const int S = g.spins;
  const int64_t B = g.batch;
  const int64_t C = g.channels;
  const int64_t lanes = S * C;                 // complex values per grid point
  const int64_t width = 2 * B * C;             // T values per row of a Legendre product
  const int workers = worker_count(pool);
  auto fft = fft_plan<T>(n, sign);

  // F[s][m][j][b][c]: the longitude FFT of every ring, restricted to |m| <= ell_max.
  const size_t f_count = static_cast<size_t>(S) * M * n * width;
  BufferCache::Handle f_handle = BufferCache::instance().take(f_count * sizeof(T));
  if (!f_handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
  T* F = static_cast<T*>(f_handle.get());

  std::vector<std::vector<T>> ring_out(workers), ring_work(workers);
  // Rings in (j, b) order: consecutive rings scatter into neighbouring chunks of
  // the same pages of F (the (j, b) rows of each (s, m) block are adjacent).
  parallel_for(pool, B * n, workers, [&](int64_t item, int w) {
    const int j = static_cast<int>(item / B);
    const int64_t b = item % B;
    std::vector<T>& ro = ring_out[w];
    std::vector<T>& rw = ring_work[w];
    ro.resize(2 * n * lanes);
    rw.resize(VectorFft<T>::work_size(n, lanes));
    fft->execute(x + (b * n + j) * n * lanes * 2, ro.data(), rw.data(), lanes);
    for (int mi = 0; mi < M; ++mi) {
      const int bin = (mi - g.ell_max + n) % n;
      for (int s = 0; s < S; ++s) {
        const T* src = ro.data() + (static_cast<int64_t>(bin) * lanes + s * C) * 2;
        T* dst = F + ((static_cast<int64_t>(s) * M + mi) * n + j) * width + b * C * 2;
        std::memcpy(dst, src, sizeof(T) * 2 * C);
      }
    }
  });

  std::vector<ColumnPair<T>> pairs(workers);
  std::vector<std::vector<T>> products(workers);
  const int64_t row_stride = static_cast<int64_t>(M) * S * C * 2;  // between l rows of out
  parallel_for(pool, static_cast<int64_t>(S) * L, workers, [&](int64_t item, int w) {
    const int s = static_cast<int>(item % S);
    const int am = static_cast<int>(item / S);
    const int spin = static_cast<int>(spins[s]);
    ColumnPair<T>& cp = pairs[w];
    build_column_pair(am, spin, g.ell_max, n, scale, cp);
    std::vector<T>& prod = products[w];
    prod.resize(static_cast<size_t>(std::max(cp.count, 1)) * width);
    for (int sgn = 0; sgn < (am == 0 ? 1 : 2); ++sgn) {
      const int m = sgn == 0 ? am : -am;
      const int mi = m + g.ell_max;
      if (cp.count > 0) {
        const T* table = sgn == 0 ? cp.pos.data() : cp.neg.data();
        const T* Fm = F + (static_cast<int64_t>(s) * M + mi) * n * width;
        gemm<T>(n, cp.count, width, table, cp.stride, 1, Fm, width, prod.data(), width);
      }
      for (int64_t b = 0; b < B; ++b) {
        T* col = out + (b * L * M + mi) * S * C * 2 + static_cast<int64_t>(s) * C * 2;
        for (int l = 0; l < L; ++l) {
          T* dst = col + l * row_stride;
          if (l < cp.l0 || cp.count == 0) {
            std::memset(dst, 0, sizeof(T) * 2 * C);
          } else {
            std::memcpy(dst, prod.data() + static_cast<int64_t>(l - cp.l0) * width + b * C * 2,
                        sizeof(T) * 2 * C);
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

template <typename T>
ffi::Error synthesis(ffi::ThreadPool& pool, const T* a, const double* scale, T* out,
                     const Geometry& g, ffi::Span<const int64_t> spins, int sign) {
  const int n = g.n;
  const int L = g.ell_max + 1;
  const int M = g.orders();
  const int S = g.spins;
  const int64_t B = g.batch;
  const int64_t C = g.channels;
  const int64_t lanes = S * C;
  const int64_t width = 2 * B * C;
  const int workers = worker_count(pool);
  auto fft = fft_plan<T>(n, sign);

  // G[s][m][j][b][c] = sum_l lambda_{l,m,s}(theta_j) a[b][l][m][s][c]: one
  // contiguous (rings x maps) block per (s, m), written by the matrix product.
  const size_t g_count = static_cast<size_t>(S) * M * n * width;
  BufferCache::Handle g_handle = BufferCache::instance().take(g_count * sizeof(T));
  if (!g_handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
  T* G = static_cast<T*>(g_handle.get());

  std::vector<ColumnPair<T>> pairs(workers);
  std::vector<std::vector<T>> gathered(workers);
  const int64_t in_row_stride = static_cast<int64_t>(M) * S * C * 2;  // between l rows of a
  parallel_for(pool, static_cast<int64_t>(S) * L, workers, [&](int64_t item, int w) {
    const int s = static_cast<int>(item % S);
    const int am = static_cast<int>(item / S);
    ColumnPair<T>& cp = pairs[w];
    build_column_pair(am, static_cast<int>(spins[s]), g.ell_max, n, scale, cp);
    std::vector<T>& gat = gathered[w];
    gat.resize(static_cast<size_t>(std::max(cp.count, 1)) * width);
    for (int sgn = 0; sgn < (am == 0 ? 1 : 2); ++sgn) {
      const int m = sgn == 0 ? am : -am;
      const int mi = m + g.ell_max;
      T* Gm = G + (static_cast<int64_t>(s) * M + mi) * n * width;
      if (cp.count == 0) {
        std::memset(Gm, 0, sizeof(T) * n * width);
        continue;
      }
      for (int l = cp.l0; l <= g.ell_max; ++l) {
        for (int64_t b = 0; b < B; ++b) {
          const T* src = a + (b * L * M + mi) * S * C * 2 + static_cast<int64_t>(s) * C * 2 +
                         l * in_row_stride;
          std::memcpy(gat.data() + static_cast<int64_t>(l - cp.l0) * width + b * C * 2, src,
                      sizeof(T) * 2 * C);
        }
      }
      const T* table = sgn == 0 ? cp.pos.data() : cp.neg.data();
      gemm<T>(cp.count, n, width, table, 1, cp.stride, gat.data(), width, Gm, width);
    }
  });

  // Per ring: gather its orders from G into longitude bins (zero where |m| >
  // ell_max) and run the FFT over longitude into the output.
  std::vector<std::vector<T>> ring_in(workers), ring_work(workers);
  // Rings in (j, b) order, as in the analysis: neighbouring gathers.
  parallel_for(pool, B * n, workers, [&](int64_t item, int w) {
    const int j = static_cast<int>(item / B);
    const int64_t b = item % B;
    std::vector<T>& ri = ring_in[w];
    std::vector<T>& rw = ring_work[w];
    ri.resize(2 * n * lanes);
    rw.resize(VectorFft<T>::work_size(n, lanes));
    for (int mi = 0; mi < M; ++mi) {
      const int bin = (mi - g.ell_max + n) % n;
      for (int s = 0; s < S; ++s) {
        const T* src = G + ((static_cast<int64_t>(s) * M + mi) * n + j) * width + b * C * 2;
        std::memcpy(ri.data() + (static_cast<int64_t>(bin) * lanes + s * C) * 2, src, sizeof(T) * 2 * C);
      }
    }
    const int first_unused = g.ell_max + 1;    // bins ell_max + 1 .. n - ell_max - 1
    const int unused = n - 2 * g.ell_max - 1;  // hold no order |m| <= ell_max
    std::memset(ri.data() + static_cast<int64_t>(first_unused) * lanes * 2, 0,
                sizeof(T) * 2 * lanes * unused);
    fft->execute(ri.data(), out + (b * n + j) * n * lanes * 2, rw.data(), lanes);
  });
  return ffi::Error::Success();
}

// The ring scale comes in the real dtype of the data (float32 with complex64,
// float64 with complex128), so that it needs no 64-bit mode in JAX.
ffi::ErrorOr<std::vector<double>> ring_scale_values(const ffi::AnyBuffer& scale, int n,
                                                    ffi::DataType complex_type) {
  const ffi::DataType expected = complex_type == ffi::C64 ? ffi::F32 : ffi::F64;
  if (scale.element_type() != expected || scale.element_count() != static_cast<size_t>(n)) {
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        "sphcnn: ring_scale must be a real vector of n entries in the data's precision"));
  }
  std::vector<double> values(n);
  if (expected == ffi::F32) {
    const float* p = reinterpret_cast<const float*>(scale.untyped_data());
    for (int j = 0; j < n; ++j) values[j] = p[j];
  } else {
    const double* p = reinterpret_cast<const double*>(scale.untyped_data());
    for (int j = 0; j < n; ++j) values[j] = p[j];
  }
  return values;
}

// Shared by both handlers: `spatial` is x for analysis and the result for synthesis.
template <bool kAnalysis>
ffi::Error transform_handler(ffi::ThreadPool pool, ffi::AnyBuffer in, ffi::AnyBuffer scale,
                             ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> spins,
                             int64_t sign) {
  const ffi::AnyBuffer::Dimensions spatial = kAnalysis ? in.dimensions() : out->dimensions();
  const ffi::AnyBuffer::Dimensions spectral = kAnalysis ? out->dimensions() : in.dimensions();
  auto g = geometry(spatial, spectral, spins.size());
  if (g.has_error()) return g.error();
  const ffi::DataType type = in.element_type();
  if (type != out->element_type() || (type != ffi::C64 && type != ffi::C128)) {
    return ffi::Error::InvalidArgument(
        "sphcnn: input and output must both be complex64 or both complex128");
  }
  if (sign != 1 && sign != -1) return ffi::Error::InvalidArgument("sphcnn: sign must be +1 or -1");
  auto w = ring_scale_values(scale, g->n, type);
  if (w.has_error()) return w.error();
  const int sg = static_cast<int>(sign);
  if (type == ffi::C64) {
    const float* src = reinterpret_cast<const float*>(in.untyped_data());
    float* dst = reinterpret_cast<float*>(out->untyped_data());
    return kAnalysis ? analysis<float>(pool, src, w->data(), dst, *g, spins, sg)
                     : synthesis<float>(pool, src, w->data(), dst, *g, spins, sg);
  }
  const double* src = reinterpret_cast<const double*>(in.untyped_data());
  double* dst = reinterpret_cast<double*>(out->untyped_data());
  return kAnalysis ? analysis<double>(pool, src, w->data(), dst, *g, spins, sg)
                   : synthesis<double>(pool, src, w->data(), dst, *g, spins, sg);
}

}  // namespace
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCpu, sphcnn::transform_handler<true>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("spins")
                                  .Attr<int64_t>("sign"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnSynthesisCpu, sphcnn::transform_handler<false>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("spins")
                                  .Attr<int64_t>("sign"));
