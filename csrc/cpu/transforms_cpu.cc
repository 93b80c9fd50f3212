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
// the batch (see the two schedules below, one template for both directions).
// Lambda comes from the recurrence (lambda_source on the fly) or from the
// plan's packed table. The order blocks of the schedule by orders come from a
// cache of host buffers that stay warm between calls (buffer_cache.h), so the
// CPU targets need no scratch result (scratch_bytes() is 0): a fresh XLA
// buffer of that size would be page-faulted on every call.
//
// The fused block targets reuse both stages through the extension points of
// contract.h: sphcnn_activated_analysis is the analysis whose RingLoad is the
// activation prologue (activation_rings.h), sphcnn_activated_gradient the
// synthesis whose RingStore hands its rings to the activation's gradient,
// sphcnn_affine_synthesis the synthesis whose CoefficientLoad is a batch norm's
// affine map on its order blocks. Every handler decodes its call and ends with
// the skeleton of handler_cpu.h.
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
#include "handler_cpu.h"
#include "legendre_stage.h"
#include "parallel_for.h"
#include "ring_fft.h"
#include "sphcnn/bindings.h"
#include "sphcnn/contract.h"
#include "sphcnn/targets.h"
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
// blocks" hold, for one (spin s, order index mi), the nlat rings times `width`
// columns of T values: F[s][mi][j][column] (Fourier coefficients of the rings,
// analysis) or G[s][mi][j][column] (their synthesis counterpart); batch item b
// sits at columns [b_local 2C, (b_local + 1) 2C) of its block.
template <typename T>
struct Stage {
  Stage(const cpu::Call& call)
      : g(call.g), scale(call.scale.data()), table(call.lambda<T>()), spins(call.spins), rings(call.rings),
        nlat(g.nlat), nlon(g.nlon), L(g.L()), M(g.M()), S(g.spins), B(g.batch), C(g.channels), lanes(S * C),
        batch_stride(spectral_batch_stride(g)), degree_stride(spectral_degree_stride(g)),
        fft(fft_plan<T>(g.nlon, call.sign)) {}

  const Geometry& g;
  const double* scale;
  const T* table;  // packed lambda table, or null: the recurrence
  ffi::Span<const int64_t> spins;
  std::shared_ptr<const RingTrig> rings;
  int nlat, nlon, L, M, S;
  int64_t B, C, lanes;
  int64_t batch_stride, degree_stride;  // of the spectral array, in T values
  std::shared_ptr<const RingFft<T>> fft;

  int64_t block(int s, int mi, int64_t width) const {
    return (static_cast<int64_t>(s) * M + mi) * nlat * width;
  }
  // Offset of coefficient row (b, l, mi, s) in the spectral array.
  int64_t coefficient(int64_t b, int l, int mi, int s) const {
    return b * batch_stride + l * degree_stride + (static_cast<int64_t>(mi) * S + s) * C * 2;
  }
  void build(int s, int am, ColumnPair<T>& cp) const {
    if (table != nullptr) {
      column_pair_from_table(am, static_cast<int>(spins[s]), s, g.ell_max, g.n, table, rings, cp);
    } else {
      build_column_pair(am, static_cast<int>(spins[s]), g.ell_max, rings, cp);
    }
  }
  // T values of one ring of the maps (real maps have no imaginary parts).
  int64_t ring_values() const { return nlon * lanes * (g.real_input ? 1 : 2); }
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
  rb.size_for(st.nlon, st.lanes);
  st.fft->execute(ring, rb.ring.data(), rb.work.data(), st.lanes, st.g.real_input);
  for (int mi = 0; mi < st.M; ++mi) {
    const int bin = (mi - st.g.ell_max + st.nlon) % st.nlon;
    for (int s = 0; s < st.S; ++s) {
      copy_run(F + st.block(s, mi, width) + static_cast<int64_t>(j) * width + col,
               rb.ring.data() + (static_cast<int64_t>(bin) * st.lanes + s * st.C) * 2, 2 * st.C);
    }
  }
}

