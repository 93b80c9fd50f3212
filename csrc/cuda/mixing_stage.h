// K2 with a spin-weighted convolution's per-degree channel and spin mixing:
// the epilogue of the analysis, with the batch norm's partial sums (target
// sphcnn_mixing_analysis; the analysis's CoefficientStore of
// sphcnn/contract.h), and, transposed, the prologue of the synthesis that
// carries its gradient (target sphcnn_mixing_gradient; the synthesis's
// CoefficientLoad); fused_cuda.cu.
//
// Forward (analysis_mixing_block).
// One block owns one |m|, one tile of TL = 32 degrees from |m| and one tile of
// TB batch items; for every input spin it runs the table-mode product of
// legendre_gemm.h (analysis_table_tile) over the tile's columns, writing the
// coefficients a (the convolution's input, kept for its weight gradient). After
// a fence and a barrier (the block's global writes visible to the whole block)
// it reads its own coefficients back, still in L1/L2, and writes
//   b[l, m, o, d] = sum_{i, c} a[l, m, i, c] w[l, i, o, c, d]      (|m| <= l)
// with zeros at |m| > l, and its share of the batch norm's second moment,
//   partial[(|m|, degree tile), batch, o, d] = sum over its l and +-m of |b|^2.
// energy_sum_block adds the shares of every (|m|, degree tile) in a fixed order
// (bit-reproducible, no atomics): energy[batch, o, d] = sum_{l, m} |b_lm|^2, the
// Parseval energy of sphcnn.nn.batch_norm.coefficient_moments.
//
// Backward (synthesis_mixing_block). One block owns one |m| and one tile of TB
// batch items; it first writes the cotangent of the analysis's coefficients
//   ct_a[l, m, i, c] = sum_{o, d} ct_b[l, m, o, d] w[l, i, o, c, d]   (l >= |m|, both orders)
// into scratch, then, after a fence and a barrier, runs the table-mode synthesis tiles of
// legendre_gemm.h over its own columns for every spin and ring tile, reading
// ct_a back while it is still in L2. The transposed analysis continues in K1
// (with the activation's gradient, activation_gradient.h), as for
// sphcnn_activated_gradient.
//
// Layouts: w (L, S, S_out, C, C_out) complex; b in the spectral layout of a
// with (S_out, C_out) for (S, C); partials ((L * degree tiles), B, S_out,
// C_out) and energy (B, S_out, C_out) real. Work split of the mixing: Q = TB
// S_out C_out output columns (d fastest, so the filter reads coalesce); when Q
// is below the block's 128 threads, G = 128 / Q groups of Q threads split the
// degrees and add their energies in group order through shared memory.
#pragma once

#include <cstdint>

#include "block_common.h"
#include "legendre_gemm.h"

