// XLA FFI handlers for the spin-weighted spherical harmonic transforms on the CPU,
// with the contract of sphcnn/contract.h (shared with the CUDA handlers).
//
// Both handlers work on the native layouts of sphcnn_kernels, flattening all
// leading axes into one batch axis B:
//   spatial  x: (B, n, n, S, C) complex, rings theta_j = pi j / (n - 1), longitudes
//               phi_k = 2 pi k / n;
//   spectral a: (B, L, 2L - 1, S, C) complex, a_lm at [l, L - 1 + m], L = ell_max + 1,
//               or (L, B, 2L - 1, S, C) with attribute degree_major = 1;
// with S spins (attribute `spins`) and C channels.
//
//   analysis:  a_lm = sum_j scale_j lambda_{l,m,s}(theta_j) sum_k x_jk e^{sign i m phi_k}
//   synthesis: x_jk = scale_j sum_m e^{sign i m phi_k} sum_l lambda_{l,m,s}(theta_j) a_lm
//
// The two are transposes of each other for the same (scale, sign); the forward
// transform is analysis(scale = quadrature weights / n, sign = -1) and the inverse
// synthesis(scale = 1, sign = +1). Each handler fuses the FFT over longitude (a
// vector FFT over the contiguous (spin, channel) lanes of a ring) with the
// Legendre stage, threaded either over rings then (spin, |m|), or over chunks of
// the batch (see the two schedules below). Lambda comes from the recurrence
// (lambda_source on the fly) or from the plan's packed table. The order blocks
// of the schedule by orders come from a cache of host buffers that stay warm
// between calls (buffer_cache.h), so the CPU targets need no scratch result
// (scratch_bytes() is 0): a fresh XLA buffer of that size would be page-faulted
// on every call.
//
// The fused block targets reuse both stages: sphcnn_activated_analysis is the
// analysis reading its rings through the activation prologue
// (activation_rings.h), sphcnn_activated_gradient the synthesis handing its
// rings to the activation's gradient, sphcnn_affine_synthesis the synthesis
// with a batch norm's affine map on its order blocks (contract.h for all three).
#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "activation_rings.h"
#include "buffer_cache.h"
#include "legendre_stage.h"
#include "parallel_for.h"
#include "ring_fft.h"
#include "sphcnn/contract.h"
#include "transforms_cpu.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sphcnn {
namespace {

// FFT plans are cached per (n, sign); building one costs O(n) sin/cos.
template <typename T>
std::shared_ptr<const RingFft<T>> fft_plan(int n, int sign) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::shared_ptr<const RingFft<T>>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(n, sign);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  auto plan = std::make_shared<const RingFft<T>>(n, sign);
  plans.emplace(key, plan);
  return plan;
}

// T-value strides of the spectral array between batch items and between degrees.
int64_t spectral_batch_stride(const Geometry& g) {
  const int64_t row = static_cast<int64_t>(g.M()) * g.spins * g.channels * 2;
  return g.degree_major ? row : g.L() * row;
}

int64_t spectral_degree_stride(const Geometry& g) {
  const int64_t row = static_cast<int64_t>(g.M()) * g.spins * g.channels * 2;
  return g.degree_major ? g.batch * row : row;
}

// What every phase of a transform needs, derived from the geometry. "Order
// blocks" hold, for one (spin s, order index mi), the n rings times `width`
// columns of T values: F[s][mi][j][column] (Fourier coefficients of the rings,
// analysis) or G[s][mi][j][column] (their synthesis counterpart); batch item b
// sits at columns [b_local 2C, (b_local + 1) 2C) of its block.
template <typename T>
struct Stage {
  Stage(const Geometry& geometry, const double* ring_scale, const T* lambda_table,
        ffi::Span<const int64_t> spin_values, int sign)
      : g(geometry), scale(ring_scale), table(lambda_table), spins(spin_values), n(g.n), L(g.L()),
        M(g.M()), S(g.spins), B(g.batch), C(g.channels), lanes(S * C),
        batch_stride(spectral_batch_stride(g)), degree_stride(spectral_degree_stride(g)),
        fft(fft_plan<T>(g.n, sign)) {}

