// Every launch of the CUDA handlers (csrc/cuda/transforms_cuda.cu, fused_cuda.cu) over
// extreme geometries, without a GPU: the plans of csrc/cuda/launch_plan.h and
// activation_gradient.h evaluated as the handlers evaluate them, and each
// kernel launch the handlers would make from them (kernel, threads, grid,
// dynamic shared memory; the grid expressions are the handlers') checked
// against what the hardware refuses (launch_refusal of emulated_launch.h: no
// kernel opts in to more than 48 KiB), and every scratch layout against its
// regions' sizes computed in 128-bit integers (no overflow, no overlap) and the
// plans' int fields against their 64-bit values.
//
// Geometries: n from 4 to 2048 (powers of two, odd multiples of 2, other
// factorizations), ell_max from 0 to n/2 - 1, B C maps from 1 to 4096 (all
// in the batch, all in the channels, or split), 1 to 8 spins, both
// precisions, both lambda sources, pooling or none, and for the mixing
// targets several output widths; for the grid targets (grid_launch_plan, the
// rings mirrored or not) nlat x nlon grids from 1 x 1 to 2881 x 5760 (ERA5 at
// 0.0625 degrees) with ell_max up to (nlon - 1) / 2. Zero sizes are not swept (the handlers
// launch nothing for them).
//
// Prints one JSON object: counts (geometries, plans, launches, violations),
// the largest grid and scratch, and per kernel (named as the demangled
// __global__ function without namespaces) its threads, largest dynamic shared
// memory, largest grid and number of launches. Violations are listed on
// stderr (the first 20); exit status 1 if there is any.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "activation_gradient.h"
#include "affine_stage.h"
#include "emulated_launch.h"
#include "launch_plan.h"
#include "legendre_gemm.h"
#include "mixing_stage.h"
#include "ring_dft.h"

using namespace sphcnn;
using namespace sphcnn::cuda;
using u128 = unsigned __int128;

namespace {

// The tiles of the on-the-fly analysis by config, as transforms_cuda.cu's
// switch instantiates them (checked against launch_plan.h in main).
constexpr int kOtfTiles[3][2] = {{32, 2}, {16, 2}, {16, 4}};

struct KernelStats {
  int threads = 0;
  size_t max_shared = 0;
  int64_t max_grid = 0;
  int64_t launches = 0;
};

struct Sweep {
  int64_t geometries = 0, plans = 0, launches = 0, violations = 0;
  int64_t max_grid = 0;
  size_t max_scratch = 0;
  std::map<std::string, KernelStats> kernels;
  std::string where;  // the target and geometry being evaluated

  void violation(const std::string& what) {
    if (violations++ < 20) std::fprintf(stderr, "violation: %s: %s\n", where.c_str(), what.c_str());
  }

  void launch(const std::string& kernel, int threads, int64_t grid, size_t shared) {
    launches++;
    KernelStats& k = kernels[kernel];
    if (k.threads != 0 && k.threads != threads) violation(kernel + " launched with two block sizes");
    k.threads = threads;
    k.max_shared = std::max(k.max_shared, shared);
    k.max_grid = std::max(k.max_grid, grid);
    k.launches++;
    max_grid = std::max(max_grid, grid);
    const char* refusal = emulation::launch_refusal(threads, grid, shared, emulation::SharedOptIn::kNo);
    if (refusal != nullptr) {
      violation(kernel + ": " + refusal + " (threads " + std::to_string(threads) + ", grid " + std::to_string(grid) +
                ", shared " + std::to_string(shared) + ")");
    }
  }

  // A region of `bytes` from `begin` must end at or before `next` (the next
  // region's offset, or the scratch size), all without wrapping around.
  void region(const char* name, size_t begin, u128 bytes, size_t next) {
    if (static_cast<u128>(begin) + bytes > static_cast<u128>(next)) {
      violation(std::string("scratch region ") + name + " overflows");
    }
  }

