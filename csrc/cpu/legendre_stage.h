// The Legendre stage on the CPU, one (spin s, order |m|) pair at a time: both
// orders m = +|m| and -|m| in one pass over the ring slots of the grid (RingTrig:
// the north rings of a grid symmetric about the equator, else every ring). The
// south half follows from lambda_{l,m,s}(pi - theta) = (-1)^(l+s) lambda_{l,-m,s}(theta), so
// only the north columns lambda_{l,+m,s} and lambda_{l,-m,s} are needed; for spin 0
// or m = 0 they are one column up to the sign sigma = (-1)^m, and the degrees of
// each parity of l + s see the north and south rings either added or subtracted,
// which halves the products.
//
// The columns are generated kBlockRings rings at a time by the vectorized
// recurrence (lambda_blocks.h), kChunkRows degrees at a time, into a few KB that
// stay in L1; each chunk goes straight into register-tiled products with the
// Fourier coefficients (analysis) or the spectral coefficients (synthesis) of all
// maps of the call. The leading degrees at which the column stays below
// 2^-kLiveBits in every ring of a block (large |m| near the poles) are skipped.
// Nothing of size O(n L) is kept unless the pair is small (kKeepBytes) or comes
// from the packed table.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "lambda_blocks.h"
#include "sphcnn/packed_table.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {

// Degrees per generated chunk, and the largest pair whose columns are kept.
constexpr int kChunkRows = 64;
constexpr size_t kKeepBytes = size_t(256) << 10;
// Synthesis products with fewer columns run on ring-vector tiles (see synthesis_pair).
constexpr int64_t kRingTileColumns = 32;

// The columns of one (s, |m|) pair.
template <typename T>
struct ColumnPair {
  int m = 0;             // |m|
  int s = 0;             // spin
  int l0 = 0;            // first degree, max(|m|, |s|)
  int count = 0;         // ell_max - l0 + 1, or 0 when l0 > ell_max
  bool single = false;   // spin 0 or m = 0: lambda_{l,-m,s} = sigma lambda_{l,+m,s}
  double sigma = 1.0;    // (-1)^m
  ColumnStart starts[2]; // of +m and -m
  std::vector<double> alpha, beta_pos, beta_neg, gamma;
  std::shared_ptr<const RingTrig> rings;
  // Kept columns: block b holds the rows [first[b], count) of lambda_{+m} and then,
  // unless single, of lambda_{-m}, kBlockRings values per row, from offset[b].
  std::vector<T> kept;
  std::vector<int> first;
  std::vector<int64_t> offset;

  int columns() const { return single ? 1 : 2; }
  // Parity sign (-1)^(l + s) of row i.
  double parity(int i) const { return ((l0 + i + s) & 1) ? -1.0 : 1.0; }
  ColumnSteps steps() const { return ColumnSteps{alpha.data(), {beta_pos.data(), beta_neg.data()}, gamma.data()}; }
};

template <typename T>
bool prepare_column_pair(int m, int s, int ell_max, std::shared_ptr<const RingTrig> rings, ColumnPair<T>& cp) {
  cp.m = m;
  cp.s = s;
  cp.starts[0] = column_start(m, s);
  cp.starts[1] = column_start(-m, s);
  cp.l0 = cp.starts[0].l0;
  cp.count = cp.l0 <= ell_max ? ell_max - cp.l0 + 1 : 0;
  cp.single = s == 0 || m == 0;
  cp.sigma = (m & 1) ? -1.0 : 1.0;
  cp.rings = std::move(rings);
  cp.kept.clear();
  cp.first.clear();
  cp.offset.clear();
  return cp.count > 0;
}

// Keeps the columns given by fill(block, rows): rows (count x columns x kBlockRings,
// column c of row i at [(c count + i) kBlockRings]) of each block.
template <typename T, typename Fill>
void keep_columns(ColumnPair<T>& cp, Fill&& fill) {
  const int blocks = cp.rings->blocks;
  const int cols = cp.columns();
  std::vector<T> rows(static_cast<size_t>(cols) * cp.count * kBlockRings);
  cp.first.resize(blocks);
  cp.offset.resize(blocks);
  for (int b = 0; b < blocks; ++b) {
    const int first = fill(b, rows.data());
    cp.first[b] = first;
    cp.offset[b] = static_cast<int64_t>(cp.kept.size());
    for (int c = 0; c < cols; ++c) {
      const T* src = rows.data() + (static_cast<int64_t>(c) * cp.count + first) * kBlockRings;
      cp.kept.insert(cp.kept.end(), src, src + static_cast<int64_t>(cp.count - first) * kBlockRings);
    }
  }
}

