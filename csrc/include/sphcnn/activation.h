// The fused block boundary: a block's magnitude nonlinearity, and the stride-2
// spatial pooling of the next block, applied to the rings of the maps while the
// analysis reads them (target sphcnn_activated_analysis), so that neither the
// activated nor the pooled maps are ever written to memory; and its gradient,
// the transposed pooling and the nonlinearity's derivative applied to the rings
// the transposed analysis (a synthesis) writes (target sphcnn_activated_gradient).
//
// The same maths as the reference layers (python/sphcnn/nn):
//   nonlinearity (nonlinearities.activation), per (spin s, channel c):
//     z -> relu(|z| + b_sc) z / (|z| + epsilon),
//     on spin index leaky_spin (if any) z -> leaky_relu(Re z, slope), a real value;
//   pooling (pooling.spatial_pool), fine grid 2n -> coarse grid n:
//     line_k' = sum_t taps[J][t] fine ring (2J - 1 + t)_k', t = 0..3 (rings outside
//     the grid carry weight 0), then coarse_k = line_2k / 2 + (line_2k-1 + line_2k+1) / 4
//     with the longitude index taken modulo 2n (pool_stencil below, the one
//     copy of the stencil: the CPU and CUDA kernels and the CUDA emulators use it).
#pragma once

#include <cmath>
#include <cstdint>

#include "sphcnn/hd.h"

namespace sphcnn {

// Both are branch-free (selects, and a blend by leaky, 0 or 1, exact for finite
// values), so that the CPU loops over lanes vectorize; sqrt needs -fno-math-errno
// there.

// The activated value of z = (re, im); leaky: 1 on the leaky spin, else 0.
template <typename T>
SPHCNN_HD void activate(T re, T im, T bias, T leaky, T epsilon, T slope, T& out_re, T& out_im) {
  using std::sqrt;
  const T magnitude = sqrt(re * re + im * im);
  const T shifted = magnitude + bias;
  const T gain = (shifted > T(0) ? shifted : T(0)) / (magnitude + epsilon);
  const T leaky_re = (re > T(0) ? re : T(0)) + slope * (re < T(0) ? re : T(0));
  out_re = leaky * leaky_re + (T(1) - leaky) * gain * re;
  out_im = (T(1) - leaky) * gain * im;
}

// The cotangent (ct_re, ct_im) of z for the cotangent ct of its activated value,
// and the bias's share (added to bias_share). As nonlinearities._activation_backward:
// with r = |z|, g = relu(r + b) / (r + eps), the cotangent is g ct + [r + b > 0]
// (eps - b) / (r + eps)^2 Re(ct z) conj(z) / r, the bias's [r + b > 0] Re(ct z) /
// (r + eps); on the leaky spin Re(ct) (1 where Re z >= 0, else the slope), no bias.
template <typename T>
SPHCNN_HD void activation_gradient(T re, T im, T cr, T ci, T bias, T leaky, T epsilon, T slope, T& ct_re, T& ct_im,
                                   T& bias_share) {
  using std::sqrt;
  const T magnitude = sqrt(re * re + im * im);
  const T shifted = magnitude + bias;
  const T on = shifted > T(0) ? T(1) : T(0);
  const T denominator = magnitude + epsilon;
  const T gain = (shifted > T(0) ? shifted : T(0)) / denominator;
  const T projection = cr * re - ci * im;
  const T radial = on * (epsilon - bias) / (denominator * denominator) * projection /
                   (magnitude > T(0) ? magnitude : T(1));
  const T leaky_gain = re >= T(0) ? T(1) : slope;
  const T off = T(1) - leaky;
  ct_re = leaky * (cr * leaky_gain) + off * (gain * cr + radial * re);
  ct_im = off * (gain * ci - radial * im);
  bias_share += off * on * projection / denominator;
}

// The pooling's stencil along a ring of the fine grid: the coarse value at
// longitude k from the fine values at longitudes 2k - 1 (west), 2k (centre) and
// 2k + 1 (east). R is the real type, V that of the values (R, or complex).
template <typename R, typename V>
SPHCNN_HD V pool_stencil(const V& west, const V& centre, const V& east) {
  return R(0.5) * centre + R(0.25) * (west + east);
}

// Its transpose, times the tap of the coarse ring: the value at fine longitude
// 2k from coarse longitude k (here), which took it with the centre weight, and
// at 2k + 1 from coarse k and k + 1 (next), which took it with the east and the
// west weight (equal). The weights are the stencil at unit values (constants
// at compile time).
template <typename R, typename V>
SPHCNN_HD V unpool_stencil(R tap, const V& here) {
  return tap * pool_stencil<R>(R(0), R(1), R(0)) * here;
}

template <typename R, typename V>
SPHCNN_HD V unpool_stencil(R tap, const V& here, const V& next) {
  return tap * pool_stencil<R>(R(1), R(0), R(0)) * (here + next);
}

}  // namespace sphcnn
