// CPU emulation of the CUDA transforms: the block functions of K1
// (csrc/cuda/ring_dft.h) and K2 (csrc/cuda/legendre_gemm.h), the very code the
// __global__ kernels run, launched as the handler launches them (the same
// launch plan, csrc/cuda/launch_plan.h), with one std::thread per CUDA thread,
// std::barrier for __syncthreads and asynchronous copies completed only at the
// wait that needs them (emulated_async.h). Shared memory is refilled with garbage
// before every block, scratch and outputs start as NaN.
//
// Checked against direct float64 sums (lambda from the double recurrence of
// sphcnn/recurrences.h, tested against the `spherical` package elsewhere):
//   analysis:  the Fourier rings F that K1 leaves in scratch, and the
//              coefficients of K1 + K2, exact zeros below max(|m|, |s|);
//   synthesis: the rings G that K2 leaves in scratch, and the maps of K2 + K1;
// every output element written; the activated analysis (K1 with the prologue of
// sphcnn/activation.h: the magnitude nonlinearity, with or without the pooling
// from the 2n grid) against the same sums of maps activated and pooled in double,
// and its gradient (the synthesis with K1's gradient store, or with pooling the
// gradient kernel of activation_gradient.h, then the bias sums) against the
// transposed pooling in double and the derivative of the nonlinearity's
// definition in long double (float <= 2e-6, double <= 1e-12); the affine
// synthesis (K1 applying a batch norm's factor and offset to the rings) against
// the sums of the mapped coefficients. Every thread fences exactly the barriers
// after which it reads global memory other threads wrote (block_common.h).
// Cases marked so force launch choices the plan makes only at sizes too large
// to emulate (forced_plan; the handlers' plans are unchanged): K1 with its
// ring buffers in global scratch (the path of rings too large for shared
// memory) on a grid of 7 blocks looping over the work items or of one block
// per item, and the on-the-fly analysis's K2 with its accumulators in global
// scratch (the path of band limits too large for shared memory) with any of
// its tiles, on grids that loop over the items or not. The grid targets'
// kernels (kGrid: any nlat x nlon grid, lambda on the fly at the colatitudes of
// a device array) on equiangular grids with both poles, Gauss-Legendre rings
// and McEwen-Wiaux-like rings without the north pole (grid_theta), with the
// attribute mirrored (the mirror rings paired; a case may also leave a
// mirrored grid unpaired), in both directions and with either sign, against
// the same float64 sums at those colatitudes. And the bias sums (BiasSums) against long double sums.
//
// Usage: emulate_blocks CASE ... where each CASE is one JSON object
// (tests/emulation_cases.py holds them; case_of reads a transform's, the keys
// "direction" (analysis, synthesis), "lambda" (table, otf) and "precision"
// (float, double) pick the run; a grid target's case has "rings"
// (equiangular, gauss, mw), "nlat" and "nlon" in place of "n", lambda otf, and
// "mirrored" when its kernels pair the mirror rings; {"bias_sums": true, "rows", "lanes",
// "precision", optionally "chain_at_most"} a check of the bias sums). Prints
// one JSON line per check of each case (emulated_reference.h, print_records):
// stage, result, gradient (float32 <= 1e-6, 1e-6 and 2e-6; float64 <= 1e-12,
// relative to the largest reference value), written, zeros_below and fences
// (counts that must be 0); for the bias sums error, grids and chain. Exit
// status 0 when every check passed, 1 when one failed, 2 for a malformed case.
#if !defined(SPHCNN_EMULATED_ASYNC)
#error "build with -DSPHCNN_EMULATED_ASYNC -Itests/cuda_emulation (asynchronous copies deferred to their wait)"
#endif

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "activation_gradient.h"
#include "emulated_launch.h"
#include "emulated_reference.h"
#include "launch_plan.h"
#include "legendre_gemm.h"
#include "packed_table_builder.h"
#include "ring_dft.h"

using namespace sphcnn;
using namespace sphcnn::cuda;
using namespace sphcnn::emulation;

// K1's blocks in the cases with its buffers in global scratch: fewer than the
// work items, so that each block loops over several.
constexpr int64_t kLoopingRingBlocks = 7;

struct Case {
  int n = 0, ell_max = 0;
  // A grid target's grid: the colatitudes of grid_theta (rings: "equiangular",
  // "gauss" or "mw"; empty: the n x n grid), nlat rings of nlon points (n x n
  // on the n x n grid).
  std::string rings;
  int nlat = 0, nlon = 0;
  bool mirrored = false;  // the grid targets' attribute (rings mirrored_rings only)
  int sign = 0;  // sigma; 0: the direction's own (-1 analysis, +1 synthesis)
  std::vector<int> spins;
  int batch = 1, channels = 1;
  bool degree_major = false;
  bool real_input = false;  // analysis only (needs every spin 0)
  bool global_ring = false;  // K1 buffers in global scratch, as for large n
  // Analysis only: K1 with the prologue of the activated analysis (1: the
  // nonlinearity, 2: the nonlinearity and pooling from the 2n grid) and the spin
  // index of its leaky ReLU (-1: none).
  int activation = 0;
  int leaky_spin = -1;
  // Synthesis only: K1 with the affine map of sphcnn_affine_synthesis (the
  // coefficients factor a plus sqrt(4 pi) offset at a_00).
  bool affine = false;
  // With global_ring: the blocks of K1 (at most one per work item).
  int64_t ring_blocks = kLoopingRingBlocks;
  // The on-the-fly analysis with this tile (config 0, 1 or 2 of launch_plan.h)
  // and its accumulators in global scratch on at most accumulator_blocks
  // blocks; -1: the plan's choice.
  int accumulator_config = -1;
  int64_t accumulator_blocks = kGlobalAccumulatorBlocks;
};

