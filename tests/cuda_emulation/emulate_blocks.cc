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
// its tiles, on grids that loop over the items or not. Usage: emulate_blocks
// [n ...] (default: every case), or emulate_blocks bias-sums (check_bias_sums
// alone); prints one line per check, each followed by
// "digest <hex>" (emulated_reference.h) of the outputs, and "worst float E
// double E" last; exit status 0 when the float32 errors are <= 1e-6 and the
// float64 ones <= 1e-12 (relative to the largest reference value) and nothing
// is left unwritten or unfenced.
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
  int n, ell_max;
  std::vector<int> spins;
  int batch, channels;
  bool degree_major;
  bool real_input;  // analysis only (needs every spin 0)
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
    rl.blocks = std::min<int64_t>(static_cast<int64_t>(g.n) * rl.row_tiles, cs.ring_blocks);
    rl.shared_bytes = ring_shared_bytes<T>(ring_plan(g.n), 1, true);
    plan.ring_buffers_offset = end;
    end += align256(sizeof(Cpx<T>) * 2 * static_cast<size_t>(g.n) * rl.blocks);
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

// Whether a case runs in a mode: the cases that force K2's accumulators only
// in the on-the-fly analysis, those that force K1 onto one block per item only
// with the table (K1 is the same for both lambda sources), others in all.
bool runs_in(const Case& cs, bool analysis, bool table_mode) {
  if (cs.accumulator_config >= 0) return analysis && !table_mode;
  if (cs.ring_blocks != kLoopingRingBlocks) return table_mode;
  return true;
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

struct Errors {
  double stage = 0, total = 0;  // relative errors of the scratch rings and of the result
  double gradient = 0;          // of the activated analysis's gradient, against the derivative of its definition
  int unwritten = 0, nonzero_below = 0;
  int unfenced = 0;  // (block, thread) pairs whose fences differ from the barriers that need them
};

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

template <typename T>
Errors run_case(const Case& cs, bool analysis, bool table_mode, std::mt19937& rng) {
  const int n = cs.n, ell = cs.ell_max, L = ell + 1, M = 2 * ell + 1, S = cs.spins.size();
  const int B = cs.batch, C = cs.channels, SC = S * C;
  const int sign = analysis ? -1 : 1;
  std::normal_distribution<double> nd;
  Geometry g = geometry_of(n, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  g.real_input = analysis && cs.real_input;
  const LambdaSource source = table_mode ? LambdaSource::kTable : LambdaSource::kOnTheFly;
  const LaunchPlan plan = forced_plan<T>(launch_plan(g, analysis, source), cs, analysis, table_mode);

  std::vector<double> w(n);
  for (auto& v : w) v = 0.5 + std::abs(nd(rng));
  std::vector<T> wt(n);
  for (int j = 0; j < n; ++j) wt[j] = static_cast<T>(w[j]);
  std::vector<T> table;
  if (table_mode) {
    table.assign(packed_table(n, ell, sizeof(T)).size(S), T(12345));
    build_packed_table<T>(n, ell, cs.spins, table.data(), 2);
  }
  std::vector<unsigned char> scratch = nan_scratch<T>(plan.scratch_bytes);
  const size_t spatial = static_cast<size_t>(B) * n * n * SC, spectral = static_cast<size_t>(B) * L * M * SC;
  // Inputs: maps x (B, n, n, S, C) or coefficients (batch- or degree-major).
  std::vector<T> x_real;
  std::vector<Cpx<T>> x, a;
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
  auto x_index = [&](int b, int j, int k, int s, int c) {
    return ((static_cast<size_t>(b) * n + j) * n + k) * SC + s * C + c;
  };
  // The activated analysis: pre-activation maps y on the fine grid, and the maps
  // x the analysis must see computed from them in double (random taps with the
  // rings outside the grid at 0: the kernel applies whatever taps it is given).
  const bool activation = cs.activation > 0;
  const int fine = cs.activation == 2 ? 2 * n : n;
  const double eps = 1e-6, slope = 0.01;
  std::vector<Cpx<T>> y;
  std::vector<T> bias_t, taps_t;
  std::vector<cd> x_ref;
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
  const int64_t row = static_cast<int64_t>(M) * SC;
  const int64_t stride_b = cs.degree_major ? row : L * row, stride_l = cs.degree_major ? B * row : row;
  auto a_index = [&](int b, int l, int mi, int s, int c) {
    return static_cast<size_t>(b * stride_b + l * stride_l + (static_cast<int64_t>(mi) * S + s) * C + c);
  };

  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(scratch.data() + plan.rings_offset);
  RingArgs<T> ring{};
  ring.in = analysis ? (g.real_input ? static_cast<const void*>(x_real.data()) : x.data()) : rings;
  ring.out = analysis ? static_cast<void*>(rings) : x.data();
  ring.ring_scale = wt.data();
  ring.global_buffers =
      plan.ring.global ? reinterpret_cast<Cpx<T>*>(scratch.data() + plan.ring_buffers_offset) : nullptr;
  ring.n = n;
  ring.ell_max = ell;
  ring.lanes = SC;
  ring.channels = C;
  ring.rows = static_cast<int64_t>(B) * SC;
  ring.padded_maps = plan.padded_maps;
  ring.tile_rows = plan.ring.tile_rows;
  ring.row_tiles = plan.ring.row_tiles;
  ring.sign = sign;
  ring.real_input = g.real_input;
  ring.plan = ring_plan(n);
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
  gemm.n = n;
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
  std::atomic<int> unfenced{0};
  auto fenced = [&](const HostCtx& ctx, int64_t items, int64_t per_item, const std::function<void()>& block) {
    const int64_t before = HostCtx::fences;
    block();
    if (HostCtx::fences - before != per_item * items_of_block(items, ctx.block(), ctx.blocks())) unfenced++;
  };
  auto run_ring = [&]() {
    if (plan.ring.blocks == 0) return;
    const bool gradient_store = !analysis && ring.activation_bias != nullptr;
    const int64_t per_item = ring.global_buffers == nullptr ? 0 : 1 + ring.plan.stages + (gradient_store ? 1 : 0);
    launch(kRingThreads, plan.ring.blocks, plan.ring.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
      fenced(ctx, static_cast<int64_t>(n) * plan.ring.row_tiles, per_item, [&]() {
        if (analysis) grid_to_orders_block<T>(ctx, ring, smem);
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
          } else if (analysis) {
            if (config == 0) analysis_otf_block<T, AnalysisOtfTile<T, 32, 2>>(ctx, args, smem);
            else if (config == 1) analysis_otf_block<T, AnalysisOtfTile<T, 16, 2>>(ctx, args, smem);
            else analysis_otf_block<T, AnalysisOtfTile<T, 16, 4>>(ctx, args, smem);
          } else if (table_mode) {
            if (config == 0) synthesis_block<T, SynthesisTile<T, 32, 32>, true>(ctx, args, smem);
            else if (config == 1) synthesis_block<T, SynthesisTile<T, 8, 128>, true>(ctx, args, smem);
            else synthesis_block<T, SynthesisTile<T, 128, 8>, true>(ctx, args, smem);
          } else {
            if (config == 0) synthesis_block<T, SynthesisTile<T, 32, 32>, false>(ctx, args, smem);
            else if (config == 1) synthesis_block<T, SynthesisTile<T, 8, 128>, false>(ctx, args, smem);
            else synthesis_block<T, SynthesisTile<T, 128, 8>, false>(ctx, args, smem);
          }
        });
      });
    }
  };
  // The gradient without pooling: K1 of the synthesis differentiates as it
  // stores (gradient_store), into ct_y, with the bias shares per (ring, row).
  const bool epilogue = activation && !analysis && cs.activation == 1;
  std::vector<Cpx<T>> ct_y;
  std::vector<T> partials, chunk_sums, ct_bias;
  if (activation && !analysis) {
    ct_y.assign(y.size(), Cpx<T>{T(NAN), T(NAN)});
    partials.assign(static_cast<size_t>(B) * fine * SC, T(NAN));
    chunk_sums.assign(static_cast<size_t>(bias_chunks(static_cast<int64_t>(B) * fine, SC)) * SC, T(NAN));
    ct_bias.assign(SC, T(NAN));
  }
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
  const std::vector<double> lam = lambda_reference(n, ell, cs.spins);
  std::vector<cd> e(n);  // e^{sign 2 pi i k / n}
  for (int k = 0; k < n; ++k) e[k] = std::polar(1.0, sign * 2.0 * M_PI * k / n);
  auto rings_at = [&](int s, int mi, int j, int b, int c) {
    const Cpx<T> v = rings[((static_cast<int64_t>(s) * M + mi) * n + j) * plan.padded_maps + b * C + c];
    return cd(v.re, v.im);
  };
  Errors err;
  double ref_stage = 0, err_stage = 0, ref_total = 0, err_total = 0;
  auto note = [&](cd got, cd want, double& ref, double& worst) {
    if (!std::isfinite(got.real()) || !std::isfinite(got.imag())) {
      err.unwritten++;
      return;
    }
    ref = std::max(ref, std::abs(want));
    worst = std::max(worst, std::abs(got - want));
  };
  for (int b = 0; b < B; ++b) {
    for (int s = 0; s < S; ++s) {
      for (int c = 0; c < C; ++c) {
        if (analysis) {
          // F[s, mi, j] = w_j sum_k x e^{sign i m phi_k}
          std::vector<cd> F(static_cast<size_t>(n) * M);
          for (int j = 0; j < n; ++j) {
            for (int mi = 0; mi < M; ++mi) {
              const int m = mi - ell;
              cd acc = 0;
              for (int k = 0; k < n; ++k) {
                const size_t xi = x_index(b, j, k, s, c);
                const cd v = activation ? x_ref[xi] : g.real_input ? cd(x_real[xi], 0.0) : cd(x[xi].re, x[xi].im);
                acc += v * e[((static_cast<int64_t>(m) * k) % n + n) % n];
              }
              F[static_cast<size_t>(j) * M + mi] = w[j] * acc;
              note(rings_at(s, mi, j, b, c), w[j] * acc, ref_stage, err_stage);
            }
          }
          for (int mi = 0; mi < M; ++mi) {
            const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
            for (int l = 0; l < L; ++l) {
              cd acc = 0;
              for (int j = 0; j < n; ++j) acc += lambda_at(lam, L, M, s, j, mi, l, n) * F[static_cast<size_t>(j) * M + mi];
              const Cpx<T> o = a[a_index(b, l, mi, s, c)];
              if (l < l0 && (o.re != T(0) || o.im != T(0))) err.nonzero_below++;
              note(cd(o.re, o.im), acc, ref_total, err_total);
            }
          }
        } else {
          // G[s, mi, j] = sum_l lambda a (entries below l0 ignored), x = w_j sum_m G e^{...}
          std::vector<cd> G(static_cast<size_t>(n) * M);
          for (int mi = 0; mi < M; ++mi) {
            const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
            for (int j = 0; j < n; ++j) {
              cd acc = 0, mapped = 0;  // K2 sees a; the maps come from the mapped coefficients
              for (int l = l0; l < L; ++l) {
                const size_t i = a_index(b, l, mi, s, c);
                acc += lambda_at(lam, L, M, s, j, mi, l, n) * cd(a[i].re, a[i].im);
                if (affine) mapped += lambda_at(lam, L, M, s, j, mi, l, n) * a_mapped[i];
              }
              G[static_cast<size_t>(j) * M + mi] = affine ? mapped : acc;
              note(rings_at(s, mi, j, b, c), acc, ref_stage, err_stage);
            }
          }
          for (int j = 0; j < n; ++j) {
            for (int k = 0; k < n; ++k) {
              cd acc = 0;
              for (int mi = 0; mi < M; ++mi) {
                const int m = mi - ell;
                acc += G[static_cast<size_t>(j) * M + mi] * e[((static_cast<int64_t>(m) * k) % n + n) % n];
              }
              if (activation) x_ref[x_index(b, j, k, s, c)] = w[j] * acc;
              if (epilogue) continue;  // K1 wrote the gradient instead of the maps
              const Cpx<T> o = x[x_index(b, j, k, s, c)];
              note(cd(o.re, o.im), w[j] * acc, ref_total, err_total);
            }
          }
        }
      }
    }
  }
  err.stage = err_stage / (ref_stage > 0 ? ref_stage : 1.0);
  err.total = err_total / (ref_total > 0 ? ref_total : 1.0);
  if (activation && !analysis) {
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
    double ref_y = 0, err_y = 0, ref_b = 0, err_b = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const int q = static_cast<int>(i % SC);
      cd want;
      double share;
      activated_cotangent(cd(y[i].re, y[i].im), fine_ct[i], bias_t[q], q / C == cs.leaky_spin, eps, slope, want,
                          share);
      bias_ref[q] += share;
      note(cd(ct_y[i].re, ct_y[i].im), want, ref_y, err_y);
    }
    for (int q = 0; q < SC; ++q) note(cd(ct_bias[q], 0.0), cd(bias_ref[q], 0.0), ref_b, err_b);
    err.gradient = std::max(err_y / ref_y, err_b / (ref_b > 0 ? ref_b : 1.0));
  }
  std::string spins;
  for (int s : cs.spins) spins += (spins.empty() ? "" : ",") + std::to_string(s);
  const std::string kind = affine ? "affine-synthesis" : !activation ? (analysis ? "analysis" : "synthesis")
                                        : std::string(analysis ? "activated" : "gradient") +
                                              (cs.activation == 2 ? "-pooled" : "");
  err.unfenced = unfenced;
  const int64_t gemm_blocks = std::min<int64_t>(static_cast<int64_t>(plan.gemm.tiles) * L * std::min(S, 2),
                                                plan.gemm.max_blocks);
  std::printf("%-9s %-6s %-5s n=%d ell_max=%d spins=%s B=%d C=%d %s%s k1k2=%s config=%d gemm_blocks=%lld "
              "ring_rows=%d ring_blocks=%lld%s: stage %.2e result %.2e gradient %.2e unwritten %d nonzero_below %d "
              "unfenced %d\n",
              kind.c_str(), sizeof(T) == 4 ? "float" : "double", table_mode ? "table" : "otf", n,
              ell, spins.c_str(), B, C, cs.degree_major ? "degree_major" : "batch_major", g.real_input ? " real" : "",
              plan.gemm.global_accumulators ? "global-acc" : "shared", plan.gemm.config,
              static_cast<long long>(gemm_blocks), plan.ring.tile_rows, static_cast<long long>(plan.ring.blocks),
              plan.ring.global ? " global-ring" : "", err.stage, err.total, err.gradient, err.unwritten,
              err.nonzero_below, err.unfenced);
  Digest digest;
  digest.add(a);
  digest.add(x);
  digest.add(rings, sizeof(Cpx<T>) * static_cast<size_t>(S) * M * n * plan.padded_maps);
  digest.add(ct_y);
  digest.add(ct_bias);
  digest.print();
  return err;
}