  const Geometry& g;
  const double* scale;
  const T* table;  // packed lambda table, or null: the recurrence
  ffi::Span<const int64_t> spins;
  int n, L, M, S;
  int64_t B, C, lanes;
  int64_t batch_stride, degree_stride;  // of the spectral array, in T values
  std::shared_ptr<const RingFft<T>> fft;

  int64_t block(int s, int mi, int64_t width) const {
    return (static_cast<int64_t>(s) * M + mi) * n * width;
  }
  // Offset of coefficient row (b, l, mi, s) in the spectral array.
  int64_t coefficient(int64_t b, int l, int mi, int s) const {
    return b * batch_stride + l * degree_stride + (static_cast<int64_t>(mi) * S + s) * C * 2;
  }
  void build(int s, int am, ColumnPair<T>& cp) const {
    if (table != nullptr) {
      column_pair_from_table(am, static_cast<int>(spins[s]), s, g.ell_max, n, table, cp);
    } else {
      build_column_pair(am, static_cast<int>(spins[s]), g.ell_max, n, cp);
    }
  }
  // T values of one ring of the maps (real maps have no imaginary parts).
  int64_t ring_values() const { return n * lanes * (g.real_input ? 1 : 2); }
};

// Per-worker buffers of one ring.
template <typename T>
struct RingBuffers {
  std::vector<T> ring, work;
  void size_for(int n, int64_t lanes) {
    ring.resize(2 * n * lanes);
    work.resize(RingFft<T>::work_size(n, lanes));
  }
};

// FFT over longitude of one ring (n x lanes complex) and scatter of its orders
// |m| <= ell_max into the order blocks at ring j, column `col`.
template <typename T>
void ring_to_orders(const Stage<T>& st, const T* ring, RingBuffers<T>& rb, T* F, int64_t width, int j,
                    int64_t col) {
  rb.size_for(st.n, st.lanes);
  st.fft->execute(ring, rb.ring.data(), rb.work.data(), st.lanes, st.g.real_input);
  for (int mi = 0; mi < st.M; ++mi) {
    const int bin = (mi - st.g.ell_max + st.n) % st.n;
    for (int s = 0; s < st.S; ++s) {
      copy_run(F + st.block(s, mi, width) + static_cast<int64_t>(j) * width + col,
               rb.ring.data() + (static_cast<int64_t>(bin) * st.lanes + s * st.C) * 2, 2 * st.C);
    }
  }
}

// A batch norm's affine map of the coefficients a synthesis reads (target
// sphcnn_affine_synthesis): a -> factor a, plus sqrt(4 pi) offset at a_00, with
// factor and offset (S, C) complex. The synthesis is linear and factor is one
// number per (spin, channel), so it acts on the order blocks instead: G_m ->
// factor G_m, plus w_j offset at m = 0 for spin 0 (lambda_000 = 1 / sqrt(4 pi);
// the order blocks carry the ring scale w_j; no a_00 exists for spin != 0).
template <typename T>
struct CoefficientAffine {
  const T* factor;  // (S, C) complex, interleaved
  const T* offset;  // (S, C) complex, interleaved
};