// A case from its argument: n, ell_max, spins, batch and channels, and the
// other fields by name where they differ from the defaults above
// ("block_per_item": true for ring_blocks = kGlobalRingBlocks, one block per
// work item up to the plan's limit).
Case case_of(CaseArguments& args) {
  Case cs;
  cs.rings = args.flag("grid") ? args.text("rings") : "";
  if (cs.rings.empty()) {
    cs.n = static_cast<int>(args.integer("n"));
    cs.nlat = cs.nlon = cs.n;
  } else {
    cs.nlat = static_cast<int>(args.integer("nlat"));
    cs.nlon = static_cast<int>(args.integer("nlon"));
    cs.n = cs.nlat;
    cs.mirrored = args.flag("mirrored");
  }
  cs.sign = static_cast<int>(args.integer("sign", 0));
  cs.ell_max = static_cast<int>(args.integer("ell_max"));
  cs.spins = args.integers("spins");
  cs.batch = static_cast<int>(args.integer("batch"));
  cs.channels = static_cast<int>(args.integer("channels"));
  cs.degree_major = args.flag("degree_major");
  cs.real_input = args.flag("real_input");
  cs.global_ring = args.flag("global_ring");
  cs.activation = static_cast<int>(args.integer("activation", 0));
  cs.leaky_spin = static_cast<int>(args.integer("leaky_spin", -1));
  cs.affine = args.flag("affine");
  cs.ring_blocks = args.flag("block_per_item") ? kGlobalRingBlocks : kLoopingRingBlocks;
  cs.accumulator_config = static_cast<int>(args.integer("accumulator_config", -1));
  cs.accumulator_blocks = args.integer("accumulator_blocks", kGlobalAccumulatorBlocks);
  return cs;
}

// The colatitudes of a grid target's case, north to south: "equiangular" pi j /
// (nlat - 1) (both poles), "gauss" the arccos of the Gauss-Legendre nodes
// (Newton's method on P_nlat from Tricomi's first guess), "mw" pi (2j + 1) /
// (2 nlat - 1) (no north pole, the south pole last).
std::vector<double> grid_theta(const std::string& rings, int nlat) {
  std::vector<double> theta(nlat);
  for (int j = 0; j < nlat; ++j) {
    if (rings == "equiangular") {
      theta[j] = ring_theta(j, nlat);
    } else if (rings == "mw") {
      theta[j] = M_PI * (2.0 * j + 1.0) / (2.0 * nlat - 1.0);
    } else if (rings == "gauss") {
      double x = std::cos(M_PI * (j + 0.75) / (nlat + 0.5));
      for (int it = 0; it < 100; ++it) {
        double p0 = 1.0, p1 = x;  // P_0, P_1, then P_{k-1}, P_k
        for (int k = 2; k <= nlat; ++k) {
          const double p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
          p0 = p1;
          p1 = p2;
        }
        const double dp = nlat * (x * p1 - p0) / (x * x - 1.0);  // P_nlat'
        const double step = p1 / dp;
        x -= step;
        if (std::abs(step) < 1e-16) break;
      }
      theta[j] = std::acos(x);
    } else {
      std::fprintf(stderr, "bad case: rings %s\n", rings.c_str());
      std::exit(2);
    }
  }
  return theta;
}

// The plan of the handler with the case's forced choices; their buffers go
// after the plan's own scratch, sized as launch_plan.h sizes them.
template <typename T>
LaunchPlan forced_plan(LaunchPlan plan, const Case& cs, bool analysis, bool table_mode) {
  const Geometry& g = plan.geometry;
  size_t end = plan.scratch_bytes;
  if (cs.global_ring) {
    RingLaunch& rl = plan.ring;
    rl.global = true;
    rl.tile_rows = 1;
    rl.row_tiles = g.batch * g.spins * g.channels;
    rl.blocks = std::min<int64_t>(static_cast<int64_t>(g.nlat) * rl.row_tiles, cs.ring_blocks);
    rl.shared_bytes = ring_shared_bytes<T>(ring_plan(g.nlon), 1, true);
    plan.ring_buffers_offset = end;
    end += align256(sizeof(Cpx<T>) * 2 * static_cast<size_t>(g.nlon) * rl.blocks);
  }
  if (cs.accumulator_config >= 0 && analysis && !table_mode) {
    GemmLaunch& gl = plan.gemm;
    gl.config = cs.accumulator_config;
    gl.global_accumulators = true;
    gl.shared_bytes = analysis_otf_fixed<T>(gl.config);
    gl.tiles = static_cast<int>(ceil_div(g.batch * g.channels, kOtfColumns[gl.config]));
    gl.max_blocks = cs.accumulator_blocks;
    plan.accumulators_offset = end;
    end += align256(sizeof(Cpx<T>) * 2 * static_cast<size_t>(g.L()) * kOtfColumns[gl.config] * gl.max_blocks);
  }
  plan.scratch_bytes = end;
  return plan;
}

// A long double value and its derivative along one direction: forward-mode
// differentiation of the nonlinearity's definition below, exact up to long
// double rounding (no step to trade against rounding, as differences have).
struct Dual {
  long double v, d;
};
Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
Dual sqrt(Dual a) {
  const long double r = std::sqrt(a.v);
  return {r, a.d / (2 * r)};
}
long double value(Dual a) { return a.v; }
double value(double a) { return a; }

// The magnitude nonlinearity of z = x + i y, written from its definition
// (python/sphcnn/nn/nonlinearities.py): relu(|z| + b) z / (|z| + eps), or on the
// leaky spin leaky_relu(Re z), a real value; R is double or Dual.
template <typename R>
void activated_parts(R x, R y, R bias, bool leaky, R eps, R slope, R& re, R& im) {
  using std::sqrt;
  const R zero{};
  if (leaky) {
    re = value(x) >= 0 ? x : slope * x;
    im = zero;
    return;
  }
  const R r = sqrt(x * x + y * y);
  const R gain = (value(r + bias) > 0 ? r + bias : zero) / (r + eps);
  re = gain * x;
  im = gain * y;
}

cd activated(cd z, double bias, bool leaky, double eps, double slope) {
  double re, im;
  activated_parts<double>(z.real(), z.imag(), bias, leaky, eps, slope, re, im);
  return cd(re, im);
}

