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
// threads wrote to global memory (block_common.h).
//
// Usage: emulate_mixing CASE ... where each CASE is one JSON object (the
// fields of MixCase and "precision", float or double; tests/emulation_cases.py
// holds them). Prints one JSON line per check of each case
// (emulated_reference.h, print_records): the relative errors a, b, energy,
// ct_a and rings (float32 <= 2e-6, float64 <= 1e-12, relative to the largest
// reference value), and the counts written, zeros, energy_grids and fences
// that must be 0. Exit status 0 when every check passed, 1 when one failed or
// the plan refused a case (on stderr), 2 for a malformed case.
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
  int n = 0, ell_max = 0;
  std::vector<int> spins;
  int batch = 1, channels = 1, out_spins = 1, out_channels = 1;
  bool degree_major = false;
};

MixCase mix_case_of(CaseArguments& args) {
  MixCase cs;
  cs.n = static_cast<int>(args.integer("n"));
  cs.ell_max = static_cast<int>(args.integer("ell_max"));
  cs.spins = args.integers("spins");
  cs.batch = static_cast<int>(args.integer("batch"));
  cs.channels = static_cast<int>(args.integer("channels"));
  cs.out_spins = static_cast<int>(args.integer("out_spins"));
  cs.out_channels = static_cast<int>(args.integer("out_channels"));
  cs.degree_major = args.flag("degree_major");
  return cs;
}

// One run of a case in precision T: the forward launches (on 7 blocks, then on
// the plan's grid), the backward ones, what they wrote, the (block, thread)
// pairs whose fences differ from the items that need them, and the float64
// sums the checks compare with.
template <typename T>
class MixingRun {
 public:
  MixingRun(const MixCase& cs, std::mt19937& rng);

  std::vector<Record> records() const;
  // The forward plan's batch items a block and degree tiles of an |m|.
  std::string plan_json() const;
  // Of a, b, the energy, ct_a and the rings.
  Digest digest() const;

 private:
  // Each output against its float64 sums, with the elements that must be
  // exactly zero: a below max(|m|, |s|), b at |m| > l, the padding columns of
  // the rings.
  Check compare_a() const;
  Check compare_b() const;
  Check compare_energy() const;
  Check compare_ct_a() const;
  Check compare_rings() const;
  // Elements left NaN; not zero where they must be; energies whose bits
  // differ between the two forward grids; fences not where needed.
  Record written() const;
  Record zeros() const;
  Record energy_grids() const;
  Record fences() const;

  size_t a_index(int bb, int l, int mi, int s, int c) const {
    return bb * spec_batch_stride + l * spec_degree_stride + (static_cast<int64_t>(mi) * S + s) * C + c;
  }
  size_t b_index(int bb, int l, int mi, int o, int d) const {
    return bb * mixed_batch_stride + l * mixed_degree_stride + (static_cast<int64_t>(mi) * SO + o) * CO + d;
  }
  size_t ring_index(int s, int mi, int j, int64_t p) const {
    return ((static_cast<int64_t>(s) * M + mi) * n + j) * gl.plan.padded_maps + p;
  }
  const Cpx<T>* ct_a() const { return reinterpret_cast<const Cpx<T>*>(back.data() + gl.coefficients_offset); }
  const Cpx<T>* rings_out() const { return reinterpret_cast<const Cpx<T>*>(back.data() + gl.plan.rings_offset); }

  const MixCase cs;
  const int n, ell, L, M, S, B, C, SO, CO;
  const int64_t spec_batch_stride, spec_degree_stride, mixed_batch_stride, mixed_degree_stride;
  Geometry g{};
  MixingLaunch ml{};
  MixingGradientLaunch gl{};
  std::vector<unsigned char> back;  // the backward scratch: ct_a and the rings
  std::vector<Cpx<T>> a, b;
  std::vector<T> energy, looped_energy;
  // float64 sums: a and ct_a at a_index, b at b_index, the energy, the rings at
  // ring_index (padding columns 0).
  std::vector<cd> a_ref, b_ref, energy_ref, ct_a_ref, rings_ref;
  int unfenced = 0;
};