// The inverse: gather the orders of ring j, column `col`, into longitude bins
// (zero where |m| > ell_max), apply `affine` if any, and FFT them into the output ring.
template <typename T>
void orders_to_ring(const Stage<T>& st, const T* G, int64_t width, int j, int64_t col, RingBuffers<T>& rb,
                    T* ring_out, const CoefficientAffine<T>* affine) {
  rb.size_for(st.n, st.lanes);
  for (int mi = 0; mi < st.M; ++mi) {
    const int bin = (mi - st.g.ell_max + st.n) % st.n;
    for (int s = 0; s < st.S; ++s) {
      T* dst = rb.ring.data() + (static_cast<int64_t>(bin) * st.lanes + s * st.C) * 2;
      const T* src = G + st.block(s, mi, width) + static_cast<int64_t>(j) * width + col;
      if (affine == nullptr) {
        copy_run(dst, src, 2 * st.C);
        continue;
      }
      const T* f = affine->factor + s * st.C * 2;
      const bool constant = mi == st.g.ell_max && st.spins[s] == 0;
      const T* o = affine->offset + s * st.C * 2;
      const T w = constant ? static_cast<T>(st.scale[j]) : T(0);
      for (int64_t c = 0; c < st.C; ++c) {
        const T re = src[2 * c], im = src[2 * c + 1];
        dst[2 * c] = f[2 * c] * re - f[2 * c + 1] * im + w * o[2 * c];
        dst[2 * c + 1] = f[2 * c] * im + f[2 * c + 1] * re + w * o[2 * c + 1];
      }
    }
  }
  const int first_unused = st.g.ell_max + 1;     // bins ell_max + 1 .. n - ell_max - 1
  const int unused = st.n - 2 * st.g.ell_max - 1;  // hold no order |m| <= ell_max
  std::memset(rb.ring.data() + static_cast<int64_t>(first_unused) * st.lanes * 2, 0,
              sizeof(T) * 2 * st.lanes * unused);
  st.fft->execute(rb.ring.data(), ring_out, rb.work.data(), st.lanes);
}

// Analysis of one (s, |m|): the coefficients of m = +am and -am (one when am = 0)
// for the batch items [b0, b0 + nb) held in the order blocks (columns from 0),
// written to `out` (zeros for l < l0).
template <typename T>
void analysis_order(const Stage<T>& st, const ColumnPair<T>& cp, int s, int am, const T* F, int64_t width,
                    std::vector<T>& prod, T* out, int64_t b0, int64_t nb) {
  const int mi[2] = {am + st.g.ell_max, -am + st.g.ell_max};
  const T* rows = nullptr;
  if (cp.count > 0) {
    rows = analysis_pair(cp, st.n, st.scale, F + st.block(s, mi[0], width),
                         am > 0 ? F + st.block(s, mi[1], width) : nullptr, width, prod);
  }
  const int64_t stride = pair_row_stride(cp, width);
  for (int sg = 0; sg < (am == 0 ? 1 : 2); ++sg) {
    for (int64_t bl = 0; bl < nb; ++bl) {
      for (int l = 0; l < st.L; ++l) {
        const bool zero = l < cp.l0 || cp.count == 0;
        copy_run(out + st.coefficient(b0 + bl, l, mi[sg], s),
                 zero ? nullptr : rows + (l - cp.l0) * stride + sg * width + bl * st.C * 2, 2 * st.C);
      }
    }
  }
}

// Synthesis of one (s, |m|): G_m for m = +am and -am (one when am = 0) from the
// coefficients of the batch items [b0, b0 + nb), into the order blocks (columns from 0).
template <typename T>
void synthesis_order(const Stage<T>& st, const ColumnPair<T>& cp, int s, int am, const T* a,
                     std::vector<T>& gathered, int64_t width, T* G, int64_t b0, int64_t nb) {
  const int mi[2] = {am + st.g.ell_max, -am + st.g.ell_max};
  T* g_pos = G + st.block(s, mi[0], width);
  T* g_neg = am > 0 ? G + st.block(s, mi[1], width) : nullptr;
  if (cp.count == 0) {
    std::memset(g_pos, 0, sizeof(T) * st.n * width);
    if (g_neg != nullptr) std::memset(g_neg, 0, sizeof(T) * st.n * width);
    return;
  }
  T* rows = synthesis_rows(cp, width, gathered);
  const int64_t stride = pair_row_stride(cp, width);
  for (int sg = 0; sg < (am == 0 ? 1 : 2); ++sg) {
    for (int l = cp.l0; l <= st.g.ell_max; ++l) {
      for (int64_t bl = 0; bl < nb; ++bl) {
        copy_run(rows + (l - cp.l0) * stride + sg * width + bl * st.C * 2, a + st.coefficient(b0 + bl, l, mi[sg], s),
                 2 * st.C);
      }
    }
  }
  synthesis_pair(cp, st.n, st.scale, width, gathered, g_pos, g_neg);
}

