// The lambda recurrence of sphcnn/recurrences.h on blocks of kBlockRings north
// rings at once. For one column (s, m) the step coefficients do not depend on the
// ring, so each lane of a vector carries one ring: the step is three vector
// operations on kLanes rings instead of three scalar ones on one. Vectors are
// GCC/Clang vector extensions, so the code follows the -march of the build
// (AVX-512, AVX2 or plain SSE2) without ISA-specific intrinsics.
//
// Per lane the values are those of column_begin / column_step / column_value,
// except that (a) a lane whose value exceeds 2^kScaleThresholdBits is rescaled
// at the next check (every kCheck rows) instead of at once: the factor 2^-kScaleBits
// is exact, the value stays far inside the double range in between, and only
// values below ~2^-250 are returned as zero a few rows longer; (b) the rows of
// a block before it turns live (kLiveBits) are zero.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "sphcnn/contract.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {

constexpr int kLanes = 8;                        // doubles per vector
constexpr int kVectors = 4;                      // vectors per block
constexpr int kBlockRings = kVectors * kLanes;   // rings per block
// Rows between two checks for lanes to rescale or for the block to turn live.
constexpr int kCheck = 8;
// A block turns live at the first check where a lane without a scale exceeds
// 2^-kLiveBits; its rows before are dropped as zero (near the poles at large |m|
// lambda stays far below that for many degrees). Over kCheck rows a column grows
// by at most 2^35 (measured at n = 2048, every spin |s| <= 2), so what is dropped
// is below 2^-85 (1e-25), far under the rounding of float64 results.
constexpr int kLiveBits = 120;

typedef double Lanes __attribute__((vector_size(kLanes * sizeof(double))));
typedef long LaneMask __attribute__((vector_size(kLanes * sizeof(long))));
typedef float FloatLanes __attribute__((vector_size(kLanes * sizeof(float))));

// Vectors go by reference: a vector wider than the -march allows changes the
// ABI of a by-value argument or result (GCC's -Wpsabi).
inline bool any_lane(const LaneMask& m) {
  long r = 0;
  for (int i = 0; i < kLanes; ++i) r |= m[i];
  return r != 0;
}

// Lanes as T values (float: rounded once from double).
inline void store_lanes(double* dst, const Lanes& v) { std::memcpy(dst, &v, sizeof v); }
inline void store_lanes(float* dst, const Lanes& v) {
  const FloatLanes f = __builtin_convertvector(v, FloatLanes);
  std::memcpy(dst, &f, sizeof f);
}

// The rings whose lambda columns the recurrence generates ("slots"): on a grid
// symmetric about the equator, the north ring of each pair j, nlat - 1 - j
// (theta_j + theta_{nlat-1-j} = pi), whose south partner follows from the
// parity of lambda, and the equator ring of an odd grid; on any other grid,
// every ring. Slot i is ring north[i], partnered with ring south[i] (-1: none).
// Per slot: cos(theta) and log2 cos(theta / 2), log2 sin(theta / 2), padded to
// whole blocks with lanes whose columns vanish (logs -inf).
struct RingTrig {
  bool mirrored = false;  // sphcnn/contract.h mirrored_rings
  int blocks = 0;
  int slots = 0;
  std::vector<int> north, south;
  std::vector<double> x, log_cos, log_sin;
};

inline std::shared_ptr<const RingTrig> make_ring_trig(const std::vector<double>& theta) {
  const int nlat = static_cast<int>(theta.size());
  const bool mirrored = mirrored_rings(theta);
  auto rt = std::make_shared<RingTrig>();
  rt->mirrored = mirrored;
  for (int j = 0; j < (mirrored ? (nlat + 1) / 2 : nlat); ++j) {
    rt->north.push_back(j);
    rt->south.push_back(mirrored && nlat - 1 - j != j ? nlat - 1 - j : -1);
  }
  rt->slots = static_cast<int>(rt->north.size());
  rt->blocks = (rt->slots + kBlockRings - 1) / kBlockRings;
  const size_t size = static_cast<size_t>(rt->blocks) * kBlockRings;
  rt->x.assign(size, 0.0);
  rt->log_cos.assign(size, -INFINITY);
  rt->log_sin.assign(size, -INFINITY);
  for (int i = 0; i < rt->slots; ++i) {
    const double t = theta[rt->north[i]];
    rt->x[i] = std::cos(t);
    half_angle_logs(t, &rt->log_cos[i], &rt->log_sin[i]);
  }
  return rt;
}