// Its cotangent for the cotangent ct of the activated value (JAX's convention:
// ct_z pairs as Re(ct_z dz) = Re(ct d(activated))), and the bias's, from the
// derivatives of the definition along x, y and b.
void activated_cotangent(cd z, cd ct, double bias, bool leaky, double eps, double slope, cd& ct_z, double& ct_b) {
  auto along = [&](int direction) {  // Re(ct d(activated)) along x (0), y (1) or b (2)
    auto dual = [&](double v, int d) { return Dual{v, d == direction ? 1.0L : 0.0L}; };
    Dual re, im;
    activated_parts<Dual>(dual(z.real(), 0), dual(z.imag(), 1), dual(bias, 2), leaky, Dual{eps, 0}, Dual{slope, 0},
                          re, im);
    return static_cast<double>(ct.real() * re.d - ct.imag() * im.d);
  };
  ct_z = cd(along(0), -along(1));  // Re(ct_z (dx + i dy)) = ct_z.re dx - ct_z.im dy
  ct_b = leaky ? 0.0 : along(2);
}

// The two levels of the bias sums as the handler launches them, on `blocks`
// blocks each (default: the handler's grids).
template <typename T>
void run_bias_sums(const GradientArgs<T>& ga, int64_t blocks = 0) {
  for (const ColumnSum<T>& level : {bias_chunk_sums(ga), bias_total(ga)}) {
    launch(kGradientThreads, blocks > 0 ? blocks : column_sum_blocks(level), gradient_shared_bytes<T>(),
           [&](const HostCtx& ctx, unsigned char* smem) { column_sum_block<T>(ctx, level, smem); });
  }
}

double lambda_at(const std::vector<double>& lam, int L, int M, int s, int j, int mi, int l, int n) {
  return lam[((static_cast<size_t>(s) * n + j) * M + mi) * L + l];
}

// One run of a case in one direction, lambda source and precision T: its
// inputs, the handler's plan with the case's forced choices, what the emulated
// kernels wrote, the (block, thread) pairs whose fences differ from the
// barriers that need them, and the float64 sums the checks compare with.
template <typename T>
class CaseRun {
 public:
  CaseRun(const Case& cs, bool analysis, bool table_mode, std::mt19937& rng);

  // The checks that apply to the run, one record each.
  std::vector<Record> records() const;
  // The launch choices: K2's accumulators, tile config and blocks, K1's rows a
  // tile and blocks, and whether K1's buffers are in global scratch.
  std::string plan_json() const;
  // Of every output: the coefficients, maps, scratch rings and gradients.
  Digest digest() const;

 private:
  // The relative errors of the scratch rings K1 (analysis) or K2 (synthesis)
  // leaves, and of the coefficients or maps: float32 <= 1e-6, float64 <= 1e-12.
  Record stage() const;
  Record result() const;
  // The activated analysis's gradient (ct_y, and the bias sums) against the
  // transposed pooling in double and the derivative of the nonlinearity's
  // definition in long double: float32 <= 2e-6, float64 <= 1e-12.
  Record gradient() const;
  // Output elements left NaN (not written), coefficients not exactly zero below
  // max(|m|, |s|), (block, thread) pairs fenced otherwise than needed.
  Record written() const;
  Record zeros_below() const;
  Record fences() const;

  size_t x_index(int b, int j, int k, int s, int c) const {
    return ((static_cast<size_t>(b) * nlat + j) * nlon + k) * SC + s * C + c;
  }
  size_t a_index(int b, int l, int mi, int s, int c) const {
    return static_cast<size_t>(b * stride_b + l * stride_l + (static_cast<int64_t>(mi) * S + s) * C + c);
  }
  const Cpx<T>* rings() const { return reinterpret_cast<const Cpx<T>*>(scratch.data() + plan.rings_offset); }
  // The ring value at (s, mi, j) of column (b, c), and its index in rings_ref.
  Cpx<T> ring_at(int s, int mi, int j, int b, int c) const {
    return rings()[((static_cast<int64_t>(s) * M + mi) * nlat + j) * plan.padded_maps + b * C + c];
  }
  size_t ring_index(int s, int mi, int j, int b, int c) const {
    return ((static_cast<size_t>(s) * M + mi) * nlat + j) * B * C + b * C + c;
  }

  const Case cs;
  const bool analysis, table_mode;
  const int n, ell, L, M, S, B, C, SC;
  // A grid target's case (the kGrid kernels), its rings and their colatitudes
  // (nlat = nlon = n on the n x n grid).
  const bool grid;
  const int nlat, nlon;
  std::vector<double> theta;
  std::vector<T> theta_operand;  // (2, nlat) of the data's real type (sphcnn/contract.h)
  // The activated analysis (and its gradient) and its input grid (2n with
  // pooling); the gradient without pooling, stored by K1 of the synthesis.
  const bool activation;
  const int fine;
  const bool epilogue;
  const double eps = 1e-6, slope = 0.01;
  const int64_t stride_b, stride_l;
  Geometry g{};
  LaunchPlan plan{};
  std::vector<unsigned char> scratch;
  std::vector<T> x_real, bias_t, taps_t, partials, chunk_sums, ct_bias;
  std::vector<Cpx<T>> x, a, y, ct_y;
  // The analysis: the maps K1 must see, activated and pooled in double; the
  // synthesis: the maps in double (with activation: the cotangent the gradient
  // kernels take back to y and the bias).
  std::vector<cd> x_ref;
  // float64 sums: the scratch rings at ring_index, the analysis's coefficients
  // at a_index.
  std::vector<cd> rings_ref, a_ref;
  int unfenced = 0;
};