// Generates rows [0, count) of block b into rows (layout of keep_columns); returns
// the first row written (BlockRecurrence::run).
template <typename T>
int generate_block(const ColumnPair<T>& cp, int b, T* rows) {
  T* out[2] = {rows, rows + static_cast<int64_t>(cp.count) * kBlockRings};
  if (cp.single) {
    BlockRecurrence<1> rec(cp.starts, cp.steps(), *cp.rings, b);
    return rec.run(0, cp.count, out);
  }
  BlockRecurrence<2> rec(cp.starts, cp.steps(), *cp.rings, b);
  return rec.run(0, cp.count, out);
}

// The step coefficients of sphcnn/recurrences.h (step_coefficients) for the rows
// i < steps of the column (m, s) starting at l0, as one loop the compiler
// vectorizes; beta of -m is -beta of +m.
inline void column_steps(int l0, int m, int s, int steps, double* alpha, double* beta, double* gamma) {
  const double md = static_cast<double>(m);
  const double mp = -static_cast<double>(s);
  const double mm = md * md, pp = mp * mp, mmp = md * mp;
  for (int i = 0; i < steps; ++i) {
    const double ld = static_cast<double>(l0 + i);
    const double l1 = ld + 1.0;
    const double r_next = std::sqrt((l1 * l1 - mm) * (l1 * l1 - pp));
    const double r_this_sq = (ld * ld - mm) * (ld * ld - pp);
    const double r_this = std::sqrt(r_this_sq > 0.0 ? r_this_sq : 0.0);
    const double up = std::sqrt((2.0 * ld + 3.0) / (2.0 * ld + 1.0));
    alpha[i] = up * (2.0 * ld + 1.0) * l1 / r_next;
    beta[i] = -up * (2.0 * ld + 1.0) * mmp / (ld * r_next);
    gamma[i] = -std::sqrt((2.0 * ld + 3.0) / (2.0 * ld - 1.0)) * l1 * r_this / (ld * r_next);
  }
  if (l0 == 0 && steps > 0) {  // e_1 = sqrt(3) x e_0
    alpha[0] = std::sqrt(3.0);
    beta[0] = 0.0;
    gamma[0] = 0.0;
  }
}

// The recurrence coefficients of one (s, |m|) pair; the columns themselves are
// kept only when they take at most kKeepBytes.
template <typename T>
void build_column_pair(int m, int s, int ell_max, std::shared_ptr<const RingTrig> rings, ColumnPair<T>& cp) {
  if (!prepare_column_pair(m, s, ell_max, std::move(rings), cp)) return;
  const int steps = cp.count - 1;
  cp.alpha.resize(steps);
  cp.beta_pos.resize(steps);
  cp.beta_neg.resize(steps);
  cp.gamma.resize(steps);
  column_steps(cp.l0, m, s, steps, cp.alpha.data(), cp.beta_pos.data(), cp.gamma.data());
  for (int i = 0; i < steps; ++i) cp.beta_neg[i] = -cp.beta_pos[i];
  const size_t bytes = static_cast<size_t>(cp.rings->blocks) * cp.columns() * cp.count * kBlockRings * sizeof(T);
  if (bytes <= kKeepBytes) {
    keep_columns(cp, [&](int b, T* rows) { return generate_block(cp, b, rows); });
  }
}