// Cached per ring colatitudes (O(nlat) transcendentals, shared by every (s, m) and call).
inline std::shared_ptr<const RingTrig> ring_trig(const std::vector<double>& theta) {
  static std::mutex mu;
  static std::map<std::vector<double>, std::shared_ptr<const RingTrig>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(theta);
  if (it != cache.end()) return it->second;
  auto rt = make_ring_trig(theta);
  cache.emplace(theta, rt);
  return rt;
}

// The rings of the n x n grid with both poles, theta_j = pi j / (n - 1).
inline std::shared_ptr<const RingTrig> ring_trig(int n) {
  std::vector<double> theta(n);
  for (int j = 0; j < n; ++j) theta[j] = ring_theta(j, n);
  return ring_trig(theta);
}

// Step coefficients of the kCols columns of a pair: column c goes from row i to
// row i + 1 by e <- (alpha[i] x + beta[c][i]) e + gamma[i] e_prev.
struct ColumnSteps {
  const double* alpha;
  const double* beta[2];
  const double* gamma;
};

// The kCols columns (lambda_{l,+m,s}, and lambda_{l,-m,s} when kCols = 2) of one
// ring block, row i = degree l0 + i, i < count.
template <int kCols>
class BlockRecurrence {
 public:
  BlockRecurrence(const ColumnStart* starts, const ColumnSteps& steps, const RingTrig& rings, int block)
      : steps_(steps) {
    const int base = block * kBlockRings;
    std::memcpy(x_, rings.x.data() + base, sizeof x_);
    for (int c = 0; c < kCols; ++c) {
      for (int h = 0; h < kVectors; ++h) {
        for (int lane = 0; lane < kLanes; ++lane) {
          const int j = base + h * kLanes + lane;
          const ColumnState st = column_begin(starts[c], rings.log_cos[j], rings.log_sin[j]);
          state_.cur[c][h][lane] = st.zero ? 0.0 : st.cur;
          state_.scale[c][h][lane] = st.zero ? 0.0 : static_cast<double>(st.scale);
        }
        state_.prev[c][h] = Lanes{};
      }
    }
    rescaled(state_);
    LaneMask nonzero = LaneMask{};
    for (int c = 0; c < kCols; ++c) {
      for (int h = 0; h < kVectors; ++h) nonzero |= state_.cur[c][h] != 0.0;
    }
    dead_ = !any_lane(nonzero);
  }

  // Writes rows [i0, i1) (i1 <= count; continuing from the previous call, i0 = 0
  // first) to out[c][(i - i0) kBlockRings + ring], skipping the rows before the
  // block turns live. Returns the offset i - i0 of the first row written (i1 - i0
  // when none).
  template <typename T>
  int run(int i0, int i1, T* const* out) {
    if (dead_) return i1 - i0;
    State st = state_;
    int row = row_;  // the row st holds: i0 - 1, or 0 before the first step
    int i = i0;
    int first = 0;
    if (!live_) {
      // Lanes lose their scale only at a check, so the block turns live there.
      for (;;) {
        if (row < i) {
          step(st, row++);
          if (row % kCheck == 0) check(st);
        }
        if (live_) break;
        if (++i == i1) {
          state_ = st;
          row_ = row;
          return i1 - i0;
        }
      }
      first = i - i0;
    }
    for (; i < i1 && scaled_; ++i) {
      if (row < i) {
        step(st, row++);
        if (row % kCheck == 0) check(st);
      }
      const int64_t offset = static_cast<int64_t>(i - i0) * kBlockRings;
      for (int c = 0; c < kCols; ++c) {
        for (int h = 0; h < kVectors; ++h) {
          const Lanes value = st.keep[c][h] ? st.cur[c][h] : Lanes{};
          store_lanes(out[c] + offset + h * kLanes, value);
        }
      }
    }
    T* o[kCols];
    for (int c = 0; c < kCols; ++c) o[c] = out[c];
    for (; i < i1; ++i) {
      if (row < i) step(st, row++);
      const int64_t offset = static_cast<int64_t>(i - i0) * kBlockRings;
#pragma GCC unroll 2
      for (int c = 0; c < kCols; ++c) {
#pragma GCC unroll 4
        for (int h = 0; h < kVectors; ++h) store_lanes(o[c] + offset + h * kLanes, st.cur[c][h]);
      }
    }
    state_ = st;
    row_ = row;
    return first;
  }

