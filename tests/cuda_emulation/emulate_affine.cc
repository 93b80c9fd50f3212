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
// every element written (outputs start as NaN), exact zeros below
// max(|m|, |s|), and the products bit-identical when 7 blocks loop over the
// items instead of one block per item.
//
// Usage: emulate_affine CASE ... where each CASE is one JSON object (the
// fields of AffineCase and "precision", float or double;
// tests/emulation_cases.py holds them). Prints one JSON line per check of each
// case (emulated_reference.h, print_records): the relative errors ct_a,
// products and constant (float32 <= 2e-6, float64 <= 1e-12, relative to the
// largest reference value), and the counts written, zeros and products_grids
// that must be 0. Exit status 0 when every check passed, 1 when one failed, 2
// for a malformed case.
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
  int n = 0, ell_max = 0;
  std::vector<int> spins;
  int batch = 1, channels = 1;
  bool degree_major = false;
};

AffineCase affine_case_of(CaseArguments& args) {
  AffineCase cs;
  cs.n = static_cast<int>(args.integer("n"));
  cs.ell_max = static_cast<int>(args.integer("ell_max"));
  cs.spins = args.integers("spins");
  cs.batch = static_cast<int>(args.integer("batch"));
  cs.channels = static_cast<int>(args.integer("channels"));
  cs.degree_major = args.flag("degree_major");
  return cs;
}

// One run of a case in precision T: the launches on 7 blocks, then on one
// block per item, what they wrote, and the float64 sums the checks compare
// with.
template <typename T>
class AffineRun {
 public:
  AffineRun(const AffineCase& cs, std::mt19937& rng);

  std::vector<Record> records() const;
  // The plan's table tile (config) and degree tiles.
  std::string plan_json() const;
  // Of ct_a, the products and the constants.
  Digest digest() const;

 private:
  // Each output against its float64 sums (ct_a exactly zero below
  // max(|m|, |s|)).
  Check compare_ct_a() const;
  Check compare_products() const;
  Check compare_constant() const;
  // Elements left NaN; not zero where they must be; products whose bits differ
  // between the two grids.
  Record written() const;
  Record zeros() const;
  Record products_grids() const;

  size_t a_index(int b, int l, int mi, int s, int c) const {
    return b * spec_batch_stride + l * spec_degree_stride + (static_cast<int64_t>(mi) * S + s) * C + c;
  }

  const AffineCase cs;
  const int n, ell, L, M, S, B, C;
  const int64_t spec_batch_stride, spec_degree_stride;
  AffineLaunch al{};
  std::vector<Cpx<T>> ct_a, products, looped_products, constant;
  // float64 sums: ct_a at a_index, the products and constants at (b, s, c).
  std::vector<cd> ct_a_ref, products_ref, constant_ref;
};

