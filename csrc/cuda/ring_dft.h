// K1, the ring DFT of the CUDA transforms: the longitude part of both
// directions, between the grid in its native layout and the Fourier rings of
// the Legendre stage (K2, legendre_gemm.h).
//
// Layouts (complex values as interleaved (re, im); B maps batches, S spins, C
// channels, P = B C, Pp = P rounded up to 16 bytes of complex values):
//   maps x  (B, nlat, nlon, S, C): ring j, longitude k, lane (s, c); real (T) or complex;
//   rings F (S, M, nlat, Pp):      order index mi = m + ell_max, M = 2 ell_max + 1,
//                                  column p = b C + c.
// nlat = nlon = n on the n x n grid; the grid targets (sphcnn/contract.h) take
// any nlat rings of nlon >= 2 ell_max + 1 points (so that no two orders share
// a bin). A row is one (b, s, c) of the Q = B S C maps of a ring.
//   grid_to_orders (analysis): F[s, mi, j, p] = w_j sum_k x[b, j, k, s, c] e^{sigma 2 pi i m k / nlon},
//     |m| <= ell_max only (real maps are promoted to complex as they are read);
//   orders_to_grid (synthesis): x[b, j, k, s, c] = w_j sum_{|m| <= ell_max} F[s, mi, j, p] e^{sigma 2 pi i m k / nlon}.
//
// One work item is (ring j, tile of R rows); a block loads the tile into shared
// memory (nlon x R, rows fastest so that consecutive threads touch consecutive
// lanes), runs a Stockham autosort FFT over it (radices 4 and 2 in registers,
// any other prime factor by direct sums; Van Loan, "Computational Frameworks
// for the FFT", 1992, sec. 1.7, in its decimation-in-frequency form) and writes
// the tile back in the other layout: any nlon (1440 = 4 4 2 3 3 5; a prime
// nlon is one stage of direct sums, O(nlon^2) per ring). Twiddles
// e^{sigma 2 pi i t / nlon} are the product of two small tables of unit roots
// computed in double at block start (t = t_hi B + t_lo, B ~ sqrt(nlon)), rounded once to T. Rings that do not fit
// shared memory use two buffers per block in global scratch instead, with the
// grid looping over the work items.
#pragma once

#include <cmath>
#include <cstdint>

#include "block_common.h"
#include "sphcnn/activation.h"