 private:
  struct State {
    Lanes prev[kCols][kVectors], cur[kCols][kVectors], scale[kCols][kVectors];
    LaneMask keep[kCols][kVectors];  // lanes without a scale
  };

  // Row i to row i + 1.
  void step(State& st, int i) const {
    const double a = steps_.alpha[i];
    const double g = steps_.gamma[i];
#pragma GCC unroll 2
    for (int c = 0; c < kCols; ++c) {
      const double b = steps_.beta[c][i];
#pragma GCC unroll 4
      for (int h = 0; h < kVectors; ++h) {
        const Lanes next = (a * x_[h] + b) * st.cur[c][h] + g * st.prev[c][h];
        st.prev[c][h] = st.cur[c][h];
        st.cur[c][h] = next;
      }
    }
  }

  // Updates keep and scaled_; returns whether a lane without a scale is nonzero.
  bool rescaled(State& st) {
    const double tiny = std::exp2(-static_cast<double>(kLiveBits));
    LaneMask scaled = LaneMask{}, live = LaneMask{};
    for (int c = 0; c < kCols; ++c) {
      for (int h = 0; h < kVectors; ++h) {
        st.keep[c][h] = st.scale[c][h] == 0.0;
        scaled |= ~st.keep[c][h];
        live |= st.keep[c][h] & ((st.cur[c][h] > tiny) | (st.cur[c][h] < -tiny));
      }
    }
    scaled_ = any_lane(scaled);
    live_ = live_ || any_lane(live);
    return live_;
  }

  // Rescales the lanes whose value left the threshold (between two checks a
  // value grows by far less than the 2^(1023 - kScaleThresholdBits) left to
  // the double range). Returns whether the block is live.
  bool check(State& st) {
    const double threshold = std::exp2(static_cast<double>(kScaleThresholdBits));
    LaneMask big[kCols][kVectors];
    LaneMask any = LaneMask{};
    for (int c = 0; c < kCols; ++c) {
      for (int h = 0; h < kVectors; ++h) {
        const Lanes v = st.cur[c][h];
        big[c][h] = (v > threshold) | (v < -threshold);
        any |= big[c][h];
      }
    }
    if (!any_lane(any)) return live_ || rescaled(st);
    const double down = std::exp2(-static_cast<double>(kScaleBits));
    for (int c = 0; c < kCols; ++c) {
      for (int h = 0; h < kVectors; ++h) {
        st.prev[c][h] = big[c][h] ? st.prev[c][h] * down : st.prev[c][h];
        st.cur[c][h] = big[c][h] ? st.cur[c][h] * down : st.cur[c][h];
        st.scale[c][h] = big[c][h] ? st.scale[c][h] - 1.0 : st.scale[c][h];
      }
    }
    return rescaled(st);
  }

  ColumnSteps steps_;
  Lanes x_[kVectors];
  State state_;
  bool scaled_ = false;  // some lane still carries a scale (its value is below the double range)
  bool live_ = false;    // rows are written from here on (kLiveBits)
  bool dead_ = false;    // every lane vanishes identically (poles, padding)
  int row_ = 0;          // the row state_ holds
};

}  // namespace sphcnn