// Two schedules. By orders (any batch): FFT all rings into one set of order
// blocks, then one task per (s, |m|) over the whole batch. By batch (when the
// lambda tables of all orders are small and the batch keeps every worker busy):
// tables built once, then each task takes a chunk of batch items through FFT and
// Legendre stage with its order blocks in cache.
constexpr size_t kTableBudget = size_t(64) << 20;
constexpr size_t kChunkBytes = size_t(2) << 20;

template <typename T>
int64_t batch_chunk(const Stage<T>& st, int workers) {
  size_t tables = 0;  // sum over (s, |m|) of 2 n (L - max(|m|, |s|))
  for (int s = 0; s < st.S; ++s) {
    for (int am = 0; am < st.L; ++am) {
      const int l0 = std::max<int>(am, std::abs(static_cast<int>(st.spins[s])));
      tables += l0 < st.L ? size_t(2) * st.n * (st.L - l0) * sizeof(T) : 0;
    }
  }
  if (tables > kTableBudget || st.B < 2 * workers) return 0;
  const size_t per_item = static_cast<size_t>(st.S) * st.M * st.n * st.C * 2 * sizeof(T);
  const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / per_item));
  return std::min<int64_t>(fit, (st.B + 2 * workers - 1) / (2 * workers));
}

template <typename T>
std::vector<ColumnPair<T>> all_tables(const Stage<T>& st, ffi::ThreadPool& pool, int workers) {
  std::vector<ColumnPair<T>> tables(static_cast<size_t>(st.S) * st.L);
  parallel_for(pool, static_cast<int64_t>(st.S) * st.L, workers, [&](int64_t item, int) {
    st.build(static_cast<int>(item % st.S), static_cast<int>(item / st.S), tables[item]);
  });
  return tables;
}

