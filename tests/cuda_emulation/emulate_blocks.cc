// CPU emulation of the CUDA Legendre-stage blocks (csrc/cuda/legendre_blocks.h):
// the very block functions the __global__ kernels run, with one std::thread per
// CUDA thread and std::barrier for __syncthreads, compared with direct float64
// sums over lambda from the shared recurrence (itself tested against the
// `spherical` package). Checks every mode (table, on the fly with the state in
// shared or global memory), both directions and both precisions, exact zeros
// below l0, and that every output element is written (outputs start as NaN).
// Built and run by tests/test_cuda_blocks_emulated.py; exit status 0 on success.
#include <barrier>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "legendre_blocks.h"

using namespace sphcnn;
using namespace sphcnn::cuda;

struct HostCtx {
  int t, x, y, z;
  std::barrier<>* bar;
  int tid() const { return t; }
  int bx() const { return x; }
  int by() const { return y; }
  int bz() const { return z; }
  void sync() const { bar->arrive_and_wait(); }
};

// A grid launch: kThreads persistent threads walk over the blocks together, with
// shared memory refilled with garbage before each block to catch reads of
// unwritten data. Block functions return uniformly, so the barrier stays balanced.
template <typename F>
void launch(int gx, int gy, int gz, size_t smem_bytes, F body) {
  std::vector<unsigned char> smem(smem_bytes + 64);
  std::barrier<> bar(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t]() {
      for (int z = 0; z < gz; ++z)
        for (int y = 0; y < gy; ++y)
          for (int x = 0; x < gx; ++x) {
            if (t == 0) std::memset(smem.data(), 0xff, smem.size());
            bar.arrive_and_wait();
            HostCtx ctx{t, x, y, z, &bar};
            body(ctx, smem.data());
            bar.arrive_and_wait();
          }
    });
  }
  for (auto& th : threads) th.join();
}

template <typename T>
std::vector<T> build_table(int n, int ell_max, const std::vector<int>& spins) {
  const int S = spins.size(), M = 2 * ell_max + 1, L = ell_max + 1;
  std::vector<T> table((size_t)S * M * L * (n / 2), T(12345));
  SpinGroup g{};
  g.offset = 0;
  g.count = S;
  for (int i = 0; i < S; ++i) g.value[i] = spins[i];
  launch(M, S, 1, kTableBlockSmem, [&](const HostCtx& ctx, unsigned char* smem) {
    table_block<T>(ctx, table.data(), n, ell_max, S, g, smem);
  });
  return table;
}

