// What the CPU emulations of tests/cuda_emulation share besides the launch
// (emulated_launch.h): scratch that starts as NaN, the float64 lambda of the
// references, random data, the error bookkeeping of a check, and a digest of
// a case's outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "block_common.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {
namespace emulation {

using cd = std::complex<double>;

// `bytes` of scratch (and 16 more) holding NaN of T: whatever a kernel reads
// before writing shows up in its outputs.
template <typename T>
std::vector<unsigned char> nan_scratch(size_t bytes) {
  std::vector<unsigned char> scratch(bytes + 16);
  const T nan = T(NAN);
  for (size_t i = 0; i + sizeof(T) <= scratch.size(); i += sizeof(T)) std::memcpy(scratch.data() + i, &nan, sizeof(T));
  return scratch;
}

// lambda_{l,m,s}(theta_j) in float64 from the recurrence of sphcnn/recurrences.h,
// at [((s n + j) M + mi) L + l] (mi = m + ell_max); zeros for |s| > ell_max.
inline std::vector<double> lambda_reference(int n, int ell_max, const std::vector<int>& spins) {
  const int L = ell_max + 1, M = 2 * ell_max + 1;
  std::vector<double> lam(spins.size() * static_cast<size_t>(n) * M * L, 0.0);
  for (size_t s = 0; s < spins.size(); ++s) {
    for (int j = 0; j < n; ++j) {
      if (std::abs(spins[s]) <= ell_max) {
        spin_legendre_columns(ell_max, spins[s], ring_theta(j, n), lam.data() + (s * n + j) * M * L);
      }
    }
  }
  return lam;
}

// sum_j lambda_{l,m,s}(theta_j) F[s, mi, j, p]: the Legendre sum of Fourier
// rings F (S, M, n, padded) at column p, for the lambda of lambda_reference.
template <typename T>
cd legendre_sum(const std::vector<double>& lam, const cuda::Cpx<T>* rings, int64_t padded, int n, int ell_max, int s,
                int mi, int l, int64_t p) {
  const int L = ell_max + 1, M = 2 * ell_max + 1;
  cd sum = 0.0;
  for (int j = 0; j < n; ++j) {
    const cuda::Cpx<T> v = rings[((static_cast<int64_t>(s) * M + mi) * n + j) * padded + p];
    sum += lam[((static_cast<size_t>(s) * n + j) * M + mi) * L + l] * cd(v.re, v.im);
  }
  return sum;
}

// Standard normal complex values of T, `count` from `values`.
template <typename T>
void fill_normal(cuda::Cpx<T>* values, size_t count, std::mt19937& rng) {
  std::normal_distribution<double> nd;
  for (size_t i = 0; i < count; ++i) values[i] = cuda::Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
}

template <typename T>
void fill_normal(std::vector<cuda::Cpx<T>>& values, std::mt19937& rng) {
  fill_normal(values.data(), values.size(), rng);
}

// The work items of block `block` when `blocks` blocks take items block,
// block + blocks, ... of `items`.
inline int64_t items_of_block(int64_t items, int64_t block, int64_t blocks) {
  return items > block ? (items - block + blocks - 1) / blocks : 0;
}

// One output checked against its float64 reference: the largest reference
// magnitude and error, and problems (values not written, or not exactly zero
// where they must be).
struct Check {
  double ref = 0, worst = 0;
  int problems = 0;
  template <typename T>
  void note(cuda::Cpx<T> got, cd want, bool zero = false) {
    if (!std::isfinite(got.re) || !std::isfinite(got.im)) {
      problems++;
      return;
    }
    if (zero && (got.re != T(0) || got.im != T(0))) problems++;
    ref = std::max(ref, std::abs(want));
    worst = std::max(worst, std::abs(cd(got.re, got.im) - want));
  }
  // error relative to the largest reference value
  double relative() const { return worst / (ref > 0 ? ref : 1.0); }
};

// FNV-1a (64-bit) over the bytes of a case's outputs: a bit-exact digest,
// printed as a line "digest <hex>" after the case's check line, so that runs
// under the two schedules of emulated_schedule.h can be compared.
struct Digest {
  uint64_t value = 14695981039346656037ull;
  void add(const void* data, size_t bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) value = (value ^ p[i]) * 1099511628211ull;
  }
  template <typename V>
  void add(const std::vector<V>& values) {
    add(values.data(), values.size() * sizeof(V));
  }
  void print() const { std::printf("digest %016llx\n", static_cast<unsigned long long>(value)); }
};

}  // namespace emulation
}  // namespace sphcnn
