// Wigner-d and spin-weighted Legendre recurrences, shared by the CPU (C++) and
// CUDA code of sphcnn.
//
// Conventions (see README):
//   d^l_{m,m'}(beta) is Wigner's small d in the standard convention,
//   d^1_{1,0}(beta) = -sin(beta)/sqrt(2).
//   lambda_{l,m,s}(theta) = (-1)^s sqrt((2l+1)/(4 pi)) d^l_{m,-s}(theta), so the
//   spin-weighted harmonic is sY_lm(theta, phi) = lambda_{l,m,s}(theta) e^{i m phi}.
//
// Two algorithms live here:
//   * Risbo's recurrence for whole Wigner-d matrices (T. Risbo, "Fourier transform
//     summation of Legendre series and D-functions", J. Geodesy 70, 383-396, 1996):
//     d^{j} is built from d^{j-1/2} by coupling with spin 1/2. Host only.
//   * the three-term recurrence in l for one column d^l_{m,m'}(theta), l >= l0 =
//     max(|m|, |m'|) (e.g. Kostelec & Rockmore, J. Fourier Anal. Appl. 14, 145, 2008,
//     eq. 2.6), started from the closed form of d^{l0} and carried with an integer
//     scale exponent so that values far below the double range (near the poles at
//     large |m|) neither underflow nor pollute the result (the scaling idea is the
//     one of libsharp, Reinecke & Seljebotn, A&A 554, A112, 2013). Host and device.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "sphcnn/hd.h"