template <typename T>
CaseRun<T>::CaseRun(const Case& cs_, bool analysis_, bool table_mode_, std::mt19937& rng)
    : cs(cs_),
      analysis(analysis_),
      table_mode(table_mode_),
      n(cs.n),
      ell(cs.ell_max),
      L(ell + 1),
      M(2 * ell + 1),
      S(static_cast<int>(cs.spins.size())),
      B(cs.batch),
      C(cs.channels),
      SC(S * C),
      grid(!cs.rings.empty()),
      nlat(cs.nlat),
      nlon(cs.nlon),
      activation(cs.activation > 0),
      fine(cs.activation == 2 ? 2 * n : n),
      epilogue(activation && !analysis && cs.activation == 1),
      stride_b(cs.degree_major ? static_cast<int64_t>(M) * SC : L * static_cast<int64_t>(M) * SC),
      stride_l(cs.degree_major ? B * static_cast<int64_t>(M) * SC : static_cast<int64_t>(M) * SC) {
  const int sign = cs.sign != 0 ? cs.sign : analysis ? -1 : 1;
  std::normal_distribution<double> nd;
  g = grid_geometry_of(nlat, nlon, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  g.real_input = analysis && cs.real_input;
  const LambdaSource source = table_mode ? LambdaSource::kTable : LambdaSource::kOnTheFly;
  if (grid && table_mode) {
    std::fprintf(stderr, "bad case: the grid targets have no table: %s\n", cs.rings.c_str());
    std::exit(2);
  }
  plan = forced_plan<T>(grid ? grid_launch_plan(g, analysis, cs.mirrored) : launch_plan(g, analysis, source), cs,
                        analysis, table_mode);
  theta = grid ? grid_theta(cs.rings, nlat) : std::vector<double>();
  if (cs.mirrored && !mirrored_rings(theta)) {
    std::fprintf(stderr, "bad case: the %s rings are not mirrored\n", cs.rings.c_str());
    std::exit(2);
  }
  theta_operand.assign(2 * theta.size(), T(0));  // the ring_theta operand: rounded colatitudes, then what was dropped
  for (size_t j = 0; j < theta.size(); ++j) {
    theta_operand[j] = static_cast<T>(theta[j]);
    theta_operand[theta.size() + j] = static_cast<T>(theta[j] - static_cast<double>(theta_operand[j]));
  }

  std::vector<double> w(nlat);
  for (auto& v : w) v = 0.5 + std::abs(nd(rng));
  std::vector<T> wt(nlat);
  for (int j = 0; j < nlat; ++j) wt[j] = static_cast<T>(w[j]);
  std::vector<T> table;
  if (table_mode) {
    table.assign(packed_table(n, ell, sizeof(T)).size(S), T(12345));
    build_packed_table<T>(n, ell, cs.spins, table.data(), 2);
  }
  scratch = nan_scratch<T>(plan.scratch_bytes);
  const size_t spatial = static_cast<size_t>(B) * nlat * nlon * SC, spectral = static_cast<size_t>(B) * L * M * SC;
  // Inputs: maps x (B, n, n, S, C) or coefficients (batch- or degree-major).
  if (analysis) {
    if (g.real_input) {
      x_real.resize(spatial);
      for (auto& v : x_real) v = static_cast<T>(nd(rng));
    } else {
      x.resize(spatial);
      for (auto& v : x) v = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
    }
    a.assign(spectral, Cpx<T>{T(NAN), T(NAN)});
  } else {
    a.resize(spectral);
    for (auto& v : a) v = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
    x.assign(spatial, Cpx<T>{T(NAN), T(NAN)});
  }
  // The activated analysis: pre-activation maps y on the fine grid, and the maps
  // x the analysis must see computed from them in double (random taps with the
  // rings outside the grid at 0: the kernel applies whatever taps it is given).
  if (activation) {
    y.resize(static_cast<size_t>(B) * fine * fine * SC);
    for (auto& v : y) v = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
    bias_t.resize(SC);
    for (auto& v : bias_t) v = static_cast<T>(0.8 * nd(rng));
    // Values at least 1% away from the kinks (|z| + b = 0; Re z = 0 on the leaky
    // spin), where the derivative jumps and float rounding may pick either side.
    for (size_t i = 0; i < y.size(); ++i) {
      const int q = static_cast<int>(i % SC);
      for (int tries = 0; tries < 8; ++tries) {
        const double r = std::hypot(double(y[i].re), double(y[i].im));
        const bool near = q / C == cs.leaky_spin ? std::abs(double(y[i].re)) < 0.01 * (r + 1e-3)
                                                 : std::abs(r + bias_t[q]) < 0.01 * (r + std::abs(bias_t[q]));
        if (!near) break;
        y[i] = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
      }
    }
    taps_t.assign(static_cast<size_t>(n) * 4, T(0));
    for (int j = 0; j < n; ++j) {
      for (int t = 0; t < 4; ++t) {
        const int row = 2 * j - 1 + t;
        if (row >= 0 && row < fine) taps_t[4 * j + t] = static_cast<T>(0.1 + std::abs(nd(rng)));
      }
    }
    auto act = [&](int b, int row, int lon, int s, int c) {
      const Cpx<T> z = y[((static_cast<size_t>(b) * fine + row) * fine + lon) * SC + s * C + c];
      return activated(cd(z.re, z.im), bias_t[s * C + c], s == cs.leaky_spin, eps, slope);
    };
    x_ref.assign(spatial, cd(0.0, 0.0));
    for (int b = 0; analysis && b < B; ++b)
      for (int j = 0; j < n; ++j)
        for (int k = 0; k < n; ++k)
          for (int s = 0; s < S; ++s)
            for (int c = 0; c < C; ++c) {
              cd v = 0.0;
              if (cs.activation == 1) {
                v = act(b, j, k, s, c);
              } else {
                for (int t = 0; t < 4; ++t) {
                  const int row = 2 * j - 1 + t;
                  if (row < 0 || row >= fine) continue;
                  v += static_cast<double>(taps_t[4 * j + t]) *
                       pool_stencil<double>(act(b, row, (2 * k - 1 + fine) % fine, s, c), act(b, row, 2 * k, s, c),
                                            act(b, row, 2 * k + 1, s, c));
                }
              }
              x_ref[x_index(b, j, k, s, c)] = v;
            }
  }

  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(scratch.data() + plan.rings_offset);
  RingArgs<T> ring{};
  ring.in = analysis ? (g.real_input ? static_cast<const void*>(x_real.data()) : x.data()) : rings;
  ring.out = analysis ? static_cast<void*>(rings) : x.data();
  ring.ring_scale = wt.data();
  ring.global_buffers =
      plan.ring.global ? reinterpret_cast<Cpx<T>*>(scratch.data() + plan.ring_buffers_offset) : nullptr;
  ring.nlat = nlat;
  ring.ell_max = ell;
  ring.lanes = SC;
  ring.channels = C;
  ring.rows = static_cast<int64_t>(B) * SC;
  ring.padded_maps = plan.padded_maps;
  ring.tile_rows = plan.ring.tile_rows;
  ring.row_tiles = plan.ring.row_tiles;
  ring.sign = sign;
  ring.real_input = g.real_input;
  ring.plan = ring_plan(nlon);
  // The affine synthesis: random factor and offset (S, C), and the coefficients
  // the synthesis must see, mapped in double.
  const bool affine = cs.affine && !analysis;
  std::vector<Cpx<T>> factor_t, offset_t;
  std::vector<cd> a_mapped;
  if (affine) {
    factor_t.resize(SC);
    offset_t.resize(SC);
    for (auto& v : factor_t) v = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
    for (auto& v : offset_t) v = Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
    a_mapped.resize(spectral);
    for (int b = 0; b < B; ++b)
      for (int l = 0; l < L; ++l)
        for (int mi = 0; mi < M; ++mi)
          for (int s = 0; s < S; ++s)
            for (int c = 0; c < C; ++c) {
              const size_t i = a_index(b, l, mi, s, c);
              const Cpx<T> f = factor_t[s * C + c], o = offset_t[s * C + c];
              cd v = cd(f.re, f.im) * cd(a[i].re, a[i].im);
              if (l == 0 && mi == ell) v += std::sqrt(4 * M_PI) * cd(o.re, o.im);
              a_mapped[i] = v;
            }
    int zero_spin = -1;
    for (int s = 0; s < S; ++s) {
      if (cs.spins[s] == 0) zero_spin = s;
    }
    ring.affine_factor = factor_t.data();
    ring.affine_offset = offset_t.data();
    ring.zero_spin = zero_spin;
  }
  if (activation && analysis) {
    ring.in = y.data();
    ring.activation_bias = bias_t.data();
    ring.pool_taps = cs.activation == 2 ? taps_t.data() : nullptr;
    ring.leaky_spin = cs.leaky_spin;
    ring.epsilon = static_cast<T>(eps);
    ring.slope = static_cast<T>(slope);
  }

  GemmArgs<T> gemm{};
  gemm.rings_in = analysis ? rings : nullptr;
  gemm.rings_out = analysis ? nullptr : rings;
  gemm.spec_in = analysis ? nullptr : a.data();
  gemm.spec_out = analysis ? a.data() : nullptr;
  gemm.table = table_mode ? table.data() : nullptr;
  gemm.accumulators = plan.gemm.global_accumulators ? reinterpret_cast<Cpx<T>*>(scratch.data() + plan.accumulators_offset) : nullptr;
  gemm.n = nlat;
  gemm.theta = grid ? theta_operand.data() : nullptr;
  gemm.mirrored = cs.mirrored;
  gemm.ell_max = ell;
  gemm.total_spins = S;
  gemm.channels = C;
  gemm.maps = static_cast<int64_t>(B) * C;
  gemm.padded_maps = plan.padded_maps;
  gemm.spec_batch_stride = stride_b;
  gemm.spec_degree_stride = stride_l;
  gemm.tiles = plan.gemm.tiles;

  // The fences of every (block, thread) (HostCtx::fences) against the barriers
  // that must be fenced (block_common.h): with K1's tile buffers in global
  // scratch, those after the load, every FFT stage and the gradient store's
  // shares of each item; with K2's accumulators in global scratch, those after
  // their clearing and their last update; no other.
  std::atomic<int> unfenced_pairs{0};
  auto fenced = [&](const HostCtx& ctx, int64_t items, int64_t per_item, const std::function<void()>& block) {
    const int64_t before = HostCtx::fences;
    block();
    if (HostCtx::fences - before != per_item * items_of_block(items, ctx.block(), ctx.blocks())) unfenced_pairs++;
  };
  auto run_ring = [&]() {
    if (plan.ring.blocks == 0) return;
    const bool gradient_store = !analysis && ring.activation_bias != nullptr;
    const int64_t per_item = ring.global_buffers == nullptr ? 0 : 1 + ring.plan.stages + (gradient_store ? 1 : 0);
    launch(kRingThreads, plan.ring.blocks, plan.ring.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
      fenced(ctx, static_cast<int64_t>(nlat) * plan.ring.row_tiles, per_item, [&]() {
        if (analysis && grid) grid_to_orders_block<T, true>(ctx, ring, smem);
        else if (analysis) grid_to_orders_block<T>(ctx, ring, smem);
        else if (grid) orders_to_grid_block<T, true>(ctx, ring, smem);
        else orders_to_grid_block<T>(ctx, ring, smem);
      });
    });
  };
  auto run_gemm = [&]() {
    std::vector<int64_t> spin_values(cs.spins.begin(), cs.spins.end());
    // Two spins per launch, so that spin-group offsets are exercised.
    for (int offset = 0; offset < S; offset += 2) {
      GemmArgs<T> args = gemm;
      args.spins = spin_group(spin_values.data(), std::min(offset + 2, S), ell, offset);
      args.items = static_cast<int64_t>(plan.gemm.tiles) * L * args.spins.count;
      const int64_t blocks = std::min<int64_t>(args.items, plan.gemm.max_blocks);
      const int config = plan.gemm.config;
      const int64_t per_item = analysis && !table_mode && args.accumulators != nullptr ? 2 : 0;
      launch(kGemmThreads, blocks, plan.gemm.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
        fenced(ctx, args.items, per_item, [&]() {
          if (analysis && table_mode) {
            if (config == 0) analysis_table_block<T, AnalysisTile<T, 32, 32>>(ctx, args, smem);
            else if (config == 1) analysis_table_block<T, AnalysisTile<T, 8, 128>>(ctx, args, smem);
            else analysis_table_block<T, AnalysisTile<T, 128, 8>>(ctx, args, smem);
          } else if (analysis && grid) {
            if (config == 0) analysis_otf_block<T, AnalysisOtfTile<T, 32, 2>, true>(ctx, args, smem);
            else if (config == 1) analysis_otf_block<T, AnalysisOtfTile<T, 16, 2>, true>(ctx, args, smem);
            else analysis_otf_block<T, AnalysisOtfTile<T, 16, 4>, true>(ctx, args, smem);
          } else if (analysis) {
            if (config == 0) analysis_otf_block<T, AnalysisOtfTile<T, 32, 2>>(ctx, args, smem);
            else if (config == 1) analysis_otf_block<T, AnalysisOtfTile<T, 16, 2>>(ctx, args, smem);
            else analysis_otf_block<T, AnalysisOtfTile<T, 16, 4>>(ctx, args, smem);
          } else if (table_mode) {
            if (config == 0) synthesis_block<T, SynthesisTile<T, 32, 32>, true>(ctx, args, smem);
            else if (config == 1) synthesis_block<T, SynthesisTile<T, 8, 128>, true>(ctx, args, smem);
            else synthesis_block<T, SynthesisTile<T, 128, 8>, true>(ctx, args, smem);
          } else if (grid) {
            if (config == 0) synthesis_block<T, SynthesisTile<T, 32, 32>, false, true>(ctx, args, smem);
            else if (config == 1) synthesis_block<T, SynthesisTile<T, 8, 128>, false, true>(ctx, args, smem);
            else synthesis_block<T, SynthesisTile<T, 128, 8>, false, true>(ctx, args, smem);
          } else {
            if (config == 0) synthesis_block<T, SynthesisTile<T, 32, 32>, false>(ctx, args, smem);
            else if (config == 1) synthesis_block<T, SynthesisTile<T, 8, 128>, false>(ctx, args, smem);
            else synthesis_block<T, SynthesisTile<T, 128, 8>, false>(ctx, args, smem);
          }
        });
      });
    }
  };
  if (activation && !analysis) {
    ct_y.assign(y.size(), Cpx<T>{T(NAN), T(NAN)});
    partials.assign(static_cast<size_t>(B) * fine * SC, T(NAN));
    chunk_sums.assign(static_cast<size_t>(bias_chunks(static_cast<int64_t>(B) * fine, SC)) * SC, T(NAN));
    ct_bias.assign(SC, T(NAN));
  }
  // The gradient without pooling: K1 of the synthesis differentiates as it
  // stores (gradient_store), into ct_y, with the bias shares per (ring, row).
  if (epilogue) {
    ring.out = ct_y.data();
    ring.activation_bias = bias_t.data();
    ring.leaky_spin = cs.leaky_spin;
    ring.epsilon = static_cast<T>(eps);
    ring.slope = static_cast<T>(slope);
    ring.gradient_maps = y.data();
    ring.gradient_partials = partials.data();
  }
  if (analysis) {
    run_ring();
    run_gemm();
  } else {
    run_gemm();
    run_ring();
  }
  // The gradient of the activated analysis: the synthesis's maps x are the
  // cotangent of the analysis input; the gradient kernels take them to the
  // cotangents of y and of the bias.
  if (activation && !analysis) {
    GradientArgs<T> ga{};
    ga.pooled = x.data();
    ga.maps = y.data();
    ga.bias = bias_t.data();
    ga.taps = cs.activation == 2 ? taps_t.data() : nullptr;
    ga.ct_maps = ct_y.data();
    ga.partials = partials.data();
    ga.chunk_sums = chunk_sums.data();
    ga.ct_bias = ct_bias.data();
    ga.n = n;
    ga.n_in = fine;
    ga.lanes = SC;
    ga.channels = C;
    ga.batch = B;
    ga.leaky_spin = cs.leaky_spin;
    ga.epsilon = static_cast<T>(eps);
    ga.slope = static_cast<T>(slope);
    if (!epilogue) {
      launch(kGradientThreads, gradient_blocks(ga), gradient_shared_bytes<T>(),
             [&](const HostCtx& ctx, unsigned char* smem) { activation_gradient_block<T>(ctx, ga, smem); });
    }
    run_bias_sums(ga);
  }

  // float64 references.
  const std::vector<double> lam = grid ? lambda_reference(theta, ell, cs.spins) : lambda_reference(n, ell, cs.spins);
  std::vector<cd> e(nlon);  // e^{sign 2 pi i k / nlon}
  for (int k = 0; k < nlon; ++k) e[k] = std::polar(1.0, sign * 2.0 * M_PI * k / nlon);
  rings_ref.assign(static_cast<size_t>(S) * M * nlat * B * C, cd(0.0, 0.0));
  if (analysis) a_ref.assign(spectral, cd(0.0, 0.0));
  else x_ref.assign(spatial, cd(0.0, 0.0));
  for (int b = 0; b < B; ++b) {
    for (int s = 0; s < S; ++s) {
      for (int c = 0; c < C; ++c) {
        if (analysis) {
          // F[s, mi, j] = w_j sum_k x e^{sign i m phi_k}
          std::vector<cd> F(static_cast<size_t>(nlat) * M);
          for (int j = 0; j < nlat; ++j) {
            for (int mi = 0; mi < M; ++mi) {
              const int m = mi - ell;
              cd acc = 0;
              for (int k = 0; k < nlon; ++k) {
                const size_t xi = x_index(b, j, k, s, c);
                const cd v = activation ? x_ref[xi] : g.real_input ? cd(x_real[xi], 0.0) : cd(x[xi].re, x[xi].im);
                acc += v * e[((static_cast<int64_t>(m) * k) % nlon + nlon) % nlon];
              }
              F[static_cast<size_t>(j) * M + mi] = w[j] * acc;
              rings_ref[ring_index(s, mi, j, b, c)] = w[j] * acc;
            }
          }
          for (int mi = 0; mi < M; ++mi) {
            for (int l = 0; l < L; ++l) {
              cd acc = 0;
              for (int j = 0; j < nlat; ++j) acc += lambda_at(lam, L, M, s, j, mi, l, nlat) * F[static_cast<size_t>(j) * M + mi];
              a_ref[a_index(b, l, mi, s, c)] = acc;
            }
          }
        } else {
          // G[s, mi, j] = sum_l lambda a (entries below l0 ignored), x = w_j sum_m G e^{...}
          std::vector<cd> G(static_cast<size_t>(nlat) * M);
          for (int mi = 0; mi < M; ++mi) {
            const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
            for (int j = 0; j < nlat; ++j) {
              cd acc = 0, mapped = 0;  // K2 sees a; the maps come from the mapped coefficients
              for (int l = l0; l < L; ++l) {
                const size_t i = a_index(b, l, mi, s, c);
                acc += lambda_at(lam, L, M, s, j, mi, l, nlat) * cd(a[i].re, a[i].im);
                if (affine) mapped += lambda_at(lam, L, M, s, j, mi, l, nlat) * a_mapped[i];
              }
              G[static_cast<size_t>(j) * M + mi] = affine ? mapped : acc;
              rings_ref[ring_index(s, mi, j, b, c)] = acc;
            }
          }
          for (int j = 0; j < nlat; ++j) {
            for (int k = 0; k < nlon; ++k) {
              cd acc = 0;
              for (int mi = 0; mi < M; ++mi) {
                const int m = mi - ell;
                acc += G[static_cast<size_t>(j) * M + mi] * e[((static_cast<int64_t>(m) * k) % nlon + nlon) % nlon];
              }
              x_ref[x_index(b, j, k, s, c)] = w[j] * acc;
            }
          }
        }
      }
    }
  }
  unfenced = unfenced_pairs;
}

