// The gradient of the activated analysis on CUDA (target
// sphcnn_activated_gradient, sphcnn/activation.h). Without pooling, K1 of the
// transposed analysis (a synthesis) differentiates each value as it stores it
// (ring_dft.h, gradient_store), with per-(ring, row) bias shares. With pooling,
// the synthesis writes the cotangent of the pooled maps to scratch (a quarter
// of the maps' size) and one kernel here takes every ring of the pre-activation
// maps through the transposed pooling and the nonlinearity's derivative, with
// per-ring bias shares. Either way two more kernels add the shares in a fixed
// order (deterministic, no atomics): column_sum_block adds fixed chunks of the
// partials' rows into chunk sums, then the chunk sums (bias_chunk_sums,
// bias_total).
//
// Layouts (complex values interleaved): cotangent of the analysis input
// `pooled` (B, n, n, lanes); maps and ct_maps (B, n_in, n_in, lanes), n_in = n or
// 2 n (pooling); bias and ct_bias (lanes) = (S, C); partials (B n_in, lanes)
// (without pooling (n, B lanes): the same count, summed the same way);
// chunk_sums (chunks, lanes).
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>

#include "block_common.h"
#include "launch_plan.h"
#include "sphcnn/activation.h"

namespace sphcnn {
namespace cuda {

constexpr int kGradientThreads = 256;

template <typename T>
struct GradientArgs {
  const Cpx<T>* pooled;
  const Cpx<T>* maps;
  const T* bias;
  const T* taps;  // (n, 4) when pooling, else null
  Cpx<T>* ct_maps;
  T* partials;
  T* chunk_sums;
  T* ct_bias;
  int n, n_in, lanes;
  int64_t channels, batch;
  int leaky_spin;
  T epsilon, slope;
};

// The bias sums add the partials' columns (one per lane) in two levels. A block
// of column_sum_block takes `width` lanes (all of them up to the block's
// threads) with `groups` threads per lane; each thread adds every groups-th row
// of its chunk in order, then the groups' sums meet in a fixed pairwise tree.
// The first level's chunks hold kBiasRowsPerThread rows per thread, the second
// is one chunk of every chunk sum, so that neither level has a long serial sum.
constexpr int kBiasRowsPerThread = 16;

SPHCNN_HD int column_width(int64_t lanes) {
  return lanes > 0 && lanes < kGradientThreads ? static_cast<int>(lanes) : kGradientThreads;
}
SPHCNN_HD int column_groups(int64_t lanes) { return kGradientThreads / column_width(lanes); }
SPHCNN_HD int64_t bias_chunk_rows(int64_t lanes) {
  return static_cast<int64_t>(kBiasRowsPerThread) * column_groups(lanes);
}
// Chunks of the first level for `rows` partial rows.
SPHCNN_HD int64_t bias_chunks(int64_t rows, int64_t lanes) { return ceil_div(rows, bias_chunk_rows(lanes)); }

// The scratch of a gradient call: the transposed analysis's own scratch (the
// synthesis launch plan's), then the cotangent of the analysis input, then the
// partials and their chunk sums, each 256-byte aligned.
struct GradientScratch {
  size_t pooled_offset, partials_offset, chunk_sums_offset, bytes;
};

inline GradientScratch gradient_scratch(size_t transform_bytes, int64_t batch, int n, int n_in, int64_t lanes,
                                        size_t real_bytes) {
  auto up = [](size_t v) { return (v + 255) / 256 * 256; };
  const int64_t rows = batch * n_in;
  GradientScratch g{};
  g.pooled_offset = up(transform_bytes);
  g.partials_offset = g.pooled_offset + up(2 * real_bytes * static_cast<size_t>(batch) * n * n * lanes);
  g.chunk_sums_offset = g.partials_offset + up(real_bytes * static_cast<size_t>(rows) * lanes);
  g.bytes = g.chunk_sums_offset + up(real_bytes * static_cast<size_t>(bias_chunks(rows, lanes)) * lanes);
  return g;
}

// The scratch of sphcnn_activated_gradient for the geometry of its transposed
// analysis (grid n) and the maps' grid n_in.
inline GradientScratch activated_gradient_scratch(const Geometry& g, LambdaSource source, int n_in) {
  return gradient_scratch(launch_plan(g, false, source).scratch_bytes, g.batch, g.n, n_in,
                          static_cast<int64_t>(g.spins) * g.channels, g.is_double ? 8 : 4);
}

// sphcnn_mixing_gradient (mixing_stage.h): the activated gradient's scratch,
// then ct_a (the analysis's coefficients' cotangent, in its spectral layout);
// one launch of synthesis_mixing_block over (|m|, batch tile) items replaces
// K2 of the synthesis. Only with the lambda table and at most kSpinsPerLaunch
// spins (else `supported` is false and the caller composes the targets).
struct MixingGradientLaunch {
  LaunchPlan plan;
  GradientScratch scratch;
  bool supported = false;
  int batch_tile = 1;
  int64_t items = 0;
  int64_t blocks = 0;
  size_t shared_bytes = 0;
  size_t coefficients_offset = 0;
  size_t scratch_bytes = 0;
};

inline MixingGradientLaunch mixing_gradient_launch(const Geometry& g, LambdaSource source, int n_in) {
  MixingGradientLaunch ml;
  ml.plan = launch_plan(g, false, source);
  ml.scratch = activated_gradient_scratch(g, source, n_in);
  ml.supported = source == LambdaSource::kTable && g.spins <= kSpinsPerLaunch;
  ml.batch_tile = mixing_batch_tile(g.batch, g.channels);
  ml.items = static_cast<int64_t>(g.L()) * ceil_div(g.batch, ml.batch_tile);
  ml.blocks = std::min<int64_t>(ml.items, INT_MAX);
  ml.shared_bytes = g.is_double ? mixing_synthesis_shared_bytes<double>() : mixing_synthesis_shared_bytes<float>();
  ml.coefficients_offset = ml.scratch.bytes;
  const size_t complex_bytes = g.is_double ? 16 : 8;
  ml.scratch_bytes = ml.coefficients_offset + align256(complex_bytes * static_cast<size_t>(g.batch) * g.L() * g.M() *
                                                       g.spins * static_cast<size_t>(g.channels));
  return ml;
}

// Blocks of the gradient kernel.
template <typename T>
SPHCNN_HD int64_t gradient_blocks(const GradientArgs<T>& a) { return a.batch * a.n_in; }

// One level of the bias sums: out[k, q] = the sum of in[r, q] over the rows r
// of chunk k, [k chunk_rows, (k + 1) chunk_rows) within `rows`.
template <typename T>
struct ColumnSum {
  const T* in;   // (rows, lanes)
  T* out;        // (ceil(rows / chunk_rows), lanes)
  int64_t rows, chunk_rows;
  int lanes;
};

template <typename T>
SPHCNN_HD ColumnSum<T> bias_chunk_sums(const GradientArgs<T>& a) {
  return ColumnSum<T>{a.partials, a.chunk_sums, a.batch * a.n_in, bias_chunk_rows(a.lanes), a.lanes};
}
template <typename T>
SPHCNN_HD ColumnSum<T> bias_total(const GradientArgs<T>& a) {
  const int64_t chunks = bias_chunks(a.batch * a.n_in, a.lanes);
  return ColumnSum<T>{a.chunk_sums, a.ct_bias, chunks, chunks, a.lanes};
}
// Work items (chunk, lane tile) of a level, and its blocks (which loop over
// the items, so that the sums do not depend on the grid).
template <typename T>
SPHCNN_HD int64_t column_sum_items(const ColumnSum<T>& s) {
  return ceil_div(s.rows, s.chunk_rows) * ceil_div(s.lanes, column_width(s.lanes));
}
template <typename T>
SPHCNN_HD int64_t column_sum_blocks(const ColumnSum<T>& s) {
  const int64_t items = column_sum_items(s);
  return items < INT_MAX ? items : INT_MAX;
}
// Bytes of shared memory of a gradient or column sum block: one value per thread.
template <typename T>
SPHCNN_HD size_t gradient_shared_bytes() { return sizeof(T) * kGradientThreads; }

// The cotangent of the activated maps at fine ring r, longitude k, lane q of
// item b: the transpose of the pooling (fine ring r takes tap t = r - 2J + 1 of
// the coarse rings J it feeds; longitude 2k takes coarse k, 2k + 1 coarse k and
// k + 1, through unpool_stencil), or the cotangent itself without pooling.
template <typename T>
SPHCNN_HD Cpx<T> unpooled(const GradientArgs<T>& a, int64_t b, int r, int k, int q) {
  if (a.taps == nullptr) return a.pooled[((b * a.n + r) * a.n + k) * a.lanes + q];
  Cpx<T> sum{T(0), T(0)};
  const int first = r >= 2 ? (r - 2) / 2 : 0;
  const int last = (r + 1) / 2 < a.n - 1 ? (r + 1) / 2 : a.n - 1;
  for (int J = first; J <= last; ++J) {
    const int t = r - 2 * J + 1;
    if (t < 0 || t > 3) continue;
    const T w = a.taps[4 * J + t];
    if (w == T(0)) continue;
    const Cpx<T>* ring = a.pooled + (b * a.n + J) * static_cast<int64_t>(a.n) * a.lanes;
    const Cpx<T> here = ring[static_cast<int64_t>(k / 2) * a.lanes + q];
    if (k % 2 == 0) {
      sum.re += unpool_stencil(w, here.re);
      sum.im += unpool_stencil(w, here.im);
    } else {
      const Cpx<T> next = ring[static_cast<int64_t>((k / 2 + 1) % a.n) * a.lanes + q];
      sum.re += unpool_stencil(w, here.re, next.re);
      sum.im += unpool_stencil(w, here.im, next.im);
    }
  }
  return sum;
}

// Block (b, r), b = block / n_in: every lane of fine ring r of item b. With
// lanes < threads, `groups` threads share a lane, each taking every groups-th
// longitude; their bias shares are added in thread order, so the partial of
// (b, r, lane) does not depend on scheduling.
template <typename T, typename Ctx>
SPHCNN_HD void activation_gradient_block(const Ctx& ctx, const GradientArgs<T>& a, unsigned char* smem) {
  T* shares = reinterpret_cast<T*>(smem);
  const int64_t item = ctx.block();
  const int64_t b = item / a.n_in;
  const int r = static_cast<int>(item % a.n_in);
  const int groups = a.lanes < kGradientThreads ? kGradientThreads / a.lanes : 1;
  const int stride = groups * a.lanes < kGradientThreads ? groups * a.lanes : kGradientThreads;
  const int64_t ring = (b * a.n_in + r) * static_cast<int64_t>(a.n_in) * a.lanes;
  for (int q0 = 0; q0 < a.lanes; q0 += stride / groups) {
    const int t = ctx.tid();
    const int q = q0 + t % (stride / groups);
    const int g = t / (stride / groups);
    T share = T(0);
    if (t < stride && q < a.lanes) {
      const int spin = static_cast<int>(q / a.channels);
      const T leaky = spin == a.leaky_spin ? T(1) : T(0);
      const T bias = a.bias[q];
      for (int k = g; k < a.n_in; k += groups) {
        const int64_t at = ring + static_cast<int64_t>(k) * a.lanes + q;
        const Cpx<T> z = a.maps[at];
        const Cpx<T> ct = unpooled(a, b, r, k, q);
        Cpx<T> out;
        activation_gradient(z.re, z.im, ct.re, ct.im, bias, leaky, a.epsilon, a.slope, out.re, out.im, share);
        a.ct_maps[at] = out;
      }
    }
    shares[t] = share;
    ctx.sync();
    if (t < stride / groups && q < a.lanes) {
      T sum = T(0);
      for (int h = 0; h < groups; ++h) sum += shares[h * (stride / groups) + t];
      a.partials[item * a.lanes + q] = sum;
    }
    ctx.sync();
  }
}

// Item (chunk k, lane tile): thread (group g, lane q) adds rows g, g + groups,
// ... of chunk k in order; the groups' sums are then added pairwise, group g
// taking g + span for span = 1, 2, 4, ... (the same tree whatever the grid).
template <typename T, typename Ctx>
SPHCNN_HD void column_sum_block(const Ctx& ctx, const ColumnSum<T>& s, unsigned char* smem) {
  T* shares = reinterpret_cast<T*>(smem);
  const int width = column_width(s.lanes), groups = column_groups(s.lanes);
  const int t = ctx.tid(), g = t / width;
  const int64_t tiles = ceil_div(s.lanes, width);
  for (int64_t item = ctx.block(); item < column_sum_items(s); item += ctx.blocks()) {
    const int64_t chunk = item / tiles;
    const int64_t q = (item % tiles) * width + t % width;
    const int64_t first = chunk * s.chunk_rows;
    const int64_t end = first + s.chunk_rows < s.rows ? first + s.chunk_rows : s.rows;
    T sum = T(0);
    if (g < groups && q < s.lanes) {
      for (int64_t r = first + g; r < end; r += groups) sum += s.in[r * s.lanes + q];
    }
    shares[t] = sum;
    ctx.sync();
    for (int span = 1; span < groups; span *= 2) {
      if (g % (2 * span) == 0 && g + span < groups) shares[t] += shares[t + span * width];
      ctx.sync();
    }
    if (g == 0 && q < s.lanes) s.out[chunk * s.lanes + q] = shares[t];
    ctx.sync();  // shares is refilled by the next item
  }
}

}  // namespace cuda
}  // namespace sphcnn
