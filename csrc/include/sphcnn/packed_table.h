// The packed lambda table of the FFI kernels: lambda_{l,m,s}(theta_j) on the
// north rings only, for both signs of every order |m|, degrees l >= |m|.
//
// With L = ell_max + 1, h = n / 2 north rings (theta_j = pi j / (n - 1), j < h)
// and Q = 16 / sizeof(T) entries per 16 bytes, the entry
//   lambda_{l, sg ? -am : +am, s_i}(theta_j),  am = |m| < L, sg in {0, 1}, am <= l < L,
// sits at
//   pair_offset(i, am) + (sg h + j) row(am) + (l - am),
//   row(am)            = round_up(L - am, Q)      (each row starts 16-byte aligned),
//   pair_offset(i, am) = i spin_stride + 2 h sum_{a < am} row(a),
//   spin_stride        = 2 h sum_{a < L} row(a).
// Entries with l < max(|m|, |s|) and the padding of each row are zero. The south
// rings follow from lambda_{l,m,s}(pi - theta) = (-1)^(l+s) lambda_{l,-m,s}(theta),
// so the table is half the size of one over all rings; at n = 256 with two spins
// it takes 17 MB in float32.
#pragma once

#include <cstdint>

#include "sphcnn/hd.h"

namespace sphcnn {

// Entries per 16 bytes for an entry of `entry_bytes` (4 or 8).
SPHCNN_HD int table_quantum(int entry_bytes) { return 16 / entry_bytes; }

SPHCNN_HD int64_t table_row(int L, int am, int q) { return (static_cast<int64_t>(L - am) + q - 1) / q * q; }

// sum_{k=1}^{N} round_up(k, q): with N = a q + r, q^2 a (a + 1) / 2 + r q (a + 1).
SPHCNN_HD int64_t rounded_sum(int64_t N, int q) {
  const int64_t a = N / q;
  const int64_t r = N - a * q;
  return static_cast<int64_t>(q) * q * a * (a + 1) / 2 + r * q * (a + 1);
}

// sum_{a < am} row(a) = sum over k = L - am + 1 .. L of round_up(k, q).
SPHCNN_HD int64_t rows_before(int L, int am, int q) { return rounded_sum(L, q) - rounded_sum(L - am, q); }

struct PackedTable {
  int L;      // ell_max + 1
  int half;   // north rings n / 2
  int q;      // entries per 16 bytes
  SPHCNN_HD int64_t spin_stride() const { return 2 * static_cast<int64_t>(half) * rows_before(L, L, q); }
  SPHCNN_HD int64_t size(int spins) const { return spins * spin_stride(); }
  SPHCNN_HD int64_t row(int am) const { return table_row(L, am, q); }
  // First entry of the (spin index, |m|) pair: sign 0 rows, then sign 1 rows.
  SPHCNN_HD int64_t pair_offset(int spin_index, int am) const {
    return spin_index * spin_stride() + 2 * static_cast<int64_t>(half) * rows_before(L, am, q);
  }
  // Entry (sg, j, l) of a pair, l >= am.
  SPHCNN_HD int64_t entry(int am, int sg, int j, int l) const {
    return (static_cast<int64_t>(sg) * half + j) * row(am) + (l - am);
  }
};

SPHCNN_HD PackedTable packed_table(int n, int ell_max, int entry_bytes) {
  PackedTable t;
  t.L = ell_max + 1;
  t.half = n / 2;
  t.q = table_quantum(entry_bytes);
  return t;
}

}  // namespace sphcnn