namespace sphcnn {
namespace cuda {

constexpr int kRingThreads = 256;
constexpr int kMaxStages = 32;
constexpr int kMaxRingRows = 64;
// Blocks of the grid when the ring buffers live in global scratch.
constexpr int64_t kGlobalRingBlocks = 512;

struct RingPlan {
  int n;                    // the DFT length: nlon
  int stages;
  int radices[kMaxStages];  // 4s first, then 2, then odd factors ascending
  int tw_base;              // B: entries of the low table
  int tw_high;              // entries of the high table, ceil(n / B)
};

// The FFT plan of a ring length (host).
inline RingPlan ring_plan(int n) {
  RingPlan p{};
  p.n = n;
  int rest = n;
  while (rest % 4 == 0) { p.radices[p.stages++] = 4; rest /= 4; }
  while (rest % 2 == 0) { p.radices[p.stages++] = 2; rest /= 2; }
  for (int f = 3; rest > 1; f += 2) {
    while (rest % f == 0) { p.radices[p.stages++] = f; rest /= f; }
  }
  p.tw_base = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  p.tw_high = (n + p.tw_base - 1) / p.tw_base;
  return p;
}

template <typename T>
struct RingArgs {
  const void* in;          // grid_to_orders: maps (T if real_input, else Cpx<T>); orders_to_grid: F
  void* out;               // grid_to_orders: F; orders_to_grid: maps (Cpx<T>)
  const T* ring_scale;     // (nlat,)
  Cpx<T>* global_buffers;  // 2 R nlon per block when the tile does not fit shared memory, else null
  int nlat;                // rings (their length nlon is plan.n)
  int ell_max;
  int lanes;               // S C
  int64_t channels;        // C
  int64_t rows;            // Q = B S C
  int64_t padded_maps;     // Pp
  int tile_rows;           // R
  int64_t row_tiles;       // ceil(Q / R)
  int sign;                // sigma
  bool real_input;
  RingPlan plan;
  // The prologue of the activated analysis (sphcnn/activation.h), grid_to_orders
  // only: with activation_bias set, `in` holds pre-activation maps (complex), on
  // the 2n grid when pool_taps is set, and the rings are those of the activated
  // (and pooled) maps. The fused stages are those of the n x n grid only.
  const T* activation_bias;  // (S, C), or null
  const T* pool_taps;        // (n, 4), or null
  int leaky_spin;            // spin index of the leaky ReLU, or -1
  T epsilon;
  T slope;
  // The affine map of sphcnn_affine_synthesis, orders_to_grid only: with
  // affine_factor set, the rings G are those of the coefficients factor a plus
  // sqrt(4 pi) offset at a_00, i.e. G_m -> factor G_m, plus offset at m = 0 for
  // the spin 0 (lambda_000 = 1 / sqrt(4 pi)); both (S, C) complex.
  const Cpx<T>* affine_factor;  // or null
  const Cpx<T>* affine_offset;
  int zero_spin;                // spin index of the spin 0, or -1
  // The gradient epilogue of sphcnn_activated_gradient without pooling,
  // orders_to_grid only: with activation_bias set, `out` gets the cotangent of
  // the pre-activation maps gradient_maps (B, n, n, S, C) and
  // gradient_partials (n, B S C) the bias shares of each (ring, row).
  const Cpx<T>* gradient_maps;
  T* gradient_partials;
};

// Bytes of shared memory of a block (twiddle tables, and the two tile buffers
// unless they are in global scratch).
template <typename T>
SPHCNN_HD size_t ring_shared_bytes(const RingPlan& p, int tile_rows, bool global_buffers) {
  size_t bytes = align16(sizeof(Cpx<double>) * static_cast<size_t>(p.tw_base + p.tw_high));
  if (!global_buffers) bytes += 2 * sizeof(Cpx<T>) * static_cast<size_t>(tile_rows) * p.n;
  return bytes;
}

// e^{sign 2 pi i k / n} in double.
SPHCNN_HD Cpx<double> unit_root(int64_t k, int n, int sign) {
  const double x = 2.0 * static_cast<double>(k % n) / static_cast<double>(n);
  double s, c;
#if defined(__CUDA_ARCH__)
  sincospi(x, &s, &c);
#else
  const double pi = 3.14159265358979323846;
  s = std::sin(pi * x);
  c = std::cos(pi * x);
#endif
  return Cpx<double>{c, sign * s};
}

template <typename T>
SPHCNN_HD Cpx<T> cmul(const Cpx<T>& a, const Cpx<T>& b) {
  return Cpx<T>{a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

template <typename T>
SPHCNN_HD Cpx<T> cadd(const Cpx<T>& a, const Cpx<T>& b) {
  return Cpx<T>{a.re + b.re, a.im + b.im};
}

template <typename T>
SPHCNN_HD Cpx<T> csub(const Cpx<T>& a, const Cpx<T>& b) {
  return Cpx<T>{a.re - b.re, a.im - b.im};
}

// sigma i z
template <typename T>
SPHCNN_HD Cpx<T> rotate_quarter(const Cpx<T>& z, int sign) {
  return sign > 0 ? Cpx<T>{-z.im, z.re} : Cpx<T>{z.im, -z.re};
}

// W^t = e^{sigma 2 pi i t / n} from the two tables, t in [0, n).
template <typename T>
SPHCNN_HD Cpx<T> twiddle(const Cpx<double>* low, const Cpx<double>* high, int base, int t) {
  const Cpx<double> w = cmul(high[t / base], low[t % base]);
  return Cpx<T>{static_cast<T>(w.re), static_cast<T>(w.im)};
}

// One Stockham stage of radix p: sub-transforms of length N = m p with stride s.
template <typename T, typename Ctx>
SPHCNN_HD void fft_stage(const Ctx& ctx, const Cpx<T>* src, Cpx<T>* dst, int n, int R, int p, int N, int s,
                         int sign, const Cpx<double>* low, const Cpx<double>* high, int base) {
  const int m = N / p;
  const int step = n / N;  // twiddle index per unit of v pp: v pp step < p m n / N = n, no reduction mod n
  const int64_t items = static_cast<int64_t>(m) * s * R;
  for (int64_t item = ctx.tid(); item < items; item += kRingThreads) {
    const int r = static_cast<int>(item % R);
    const int64_t bq = item / R;
    const int q = static_cast<int>(bq % s);
    const int pp = static_cast<int>(bq / s);
    const Cpx<T>* in = src + static_cast<int64_t>(q + s * pp) * R + r;  // a_u = in[u m s R]
    Cpx<T>* out = dst + static_cast<int64_t>(q + s * p * pp) * R + r;   // y_v = out[v s R]
    const int64_t in_stride = static_cast<int64_t>(m) * s * R;
    const int64_t out_stride = static_cast<int64_t>(s) * R;
    if (p == 4) {
      const Cpx<T> a0 = in[0], a1 = in[in_stride], a2 = in[2 * in_stride], a3 = in[3 * in_stride];
      const Cpx<T> t0 = cadd(a0, a2), t1 = csub(a0, a2), t2 = cadd(a1, a3);
      const Cpx<T> t3 = rotate_quarter(csub(a1, a3), sign);
      out[0] = cadd(t0, t2);
      out[out_stride] = cmul(cadd(t1, t3), twiddle<T>(low, high, base, pp * step));
      out[2 * out_stride] = cmul(csub(t0, t2), twiddle<T>(low, high, base, 2 * pp * step));
      out[3 * out_stride] = cmul(csub(t1, t3), twiddle<T>(low, high, base, 3 * pp * step));
    } else if (p == 2) {
      const Cpx<T> a0 = in[0], a1 = in[in_stride];
      out[0] = cadd(a0, a1);
      out[out_stride] = cmul(csub(a0, a1), twiddle<T>(low, high, base, pp * step));
    } else {
      // b_v = sum_u a_u e^{sigma 2 pi i u v / p}; e^{sigma 2 pi i k / p} = W^{k n / p}.
      const int root = n / p;
      for (int v = 0; v < p; ++v) {
        Cpx<T> acc = in[0];
        for (int u = 1; u < p; ++u) {
          acc = cadd(acc, cmul(in[u * in_stride], twiddle<T>(low, high, base, ((u * v) % p) * root)));
        }
        out[v * out_stride] = v == 0 ? acc : cmul(acc, twiddle<T>(low, high, base, v * pp * step));
      }
    }
  }
}

// The orders index of a bin, or -1 when the bin holds no |m| <= ell_max.
SPHCNN_HD int bin_order(int k, int n, int ell_max) {
  if (k <= ell_max) return ell_max + k;
  if (k >= n - ell_max) return ell_max + k - n;
  return -1;
}

// Two adjacent rows (r, r + 1) of a tile are moved with one 16-byte access when
// both sides allow it: complex64 data, an even first row, and an even number of
// contiguous values on the global side.
template <typename T>
SPHCNN_HD bool pairs_allowed(int64_t q0, int64_t contiguous) {
  return sizeof(T) == 4 && q0 % 2 == 0 && contiguous % 2 == 0;
}

// The map of row q of a ring: batch item b, lane s C + c.
struct RowAt {
  int64_t b, c;
  int lane, spin;
};

template <typename T>
SPHCNN_HD RowAt row_at(const RingArgs<T>& a, int64_t q) {
  RowAt at;
  at.b = q / a.lanes;
  at.lane = static_cast<int>(q - at.b * a.lanes);
  at.spin = static_cast<int>(at.lane / a.channels);
  at.c = at.lane - at.spin * a.channels;
  return at;
}

// Offset of F[s, mi, j, p] for the map of a row.
template <typename T>
SPHCNN_HD int64_t rings_offset(const RingArgs<T>& a, const RowAt& at, int mi, int j) {
  return ((static_cast<int64_t>(at.spin) * (2 * a.ell_max + 1) + mi) * a.nlat + j) * a.padded_maps + at.b * a.channels + at.c;
}

// The ring length: plan.n (nlon) on a grid target's grid (kGrid); on the n x n
// grid nlat, the one size the kernels of that grid read for both (kGrid is a
// compile-time grid kind so that those kernels stay as they are).
template <bool kGrid, typename T>
SPHCNN_HD int ring_length(const RingArgs<T>& a) {
  return kGrid ? a.plan.n : a.nlat;
}

// Offset of maps x[b, j, k, lane] of row q.
template <bool kGrid, typename T>
SPHCNN_HD int64_t maps_offset(const RingArgs<T>& a, int64_t q, int j, int k) {
  const int64_t b = q / a.lanes;
  return ((b * a.nlat + j) * ring_length<kGrid>(a) + k) * a.lanes + (q - b * a.lanes);
}

// The barrier after threads wrote a tile buffer that others read next: fenced
// when the buffers are slices of global scratch (block_common.h).
template <typename T, typename Ctx>
SPHCNN_HD void sync_buffers(const Ctx& ctx, const RingArgs<T>& a) {
  if (a.global_buffers != nullptr) ctx.fence_block();
  ctx.sync();
}

// The work loop of both directions: the twiddle tables, then for every work
// item (ring j, rows q0 .. q0 + rows) load(buffer, j, q0, rows) into the tile
// buffer (nlon x R, rows fastest), the FFT, store(result, spare, j, q0, rows) (spare:
// the other tile buffer, free during the store). The load of grid_to_orders is
// the analysis's RingLoad, that of orders_to_grid holds the synthesis's
// CoefficientLoad and its store is the RingStore (sphcnn/contract.h).
template <typename T, bool kGrid, typename Ctx, typename Load, typename Store>
SPHCNN_HD void ring_items(const Ctx& ctx, const RingArgs<T>& a, unsigned char* smem, Load load, Store store) {
  const int n = ring_length<kGrid>(a), R = a.tile_rows;
  Cpx<double>* low = reinterpret_cast<Cpx<double>*>(smem);  // then the high table
  Cpx<double>* high = low + a.plan.tw_base;
  Cpx<T>* shared_buffers = reinterpret_cast<Cpx<T>*>(
      smem + align16(sizeof(Cpx<double>) * static_cast<size_t>(a.plan.tw_base + a.plan.tw_high)));
  for (int k = ctx.tid(); k < a.plan.tw_base + a.plan.tw_high; k += kRingThreads) {
    low[k] = k < a.plan.tw_base ? unit_root(k, n, a.sign)
                                : unit_root(static_cast<int64_t>(k - a.plan.tw_base) * a.plan.tw_base, n, a.sign);
  }
  ctx.sync();
  const int64_t items = static_cast<int64_t>(kGrid ? a.nlat : n) * a.row_tiles;
  for (int64_t item = ctx.block(); item < items; item += ctx.blocks()) {
    Cpx<T>* src = a.global_buffers ? a.global_buffers + ctx.block() * 2 * static_cast<int64_t>(R) * n : shared_buffers;
    Cpx<T>* dst = src + static_cast<int64_t>(R) * n;
    const int j = static_cast<int>(item % (kGrid ? a.nlat : n));
    const int64_t q0 = (item / (kGrid ? a.nlat : n)) * R;
    const int rows = static_cast<int>(q0 + R <= a.rows ? R : a.rows - q0);
    load(src, j, q0, rows);
    sync_buffers(ctx, a);
    int N = n, s = 1;
    for (int st = 0; st < a.plan.stages; ++st) {
      const int p = a.plan.radices[st];
      fft_stage<T>(ctx, src, dst, n, R, p, N, s, a.sign, low, high, a.plan.tw_base);
      sync_buffers(ctx, a);
      Cpx<T>* t = src;
      src = dst;
      dst = t;
      N /= p;
      s *= p;
    }
    store(static_cast<const Cpx<T>*>(src), dst, j, q0, rows);
    ctx.sync();  // the next item refills the buffers
  }
}

// The prologue's value at ring j, longitude k of row q: the activated maps, or
// the pooled activated maps (taps of the rings 2j - 1 .. 2j + 2 of the 2n grid,
// then the stencil over longitudes 2k - 1, 2k, 2k + 1: pool_stencil).
template <typename T>
SPHCNN_HD Cpx<T> activated_value(const RingArgs<T>& a, int64_t q, int j, int k) {
  const Cpx<T>* x = static_cast<const Cpx<T>*>(a.in);
  const RowAt at = row_at(a, q);
  const T bias = a.activation_bias[at.lane];
  const T leaky = at.spin == a.leaky_spin ? T(1) : T(0);
  const int fine = a.pool_taps != nullptr ? 2 * a.nlat : a.nlat;
  auto value = [&](int row, int lon) {
    const Cpx<T> z = x[((at.b * fine + row) * fine + lon) * a.lanes + at.lane];
    Cpx<T> v;
    activate(z.re, z.im, bias, leaky, a.epsilon, a.slope, v.re, v.im);
    return v;
  };
  if (a.pool_taps == nullptr) return value(j, k);
  Cpx<T> sum{T(0), T(0)};
  for (int t = 0; t < 4; ++t) {
    const int row = 2 * j - 1 + t;
    const T w = a.pool_taps[4 * j + t];
    if (row < 0 || row >= fine || w == T(0)) continue;
    const Cpx<T> centre = value(row, 2 * k), east = value(row, 2 * k + 1), west = value(row, (2 * k - 1 + fine) % fine);
    sum.re += w * pool_stencil<T>(west.re, centre.re, east.re);
    sum.im += w * pool_stencil<T>(west.im, centre.im, east.im);
  }
  return sum;
}

// kGrid: a grid target's nlat x nlon grid (without the fused stages), else the n x n grid.
template <typename T, bool kGrid = false, typename Ctx>
SPHCNN_HD void grid_to_orders_block(const Ctx& ctx, const RingArgs<T>& a, unsigned char* smem) {
  const int n = ring_length<kGrid>(a), M = 2 * a.ell_max + 1, R = a.tile_rows, tid = ctx.tid();
  // The RingLoad: buf[k R + r] = x[b, j, k, lane] (or the prologue's value), rows past the end zero.
  // Element indices are int: nlon R <= 3072 in shared memory, R = 1 in scratch
  // (64-bit indices here cost the float kernel a register spill).
  auto ring_load = [&](Cpx<T>* buf, int j, int64_t q0, int rows) {
    if (a.activation_bias != nullptr) {
      for (int e = tid; e < n * R; e += kRingThreads) {
        const int r = static_cast<int>(e % R);
        const int k = static_cast<int>(e / R);
        buf[static_cast<int64_t>(k) * R + r] = r < rows ? activated_value(a, q0 + r, j, k) : Cpx<T>{T(0), T(0)};
      }
      return;
    }
    if (a.real_input) {
      const T* x = static_cast<const T*>(a.in);
      for (int e = tid; e < n * R; e += kRingThreads) {
        const int r = static_cast<int>(e % R);
        const int k = static_cast<int>(e / R);
        buf[static_cast<int64_t>(k) * R + r] = Cpx<T>{r < rows ? x[maps_offset<kGrid>(a, q0 + r, j, k)] : T(0), T(0)};
      }
      return;
    }
    const Cpx<T>* x = static_cast<const Cpx<T>*>(a.in);
    if (pairs_allowed<T>(q0, a.lanes) && R % 2 == 0 && aligned16(x)) {
      for (int e = tid; e < n * (R / 2); e += kRingThreads) {
        const int r = 2 * static_cast<int>(e % (R / 2));
        const int k = static_cast<int>(e / (R / 2));
        Vec16<T> v{};
        if (r < rows) {  // rows (r, r + 1) share a batch item: q0 and S C are even
          const T* src = reinterpret_cast<const T*>(x + maps_offset<kGrid>(a, q0 + r, j, k));
          if (r + 1 < rows) {
            v = load16(src);
          } else {
            v.v[0] = src[0];
            v.v[1] = src[1];
          }
        }
        store16(reinterpret_cast<T*>(buf + static_cast<int64_t>(k) * R + r), v);
      }
      return;
    }
    for (int e = tid; e < n * R; e += kRingThreads) {
      const int r = static_cast<int>(e % R);
      const int k = static_cast<int>(e / R);
      buf[static_cast<int64_t>(k) * R + r] = r < rows ? x[maps_offset<kGrid>(a, q0 + r, j, k)] : Cpx<T>{T(0), T(0)};
    }
  };
  // Store: F[s, mi, j, p] = w_j bin(m) for |m| <= ell_max.
  auto store = [&](const Cpx<T>* result, Cpx<T>*, int j, int64_t q0, int rows) {
    Cpx<T>* F = static_cast<Cpx<T>*>(a.out);
    const T w = a.ring_scale[j];
    for (int64_t e = tid; e < static_cast<int64_t>(M) * R; e += kRingThreads) {
      const int r = static_cast<int>(e % R);
      const int mi = static_cast<int>(e / R);
      if (r >= rows) continue;
      const Cpx<T> v = result[static_cast<int64_t>((mi - a.ell_max + n) % n) * R + r];
      F[rings_offset(a, row_at(a, q0 + r), mi, j)] = Cpx<T>{w * v.re, w * v.im};
    }
  };
  ring_items<T, kGrid>(ctx, a, smem, ring_load, store);
}

// The gradient epilogue of orders_to_grid (sphcnn_activated_gradient without
// pooling): ct = w_j result[k R + r] is the cotangent of the activated maps at
// (row q0 + r, ring j, longitude k); with the pre-activation maps
// (gradient_maps) it gives the maps' cotangent, written to `out`, and the bias
// share, kept per element in `shares` (the free tile buffer, nlon R values) and
// added over k in order per row into gradient_partials[j, q0 + r].
template <typename T, typename Ctx>
SPHCNN_HD void gradient_store(const Ctx& ctx, const RingArgs<T>& a, const Cpx<T>* result, T* shares, int j,
                              int64_t q0, int rows) {
  const int n = a.nlat, R = a.tile_rows, tid = ctx.tid();
  const T w = a.ring_scale[j];
  Cpx<T>* out = static_cast<Cpx<T>*>(a.out);
  for (int64_t e = tid; e < static_cast<int64_t>(n) * R; e += kRingThreads) {
    const int r = static_cast<int>(e % R);
    const int k = static_cast<int>(e / R);
    T share = T(0);
    if (r < rows) {
      const RowAt at = row_at(a, q0 + r);
      const int64_t at_map = maps_offset<false>(a, q0 + r, j, k);
      const Cpx<T> v = result[static_cast<int64_t>(k) * R + r];
      const Cpx<T> z = a.gradient_maps[at_map];
      Cpx<T> ct;
      activation_gradient(z.re, z.im, w * v.re, w * v.im, a.activation_bias[at.lane],
                          at.spin == a.leaky_spin ? T(1) : T(0), a.epsilon, a.slope, ct.re, ct.im, share);
      out[at_map] = ct;
    }
    shares[static_cast<int64_t>(k) * R + r] = share;
  }
  sync_buffers(ctx, a);
  for (int r = tid; r < rows; r += kRingThreads) {
    T sum = T(0);
    for (int k = 0; k < n; ++k) sum += shares[static_cast<int64_t>(k) * R + r];
    a.gradient_partials[static_cast<int64_t>(j) * a.rows + q0 + r] = sum;
  }
}

template <typename T, bool kGrid = false, typename Ctx>
SPHCNN_HD void orders_to_grid_block(const Ctx& ctx, const RingArgs<T>& a, unsigned char* smem) {
  const int n = ring_length<kGrid>(a), R = a.tile_rows, tid = ctx.tid();
  // Load with the CoefficientLoad: buf[k R + r] = F[s, mi(k), j, p] (affinely mapped, if so), zero in bins of no
  // order and past the rows.
  auto coefficient_load = [&](Cpx<T>* buf, int j, int64_t q0, int rows) {
    const Cpx<T>* F = static_cast<const Cpx<T>*>(a.in);
    for (int64_t e = tid; e < static_cast<int64_t>(n) * R; e += kRingThreads) {
      const int r = static_cast<int>(e % R);
      const int k = static_cast<int>(e / R);
      const int mi = bin_order(k, n, a.ell_max);
      Cpx<T> v{T(0), T(0)};
      if (r < rows && mi >= 0) {
        const RowAt at = row_at(a, q0 + r);
        v = F[rings_offset(a, at, mi, j)];
        if (a.affine_factor != nullptr) {
          v = cmul(v, a.affine_factor[at.lane]);
          if (mi == a.ell_max && at.spin == a.zero_spin) v = cadd(v, a.affine_offset[at.lane]);
        }
      }
      buf[static_cast<int64_t>(k) * R + r] = v;
    }
  };
  // The RingStore: x[b, j, k, lane] = w_j result[k R + r]; or, with the gradient
  // epilogue, that value is the cotangent of the activated maps and the store
  // writes the maps' cotangent instead, with the rows' bias shares.
  auto ring_store = [&](const Cpx<T>* result, Cpx<T>* spare, int j, int64_t q0, int rows) {
    if (a.activation_bias != nullptr) {
      gradient_store(ctx, a, result, reinterpret_cast<T*>(spare), j, q0, rows);
      return;
    }
    Cpx<T>* x = static_cast<Cpx<T>*>(a.out);
    const T w = a.ring_scale[j];
    if (pairs_allowed<T>(q0, a.lanes) && R % 2 == 0 && aligned16(x)) {
      for (int64_t e = tid; e < static_cast<int64_t>(n) * (R / 2); e += kRingThreads) {
        const int r = 2 * static_cast<int>(e % (R / 2));
        const int k = static_cast<int>(e / (R / 2));
        if (r >= rows) continue;
        T* out = reinterpret_cast<T*>(x + maps_offset<kGrid>(a, q0 + r, j, k));
        const Vec16<T> v = load16(reinterpret_cast<const T*>(result + static_cast<int64_t>(k) * R + r));
        Vec16<T> o;
        for (int i = 0; i < Vec16<T>::kCount; ++i) o.v[i] = w * v.v[i];
        if (r + 1 < rows) {
          store16(out, o);
        } else {
          out[0] = o.v[0];
          out[1] = o.v[1];
        }
      }
      return;
    }
    for (int64_t e = tid; e < static_cast<int64_t>(n) * R; e += kRingThreads) {
      const int r = static_cast<int>(e % R);
      const int k = static_cast<int>(e / R);
      if (r >= rows) continue;
      const Cpx<T> v = result[static_cast<int64_t>(k) * R + r];
      x[maps_offset<kGrid>(a, q0 + r, j, k)] = Cpx<T>{w * v.re, w * v.im};
    }
  };
  ring_items<T, kGrid>(ctx, a, smem, coefficient_load, ring_store);
}

}  // namespace cuda
}  // namespace sphcnn
