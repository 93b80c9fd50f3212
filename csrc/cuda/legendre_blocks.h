// The Legendre stage of the CUDA backend: what one thread block of each kernel
// does, written as __host__ __device__ functions of a small context (thread index,
// block index, barrier) so that the same code runs in the __global__ wrappers of
// transforms_cuda.cu and, for checking without a GPU, in a CPU emulation that runs
// one std::thread per CUDA thread.
//
// Layouts (complex values as interleaved (re, im) pairs, B = leading axes, P = B C
// maps, map p = b C + c):
//   rings    F, G: (B, n, M, S, C), ring j, order index mi = m + ell_max;
//   spectral a   : (B, L, M, S, C), degree l;
//   table        : (S, M, L, n/2) real, lambda_{l,m,s}(theta_j) on the north rings
//                  j < n/2 (zero for l < max(|m|, |s|)).
// with L = ell_max + 1, M = 2 ell_max + 1. For fixed (ring or degree, mi, s) the C
// channels are contiguous, so the lanes of a warp run over maps.
//
// One block works on one (spin s, order |m|) pair and a tile of 32 maps. North
// rings j < n/2 pair with south rings n - 1 - j through
//   lambda_{l,m,s}(pi - theta) = (-1)^(l+s) lambda_{l,-m,s}(theta),
// so only lambda_{l,+m,s} and lambda_{l,-m,s} at the north rings are needed, for
// l >= l0 = max(|m|, |s|) (degrees below l0 are skipped). They come either from the
// table (table mode) or from the three-term recurrence of sphcnn/recurrences.h run
// in double inside the kernel (on-the-fly mode), rounded to the data precision.
//
// Chunks of degrees start at l0 and have even length, and every thread's degrees
// or its degree loop start at an even offset from the chunk, so (-1)^(l+s) is
// par0 (-1)^(l - l0) with par0 = (-1)^(l0+s): the alternating part is known at
// compile time (an FMA with a negated operand) and par0 goes into the south ring
// weight.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sphcnn/recurrences.h"