template <typename T>
std::vector<Record> CaseRun<T>::records() const {
  std::vector<Record> checks = {stage()};
  if (!epilogue) checks.push_back(result());  // else K1 wrote the gradient instead of the maps
  if (activation && !analysis) checks.push_back(gradient());
  checks.push_back(written());
  if (analysis) checks.push_back(zeros_below());
  checks.push_back(fences());
  return checks;
}

template <typename T>
Record CaseRun<T>::stage() const {
  Check check;
  for (int s = 0; s < S; ++s)
    for (int mi = 0; mi < M; ++mi)
      for (int j = 0; j < nlat; ++j)
        for (int b = 0; b < B; ++b)
          for (int c = 0; c < C; ++c) check.note(ring_at(s, mi, j, b, c), rings_ref[ring_index(s, mi, j, b, c)]);
  return at_most("stage", check.relative(), sizeof(T) == 4 ? 1e-6 : 1e-12);
}

template <typename T>
Record CaseRun<T>::result() const {
  Check check;
  if (analysis) {
    for (size_t i = 0; i < a.size(); ++i) check.note(a[i], a_ref[i]);
  } else {
    for (size_t i = 0; i < x.size(); ++i) check.note(x[i], x_ref[i]);
  }
  return at_most("result", check.relative(), sizeof(T) == 4 ? 1e-6 : 1e-12);
}