// ring_of(b, j, worker): the T values of ring j of batch item b (st.ring_values()
// of them), valid until the worker's next call.
template <typename T, typename RingSource>
ffi::Error analysis(ffi::ThreadPool& pool, const RingSource& ring_of, const double* scale, const T* table, T* out,
                    const Geometry& g, ffi::Span<const int64_t> spins, int sign) {
  const Stage<T> st(g, scale, table, spins, sign);
  const int workers = worker_count(pool);
  std::vector<RingBuffers<T>> rings(workers);
  std::vector<std::vector<T>> products(workers);

  const int64_t chunk = batch_chunk(st, workers);
  if (chunk > 0) {
    const std::vector<ColumnPair<T>> tables = all_tables(st, pool, workers);
    const int64_t chunks = (st.B + chunk - 1) / chunk;
    std::vector<std::vector<T>> blocks(workers);
    parallel_for(pool, chunks, workers, [&](int64_t item, int w) {
      const int64_t b0 = item * chunk;
      const int64_t nb = std::min(chunk, st.B - b0);
      const int64_t width = 2 * nb * st.C;
      std::vector<T>& F = blocks[w];
      F.resize(static_cast<size_t>(st.S) * st.M * st.n * width);
      for (int64_t bl = 0; bl < nb; ++bl) {
        for (int j = 0; j < st.n; ++j) {
          ring_to_orders(st, ring_of(b0 + bl, j, w), rings[w], F.data(), width, j, bl * st.C * 2);
        }
      }
      for (int s = 0; s < st.S; ++s) {
        for (int am = 0; am < st.L; ++am) {
          analysis_order(st, tables[static_cast<size_t>(am) * st.S + s], s, am, F.data(), width, products[w], out,
                         b0, nb);
        }
      }
    });
    return ffi::Error::Success();
  }

  // By orders. F[s][m][j][b][c]: the longitude FFT of every ring.
  const int64_t width = 2 * st.B * st.C;
  BufferCache::Handle f_handle =
      BufferCache::instance().take(static_cast<size_t>(st.S) * st.M * st.n * width * sizeof(T));
  if (!f_handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
  T* F = static_cast<T*>(f_handle.get());
  // Rings in (j, b) order: consecutive rings scatter into neighbouring chunks.
  parallel_for(pool, st.B * st.n, workers, [&](int64_t item, int w) {
    const int j = static_cast<int>(item / st.B);
    const int64_t b = item % st.B;
    ring_to_orders(st, ring_of(b, j, w), rings[w], F, width, j, b * st.C * 2);
  });
  std::vector<ColumnPair<T>> pairs(workers);
  parallel_for(pool, static_cast<int64_t>(st.S) * st.L, workers, [&](int64_t item, int w) {
    const int s = static_cast<int>(item % st.S);
    const int am = static_cast<int>(item / st.S);
    st.build(s, am, pairs[w]);
    analysis_order(st, pairs[w], s, am, F, width, products[w], out, 0, st.B);
  });
  return ffi::Error::Success();
}

// sink.target(b, j, worker): where ring j of batch item b goes (n * lanes complex
// values); sink.finish(b, j, worker) is called once it is written there.
template <typename T, typename RingSink>
ffi::Error synthesis(ffi::ThreadPool& pool, const T* a, const double* scale, const T* table, RingSink& sink,
                     const Geometry& g, ffi::Span<const int64_t> spins, int sign,
                     const CoefficientAffine<T>* affine = nullptr) {
  const Stage<T> st(g, scale, table, spins, sign);
  const int workers = worker_count(pool);
  std::vector<RingBuffers<T>> rings(workers);
  std::vector<std::vector<T>> gathered(workers);

  const int64_t chunk = batch_chunk(st, workers);
  if (chunk > 0) {
    const std::vector<ColumnPair<T>> tables = all_tables(st, pool, workers);
    const int64_t chunks = (st.B + chunk - 1) / chunk;
    std::vector<std::vector<T>> blocks(workers);
    parallel_for(pool, chunks, workers, [&](int64_t item, int w) {
      const int64_t b0 = item * chunk;
      const int64_t nb = std::min(chunk, st.B - b0);
      const int64_t width = 2 * nb * st.C;
      std::vector<T>& G = blocks[w];
      G.resize(static_cast<size_t>(st.S) * st.M * st.n * width);
      for (int s = 0; s < st.S; ++s) {
        for (int am = 0; am < st.L; ++am) {
          synthesis_order(st, tables[static_cast<size_t>(am) * st.S + s], s, am, a, gathered[w], width, G.data(),
                          b0, nb);
        }
      }
      for (int64_t bl = 0; bl < nb; ++bl) {
        for (int j = 0; j < st.n; ++j) {
          orders_to_ring(st, G.data(), width, j, bl * st.C * 2, rings[w], sink.target(b0 + bl, j, w), affine);
          sink.finish(b0 + bl, j, w);
        }
      }
    });
    return ffi::Error::Success();
  }

  // By orders. G[s][m][j][b][c], one contiguous block per (s, m).
  const int64_t width = 2 * st.B * st.C;
  BufferCache::Handle g_handle =
      BufferCache::instance().take(static_cast<size_t>(st.S) * st.M * st.n * width * sizeof(T));
  if (!g_handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
  T* G = static_cast<T*>(g_handle.get());
  std::vector<ColumnPair<T>> pairs(workers);
  parallel_for(pool, static_cast<int64_t>(st.S) * st.L, workers, [&](int64_t item, int w) {
    const int s = static_cast<int>(item % st.S);
    const int am = static_cast<int>(item / st.S);
    st.build(s, am, pairs[w]);
    synthesis_order(st, pairs[w], s, am, a, gathered[w], width, G, 0, st.B);
  });
  // Rings in (j, b) order, as in the analysis: neighbouring gathers.
  parallel_for(pool, st.B * st.n, workers, [&](int64_t item, int w) {
    const int j = static_cast<int>(item / st.B);
    const int64_t b = item % st.B;
    orders_to_ring(st, G, width, j, b * st.C * 2, rings[w], sink.target(b, j, w), affine);
    sink.finish(b, j, w);
  });
  return ffi::Error::Success();
}

// The plain synthesis sink: rings straight into the output maps.
template <typename T>
struct MapSink {
  T* maps;
  int64_t ring_size;  // T values of one ring
  int n;
  T* target(int64_t b, int j, int) const { return maps + (b * n + j) * ring_size; }
  void finish(int64_t, int, int) const {}
};

// The ring scale in double (it comes in the real dtype of the data).
std::vector<double> ring_scale_values(const ffi::AnyBuffer& scale, const Geometry& g) {
  std::vector<double> values(g.n);
  if (g.is_double) {
    const double* p = reinterpret_cast<const double*>(scale.untyped_data());
    for (int j = 0; j < g.n; ++j) values[j] = p[j];
  } else {
    const float* p = reinterpret_cast<const float*>(scale.untyped_data());
    for (int j = 0; j < g.n; ++j) values[j] = p[j];
  }
  return values;
}

template <typename T>
ffi::Error run(bool analysis_direction, ffi::ThreadPool& pool, const void* in, const std::vector<double>& scale,
               const void* table, void* out, const Geometry& g, ffi::Span<const int64_t> spins, int sign) {
  const T* src = static_cast<const T*>(in);
  const T* lambda = static_cast<const T*>(table);
  T* dst = static_cast<T*>(out);
  if (!analysis_direction) {
    MapSink<T> sink{dst, static_cast<int64_t>(g.n) * g.spins * g.channels * 2, g.n};
    return synthesis<T>(pool, src, scale.data(), lambda, sink, g, spins, sign);
  }
  const int64_t ring_size = static_cast<int64_t>(g.n) * g.spins * g.channels * (g.real_input ? 1 : 2);
  auto ring_of = [&](int64_t b, int j, int) { return src + (b * g.n + j) * ring_size; };
  return analysis<T>(pool, ring_of, scale.data(), lambda, dst, g, spins, sign);
}

// The activated analysis: rings made by the prologue in per-worker buffers.
template <typename T>
ffi::Error run_activated(ffi::ThreadPool& pool, const FusedActivation<T>& prologue,
                         const std::vector<double>& scale, const void* table, void* out, const Geometry& g,
                         ffi::Span<const int64_t> spins, int sign) {
  const int workers = worker_count(pool);
  std::vector<std::vector<T>> ring_buffers(workers), lines(workers);
  auto ring_of = [&](int64_t b, int j, int w) {
    ring_buffers[w].resize(2 * static_cast<size_t>(g.n) * g.spins * g.channels);
    lines[w].resize(prologue.line_values());
    prologue.ring(b, j, ring_buffers[w].data(), lines[w].data());
    return static_cast<const T*>(ring_buffers[w].data());
  };
  return analysis<T>(pool, ring_of, scale.data(), static_cast<const T*>(table), static_cast<T*>(out), g, spins,
                     sign);
}

template <bool kAnalysis>
ffi::Error transform_handler(ffi::ThreadPool pool, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                             ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> scratch,
                             ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source) {
  const char* target = kAnalysis ? "sphcnn_analysis" : "sphcnn_synthesis";
  auto g = contract_geometry(target, kAnalysis, in, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource) { return cpu::scratch_bytes(geometry); });
  if (g.has_error()) return g.error();
  if (out->element_count() == 0) return ffi::Error::Success();
  const std::vector<double> w = ring_scale_values(scale, *g);
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  const int sg = static_cast<int>(sign);
  if (g->is_double) {
    return run<double>(kAnalysis, pool, in.untyped_data(), w, lambda, out->untyped_data(), *g, spins, sg);
  }
  return run<float>(kAnalysis, pool, in.untyped_data(), w, lambda, out->untyped_data(), *g, spins, sg);
}

// The activation stage of a call of the fused targets: the maps on the 2n grid
// when pooling.
template <typename T>
FusedActivation<T> fused_activation(const ffi::AnyBuffer& maps, const ffi::AnyBuffer& bias, const ffi::AnyBuffer& taps,
                                    const Geometry& g, bool pool_maps, int64_t leaky_spin, double epsilon,
                                    double slope) {
  return FusedActivation<T>(static_cast<const T*>(maps.untyped_data()), static_cast<const T*>(bias.untyped_data()),
                            static_cast<const T*>(taps.untyped_data()), pool_maps ? 2 * g.n : g.n, g.n, g.spins,
                            g.channels, static_cast<int>(leaky_spin), static_cast<T>(epsilon),
                            static_cast<T>(slope));
}

ffi::Error activated_handler(ffi::ThreadPool pool, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                             ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                             ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                             bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool_maps,
                             double epsilon, double slope) {
  const char* target = "sphcnn_activated_analysis";
  auto g = contract_geometry(target, true, maps, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource) { return cpu::scratch_bytes(geometry); },
                             pool_maps ? 2 : 1);
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool_maps); e.failure()) return e;
  if (out->element_count() == 0) return ffi::Error::Success();
  const std::vector<double> w = ring_scale_values(scale, *g);
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  const int sg = static_cast<int>(sign);
  auto run_typed = [&](auto zero) {
    using T = decltype(zero);
    return run_activated<T>(pool, fused_activation<T>(maps, bias, taps, *g, pool_maps, leaky_spin, epsilon, slope),
                            w, lambda, out->untyped_data(), *g, spins, sg);
  };
  return g->is_double ? run_typed(0.0) : run_typed(0.0f);
}

