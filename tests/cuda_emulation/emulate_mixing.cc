// CPU emulation of K2 with the convolution's mixing (csrc/cuda/mixing_stage.h):
// analysis_mixing_block and energy_sum_block (target sphcnn_mixing_analysis),
// and synthesis_mixing_block (target sphcnn_mixing_gradient), the code the
// __global__ kernels run, launched with the handlers' plans (mixing_launch,
// mixing_gradient_launch) on emulated blocks (emulated_launch.h). K1 is not
// run: the Fourier rings F in scratch are random, K1 has its own checks in
// emulate_blocks.cc.
//
// Checked against float64 sums written from the definitions:
//   a[b, l, m, i, c]  = sum_j lambda_{l,m,s_i}(theta_j) F[i, m, j, b C + c]  (0 below max(|m|, |s_i|)),
//   b[b, l, m, o, d]  = sum_{i, c} a[b, l, m, i, c] w[l, i, o, c, d]        (0 at |m| > l),
//   energy[b, o, d]   = sum_{l, m} |b[b, l, m, o, d]|^2;
// every element of a, b and energy written (they start as NaN), exact zeros
// where they must be, and the energy bit-identical when the blocks loop over
// the items (a grid of 7 blocks) instead of one block per item. Backward, for
// a random cotangent ct_b:
//   ct_a[b, l, m, i, c] = sum_{o, d} ct_b[b, l, m, o, d] w[l, i, o, c, d]    (l >= |m|),
//   G[i, m, j, b C + c] = sum_{l >= max(|m|, |s_i|)} lambda_{l,m,s_i}(theta_j) ct_a[b, l, m, i, c],
// every ring of every column written, the padding columns zero. Both ways each
// thread fences once an item, before it reads back the coefficients other
// threads wrote to global memory (block_common.h). Usage:
// emulate_mixing [n ...] (default: every case); prints one line per check,
// each followed by "digest <hex>" of its outputs (emulated_reference.h), and
// "worst float E double E" last; exit status 0 when float32 errors are <= 2e-6
// and float64 ones <= 1e-12 relative to the largest reference value, and
// nothing else is wrong.
#if !defined(SPHCNN_EMULATED_ASYNC)
#error "build with -DSPHCNN_EMULATED_ASYNC -Itests/cuda_emulation (asynchronous copies deferred to their wait)"
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "activation_gradient.h"
#include "emulated_launch.h"
#include "emulated_reference.h"
#include "launch_plan.h"
#include "mixing_stage.h"
#include "packed_table_builder.h"

using namespace sphcnn;
using namespace sphcnn::cuda;
using namespace sphcnn::emulation;

struct MixCase {
  int n, ell_max;
  std::vector<int> spins;
  int batch, channels, out_spins, out_channels;
  bool degree_major;
};

struct MixErrors {
  double a = 0, b = 0, energy = 0, ct_a = 0, rings = 0;
  int problems = 0;  // unwritten, nonzero where zero, energy not reproducible, fences not where needed
};