namespace sphcnn {
namespace cuda {

// A complex number of the data (complex64 / complex128 element), aligned so that
// one load or store moves it whole.
template <typename T>
struct alignas(2 * sizeof(T)) Cpx {
  T re, im;
};

constexpr int kThreads = 256;                        // threads per block
constexpr int kMapsPerBlock = 32;                    // lanes of a warp run over maps
constexpr int kGroups = kThreads / kMapsPerBlock;    // warps of a block
constexpr int kSpinsPerLaunch = 64;                  // grid.z of one launch

// The spins of one launch: grid.z = count, spin index offset + blockIdx.z.
// Values are clamped to [-(ell_max + 1), ell_max + 1] by the host (every |s| above
// ell_max gives zero output).
struct SpinGroup {
  int offset;
  int count;
  int value[kSpinsPerLaunch];
};

template <typename T>
struct StageArgs {
  const Cpx<T>* in;       // analysis: F rings; synthesis: a
  Cpx<T>* out;            // analysis: a; synthesis: G rings
  const T* ring_scale;    // (n,)
  const T* table;         // table mode: (S, M, L, n/2); else null
  double* state_d;        // analysis, on the fly: recurrence state in global memory
  int* state_i;           //   (2 n doubles and n ints per block), or null for shared
  int n;
  int ell_max;
  int total_spins;        // S
  int64_t channels;       // C
  int64_t maps;           // P = B C
  SpinGroup spins;
};

// Loop unrolling hints for the device compiler only (the host pass of nvcc and
// plain C++ compilers would warn about an unknown pragma).
#if defined(__CUDA_ARCH__)
#define SPHCNN_UNROLL _Pragma("unroll")
#define SPHCNN_UNROLL_2 _Pragma("unroll 2")
#define SPHCNN_NO_UNROLL _Pragma("unroll 1")
#else
#define SPHCNN_UNROLL
#define SPHCNN_UNROLL_2
#define SPHCNN_NO_UNROLL
#endif

SPHCNN_HD int imin(int a, int b) { return a < b ? a : b; }
SPHCNN_HD int imax(int a, int b) { return a > b ? a : b; }
SPHCNN_HD int iabs(int a) { return a < 0 ? -a : a; }
SPHCNN_HD size_t align16(size_t v) { return (v + 15) & ~static_cast<size_t>(15); }

// Where a thread of an analysis or synthesis block stands: its (spin, |m|) pair
// (grid y, z), its map p = b C + c (tile = grid x, lane), and the stride SC
// between the orders of the (.., rows, M, S, C) arrays.
struct BlockPosition {
  int tid, lane, group, tile, am, sl, spin, l0, mi_p, mi_n;
  int64_t s_index, SC, b, c;
  bool valid;  // p < P (lanes of the last tile may have no map)
};

template <typename T, typename Ctx>
SPHCNN_HD BlockPosition block_position(const Ctx& ctx, const StageArgs<T>& a) {
  BlockPosition at;
  at.tid = ctx.tid();
  at.lane = at.tid % kMapsPerBlock;
  at.group = at.tid / kMapsPerBlock;
  at.tile = ctx.bx();
  at.am = ctx.by();
  at.sl = ctx.bz();
  at.spin = a.spins.value[at.sl];
  at.s_index = a.spins.offset + at.sl;
  at.l0 = imax(at.am, iabs(at.spin));
  at.mi_p = a.ell_max + at.am;
  at.mi_n = a.ell_max - at.am;
  at.SC = static_cast<int64_t>(a.total_spins) * a.channels;
  const int64_t p = static_cast<int64_t>(at.tile) * kMapsPerBlock + at.lane;
  at.valid = p < a.maps;
  at.b = at.valid ? p / a.channels : 0;
  at.c = at.valid ? p - at.b * a.channels : 0;
  return at;
}

// The table rows of one (spin, order): table[((s M + mi) L + l) n/2 + j].
template <typename T>
SPHCNN_HD const T* table_column(const StageArgs<T>& a, int64_t s_index, int mi) {
  const int64_t L = a.ell_max + 1;
  const int64_t M = 2 * static_cast<int64_t>(a.ell_max) + 1;
  return a.table + (s_index * M + mi) * L * (a.n / 2);
}

// Table mode: the lambda tile of both signs, lam[(sg TL + i) RT + r] =
// table_{sg}[lc + i][j0 + r], zero outside l <= ell_max, j < n/2.
template <typename T, int TL, int RT>
SPHCNN_HD void load_lambda_tile(int tid, T* lam, const T* table_p, const T* table_n, int lc, int j0,
                                int half, int ell_max) {
  SPHCNN_NO_UNROLL
  for (int k = tid; k < 2 * TL * RT; k += kThreads) {
    const int r = k % RT;
    const int i = (k / RT) % TL;
    const int sg = k / (RT * TL);
    const int j = j0 + r;
    const int l = lc + i;
    T v = T(0);
    if (j < half && l <= ell_max) v = (sg ? table_n : table_p)[static_cast<int64_t>(l) * half + j];
    lam[k] = v;
  }
}

// ---------------------------------------------------------------------------
// Analysis: a[l, +-m] = sum_j w_j lambda_{l,+-m,s}(theta_j) F[j, +-m].
//
// Warp g of the block owns the degrees lc + 8 g .. lc + 8 g + 7 of the current
// chunk of 64 and lane x the map p0 + x; its accumulators are the 8 degrees times
// (+m, -m) complex values. For each chunk the block walks over tiles of north
// rings: lambda for (2 signs x 64 degrees x tile rings) goes to shared memory
// (table load, or the recurrence advanced by 64 degrees, whose state for every
// north ring and sign persists across chunks), and the weighted F values of the
// tile for the 4 combinations (north/south ring, +m/-m) of each map too.
template <typename T>
struct AnalysisTile {
  static constexpr int kDegPerThread = 8;
  static constexpr int kChunk = kGroups * kDegPerThread;   // 64 degrees
  static constexpr int kRings = sizeof(T) == 8 ? 16 : 32;  // north rings per tile
};

struct AnalysisLayout {
  size_t fsh, lam, coef, starts, cur, prev, scale, total;
};

// Byte offsets into the dynamic shared memory of an analysis block. The state
// arrays (cur, prev, scale: one entry per north ring and sign, n in all) are in
// shared memory when state_in_shared, else in global memory.
template <typename T>
SPHCNN_HD AnalysisLayout analysis_layout(int n, bool on_the_fly, bool state_in_shared) {
  using Tile = AnalysisTile<T>;
  AnalysisLayout lay{};
  size_t off = 0;
  lay.fsh = off;
  off += align16(sizeof(Cpx<T>) * Tile::kRings * 4 * kMapsPerBlock);
  lay.lam = off;
  off += align16(sizeof(T) * 2 * Tile::kChunk * Tile::kRings);
  if (on_the_fly) {
    lay.coef = off;
    off += align16(sizeof(double) * 3 * Tile::kChunk);
    lay.starts = off;
    off += align16(sizeof(ColumnStart) * 2);
    if (state_in_shared) {
      lay.cur = off;
      off += align16(sizeof(double) * static_cast<size_t>(n));
      lay.prev = off;
      off += align16(sizeof(double) * static_cast<size_t>(n));
      lay.scale = off;
      off += align16(sizeof(int) * static_cast<size_t>(n));
    }
  }
  lay.total = off;
  return lay;
}

template <typename T, bool kTable, typename Ctx>
SPHCNN_HD void analysis_block(const Ctx& ctx, const StageArgs<T>& a, unsigned char* smem) {
  using C = Cpx<T>;
  using Tile = AnalysisTile<T>;
  constexpr int RT = Tile::kRings;
  constexpr int TL = Tile::kChunk;
  constexpr int RL = Tile::kDegPerThread;
  constexpr int NM = kMapsPerBlock;
  static_assert(TL % 2 == 0 && RL % 2 == 0, "chunks and thread degree runs must be even");
  static_assert(TL <= kThreads && 2 * RT <= kThreads, "tile larger than the block");

  const BlockPosition at = block_position(ctx, a);
  const int tid = at.tid, lane = at.lane, group = at.group, tile = at.tile, am = at.am, sl = at.sl;
  const int spin = at.spin, l0 = at.l0, mi_p = at.mi_p, mi_n = at.mi_n;
  const int n = a.n, half = n / 2, ell_max = a.ell_max, L = ell_max + 1, M = 2 * ell_max + 1;
  const int64_t s_index = at.s_index, C_ = a.channels, SC = at.SC, b = at.b, c = at.c;
  const bool valid = at.valid;
  // a[b, l, mi, s, c] = out[(l M + mi) SC]
  C* out = a.out + b * L * M * SC + s_index * C_ + c;
  const C zero = {T(0), T(0)};

  // Degrees below l0 (all of them when l0 > ell_max) are exact zeros.
  if (valid) {
    const int lz = imin(l0, L);
    for (int l = group; l < lz; l += kGroups) {
      out[(static_cast<int64_t>(l) * M + mi_p) * SC] = zero;
      if (am != 0) out[(static_cast<int64_t>(l) * M + mi_n) * SC] = zero;
    }
  }
  if (l0 > ell_max) return;  // uniform over the block

  const AnalysisLayout lay = analysis_layout<T>(n, !kTable, a.state_d == nullptr);
  C* fsh = reinterpret_cast<C*>(smem + lay.fsh);  // [RT][4][NM]
  T* lam = reinterpret_cast<T*>(smem + lay.lam);  // [2][TL][RT]
  double* coef = nullptr;                         // [3][TL]: alpha, beta(+m), gamma
  double* cur = nullptr;                          // [2][half] (sign-major)
  double* prev = nullptr;
  int* scl = nullptr;
  if (!kTable) {
    coef = reinterpret_cast<double*>(smem + lay.coef);
    ColumnStart* starts = reinterpret_cast<ColumnStart*>(smem + lay.starts);
    if (a.state_d != nullptr) {
      const int64_t tiles = (a.maps + NM - 1) / NM;
      const int64_t linear = (static_cast<int64_t>(sl) * L + am) * tiles + tile;
      cur = a.state_d + linear * 2 * n;
      prev = cur + n;
      scl = a.state_i + linear * n;
    } else {
      cur = reinterpret_cast<double*>(smem + lay.cur);
      prev = reinterpret_cast<double*>(smem + lay.prev);
      scl = reinterpret_cast<int*>(smem + lay.scale);
    }
    if (tid < 2) starts[tid] = column_start(tid == 0 ? am : -am, spin);
    ctx.sync();
    for (int k = tid; k < n; k += kThreads) {
      const int sg = k / half;
      const int j = k - sg * half;
      double lcos, lsin;
      half_angle_logs(ring_theta(j, n), &lcos, &lsin);
      // A vanishing column (zero flag) is stored as cur = prev = 0, scale = 0,
      // which the linear recurrence keeps at zero.
      const ColumnState st = column_begin(starts[sg], lcos, lsin);
      cur[k] = st.cur;
      prev[k] = st.prev;
      scl[k] = st.scale;
    }
    // (made visible by the barrier after the coefficients below)
  }

  const T par0 = ((l0 + spin) & 1) ? T(-1) : T(1);
  // Warps fill_first / 32 .. load the F tile (on the fly, the warps before them
  // generate lambda); each thread loads for its own map (lane), rows (r, q) by warp.
  const int fill_first = kTable ? 0 : 2 * RT;
  static_assert((2 * RT) % NM == 0, "the generating threads must be whole warps");
  const int fill_warp = (tid - fill_first) / NM;
  const int fill_warps = (kThreads - fill_first) / NM;
  const C* in = a.in + b * n * M * SC + s_index * C_ + c;  // F[b, j, mi, s, c] = in[(j M + mi) SC]
  const T* table_p = kTable ? table_column(a, at.s_index, mi_p) : nullptr;
  const T* table_n = kTable ? table_column(a, at.s_index, mi_n) : nullptr;

  for (int lc = l0; lc <= ell_max; lc += TL) {
    if (!kTable) {
      if (tid < TL) {
        const int l = lc + tid;
        if (l < ell_max) {
          const StepCoefficients cf = step_coefficients(l, am, spin);
          coef[tid] = cf.alpha;
          coef[TL + tid] = cf.beta;  // beta(-m) = -beta(+m) exactly
          coef[2 * TL + tid] = cf.gamma;
        }
      }
      ctx.sync();
    }

    T acc[RL][4];  // [degree][+m re, +m im, -m re, -m im]
SPHCNN_UNROLL
    for (int i = 0; i < RL; ++i) {
SPHCNN_UNROLL
      for (int q = 0; q < 4; ++q) acc[i][q] = T(0);
    }

    for (int j0 = 0; j0 < half; j0 += RT) {
      // lambda of the tile: lam[(sg TL + i) RT + r] = lambda_{lc+i, +-m, s}(theta_{j0+r}).
      if (kTable) {
        load_lambda_tile<T, TL, RT>(tid, lam, table_p, table_n, lc, j0, half, ell_max);
      } else if (tid < 2 * RT) {
        const int sg = tid / RT;
        const int r = tid - sg * RT;
        const int j = j0 + r;
        T* dst = lam + sg * TL * RT + r;
        if (j < half) {
          const int k = sg * half + j;
          ColumnState st;
          st.cur = cur[k];
          st.prev = prev[k];
          st.scale = scl[k];
          st.zero = false;
          const double x = cos(ring_theta(j, n));
          const double bs = sg ? -1.0 : 1.0;
          for (int i = 0; i < TL; ++i) {
            const int l = lc + i;
            dst[i * RT] = l <= ell_max ? static_cast<T>(column_value(st)) : T(0);
            if (l < ell_max) column_step(st, coef[i], bs * coef[TL + i], coef[2 * TL + i], x);
          }
          cur[k] = st.cur;
          prev[k] = st.prev;
          scl[k] = st.scale;
        } else {
          for (int i = 0; i < TL; ++i) dst[i * RT] = T(0);
        }
      }
      // Weighted F of the tile: fsh[(r 4 + q) NM + x], q = 0: w_j F[j, +m],
      // 1: w_j F[j, -m], 2: par0 w_j' F[j', +m], 3: par0 w_j' F[j', -m], j' = n-1-j.
      if (tid >= fill_first) {
        SPHCNN_NO_UNROLL
        for (int rq = fill_warp; rq < RT * 4; rq += fill_warps) {
          const int q = rq % 4;
          const int j = j0 + rq / 4;
          C v = zero;
          if (j < half && valid) {
            const int ring = q < 2 ? j : n - 1 - j;
            const int mi = (q & 1) ? mi_n : mi_p;
            const C f = in[(static_cast<int64_t>(ring) * M + mi) * SC];
            T w = a.ring_scale[ring];
            if (q >= 2) w *= par0;
            v.re = w * f.re;
            v.im = w * f.im;
          }
          fsh[rq * NM + lane] = v;
        }
      }
      ctx.sync();

      const T* lp_col = lam + (group * RL) * RT;
      const T* ln_col = lam + (TL + group * RL) * RT;
      SPHCNN_NO_UNROLL
      for (int r = 0; r < RT; ++r) {
        const C fnp = fsh[(r * 4 + 0) * NM + lane];
        const C fnn = fsh[(r * 4 + 1) * NM + lane];
        const C fsp = fsh[(r * 4 + 2) * NM + lane];
        const C fsn = fsh[(r * 4 + 3) * NM + lane];
SPHCNN_UNROLL
        for (int i = 0; i < RL; ++i) {
          const T lp = lp_col[i * RT + r];
          const T ln = ln_col[i * RT + r];
          const T lps = (i & 1) ? -lp : lp;  // times (-1)^(l - l0)
          const T lns = (i & 1) ? -ln : ln;
          acc[i][0] += lp * fnp.re + lns * fsp.re;
          acc[i][1] += lp * fnp.im + lns * fsp.im;
          acc[i][2] += ln * fnn.re + lps * fsn.re;
          acc[i][3] += ln * fnn.im + lps * fsn.im;
        }
      }
      ctx.sync();
    }

    if (valid) {
SPHCNN_UNROLL
      for (int i = 0; i < RL; ++i) {
        const int l = lc + group * RL + i;
        if (l <= ell_max) {
          C v;
          v.re = acc[i][0];
          v.im = acc[i][1];
          out[(static_cast<int64_t>(l) * M + mi_p) * SC] = v;
          if (am != 0) {
            v.re = acc[i][2];
            v.im = acc[i][3];
            out[(static_cast<int64_t>(l) * M + mi_n) * SC] = v;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Synthesis: G[j, +-m] = w_j sum_l lambda_{l,+-m,s}(theta_j) a[l, +-m].
//
// Warp g owns the north rings j0 + 4 g .. j0 + 4 g + 3 of the current tile of 32
// and lane x the map p0 + x; its accumulators are the 4 rings times the 4
// combinations (north/south, +m/-m). For each ring tile the block walks over
// chunks of degrees: lambda for (2 signs x chunk x 32 rings) goes to shared memory
// (table load, or the recurrence of the tile's rings, started at l0 for every
// tile and kept in the registers of warps 0-1), and the coefficients a of the
// chunk for both signs of each map too. The recurrence coefficients of the next
// chunk are computed by warp 2.. while warps 0-1 generate (double buffered).
template <typename T>
struct SynthesisTile {
  static constexpr int kRingsPerThread = 4;
  static constexpr int kRings = kGroups * kRingsPerThread;  // 32 north rings
  static constexpr int kChunk = sizeof(T) == 8 ? 32 : 64;   // degrees
};

struct SynthesisLayout {
  size_t ash, lam, coef, starts, total;
};

template <typename T>
SPHCNN_HD SynthesisLayout synthesis_layout(bool on_the_fly) {
  using Tile = SynthesisTile<T>;
  SynthesisLayout lay{};
  size_t off = 0;
  lay.ash = off;
  off += align16(sizeof(Cpx<T>) * Tile::kChunk * 2 * kMapsPerBlock);
  lay.lam = off;
  off += align16(sizeof(T) * 2 * Tile::kChunk * Tile::kRings);
  if (on_the_fly) {
    lay.coef = off;
    off += align16(sizeof(double) * 2 * 3 * Tile::kChunk);
    lay.starts = off;
    off += align16(sizeof(ColumnStart) * 2);
  }
  lay.total = off;
  return lay;
}

template <typename T, bool kTable, typename Ctx>
SPHCNN_HD void synthesis_block(const Ctx& ctx, const StageArgs<T>& a, unsigned char* smem) {
  using C = Cpx<T>;
  using Tile = SynthesisTile<T>;
  constexpr int RT = Tile::kRings;
  constexpr int RR = Tile::kRingsPerThread;
  constexpr int TL = Tile::kChunk;
  constexpr int NM = kMapsPerBlock;
  static_assert(TL % 2 == 0, "chunks must be even");
  static_assert(2 * RT + TL <= kThreads, "generation and coefficient threads exceed the block");

  const BlockPosition at = block_position(ctx, a);
  const int tid = at.tid, lane = at.lane, group = at.group, am = at.am;
  const int spin = at.spin, l0 = at.l0, mi_p = at.mi_p, mi_n = at.mi_n;
  const int n = a.n, half = n / 2, ell_max = a.ell_max, L = ell_max + 1, M = 2 * ell_max + 1;
  const int64_t s_index = at.s_index, C_ = a.channels, SC = at.SC, b = at.b, c = at.c;
  const bool valid = at.valid;
  // G[b, j, mi, s, c] = out[(j M + mi) SC]
  C* out = a.out + b * n * M * SC + s_index * C_ + c;
  const C zero = {T(0), T(0)};

  if (l0 > ell_max) {  // uniform over the block: no degree contributes
    if (valid) {
      for (int j = group; j < n; j += kGroups) {
        out[(static_cast<int64_t>(j) * M + mi_p) * SC] = zero;
        if (am != 0) out[(static_cast<int64_t>(j) * M + mi_n) * SC] = zero;
      }
    }
    return;
  }

  const SynthesisLayout lay = synthesis_layout<T>(!kTable);
  C* ash = reinterpret_cast<C*>(smem + lay.ash);  // [TL][2][NM]
  T* lam = reinterpret_cast<T*>(smem + lay.lam);  // [2][TL][RT]
  double* coef = nullptr;                         // [2 buffers][3][TL]
  ColumnStart* starts = nullptr;
  const int nchunks = (ell_max - l0) / TL + 1;
  const bool gen = !kTable && tid < 2 * RT;       // warps 0-1: one (sign, ring) each
  const bool coef_thread = !kTable && tid >= 2 * RT && tid < 2 * RT + TL;
  if (!kTable) {
    coef = reinterpret_cast<double*>(smem + lay.coef);
    starts = reinterpret_cast<ColumnStart*>(smem + lay.starts);
    if (tid < 2) starts[tid] = column_start(tid == 0 ? am : -am, spin);
    if (coef_thread) {
      const int i = tid - 2 * RT;
      const int l = l0 + i;
      if (l < ell_max) {
        const StepCoefficients cf = step_coefficients(l, am, spin);
        coef[i] = cf.alpha;
        coef[TL + i] = cf.beta;
        coef[2 * TL + i] = cf.gamma;
      }
    }
    ctx.sync();
  }

  const T par0 = ((l0 + spin) & 1) ? T(-1) : T(1);
  // Warps fill_first / 32 .. load the a tile, each thread for its own map (lane).
  const int fill_first = kTable ? 0 : 2 * RT;
  static_assert((2 * RT) % NM == 0, "the generating threads must be whole warps");
  const int fill_warp = (tid - fill_first) / NM;
  const int fill_warps = (kThreads - fill_first) / NM;
  const C* in = a.in + b * L * M * SC + s_index * C_ + c;  // a[b, l, mi, s, c] = in[(l M + mi) SC]
  const T* table_p = kTable ? table_column(a, at.s_index, mi_p) : nullptr;
  const T* table_n = kTable ? table_column(a, at.s_index, mi_n) : nullptr;
  const int gsg = tid / RT;          // generator's sign (0: +m, 1: -m)
  const int gr = tid - gsg * RT;     // generator's ring in the tile
  int buf = 0;                       // coefficient buffer of the current chunk

  for (int j0 = 0; j0 < half; j0 += RT) {
    ColumnState st;
    st.prev = 0.0;
    st.cur = 0.0;
    st.scale = 0;
    st.zero = false;
    double x = 0.0;
    if (gen && j0 + gr < half) {
      const double theta = ring_theta(j0 + gr, n);
      double lcos, lsin;
      half_angle_logs(theta, &lcos, &lsin);
      st = column_begin(starts[gsg], lcos, lsin);
      x = cos(theta);
    }

    T acc[RR][8];  // [ring][north +m (re, im), north -m, south +m, south -m]
SPHCNN_UNROLL
    for (int k = 0; k < RR; ++k) {
SPHCNN_UNROLL
      for (int q = 0; q < 8; ++q) acc[k][q] = T(0);
    }

    for (int ch = 0; ch < nchunks; ++ch) {
      const int lc = l0 + ch * TL;
      if (kTable) {
        load_lambda_tile<T, TL, RT>(tid, lam, table_p, table_n, lc, j0, half, ell_max);
      } else if (gen) {
        T* dst = lam + gsg * TL * RT + gr;
        const double* cf = coef + buf * 3 * TL;
        const double bs = gsg ? -1.0 : 1.0;
        for (int i = 0; i < TL; ++i) {
          const int l = lc + i;
          dst[i * RT] = l <= ell_max ? static_cast<T>(column_value(st)) : T(0);
          if (l < ell_max) column_step(st, cf[i], bs * cf[TL + i], cf[2 * TL + i], x);
        }
      } else if (coef_thread) {
        // Coefficients of the chunk after this one (the first one again after the
        // last, for the next ring tile) into the other buffer.
        const int next = ch + 1 < nchunks ? ch + 1 : 0;
        const int i = tid - 2 * RT;
        const int l = l0 + next * TL + i;
        double* cf = coef + (buf ^ 1) * 3 * TL;
        if (l < ell_max) {
          const StepCoefficients sc = step_coefficients(l, am, spin);
          cf[i] = sc.alpha;
          cf[TL + i] = sc.beta;
          cf[2 * TL + i] = sc.gamma;
        }
      }
      // a of the chunk: ash[(i 2 + q) NM + x] = a[lc + i, q ? -m : +m] of map p0 + x.
      if (tid >= fill_first) {
        SPHCNN_NO_UNROLL
        for (int iq = fill_warp; iq < TL * 2; iq += fill_warps) {
          const int q = iq % 2;
          const int l = lc + iq / 2;
          C v = zero;
          if (l <= ell_max && valid) v = in[(static_cast<int64_t>(l) * M + (q ? mi_n : mi_p)) * SC];
          ash[iq * NM + lane] = v;
        }
      }
      ctx.sync();

      const T* lp_row = lam + group * RR;
      const T* ln_row = lam + TL * RT + group * RR;
      SPHCNN_NO_UNROLL
      for (int i = 0; i < TL; i += 2) {
SPHCNN_UNROLL
        for (int u = 0; u < 2; ++u) {  // u: (-1)^(l - l0)
          const int ii = i + u;
          const C ap = ash[(ii * 2 + 0) * NM + lane];
          const C an = ash[(ii * 2 + 1) * NM + lane];
          T lp[RR], ln[RR];
SPHCNN_UNROLL
          for (int k = 0; k < RR; ++k) {
            lp[k] = lp_row[ii * RT + k];
            ln[k] = ln_row[ii * RT + k];
          }
SPHCNN_UNROLL
          for (int k = 0; k < RR; ++k) {
            const T lps = u ? -lp[k] : lp[k];
            const T lns = u ? -ln[k] : ln[k];
            acc[k][0] += lp[k] * ap.re;
            acc[k][1] += lp[k] * ap.im;
            acc[k][2] += ln[k] * an.re;
            acc[k][3] += ln[k] * an.im;
            acc[k][4] += lns * ap.re;
            acc[k][5] += lns * ap.im;
            acc[k][6] += lps * an.re;
            acc[k][7] += lps * an.im;
          }
        }
      }
      ctx.sync();
      buf ^= 1;
    }

    if (valid) {
SPHCNN_UNROLL
      for (int k = 0; k < RR; ++k) {
        const int j = j0 + group * RR + k;
        if (j < half) {
          const int js = n - 1 - j;
          const T wn = a.ring_scale[j];
          const T ws = a.ring_scale[js] * par0;
          C v;
          v.re = wn * acc[k][0];
          v.im = wn * acc[k][1];
          out[(static_cast<int64_t>(j) * M + mi_p) * SC] = v;
          v.re = ws * acc[k][4];
          v.im = ws * acc[k][5];
          out[(static_cast<int64_t>(js) * M + mi_p) * SC] = v;
          if (am != 0) {
            v.re = wn * acc[k][2];
            v.im = wn * acc[k][3];
            out[(static_cast<int64_t>(j) * M + mi_n) * SC] = v;
            v.re = ws * acc[k][6];
            v.im = ws * acc[k][7];
            out[(static_cast<int64_t>(js) * M + mi_n) * SC] = v;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Table: table[((s M + mi) L + l) n/2 + j] = lambda_{l, m, s}(theta_j), j < n/2,
// in the data precision. Block (mi, spin); its threads run over north rings (the
// writes of one degree are contiguous), the recurrence coefficients of each chunk
// of 256 degrees are computed once per block.
constexpr size_t kTableBlockSmem = 64 + sizeof(double) * 3 * kThreads;

template <typename T, typename Ctx>
SPHCNN_HD void table_block(const Ctx& ctx, T* table, int n, int ell_max, int total_spins,
                           const SpinGroup& spins, unsigned char* smem) {
  (void)total_spins;
  const int tid = ctx.tid();
  const int mi = ctx.bx();
  const int sl = ctx.by();
  const int spin = spins.value[sl];
  const int64_t s_index = spins.offset + sl;
  const int half = n / 2;
  const int L = ell_max + 1;
  const int M = 2 * ell_max + 1;
  const int m = mi - ell_max;
  const int l0 = imax(iabs(m), iabs(spin));
  T* col = table + (s_index * M + mi) * static_cast<int64_t>(L) * half;  // [l][j]
  if (l0 > ell_max) {
    for (int64_t k = tid; k < static_cast<int64_t>(L) * half; k += kThreads) col[k] = T(0);
    return;
  }
  ColumnStart* start = reinterpret_cast<ColumnStart*>(smem);
  double* coef = reinterpret_cast<double*>(smem + 64);  // [3][kThreads]
  if (tid == 0) *start = column_start(m, spin);
  for (int64_t k = tid; k < static_cast<int64_t>(l0) * half; k += kThreads) col[k] = T(0);
  ctx.sync();
  for (int j0 = 0; j0 < half; j0 += kThreads) {
    const int j = j0 + tid;
    const bool active = j < half;
    ColumnState st;
    st.prev = 0.0;
    st.cur = 0.0;
    st.scale = 0;
    st.zero = false;
    double x = 0.0;
    if (active) {
      const double theta = ring_theta(j, n);
      double lcos, lsin;
      half_angle_logs(theta, &lcos, &lsin);
      st = column_begin(*start, lcos, lsin);
      x = cos(theta);
    }
    for (int lc = l0; lc <= ell_max; lc += kThreads) {
      {
        const int l = lc + tid;
        if (l < ell_max) {
          const StepCoefficients cf = step_coefficients(l, m, spin);
          coef[tid] = cf.alpha;
          coef[kThreads + tid] = cf.beta;
          coef[2 * kThreads + tid] = cf.gamma;
        }
      }
      ctx.sync();
      const int count = imin(kThreads, ell_max - lc + 1);
      if (active) {
        for (int i = 0; i < count; ++i) {
          const int l = lc + i;
          col[static_cast<int64_t>(l) * half + j] = static_cast<T>(column_value(st));
          if (l < ell_max) column_step(st, coef[i], coef[kThreads + i], coef[2 * kThreads + i], x);
        }
      }
      ctx.sync();
    }
  }
}

}  // namespace cuda
}  // namespace sphcnn
