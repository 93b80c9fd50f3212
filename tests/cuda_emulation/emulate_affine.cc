// CPU emulation of K2 with the batch norm's gradient epilogue
// (csrc/cuda/affine_stage.h, target sphcnn_affine_gradient): affine_gradient_block
// and affine_sum_block, the code the __global__ kernels run, launched with the
// handler's plan (affine_gradient_launch of csrc/cuda/launch_plan.h, every
// table tile shape the plan picks, spin groups of two so that group offsets
// are exercised) on emulated blocks (emulated_launch.h). K1 is not run: the
// Fourier rings F in scratch are random (K1 has its checks in emulate_blocks.cc).
//
// Checked against float64 sums written from the definitions:
//   u[b, l, m, s, c]        = sum_j lambda_{l,m,s}(theta_j) F[s, m, j, b C + c]   (0 below max(|m|, |s|)),
//   ct_a                    = f[s, c] u,
//   products[b, s, c]       = sum_{l, m} u a,     constant[b, s, c] = u[b, 0, 0, s, c];
// every element written (outputs start as NaN), and the products bit-identical
// when 7 blocks loop over the items instead of one block per item. Usage:
// emulate_affine [n ...] (default: every case). Exit status 0 when float32
// errors are <= 2e-6 and float64 ones <= 1e-12 relative to the largest
// reference value and nothing else is wrong; each check line is followed by
// "digest <hex>" of its outputs (emulated_reference.h), "worst float E double
// E" last.
#if !defined(SPHCNN_EMULATED_ASYNC)
#error "build with -DSPHCNN_EMULATED_ASYNC -Itests/cuda_emulation (asynchronous copies deferred to their wait)"
#endif

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "affine_stage.h"
#include "emulated_launch.h"
#include "emulated_reference.h"
#include "launch_plan.h"
#include "packed_table_builder.h"

using namespace sphcnn;
using namespace sphcnn::cuda;
using namespace sphcnn::emulation;

struct AffineCase {
  int n, ell_max;
  std::vector<int> spins;
  int batch, channels;
  bool degree_major;
};

struct AffineErrors {
  double ct_a = 0, products = 0, constant = 0;
  int problems = 0;
  int config = 0;
};