// The bias sums (two levels of column_sum_block) of random partials (rows,
// lanes) against long double sums: per lane, the error relative to the sum of
// |partials| within depth eps, a bound of the rounding of `depth` additions in
// a row (the longest chain of additions of one thread: its rows, then the
// tree, at each level); and the same bits on 1 and 5 blocks per level as on
// the handler's grids. Prints the longest chain before (one thread per lane
// adding every row) and after. Returns the problems.
template <typename T>
int check_bias_sums(int64_t rows, int lanes, std::mt19937& rng) {
  GradientArgs<T> ga{};
  ga.batch = rows;  // B n_in partial rows
  ga.n_in = 1;
  ga.lanes = lanes;
  const int64_t chunks = bias_chunks(rows, lanes);
  std::vector<T> partials(static_cast<size_t>(rows) * lanes), chunk_sums, ct_bias;
  std::normal_distribution<double> nd;
  for (T& v : partials) v = static_cast<T>(nd(rng));
  ga.partials = partials.data();
  auto sums_on = [&](int64_t blocks) {
    chunk_sums.assign(static_cast<size_t>(chunks) * lanes, T(NAN));
    ct_bias.assign(lanes, T(NAN));
    ga.chunk_sums = chunk_sums.data();
    ga.ct_bias = ct_bias.data();
    run_bias_sums(ga, blocks);
    return ct_bias;
  };
  const std::vector<T> sums = sums_on(0);
  int problems = 0;
  for (int64_t blocks : {1, 5}) {
    if (std::memcmp(sums_on(blocks).data(), sums.data(), sums.size() * sizeof(T)) != 0) problems++;
  }
  const int groups = column_groups(lanes);
  const int64_t tree = static_cast<int64_t>(std::ceil(std::log2(groups)));
  const int64_t first = ceil_div(std::min(rows, bias_chunk_rows(lanes)), groups) + tree;
  const int64_t second = ceil_div(chunks, groups) + tree;
  const double bound = static_cast<double>(first + second) * std::numeric_limits<T>::epsilon();
  double worst = 0;
  for (int q = 0; q < lanes; ++q) {
    long double exact = 0, magnitude = 0;
    for (int64_t r = 0; r < rows; ++r) {
      exact += partials[r * lanes + q];
      magnitude += std::abs(static_cast<long double>(partials[r * lanes + q]));
    }
    const double error = static_cast<double>(std::abs(sums[q] - exact) / magnitude);
    worst = std::isfinite(error) ? std::max(worst, error) : INFINITY;
  }
  if (!(worst <= bound)) problems++;
  std::printf("bias-sum %-6s rows=%lld lanes=%d chunks=%lld: error %.2e bound %.2e chain %lld -> %lld + %lld "
              "problems %d\n",
              sizeof(T) == 4 ? "float" : "double", static_cast<long long>(rows), lanes, static_cast<long long>(chunks),
              worst, bound, static_cast<long long>(rows), static_cast<long long>(first),
              static_cast<long long>(second), problems);
  return problems;
}