// The same columns read from the packed table (sphcnn/packed_table.h) of spin
// index `spin_index` instead of the recurrence (the n x n grid, whose `rings`
// are ring_trig(n): slot j is ring j).
template <typename T>
void column_pair_from_table(int m, int s, int spin_index, int ell_max, int n, const T* table,
                            std::shared_ptr<const RingTrig> rings, ColumnPair<T>& cp) {
  if (!prepare_column_pair(m, s, ell_max, std::move(rings), cp)) return;
  const PackedTable layout = packed_table(n, ell_max, sizeof(T));
  const T* pair = table + layout.pair_offset(spin_index, m);
  const int half = n / 2;
  keep_columns(cp, [&](int b, T* rows) {
    int first = cp.count;
    for (int c = 0; c < cp.columns(); ++c) {
      for (int i = 0; i < cp.count; ++i) {
        T* row = rows + (static_cast<int64_t>(c) * cp.count + i) * kBlockRings;
        for (int r = 0; r < kBlockRings; ++r) {
          const int j = b * kBlockRings + r;
          row[r] = j < half ? pair[layout.entry(m, c, j, cp.l0 + i)] : T(0);
          if (row[r] != T(0)) first = std::min(first, i);
        }
      }
    }
    return first;
  });
}

// Calls body(row0, rows, plus, minus) for consecutive row ranges [row0, row0 +
// rows) of block b that hold all its nonzero rows: lambda_{+m} of row row0 + i at
// plus[i kBlockRings + ring], lambda_{-m} likewise at minus (unless single).
// lam: scratch of 2 kChunkRows kBlockRings values.
template <typename T, typename Body>
void for_each_chunk(const ColumnPair<T>& cp, int b, T* lam, Body&& body) {
  if (!cp.offset.empty()) {
    const int first = cp.first[b];
    if (first == cp.count) return;
    const T* plus = cp.kept.data() + cp.offset[b];
    body(first, cp.count - first, plus, plus + static_cast<int64_t>(cp.count - first) * kBlockRings);
    return;
  }
  T* out[2] = {lam, lam + kChunkRows * kBlockRings};
  auto run = [&](auto& rec) {
    for (int i0 = 0; i0 < cp.count; i0 += kChunkRows) {
      const int i1 = std::min(cp.count, i0 + kChunkRows);
      const int first = rec.run(i0, i1, out);
      if (first < i1 - i0) {
        body(i0 + first, i1 - i0 - first, out[0] + first * kBlockRings, out[1] + first * kBlockRings);
      }
    }
  };
  if (cp.single) {
    BlockRecurrence<1> rec(cp.starts, cp.steps(), *cp.rings, b);
    run(rec);
  } else {
    BlockRecurrence<2> rec(cp.starts, cp.steps(), *cp.rings, b);
    run(rec);
  }
}

// Register tiles of K rows x V vectors of kWidth T values:
//   out[r * out_r + v] += sum_k lhs(r, k) rhs[k * rhs_k + v],
// lhs(r, k) the P values from lhs + r * lhs_r + k * lhs_k repeated across the
// vector (P = 1: one value broadcast). With P > 1 each rhs row holds P
// interleaved rows of P x fewer columns (lane c P + p: column c of row k P + p),
// so that narrow products still fill whole vectors; the P lanes of a column
// are summed by the caller.
template <typename T>
struct Simd {
  typedef T Vec __attribute__((vector_size(32)));
  static constexpr int kWidth = 32 / sizeof(T);
};

// The P (> 1) values at p (8 or 16 bytes) repeated across the vector out.
template <typename T, int P>
inline void repeat(const T* p, typename Simd<T>::Vec& out) {
  typedef double Quad __attribute__((vector_size(32)));
  typedef double Pair __attribute__((vector_size(16)));
  Quad v;
  if constexpr (P * sizeof(T) == 8) {
    double d;
    std::memcpy(&d, p, sizeof d);
    v = Quad{d, d, d, d};
  } else {
    static_assert(P * sizeof(T) == 16, "repeat: 8 or 16 bytes");
    Pair q;
    std::memcpy(&q, p, sizeof q);
    v = __builtin_shufflevector(q, q, 0, 1, 0, 1);
  }
  std::memcpy(&out, &v, sizeof out);
}

