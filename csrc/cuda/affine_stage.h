// The gradient of the affine synthesis (target sphcnn_affine_gradient,
// fused_cuda.cu): the transposed synthesis is an analysis, and K2 of it
// ends with the batch norm's backward (its CoefficientStore, sphcnn/contract.h). For the cotangent u of the affinely
// mapped coefficients (what K2 computes), with the batch norm's input a and
// factor f (S, C):
//   ct_a[l, m, s, c]    = f[s, c] u[l, m, s, c]                    (written as it is stored),
//   products[b, s, c]   = sum_{l, m} u[l, m, s, c] a[l, m, s, c]   (no conjugate: ct_factor's shares),
//   constant[b, s, c]   = u[0, 0, s, c]                             (ct_offset's shares).
// Each block of analysis_table_block's plan adds its threads' shares of the
// products in shared memory, in a fixed order, and writes one share per
// (spin, |m|, degree tile, column); affine_sum_block adds them over (|m|,
// degree tile) in order (bit-reproducible, no atomics).
//
// Layouts: a and ct_a in the analysis's spectral layout; shares (S, L, degree
// tiles, B C) complex; products and constant (B, S, C) complex.
#pragma once

#include <cstdint>

#include "block_common.h"
#include "legendre_gemm.h"

namespace sphcnn {
namespace cuda {

constexpr int kAffineSumThreads = 128;

template <typename T>
struct AffineArgs {
  const Cpx<T>* input;    // a: the batch norm's input coefficients
  const Cpx<T>* factor;   // f (S, C)
  Cpx<T>* shares;         // products' shares
  Cpx<T>* products;       // (B, S, C)
  Cpx<T>* constant;       // (B, S, C)
  int degree_tiles;
  int64_t batch;
};

// Shared memory of the block: the tile's, at least the reduction's.
template <typename T, typename Tile>
constexpr size_t affine_shared_bytes() {
  return Tile::kSharedBytes > sizeof(Cpx<T>) * kGemmThreads * Tile::RP ? Tile::kSharedBytes
                                                                       : sizeof(Cpx<T>) * kGemmThreads * Tile::RP;
}

template <typename T, typename Tile, typename Ctx>
SPHCNN_HD void affine_gradient_block(const Ctx& ctx, const GemmArgs<T>& a, const AffineArgs<T>& x,
                                     unsigned char* smem) {
  constexpr int TL = Tile::TL, TP = Tile::TP, RP = Tile::RP;
  const int tid = ctx.tid();
  const int tg = tid / Tile::kColGroups;
  const int pg = tid % Tile::kColGroups;
  const int L = a.ell_max + 1;
  const Cpx<T> zero{T(0), T(0)};
  Cpx<T>* reduce = reinterpret_cast<Cpx<T>*>(smem);  // [degree group][column], after the tile
  for (int64_t item = ctx.block(); item < a.items; item += ctx.blocks()) {
    const PairPosition at = pair_position(a, item);
    const int dt = at.tile % x.degree_tiles;
    const int64_t col0 = static_cast<int64_t>(at.tile / x.degree_tiles) * TP;
    const int lstart = at.am + dt * TL;
    Cpx<T>* shares = x.shares + ((at.spin_index * L + at.am) * x.degree_tiles + dt) * a.maps;
    if (lstart > a.ell_max) {  // uniform: this pair has fewer degree tiles
      for (int c = tid; c < TP; c += kGemmThreads) {
        if (col0 + c < a.maps) shares[col0 + c] = zero;
      }
      continue;
    }
    const int64_t col_end = col0 + TP < a.maps ? col0 + TP : a.maps;
    if (dt == 0) analysis_zero_below(ctx, a, at, col0, col_end);
    Cpx<T> sum[RP];
    SPHCNN_UNROLL
    for (int c = 0; c < RP; ++c) sum[c] = zero;
    analysis_table_tile<T, Tile>(ctx, a, at, lstart, col0, smem, [&](int l, int64_t p, Cpx<T> plus, Cpx<T> minus) {
      if (p >= a.maps) return;
      const int c = static_cast<int>(p - col0 - pg * RP);
      const Cpx<T> f = x.factor[at.spin_index * a.channels + p % a.channels];
      const int orders = at.am == 0 ? 1 : 2;
      for (int sg = 0; sg < orders; ++sg) {
        const Cpx<T> u = sg ? minus : plus;
        const int64_t offset = spectral_offset(a, p, l, sg ? at.mi_n : at.mi_p, at.spin_index);
        const Cpx<T> v = x.input[offset];
        a.spec_out[offset] = Cpx<T>{f.re * u.re - f.im * u.im, f.re * u.im + f.im * u.re};
        sum[c].re += u.re * v.re - u.im * v.im;
        sum[c].im += u.re * v.im + u.im * v.re;
      }
      if (l == 0 && at.am == 0) x.constant[(p / a.channels * a.total_spins + at.spin_index) * a.channels +
                                           p % a.channels] = plus;
    });
    SPHCNN_UNROLL
    for (int c = 0; c < RP; ++c) reduce[tg * TP + pg * RP + c] = sum[c];
    ctx.sync();
    for (int c = tid; c < TP; c += kGemmThreads) {
      Cpx<T> total = zero;
      for (int g = 0; g < Tile::kDegGroups; ++g) {
        total.re += reduce[g * TP + c].re;
        total.im += reduce[g * TP + c].im;
      }
      if (col0 + c < a.maps) shares[col0 + c] = total;
    }
    ctx.sync();  // the next tile's copies go into this memory
  }
}

// products[b, s, c] = sum over the (|m|, degree tile) shares of (s, b C + c) in order.
template <typename T, typename Ctx>
SPHCNN_HD void affine_sum_block(const Ctx& ctx, const GemmArgs<T>& a, const AffineArgs<T>& x) {
  const int L = a.ell_max + 1;
  const int64_t count = x.batch * a.total_spins * a.channels;
  const int64_t per_spin = static_cast<int64_t>(L) * x.degree_tiles;
  for (int64_t e = ctx.block() * kAffineSumThreads + ctx.tid(); e < count; e += ctx.blocks() * kAffineSumThreads) {
    const int64_t c = e % a.channels;
    const int64_t s = (e / a.channels) % a.total_spins;
    const int64_t b = e / (a.channels * a.total_spins);
    const Cpx<T>* share = x.shares + s * per_spin * a.maps + b * a.channels + c;
    Cpx<T> total{T(0), T(0)};
    for (int64_t k = 0; k < per_spin; ++k) {
      total.re += share[k * a.maps].re;
      total.im += share[k * a.maps].im;
    }
    x.products[e] = total;
  }
}

}  // namespace cuda
}  // namespace sphcnn