  void scratch(size_t bytes) {
    if (bytes > static_cast<size_t>(INT64_MAX)) violation("scratch above 2^63 bytes");
    max_scratch = std::max(max_scratch, bytes);
  }

  // An int field of a plan must hold its 64-bit (or wider) value.
  void fits_int(const char* name, int field, u128 value) {
    if (value > static_cast<u128>(INT_MAX) || static_cast<u128>(field) != value) {
      violation(std::string("int field ") + name + " does not hold its value");
    }
  }
};

template <typename T>
std::string type_name() {
  return sizeof(T) == 4 ? "float" : "double";
}

template <typename T>
std::string shape_tile(const char* tile, int config) {
  return std::string(tile) + "<" + type_name<T>() + ", " + std::to_string(kTableShapes[config][0]) + ", " +
         std::to_string(kTableShapes[config][1]) + ">";
}

template <typename T>
std::string otf_tile(int config) {
  return "AnalysisOtfTile<" + type_name<T>() + ", " + std::to_string(kOtfTiles[config][0]) + ", " +
         std::to_string(kOtfTiles[config][1]) + ">";
}

u128 wide(int64_t v) { return static_cast<u128>(v); }

// K1 of a plan (launch_ring; ring_grid: the grid targets' kernels).
template <typename T>
void ring_launch_of(Sweep& sw, const LaunchPlan& p, bool to_orders, bool ring_grid = false) {
  const Geometry& g = p.geometry;
  const RingLaunch& rl = p.ring;
  const u128 rows = wide(g.batch) * wide(g.spins) * wide(g.channels);
  if (rl.tile_rows < 1 || rl.tile_rows > kMaxRingRows || rl.row_tiles < 1 ||
      wide(rl.row_tiles) * wide(rl.tile_rows) < rows) {
    sw.violation("K1 tiles do not cover the rows");
  }
  sw.fits_int("RingArgs::lanes", g.spins * static_cast<int>(g.channels), wide(g.spins) * wide(g.channels));
  const char* kernel = ring_grid ? (to_orders ? "ring_grid_to_orders_kernel<" : "orders_to_ring_grid_kernel<")
                                 : (to_orders ? "grid_to_orders_kernel<" : "orders_to_grid_kernel<");
  sw.launch(kernel + type_name<T>() + ">", kRingThreads, rl.blocks, rl.shared_bytes);
}

// K2 of a plan for every spin group (launch_gemm; ring_grid: the grid targets' kernels).
template <typename T>
void gemm_launch_of(Sweep& sw, const LaunchPlan& p, bool analysis, bool ring_grid = false) {
  const Geometry& g = p.geometry;
  const GemmLaunch& gl = p.gemm;
  const bool table = p.source == LambdaSource::kTable;
  std::string kernel;
  if (ring_grid && analysis) {
    kernel = "ring_grid_analysis_kernel<" + type_name<T>() + ", " + otf_tile<T>(gl.config) + ">";
  } else if (ring_grid) {
    kernel = "ring_grid_synthesis_kernel<" + type_name<T>() + ", " + shape_tile<T>("SynthesisTile", gl.config) + ">";
  } else if (analysis && table) {
    kernel = "analysis_table_kernel<" + type_name<T>() + ", " + shape_tile<T>("AnalysisTile", gl.config) + ">";
  } else if (analysis) {
    kernel = "analysis_otf_kernel<" + type_name<T>() + ", " + otf_tile<T>(gl.config) + ">";
  } else {
    kernel = "synthesis_kernel<" + type_name<T>() + ", " + shape_tile<T>("SynthesisTile", gl.config) + ", " +
             (table ? "true" : "false") + ">";
  }
  if (gl.tiles < 1) sw.violation("K2 without tiles");
  for (int offset = 0; offset < g.spins; offset += kSpinsPerLaunch) {
    const int count = std::min(kSpinsPerLaunch, g.spins - offset);
    const int64_t items = static_cast<int64_t>(gl.tiles) * g.L() * count;
    sw.launch(kernel, kGemmThreads, std::min<int64_t>(items, gl.max_blocks), gl.shared_bytes);
  }
}

// The scratch layout of a plan.
template <typename T>
void plan_scratch(Sweep& sw, const LaunchPlan& p) {
  const Geometry& g = p.geometry;
  const u128 complex = sizeof(Cpx<T>);
  sw.region("rings", p.rings_offset, complex * wide(g.spins) * wide(g.M()) * wide(g.nlat) * wide(p.padded_maps),
            p.ring_buffers_offset);
  const u128 buffers = p.ring.global ? complex * 2 * wide(p.ring.tile_rows) * wide(g.nlon) * wide(p.ring.blocks) : 0;
  sw.region("ring buffers", p.ring_buffers_offset, buffers, p.accumulators_offset);
  const u128 accumulators = p.gemm.global_accumulators ? complex * 2 * wide(g.L()) * wide(kOtfColumns[p.gemm.config]) *
                                                             wide(p.gemm.max_blocks)
                                                       : 0;
  sw.region("accumulators", p.accumulators_offset, accumulators, p.scratch_bytes);
  sw.scratch(p.scratch_bytes);
}

// sphcnn_analysis / sphcnn_activated_analysis (the plan's K1 and K2), and
// sphcnn_synthesis / sphcnn_affine_synthesis (K2, then K1).
template <typename T>
void transform(Sweep& sw, const Geometry& g, LambdaSource source, bool analysis) {
  sw.plans++;
  const LaunchPlan p = launch_plan(g, analysis, source);
  plan_scratch<T>(sw, p);
  ring_launch_of<T>(sw, p, analysis);
  gemm_launch_of<T>(sw, p, analysis);
}

// sphcnn_grid_analysis / sphcnn_grid_synthesis on the geometry's nlat x nlon
// grid, its rings mirrored (K2 over ceil(nlat / 2) slots) or not (every ring).
template <typename T>
void grid_transform(Sweep& sw, const Geometry& g, bool analysis, bool mirrored) {
  sw.plans++;
  const LaunchPlan p = grid_launch_plan(g, analysis, mirrored);
  if (p.slots != (mirrored ? (g.nlat + 1) / 2 : g.nlat)) sw.violation("the grid targets' K2 slots");
  if (p.scratch_bytes != grid_launch_plan(g, analysis, !mirrored).scratch_bytes) {
    sw.violation("the grid targets' scratch depends on mirrored");
  }
  plan_scratch<T>(sw, p);
  ring_launch_of<T>(sw, p, analysis, true);
  gemm_launch_of<T>(sw, p, analysis, true);
}

template <typename T>
void grid_geometry(Sweep& sw, int nlat, int nlon, int ell_max, int spins, int64_t batch, int64_t channels) {
  const Geometry g = grid_geometry_of(nlat, nlon, ell_max, spins, batch, channels, sizeof(T) == 8);
  sw.geometries++;
  sw.where = "grid nlat=" + std::to_string(nlat) + " nlon=" + std::to_string(nlon) + " ell_max=" +
             std::to_string(ell_max) + " S=" + std::to_string(spins) + " B=" + std::to_string(batch) + " C=" +
             std::to_string(channels) + " " + type_name<T>();
  for (bool mirrored : {false, true}) {
    grid_transform<T>(sw, g, true, mirrored);
    grid_transform<T>(sw, g, false, mirrored);
  }
}

// The activation gradient kernel (with pooling) and the two levels of the bias
// sums (run_gradient), for the maps' grid n_in.
template <typename T>
void gradient_tail(Sweep& sw, const Geometry& g, int n_in, const GradientScratch& layout, size_t transform_bytes) {
  GradientArgs<T> ga{};
  ga.n = g.n;
  ga.n_in = n_in;
  ga.lanes = g.spins * static_cast<int>(g.channels);
  ga.channels = g.channels;
  ga.batch = g.batch;
  if (n_in != g.n) {
    sw.launch("activation_gradient_kernel<" + type_name<T>() + ">", kGradientThreads, gradient_blocks(ga),
              gradient_shared_bytes<T>());
  }
  for (const ColumnSum<T>& level : {bias_chunk_sums(ga), bias_total(ga)}) {
    sw.launch("column_sum_kernel<" + type_name<T>() + ">", kGradientThreads, column_sum_blocks(level),
              gradient_shared_bytes<T>());
  }
  const u128 real = sizeof(T), lanes = wide(g.spins) * wide(g.channels), rows = wide(g.batch) * wide(n_in);
  sw.region("transform", 0, transform_bytes, layout.pooled_offset);
  sw.region("pooled cotangent", layout.pooled_offset, 2 * real * wide(g.batch) * wide(g.n) * wide(g.n) * lanes,
            layout.partials_offset);
  sw.region("bias partials", layout.partials_offset, real * rows * lanes, layout.chunk_sums_offset);
  sw.region("bias chunk sums", layout.chunk_sums_offset,
            real * wide(bias_chunks(static_cast<int64_t>(rows), static_cast<int64_t>(lanes))) * lanes, layout.bytes);
  sw.scratch(layout.bytes);
}

// sphcnn_activated_gradient: the synthesis, then the gradient tail.
template <typename T>
void activated_gradient(Sweep& sw, const Geometry& g, LambdaSource source, int n_in) {
  sw.plans++;
  const LaunchPlan p = launch_plan(g, false, source);
  gemm_launch_of<T>(sw, p, false);
  ring_launch_of<T>(sw, p, false);
  gradient_tail<T>(sw, g, n_in, activated_gradient_scratch(g, source, n_in), p.scratch_bytes);
}

// sphcnn_mixing_analysis: K1, K2 with the mixing epilogue, the energy sums.
template <typename T>
void mixing(Sweep& sw, const Geometry& g, int out_spins, int64_t out_channels) {
  const MixingLaunch ml = mixing_launch(g, LambdaSource::kTable, out_spins, out_channels);
  if (!ml.supported) return;
  sw.plans++;
  plan_scratch<T>(sw, ml.plan);
  ring_launch_of<T>(sw, ml.plan, true);
  sw.launch("analysis_mixing_kernel<" + type_name<T>() + ">", kGemmThreads, ml.blocks, ml.shared_bytes);
  sw.launch("energy_sum_kernel<" + type_name<T>() + ">", kEnergyThreads, ml.energy_blocks, 0);
  sw.fits_int("MixingLaunch::shares", ml.shares, wide(g.L()) * wide(ml.degree_tiles));
  const u128 count = wide(g.batch) * wide(out_spins) * wide(out_channels);
  sw.region("analysis", 0, ml.plan.scratch_bytes, ml.partials_offset);
  sw.region("energy shares", ml.partials_offset, sizeof(T) * wide(ml.shares) * count, ml.scratch_bytes);
  sw.scratch(ml.scratch_bytes);
}

// sphcnn_mixing_gradient: K2 of the synthesis with the transposed mixing, K1,
// the gradient tail.
template <typename T>
void mixing_gradient(Sweep& sw, const Geometry& g, int n_in) {
  const MixingGradientLaunch ml = mixing_gradient_launch(g, LambdaSource::kTable, n_in);
  if (!ml.supported) return;
  sw.plans++;
  sw.launch("synthesis_mixing_kernel<" + type_name<T>() + ">", kGemmThreads, ml.blocks, ml.shared_bytes);
  ring_launch_of<T>(sw, ml.plan, false);
  gradient_tail<T>(sw, g, n_in, ml.scratch, ml.plan.scratch_bytes);
  sw.region("gradient", 0, ml.scratch.bytes, ml.coefficients_offset);
  sw.region("coefficient cotangent", ml.coefficients_offset,
            sizeof(Cpx<T>) * wide(g.batch) * wide(g.L()) * wide(g.M()) * wide(g.spins) * wide(g.channels),
            ml.scratch_bytes);
  sw.scratch(ml.scratch_bytes);
}

// sphcnn_affine_gradient: K1, K2 with the batch norm's gradient for every spin
// group, the products' sums.
template <typename T>
void affine_gradient(Sweep& sw, const Geometry& g) {
  const AffineLaunch al = affine_gradient_launch(g, LambdaSource::kTable);
  if (!al.supported) return;
  sw.plans++;
  plan_scratch<T>(sw, al.plan);
  ring_launch_of<T>(sw, al.plan, true);
  const GemmLaunch& gl = al.plan.gemm;
  const std::string kernel =
      "affine_gradient_kernel<" + type_name<T>() + ", " + shape_tile<T>("AnalysisTile", gl.config) + ">";
  for (int offset = 0; offset < g.spins; offset += kSpinsPerLaunch) {
    const int count = std::min(kSpinsPerLaunch, g.spins - offset);
    const int64_t items = static_cast<int64_t>(gl.tiles) * g.L() * count;
    sw.launch(kernel, kGemmThreads, std::min<int64_t>(items, INT_MAX), affine_table_shared<T>(gl.config));
  }
  sw.launch("affine_sum_kernel<" + type_name<T>() + ">", kAffineSumThreads, al.sum_blocks, 0);
  sw.region("analysis", 0, al.plan.scratch_bytes, al.shares_offset);
  sw.region("products' shares", al.shares_offset,
            2 * sizeof(T) * wide(g.spins) * wide(g.L()) * wide(al.degree_tiles) * wide(g.batch) * wide(g.channels),
            al.scratch_bytes);
  sw.scratch(al.scratch_bytes);
}

template <typename T>
void geometry(Sweep& sw, int n, int ell_max, int spins, int64_t batch, int64_t channels) {
  const Geometry g = geometry_of(n, ell_max, spins, batch, channels, sizeof(T) == 8);
  sw.geometries++;
  sw.where = "n=" + std::to_string(n) + " ell_max=" + std::to_string(ell_max) + " S=" + std::to_string(spins) +
             " B=" + std::to_string(batch) + " C=" + std::to_string(channels) + " " + type_name<T>();
  for (LambdaSource source : {LambdaSource::kTable, LambdaSource::kOnTheFly}) {
    transform<T>(sw, g, source, true);
    transform<T>(sw, g, source, false);
    for (int n_in : {n, 2 * n}) activated_gradient<T>(sw, g, source, n_in);
  }
  for (int n_in : {n, 2 * n}) mixing_gradient<T>(sw, g, n_in);
  for (int out_spins : {1, spins, 8}) {
    for (int64_t out_channels : {int64_t{1}, channels, int64_t{4096}}) mixing<T>(sw, g, out_spins, out_channels);
  }
  affine_gradient<T>(sw, g);
}

// The tiles named for each config are the ones launch_plan.h sizes.
template <typename T>
bool otf_tiles_match() {
  return kOtfColumns[0] == kOtfTiles[0][1] && kOtfColumns[1] == kOtfTiles[1][1] && kOtfColumns[2] == kOtfTiles[2][1] &&
         analysis_otf_fixed<T>(0) == AnalysisOtfTile<T, 32, 2>::kFixedBytes &&
         analysis_otf_fixed<T>(1) == AnalysisOtfTile<T, 16, 2>::kFixedBytes &&
         analysis_otf_fixed<T>(2) == AnalysisOtfTile<T, 16, 4>::kFixedBytes;
}

}  // namespace