template <typename T, int K, int V, int P>
inline void gemm_tile(int64_t depth, const T* __restrict lhs, int64_t lhs_r, int64_t lhs_k,
                      const T* __restrict rhs, int64_t rhs_k, T* __restrict out, int64_t out_r) {
  using Vec = typename Simd<T>::Vec;
  constexpr int E = Simd<T>::kWidth;
  Vec acc[K][V];
  for (int r = 0; r < K; ++r) {
    for (int v = 0; v < V; ++v) std::memcpy(&acc[r][v], out + r * out_r + v * E, sizeof(Vec));
  }
  for (int64_t k = 0; k < depth; ++k) {
    Vec x[V];
    for (int v = 0; v < V; ++v) std::memcpy(&x[v], rhs + k * rhs_k + v * E, sizeof(Vec));
    const T* a = lhs + k * lhs_k;
    for (int r = 0; r < K; ++r) {
      if constexpr (P == 1) {
        const T ar = a[r * lhs_r];
        for (int v = 0; v < V; ++v) acc[r][v] += ar * x[v];
      } else {
        Vec ar;
        repeat<T, P>(a + r * lhs_r, ar);
        acc[r][0] += ar * x[0];
      }
    }
  }
  for (int r = 0; r < K; ++r) {
    for (int v = 0; v < V; ++v) std::memcpy(out + r * out_r + v * E, &acc[r][v], sizeof(Vec));
  }
}

template <typename T, int V, int P>
void gemm_rows(int64_t rows, int64_t depth, const T* lhs, int64_t lhs_r, int64_t lhs_k, const T* rhs,
               int64_t rhs_k, T* out, int64_t out_r) {
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    gemm_tile<T, 8, V, P>(depth, lhs + r * lhs_r, lhs_r, lhs_k, rhs, rhs_k, out + r * out_r, out_r);
  }
  const T* l = lhs + r * lhs_r;
  T* o = out + r * out_r;
  switch (rows - r) {
    case 7: gemm_tile<T, 7, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 6: gemm_tile<T, 6, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 5: gemm_tile<T, 5, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 4: gemm_tile<T, 4, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 3: gemm_tile<T, 3, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 2: gemm_tile<T, 2, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    case 1: gemm_tile<T, 1, V, P>(depth, l, lhs_r, lhs_k, rhs, rhs_k, o, out_r); break;
    default: break;
  }
}

// out[r * out_r + v] += sum_k lhs(r, k) rhs[k * rhs_k + v] for r < rows, k < depth,
// v < vectors * Simd<T>::kWidth (lhs(r, k) as for gemm_tile; P > 1: one vector).
template <typename T>
void gemm_accumulate(int64_t rows, int64_t depth, int64_t vectors, int pack, const T* lhs, int64_t lhs_r,
                     int64_t lhs_k, const T* rhs, int64_t rhs_k, T* out, int64_t out_r) {
  if (rows <= 0 || depth <= 0) return;
  if (pack == 2) return gemm_rows<T, 1, 2>(rows, depth, lhs, lhs_r, lhs_k, rhs, rhs_k, out, out_r);
  if constexpr (sizeof(T) == 4) {
    if (pack == 4) return gemm_rows<T, 1, 4>(rows, depth, lhs, lhs_r, lhs_k, rhs, rhs_k, out, out_r);
  }
  constexpr int E = Simd<T>::kWidth;
  int64_t v = 0;
  for (; v + 2 <= vectors; v += 2) {
    gemm_rows<T, 2, 1>(rows, depth, lhs, lhs_r, lhs_k, rhs + v * E, rhs_k, out + v * E, out_r);
  }
  if (v < vectors) gemm_rows<T, 1, 1>(rows, depth, lhs, lhs_r, lhs_k, rhs + v * E, rhs_k, out + v * E, out_r);
}

// count T values from src to dst (src null: zeros): the runs of one batch item's
// channels are short, and a memcpy call each would cost more than the copy.
template <typename T>
inline void copy_run(T* dst, const T* src, int64_t count) {
  if (src == nullptr) {
    for (int64_t i = 0; i < count; ++i) dst[i] = T(0);
    return;
  }
  switch (count) {
    case 2: std::memcpy(dst, src, 2 * sizeof(T)); return;
    case 4: std::memcpy(dst, src, 4 * sizeof(T)); return;
    case 8: std::memcpy(dst, src, 8 * sizeof(T)); return;
    default: std::memcpy(dst, src, count * sizeof(T)); return;
  }
}