template <typename T>
MixErrors run_mixing_case(const MixCase& cs, std::mt19937& rng) {
  const int n = cs.n, ell = cs.ell_max, L = ell + 1, M = 2 * ell + 1, S = static_cast<int>(cs.spins.size());
  const int B = cs.batch, C = cs.channels, SO = cs.out_spins, CO = cs.out_channels;
  Geometry g = geometry_of(n, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  const MixingLaunch ml = mixing_launch(g, LambdaSource::kTable, SO, CO);
  const LaunchPlan& plan = ml.plan;
  MixErrors err;
  if (!ml.supported) {
    err.problems++;
    return err;
  }
  std::vector<T> table(packed_table(n, ell, sizeof(T)).size(S), T(12345));
  build_packed_table<T>(n, ell, cs.spins, table.data(), 2);
  std::vector<unsigned char> scratch = nan_scratch<T>(ml.scratch_bytes);
  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(scratch.data() + plan.rings_offset);
  fill_normal(rings, static_cast<size_t>(S) * M * n * plan.padded_maps, rng);
  std::vector<Cpx<T>> w(static_cast<size_t>(L) * S * SO * C * CO);
  fill_normal(w, rng);
  const Cpx<T> nan{T(NAN), T(NAN)};
  std::vector<Cpx<T>> a(static_cast<size_t>(B) * L * M * S * C, nan), b(static_cast<size_t>(B) * L * M * SO * CO, nan);
  std::vector<T> energy(static_cast<size_t>(B) * SO * CO, T(NAN));

  GemmArgs<T> gemm{};
  gemm.rings_in = rings;
  gemm.spec_out = a.data();
  gemm.table = table.data();
  gemm.n = n;
  gemm.ell_max = ell;
  gemm.total_spins = S;
  gemm.channels = C;
  gemm.maps = static_cast<int64_t>(B) * C;
  gemm.padded_maps = plan.padded_maps;
  const int64_t row = static_cast<int64_t>(M) * S * C;
  gemm.spec_batch_stride = cs.degree_major ? row : L * row;
  gemm.spec_degree_stride = cs.degree_major ? B * row : row;
  std::vector<int64_t> spin_values(cs.spins.begin(), cs.spins.end());
  gemm.spins = spin_group(spin_values.data(), S, ell, 0);
  MixingArgs<T> mx{};
  mx.filters = w.data();
  mx.mixed = b.data();
  mx.partials = reinterpret_cast<T*>(scratch.data() + ml.partials_offset);
  mx.energy = energy.data();
  mx.out_spins = SO;
  mx.out_channels = CO;
  mx.batch = B;
  mx.batch_tile = ml.batch_tile;
  mx.degree_tiles = ml.degree_tiles;
  const int64_t out_row = static_cast<int64_t>(M) * SO * CO;
  mx.mixed_batch_stride = cs.degree_major ? out_row : L * out_row;
  mx.mixed_degree_stride = cs.degree_major ? B * out_row : out_row;
  mx.items = ml.items;
  // Each thread fences once for every item whose coefficients it writes and
  // reads back (none where the |m| has fewer degree tiles), once for every
  // item of the transposed mixing (block_common.h); problems where not.
  std::atomic<int> unfenced{0};
  const int64_t batch_tiles = ceil_div(B, ml.batch_tile);
  auto live_items = [&](const HostCtx& ctx) {
    int64_t count = 0;
    for (int64_t item = ctx.block(); item < mx.items; item += ctx.blocks()) {
      const int64_t rest = item / batch_tiles;
      count += rest / ml.degree_tiles + rest % ml.degree_tiles * kMixingDegrees <= ell ? 1 : 0;
    }
    return count;
  };
  auto run = [&](int64_t blocks) {
    launch(kGemmThreads, blocks, ml.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
      const int64_t before = HostCtx::fences;
      analysis_mixing_block<T>(ctx, gemm, mx, smem);
      if (HostCtx::fences - before != live_items(ctx)) unfenced++;
    });
    launch(kEnergyThreads, ml.energy_blocks, 0,
           [&](const HostCtx& ctx, unsigned char*) { energy_sum_block<T>(ctx, mx, ml.shares); });
  };
  run(7);  // fewer blocks than items: each block loops over several
  const std::vector<T> looped = energy;
  std::fill(energy.begin(), energy.end(), T(NAN));
  run(ml.blocks);
  if (std::memcmp(looped.data(), energy.data(), energy.size() * sizeof(T)) != 0) err.problems++;

  // float64 references.
  const std::vector<double> lam = lambda_reference(n, ell, cs.spins);
  auto a_at = [&](int bb, int l, int mi, int s, int c) {
    return a[bb * gemm.spec_batch_stride + l * gemm.spec_degree_stride + (static_cast<int64_t>(mi) * S + s) * C + c];
  };
  auto b_at = [&](int bb, int l, int mi, int o, int d) {
    return b[bb * mx.mixed_batch_stride + l * mx.mixed_degree_stride + (static_cast<int64_t>(mi) * SO + o) * CO + d];
  };
  Check a_check, b_check, energy_check, ct_a_check, rings_check;
  std::vector<cd> a_ref(static_cast<size_t>(L) * M * S * C);
  for (int bb = 0; bb < B; ++bb) {
    for (int l = 0; l < L; ++l) {
      for (int mi = 0; mi < M; ++mi) {
        for (int s = 0; s < S; ++s) {
          const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
          for (int c = 0; c < C; ++c) {
            const cd acc = l >= l0 ? legendre_sum(lam, rings, plan.padded_maps, n, ell, s, mi, l, bb * C + c) : cd(0.0);
            a_ref[((static_cast<size_t>(l) * M + mi) * S + s) * C + c] = acc;
            a_check.note(a_at(bb, l, mi, s, c), acc, l < l0);
          }
        }
      }
    }
    for (int o = 0; o < SO; ++o) {
      for (int d = 0; d < CO; ++d) {
        double e = 0.0;
        for (int l = 0; l < L; ++l) {
          for (int mi = 0; mi < M; ++mi) {
            cd acc = 0.0;
            if (std::abs(mi - ell) <= l) {
              for (int s = 0; s < S; ++s) {
                for (int c = 0; c < C; ++c) {
                  const Cpx<T> f = w[(((static_cast<size_t>(l) * S + s) * SO + o) * C + c) * CO + d];
                  acc += a_ref[((static_cast<size_t>(l) * M + mi) * S + s) * C + c] * cd(f.re, f.im);
                }
              }
            }
            e += std::norm(acc);
            b_check.note(b_at(bb, l, mi, o, d), acc, std::abs(mi - ell) > l);
          }
        }
        energy_check.note(Cpx<T>{energy[(static_cast<size_t>(bb) * SO + o) * CO + d], T(0)}, cd(e, 0.0));
      }
    }
  }
  // Backward: the transposed mixing into ct_a, then the synthesis into the rings.
  std::vector<Cpx<T>> ct_b(b.size());
  fill_normal(ct_b, rng);
  const MixingGradientLaunch gl = mixing_gradient_launch(g, LambdaSource::kTable, n);
  std::vector<unsigned char> back = nan_scratch<T>(gl.scratch_bytes);
  Cpx<T>* rings_out = reinterpret_cast<Cpx<T>*>(back.data() + gl.plan.rings_offset);
  Cpx<T>* ct_a = reinterpret_cast<Cpx<T>*>(back.data() + gl.coefficients_offset);
  GemmArgs<T> synth = gemm;
  synth.rings_in = nullptr;
  synth.spec_out = nullptr;
  synth.rings_out = rings_out;
  synth.spec_in = ct_a;
  synth.padded_maps = gl.plan.padded_maps;
  MixingArgs<T> bx = mx;
  bx.mixed = nullptr;
  bx.partials = nullptr;
  bx.energy = nullptr;
  bx.mixed_cotangent = ct_b.data();
  bx.coefficients = ct_a;
  bx.batch_tile = gl.batch_tile;
  bx.items = gl.items;
  launch(kGemmThreads, std::min<int64_t>(gl.blocks, 5), gl.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
    const int64_t before = HostCtx::fences;
    synthesis_mixing_block<T>(ctx, synth, bx, smem);
    if (HostCtx::fences - before != items_of_block(bx.items, ctx.block(), ctx.blocks())) unfenced++;
  });
  for (int bb = 0; bb < B; ++bb) {
    for (int mi = 0; mi < M; ++mi) {
      const int am = std::abs(mi - ell);
      for (int s = 0; s < S; ++s) {
        const int l0 = std::max(am, std::abs(cs.spins[s]));
        for (int c = 0; c < C; ++c) {
          std::vector<cd> column(L, cd(0.0, 0.0));
          for (int l = am; l < L; ++l) {
            cd acc = 0.0;
            for (int o = 0; o < SO; ++o) {
              for (int d = 0; d < CO; ++d) {
                const Cpx<T> u = ct_b[bb * mx.mixed_batch_stride + l * mx.mixed_degree_stride +
                                      (static_cast<int64_t>(mi) * SO + o) * CO + d];
                const Cpx<T> v = w[(((static_cast<size_t>(l) * S + s) * SO + o) * C + c) * CO + d];
                acc += cd(u.re, u.im) * cd(v.re, v.im);
              }
            }
            column[l] = acc;
            ct_a_check.note(ct_a[bb * gemm.spec_batch_stride + l * gemm.spec_degree_stride +
                                 (static_cast<int64_t>(mi) * S + s) * C + c],
                            acc);
          }
          for (int j = 0; j < n; ++j) {
            cd acc = 0.0;
            for (int l = l0; l < L; ++l) acc += lam[((static_cast<size_t>(s) * n + j) * M + mi) * L + l] * column[l];
            rings_check.note(rings_out[((static_cast<int64_t>(s) * M + mi) * n + j) * gl.plan.padded_maps + bb * C + c],
                             acc);
          }
        }
      }
    }
  }
  for (int s = 0; s < S; ++s) {  // the padding columns: zeros
    for (int mi = 0; mi < M; ++mi) {
      for (int j = 0; j < n; ++j) {
        for (int64_t p = static_cast<int64_t>(B) * C; p < gl.plan.padded_maps; ++p) {
          const Cpx<T> got = rings_out[((static_cast<int64_t>(s) * M + mi) * n + j) * gl.plan.padded_maps + p];
          if (got.re != T(0) || got.im != T(0)) err.problems++;
        }
      }
    }
  }
  err.a = a_check.relative();
  err.b = b_check.relative();
  err.energy = energy_check.relative();
  err.ct_a = ct_a_check.relative();
  err.rings = rings_check.relative();
  for (const Check* check : {&a_check, &b_check, &energy_check, &ct_a_check, &rings_check}) err.problems += check->problems;
  err.problems += unfenced;
  std::string spins;
  for (int s : cs.spins) spins += (spins.empty() ? "" : ",") + std::to_string(s);
  std::printf("mixing %-6s n=%d ell_max=%d spins=%s B=%d C=%d S_out=%d C_out=%d %s batch_tile=%d degree_tiles=%d: "
              "a %.2e b %.2e energy %.2e ct_a %.2e rings %.2e problems %d\n",
              sizeof(T) == 4 ? "float" : "double", n, ell, spins.c_str(), B, C, SO, CO,
              cs.degree_major ? "degree_major" : "batch_major", ml.batch_tile, ml.degree_tiles, err.a, err.b,
              err.energy, err.ct_a, err.rings, err.problems);
  Digest digest;
  digest.add(a);
  digest.add(b);
  digest.add(energy);
  digest.add(ct_a, sizeof(Cpx<T>) * a.size());
  digest.add(rings_out, sizeof(Cpx<T>) * static_cast<size_t>(S) * M * n * gl.plan.padded_maps);
  digest.print();
  return err;
}

