// The per-degree channel and spin mixing of a spin-weighted spherical
// convolution on degree-major coefficients (targets sphcnn_mixing and
// sphcnn_mixing_weight_gradient), skipping the orders |m| > l that hold
// no coefficient: half of the dense (L, 2L - 1) rows.
//
//   sphcnn_mixing:  operands x (L, R, M, K_in), w (L, K_in, K_out); result
//     y (L, R, M, K_out), complex (both complex64 or both complex128), M = 2L - 1:
//     y[l, r, mi] = x[l, r, mi] w[l] for |mi - (L - 1)| <= l, 0 elsewhere.
//   sphcnn_mixing_weight_gradient: operands x (L, R, M, K_in), ct (L, R,
//     M, K_out); result g (L, K_in, K_out): g[l] = sum over r and |mi - (L - 1)| <= l
//     of x[l, r, mi]^T ct[l, r, mi] (no conjugation: the linear transpose).
//
// The cotangent of x is sphcnn_mixing of ct with w[l]^T. R is the product
// of the batch axes, K = S C the (spin, channel) lanes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "sphcnn/shape_string.h"
#include "xla/ffi/api/ffi.h"

namespace sphcnn {

struct MixingShape {
  int64_t L, R, M, k_in, k_out;
  bool is_double;
  // The rows of degree l that hold coefficients: mi in [L - 1 - l, L - 1 + l].
  int64_t first_row(int64_t l) const { return L - 1 - l; }
  int64_t rows(int64_t l) const { return 2 * l + 1; }
};

namespace mixing_detail {

inline xla::ffi::Error invalid(const char* target, const std::string& what) {
  return xla::ffi::Error::InvalidArgument(std::string(target) + ": " + what);
}

// (L, R, M, K) of a degree-major array of rank >= 3: L, the product of the middle
// axes, M and K; false when the rank is below 3 or M != 2L - 1.
inline bool split(xla::ffi::Span<const int64_t> dims, int64_t& L, int64_t& R, int64_t& M, int64_t& K) {
  if (dims.size() < 3) return false;
  L = dims[0];
  M = dims[dims.size() - 2];
  K = dims[dims.size() - 1];
  R = 1;
  for (size_t i = 1; i + 2 < dims.size(); ++i) R *= dims[i];
  return L >= 1 && M == 2 * L - 1;
}

}  // namespace mixing_detail

// The shape of a call: `x` (L, R..., M, K_in) and `other`, the second operand
// ((L, K_in, K_out) weights, or the cotangent (L, R..., M, K_out) when
// `other_is_rows`), and the result `out`.
inline xla::ffi::ErrorOr<MixingShape> mixing_shape(const char* target, const xla::ffi::AnyBuffer& x,
                                                   const xla::ffi::AnyBuffer& other, const xla::ffi::AnyBuffer& out,
                                                   bool other_is_rows) {
  namespace ffi = xla::ffi;
  using mixing_detail::invalid;
  MixingShape s{};
  const ffi::DataType type = x.element_type();
  if ((type != ffi::C64 && type != ffi::C128) || other.element_type() != type || out.element_type() != type) {
    return ffi::Unexpected(invalid(target, "x, its second operand and the result must all be complex64 or all "
                                           "complex128"));
  }
  s.is_double = type == ffi::C128;
  if (!mixing_detail::split(x.dimensions(), s.L, s.R, s.M, s.k_in)) {
    return ffi::Unexpected(invalid(target, "x has shape " + shape_string(x.dimensions()) +
                                               "; expected degree-major (L, batch..., 2L - 1, K_in)"));
  }
  const auto rows_dims = other_is_rows ? other.dimensions() : out.dimensions();
  const auto matrix_dims = other_is_rows ? out.dimensions() : other.dimensions();
  int64_t L, R, M, K;
  const bool rows_ok = mixing_detail::split(rows_dims, L, R, M, K) && rows_dims.size() == x.dimensions().size() &&
                       std::equal(rows_dims.begin(), rows_dims.end() - 1, x.dimensions().begin());
  if (!rows_ok) {
    return ffi::Unexpected(invalid(target, std::string(other_is_rows ? "ct" : "the result") + " has shape " +
                                               shape_string(rows_dims) + "; expected x's shape " +
                                               shape_string(x.dimensions()) + " up to the last axis"));
  }
  s.k_out = K;
  if (matrix_dims.size() != 3 || matrix_dims[0] != s.L || matrix_dims[1] != s.k_in || matrix_dims[2] != s.k_out) {
    return ffi::Unexpected(invalid(target, std::string(other_is_rows ? "the result" : "w") + " has shape " +
                                               shape_string(matrix_dims) + "; expected (L, K_in, K_out) = (" +
                                               std::to_string(s.L) + ", " + std::to_string(s.k_in) + ", " +
                                               std::to_string(s.k_out) + ")"));
  }
  return s;
}

// y rows = x rows w for kRows rows at once: complex x (k_in, interleaved) times
// w split into real and imaginary planes (k_in, k_out), in tiles of kTile
// outputs whose accumulators stay in registers.
template <typename T, int kRows>
inline void mix_rows(const T* const* x, const T* w_re, const T* w_im, int64_t k_in, int64_t k_out, T* const* y) {
  constexpr int kTile = 8;
  for (int64_t o0 = 0; o0 < k_out; o0 += kTile) {
    const int64_t width = std::min<int64_t>(kTile, k_out - o0);
    T acc_re[kRows][kTile] = {};
    T acc_im[kRows][kTile] = {};
    if (width == kTile) {
      for (int64_t i = 0; i < k_in; ++i) {
        const T* wr = w_re + i * k_out + o0;
        const T* wi = w_im + i * k_out + o0;
        for (int r = 0; r < kRows; ++r) {
          const T xr = x[r][2 * i], xi = x[r][2 * i + 1];
#pragma omp simd
          for (int o = 0; o < kTile; ++o) {
            acc_re[r][o] += xr * wr[o] - xi * wi[o];
            acc_im[r][o] += xr * wi[o] + xi * wr[o];
          }
        }
      }
    } else {
      for (int64_t i = 0; i < k_in; ++i) {
        const T* wr = w_re + i * k_out + o0;
        const T* wi = w_im + i * k_out + o0;
        for (int r = 0; r < kRows; ++r) {
          const T xr = x[r][2 * i], xi = x[r][2 * i + 1];
          for (int64_t o = 0; o < width; ++o) {
            acc_re[r][o] += xr * wr[o] - xi * wi[o];
            acc_im[r][o] += xr * wi[o] + xi * wr[o];
          }
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int64_t o = 0; o < width; ++o) {
        y[r][2 * (o0 + o)] = acc_re[r][o];
        y[r][2 * (o0 + o) + 1] = acc_im[r][o];
      }
    }
  }
}

// g += sum over kRows rows of x[row]^T ct[row]: x rows complex (k_in,
// interleaved), ct rows split into planes ct_re, ct_im (kRows, k_out), g split
// into planes g_re, g_im (k_in, k_out).
template <typename T, int kRows>
inline void accumulate_outer(const T* const* x, const T* ct_re, const T* ct_im, int64_t k_in, int64_t k_out,
                             T* g_re, T* g_im) {
  for (int64_t i = 0; i < k_in; ++i) {
    T xr[kRows], xi[kRows];
    for (int r = 0; r < kRows; ++r) {
      xr[r] = x[r][2 * i];
      xi[r] = x[r][2 * i + 1];
    }
    T* gr = g_re + i * k_out;
    T* gi = g_im + i * k_out;
#pragma omp simd
    for (int64_t o = 0; o < k_out; ++o) {
      T sum_re = gr[o], sum_im = gi[o];
      for (int r = 0; r < kRows; ++r) {
        const T cr = ct_re[r * k_out + o], ci = ct_im[r * k_out + o];
        sum_re += xr[r] * cr - xi[r] * ci;
        sum_im += xr[r] * ci + xi[r] * cr;
      }
      gr[o] = sum_re;
      gi[o] = sum_im;
    }
  }
}

}  // namespace sphcnn