// T values per degree row of a pair: [+m (width) | -m (width, when m > 0)], padded
// to whole vectors.
template <typename T>
int64_t pair_row_stride(const ColumnPair<T>& cp, int64_t width) {
  constexpr int E = Simd<T>::kWidth;
  const int64_t values = cp.m > 0 ? 2 * width : width;
  return (values + E - 1) / E * E;
}

// Calls body(j, south, w_north, w_south, r) for the slots b kBlockRings + r of
// block b: ring j, its south partner (-1: none) and the two ring scales (0 for none).
template <typename Body>
void for_each_ring(const RingTrig& rings, int b, const double* ring_scale, Body&& body) {
  for (int r = 0; r < kBlockRings; ++r) {
    const int slot = b * kBlockRings + r;
    if (slot >= rings.slots) return;
    const int j = rings.north[slot], south = rings.south[slot];
    body(j, south, ring_scale[j], south < 0 ? 0.0 : ring_scale[south], r);
  }
}

// Analysis of one pair: for every row i (l = l0 + i),
//   a_{l,+m} = sum_j w_j lambda_{l,+m,s}(theta_j) F_{+m}(j), a_{l,-m} likewise,
// over all rings, F_{+m} at f_pos[j width], F_{-m} at f_neg (m > 0). Returns the
// rows [a_{l,+m} | a_{l,-m}] (pair_row_stride apart) in scratch.
template <typename T>
const T* analysis_pair(const ColumnPair<T>& cp, const double* ring_scale, const T* f_pos, const T* f_neg,
                       int64_t width, std::vector<T>& scratch) {
  constexpr int E = Simd<T>::kWidth;
  const int64_t stride = pair_row_stride(cp, width);
  const int64_t columns = cp.m > 0 ? 2 * width : width;
  // Rings per rhs row: P rings interleaved when the columns fill a vector P times.
  const int pack = columns * 2 == E ? 2 : (columns * 4 == E ? 4 : 1);
  const int64_t vectors = stride / E;
  const int64_t rows = static_cast<int64_t>(cp.count) * stride;
  const int64_t rhs = static_cast<int64_t>(kBlockRings) * stride;
  if (scratch.size() < static_cast<size_t>(2 * rows + 2 * rhs + 2 * kChunkRows * kBlockRings)) {
    scratch.resize(2 * rows + 2 * rhs + 2 * kChunkRows * kBlockRings);
  }
  T* out[2] = {scratch.data(), scratch.data() + rows};
  T* in[2] = {out[1] + rows, out[1] + rows + rhs};
  T* lam = in[1] + rhs;
  std::fill(out[0], out[0] + (cp.single ? rows : 2 * rows), T(0));
  std::fill(in[0], in[0] + 2 * rhs, T(0));  // padding columns stay zero
  const bool both = cp.m > 0;
  const double sg = cp.sigma;
  const int64_t depth = kBlockRings / pack;
  for (int b = 0; b < cp.rings->blocks; ++b) {
    // single: in[0] for the rows of parity +1, in[1] for -1; else in[0] for
    // lambda_{+m}, in[1] for lambda_{-m}. Slots past the last stay zero; a ring
    // without a partner reads itself as its south ring, with scale 0.
    if (b > 0 && (b + 1) * kBlockRings > cp.rings->slots) std::fill(in[0], in[0] + 2 * rhs, T(0));
    for_each_ring(*cp.rings, b, ring_scale, [&](int j, int partner, double w_north, double w_south, int r) {
      const int south = partner < 0 ? j : partner;
      T* x = in[0] + r / pack * stride + r % pack;
      T* y = in[1] + r / pack * stride + r % pack;
      const T wn = static_cast<T>(w_north), ws = static_cast<T>(w_south);
      const T swn = static_cast<T>(sg * w_north), sws = static_cast<T>(sg * w_south);
      const T* pn = f_pos + j * width;
      const T* ps = f_pos + south * width;
      if (cp.single) {
        for (int64_t c = 0; c < width; ++c) {
          x[c * pack] = wn * pn[c] + sws * ps[c];
          y[c * pack] = wn * pn[c] - sws * ps[c];
        }
      } else {
        for (int64_t c = 0; c < width; ++c) {
          x[c * pack] = wn * pn[c];
          y[c * pack] = ws * ps[c];
        }
      }
      if (!both) return;
      const T* nn = f_neg + j * width;
      const T* ns = f_neg + south * width;
      T* x1 = x + width * pack;
      T* y1 = y + width * pack;
      if (cp.single) {
        for (int64_t c = 0; c < width; ++c) {
          x1[c * pack] = swn * nn[c] + ws * ns[c];
          y1[c * pack] = swn * nn[c] - ws * ns[c];
        }
      } else {
        for (int64_t c = 0; c < width; ++c) {
          x1[c * pack] = ws * ns[c];
          y1[c * pack] = wn * nn[c];
        }
      }
    });
    for_each_chunk(cp, b, lam, [&](int row0, int count, const T* plus, const T* minus) {
      if (cp.single) {
        for (int e = 0; e < 2; ++e) {
          const int start = row0 + ((cp.parity(row0) > 0) == (e == 0) ? 0 : 1);
          const int64_t n_rows = (row0 + count - start + 1) / 2;
          gemm_accumulate<T>(n_rows, depth, vectors, pack, plus + (start - row0) * kBlockRings, 2 * kBlockRings,
                             pack, in[e], stride, out[0] + start * stride, 2 * stride);
        }
      } else {
        gemm_accumulate<T>(count, depth, vectors, pack, plus, kBlockRings, pack, in[0], stride,
                           out[0] + row0 * stride, stride);
        gemm_accumulate<T>(count, depth, vectors, pack, minus, kBlockRings, pack, in[1], stride,
                           out[1] + row0 * stride, stride);
      }
    });
  }
  for (int k = 0; k < (cp.single ? 1 : 2) && pack > 1; ++k) {
    for (int i = 0; i < cp.count; ++i) {  // sum the interleaved rings of each column
      T* o = out[k] + i * stride;
      for (int64_t c = 0; c < columns; ++c) {
        T sum = o[c * pack];
        for (int p = 1; p < pack; ++p) sum += o[c * pack + p];
        o[c] = sum;
      }
    }
  }
  if (!cp.single) {
    // a_{l,+m} = [lambda+ . F+(N)] + p [lambda- . F+(S)], a_{l,-m} = [lambda- . F-(N)] + p [lambda+ . F-(S)].
    for (int i = 0; i < cp.count; ++i) {
      const T p = static_cast<T>(cp.parity(i));
      T* o = out[0] + i * stride;
      const T* q = out[1] + i * stride;
      for (int64_t c = 0; c < width; ++c) o[c] += p * q[c];
      for (int64_t c = width; c < 2 * width; ++c) o[c] = q[c] + p * o[c];
    }
  }
  return out[0];
}

