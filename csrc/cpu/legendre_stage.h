// The Legendre stage on the CPU: for one (spin s, order |m|) the columns
// lambda_{l,+m,s}(theta_j) and lambda_{l,-m,s}(theta_j) at every ring are generated
// on the fly by the shared recurrence (north rings only; the south half follows
// from lambda_{l,m,s}(pi - theta) = (-1)^(l+s) lambda_{l,-m,s}(theta)), then applied
// to all maps at once by a register-blocked matrix product.
#pragma once

#include <cstdint>
#include <vector>

#include "sphcnn/packed_table.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {

// lambda columns of one (s, |m|) pair at all n rings, each ring scaled by
// ring_scale[j]: pos[j * stride + (l - l0)] = ring_scale[j] lambda_{l,+m,s}(theta_j),
// likewise neg for -m, l in [l0, ell_max].
template <typename T>
struct ColumnPair {
  int l0 = 0;
  int count = 0;   // ell_max - l0 + 1, or 0 when l0 > ell_max
  int stride = 0;  // row stride of pos and neg
  std::vector<T> pos, neg;
  std::vector<double> alpha, beta_pos, beta_neg, gamma, col_pos, col_neg;
};

// Sizes the columns of one (s, |m|) pair: l0, count, stride and the two tables.
template <typename T>
bool size_column_pair(int m, int s, int ell_max, int n, ColumnPair<T>& cp) {
  cp.l0 = column_start(m, s).l0;
  cp.count = cp.l0 <= ell_max ? ell_max - cp.l0 + 1 : 0;
  if (cp.count == 0) return false;
  cp.stride = cp.count;
  cp.pos.resize(static_cast<size_t>(n) * cp.stride);
  cp.neg.resize(static_cast<size_t>(n) * cp.stride);
  return true;
}

// Stores the columns lambda_{l,+m,s}, lambda_{l,-m,s} (l from l0, any real
// type) of north ring j into the rows of ring j and of its south partner
// n - 1 - j, scaled by the ring scales (south: times (-1)^(l+s), signs swapped).
template <typename T, typename V>
void store_ring_pair(ColumnPair<T>& cp, int s, int n, int j, const double* ring_scale, const V* col_pos,
                     const V* col_neg) {
  const int south = n - 1 - j;
  const double wn = ring_scale[j];
  const double ws = ring_scale[south];
  T* pn = cp.pos.data() + static_cast<size_t>(j) * cp.stride;
  T* nn = cp.neg.data() + static_cast<size_t>(j) * cp.stride;
  T* ps = cp.pos.data() + static_cast<size_t>(south) * cp.stride;
  T* ns = cp.neg.data() + static_cast<size_t>(south) * cp.stride;
  for (int i = 0; i < cp.count; ++i) {
    const double parity = ((cp.l0 + i + s) & 1) ? -1.0 : 1.0;
    pn[i] = static_cast<T>(wn * col_pos[i]);
    nn[i] = static_cast<T>(wn * col_neg[i]);
    ps[i] = static_cast<T>(ws * parity * col_neg[i]);
    ns[i] = static_cast<T>(ws * parity * col_pos[i]);
  }
}

template <typename T>
void build_column_pair(int m, int s, int ell_max, int n, const double* ring_scale,
                       ColumnPair<T>& cp) {
  if (!size_column_pair(m, s, ell_max, n, cp)) return;
  const ColumnStart start_pos = column_start(m, s);
  const ColumnStart start_neg = column_start(-m, s);
  const int steps = cp.count - 1;
  cp.alpha.resize(steps);
  cp.beta_pos.resize(steps);
  cp.beta_neg.resize(steps);
  cp.gamma.resize(steps);
  for (int i = 0; i < steps; ++i) {
    const StepCoefficients p = step_coefficients(cp.l0 + i, m, s);
    const StepCoefficients q = step_coefficients(cp.l0 + i, -m, s);
    cp.alpha[i] = p.alpha;
    cp.beta_pos[i] = p.beta;
    cp.beta_neg[i] = q.beta;
    cp.gamma[i] = p.gamma;
  }
  cp.col_pos.resize(cp.count);
  cp.col_neg.resize(cp.count);
  for (int j = 0; j < n / 2; ++j) {
    const double theta = ring_theta(j, n);
    const double x = cos(theta);
    double lc, ls;
    half_angle_logs(theta, &lc, &ls);
    ColumnState sp = column_begin(start_pos, lc, ls);
    ColumnState sn = column_begin(start_neg, lc, ls);
    cp.col_pos[0] = column_value(sp);
    cp.col_neg[0] = column_value(sn);
    for (int i = 0; i < steps; ++i) {
      column_step(sp, cp.alpha[i], cp.beta_pos[i], cp.gamma[i], x);
      column_step(sn, cp.alpha[i], cp.beta_neg[i], cp.gamma[i], x);
      cp.col_pos[i + 1] = column_value(sp);
      cp.col_neg[i + 1] = column_value(sn);
    }
    store_ring_pair(cp, s, n, j, ring_scale, cp.col_pos.data(), cp.col_neg.data());
  }
}