// A batch norm's affine map of the coefficients a synthesis reads (the
// CoefficientLoad of target sphcnn_affine_synthesis): a -> factor a, plus
// sqrt(4 pi) offset at a_00, with factor and offset (S, C) complex. The
// synthesis is linear and factor is one number per (spin, channel), so it acts
// on the order blocks instead: G_m -> factor G_m, plus w_j offset at m = 0 for
// spin 0 (lambda_000 = 1 / sqrt(4 pi); the order blocks carry the ring scale
// w_j; no a_00 exists for spin != 0).
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
  rb.size_for(st.nlon, st.lanes);
  for (int mi = 0; mi < st.M; ++mi) {
    const int bin = (mi - st.g.ell_max + st.nlon) % st.nlon;
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
  const int first_unused = st.g.ell_max + 1;        // bins ell_max + 1 .. nlon - ell_max - 1
  const int unused = st.nlon - 2 * st.g.ell_max - 1;  // hold no order |m| <= ell_max
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
    rows = analysis_pair(cp, st.scale, F + st.block(s, mi[0], width),
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
    std::memset(g_pos, 0, sizeof(T) * st.nlat * width);
    if (g_neg != nullptr) std::memset(g_neg, 0, sizeof(T) * st.nlat * width);
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
  synthesis_pair(cp, st.scale, width, gathered, g_pos, g_neg);
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
  size_t tables = 0;  // sum over (s, |m|) of 2 nlat (L - max(|m|, |s|))
  for (int s = 0; s < st.S; ++s) {
    for (int am = 0; am < st.L; ++am) {
      const int l0 = std::max<int>(am, std::abs(static_cast<int>(st.spins[s])));
      tables += l0 < st.L ? size_t(2) * st.nlat * (st.L - l0) * sizeof(T) : 0;
    }
  }
  if (tables > kTableBudget || st.B < 2 * workers) return 0;
  const size_t per_item = static_cast<size_t>(st.S) * st.M * st.nlat * st.C * 2 * sizeof(T);
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

// The two phases of a transform, in the order of its direction: the analysis
// takes rings to order blocks, then order blocks to coefficients; the
// synthesis the reverse. Both schedules call ring(block, width, b, j, col, rb,
// worker) for ring j of batch item b at column col of the order blocks, and
// order(pair, s, am, block, width, work, b0, nb) for one (s, |m| = am), both
// signs of m, of the batch items [b0, b0 + nb) held in the order blocks from column 0 (work:
// the worker's buffer of the Legendre stage).
template <typename T, typename RingLoad>
struct AnalysisPhases {
  static constexpr bool kRingsFirst = true;
  const Stage<T>& st;
  const RingLoad& ring_load;
  T* out;
  void ring(T* F, int64_t width, int64_t b, int j, int64_t col, RingBuffers<T>& rb, int w) const {
    ring_to_orders(st, ring_load(b, j, w), rb, F, width, j, col);
  }
  void order(const ColumnPair<T>& cp, int s, int am, T* F, int64_t width, std::vector<T>& work, int64_t b0,
             int64_t nb) const {
    analysis_order(st, cp, s, am, F, width, work, out, b0, nb);
  }
};

template <typename T, typename RingStore>
struct SynthesisPhases {
  static constexpr bool kRingsFirst = false;
  const Stage<T>& st;
  const T* a;
  RingStore& ring_store;
  const CoefficientAffine<T>* affine;
  void ring(T* G, int64_t width, int64_t b, int j, int64_t col, RingBuffers<T>& rb, int w) const {
    orders_to_ring(st, G, width, j, col, rb, ring_store.target(b, j, w), affine);
    ring_store.finish(b, j, w);
  }
  void order(const ColumnPair<T>& cp, int s, int am, T* G, int64_t width, std::vector<T>& work, int64_t b0,
             int64_t nb) const {
    synthesis_order(st, cp, s, am, a, work, width, G, b0, nb);
  }
};

// The schedule of both directions (AnalysisPhases, SynthesisPhases).
template <typename T, typename Phases>
ffi::Error schedule(ffi::ThreadPool& pool, const Stage<T>& st, const Phases& phases) {
  const int workers = worker_count(pool);
  std::vector<RingBuffers<T>> rings(workers);
  std::vector<std::vector<T>> work(workers);

  const int64_t chunk = batch_chunk(st, workers);
  if (chunk > 0) {
    const std::vector<ColumnPair<T>> tables = all_tables(st, pool, workers);
    const int64_t chunks = (st.B + chunk - 1) / chunk;
    std::vector<std::vector<T>> blocks(workers);
    parallel_for(pool, chunks, workers, [&](int64_t item, int w) {
      const int64_t b0 = item * chunk;
      const int64_t nb = std::min(chunk, st.B - b0);
      const int64_t width = 2 * nb * st.C;
      std::vector<T>& block = blocks[w];
      block.resize(static_cast<size_t>(st.S) * st.M * st.nlat * width);
      auto rings_phase = [&] {
        for (int64_t bl = 0; bl < nb; ++bl) {
          for (int j = 0; j < st.nlat; ++j) phases.ring(block.data(), width, b0 + bl, j, bl * st.C * 2, rings[w], w);
        }
      };
      auto orders_phase = [&] {
        for (int s = 0; s < st.S; ++s) {
          for (int am = 0; am < st.L; ++am) {
            phases.order(tables[static_cast<size_t>(am) * st.S + s], s, am, block.data(), width, work[w], b0, nb);
          }
        }
      };
      if constexpr (Phases::kRingsFirst) {
        rings_phase();
        orders_phase();
      } else {
        orders_phase();
        rings_phase();
      }
    });
    return ffi::Error::Success();
  }

  // By orders: one block per (s, m), [s][m][j][b][c], for the whole batch.
  const int64_t width = 2 * st.B * st.C;
  BufferCache::Handle handle =
      BufferCache::instance().take(static_cast<size_t>(st.S) * st.M * st.nlat * width * sizeof(T));
  if (!handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
  T* block = static_cast<T*>(handle.get());
  // Rings in (j, b) order: consecutive rings scatter into (or gather from) neighbouring chunks.
  auto rings_phase = [&] {
    parallel_for(pool, st.B * st.nlat, workers, [&](int64_t item, int w) {
      const int j = static_cast<int>(item / st.B);
      const int64_t b = item % st.B;
      phases.ring(block, width, b, j, b * st.C * 2, rings[w], w);
    });
  };
  auto orders_phase = [&] {
    std::vector<ColumnPair<T>> pairs(workers);
    parallel_for(pool, static_cast<int64_t>(st.S) * st.L, workers, [&](int64_t item, int w) {
      const int s = static_cast<int>(item % st.S);
      const int am = static_cast<int>(item / st.S);
      st.build(s, am, pairs[w]);
      phases.order(pairs[w], s, am, block, width, work[w], 0, st.B);
    });
  };
  if constexpr (Phases::kRingsFirst) {
    rings_phase();
    orders_phase();
  } else {
    orders_phase();
    rings_phase();
  }
  return ffi::Error::Success();
}

// The analysis of a call: ring_load(b, j, worker) gives the T values of ring j
// of batch item b (st.ring_values() of them), valid until the worker's next
// call (the RingLoad of sphcnn/contract.h).
template <typename T, typename RingLoad>
ffi::Error analysis(ffi::ThreadPool& pool, const cpu::Call& call, const RingLoad& ring_load, T* out) {
  const Stage<T> st(call);
  return schedule(pool, st, AnalysisPhases<T, RingLoad>{st, ring_load, out});
}

// The synthesis of a call: ring_store.target(b, j, worker) is where ring j of
// batch item b goes (nlon * lanes complex values), ring_store.finish(b, j,
// worker) is called once it is written there (the RingStore of
// sphcnn/contract.h); `affine`, if any, maps the coefficients on the way (the
// CoefficientLoad of sphcnn_affine_synthesis).
template <typename T, typename RingStore>
ffi::Error synthesis(ffi::ThreadPool& pool, const cpu::Call& call, const T* a, RingStore& ring_store,
                     const CoefficientAffine<T>* affine = nullptr) {
  const Stage<T> st(call);
  return schedule(pool, st, SynthesisPhases<T, RingStore>{st, a, ring_store, affine});
}

// The plain RingLoad: rings straight from the input maps.
template <typename T>
struct MapLoad {
  const T* maps;
  int64_t ring_size;  // T values of one ring
  int rings;          // per map
  const T* operator()(int64_t b, int j, int) const { return maps + (b * rings + j) * ring_size; }
};

// The plain RingStore: rings straight into the output maps.
template <typename T>
struct MapStore {
  T* maps;
  int64_t ring_size;  // T values of one ring
  int rings;          // per map
  T* target(int64_t b, int j, int) const { return maps + (b * rings + j) * ring_size; }
  void finish(int64_t, int, int) const {}
};

// The plain transform of a decoded call, from `in` into `out`.
template <bool kAnalysis>
ffi::Error transform(ffi::ThreadPool& pool, const cpu::Call& call, const ffi::AnyBuffer& in, ffi::AnyBuffer& out) {
  const Geometry& g = call.g;
  return cpu::execute(g.is_double, out.element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    const T* src = static_cast<const T*>(in.untyped_data());
    T* dst = static_cast<T*>(out.untyped_data());
    const int64_t lanes = static_cast<int64_t>(g.spins) * g.channels;
    if constexpr (kAnalysis) {
      const MapLoad<T> ring_load{src, g.nlon * lanes * (g.real_input ? 1 : 2), g.nlat};
      return analysis<T>(pool, call, ring_load, dst);
    } else {
      MapStore<T> ring_store{dst, g.nlon * lanes * 2, g.nlat};
      return synthesis<T>(pool, call, src, ring_store);
    }
  });
}

template <bool kAnalysis>
ffi::Error transform_handler(ffi::ThreadPool pool, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                             ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> scratch,
                             ffi::Span<const int64_t> spins, Sign sign, bool degree_major, LambdaSource source) {
  auto call = cpu::decode_call(kAnalysis ? "sphcnn_analysis" : "sphcnn_synthesis", kAnalysis, in, scale, table,
                               *out, *scratch, spins, sign, degree_major, source);
  if (call.has_error()) return call.error();
  return transform<kAnalysis>(pool, *call, in, *out);
}

// The same transforms on any grid of nlat rings of nlon points at the
// colatitudes ring_theta (the grid targets of sphcnn/contract.h).
template <bool kAnalysis>
ffi::Error grid_handler(ffi::ThreadPool pool, ffi::AnyBuffer in, ffi::AnyBuffer scale, ffi::AnyBuffer table,
                        ffi::AnyBuffer ring_theta, ffi::Result<ffi::AnyBuffer> out,
                        ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                        bool degree_major, LambdaSource source, bool mirrored) {
  auto call = cpu::decode_grid_call(kAnalysis ? "sphcnn_grid_analysis" : "sphcnn_grid_synthesis", kAnalysis, in,
                                    scale, table, *out, *scratch, spins, sign, degree_major, source, ring_theta,
                                    mirrored);
  if (call.has_error()) return call.error();
  return transform<kAnalysis>(pool, *call, in, *out);
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

// The activated analysis: the RingLoad makes the rings with the prologue in
// per-worker buffers.
template <typename T>
ffi::Error run_activated(ffi::ThreadPool& pool, const cpu::Call& call, const FusedActivation<T>& prologue, T* out) {
  const int workers = worker_count(pool);
  std::vector<std::vector<T>> ring_buffers(workers), lines(workers);
  auto ring_load = [&](int64_t b, int j, int w) {
    ring_buffers[w].resize(2 * static_cast<size_t>(call.g.n) * call.g.spins * call.g.channels);
    lines[w].resize(prologue.line_values());
    prologue.ring(b, j, ring_buffers[w].data(), lines[w].data());
    return static_cast<const T*>(ring_buffers[w].data());
  };
  return analysis<T>(pool, call, ring_load, out);
}

ffi::Error activated_handler(ffi::ThreadPool pool, ffi::AnyBuffer maps, ffi::AnyBuffer bias, ffi::AnyBuffer taps,
                             ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                             ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                             bool degree_major, LambdaSource source, int64_t leaky_spin, bool pool_maps,
                             double epsilon, double slope) {
  auto call = cpu::decode_call("sphcnn_activated_analysis", true, maps, scale, table, *out, *scratch, spins, sign,
                               degree_major, source, pool_maps ? 2 : 1);
  if (call.has_error()) return call.error();
  if (ffi::Error e = check_activation(call->target, call->g, bias, taps, leaky_spin, pool_maps); e.failure()) return e;
  return cpu::execute(call->g.is_double, out->element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    return run_activated<T>(pool, *call,
                            fused_activation<T>(maps, bias, taps, call->g, pool_maps, leaky_spin, epsilon, slope),
                            static_cast<T*>(out->untyped_data()));
  });
}

// The synthesis of affinely mapped coefficients (a batch norm's apply).
ffi::Error affine_handler(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer factor, ffi::AnyBuffer offset,
                          ffi::AnyBuffer scale, ffi::AnyBuffer table, ffi::Result<ffi::AnyBuffer> out,
                          ffi::Result<ffi::AnyBuffer> scratch, ffi::Span<const int64_t> spins, Sign sign,
                          bool degree_major, LambdaSource source) {
  auto call = cpu::decode_call("sphcnn_affine_synthesis", false, a, scale, table, *out, *scratch, spins, sign,
                               degree_major, source);
  if (call.has_error()) return call.error();
  const Geometry& g = call->g;
  if (ffi::Error e = check_affine(call->target, g, a, factor, offset); e.failure()) return e;
  return cpu::execute(g.is_double, out->element_count() == 0, {}, [&](auto zero) {
    using T = decltype(zero);
    const CoefficientAffine<T> affine{static_cast<const T*>(factor.untyped_data()),
                                      static_cast<const T*>(offset.untyped_data())};
    MapStore<T> ring_store{static_cast<T*>(out->untyped_data()), static_cast<int64_t>(g.n) * g.spins * g.channels * 2,
                           g.n};
    return synthesis<T>(pool, *call, static_cast<const T*>(a.untyped_data()), ring_store, &affine);
  });
}

// The gradient of the activated analysis. Without pooling the transposed
// analysis (a synthesis) hands each ring of the activated maps' cotangent to
// the nonlinearity's gradient while it is in cache; with pooling, the pooled
// maps' cotangent (a quarter of the maps' size) goes to a cached buffer first,
// then every fine ring is unpooled and differentiated. Each ring's share of the
// bias cotangent is kept apart and the shares are added in ring order at the
// end, so that the result does not depend on which worker took which ring.
template <typename T>
struct GradientStore {
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
ffi::Error run_gradient(ffi::ThreadPool& pool, const cpu::Call& call, const FusedActivation<T>& stage, const T* ct,
                        T* ct_maps, T* ct_bias) {
  const Geometry& g = call.g;
  const int workers = worker_count(pool);
  const int64_t lanes = stage.lanes();
  const int n_in = stage.n_in();
  std::vector<std::vector<T>> rings(workers, std::vector<T>(stage.line_values()));
  std::vector<T> shares(static_cast<size_t>(g.batch) * n_in * lanes);
  if (n_in == g.n) {
    GradientStore<T> ring_store{stage, ct_maps, rings, shares.data(), n_in};
    if (ffi::Error e = synthesis<T>(pool, call, ct, ring_store); e.failure()) return e;
  } else {
    const int64_t ring_size = static_cast<int64_t>(g.n) * lanes * 2;
    BufferCache::Handle handle = BufferCache::instance().take(static_cast<size_t>(g.batch * g.n) * ring_size *
                                                              sizeof(T));
    if (!handle) return ffi::Error(ffi::ErrorCode::kResourceExhausted, "sphcnn: out of memory");
    T* pooled = static_cast<T*>(handle.get());
    MapStore<T> ring_store{pooled, ring_size, g.n};
    if (ffi::Error e = synthesis<T>(pool, call, ct, ring_store); e.failure()) return e;
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
  auto call = cpu::decode_call("sphcnn_activated_gradient", false, ct, scale, table, *ct_maps, *scratch, spins, sign,
                               degree_major, source, pool_maps ? 2 : 1);
  if (call.has_error()) return call.error();
  const Geometry& g = call->g;
  if (ffi::Error e = check_activation(call->target, g, bias, taps, leaky_spin, pool_maps); e.failure()) return e;
  if (ffi::Error e = check_gradient(call->target, g, maps, *ct_maps, bias, *ct_bias); e.failure()) return e;
  // an empty batch: the bias cotangent sums no terms
  return cpu::execute(g.is_double, ct_maps->element_count() == 0, {*ct_bias}, [&](auto zero) {
    using T = decltype(zero);
    return run_gradient<T>(pool, *call, fused_activation<T>(maps, bias, taps, g, pool_maps, leaky_spin, epsilon, slope),
                           static_cast<const T*>(ct.untyped_data()), static_cast<T*>(ct_maps->untyped_data()),
                           static_cast<T*>(ct_bias->untyped_data()));
  });
}

}  // namespace

namespace cpu {

size_t scratch_bytes(const Geometry&) {
  return 0;  // work space comes from the buffer cache (see the top of this file)
}

}  // namespace cpu
}  // namespace sphcnn

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAnalysisCpu, sphcnn::transform_handler<true>,
                              sphcnn::bindings::transform<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_analysis", SphcnnAnalysisCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnSynthesisCpu, sphcnn::transform_handler<false>,
                              sphcnn::bindings::transform<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_synthesis", SphcnnSynthesisCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnGridAnalysisCpu, sphcnn::grid_handler<true>,
                              sphcnn::bindings::grid_transform<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_grid_analysis", SphcnnGridAnalysisCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnGridSynthesisCpu, sphcnn::grid_handler<false>,
                              sphcnn::bindings::grid_transform<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_grid_synthesis", SphcnnGridSynthesisCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedAnalysisCpu, sphcnn::activated_handler,
                              sphcnn::bindings::activated_analysis<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_activated_analysis", SphcnnActivatedAnalysisCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnActivatedGradientCpu, sphcnn::gradient_handler,
                              sphcnn::bindings::activated_gradient<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_activated_gradient", SphcnnActivatedGradientCpu);

XLA_FFI_DEFINE_HANDLER_SYMBOL(SphcnnAffineSynthesisCpu, sphcnn::affine_handler,
                              sphcnn::bindings::affine_synthesis<xla::ffi::ThreadPool>());
SPHCNN_TARGET("sphcnn_affine_synthesis", SphcnnAffineSynthesisCpu);