// Ring-vector tiles of the synthesis: Wt columns x kBlockRings rings,
//   out[w * kBlockRings + r] += sum_k rhs[k * rhs_k + w] lhs[k * lhs_k + r],
// the rings of a lhs row being contiguous (kBlockRings / RingSimd<T>::kWidth vectors).
template <typename T>
struct RingSimd {
  typedef T Vec __attribute__((vector_size(64)));
  static constexpr int kWidth = 64 / sizeof(T);
  static constexpr int kTile = sizeof(T) == 4 ? 8 : 4;  // columns per tile
};

template <typename T, int Wt>
inline void ring_tile(int64_t depth, const T* __restrict lhs, int64_t lhs_k, const T* __restrict rhs, int64_t rhs_k,
                      T* __restrict out) {
  using Vec = typename RingSimd<T>::Vec;
  constexpr int E = RingSimd<T>::kWidth;
  constexpr int R = kBlockRings / E;
  Vec acc[Wt][R];
  for (int w = 0; w < Wt; ++w) {
    for (int r = 0; r < R; ++r) std::memcpy(&acc[w][r], out + w * kBlockRings + r * E, sizeof(Vec));
  }
  for (int64_t k = 0; k < depth; ++k) {
    Vec l[R];
    for (int r = 0; r < R; ++r) std::memcpy(&l[r], lhs + k * lhs_k + r * E, sizeof(Vec));
    const T* a = rhs + k * rhs_k;
    for (int w = 0; w < Wt; ++w) {
      const T b = a[w];
      for (int r = 0; r < R; ++r) acc[w][r] += b * l[r];
    }
  }
  for (int w = 0; w < Wt; ++w) {
    for (int r = 0; r < R; ++r) std::memcpy(out + w * kBlockRings + r * E, &acc[w][r], sizeof(Vec));
  }
}