template <typename T>
MixingRun<T>::MixingRun(const MixCase& cs_, std::mt19937& rng)
    : cs(cs_),
      n(cs.n),
      ell(cs.ell_max),
      L(ell + 1),
      M(2 * ell + 1),
      S(static_cast<int>(cs.spins.size())),
      B(cs.batch),
      C(cs.channels),
      SO(cs.out_spins),
      CO(cs.out_channels),
      spec_batch_stride(cs.degree_major ? static_cast<int64_t>(M) * S * C : L * static_cast<int64_t>(M) * S * C),
      spec_degree_stride(cs.degree_major ? B * static_cast<int64_t>(M) * S * C : static_cast<int64_t>(M) * S * C),
      mixed_batch_stride(cs.degree_major ? static_cast<int64_t>(M) * SO * CO : L * static_cast<int64_t>(M) * SO * CO),
      mixed_degree_stride(cs.degree_major ? B * static_cast<int64_t>(M) * SO * CO : static_cast<int64_t>(M) * SO * CO) {
  g = geometry_of(n, ell, S, B, C, sizeof(T) == 8);
  g.degree_major = cs.degree_major;
  ml = mixing_launch(g, LambdaSource::kTable, SO, CO);
  const LaunchPlan& plan = ml.plan;
  if (!ml.supported) {
    std::fprintf(stderr, "mixing_launch refused the case n %d ell_max %d batch %d channels %d\n", n, ell, B, C);
    std::exit(1);
  }
  std::vector<T> table(packed_table(n, ell, sizeof(T)).size(S), T(12345));
  build_packed_table<T>(n, ell, cs.spins, table.data(), 2);
  std::vector<unsigned char> scratch = nan_scratch<T>(ml.scratch_bytes);
  Cpx<T>* rings = reinterpret_cast<Cpx<T>*>(scratch.data() + plan.rings_offset);
  fill_normal(rings, static_cast<size_t>(S) * M * n * plan.padded_maps, rng);
  std::vector<Cpx<T>> w(static_cast<size_t>(L) * S * SO * C * CO);
  fill_normal(w, rng);
  const Cpx<T> nan{T(NAN), T(NAN)};
  a.assign(static_cast<size_t>(B) * L * M * S * C, nan);
  b.assign(static_cast<size_t>(B) * L * M * SO * CO, nan);
  energy.assign(static_cast<size_t>(B) * SO * CO, T(NAN));

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
  gemm.spec_batch_stride = spec_batch_stride;
  gemm.spec_degree_stride = spec_degree_stride;
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
  mx.mixed_batch_stride = mixed_batch_stride;
  mx.mixed_degree_stride = mixed_degree_stride;
  mx.items = ml.items;
  // Each thread fences once for every item whose coefficients it writes and
  // reads back (none where the |m| has fewer degree tiles), once for every
  // item of the transposed mixing (block_common.h).
  std::atomic<int> unfenced_pairs{0};
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
      if (HostCtx::fences - before != live_items(ctx)) unfenced_pairs++;
    });
    launch(kEnergyThreads, ml.energy_blocks, 0,
           [&](const HostCtx& ctx, unsigned char*) { energy_sum_block<T>(ctx, mx, ml.shares); });
  };
  run(7);  // fewer blocks than items: each block loops over several
  looped_energy = energy;
  std::fill(energy.begin(), energy.end(), T(NAN));
  run(ml.blocks);

  // Backward: the transposed mixing into ct_a, then the synthesis into the rings.
  std::vector<Cpx<T>> ct_b(b.size());
  fill_normal(ct_b, rng);
  gl = mixing_gradient_launch(g, LambdaSource::kTable, n);
  back = nan_scratch<T>(gl.scratch_bytes);
  Cpx<T>* coefficients = reinterpret_cast<Cpx<T>*>(back.data() + gl.coefficients_offset);
  GemmArgs<T> synth = gemm;
  synth.rings_in = nullptr;
  synth.spec_out = nullptr;
  synth.rings_out = reinterpret_cast<Cpx<T>*>(back.data() + gl.plan.rings_offset);
  synth.spec_in = coefficients;
  synth.padded_maps = gl.plan.padded_maps;
  MixingArgs<T> bx = mx;
  bx.mixed = nullptr;
  bx.partials = nullptr;
  bx.energy = nullptr;
  bx.mixed_cotangent = ct_b.data();
  bx.coefficients = coefficients;
  bx.batch_tile = gl.batch_tile;
  bx.items = gl.items;
  launch(kGemmThreads, std::min<int64_t>(gl.blocks, 5), gl.shared_bytes, [&](const HostCtx& ctx, unsigned char* smem) {
    const int64_t before = HostCtx::fences;
    synthesis_mixing_block<T>(ctx, synth, bx, smem);
    if (HostCtx::fences - before != items_of_block(bx.items, ctx.block(), ctx.blocks())) unfenced_pairs++;
  });
  unfenced = unfenced_pairs;

  // float64 references.
  const std::vector<double> lam = lambda_reference(n, ell, cs.spins);
  a_ref.assign(a.size(), cd(0.0));
  b_ref.assign(b.size(), cd(0.0));
  energy_ref.assign(energy.size(), cd(0.0));
  ct_a_ref.assign(a.size(), cd(0.0));
  rings_ref.assign(static_cast<size_t>(S) * M * n * gl.plan.padded_maps, cd(0.0));
  for (int bb = 0; bb < B; ++bb) {
    for (int l = 0; l < L; ++l) {
      for (int mi = 0; mi < M; ++mi) {
        for (int s = 0; s < S; ++s) {
          const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
          for (int c = 0; c < C && l >= l0; ++c) {
            a_ref[a_index(bb, l, mi, s, c)] = legendre_sum(lam, rings, plan.padded_maps, n, ell, s, mi, l, bb * C + c);
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
                  acc += a_ref[a_index(bb, l, mi, s, c)] * cd(f.re, f.im);
                }
              }
            }
            e += std::norm(acc);
            b_ref[b_index(bb, l, mi, o, d)] = acc;
          }
        }
        energy_ref[(static_cast<size_t>(bb) * SO + o) * CO + d] = e;
      }
    }
  }
  for (int bb = 0; bb < B; ++bb) {
    for (int mi = 0; mi < M; ++mi) {
      const int am = std::abs(mi - ell);
      for (int s = 0; s < S; ++s) {
        const int l0 = std::max(am, std::abs(cs.spins[s]));
        for (int c = 0; c < C; ++c) {
          for (int l = am; l < L; ++l) {
            cd acc = 0.0;
            for (int o = 0; o < SO; ++o) {
              for (int d = 0; d < CO; ++d) {
                const Cpx<T> u = ct_b[b_index(bb, l, mi, o, d)];
                const Cpx<T> v = w[(((static_cast<size_t>(l) * S + s) * SO + o) * C + c) * CO + d];
                acc += cd(u.re, u.im) * cd(v.re, v.im);
              }
            }
            ct_a_ref[a_index(bb, l, mi, s, c)] = acc;
          }
          for (int j = 0; j < n; ++j) {
            cd acc = 0.0;
            for (int l = l0; l < L; ++l) {
              acc += lam[((static_cast<size_t>(s) * n + j) * M + mi) * L + l] * ct_a_ref[a_index(bb, l, mi, s, c)];
            }
            rings_ref[ring_index(s, mi, j, bb * C + c)] = acc;
          }
        }
      }
    }
  }
}

