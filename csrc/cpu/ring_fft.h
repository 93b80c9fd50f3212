// The longitude FFT of the CPU transforms. VectorFft (sphcnn/vector_fft.h)
// vectorizes over the lanes of one ring (spins x channels), so a ring of few maps
// runs its butterflies on one or two values at a time. With fewer than
// kWideLanes lanes, an n = n1 n2 point transform runs instead as Bailey's
// four-step FFT on wide elements:
//   n1-point FFTs over k1 of x[k1 n2 + k2], element [k2][lane] (n2 lanes wide),
//   the twiddles w^(q1 k2) (w = exp(sign 2 pi i / n)) and a transpose to [k2][q1],
//   n2-point FFTs over k2, element [q1][lane] (n1 lanes wide),
// which leaves X[q1 + n1 q2] at [q2][q1][lane]: the natural order.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "sphcnn/vector_fft.h"

namespace sphcnn {

template <typename T>
class RingFft {
 public:
  static constexpr int64_t kWideLanes = 16;

  RingFft(int n, int sign) : n_(n), direct_(n, sign) {
    int n1 = 1;
    for (int d = 2; static_cast<int64_t>(d) * d <= n; ++d) {
      if (n % d == 0) n1 = d;
    }
    if (n1 < 4) return;  // small or without a balanced split: direct only
    n1_ = n1;
    n2_ = n / n1;
    first_ = std::make_unique<VectorFft<T>>(n1_, sign);
    second_ = std::make_unique<VectorFft<T>>(n2_, sign);
    twiddles_.resize(2 * static_cast<size_t>(n));
    const double two_pi = 6.283185307179586476925286766559;
    for (int q1 = 0; q1 < n1_; ++q1) {
      for (int k2 = 0; k2 < n2_; ++k2) {
        const double angle = sign * two_pi * static_cast<double>(static_cast<int64_t>(q1) * k2 % n) / n;
        twiddles_[2 * (static_cast<size_t>(q1) * n2_ + k2)] = static_cast<T>(std::cos(angle));
        twiddles_[2 * (static_cast<size_t>(q1) * n2_ + k2) + 1] = static_cast<T>(std::sin(angle));
      }
    }
  }

  int size() const { return n_; }

  // Size in T values of the work buffer execute() needs.
  static int64_t work_size(int n, int64_t lanes) { return 6 * static_cast<int64_t>(n) * lanes; }

  // As VectorFft::execute (in may not alias out or work).
  void execute(const T* in, T* out, T* work, int64_t lanes, bool real_input = false) const {
    if (!first_ || lanes >= kWideLanes) {
      direct_.execute(in, out, work, lanes, real_input);
      return;
    }
    T* transposed = work + 4 * static_cast<int64_t>(n_) * lanes;
    first_->execute(in, out, work, n2_ * lanes, real_input);  // out: [q1][k2][lane]
    for (int q1 = 0; q1 < n1_; ++q1) {
      for (int k2 = 0; k2 < n2_; ++k2) {
        const T* src = out + (static_cast<int64_t>(q1) * n2_ + k2) * lanes * 2;
        T* dst = transposed + (static_cast<int64_t>(k2) * n1_ + q1) * lanes * 2;
        const T wr = twiddles_[2 * (static_cast<size_t>(q1) * n2_ + k2)];
        const T wi = twiddles_[2 * (static_cast<size_t>(q1) * n2_ + k2) + 1];
        for (int64_t v = 0; v < lanes; ++v) {
          dst[2 * v] = src[2 * v] * wr - src[2 * v + 1] * wi;
          dst[2 * v + 1] = src[2 * v] * wi + src[2 * v + 1] * wr;
        }
      }
    }
    second_->execute(transposed, out, work, n1_ * lanes);
  }

 private:
  int n_;
  int n1_ = 1, n2_ = 0;
  VectorFft<T> direct_;
  std::unique_ptr<VectorFft<T>> first_, second_;
  std::vector<T> twiddles_;  // [q1][k2] complex
};

}  // namespace sphcnn