// ring_tile over `columns` (even) columns.
template <typename T>
void ring_accumulate(int64_t columns, int64_t depth, const T* lhs, int64_t lhs_k, const T* rhs, int64_t rhs_k,
                     T* out) {
  if (depth <= 0) return;
  constexpr int kTile = RingSimd<T>::kTile;
  int64_t w = 0;
  for (; w + kTile <= columns; w += kTile) {
    ring_tile<T, kTile>(depth, lhs, lhs_k, rhs + w, rhs_k, out + w * kBlockRings);
  }
  const T* b = rhs + w;
  T* o = out + w * kBlockRings;
  switch (columns - w) {
    case 6: ring_tile<T, 6>(depth, lhs, lhs_k, b, rhs_k, o); break;
    case 4: ring_tile<T, 4>(depth, lhs, lhs_k, b, rhs_k, o); break;
    case 2: ring_tile<T, 2>(depth, lhs, lhs_k, b, rhs_k, o); break;
    default: break;
  }
}

// Scratch for synthesis_pair: returns where the caller puts the rows [a_{l,+m} |
// a_{l,-m}] (pair_row_stride apart; the padding is not read).
template <typename T>
T* synthesis_rows(const ColumnPair<T>& cp, int64_t width, std::vector<T>& scratch) {
  const int64_t stride = pair_row_stride(cp, width);
  const int64_t rows = static_cast<int64_t>(cp.count) * stride;
  const int64_t acc = static_cast<int64_t>(kBlockRings) * stride;
  if (scratch.size() < static_cast<size_t>(2 * rows + 2 * acc + 2 * kChunkRows * kBlockRings)) {
    scratch.resize(2 * rows + 2 * acc + 2 * kChunkRows * kBlockRings);
  }
  return scratch.data();
}

// The rings j (north) and its south partner of G_{+m} (pn, ps) and G_{-m} (nn, ns,
// null when m = 0; ps and ns null when j has no partner) from the accumulators
// of ring j, column c at e[c kStep] and o[c kStep]: single: the rows of parity
// +1 and -1, else lambda+ and lambda-.
template <int kStep, typename T>
inline void write_rings(const ColumnPair<T>& cp, int64_t width, const T* e, const T* o, double w_north,
                        double w_south, T* pn, T* ps, T* nn, T* ns) {
  const T wn = static_cast<T>(w_north), ws = static_cast<T>(w_south);
  const T swn = static_cast<T>(cp.sigma * w_north), sws = static_cast<T>(cp.sigma * w_south);
  const T* e1 = e + width * kStep;
  const T* o1 = o + width * kStep;
  if (cp.single) {
    for (int64_t c = 0; c < width; ++c) pn[c] = wn * (e[c * kStep] + o[c * kStep]);
    if (ps != nullptr) {
      for (int64_t c = 0; c < width; ++c) ps[c] = sws * (e[c * kStep] - o[c * kStep]);
    }
    if (nn == nullptr) return;
    for (int64_t c = 0; c < width; ++c) nn[c] = swn * (e1[c * kStep] + o1[c * kStep]);
    if (ns != nullptr) {
      for (int64_t c = 0; c < width; ++c) ns[c] = ws * (e1[c * kStep] - o1[c * kStep]);
    }
  } else {
    for (int64_t c = 0; c < width; ++c) pn[c] = wn * e[c * kStep];
    if (ps != nullptr) {
      for (int64_t c = 0; c < width; ++c) ps[c] = ws * o[c * kStep];
    }
    if (nn == nullptr) return;
    for (int64_t c = 0; c < width; ++c) nn[c] = wn * o1[c * kStep];
    if (ns != nullptr) {
      for (int64_t c = 0; c < width; ++c) ns[c] = ws * e1[c * kStep];
    }
  }
}