namespace sphcnn {
namespace cuda {

using MixingTileShape = AnalysisTile<float, 32, 32>;  // TL and TP (the same for double)
constexpr int kMixingDegrees = MixingTileShape::TL;
constexpr int kMixingColumns = MixingTileShape::TP;
constexpr int kEnergyThreads = 128;

template <typename T>
struct MixingArgs {
  const Cpx<T>* filters;      // w
  Cpx<T>* mixed;              // b (forward)
  T* partials;                // energy shares (forward)
  T* energy;                  // (B, S_out, C_out) (forward)
  const Cpx<T>* mixed_cotangent;  // ct_b, b's layout (backward)
  Cpx<T>* coefficients;           // ct_a in scratch, a's layout (backward; the synthesis's spec_in)
  int out_spins;              // S_out
  int64_t out_channels;       // C_out
  int64_t batch;              // B
  int batch_tile;             // TB
  int degree_tiles;
  int64_t mixed_batch_stride;
  int64_t mixed_degree_stride;
  int64_t items;              // forward: L * degree_tiles * batch tiles; backward: L * batch tiles
};

template <typename T>
using MixingTile = AnalysisTile<T, kMixingDegrees, kMixingColumns>;

// Batch items per block: as many whole items as one tile of columns holds (at
// least one), at most B; one without channels (the handlers launch nothing then).
inline int mixing_batch_tile(int64_t batch, int64_t channels) {
  const int64_t fit = channels > 0 && channels < kMixingColumns ? kMixingColumns / channels : 1;
  return static_cast<int>(fit < batch ? fit : (batch > 0 ? batch : 1));
}

template <typename T>
size_t mixing_shared_bytes() {
  return MixingTile<T>::kSharedBytes + sizeof(T) * kGemmThreads;
}

// The batch items [b0, b0 + count) of batch tile `bt` and their columns [p0, p1).
struct BatchTile {
  int64_t b0, count, p0, p1;
};

template <typename T>
SPHCNN_HD BatchTile batch_tile_at(const MixingArgs<T>& x, int64_t bt, int64_t channels) {
  BatchTile t;
  t.b0 = bt * x.batch_tile;
  t.count = x.batch - t.b0 < x.batch_tile ? x.batch - t.b0 : x.batch_tile;
  t.p0 = t.b0 * channels;
  t.p1 = (t.b0 + t.count) * channels;
  return t;
}

template <typename T>
SPHCNN_HD int64_t mixed_offset(const MixingArgs<T>& x, int64_t b, int l, int mi, int o, int64_t d) {
  return b * x.mixed_batch_stride + l * x.mixed_degree_stride + (static_cast<int64_t>(mi) * x.out_spins + o) * x.out_channels + d;
}

template <typename T, typename Ctx>
SPHCNN_HD void analysis_mixing_block(const Ctx& ctx, const GemmArgs<T>& a, const MixingArgs<T>& x,
                                     unsigned char* smem) {
  using Tile = MixingTile<T>;
  constexpr int TL = Tile::TL, TP = Tile::TP;
  const int tid = ctx.tid();
  const int S = a.spins.count, SO = x.out_spins;
  const int64_t C = a.channels, CO = x.out_channels;
  const int64_t batch_tiles = ceil_div(x.batch, x.batch_tile);
  const int64_t width = static_cast<int64_t>(SO) * CO;
  T* reduce = reinterpret_cast<T*>(smem + Tile::kSharedBytes);
  const Cpx<T> zero{T(0), T(0)};
  for (int64_t item = ctx.block(); item < x.items; item += ctx.blocks()) {
    const int64_t bt = item % batch_tiles;
    const int64_t rest = item / batch_tiles;
    const int dt = static_cast<int>(rest % x.degree_tiles);
    const int am = static_cast<int>(rest / x.degree_tiles);
    const int lstart = am + dt * TL;
    const BatchTile tile = batch_tile_at(x, bt, C);
    const int64_t b0 = tile.b0, nb = tile.count, p0 = tile.p0, p1 = tile.p1;
    const int64_t Q = nb * width;
    T* partial = x.partials + (static_cast<int64_t>(am) * x.degree_tiles + dt) * x.batch * width + b0 * width;
    if (lstart > a.ell_max) {  // uniform: this |m| has fewer degree tiles
      for (int64_t q = tid; q < Q; q += kGemmThreads) partial[q] = T(0);
      continue;
    }
    const int mi_p = a.ell_max + am, mi_n = a.ell_max - am;
    // The coefficients a of every input spin.
    SPHCNN_NO_UNROLL
    for (int s = 0; s < S; ++s) {
      const PairPosition at = pair_at(a, am, s);
      if (dt == 0) analysis_zero_below(ctx, a, at, p0, p1);
      for (int64_t col0 = p0; col0 < p1; col0 += TP) {
        analysis_table_tile<T, Tile>(ctx, a, at, lstart, col0, smem, [&](int l, int64_t p, Cpx<T> plus, Cpx<T> minus) {
          if (p >= p1) return;
          a.spec_out[spectral_offset(a, p, l, mi_p, at.spin_index)] = plus;
          if (am != 0) a.spec_out[spectral_offset(a, p, l, mi_n, at.spin_index)] = minus;
        });
      }
    }
    // Zeros of b below |m|.
    if (dt == 0) {
      for (int64_t e = tid; e < 2 * am * Q; e += kGemmThreads) {
        const int64_t q = e % Q;
        const int l = static_cast<int>((e / Q) % am);
        const int mi = e / (Q * am) ? mi_n : mi_p;
        x.mixed[mixed_offset(x, b0 + q / width, l, mi, static_cast<int>((q / CO) % SO), q % CO)] = zero;
      }
    }
    ctx.fence_block();  // a of the tile, written by every thread to global memory, is read back by others
    ctx.sync();
    const int64_t per = Q < kGemmThreads ? Q : kGemmThreads;
    const int groups = static_cast<int>(kGemmThreads / per);
    const int group = static_cast<int>(tid / per);
    const int top = imin(TL, a.ell_max + 1 - lstart);
    for (int64_t q0 = 0; q0 < Q; q0 += per) {
      const int64_t q = q0 + tid % per;
      T energy = T(0);
      if (group < groups && q < Q) {
        const int64_t bl = q / width;
        const int o = static_cast<int>((q / CO) % SO);
        const int64_t d = q % CO;
        for (int i = group; i < top; i += groups) {
          const int l = lstart + i;
          for (int sg = 0; sg < (am == 0 ? 1 : 2); ++sg) {
            const int mi = sg ? mi_n : mi_p;
            T re = T(0), im = T(0);
            SPHCNN_NO_UNROLL
            for (int s = 0; s < S; ++s) {
              const Cpx<T>* in = a.spec_out + spectral_offset(a, p0 + bl * C, l, mi, s);
              const Cpx<T>* w = x.filters + ((static_cast<int64_t>(l) * S + s) * SO + o) * C * CO + d;
              SPHCNN_NO_UNROLL
              for (int64_t c = 0; c < C; ++c) {
                const Cpx<T> u = in[c], v = w[c * CO];
                re += u.re * v.re - u.im * v.im;
                im += u.re * v.im + u.im * v.re;
              }
            }
            x.mixed[mixed_offset(x, b0 + bl, l, mi, o, d)] = Cpx<T>{re, im};
            energy += re * re + im * im;
          }
        }
      }
      reduce[tid] = energy;
      ctx.sync();
      if (tid < per && q < Q) {
        T sum = T(0);
        for (int g = 0; g < groups; ++g) sum += reduce[g * per + tid];
        partial[q] = sum;
      }
      ctx.sync();  // reduce is refilled by the next round
    }
  }
}

template <typename T>
using MixingSynthesisTile = SynthesisTile<T, 32, 32>;

template <typename T>
size_t mixing_synthesis_shared_bytes() {
  return synthesis_shared_bytes<T, MixingSynthesisTile<T>>(true);
}

template <typename T, typename Ctx>
SPHCNN_HD void synthesis_mixing_block(const Ctx& ctx, const GemmArgs<T>& a, const MixingArgs<T>& x,
                                      unsigned char* smem) {
  using Tile = MixingSynthesisTile<T>;
  constexpr int TJ = Tile::TJ, TP = Tile::TP, TK = Tile::TK;
  const int tid = ctx.tid();
  const int S = a.spins.count, SO = x.out_spins;
  const int64_t C = a.channels, CO = x.out_channels;
  const int L = a.ell_max + 1, half = a.n / 2;
  const int64_t batch_tiles = ceil_div(x.batch, x.batch_tile);
  const Cpx<T> zero{T(0), T(0)};
  for (int64_t item = ctx.block(); item < x.items; item += ctx.blocks()) {
    const int64_t bt = item % batch_tiles;
    const int am = static_cast<int>(item / batch_tiles);
    const BatchTile tile = batch_tile_at(x, bt, C);
    const int64_t b0 = tile.b0, nb = tile.count, p0 = tile.p0, p1 = tile.p1;
    const int mi_p = a.ell_max + am, mi_n = a.ell_max - am;
    const int orders = am == 0 ? 1 : 2;
    // ct_a of the block's columns, every degree from |m|.
    const int64_t width = nb * S * C;
    const int64_t count = static_cast<int64_t>(L - am) * orders * width;
    for (int64_t e = tid; e < count; e += kGemmThreads) {
      const int64_t q = e % width;
      const int64_t rest = e / width;
      const int mi = rest % orders ? mi_n : mi_p;
      const int l = am + static_cast<int>(rest / orders);
      const int64_t bl = q / (S * C);
      const int s = static_cast<int>((q / C) % S);
      const int64_t c = q % C;
      const Cpx<T>* in = x.mixed_cotangent + mixed_offset(x, b0 + bl, l, mi, 0, 0);
      const Cpx<T>* w = x.filters + ((static_cast<int64_t>(l) * S + s) * SO * C + c) * CO;
      T re = T(0), im = T(0);
      for (int o = 0; o < SO; ++o) {
        SPHCNN_NO_UNROLL
        for (int64_t d = 0; d < CO; ++d) {
          const Cpx<T> u = in[o * CO + d], v = w[o * C * CO + d];
          re += u.re * v.re - u.im * v.im;
          im += u.re * v.im + u.im * v.re;
        }
      }
      x.coefficients[spectral_offset(a, p0 + bl * C + c, l, mi, s)] = Cpx<T>{re, im};
    }
    ctx.fence_block();  // ct_a of the block, written by every thread to global memory, is read back by others
    ctx.sync();
    // the last batch tile also writes the padding columns (zeros), as the plain synthesis
    const int64_t col_end = p1 == a.maps ? a.padded_maps : p1;
    for (int s = 0; s < S; ++s) {
      const PairPosition at = pair_at(a, am, s);
      const int steps = at.l0 > a.ell_max ? 0 : static_cast<int>(ceil_div(L - am, TK));
      for (int64_t col0 = p0; col0 < p1; col0 += TP) {
        for (int j0 = 0; j0 < half; j0 += TJ) {
          Cpx<T> acc[Tile::RJ][Tile::RP][4];
          SPHCNN_UNROLL
          for (int k = 0; k < Tile::RJ; ++k) {
            SPHCNN_UNROLL
            for (int c = 0; c < Tile::RP; ++c) {
              SPHCNN_UNROLL
              for (int q = 0; q < 4; ++q) acc[k][c][q] = zero;
            }
          }
          synthesis_table_steps<T, Tile>(ctx, a, at, j0, col0, steps, smem, acc);
          synthesis_store<T, Tile>(ctx, a, at, j0, col0, col_end, acc);
        }
      }
    }
  }
}

// energy[e] = sum over the (|m|, degree tile) shares in order, e over B S_out C_out.
template <typename T, typename Ctx>
SPHCNN_HD void energy_sum_block(const Ctx& ctx, const MixingArgs<T>& x, int shares) {
  const int64_t count = x.batch * x.out_spins * x.out_channels;
  for (int64_t e = ctx.block() * kEnergyThreads + ctx.tid(); e < count; e += ctx.blocks() * kEnergyThreads) {
    T sum = T(0);
    for (int k = 0; k < shares; ++k) sum += x.partials[k * count + e];
    x.energy[e] = sum;
  }
}

}  // namespace cuda
}  // namespace sphcnn