template <typename T>
AffineErrors run_affine_case(const AffineCase& cs, std::mt19937& rng) {
  const int n = cs.n, ell = cs.ell_max, L = ell + 1, M = 2 * ell + 1, S = static_cast<int>(cs.spins.size());
  const int B = cs.batch, C = cs.channels;
  Geometry g = geometry_of(n, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  const AffineLaunch al = affine_gradient_launch(g, LambdaSource::kTable);
  const LaunchPlan& plan = al.plan;
  AffineErrors err;
  err.config = plan.gemm.config;
  std::vector<T> table(packed_table(n, ell, sizeof(T)).size(S), T(12345));
  build_packed_table<T>(n, ell, cs.spins, table.data(), 2);
  std::vector<unsigned char> scratch = nan_scratch<T>(al.scratch_bytes);
  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(scratch.data() + plan.rings_offset);
  fill_normal(rings, static_cast<size_t>(S) * M * n * plan.padded_maps, rng);
  const size_t spectral = static_cast<size_t>(B) * L * M * S * C;
  std::vector<Cpx<T>> a(spectral), factor(static_cast<size_t>(S) * C);
  fill_normal(a, rng);
  fill_normal(factor, rng);
  const Cpx<T> nan{T(NAN), T(NAN)};
  std::vector<Cpx<T>> ct_a(spectral, nan), products(static_cast<size_t>(B) * S * C, nan), constant(products);

  GemmArgs<T> gemm{};
  gemm.rings_in = rings;
  gemm.spec_out = ct_a.data();
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
  gemm.tiles = plan.gemm.tiles;
  AffineArgs<T> x{};
  x.input = a.data();
  x.factor = factor.data();
  x.shares = reinterpret_cast<Cpx<T>*>(scratch.data() + al.shares_offset);
  x.products = products.data();
  x.constant = constant.data();
  x.degree_tiles = al.degree_tiles;
  x.batch = B;
  std::vector<int64_t> spin_values(cs.spins.begin(), cs.spins.end());
  const int config = plan.gemm.config;
  auto run = [&](bool few) {
    for (int offset = 0; offset < S; offset += 2) {
      GemmArgs<T> args = gemm;
      args.spins = spin_group(spin_values.data(), std::min(offset + 2, S), ell, offset);
      args.items = static_cast<int64_t>(plan.gemm.tiles) * L * args.spins.count;
      const int64_t blocks = few ? std::min<int64_t>(args.items, 7) : args.items;
      launch(kGemmThreads, blocks, affine_table_shared<T>(config), [&](const HostCtx& ctx, unsigned char* smem) {
        if (config == 0) affine_gradient_block<T, AnalysisTile<T, 32, 32>>(ctx, args, x, smem);
        else if (config == 1) affine_gradient_block<T, AnalysisTile<T, 8, 128>>(ctx, args, x, smem);
        else affine_gradient_block<T, AnalysisTile<T, 128, 8>>(ctx, args, x, smem);
      });
    }
    launch(kAffineSumThreads, al.sum_blocks, 0,
           [&](const HostCtx& ctx, unsigned char*) { affine_sum_block<T>(ctx, gemm, x); });
  };
  run(true);
  const std::vector<Cpx<T>> looped = products;
  std::fill(products.begin(), products.end(), nan);
  run(false);
  if (std::memcmp(looped.data(), products.data(), products.size() * sizeof(Cpx<T>)) != 0) err.problems++;

  const std::vector<double> lam = lambda_reference(n, ell, cs.spins);
  Check ct_a_check, products_check, constant_check;
  for (int b = 0; b < B; ++b) {
    for (int s = 0; s < S; ++s) {
      for (int c = 0; c < C; ++c) {
        const cd f(factor[s * C + c].re, factor[s * C + c].im);
        cd product = 0.0, u00 = 0.0;
        for (int l = 0; l < L; ++l) {
          for (int mi = 0; mi < M; ++mi) {
            const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
            const cd u = l >= l0 ? legendre_sum(lam, rings, plan.padded_maps, n, ell, s, mi, l, b * C + c) : cd(0.0);
            const size_t i = b * gemm.spec_batch_stride + l * gemm.spec_degree_stride + (static_cast<int64_t>(mi) * S + s) * C + c;
            product += u * cd(a[i].re, a[i].im);
            if (l == 0 && mi == ell) u00 = u;
            ct_a_check.note(ct_a[i], f * u, l < l0);
          }
        }
        products_check.note(products[(static_cast<size_t>(b) * S + s) * C + c], product);
        constant_check.note(constant[(static_cast<size_t>(b) * S + s) * C + c], u00);
      }
    }
  }
  err.ct_a = ct_a_check.relative();
  err.products = products_check.relative();
  err.constant = constant_check.relative();
  err.problems += ct_a_check.problems + products_check.problems + constant_check.problems;
  std::string spins;
  for (int s : cs.spins) spins += (spins.empty() ? "" : ",") + std::to_string(s);
  std::printf("affine-gradient %-6s n=%d ell_max=%d spins=%s B=%d C=%d %s config=%d degree_tiles=%d: "
              "ct_a %.2e products %.2e constant %.2e problems %d\n",
              sizeof(T) == 4 ? "float" : "double", n, ell, spins.c_str(), B, C,
              cs.degree_major ? "degree_major" : "batch_major", config, al.degree_tiles, err.ct_a, err.products,
              err.constant, err.problems);
  Digest digest;
  digest.add(ct_a);
  digest.add(products);
  digest.add(constant);
  digest.print();
  return err;
}

int main(int argc, char** argv) {
  std::mt19937 rng(13);
  const std::vector<AffineCase> cases = {
      {8, 3, {0, 1}, 3, 3, false},
      {16, 7, {0, 1, -2}, 2, 5, true},   // two spin groups
      {32, 10, {1, 0}, 2, 40, true},     // pooled band limit, spin 0 second
      {64, 31, {0, 1}, 3, 20, true},     // a spherical-MNIST block
      {128, 63, {0}, 1, 2, false},       // few columns: the tall tile, several degree tiles
      {128, 50, {0, 2}, 40, 4, true},    // many columns: the wide tile
  };
  double worst_f = 0, worst_d = 0;
  int problems = 0;
  std::vector<int> only;  // grid sizes n to run (default: every case)
  for (int i = 1; i < argc; ++i) only.push_back(std::atoi(argv[i]));
  for (const AffineCase& cs : cases) {
    if (!only.empty() && std::find(only.begin(), only.end(), cs.n) == only.end()) continue;
    const AffineErrors f = run_affine_case<float>(cs, rng);
    const AffineErrors d = run_affine_case<double>(cs, rng);
    worst_f = std::max({worst_f, f.ct_a, f.products, f.constant});
    worst_d = std::max({worst_d, d.ct_a, d.products, d.constant});
    problems += f.problems + d.problems;
  }
  std::printf("worst float %.3e double %.3e problems %d\n", worst_f, worst_d, problems);
  return (worst_f <= 2e-6 && worst_d <= 1e-12 && problems == 0) ? 0 : 1;
}