template <typename T>
Record CaseRun<T>::gradient() const {
  // unpooled cotangent in double (the transpose of the pooling, written from
  // its definition: each fine value's share of every coarse value it feeds,
  // the stencil's weight of that value)
  std::vector<cd> fine_ct(y.size(), cd(0.0, 0.0));
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < n; ++k)
        for (int q = 0; q < SC; ++q) {
          const cd v = x_ref[x_index(b, j, k, q / C, q % C)];
          auto at = [&](int row, int lon) { return ((static_cast<size_t>(b) * fine + row) * fine + lon) * SC + q; };
          if (cs.activation == 1) {
            fine_ct[at(j, k)] += v;
            continue;
          }
          for (int t = 0; t < 4; ++t) {
            const int row = 2 * j - 1 + t;
            if (row < 0 || row >= fine) continue;
            const double tap = taps_t[4 * j + t];
            fine_ct[at(row, 2 * k)] += pool_stencil<double>(0.0, 1.0, 0.0) * tap * v;
            fine_ct[at(row, (2 * k - 1 + fine) % fine)] += pool_stencil<double>(1.0, 0.0, 0.0) * tap * v;
            fine_ct[at(row, 2 * k + 1)] += pool_stencil<double>(0.0, 0.0, 1.0) * tap * v;
          }
        }
  std::vector<double> bias_ref(SC, 0.0);
  Check maps, bias;
  for (size_t i = 0; i < y.size(); ++i) {
    const int q = static_cast<int>(i % SC);
    cd want;
    double share;
    activated_cotangent(cd(y[i].re, y[i].im), fine_ct[i], bias_t[q], q / C == cs.leaky_spin, eps, slope, want,
                        share);
    bias_ref[q] += share;
    maps.note(ct_y[i], want);
  }
  for (int q = 0; q < SC; ++q) bias.note(Cpx<T>{ct_bias[q], T(0)}, cd(bias_ref[q], 0.0));
  return at_most("gradient", std::max(maps.relative(), bias.relative()), sizeof(T) == 4 ? 2e-6 : 1e-12);
}