int main(int argc, char** argv) {
  std::mt19937 rng(11);
  const std::vector<MixCase> cases = {
      {8, 3, {0, 1}, 3, 3, 2, 5, false},
      {16, 7, {0, 1}, 5, 16, 2, 16, true},      // two batch items per block
      {16, 5, {1, -2}, 2, 40, 1, 3, false},     // C > 32: two column tiles per item, pooled band limit
      {32, 15, {-1, 0, 2}, 2, 7, 3, 4, true},   // three spins, |s| = 2
      {64, 31, {0, 1}, 3, 20, 2, 24, true},     // a spherical-MNIST block
      {128, 40, {0}, 70, 1, 2, 3, true},        // two degree tiles; 32 batch items a block, the last tile partial
  };
  double worst_f = 0, worst_d = 0;
  int problems = 0;
  std::vector<int> only;  // grid sizes n to run (default: every case)
  for (int i = 1; i < argc; ++i) only.push_back(std::atoi(argv[i]));
  for (const MixCase& cs : cases) {
    if (!only.empty() && std::find(only.begin(), only.end(), cs.n) == only.end()) continue;
    const MixErrors f = run_mixing_case<float>(cs, rng);
    const MixErrors d = run_mixing_case<double>(cs, rng);
    worst_f = std::max({worst_f, f.a, f.b, f.energy, f.ct_a, f.rings});
    worst_d = std::max({worst_d, d.a, d.b, d.energy, d.ct_a, d.rings});
    problems += f.problems + d.problems;
  }
  std::printf("worst float %.3e double %.3e problems %d\n", worst_f, worst_d, problems);
  return (worst_f <= 2e-6 && worst_d <= 1e-12 && problems == 0) ? 0 : 1;
}