namespace sphcnn {

// Values are carried as v * 2^(-kScaleBits * k) with an integer k >= 0; k > 0 means
// the true value is below 2^-kScaleThresholdBits and contributes nothing.
constexpr int kScaleBits = 600;
constexpr int kScaleThresholdBits = 300;

// Everything about one column (m, s) that does not depend on the ring: the start
// degree l0, the closed-form start value up to the ring-dependent powers of
// cos(theta/2) and sin(theta/2), and the recurrence coefficients.
//
// lambda_{l0}(theta) = sign * 2^(log2_const + pow_cos * log2 cos(theta/2)
//                                        + pow_sin * log2 sin(theta/2))
struct ColumnStart {
  int l0;            // first non-zero degree, max(|m|, |s|)
  double sign;       // +1 or -1
  double log2_const; // log2 of sqrt(binomial) * sqrt((2 l0 + 1) / (4 pi))
  int pow_cos;       // exponent of cos(theta/2)
  int pow_sin;       // exponent of sin(theta/2)
};

// Closed forms of d^{l}_{m,m'} at l = max(|m|, |m'|) (derived from the spinor
// representation: d^{N/2}_{N/2-a, N/2-b} is sqrt((N-a)! a! / ((N-b)! b!)) times the
// coefficient of x^{N-a} y^a in (p x + q y)^{N-b} (-q x + p y)^b, p = cos(beta/2),
// q = sin(beta/2)):
//   d^l_{ l, m'} = (-1)^(l-m') sqrt(C(2l, l-m')) p^(l+m') q^(l-m')
//   d^l_{-l, m'} =             sqrt(C(2l, l-m')) q^(l+m') p^(l-m')
//   d^l_{m,  l } =             sqrt(C(2l, l-m )) p^(l+m ) q^(l-m )
//   d^l_{m, -l } = (-1)^(l+m)  sqrt(C(2l, l-m )) q^(l+m ) p^(l-m )
SPHCNN_HD ColumnStart column_start(int m, int s) {
  const int mp = -s;
  const int am = m < 0 ? -m : m;
  const int amp = mp < 0 ? -mp : mp;
  ColumnStart c;
  int k;  // binomial C(2 l0, k)
  if (am >= amp) {
    c.l0 = am;
    k = c.l0 - mp;
    if (m >= 0) {
      c.sign = ((c.l0 - mp) & 1) ? -1.0 : 1.0;
      c.pow_cos = c.l0 + mp;
      c.pow_sin = c.l0 - mp;
    } else {
      c.sign = 1.0;
      c.pow_cos = c.l0 - mp;
      c.pow_sin = c.l0 + mp;
    }
  } else {
    c.l0 = amp;
    k = c.l0 - m;
    if (mp >= 0) {
      c.sign = 1.0;
      c.pow_cos = c.l0 + m;
      c.pow_sin = c.l0 - m;
    } else {
      c.sign = ((c.l0 + m) & 1) ? -1.0 : 1.0;
      c.pow_cos = c.l0 - m;
      c.pow_sin = c.l0 + m;
    }
  }
  if (s & 1) c.sign = -c.sign;  // the (-1)^s of lambda
  // log2 sqrt(C(2 l0, k)) as a sum of k small logs: accurate to a few ulp of the
  // sum, unlike a difference of log-gamma values near 10^4.
  double log2_binom = 0.0;
  const int n = 2 * c.l0;
  const int kk = k < n - k ? k : n - k;
  for (int i = 1; i <= kk; ++i) {
    log2_binom += log2(static_cast<double>(n - kk + i) / static_cast<double>(i));
  }
  const double pi = 3.14159265358979323846;
  c.log2_const = 0.5 * log2_binom + 0.5 * log2((2.0 * c.l0 + 1.0) / (4.0 * pi));
  return c;
}

// Coefficients of e_{l+1} = (alpha_l x + beta_l) e_l + gamma_l e_{l-1} for the
// normalized column e_l = lambda_{l,m,s}(theta), x = cos(theta), l >= l0.
// With R_l = sqrt((l^2 - m^2)(l^2 - m'^2)) and m' = -s:
//   alpha_l =  sqrt((2l+3)/(2l+1)) (2l+1)(l+1)   / R_{l+1}
//   beta_l  = -sqrt((2l+3)/(2l+1)) (2l+1) m m'   / (l R_{l+1})
//   gamma_l = -sqrt((2l+3)/(2l-1)) (l+1) R_l     / (l R_{l+1})
// and at l = 0 (m = m' = 0) simply e_1 = sqrt(3) x e_0.
struct StepCoefficients {
  double alpha, beta, gamma;
};

SPHCNN_HD StepCoefficients step_coefficients(int l, int m, int s) {
  StepCoefficients c;
  if (l == 0) {
    c.alpha = sqrt(3.0);
    c.beta = 0.0;
    c.gamma = 0.0;
    return c;
  }
  const double mp = -static_cast<double>(s);
  const double md = static_cast<double>(m);
  const double ld = static_cast<double>(l);
  const double l1 = ld + 1.0;
  const double r_next = sqrt((l1 * l1 - md * md) * (l1 * l1 - mp * mp));
  const double r_this_sq = (ld * ld - md * md) * (ld * ld - mp * mp);
  const double r_this = r_this_sq > 0.0 ? sqrt(r_this_sq) : 0.0;
  const double up = sqrt((2.0 * ld + 3.0) / (2.0 * ld + 1.0));
  c.alpha = up * (2.0 * ld + 1.0) * l1 / r_next;
  c.beta = -up * (2.0 * ld + 1.0) * md * mp / (ld * r_next);
  c.gamma = -sqrt((2.0 * ld + 3.0) / (2.0 * ld - 1.0)) * l1 * r_this / (ld * r_next);
  return c;
}

// State of one column at one ring while l advances.
struct ColumnState {
  double prev;  // e_{l-1} (scaled)
  double cur;   // e_l (scaled)
  int scale;    // k >= 0; the true values are (prev, cur) * 2^(-kScaleBits k)
  bool zero;    // the whole column vanishes at this ring (pole with a zero power)
};

// Start a column at a ring given log2 cos(theta/2) and log2 sin(theta/2) (pass
// -INFINITY for a zero factor, i.e. at a pole).
SPHCNN_HD ColumnState column_begin(const ColumnStart& c, double log2_cos_half,
                                   double log2_sin_half) {
  ColumnState st;
  st.prev = 0.0;
  st.cur = 0.0;
  st.scale = 0;
  st.zero = false;
  double lg = c.log2_const;
  if (c.pow_cos != 0) lg += c.pow_cos * log2_cos_half;
  if (c.pow_sin != 0) lg += c.pow_sin * log2_sin_half;
  if (!(lg > -1.0e300)) {  // -inf (a pole) or NaN: the column is identically zero
    st.zero = true;
    return st;
  }
  if (lg < -kScaleThresholdBits) {
    st.scale = static_cast<int>(
        ceil((-kScaleThresholdBits - lg) / static_cast<double>(kScaleBits)));
  }
  st.cur = c.sign * exp2(lg + static_cast<double>(kScaleBits) * st.scale);
  return st;
}

// Advance from degree l to l + 1.
SPHCNN_HD void column_step(ColumnState& st, double alpha, double beta, double gamma,
                           double x) {
  const double next = (alpha * x + beta) * st.cur + gamma * st.prev;
  st.prev = st.cur;
  st.cur = next;
  if (st.scale > 0 && fabs(next) > exp2(static_cast<double>(kScaleThresholdBits))) {
    const double down = exp2(-static_cast<double>(kScaleBits));
    st.prev *= down;
    st.cur *= down;
    st.scale -= 1;
  }
}

// The true value of the current degree (0 while it is below the double range).
SPHCNN_HD double column_value(const ColumnState& st) {
  return (st.zero || st.scale > 0) ? 0.0 : st.cur;
}

// log2 cos(theta/2) and log2 sin(theta/2) for an equiangular ring, with exact
// zeros at the poles mapped to -infinity.
SPHCNN_HD void half_angle_logs(double theta, double* log2_cos_half,
                               double* log2_sin_half) {
  const double c = cos(0.5 * theta);
  const double s = sin(0.5 * theta);
  *log2_cos_half = c > 0.0 ? log2(c) : -INFINITY;
  *log2_sin_half = s > 0.0 ? log2(s) : -INFINITY;
}

// Colatitude of ring j on the n x n grid with both poles, computed so that the
// south pole is exactly pi and cos/sin are symmetric between j and n - 1 - j.
SPHCNN_HD double ring_theta(int j, int n) {
  const double pi = 3.14159265358979323846;
  return pi * static_cast<double>(j) / static_cast<double>(n - 1);
}

// Colatitude of ring j of a grid target from its ring_theta operand (2, nlat)
// of the data's real type T (sphcnn/contract.h): the sum of column j in double,
// kept in [0, pi] (the sum for a pole may land an ulp outside).
template <typename T>
SPHCNN_HD double ring_colatitude(const T* ring_theta, int nlat, int j) {
  const double pi = 3.14159265358979323846;
  const double theta = static_cast<double>(ring_theta[j]) + static_cast<double>(ring_theta[nlat + j]);
  return theta < 0.0 ? 0.0 : (theta > pi ? pi : theta);
}

// The raw sum, for the contract's check of the operand.
template <typename T>
SPHCNN_HD double ring_colatitude_sum(const T* ring_theta, int nlat, int j) {
  return static_cast<double>(ring_theta[j]) + static_cast<double>(ring_theta[nlat + j]);
}

#if !defined(__CUDA_ARCH__)
// Risbo's recurrence for d^l_{m,m'}(beta), all l in [ell_min, ell_max].
//
// p = cos(beta/2), q = sin(beta/2) (passed separately so that beta = pi/2 uses
// p = q = sqrt(1/2) exactly). With N = 2j, a = j - m, b = j - m' and
// D^N_{a,b} = d^{N/2}_{N/2-a, N/2-b}, multiplying the spinor polynomial
// (p x + q y)^{N-1-b} (-q x + p y)^b by (p x + q y), or (p x + q y)^{N-b}
// (-q x + p y)^{b-1} by (-q x + p y), gives two half-integer steps
//   D^N_{a,b} = ( p sqrt(N-a) D_{a,b}   + q sqrt(a) D_{a-1,b}  ) / sqrt(N-b)
//   D^N_{a,b} = (-q sqrt(N-a) D_{a,b-1} + p sqrt(a) D_{a-1,b-1}) / sqrt(b)
// (D = D^{N-1}). Alone each amplifies rounding errors by up to sqrt(N); Risbo's
// step is their average with weights (N-b)/N and b/N,
//   D^N_{a,b} = [ p sqrt((N-a)(N-b)) D_{a,b} + q sqrt(a(N-b)) D_{a-1,b}
//               - q sqrt((N-a)b) D_{a,b-1} + p sqrt(ab) D_{a-1,b-1} ] / N,
// whose coefficients are all below one: it is stable to l in the thousands.
//
// out: (ell_max - ell_min + 1, 2 ell_max + 1, 2 ell_max + 1), row-major, with
// d^l_{m,m'} at [l - ell_min, ell_max + m, ell_max + m'] and zeros where |m| or |m'|
// exceed l.
inline void wigner_d_risbo(int ell_max, int ell_min, double p, double q, double* out) {
  const int64_t width = 2 * static_cast<int64_t>(ell_max) + 1;
  const int64_t count = static_cast<int64_t>(ell_max - ell_min + 1) * width * width;
  for (int64_t i = 0; i < count; ++i) out[i] = 0.0;
  const int n_max = 2 * ell_max;
  std::vector<double> sq(n_max + 1);
  for (int i = 0; i <= n_max; ++i) sq[i] = std::sqrt(static_cast<double>(i));
  // D^N_{a,b} is stored at [(a + 1) * stride + (b + 1)]: a zero border row and
  // column stand for the index -1, so every step reads its four neighbours freely.
  const int64_t stride = n_max + 2;
  std::vector<double> prev(stride * stride, 0.0), cur(stride * stride, 0.0);
  std::vector<double> sq_rev(n_max + 1), sq_fwd(n_max + 1);
  prev[stride + 1] = 1.0;  // N = 0: d^0 = 1
  if (ell_min == 0) out[static_cast<int64_t>(ell_max) * width + ell_max] = 1.0;
  for (int n = 1; n <= n_max; ++n) {
    const double inv_n = 1.0 / n;
    for (int b = 0; b <= n; ++b) {
      sq_rev[b] = sq[n - b];
      sq_fwd[b] = sq[b];
    }
    for (int a = 0; a <= n; ++a) {
      const double pa = p * sq[n - a] * inv_n;  // multiplies D_{a,.}   (first pair)
      const double qa = q * sq[a] * inv_n;      // multiplies D_{a-1,.}
      const double qb = -q * sq[n - a] * inv_n; // multiplies D_{a,.-1} (second pair)
      const double pb = p * sq[a] * inv_n;      // multiplies D_{a-1,.-1}
      const double* row = prev.data() + static_cast<int64_t>(a + 1) * stride + 1;
      const double* row_up = prev.data() + static_cast<int64_t>(a) * stride + 1;
      double* dst = cur.data() + static_cast<int64_t>(a + 1) * stride + 1;
      for (int b = 0; b <= n; ++b) {
        dst[b] = sq_rev[b] * (pa * row[b] + qa * row_up[b]) +
                 sq_fwd[b] * (qb * row[b - 1] + pb * row_up[b - 1]);
      }
    }
    std::swap(prev, cur);
    if ((n & 1) == 0) {
      const int l = n / 2;
      if (l >= ell_min) {
        double* block = out + static_cast<int64_t>(l - ell_min) * width * width;
        for (int a = 0; a <= n; ++a) {
          const int64_t row = ell_max + l - a;  // m = l - a
          const double* src = prev.data() + static_cast<int64_t>(a + 1) * stride + 1;
          double* dst = block + row * width + ell_max + l;  // m' = l - b
          for (int b = 0; b <= n; ++b) dst[-b] = src[b];
        }
      }
    }
  }
}

// lambda_{l,m,s}(theta) for all l <= ell_max and |m| <= ell_max at one theta, by the
// column recurrence above; out: (2 ell_max + 1, ell_max + 1) with lambda at
// [ell_max + m, l] and zeros for l < max(|m|, |s|).
inline void spin_legendre_columns(int ell_max, int s, double theta, double* out) {
  double lc, ls;
  half_angle_logs(theta, &lc, &ls);
  const double x = std::cos(theta);
  for (int m = -ell_max; m <= ell_max; ++m) {
    double* col = out + static_cast<int64_t>(m + ell_max) * (ell_max + 1);
    for (int l = 0; l <= ell_max; ++l) col[l] = 0.0;
    const ColumnStart start = column_start(m, s);
    if (start.l0 > ell_max) continue;
    ColumnState st = column_begin(start, lc, ls);
    if (st.zero) continue;
    col[start.l0] = column_value(st);
    for (int l = start.l0; l < ell_max; ++l) {
      const StepCoefficients c = step_coefficients(l, m, s);
      column_step(st, c.alpha, c.beta, c.gamma, x);
      col[l + 1] = column_value(st);
    }
  }
}
#endif  // !__CUDA_ARCH__

}  // namespace sphcnn