template <typename T>
double run_case(int n, int ell_max, std::vector<int> spins, int B, int C, bool table_mode, bool global_state,
                bool analysis, std::mt19937& rng) {
  const int S = spins.size(), M = 2 * ell_max + 1, L = ell_max + 1, half = n / 2;
  std::normal_distribution<double> nd;
  std::vector<double> w(n);
  for (auto& v : w) v = 0.5 + std::abs(nd(rng));
  std::vector<T> wt(n);
  for (int j = 0; j < n; ++j) wt[j] = (T)w[j];
  const size_t rings_count = (size_t)B * n * M * S * C, spec_count = (size_t)B * L * M * S * C;
  std::vector<Cpx<T>> in(analysis ? rings_count : spec_count);
  for (auto& v : in) { v.re = (T)nd(rng); v.im = (T)nd(rng); }
  std::vector<Cpx<T>> out(analysis ? spec_count : rings_count);
  for (auto& v : out) { v.re = T(NAN); v.im = T(NAN); }
  std::vector<T> table;
  if (table_mode) table = build_table<T>(n, ell_max, spins);
  const int64_t P = (int64_t)B * C;
  const int tiles = (P + kMapsPerBlock - 1) / kMapsPerBlock;
  std::vector<double> state_d;
  std::vector<int> state_i;
  StageArgs<T> args{};
  args.in = in.data();
  args.out = out.data();
  args.ring_scale = wt.data();
  args.table = table_mode ? table.data() : nullptr;
  args.n = n;
  args.ell_max = ell_max;
  args.total_spins = S;
  args.channels = C;
  args.maps = P;
  // two spin groups to test offsets
  for (int off = 0; off < S; off += 2) {
    const int cnt = std::min(2, S - off);
    args.spins.offset = off;
    args.spins.count = cnt;
    for (int i = 0; i < cnt; ++i) args.spins.value[i] = spins[off + i];
    if (analysis) {
      if (global_state && !table_mode) {
        size_t blocks = (size_t)tiles * L * cnt;
        state_d.assign(blocks * 2 * n, 777.0);
        state_i.assign(blocks * n, 7);
        args.state_d = state_d.data();
        args.state_i = state_i.data();
      } else {
        args.state_d = nullptr;
        args.state_i = nullptr;
      }
      auto lay = analysis_layout<T>(n, !table_mode, args.state_d == nullptr);
      launch(tiles, L, cnt, lay.total, [&](const HostCtx& ctx, unsigned char* smem) {
        if (table_mode) analysis_block<T, true>(ctx, args, smem);
        else analysis_block<T, false>(ctx, args, smem);
      });
    } else {
      auto lay = synthesis_layout<T>(!table_mode);
      launch(tiles, L, cnt, lay.total, [&](const HostCtx& ctx, unsigned char* smem) {
        if (table_mode) synthesis_block<T, true>(ctx, args, smem);
        else synthesis_block<T, false>(ctx, args, smem);
      });
    }
  }
  // reference
  std::vector<double> lam((size_t)S * n * M * L);
  for (int s = 0; s < S; ++s)
    for (int j = 0; j < n; ++j)
      if (std::abs(spins[s]) <= ell_max) spin_legendre_columns(ell_max, spins[s], ring_theta(j, n), lam.data() + ((size_t)s * n + j) * M * L);
      else std::fill(lam.begin() + ((size_t)s * n + j) * M * L, lam.begin() + ((size_t)s * n + j + 1) * M * L, 0.0);
  double maxref = 0, maxerr = 0;
  int nonfinite = 0;
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < S; ++s)
      for (int mi = 0; mi < M; ++mi)
        for (int c = 0; c < C; ++c) {
          if (analysis) {
            for (int l = 0; l < L; ++l) {
              std::complex<double> acc = 0;
              for (int j = 0; j < n; ++j) {
                auto f = in[((((size_t)b * n + j) * M + mi) * S + s) * C + c];
                acc += w[j] * lam[(((size_t)s * n + j) * M + mi) * L + l] * std::complex<double>(f.re, f.im);
              }
              auto o = out[((((size_t)b * L + l) * M + mi) * S + s) * C + c];
              if (!std::isfinite((double)o.re) || !std::isfinite((double)o.im)) { nonfinite++; continue; }
              const int l0 = std::max(std::abs(mi - ell_max), std::abs(spins[s]));
              if (l < l0 && (o.re != 0 || o.im != 0)) { printf("nonzero below l0!\n"); nonfinite++; }
              maxref = std::max(maxref, std::abs(acc));
              maxerr = std::max(maxerr, std::abs(acc - std::complex<double>(o.re, o.im)));
            }
          } else {
            for (int j = 0; j < n; ++j) {
              std::complex<double> acc = 0;
              for (int l = 0; l < L; ++l) {
                auto f = in[((((size_t)b * L + l) * M + mi) * S + s) * C + c];
                acc += lam[(((size_t)s * n + j) * M + mi) * L + l] * std::complex<double>(f.re, f.im);
              }
              acc *= w[j];
              auto o = out[((((size_t)b * n + j) * M + mi) * S + s) * C + c];
              if (!std::isfinite((double)o.re) || !std::isfinite((double)o.im)) { nonfinite++; continue; }
              maxref = std::max(maxref, std::abs(acc));
              maxerr = std::max(maxerr, std::abs(acc - std::complex<double>(o.re, o.im)));
            }
          }
        }
  double rel = maxerr / (maxref > 0 ? maxref : 1.0);
  printf("%-9s %-6s %s%s n=%d ell_max=%d S=%d B=%d C=%d: rel err %.3e (max ref %.3e) nonfinite %d\n",
         analysis ? "analysis" : "synthesis", sizeof(T) == 4 ? "float" : "double", table_mode ? "table" : "otf",
         global_state ? "+gstate" : "", n, ell_max, S, B, C, rel, maxref, nonfinite);
  return nonfinite ? 1.0 : rel;
}

int main(int argc, char** argv) {
  std::mt19937 rng(1);
  if (argc > 1) {  // large degrees: the scaled (underflow) regime of the recurrence
    double w1 = 0, w2 = 0;
    const int n = std::atoi(argv[1]), lmax = n / 2 - 1;
    for (int an = 0; an < 2; ++an)
      for (int tm = 0; tm < 2; ++tm) {
        w1 = std::max(w1, run_case<double>(n, lmax, {2, -40}, 1, 1, tm, an && !tm, an, rng));
        w2 = std::max(w2, run_case<float>(n, lmax, {0}, 1, 2, tm, false, an, rng));
      }
    printf("worst double %.3e float %.3e\n", w1, w2);
    return (w1 < 1e-12 && w2 < 1e-5) ? 0 : 1;
  }
  double worst_f = 0, worst_d = 0;
  struct Case { int n, ell_max; std::vector<int> spins; int B, C; };
  std::vector<Case> cases = {
      {4, 1, {0}, 1, 1},
      {8, 3, {0, 1}, 2, 3},
      {16, 7, {-2, 1, 3}, 1, 33},
      {16, 5, {0, 7, -1}, 2, 2},    // |s| > ell_max, pooled
      {70, 20, {2, -1}, 1, 1},     // pooled, half not multiple of tiles, lots of chunks? no
      {140, 69, {0, -3}, 1, 2},    // more than one chunk
  };
  for (auto& cs : cases)
    for (int an = 0; an < 2; ++an)
      for (int tm = 0; tm < 2; ++tm)
        for (int gs = 0; gs < (an && !tm ? 2 : 1); ++gs) {
          worst_f = std::max(worst_f, run_case<float>(cs.n, cs.ell_max, cs.spins, cs.B, cs.C, tm, gs, an, rng));
          worst_d = std::max(worst_d, run_case<double>(cs.n, cs.ell_max, cs.spins, cs.B, cs.C, tm, gs, an, rng));
        }
  printf("worst float %.3e double %.3e\n", worst_f, worst_d);
  return (worst_f < 1e-5 && worst_d < 1e-12) ? 0 : 1;
}
