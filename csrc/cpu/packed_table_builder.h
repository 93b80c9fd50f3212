// Builds the packed lambda table (sphcnn/packed_table.h) on the host: the
// recurrence of sphcnn/recurrences.h in double for every (spin, |m|) pair and
// north ring, rounded once to T. Pairs are spread over `threads` threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "sphcnn/packed_table.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {

template <typename T>
void fill_packed_pair(int n, int ell_max, int spin, int spin_index, int am, T* table) {
  const PackedTable layout = packed_table(n, ell_max, sizeof(T));
  T* pair = table + layout.pair_offset(spin_index, am);
  const int64_t row = layout.row(am);
  std::fill(pair, pair + 2 * static_cast<int64_t>(layout.half) * row, T(0));
  for (int sg = 0; sg < 2; ++sg) {
    const int m = sg ? -am : am;
    const ColumnStart start = column_start(m, spin);
    if (start.l0 > ell_max) continue;
    std::vector<StepCoefficients> steps(ell_max - start.l0);
    for (int l = start.l0; l < ell_max; ++l) steps[l - start.l0] = step_coefficients(l, m, spin);
    for (int j = 0; j < layout.half; ++j) {
      const double theta = ring_theta(j, n);
      double lc, ls;
      half_angle_logs(theta, &lc, &ls);
      ColumnState st = column_begin(start, lc, ls);
      if (st.zero) continue;
      const double x = std::cos(theta);
      T* out = pair + layout.entry(am, sg, j, am);
      out[start.l0 - am] = static_cast<T>(column_value(st));
      for (int l = start.l0; l < ell_max; ++l) {
        const StepCoefficients& c = steps[l - start.l0];
        column_step(st, c.alpha, c.beta, c.gamma, x);
        out[l + 1 - am] = static_cast<T>(column_value(st));
      }
    }
  }
}

// table: layout.size(spins.size()) entries.
template <typename T>
void build_packed_table(int n, int ell_max, const std::vector<int>& spins, T* table, int threads) {
  const int L = ell_max + 1;
  const int64_t pairs = static_cast<int64_t>(spins.size()) * L;
  std::atomic<int64_t> next{0};
  auto work = [&]() {
    for (int64_t p = next++; p < pairs; p = next++) {
      // Large |m| first would leave the long columns (small |m|) for last: go from 0.
      const int spin_index = static_cast<int>(p % static_cast<int64_t>(spins.size()));
      const int am = static_cast<int>(p / static_cast<int64_t>(spins.size()));
      fill_packed_pair<T>(n, ell_max, spins[spin_index], spin_index, am, table);
    }
  };
  const int count = std::max(1, std::min<int>(threads, static_cast<int>(pairs)));
  std::vector<std::thread> pool;
  for (int t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace sphcnn