template <typename T>
std::vector<Record> MixingRun<T>::records() const {
  const double bound = sizeof(T) == 4 ? 2e-6 : 1e-12;
  return {at_most("a", compare_a().relative(), bound),
          at_most("b", compare_b().relative(), bound),
          at_most("energy", compare_energy().relative(), bound),
          at_most("ct_a", compare_ct_a().relative(), bound),
          at_most("rings", compare_rings().relative(), bound),
          written(),
          zeros(),
          energy_grids(),
          fences()};
}

template <typename T>
Check MixingRun<T>::compare_a() const {
  Check check;
  for (int bb = 0; bb < B; ++bb)
    for (int l = 0; l < L; ++l)
      for (int mi = 0; mi < M; ++mi)
        for (int s = 0; s < S; ++s) {
          const int l0 = std::max(std::abs(mi - ell), std::abs(cs.spins[s]));
          for (int c = 0; c < C; ++c) check.note(a[a_index(bb, l, mi, s, c)], a_ref[a_index(bb, l, mi, s, c)], l < l0);
        }
  return check;
}

template <typename T>
Check MixingRun<T>::compare_b() const {
  Check check;
  for (int bb = 0; bb < B; ++bb)
    for (int l = 0; l < L; ++l)
      for (int mi = 0; mi < M; ++mi)
        for (int o = 0; o < SO; ++o)
          for (int d = 0; d < CO; ++d) {
            check.note(b[b_index(bb, l, mi, o, d)], b_ref[b_index(bb, l, mi, o, d)], std::abs(mi - ell) > l);
          }
  return check;
}