// The synthesis of affinely mapped coefficients (a batch norm's apply).
ffi::Error affine_handler(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer factor, ffi::AnyBuffer offset,
                          ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                          ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                          bool degree_major, LambdaSource source) {
  const char* target = "sphcnn_affine_synthesis";
  auto g = contract_geometry(target, false, a, scale, table, *out, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource) { return cpu::scratch_bytes(geometry); });
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_affine(target, *g, a, factor, offset); e.failure()) return e;
  if (out->element_count() == 0) return ffi::Error::Success();
  const std::vector<double> w = ring_scale_values(scale, *g);
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  const int sg = static_cast<int>(sign);
  const int64_t ring_size = static_cast<int64_t>(g->n) * g->spins * g->channels * 2;
  auto run_typed = [&](auto zero) {
    using T = decltype(zero);
    const CoefficientAffine<T> affine{static_cast<const T*>(factor.untyped_data()),
                                      static_cast<const T*>(offset.untyped_data())};
    MapSink<T> sink{static_cast<T*>(out->untyped_data()), ring_size, g->n};
    return synthesis<T>(pool, static_cast<const T*>(a.untyped_data()), w.data(), static_cast<const T*>(lambda),
                        sink, *g, spins, sg, &affine);
  };
  return g->is_double ? run_typed(0.0) : run_typed(0.0f);
}