// The same columns read from the packed table (sphcnn/packed_table.h) of spin
// index `spin_index` instead of the recurrence.
template <typename T>
void column_pair_from_table(int m, int s, int spin_index, int ell_max, int n, const double* ring_scale,
                            const T* table, ColumnPair<T>& cp) {
  if (!size_column_pair(m, s, ell_max, n, cp)) return;
  const PackedTable layout = packed_table(n, ell_max, sizeof(T));
  const T* pair = table + layout.pair_offset(spin_index, m);
  for (int j = 0; j < n / 2; ++j) {
    store_ring_pair(cp, s, n, j, ring_scale, pair + layout.entry(m, 0, j, cp.l0), pair + layout.entry(m, 1, j, cp.l0));
  }
}

// out[r * out_stride + w] = sum_k lhs[k * lhs_k + r * lhs_r] * rhs[k * rhs_k + w]
// for r < rows, w < width (all in T values; complex data is just twice as wide,
// since lambda is real). Register tiles of kRows x kWidth accumulators.
template <typename T>
struct GemmTile;
template <>
struct GemmTile<float> {
  static constexpr int kRows = 8;
  static constexpr int kWidth = 32;
};
template <>
struct GemmTile<double> {
  static constexpr int kRows = 8;
  static constexpr int kWidth = 16;
};

template <typename T, int R, int W>
inline void gemm_tile(int64_t depth, const T* __restrict lhs, int64_t lhs_k, int64_t lhs_r,
                      const T* __restrict rhs, int64_t rhs_k, T* __restrict out,
                      int64_t out_stride) {
  T acc[R][W];
  for (int r = 0; r < R; ++r) {
#pragma omp simd
    for (int w = 0; w < W; ++w) acc[r][w] = T(0);
  }
  for (int64_t k = 0; k < depth; ++k) {
    const T* __restrict x = rhs + k * rhs_k;
    const T* __restrict a = lhs + k * lhs_k;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const T ar = a[r * lhs_r];
#pragma omp simd
      for (int w = 0; w < W; ++w) acc[r][w] += ar * x[w];
    }
  }
  for (int r = 0; r < R; ++r) {
#pragma omp simd
    for (int w = 0; w < W; ++w) out[r * out_stride + w] = acc[r][w];
  }
}

// Edge tiles (fewer rows or a narrower width).
template <typename T>
inline void gemm_edge(int64_t depth, int rows, int width, const T* lhs, int64_t lhs_k,
                      int64_t lhs_r, const T* rhs, int64_t rhs_k, T* out, int64_t out_stride) {
  for (int r = 0; r < rows; ++r) {
    T* o = out + r * out_stride;
    for (int w = 0; w < width; ++w) o[w] = T(0);
    for (int64_t k = 0; k < depth; ++k) {
      const T a = lhs[k * lhs_k + r * lhs_r];
      const T* x = rhs + k * rhs_k;
#pragma omp simd
      for (int w = 0; w < width; ++w) o[w] += a * x[w];
    }
  }
}

template <typename T>
void gemm(int64_t depth, int64_t rows, int64_t width, const T* lhs, int64_t lhs_k,
          int64_t lhs_r, const T* rhs, int64_t rhs_k, T* out, int64_t out_stride) {
  constexpr int R = GemmTile<T>::kRows;
  constexpr int W = GemmTile<T>::kWidth;
  for (int64_t w0 = 0; w0 < width; w0 += W) {
    const int wd = static_cast<int>(width - w0 < W ? width - w0 : W);
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
      const int rd = static_cast<int>(rows - r0 < R ? rows - r0 : R);
      const T* l = lhs + r0 * lhs_r;
      const T* x = rhs + w0;
      T* o = out + r0 * out_stride + w0;
      if (rd == R && wd == W) {
        gemm_tile<T, R, W>(depth, l, lhs_k, lhs_r, x, rhs_k, o, out_stride);
      } else {
        gemm_edge<T>(depth, rd, wd, l, lhs_k, lhs_r, x, rhs_k, o, out_stride);
      }
    }
  }
}

}  // namespace sphcnn