template <typename T>
Record CaseRun<T>::written() const {
  int64_t unwritten = 0;
  auto count = [&](const Cpx<T>& v) { unwritten += std::isfinite(v.re) && std::isfinite(v.im) ? 0 : 1; };
  for (int s = 0; s < S; ++s)
    for (int mi = 0; mi < M; ++mi)
      for (int j = 0; j < nlat; ++j)
        for (int b = 0; b < B; ++b)
          for (int c = 0; c < C; ++c) count(ring_at(s, mi, j, b, c));
  if (analysis) {
    for (const Cpx<T>& v : a) count(v);
  } else if (!epilogue) {
    for (const Cpx<T>& v : x) count(v);
  }
  for (const Cpx<T>& v : ct_y) count(v);
  for (const T v : ct_bias) count(Cpx<T>{v, T(0)});
  return none_found("written", unwritten);
}

template <typename T>
Record CaseRun<T>::zeros_below() const {
  int64_t nonzero = 0;
  for (int b = 0; b < B; ++b)
    for (int l = 0; l < L; ++l)
      for (int mi = 0; mi < M; ++mi)
        for (int s = 0; s < S; ++s) {
          const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
          for (int c = 0; c < C && l < l0; ++c) {
            const Cpx<T> o = a[a_index(b, l, mi, s, c)];
            if (o.re != T(0) || o.im != T(0)) nonzero++;
          }
        }
  return none_found("zeros_below", nonzero);
}

template <typename T>
Record CaseRun<T>::fences() const {
  return none_found("fences", unfenced);
}