// Synthesis of one pair from the rows synthesis_rows handed out:
//   G_{+m}(j) = w_j sum_l lambda_{l,+m,s}(theta_j) a_{l,+m}, G_{-m}(j) likewise,
// at all rings, into g_pos[j width] and g_neg (m > 0). Fewer than
// kRingTileColumns columns go through ring-vector tiles (acc[column][ring]),
// more through column tiles (acc[ring][column]), whose results need no transpose.
template <typename T>
void synthesis_pair(const ColumnPair<T>& cp, const double* ring_scale, int64_t width,
                    std::vector<T>& scratch, T* g_pos, T* g_neg) {
  const int64_t stride = pair_row_stride(cp, width);
  const int64_t columns = cp.m > 0 ? 2 * width : width;
  const int64_t rows = static_cast<int64_t>(cp.count) * stride;
  const int64_t acc_size = static_cast<int64_t>(kBlockRings) * stride;
  const bool ring_tiles = columns < kRingTileColumns;
  T* in[2] = {scratch.data(), scratch.data() + rows};
  T* acc[2] = {in[1] + rows, in[1] + rows + acc_size};
  T* lam = acc[1] + acc_size;
  const bool both = cp.m > 0;
  for (int i = 0; i < cp.count; ++i) {
    T* a = in[0] + i * stride;
    T* b = in[1] + i * stride;
    std::fill(a + columns, a + stride, T(0));  // read by the column tiles
    if (cp.single) continue;
    // lambda+ multiplies [a_{+m} | p a_{-m}], lambda- multiplies [p a_{+m} | a_{-m}].
    const T p = static_cast<T>(cp.parity(i));
    for (int64_t c = 0; c < width; ++c) b[c] = p * a[c];
    for (int64_t c = width; c < columns; ++c) {
      b[c] = a[c];
      a[c] = p * a[c];
    }
    std::fill(b + columns, b + stride, T(0));
  }
  const int64_t vectors = stride / Simd<T>::kWidth;
  // out += lambda rows (k apart, from lhs) x coefficient rows (rhs_k apart).
  auto accumulate = [&](int64_t depth, const T* lhs, int64_t lhs_k, const T* rhs, int64_t rhs_k, T* out) {
    if (ring_tiles) {
      ring_accumulate<T>(columns, depth, lhs, lhs_k, rhs, rhs_k, out);
    } else {
      gemm_accumulate<T>(kBlockRings, depth, vectors, 1, lhs, 1, lhs_k, rhs, rhs_k, out, stride);
    }
  };
  for (int b = 0; b < cp.rings->blocks; ++b) {
    std::fill(acc[0], acc[0] + 2 * acc_size, T(0));
    for_each_chunk(cp, b, lam, [&](int row0, int count, const T* plus, const T* minus) {
      if (cp.single) {
        // acc[0]: the rows of parity +1, acc[1]: -1.
        for (int e = 0; e < 2; ++e) {
          const int start = row0 + ((cp.parity(row0) > 0) == (e == 0) ? 0 : 1);
          accumulate((row0 + count - start + 1) / 2, plus + (start - row0) * kBlockRings, 2 * kBlockRings,
                     in[0] + start * stride, 2 * stride, acc[e]);
        }
      } else {
        accumulate(count, plus, kBlockRings, in[0] + row0 * stride, stride, acc[0]);
        accumulate(count, minus, kBlockRings, in[1] + row0 * stride, stride, acc[1]);
      }
    });
    // ring j of G at g + j width; its south partner's, null when it has none
    auto ring = [width](T* g, int j) { return g == nullptr || j < 0 ? nullptr : g + j * width; };
    T* neg = both ? g_neg : nullptr;
    if (ring_tiles) {
      for_each_ring(*cp.rings, b, ring_scale, [&](int j, int south, double w_north, double w_south, int r) {
        write_rings<kBlockRings>(cp, width, acc[0] + r, acc[1] + r, w_north, w_south, ring(g_pos, j),
                                 ring(g_pos, south), ring(neg, j), ring(neg, south));
      });
    } else {
      for_each_ring(*cp.rings, b, ring_scale, [&](int j, int south, double w_north, double w_south, int r) {
        write_rings<1>(cp, width, acc[0] + r * stride, acc[1] + r * stride, w_north, w_south, ring(g_pos, j),
                       ring(g_pos, south), ring(neg, j), ring(neg, south));
      });
    }
  }
}

}  // namespace sphcnn