int main(int argc, char** argv) {
  std::mt19937 rng(7);
  if (argc == 2 && std::string(argv[1]) == "bias-sums") {
    // B n_in rows of the spherical MNIST model's activations at batch 128 (S C =
    // 2 x 16 .. 2 x 32 lanes), a lane count that does not divide the block's
    // threads, two lane tiles with a partial last chunk, fewer rows than a chunk
    const std::vector<std::pair<int64_t, int>> shapes = {
        {128 * 64, 32}, {128 * 32, 48}, {128 * 16, 64}, {128 * 32, 56}, {1000, 300}, {5, 3}};
    int problems = 0;
    for (const auto& [rows, lanes] : shapes) {
      problems += check_bias_sums<float>(rows, lanes, rng);
      problems += check_bias_sums<double>(rows, lanes, rng);
    }
    std::printf("bias-sums problems %d\n", problems);
    return problems == 0 ? 0 : 1;
  }
  std::vector<Case> cases = {
      {4, 1, {0}, 1, 1, false, false},
      {4, 1, {0}, 3, 1, false, true},
      {8, 3, {0, 1}, 2, 3, true, false},
      {8, 2, {0, 3, -5}, 1, 3, false, false},  // |s| > ell_max: zeros
      {16, 7, {-2, 1, 3}, 1, 33, false, false},
      {16, 5, {0, 1, -3}, 3, 1, true, false},  // pooled
      {32, 15, {0}, 5, 7, false, true},
      {32, 15, {-1, 2}, 3, 5, true, false},
      {64, 31, {0, 1}, 3, 3, false, false},
      {64, 20, {-2, 1, 3}, 1, 5, true, false},  // pooled
      {70, 20, {2, -1}, 1, 3, false, false},    // n = 2 5 7
      {64, 31, {0, 2}, 1, 3, false, false, true},
      {128, 63, {0, -3}, 1, 3, false, false},
      {256, 127, {0, 1}, 1, 3, false, false},
      {256, 100, {-3}, 1, 1, true, false},      // pooled
      // the activated analysis: nonlinearity only, then with pooling from 2n,
      // a leaky spin or none, a pooled band limit, K1's buffers in global scratch
      {8, 3, {0, 1}, 2, 3, true, false, false, 1, 0},
      {16, 7, {0, 1}, 3, 5, true, false, false, 2, 0},
      {16, 5, {1, -2}, 2, 3, false, false, false, 2, -1},
      {32, 15, {0, 1}, 2, 4, true, false, true, 2, 1},
      {64, 31, {0, 1}, 1, 3, true, false, false, 1, 0},
      {16, 7, {0, 1}, 2, 3, false, false, true, 1, -1},  // the gradient store's shares in global scratch
      // the affine synthesis (a batch norm's apply): with and without a spin 0,
      // a pooled band limit, K1's buffers in global scratch
      {16, 7, {0, 1}, 2, 3, true, false, false, 0, -1, true},
      {16, 5, {1, -2}, 2, 3, false, false, false, 0, -1, true},
      {32, 15, {-1, 0, 2}, 1, 5, true, false, true, 0, -1, true},
      {64, 20, {0, 1}, 2, 3, false, false, false, 0, -1, true},
      // forced: K1's buffers in global scratch on one block per work item (8
      // rings x 16 rows: 128 blocks; the plan launches up to kGlobalRingBlocks)
      {8, 3, {0, 1}, 1, 8, false, false, true, 0, -1, false, kGlobalRingBlocks},
      // forced: the on-the-fly analysis's accumulators in global scratch at small
      // band limits, every tile; one block per item, or a few looping over them
      {8, 3, {0, 1}, 1, 2, true, false, false, 0, -1, false, kLoopingRingBlocks, 0},
      {8, 2, {1, -2, 0}, 1, 1, false, false, false, 0, -1, false, kLoopingRingBlocks, 1, 5},
      {8, 3, {0, 2}, 2, 3, false, false, false, 0, -1, false, kLoopingRingBlocks, 2, 3},
  };
  std::vector<int> only;
  for (int i = 1; i < argc; ++i) only.push_back(std::atoi(argv[i]));
  double worst_f = 0, worst_d = 0, gradient_f = 0, gradient_d = 0;
  int bad = 0;
  for (const Case& cs : cases) {
    if (!only.empty() && std::find(only.begin(), only.end(), cs.n) == only.end()) continue;
    for (int an = 1; an >= 0; --an) {
      if (!an && cs.real_input) continue;
      for (int tm = 1; tm >= 0; --tm) {
        if (!runs_in(cs, an, tm)) continue;
        const Errors f = run_case<float>(cs, an, tm, rng);
        const Errors d = run_case<double>(cs, an, tm, rng);
        worst_f = std::max({worst_f, f.stage, f.total});
        worst_d = std::max({worst_d, d.stage, d.total});
        gradient_f = std::max(gradient_f, f.gradient);
        gradient_d = std::max(gradient_d, d.gradient);
        bad += f.unwritten + f.nonzero_below + f.unfenced + d.unwritten + d.nonzero_below + d.unfenced;
      }
    }
  }
  std::printf("worst float %.3e double %.3e gradient float %.3e gradient double %.3e problems %d\n", worst_f,
              worst_d, gradient_f, gradient_d, bad);
  return (worst_f <= 1e-6 && worst_d <= 1e-12 && gradient_f <= 2e-6 && gradient_d <= 1e-12 && bad == 0) ? 0 : 1;
}
