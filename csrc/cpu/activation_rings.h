// The rings of the fused block boundary on the CPU (sphcnn/activation.h): the
// activated (and pooled) rings the activated analysis reads, and the rings of
// its gradient.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "sphcnn/activation.h"

namespace sphcnn {

// Rings of the activated (and, with pool, pooled) maps, and of their gradient.
// maps: (B, n_in, n_in, S, C) complex (interleaved T values), n_in = n (no
// pooling) or 2 n; bias: (S, C) real (the row of leaky_spin is not read); taps:
// (n, 4) real when pooling.
template <typename T>
class FusedActivation {
 public:
  FusedActivation(const T* maps, const T* bias, const T* taps, int n_in, int n, int spins, int64_t channels,
                     int leaky_spin, T epsilon, T slope)
      : maps_(maps), taps_(taps), n_in_(n_in), n_(n), lanes_(spins * channels), epsilon_(epsilon), slope_(slope),
        lane_bias_(lanes_), lane_leaky_(lanes_) {
    for (int64_t q = 0; q < lanes_; ++q) {
      const bool leaky = q / channels == leaky_spin;
      lane_bias_[q] = leaky ? T(0) : bias[q];
      lane_leaky_[q] = leaky ? T(1) : T(0);
    }
  }

  // T values of the work buffer ring() needs.
  int64_t line_values() const { return 2 * static_cast<int64_t>(n_in_) * lanes_; }

  // Adds weight * activated fine ring r of item b to line (n_in * lanes complex):
  // one vectorized loop over the lanes of each point.
  void accumulate(int64_t b, int r, T weight, T* line) const {
    const int64_t L = lanes_;
    const T* src = maps_ + (b * n_in_ + r) * static_cast<int64_t>(n_in_) * L * 2;
    const T* bias = lane_bias_.data();
    const T* leaky = lane_leaky_.data();
    const T eps = epsilon_, slope = slope_;
    for (int k = 0; k < n_in_; ++k) {
      const T* z = src + static_cast<int64_t>(k) * L * 2;
      T* acc = line + static_cast<int64_t>(k) * L * 2;
#pragma omp simd
      for (int64_t q = 0; q < L; ++q) {
        T re, im;
        activate(z[2 * q], z[2 * q + 1], bias[q], leaky[q], eps, slope, re, im);
        acc[2 * q] += weight * re;
        acc[2 * q + 1] += weight * im;
      }
    }
  }

  // Ring j of item b of the analysis input into out (n * lanes complex); line:
  // line_values() T values of work space (unused without pooling).
  void ring(int64_t b, int j, T* out, T* line) const {
    if (n_in_ == n_) {
      std::memset(out, 0, sizeof(T) * 2 * n_ * lanes_);
      accumulate(b, j, T(1), out);
      return;
    }
    std::memset(line, 0, sizeof(T) * line_values());
    for (int t = 0; t < 4; ++t) {
      const int r = 2 * j - 1 + t;
      const T weight = taps_[4 * j + t];
      if (r >= 0 && r < n_in_ && weight != T(0)) accumulate(b, r, weight, line);
    }
    const int64_t row = 2 * lanes_;
    for (int k = 0; k < n_; ++k) {
      const T* centre = line + (2 * k) * row;
      const T* east = line + (2 * k + 1) * row;
      const T* west = line + ((2 * k - 1 + n_in_) % n_in_) * row;
      T* dst = out + k * row;
      for (int64_t q = 0; q < row; ++q) dst[q] = pool_stencil<T>(west[q], centre[q], east[q]);
    }
  }

  // The gradient at fine ring r of item b: ct_z (n_in * lanes complex), the
  // cotangent of the activated maps there, -> the same ring of ct_maps (the
  // cotangent of the maps); ring_bias (lanes values) gets the ring's share of the
  // bias cotangent (activation_gradient of sphcnn/activation.h).
  void gradient_ring(int64_t b, int r, const T* ct_z, T* ct_maps, T* ring_bias) const {
    const int64_t L = lanes_;
    const int64_t offset = (b * n_in_ + r) * static_cast<int64_t>(n_in_) * L * 2;
    const T* src = maps_ + offset;
    T* dst = ct_maps + offset;
    const T* bias = lane_bias_.data();
    const T* leaky = lane_leaky_.data();
    const T eps = epsilon_, slope = slope_;
    std::memset(ring_bias, 0, sizeof(T) * L);
    for (int k = 0; k < n_in_; ++k) {
      const T* z = src + static_cast<int64_t>(k) * L * 2;
      const T* ct = ct_z + static_cast<int64_t>(k) * L * 2;
      T* out = dst + static_cast<int64_t>(k) * L * 2;
#pragma omp simd
      for (int64_t q = 0; q < L; ++q) {
        activation_gradient(z[2 * q], z[2 * q + 1], ct[2 * q], ct[2 * q + 1], bias[q], leaky[q], eps, slope,
                            out[2 * q], out[2 * q + 1], ring_bias[q]);
      }
    }
  }

  // The transpose of the pooling at fine ring r of item b: the cotangent of the
  // activated maps there (n_in * lanes complex, into out) from that of the
  // pooled maps, coarse (B, n, n, S, C). Fine ring r takes tap t = r - 2J + 1 of
  // the coarse rings J it feeds; longitude 2k takes coarse k, 2k + 1 coarse k
  // and k + 1, through unpool_stencil (sphcnn/activation.h).
  void unpool_ring(const T* coarse, int64_t b, int r, T* out) const {
    const int64_t row = 2 * lanes_;
    std::memset(out, 0, sizeof(T) * line_values());
    for (int J = std::max(0, (r - 2) / 2); J <= std::min(n_ - 1, (r + 1) / 2); ++J) {
      const int t = r - 2 * J + 1;
      if (t < 0 || t > 3 || taps_[4 * J + t] == T(0)) continue;
      const T weight = taps_[4 * J + t];
      const T* ring = coarse + (b * n_ + J) * static_cast<int64_t>(n_) * row;
      for (int k = 0; k < n_; ++k) {
        const T* here = ring + k * row;
        const T* next = ring + ((k + 1) % n_) * row;
        T* even = out + (2 * k) * row;
        T* odd = out + (2 * k + 1) * row;
        for (int64_t q = 0; q < row; ++q) {
          even[q] += unpool_stencil(weight, here[q]);
          odd[q] += unpool_stencil(weight, here[q], next[q]);
        }
      }
    }
  }

  int n_in() const { return n_in_; }
  int64_t lanes() const { return lanes_; }

 private:
  const T* maps_;
  const T* taps_;
  int n_in_, n_;
  int64_t lanes_;
  T epsilon_, slope_;
  std::vector<T> lane_bias_, lane_leaky_;  // per lane (spin-major): bias, 1 on the leaky spin
};

}  // namespace sphcnn