template <typename T>
Check MixingRun<T>::compare_energy() const {
  Check check;
  for (size_t i = 0; i < energy.size(); ++i) check.note(Cpx<T>{energy[i], T(0)}, energy_ref[i]);
  return check;
}

template <typename T>
Check MixingRun<T>::compare_ct_a() const {
  Check check;
  for (int bb = 0; bb < B; ++bb)
    for (int mi = 0; mi < M; ++mi)
      for (int l = std::abs(mi - ell); l < L; ++l)
        for (int s = 0; s < S; ++s)
          for (int c = 0; c < C; ++c) check.note(ct_a()[a_index(bb, l, mi, s, c)], ct_a_ref[a_index(bb, l, mi, s, c)]);
  return check;
}

template <typename T>
Check MixingRun<T>::compare_rings() const {
  Check check;
  for (int s = 0; s < S; ++s)
    for (int mi = 0; mi < M; ++mi)
      for (int j = 0; j < n; ++j)
        for (int64_t p = 0; p < gl.plan.padded_maps; ++p) {
          check.note(rings_out()[ring_index(s, mi, j, p)], rings_ref[ring_index(s, mi, j, p)], p >= int64_t{B} * C);
        }
  return check;
}

template <typename T>
Record MixingRun<T>::written() const {
  int64_t unwritten = 0;
  for (const Check& check : {compare_a(), compare_b(), compare_energy(), compare_ct_a(), compare_rings()}) {
    unwritten += check.unwritten;
  }
  return none_found("written", unwritten);
}

template <typename T>
Record MixingRun<T>::zeros() const {
  return none_found("zeros", compare_a().nonzero + compare_b().nonzero + compare_rings().nonzero);
}

template <typename T>
Record MixingRun<T>::energy_grids() const {
  const bool differ = std::memcmp(looped_energy.data(), energy.data(), energy.size() * sizeof(T)) != 0;
  return none_found("energy_grids", differ ? 1 : 0);
}

template <typename T>
Record MixingRun<T>::fences() const {
  return none_found("fences", unfenced);
}

template <typename T>
std::string MixingRun<T>::plan_json() const {
  return json_object(
      {{"batch_tile", std::to_string(ml.batch_tile)}, {"degree_tiles", std::to_string(ml.degree_tiles)}});
}

template <typename T>
Digest MixingRun<T>::digest() const {
  Digest digest;
  digest.add(a);
  digest.add(b);
  digest.add(energy);
  digest.add(ct_a(), sizeof(Cpx<T>) * a.size());
  digest.add(rings_out(), sizeof(Cpx<T>) * static_cast<size_t>(S) * M * n * gl.plan.padded_maps);
  return digest;
}

template <typename T>
bool mixing_records(const CaseArguments& args, const MixCase& cs, std::mt19937& rng) {
  const MixingRun<T> run(cs, rng);
  return print_records(args, run.plan_json(), run.digest(), run.records());
}

int main(int argc, char** argv) {
  bool passed = true;
  for (int i = 1; i < argc; ++i) {
    CaseArguments args(argv[i]);
    std::mt19937 rng(args.seed());
    const bool single = args.either("precision", "float", "double");
    const MixCase cs = mix_case_of(args);
    args.done();
    passed &= single ? mixing_records<float>(args, cs, rng) : mixing_records<double>(args, cs, rng);
  }
  return passed ? 0 : 1;
}