// The gradient of the activated analysis. Without pooling the transposed
// analysis (a synthesis) hands each ring of the activated maps' cotangent to
// the nonlinearity's gradient while it is in cache; with pooling, the pooled
// maps' cotangent (a quarter of the maps' size) goes to a cached buffer first,
// then every fine ring is unpooled and differentiated. Each ring's share of the
// bias cotangent is kept apart and the shares are added in ring order at the
// end, so that the result does not depend on which worker took which ring.
template <typename T>
struct GradientSink {
  const FusedActivation<T>& stage;
  T* ct_maps;
  std::vector<std::vector<T>>& rings;  // per worker: one ring of the activated maps' cotangent
  T* shares;                           // (B n_in, lanes): the bias shares of every ring
  int n_in;
  T* target(int64_t, int, int w) { return rings[w].data(); }
  void finish(int64_t b, int j, int w) {
    stage.gradient_ring(b, j, rings[w].data(), ct_maps, shares + (b * n_in + j) * stage.lanes());
  }
};

template <typename T>
ffi::Error run_gradient(ffi::ThreadPool& pool, const FusedActivation<T>& stage, const T* ct,
                        const std::vector<double>& scale, const void* table, T* ct_maps, T* ct_bias,
                        const Geometry& g, ffi::Span<const int64_t> spins, int sign) {
  const int workers = worker_count(pool);
  const int64_t lanes = stage.lanes();
  const int n_in = stage.n_in();
  std::vector<std::vector<T>> rings(workers, std::vector<T>(stage.line_values()));
  std::vector<T> shares(static_cast<size_t>(g.batch) * n_in * lanes);
  const T* lambda = static_cast<const T*>(table);
  if (n_in == g.n) {
    GradientSink<T> sink{stage, ct_maps, rings, shares.data(), n_in};
    if (ffi::Error e = synthesis<T>(pool, ct, scale.data(), lambda, sink, g, spins, sign); e.failure()) return e;
  } else {
    const int64_t ring_size = static_cast<int64_t>(g.n) * lanes * 2;
    BufferCache::Handle handle = BufferCache::instance().take(static_cast<size_t>(g.batch * g.n) * ring_size *
                                                              sizeof(T));
    if (!handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
    T* pooled = static_cast<T*>(handle.get());
    MapSink<T> sink{pooled, ring_size, g.n};
    if (ffi::Error e = synthesis<T>(pool, ct, scale.data(), lambda, sink, g, spins, sign); e.failure()) return e;
    parallel_for(pool, g.batch * n_in, workers, [&](int64_t item, int w) {
      const int64_t b = item / n_in;
      const int r = static_cast<int>(item % n_in);
      stage.unpool_ring(pooled, b, r, rings[w].data());
      stage.gradient_ring(b, r, rings[w].data(), ct_maps, shares.data() + item * lanes);
    });
  }
  std::vector<double> total(lanes, 0.0);
  for (int64_t ring = 0; ring < g.batch * n_in; ++ring) {
    for (int64_t q = 0; q < lanes; ++q) total[q] += shares[ring * lanes + q];
  }
  for (int64_t q = 0; q < lanes; ++q) ct_bias[q] = static_cast<T>(total[q]);
  return ffi::Error::Success();
}

ffi::Error gradient_handler(ffi::ThreadPool pool, ffi::AnyBuffer ct, ffi::AnyBuffer maps, ffi::AnyBuffer bias,
                            ffi::AnyBuffer taps, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                            ffi::Result<ffi::AnyBuffer> ct_maps, ffi::Result<ffi::AnyBuffer> ct_bias,
                            ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                            bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool_maps,
                            double epsilon, double slope) {
  const char* target = "sphcnn_activated_gradient";
  auto g = contract_geometry(target, false, ct, scale, table, *ct_maps, *scratch, spins, sign, degree_major, source,
                             [](const Geometry& geometry, LambdaSource) { return cpu::scratch_bytes(geometry); },
                             pool_maps ? 2 : 1);
  if (g.has_error()) return g.error();
  if (ffi::Error e = check_activation(target, *g, bias, taps, leaky_spin, pool_maps); e.failure()) return e;
  if (ffi::Error e = check_gradient(target, *g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  if (ct_maps->element_count() == 0) {  // an empty batch: the bias cotangent sums no terms
    if (ct_bias->size_bytes() > 0) std::memset(ct_bias->untyped_data(), 0, ct_bias->size_bytes());
    return ffi::Error::Success();
  }
  const std::vector<double> w = ring_scale_values(scale, *g);
  const void* lambda = source == LambdaSource::kTable ? table.untyped_data() : nullptr;
  const int sg = static_cast<int>(sign);
  auto run_typed = [&](auto zero) {
    using T = decltype(zero);
    return run_gradient<T>(pool, fused_activation<T>(maps, bias, taps, *g, pool_maps, leaky_spin, epsilon, slope),
                           static_cast<const T*>(ct.untyped_data()), w, lambda,
                           static_cast<T*>(ct_maps->untyped_data()), static_cast<T*>(ct_bias->untyped_data()), *g,
                           spins, sg);
  };
  return g->is_double ? run_typed(0.0) : run_typed(0.0f);
}

}  // namespace

namespace cpu {

size_t scratch_bytes(const Geometry&) {
  return 0;  // work space comes from the buffer cache (see the top of this file)
}

}  // namespace cpu
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCpu, sphcnn::transform_handler<true>,
                              SPHCNN_CONTRACT_BINDING(xla::ffi::ThreadPool));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnSynthesisCpu, sphcnn::transform_handler<false>,
                              SPHCNN_CONTRACT_BINDING(xla::ffi::ThreadPool));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCpu, sphcnn::activated_handler,
                              SPHCNN_ACTIVATED_BINDING(xla::ffi::ThreadPool));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedGradientCpu, sphcnn::gradient_handler,
                              SPHCNN_GRADIENT_BINDING(xla::ffi::ThreadPool));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineSynthesisCpu, sphcnn::affine_handler,
                              SPHCNN_CONTRACT_AFFINE_BINDING(xla::ffi::ThreadPool));
