// How a CUDA transform is launched, decided on the host from the call's geometry
// alone: the tile configuration of K2 (chosen from n, ell_max and the number of
// maps so that small grids do not compute padding), the rows per block of K1,
// where their buffers live (shared memory, or slices of the scratch result when
// they do not fit 48 KiB), and the layout and size of the scratch result; for
// the n x n grid (launch_plan) and for the grid targets' nlat x nlon grids
// (grid_launch_plan: K1 over nlat rings of length nlon, K2 on the fly over
// the ring slots of the call's attribute mirrored, legendre_gemm.h ring_slots).
// Plain C++ (no CUDA headers): the Python module asks it for scratch sizes and
// the CPU emulation of the blocks makes the same decisions.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "affine_stage.h"
#include "legendre_gemm.h"
#include "mixing_stage.h"
#include "ring_dft.h"
#include "sphcnn/contract.h"

namespace sphcnn {
namespace cuda {

// Blocks of K2 on the fly when its accumulators are slices of the scratch result.
constexpr int64_t kGlobalAccumulatorBlocks = 1024;

struct RingLaunch {
  int tile_rows = 1;       // R
  int64_t row_tiles = 0;   // ceil(Q / R)
  bool global = false;     // tile buffers in scratch
  int64_t blocks = 0;
  size_t shared_bytes = 0;
};

struct GemmLaunch {
  int config = 0;            // index into the tile list of the kernel (transforms_cuda.cu)
  int tiles = 0;             // tiles per (spin, |m|) pair
  int64_t max_blocks = INT_MAX;
  bool global_accumulators = false;
  size_t shared_bytes = 0;
  int64_t blocks = 0;        // of one launch (set per spin group)
};

struct LaunchPlan {
  Geometry geometry;
  LambdaSource source;
  int slots = 0;             // K2's ring slots (legendre_gemm.h ring_slots)
  int64_t padded_maps = 0;
  RingLaunch ring;
  GemmLaunch gemm;
  size_t rings_offset = 0;
  size_t ring_buffers_offset = 0;
  size_t accumulators_offset = 0;
  size_t scratch_bytes = 0;
};

inline size_t align256(size_t v) { return (v + 255) & ~static_cast<size_t>(255); }

// Padded work of a tile shape: rows of `tile_rows` over `row_count` rows times
// columns of `tile_cols` over P columns.
inline int64_t padded(int64_t rows, int tile_rows, int64_t cols, int tile_cols) {
  return ceil_div(rows, tile_rows) * tile_rows * (ceil_div(cols, tile_cols) * tile_cols);
}

// Tile shapes (rows, columns) of the table kernels, in the order of their
// config index; the first one wins ties.
constexpr int kTableShapes[3][2] = {{32, 32}, {8, 128}, {128, 8}};

template <typename T>
size_t analysis_table_shared(int config) {
  switch (config) {
    case 0: return AnalysisTile<T, 32, 32>::kSharedBytes;
    case 1: return AnalysisTile<T, 8, 128>::kSharedBytes;
    default: return AnalysisTile<T, 128, 8>::kSharedBytes;
  }
}

template <typename T>
size_t synthesis_shared(int config, bool table) {
  switch (config) {
    case 0: return synthesis_shared_bytes<T, SynthesisTile<T, 32, 32>>(table);
    case 1: return synthesis_shared_bytes<T, SynthesisTile<T, 8, 128>>(table);
    default: return synthesis_shared_bytes<T, SynthesisTile<T, 128, 8>>(table);
  }
}

// On the fly analysis tiles (degrees per step, columns): {32, 2}, {16, 2}, {16, 4}.
template <typename T>
size_t analysis_otf_fixed(int config) {
  switch (config) {
    case 0: return AnalysisOtfTile<T, 32, 2>::kFixedBytes;
    case 1: return AnalysisOtfTile<T, 16, 2>::kFixedBytes;
    default: return AnalysisOtfTile<T, 16, 4>::kFixedBytes;
  }
}
constexpr int kOtfColumns[3] = {2, 2, 4};

// K2's tile and blocks over `slots` ring slots (legendre_gemm.h ring_slots).
template <typename T>
GemmLaunch gemm_launch(const Geometry& g, bool analysis, LambdaSource source, int slots) {
  GemmLaunch gl;
  const int L = g.L();
  const int64_t P = g.batch * g.channels;
  if (analysis && source == LambdaSource::kOnTheFly) {
    const int candidates[2] = {P <= 2 ? 0 : 2, P <= 2 ? 1 : 2};
    gl.config = candidates[0];
    gl.global_accumulators = true;
    for (int c : candidates) {
      const size_t acc = sizeof(Cpx<T>) * 2 * static_cast<size_t>(L) * kOtfColumns[c];
      if (analysis_otf_fixed<T>(c) + acc <= kSharedBudget) {
        gl.config = c;
        gl.global_accumulators = false;
        break;
      }
    }
    const size_t acc = sizeof(Cpx<T>) * 2 * static_cast<size_t>(L) * kOtfColumns[gl.config];
    gl.shared_bytes = analysis_otf_fixed<T>(gl.config) + (gl.global_accumulators ? 0 : acc);
    gl.tiles = static_cast<int>(ceil_div(P, kOtfColumns[gl.config]));
    gl.max_blocks = gl.global_accumulators ? kGlobalAccumulatorBlocks : INT_MAX;
    return gl;
  }
  int64_t best = -1;
  for (int c = 0; c < 3; ++c) {
    const int rows = kTableShapes[c][0], cols = kTableShapes[c][1];
    int64_t cost = 0;
    if (analysis) {
      for (int am = 0; am < L; ++am) cost += padded(L - am, rows, P, cols);
    } else {
      cost = padded(slots, rows, P, cols) * L;
    }
    if (best < 0 || cost < best) {
      best = cost;
      gl.config = c;
    }
  }
  const int rows = kTableShapes[gl.config][0], cols = kTableShapes[gl.config][1];
  gl.tiles = static_cast<int>(ceil_div(analysis ? L : slots, rows) * ceil_div(P, cols));
  gl.shared_bytes = analysis ? analysis_table_shared<T>(gl.config)
                             : synthesis_shared<T>(gl.config, source == LambdaSource::kTable);
  return gl;
}

template <typename T>
RingLaunch ring_launch(const Geometry& g) {
  RingLaunch rl;
  const int64_t rows = g.batch * g.spins * g.channels;
  const RingPlan plan = ring_plan(g.nlon);
  const size_t tables = ring_shared_bytes<T>(plan, 0, true);
  const size_t per_row = 2 * sizeof(Cpx<T>) * static_cast<size_t>(g.nlon);
  const int64_t fit = tables < kSharedBudget ? static_cast<int64_t>((kSharedBudget - tables) / per_row) : 0;
  rl.global = fit < 1;
  int64_t R = rl.global ? 1 : std::min<int64_t>({kMaxRingRows, std::max<int64_t>(rows, 1), fit});
  if (R >= 2) R -= R % 2;
  rl.tile_rows = static_cast<int>(R);
  rl.row_tiles = ceil_div(rows, R);
  const int64_t items = static_cast<int64_t>(g.nlat) * rl.row_tiles;
  rl.blocks = std::min<int64_t>(items, rl.global ? kGlobalRingBlocks : INT_MAX);
  rl.shared_bytes = ring_shared_bytes<T>(plan, rl.tile_rows, rl.global);
  return rl;
}

template <typename T>
LaunchPlan typed_launch_plan(const Geometry& g, bool analysis, LambdaSource source, bool ring_grid, bool mirrored) {
  LaunchPlan p;
  p.geometry = g;
  p.source = source;
  p.slots = ring_grid ? ring_slots<true>(g.nlat, mirrored).slots : ring_slots<false>(g.n, true).slots;
  constexpr int64_t V = 16 / sizeof(Cpx<T>);
  p.padded_maps = ceil_div(g.batch * g.channels, V) * V;
  p.ring = ring_launch<T>(g);
  p.gemm = gemm_launch<T>(g, analysis, source, p.slots);
  size_t offset = 0;
  p.rings_offset = offset;
  offset += align256(sizeof(Cpx<T>) * static_cast<size_t>(g.spins) * g.M() * g.nlat * static_cast<size_t>(p.padded_maps));
  p.ring_buffers_offset = offset;
  if (p.ring.global) offset += align256(sizeof(Cpx<T>) * 2 * static_cast<size_t>(p.ring.tile_rows) * g.nlon * p.ring.blocks);
  p.accumulators_offset = offset;
  if (p.gemm.global_accumulators) {
    offset += align256(sizeof(Cpx<T>) * 2 * static_cast<size_t>(g.L()) * kOtfColumns[p.gemm.config] *
                       static_cast<size_t>(p.gemm.max_blocks));
  }
  p.scratch_bytes = offset;
  return p;
}

inline LaunchPlan launch_plan(const Geometry& g, bool analysis, LambdaSource source) {
  return g.is_double ? typed_launch_plan<double>(g, analysis, source, false, true)
                     : typed_launch_plan<float>(g, analysis, source, false, true);
}

// The plan of sphcnn_grid_analysis / sphcnn_grid_synthesis (lambda on the fly)
// on the geometry's nlat x nlon grid, its rings `mirrored` or not (the
// attribute; only the synthesis's tiles depend on it, not the scratch).
inline LaunchPlan grid_launch_plan(const Geometry& g, bool analysis, bool mirrored) {
  return g.is_double ? typed_launch_plan<double>(g, analysis, LambdaSource::kOnTheFly, true, mirrored)
                     : typed_launch_plan<float>(g, analysis, LambdaSource::kOnTheFly, true, mirrored);
}

// sphcnn_mixing_analysis: K1 of the analysis plan, then one launch of
// analysis_mixing_block over (|m|, degree tile, batch tile) items and one of
// energy_sum_block; the scratch result holds the analysis plan's buffers, then
// the energy shares. Only with the lambda table and at most kSpinsPerLaunch
// input spins (else `supported` is false and the caller composes the targets).
struct MixingLaunch {
  LaunchPlan plan;
  bool supported = false;
  int batch_tile = 1;
  int degree_tiles = 0;
  int64_t items = 0;
  int64_t blocks = 0;
  size_t shared_bytes = 0;
  int shares = 0;            // (|m|, degree tile) pairs
  int64_t energy_blocks = 0;
  size_t partials_offset = 0;
  size_t scratch_bytes = 0;
};

inline MixingLaunch mixing_launch(const Geometry& g, LambdaSource source, int out_spins, int64_t out_channels) {
  MixingLaunch ml;
  ml.plan = launch_plan(g, true, source);
  ml.supported = source == LambdaSource::kTable && g.spins <= kSpinsPerLaunch;
  ml.batch_tile = mixing_batch_tile(g.batch, g.channels);
  ml.degree_tiles = static_cast<int>(ceil_div(g.L(), kMixingDegrees));
  ml.shares = g.L() * ml.degree_tiles;
  ml.items = static_cast<int64_t>(ml.shares) * ceil_div(g.batch, ml.batch_tile);
  ml.blocks = std::min<int64_t>(ml.items, INT_MAX);
  ml.shared_bytes = g.is_double ? mixing_shared_bytes<double>() : mixing_shared_bytes<float>();
  const int64_t count = g.batch * out_spins * out_channels;
  ml.energy_blocks = ceil_div(count, kEnergyThreads);
  ml.partials_offset = ml.plan.scratch_bytes;
  ml.scratch_bytes = ml.partials_offset +
                     align256((g.is_double ? 8 : 4) * static_cast<size_t>(ml.shares) * static_cast<size_t>(count));
  return ml;
}

// sphcnn_affine_gradient: the analysis plan (K1, then affine_gradient_block in
// place of K2 with the plan's table tile), then affine_sum_block; the scratch
// result holds the analysis plan's buffers, then the products' shares. Only
// with the lambda table (else `supported` is false and the caller composes).
struct AffineLaunch {
  LaunchPlan plan;
  bool supported = false;
  int degree_tiles = 0;
  int64_t sum_blocks = 0;
  size_t shares_offset = 0;
  size_t scratch_bytes = 0;
};

inline AffineLaunch affine_gradient_launch(const Geometry& g, LambdaSource source) {
  AffineLaunch al;
  al.plan = launch_plan(g, true, source);
  al.supported = source == LambdaSource::kTable;
  al.degree_tiles = static_cast<int>(ceil_div(g.L(), kTableShapes[al.plan.gemm.config][0]));
  const int64_t maps = g.batch * g.channels;
  al.sum_blocks = ceil_div(maps * g.spins, kAffineSumThreads);
  al.shares_offset = al.plan.scratch_bytes;
  al.scratch_bytes = al.shares_offset + align256((g.is_double ? 16 : 8) * static_cast<size_t>(g.spins) * g.L() *
                                                 al.degree_tiles * static_cast<size_t>(maps));
  return al;
}

template <typename T>
size_t affine_table_shared(int config) {
  switch (config) {
    case 0: return affine_shared_bytes<T, AnalysisTile<T, 32, 32>>();
    case 1: return affine_shared_bytes<T, AnalysisTile<T, 8, 128>>();
    default: return affine_shared_bytes<T, AnalysisTile<T, 128, 8>>();
  }
}

// The spins of the launch starting at spin index `offset`, clamped to
// [-(ell_max + 1), ell_max + 1]: only whether |s| exceeds ell_max matters beyond.
inline SpinGroup spin_group(const int64_t* spins, int64_t count, int ell_max, int offset) {
  SpinGroup group{};
  group.offset = offset;
  group.count = static_cast<int>(std::min<int64_t>(kSpinsPerLaunch, count - offset));
  const int64_t bound = static_cast<int64_t>(ell_max) + 1;
  for (int i = 0; i < group.count; ++i) {
    group.value[i] = static_cast<int>(std::clamp<int64_t>(spins[offset + i], -bound, bound));
  }
  return group;
}

}  // namespace cuda
}  // namespace sphcnn