int main() {
  if (!otf_tiles_match<float>() || !otf_tiles_match<double>()) {
    std::fprintf(stderr, "the on-the-fly tiles of the sweep differ from launch_plan.h's\n");
    return 1;
  }
  const std::vector<int> grids = {4,   6,   8,   10,  12,  14,  16,   18,   22,   26,   30,   32,   34,   46,   62,
                                  64,  66,  70,  94,  98,  126, 128,  130,  166,  192,  250,  254,  256,  258,  362,
                                  384, 510, 512, 514, 768, 998, 1000, 1022, 1024, 1026, 1366, 1536, 1918, 2046, 2048};
  const std::vector<int64_t> map_counts = {1,   2,   3,   4,   5,   7,    8,    31,   32,   33,   63,  64,
                                           100, 127, 128, 129, 255, 256,  1000, 1023, 1024, 2047, 4095, 4096};
  Sweep sw;
  for (int n : grids) {
    std::vector<int> ell_maxes = {0, 1, n / 4, n / 2 - 2, n / 2 - 1};
    std::sort(ell_maxes.begin(), ell_maxes.end());
    ell_maxes.erase(std::unique(ell_maxes.begin(), ell_maxes.end()), ell_maxes.end());
    for (int ell_max : ell_maxes) {
      if (ell_max < 0 || ell_max > n / 2 - 1) continue;
      for (int64_t maps : map_counts) {
        int64_t split = 1;  // the largest divisor of maps up to its square root
        for (int64_t d = 1; d * d <= maps; ++d) {
          if (maps % d == 0) split = d;
        }
        std::vector<std::pair<int64_t, int64_t>> shapes = {{maps, 1}, {1, maps}, {split, maps / split}};
        std::sort(shapes.begin(), shapes.end());
        shapes.erase(std::unique(shapes.begin(), shapes.end()), shapes.end());
        for (const auto& [batch, channels] : shapes) {
          for (int spins : {1, 2, 3, 8}) {
            geometry<float>(sw, n, ell_max, spins, batch, channels);
            geometry<double>(sw, n, ell_max, spins, batch, channels);
          }
        }
      }
    }
  }
  // The grid targets: nlat x nlon grids (equiangular with poles, Gauss-Legendre
  // sizes, ERA5's 721 x 1440 and 2881 x 5760, a prime ring length, nlon = 2L - 1).
  const std::vector<std::pair<int, int>> ring_grids = {{1, 1},    {5, 9},     {7, 16},    {8, 17},     {10, 24},
                                                       {64, 128}, {181, 360}, {721, 1440}, {1441, 2880}, {2881, 5760},
                                                       {33, 1009}, {512, 1023}};
  for (const auto& [nlat, nlon] : ring_grids) {
    std::vector<int> ell_maxes = {0, 1, nlon / 8, nlon / 4, nlon / 3, (nlon - 1) / 2};
    std::sort(ell_maxes.begin(), ell_maxes.end());
    ell_maxes.erase(std::unique(ell_maxes.begin(), ell_maxes.end()), ell_maxes.end());
    for (int ell_max : ell_maxes) {
      for (int64_t maps : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{64}, int64_t{1000}, int64_t{4096}}) {
        for (int spins : {1, 3, 8}) {
          grid_geometry<float>(sw, nlat, nlon, ell_max, spins, maps, 1);
          grid_geometry<float>(sw, nlat, nlon, ell_max, spins, 1, maps);
          grid_geometry<double>(sw, nlat, nlon, ell_max, spins, maps, 1);
          grid_geometry<double>(sw, nlat, nlon, ell_max, spins, 1, maps);
        }
      }
    }
  }
  std::printf("{\"geometries\": %lld, \"plans\": %lld, \"launches\": %lld, \"violations\": %lld, "
              "\"max_grid\": %lld, \"max_scratch_bytes\": %zu, \"kernels\": {",
              static_cast<long long>(sw.geometries), static_cast<long long>(sw.plans),
              static_cast<long long>(sw.launches), static_cast<long long>(sw.violations),
              static_cast<long long>(sw.max_grid), sw.max_scratch);
  const char* separator = "";
  for (const auto& [name, k] : sw.kernels) {
    std::printf("%s\"%s\": {\"threads\": %d, \"max_shared\": %zu, \"max_grid\": %lld, \"launches\": %lld}", separator,
                name.c_str(), k.threads, k.max_shared, static_cast<long long>(k.max_grid),
                static_cast<long long>(k.launches));
    separator = ", ";
  }
  std::printf("}}\n");
  return sw.violations == 0 ? 0 : 1;
}