template <typename T>
std::string CaseRun<T>::plan_json() const {
  const int64_t gemm_blocks = std::min<int64_t>(static_cast<int64_t>(plan.gemm.tiles) * L * std::min(S, 2),
                                                plan.gemm.max_blocks);
  return json_object({{"k1k2", json_string(plan.gemm.global_accumulators ? "global-acc" : "shared")},
                      {"config", std::to_string(plan.gemm.config)},
                      {"gemm_blocks", std::to_string(gemm_blocks)},
                      {"ring_rows", std::to_string(plan.ring.tile_rows)},
                      {"ring_blocks", std::to_string(plan.ring.blocks)},
                      {"global_ring", json_bool(plan.ring.global)}});
}

template <typename T>
Digest CaseRun<T>::digest() const {
  Digest digest;
  digest.add(a);
  digest.add(x);
  digest.add(rings(), sizeof(Cpx<T>) * static_cast<size_t>(S) * M * nlat * plan.padded_maps);
  digest.add(ct_y);
  digest.add(ct_bias);
  return digest;
}

// The bias sums (two levels of column_sum_block) of random partials (rows,
// lanes) on the handler's grids, and on 1 and 5 blocks per level.
template <typename T>
class BiasSums {
 public:
  BiasSums(int64_t rows, int lanes, std::mt19937& rng)
      : rows_(rows),
        lanes_(lanes),
        chunks_(bias_chunks(rows, lanes)),
        partials_(static_cast<size_t>(rows) * lanes) {
    std::normal_distribution<double> nd;
    for (T& v : partials_) v = static_cast<T>(nd(rng));
    sums_ = sums_on(0);
    for (int64_t blocks : {1, 5}) {
      if (std::memcmp(sums_on(blocks).data(), sums_.data(), sums_.size() * sizeof(T)) != 0) other_bits_++;
    }
    const int64_t tree = static_cast<int64_t>(std::ceil(std::log2(column_groups(lanes))));
    first_ = ceil_div(std::min(rows, bias_chunk_rows(lanes)), column_groups(lanes)) + tree;
    second_ = ceil_div(chunks_, column_groups(lanes)) + tree;
  }

  // Per lane, the error relative to the sum of |partials| of long double sums,
  // within depth eps, a bound of the rounding of `depth` additions in a row
  // (the longest chain of additions of one thread: its rows, then the tree, at
  // each level).
  Record error() const {
    double worst = 0;
    for (int q = 0; q < lanes_; ++q) {
      long double exact = 0, magnitude = 0;
      for (int64_t r = 0; r < rows_; ++r) {
        exact += partials_[r * lanes_ + q];
        magnitude += std::abs(static_cast<long double>(partials_[r * lanes_ + q]));
      }
      const double error = static_cast<double>(std::abs(sums_[q] - exact) / magnitude);
      worst = std::isfinite(error) ? std::max(worst, error) : INFINITY;
    }
    return at_most("error", worst, static_cast<double>(first_ + second_) * std::numeric_limits<T>::epsilon());
  }
  // The grids of 1 and 5 blocks whose sums differ in a bit from the handler's.
  Record grids() const { return none_found("grids", other_bits_); }
  // The longest chains of additions of one thread at each level (where one
  // thread per lane would add every row), at most `at_most` each.
  Record chain(int64_t at_most) const {
    return {"chain",
            json_object({{"before", std::to_string(rows_)},
                         {"first", std::to_string(first_)},
                         {"second", std::to_string(second_)}}),
            std::to_string(at_most), first_ <= at_most && second_ <= at_most};
  }
  std::string plan_json() const {
    return json_object({{"chunks", std::to_string(chunks_)}, {"groups", std::to_string(column_groups(lanes_))}});
  }
  Digest digest() const {
    Digest digest;
    digest.add(sums_);
    return digest;
  }

 private:
  std::vector<T> sums_on(int64_t blocks) {
    GradientArgs<T> ga{};
    ga.batch = rows_;  // B n_in partial rows
    ga.n_in = 1;
    ga.lanes = lanes_;
    std::vector<T> chunk_sums(static_cast<size_t>(chunks_) * lanes_, T(NAN)), ct_bias(lanes_, T(NAN));
    ga.partials = partials_.data();
    ga.chunk_sums = chunk_sums.data();
    ga.ct_bias = ct_bias.data();
    run_bias_sums(ga, blocks);
    return ct_bias;
  }

  int64_t rows_;
  int lanes_;
  int64_t chunks_;
  std::vector<T> partials_, sums_;
  int64_t other_bits_ = 0, first_ = 0, second_ = 0;
};

template <typename T>
bool transform_records(const CaseArguments& args, const Case& cs, bool analysis, bool table_mode,
                       std::mt19937& rng) {
  const CaseRun<T> run(cs, analysis, table_mode, rng);
  return print_records(args, run.plan_json(), run.digest(), run.records());
}

template <typename T>
bool bias_sum_records(const CaseArguments& args, int64_t rows, int lanes, int64_t chain_at_most, std::mt19937& rng) {
  const BiasSums<T> sums(rows, lanes, rng);
  std::vector<Record> records = {sums.error(), sums.grids()};
  if (chain_at_most >= 0) records.push_back(sums.chain(chain_at_most));
  return print_records(args, sums.plan_json(), sums.digest(), records);
}

int main(int argc, char** argv) {
  bool passed = true;
  for (int i = 1; i < argc; ++i) {
    CaseArguments args(argv[i]);
    std::mt19937 rng(args.seed());
    const bool single = args.either("precision", "float", "double");
    if (args.flag("bias_sums")) {
      const int64_t rows = args.integer("rows");
      const int lanes = static_cast<int>(args.integer("lanes"));
      const int64_t chain_at_most = args.integer("chain_at_most", -1);
      args.done();
      passed &= single ? bias_sum_records<float>(args, rows, lanes, chain_at_most, rng)
                       : bias_sum_records<double>(args, rows, lanes, chain_at_most, rng);
      continue;
    }
    const bool analysis = args.either("direction", "analysis", "synthesis");
    const bool table_mode = args.either("lambda", "table", "otf");
    const Case cs = case_of(args);
    args.done();
    passed &= single ? transform_records<float>(args, cs, analysis, table_mode, rng)
                     : transform_records<double>(args, cs, analysis, table_mode, rng);
  }
  return passed ? 0 : 1;
}