template <typename T>
AffineRun<T>::AffineRun(const AffineCase& cs_, std::mt19937& rng)
    : cs(cs_),
      n(cs.n),
      ell(cs.ell_max),
      L(ell + 1),
      M(2 * ell + 1),
      S(static_cast<int>(cs.spins.size())),
      B(cs.batch),
      C(cs.channels),
      spec_batch_stride(cs.degree_major ? static_cast<int64_t>(M) * S * C : L * static_cast<int64_t>(M) * S * C),
      spec_degree_stride(cs.degree_major ? B * static_cast<int64_t>(M) * S * C : static_cast<int64_t>(M) * S * C) {
  Geometry g = geometry_of(n, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  al = affine_gradient_launch(g, LambdaSource::kTable);
  const LaunchPlan& plan = al.plan;
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
  ct_a.assign(spectral, nan);
  products.assign(static_cast<size_t>(B) * S * C, nan);
  constant = products;

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
  gemm.spec_batch_stride = spec_batch_stride;
  gemm.spec_degree_stride = spec_degree_stride;
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
  looped_products = products;
  std::fill(products.begin(), products.end(), nan);
  run(false);

  const std::vector<double> lam = lambda_reference(n, ell, cs.spins);
  ct_a_ref.assign(spectral, cd(0.0));
  products_ref.assign(products.size(), cd(0.0));
  constant_ref.assign(products.size(), cd(0.0));
  for (int b = 0; b < B; ++b) {
    for (int s = 0; s < S; ++s) {
      for (int c = 0; c < C; ++c) {
        const cd f(factor[s * C + c].re, factor[s * C + c].im);
        cd product = 0.0, u00 = 0.0;
        for (int l = 0; l < L; ++l) {
          for (int mi = 0; mi < M; ++mi) {
            const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
            const cd u = l >= l0 ? legendre_sum(lam, rings, plan.padded_maps, n, ell, s, mi, l, b * C + c) : cd(0.0);
            const size_t i = a_index(b, l, mi, s, c);
            product += u * cd(a[i].re, a[i].im);
            if (l == 0 && mi == ell) u00 = u;
            ct_a_ref[i] = f * u;
          }
        }
        products_ref[(static_cast<size_t>(b) * S + s) * C + c] = product;
        constant_ref[(static_cast<size_t>(b) * S + s) * C + c] = u00;
      }
    }
  }
}

template <typename T>
std::vector<Record> AffineRun<T>::records() const {
  const double bound = sizeof(T) == 4 ? 2e-6 : 1e-12;
  return {at_most("ct_a", compare_ct_a().relative(), bound),
          at_most("products", compare_products().relative(), bound),
          at_most("constant", compare_constant().relative(), bound),
          written(),
          zeros(),
          products_grids()};
}

template <typename T>
Check AffineRun<T>::compare_ct_a() const {
  Check check;
  for (int b = 0; b < B; ++b)
    for (int l = 0; l < L; ++l)
      for (int mi = 0; mi < M; ++mi)
        for (int s = 0; s < S; ++s) {
          const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
          for (int c = 0; c < C; ++c) {
            check.note(ct_a[a_index(b, l, mi, s, c)], ct_a_ref[a_index(b, l, mi, s, c)], l < l0);
          }
        }
  return check;
}

template <typename T>
Check AffineRun<T>::compare_products() const {
  Check check;
  for (size_t i = 0; i < products.size(); ++i) check.note(products[i], products_ref[i]);
  return check;
}

template <typename T>
Check AffineRun<T>::compare_constant() const {
  Check check;
  for (size_t i = 0; i < constant.size(); ++i) check.note(constant[i], constant_ref[i]);
  return check;
}

template <typename T>
Record AffineRun<T>::written() const {
  return none_found("written", compare_ct_a().unwritten + compare_products().unwritten + compare_constant().unwritten);
}

template <typename T>
Record AffineRun<T>::zeros() const {
  return none_found("zeros", compare_ct_a().nonzero);
}

template <typename T>
Record AffineRun<T>::products_grids() const {
  const bool differ = std::memcmp(looped_products.data(), products.data(), products.size() * sizeof(Cpx<T>)) != 0;
  return none_found("products_grids", differ ? 1 : 0);
}

template <typename T>
std::string AffineRun<T>::plan_json() const {
  return json_object(
      {{"config", std::to_string(al.plan.gemm.config)}, {"degree_tiles", std::to_string(al.degree_tiles)}});
}

template <typename T>
Digest AffineRun<T>::digest() const {
  Digest digest;
  digest.add(ct_a);
  digest.add(products);
  digest.add(constant);
  return digest;
}

template <typename T>
bool affine_records(const CaseArguments& args, const AffineCase& cs, std::mt19937& rng) {
  const AffineRun<T> run(cs, rng);
  return print_records(args, run.plan_json(), run.digest(), run.records());
}

int main(int argc, char** argv) {
  bool passed = true;
  for (int i = 1; i < argc; ++i) {
    CaseArguments args(argv[i]);
    std::mt19937 rng(args.seed());
    const bool single = args.either("precision", "float", "double");
    const AffineCase cs = affine_case_of(args);
    args.done();
    passed &= single ? affine_records<float>(args, cs, rng) : affine_records<double>(args, cs, rng);
  }
  return passed ? 0 : 1;
}
