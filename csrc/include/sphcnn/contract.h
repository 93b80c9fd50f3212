// The one contract of the sphcnn_analysis and sphcnn_synthesis FFI targets,
// shared by the CPU (csrc/cpu) and CUDA (csrc/cuda) handlers.
//
//   operands   0 input:  analysis: maps x (B..., n, n, S, C), complex64/complex128, or
//                        float32/float64 when every spin is 0 (promoted to complex);
//                        synthesis: coefficients a (B..., L, 2L-1, S, C), or
//                        (L, B..., 2L-1, S, C) when degree_major;
//              1 ring_scale (n,) in the real dtype of the data;
//              2 table: the packed lambda table (sphcnn/packed_table.h) when
//                lambda_source = kTable, else empty;
//   results    0 output: coefficients (analysis) or maps (synthesis), complex;
//              1 scratch: uint8, at least the bytes the platform's
//                scratch_bytes() gives (work space owned by XLA);
//   attributes spins (int64[S]), sign (Sign), degree_major (bool),
//              lambda_source (LambdaSource).
//
// With w = ring_scale and sigma = sign, L = ell_max + 1:
//   analysis:  a_lm = sum_j w_j lambda_{l,m,s}(theta_j) sum_k x_jk e^{sigma i m phi_k},
//              exactly 0 for l < max(|m|, |s|);
//   synthesis: x_jk = w_j sum_m e^{sigma i m phi_k} sum_{l >= max(|m|,|s|)} lambda_{l,m,s}(theta_j) a_lm.
//
// The grid targets sphcnn_grid_analysis and sphcnn_grid_synthesis (CPU, CUDA) take
// the same operands, results and attributes on any grid of nlat rings of nlon
// points, maps (B..., nlat, nlon, S, C) with phi_k = 2 pi k / nlon, ring_scale
// (nlat,), no table (lambda_source = on the fly), nlon >= 2L - 1, and one more
// operand after the table, ring_theta (2, nlat) in the real dtype of the data:
// the colatitude of ring j, in [0, pi], is theta_j = ring_theta[0, j] +
// ring_theta[1, j] summed in double precision (a float64 value split into two
// of the data's precision: float32 data carries its rings' colatitudes to
// ~4e-15 without a float64 operand, which JAX narrows when 64-bit types are
// off; check_ring_theta, ring_colatitude). One more attribute, mirrored
// (bool): whether rings j and nlat - 1 - j are mirror images for every
// j < nlat / 2, theta_j + theta_{nlat-1-j} = pi within kMirrorTolerance and
// theta_j < pi / 2 (mirrored_rings; vacuously true for nlat = 1). Mirror rings
// share one lambda column, the north/south pairing of the n x n grid, with
// the equator ring of an odd nlat alone: the CPU finds them from ring_theta
// and refuses a call whose attribute says otherwise (InvalidArgument); the
// CUDA kernels, which cannot read ring_theta on the host in a capture-safe
// execute path, pair by the attribute alone (a wrong true gives wrong
// results) and without it take every ring alone, at twice the recurrence of
// K2 per ring and twice the synthesis's products (cuda/legendre_gemm.h).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sphcnn/packed_table.h"
#include "sphcnn/recurrences.h"
#include "sphcnn/shape_string.h"
#include "xla/ffi/api/ffi.h"

namespace sphcnn {

enum class Sign : int32_t { kMinus = -1, kPlus = 1 };
enum class LambdaSource : int32_t { kTable = 0, kOnTheFly = 1 };

struct Geometry {
  int64_t batch;      // B: product of the leading axes
  int n;              // grid size of the n x n grid (the grid targets: nlat)
  int nlat;           // rings (n on the n x n grid)
  int nlon;           // points per ring (n on the n x n grid)
  int ell_max;        // L - 1
  int spins;          // S
  int64_t channels;   // C
  bool degree_major;  // spectral layout (L, B, M, S, C) instead of (B, L, M, S, C)
  bool is_double;     // complex128 data (else complex64)
  bool real_input;    // analysis of real maps
  int L() const { return ell_max + 1; }
  int M() const { return 2 * ell_max + 1; }
};

// body(T()) with T the real type of the data: double for complex128, float for
// complex64 (the handlers' dispatch on the dtype).
template <typename Body>
auto by_precision(bool is_double, Body&& body) {
  return is_double ? body(0.0) : body(0.0f);
}

// The geometry of a call from its sizes (for the modules' scratch_bytes).
inline Geometry geometry_of(int n, int ell_max, int spins, int64_t batch, int64_t channels, bool is_double) {
  Geometry g{};
  g.batch = batch;
  g.n = n;
  g.nlat = n;
  g.nlon = n;
  g.ell_max = ell_max;
  g.spins = spins;
  g.channels = channels;
  g.is_double = is_double;
  return g;
}

// The same for a grid target's nlat x nlon grid (for the modules' grid_scratch_bytes).
inline Geometry grid_geometry_of(int nlat, int nlon, int ell_max, int spins, int64_t batch, int64_t channels,
                                 bool is_double) {
  Geometry g = geometry_of(nlat, ell_max, spins, batch, channels, is_double);
  g.nlon = nlon;
  return g;
}

namespace contract_detail {

inline xla::ffi::Error invalid(const char* target, const std::string& what) {
  return xla::ffi::Error::InvalidArgument(std::string(target) + ": " + what);
}

// `buffer` (named `name`) has the shape and dtype of `like` (named `like_name`).
inline xla::ffi::Error same_shape(const char* target, const char* name, const xla::ffi::AnyBuffer& buffer,
                                  const char* like_name, const xla::ffi::AnyBuffer& like) {
  const auto want = like.dimensions();
  const auto got = buffer.dimensions();
  if (buffer.element_type() != like.element_type() || got.size() != want.size() ||
      !std::equal(got.begin(), got.end(), want.begin())) {
    return invalid(target, std::string(name) + " " + shape_string(got) + " must have the shape and dtype of " +
                               like_name + " " + shape_string(want));
  }
  return xla::ffi::Error::Success();
}

// `buffer` (named `name`) holds one value of `dtype` per (spin, channel).
inline xla::ffi::Error per_lane(const char* target, const char* name, const xla::ffi::AnyBuffer& buffer,
                                xla::ffi::DataType dtype, size_t lanes) {
  if (buffer.element_type() != dtype || buffer.element_count() != lanes) {
    return invalid(target, std::string(name) + " must hold S * C = " + std::to_string(lanes) +
                               " values of the coefficients' complex dtype, got " +
                               std::to_string(buffer.element_count()));
  }
  return xla::ffi::Error::Success();
}

}  // namespace contract_detail

// Checks every operand, result and attribute against the contract; the
// geometry of the call on success. `scratch_needed` is the platform's
// scratch_bytes for the geometry (checked against the scratch result).
// pool_factor: the spatial operand's grid over the transform's (2 for the
// activated analysis with pooling, which reads maps on the 2n grid).
// spectral_widths: the spectral operand's last two axes when they are not the
// spatial operand's (S, C) (sphcnn_mixing_gradient reads (S_out, C_out)
// coefficients); {-1, -1}: the same as the spatial operand's.
template <typename ScratchBytes>
xla::ffi::ErrorOr<Geometry> contract_geometry(const char* target, bool analysis, const xla::ffi::AnyBuffer& in,
                                              const xla::ffi::AnyBuffer& scale, const xla::ffi::AnyBuffer& table,
                                              const xla::ffi::AnyBuffer& out, const xla::ffi::AnyBuffer& scratch,
                                              xla::ffi::Span<const int64_t> spins, Sign sign, bool degree_major,
                                              LambdaSource source, ScratchBytes scratch_needed,
                                              int pool_factor = 1,
                                              std::array<int64_t, 2> spectral_widths = {-1, -1},
                                              bool ring_grid = false) {
  namespace ffi = xla::ffi;
  using contract_detail::invalid;
  const auto spatial = analysis ? in.dimensions() : out.dimensions();
  const auto spectral = analysis ? out.dimensions() : in.dimensions();
  if (spatial.size() < 4 || spatial.size() != spectral.size()) {
    return ffi::Unexpected(invalid(target, "spatial shape " + shape_string(spatial) + " and spectral shape " +
                                               shape_string(spectral) + " must have the same rank >= 4"));
  }
  if (sign != Sign::kMinus && sign != Sign::kPlus) {
    return ffi::Unexpected(invalid(target, "sign must be -1 or +1, got " + std::to_string(static_cast<int>(sign))));
  }
  const size_t r = spatial.size();
  const size_t degree_axis = degree_major ? 0 : r - 4;
  const size_t batch_start = degree_major ? 1 : 0;
  Geometry g;
  g.batch = 1;
  for (size_t i = 0; i + 4 < r; ++i) {
    if (spatial[i] != spectral[batch_start + i]) {
      return ffi::Unexpected(
          invalid(target, "batch axes of " + shape_string(spatial) + " and " + shape_string(spectral) + " differ"));
    }
    g.batch *= spatial[i];
  }
  const int64_t L = spectral[degree_axis];
  const bool lanes_ok = spectral[r - 3] == 2 * L - 1 &&
                        spectral[r - 2] == (spectral_widths[0] < 0 ? spatial[r - 2] : spectral_widths[0]) &&
                        spatial[r - 2] == static_cast<int64_t>(spins.size()) &&
                        spectral[r - 1] == (spectral_widths[1] < 0 ? spatial[r - 1] : spectral_widths[1]);
  if (ring_grid) {
    const int64_t nlat = spatial[r - 4], nlon = spatial[r - 3];
    const int64_t limit = int64_t{1} << 24;
    if (!(lanes_ok && L >= 1 && nlat >= 1 && nlat <= limit && nlon >= 2 * L - 1 && nlon <= limit)) {
      return ffi::Unexpected(invalid(
          target, "inconsistent shapes: spatial " + shape_string(spatial) + ", spectral " + shape_string(spectral) +
                      ", " + std::to_string(spins.size()) +
                      " spins; expected (..., nlat, nlon, S, C) and (..., L, 2L-1, S, C) (or (L, ..., 2L-1, S, C) "
                      "degree-major) with nlon >= 2L - 1 and S the number of spins"));
    }
    g.nlat = static_cast<int>(nlat);
    g.nlon = static_cast<int>(nlon);
  } else {
    const int64_t n = spatial[r - 4] / pool_factor;
    const bool ok = lanes_ok && spatial[r - 4] == pool_factor * n && spatial[r - 3] == spatial[r - 4] && n >= 4 &&
                    n % 2 == 0 && n <= (int64_t{1} << 24) && L >= 1 && L <= n / 2;
    if (!ok) {
      return ffi::Unexpected(invalid(
          target, "inconsistent shapes: spatial " + shape_string(spatial) + ", spectral " + shape_string(spectral) +
                      ", " + std::to_string(spins.size()) +
                      " spins; expected (..., p n, p n, S, C) and (..., L, 2L-1, S, C) (or (L, ..., 2L-1, S, C) "
                      "degree-major) with n even >= 4, L <= n/2, S the number of spins and p = " +
                      std::to_string(pool_factor) + " the pooling factor"));
    }
    g.nlat = static_cast<int>(n);
    g.nlon = static_cast<int>(n);
  }
  g.n = g.nlat;
  g.ell_max = static_cast<int>(L) - 1;
  g.spins = static_cast<int>(spins.size());
  g.channels = spatial[r - 1];
  g.degree_major = degree_major;

  const ffi::DataType out_type = out.element_type();
  if (out_type != ffi::C64 && out_type != ffi::C128) {
    return ffi::Unexpected(invalid(target, "the output must be complex64 or complex128"));
  }
  g.is_double = out_type == ffi::C128;
  const ffi::DataType real = g.is_double ? ffi::F64 : ffi::F32;
  const ffi::DataType in_type = in.element_type();
  g.real_input = analysis && in_type == real;
  if (in_type != out_type && !g.real_input) {
    return ffi::Unexpected(invalid(target, "input and output must have the same precision; the input must be "
                                           "complex (or real maps for analysis)"));
  }
  if (g.real_input) {
    for (int64_t s : spins) {
      if (s != 0) return ffi::Unexpected(invalid(target, "real maps need every spin to be 0"));
    }
  }
  if (scale.element_type() != real || scale.element_count() != static_cast<size_t>(g.nlat)) {
    return ffi::Unexpected(invalid(target, "ring_scale must be a real vector of nlat = " + std::to_string(g.nlat) +
                                               " entries (one per ring) in the data's precision"));
  }
  if (ring_grid && source != LambdaSource::kOnTheFly) {
    return ffi::Unexpected(invalid(target, "lambda_source must be 1 (on the fly): the grid targets have no table"));
  }
  const PackedTable layout = packed_table(g.n, g.ell_max, g.is_double ? 8 : 4);
  const size_t table_entries = source == LambdaSource::kTable ? static_cast<size_t>(layout.size(g.spins)) : 0;
  if (source != LambdaSource::kTable && source != LambdaSource::kOnTheFly) {
    return ffi::Unexpected(invalid(target, "lambda_source must be 0 (table) or 1 (on the fly)"));
  }
  if (table.element_count() != table_entries || (table_entries > 0 && table.element_type() != real)) {
    return ffi::Unexpected(invalid(
        target, "the lambda table must hold " + std::to_string(table_entries) + " entries in the data's real "
                    "precision (the packed table of the plan for lambda_source = table, none on the fly), got " +
                    std::to_string(table.element_count())));
  }
  const size_t needed = scratch_needed(g, source);
  if (scratch.size_bytes() < needed) {
    return ffi::Unexpected(invalid(target, "scratch holds " + std::to_string(scratch.size_bytes()) +
                                               " bytes, the call needs " + std::to_string(needed)));
  }
  return g;
}

// The ring colatitudes of a grid target: (2, nlat) in the real dtype of the
// data, each theta_j in [0, pi]. `values`: the operand in host memory, where
// the platform has it (the CPU), else null: only its type and size are checked.
inline xla::ffi::Error check_ring_theta(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& theta,
                                        const void* values) {
  const double pi = 3.14159265358979323846;
  const xla::ffi::DataType real = g.is_double ? xla::ffi::F64 : xla::ffi::F32;
  bool ok = theta.element_type() == real && theta.element_count() == 2 * static_cast<size_t>(g.nlat);
  const double slack = 1e-12;  // the two parts of a pole's colatitude may sum to an ulp past it
  for (int j = 0; ok && values != nullptr && j < g.nlat; ++j) {
    const double t = g.is_double ? ring_colatitude_sum(static_cast<const double*>(values), g.nlat, j)
                                 : ring_colatitude_sum(static_cast<const float*>(values), g.nlat, j);
    ok = t >= -slack && t <= pi + slack;
  }
  if (!ok) {
    return contract_detail::invalid(target, "ring_theta must be (2, nlat) = (2, " + std::to_string(g.nlat) +
                                                ") in the data's real precision, the colatitude in [0, pi] of ring "
                                                "j being the sum of column j; got " +
                                                std::to_string(theta.element_count()) + " values");
  }
  return xla::ffi::Error::Success();
}

// Rings whose colatitudes sum to pi within this are mirror images.
constexpr double kMirrorTolerance = 1e-13;

// Whether the rings at the colatitudes theta (nlat,), north to south, are
// mirrored: rings j and nlat - 1 - j mirror images for every j < nlat / 2, the
// north one above the equator (the grid targets' attribute mirrored).
inline bool mirrored_rings(const std::vector<double>& theta) {
  const double pi = 3.14159265358979323846;
  const size_t nlat = theta.size();
  for (size_t j = 0; j < nlat / 2; ++j) {
    if (!(std::abs(theta[j] + theta[nlat - 1 - j] - pi) <= kMirrorTolerance && theta[j] < 0.5 * pi)) return false;
  }
  return true;
}

// The activated analysis (target sphcnn_activated_analysis): the analysis of
// the contract above with the prologue of sphcnn/activation.h. Two more
// operands come first after the maps: bias (S, C) and taps (n, 4) (empty
// without pooling), both in the data's real dtype; the maps are complex, on the
// 2n grid when pooling; attributes leaky_spin (int64, -1 for none), pool (bool),
// epsilon and slope (float64). The geometry is the transform's (grid n).
inline xla::ffi::Error check_activation(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& bias,
                                        const xla::ffi::AnyBuffer& taps, int64_t leaky_spin, bool pool) {
  namespace ffi = xla::ffi;
  using contract_detail::invalid;
  const ffi::DataType real = g.is_double ? ffi::F64 : ffi::F32;
  if (g.real_input) return invalid(target, "the maps must be complex");
  const size_t lanes = static_cast<size_t>(g.spins) * g.channels;
  if (bias.element_type() != real || bias.element_count() != lanes) {
    return invalid(target, "bias must hold S * C = " + std::to_string(lanes) +
                               " values in the data's real precision, got " + std::to_string(bias.element_count()));
  }
  const size_t tap_count = pool ? static_cast<size_t>(g.n) * 4 : 0;
  if (taps.element_count() != tap_count || (tap_count > 0 && taps.element_type() != real)) {
    return invalid(target, "taps must hold " + std::to_string(tap_count) +
                               " values in the data's real precision ((n, 4) when pooling, none otherwise), got " +
                               std::to_string(taps.element_count()));
  }
  if (leaky_spin < -1 || leaky_spin >= g.spins) {
    return invalid(target, "leaky_spin must be -1 or a spin index below " + std::to_string(g.spins) + ", got " +
                               std::to_string(leaky_spin));
  }
  return ffi::Error::Success();
}

// Its gradient (target sphcnn_activated_gradient): operands ct (the
// coefficients' cotangent), then maps, bias, taps, ring_scale and table as the
// activated analysis; results ct_maps (the maps' shape and dtype), ct_bias (S, C)
// real and scratch; the same attributes. The geometry is that of the transposed
// analysis, a synthesis from ct onto ct_maps (grid p n).
inline xla::ffi::Error check_gradient(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& maps,
                                      const xla::ffi::AnyBuffer& ct_maps, const xla::ffi::AnyBuffer& bias,
                                      const xla::ffi::AnyBuffer& ct_bias) {
  using contract_detail::invalid;
  if (xla::ffi::Error e = contract_detail::same_shape(target, "maps", maps, "ct_maps", ct_maps); e.failure()) {
    return e;
  }
  if (ct_bias.element_type() != bias.element_type() || ct_bias.element_count() != bias.element_count()) {
    return invalid(target, "ct_bias must have the size and dtype of bias, (S, C) = " +
                               std::to_string(g.spins) + " x " + std::to_string(g.channels));
  }
  return xla::ffi::Error::Success();
}

// The synthesis of affinely mapped coefficients (target sphcnn_affine_synthesis):
// the synthesis of this contract for the coefficients factor a + sqrt(4 pi)
// offset at a_00, with two more operands after the coefficients, factor and
// offset (S, C) in the data's complex dtype (a batch norm's apply folded into
// the synthesis that follows it).
inline xla::ffi::Error check_affine(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& a,
                                    const xla::ffi::AnyBuffer& factor, const xla::ffi::AnyBuffer& offset) {
  const size_t lanes = static_cast<size_t>(g.spins) * g.channels;
  if (xla::ffi::Error e = contract_detail::per_lane(target, "factor", factor, a.element_type(), lanes); e.failure()) {
    return e;
  }
  return contract_detail::per_lane(target, "offset", offset, a.element_type(), lanes);
}

// The analysis with a spin-weighted convolution's epilogue (target
// sphcnn_mixing_analysis, CUDA): the (activated) analysis of this contract,
// whose maps, bias and taps come first, then filters w (L, S, S_out, C, C_out)
// in the coefficients' complex dtype, ring_scale and table; results b (the
// spectral layout of a with (S_out, C_out) for (S, C)), a (the coefficients of
// the analysis), energy (B..., S_out, C_out) real, scratch; the activated
// analysis's attributes and `activate` (false: no prologue, bias and taps empty):
//   b[l, m, o, d] = sum_{i, c} a[l, m, i, c] w[l, i, o, c, d],
//   energy[o, d] = sum_{l, m} |b[l, m, o, d]|^2 per batch item.
inline xla::ffi::Error check_filters(const char* target, const Geometry& g, xla::ffi::DataType dtype,
                                     const xla::ffi::AnyBuffer& filters) {
  const auto w = filters.dimensions();
  if (filters.element_type() != dtype || w.size() != 5 || w[0] != g.L() || w[1] != g.spins ||
      w[3] != g.channels) {
    return contract_detail::invalid(
        target, "filters " + shape_string(w) + " must be (L, S, S_out, C, C_out) = (" + std::to_string(g.L()) +
                    ", " + std::to_string(g.spins) + ", S_out, " + std::to_string(g.channels) +
                    ", C_out) in the coefficients' complex dtype");
  }
  return xla::ffi::Error::Success();
}

inline xla::ffi::Error check_mixing(const char* target, const Geometry& g, const xla::ffi::AnyBuffer& a,
                                    const xla::ffi::AnyBuffer& filters, const xla::ffi::AnyBuffer& mixed,
                                    const xla::ffi::AnyBuffer& energy) {
  namespace ffi = xla::ffi;
  using contract_detail::invalid;
  if (ffi::Error e = check_filters(target, g, a.element_type(), filters); e.failure()) return e;
  const auto w = filters.dimensions();
  const auto in = a.dimensions();
  const auto out = mixed.dimensions();
  bool same = mixed.element_type() == a.element_type() && out.size() == in.size();
  for (size_t i = 0; same && i + 2 < in.size(); ++i) same = in[i] == out[i];
  if (!same || out[out.size() - 2] != w[2] || out[out.size() - 1] != w[4]) {
    return invalid(target, "b " + shape_string(out) + " must have the shape of a " + shape_string(in) +
                               " with (S_out, C_out) = (" + std::to_string(w[2]) + ", " + std::to_string(w[4]) +
                               ") last, in a's dtype");
  }
  const ffi::DataType real = g.is_double ? ffi::F64 : ffi::F32;
  const size_t count = static_cast<size_t>(g.batch) * w[2] * w[4];
  if (energy.element_type() != real || energy.element_count() != count) {
    return invalid(target, "energy must hold B * S_out * C_out = " + std::to_string(count) +
                               " values in the data's real precision, got " + std::to_string(energy.element_count()));
  }
  return ffi::Error::Success();
}

// The gradient of the affine synthesis (target sphcnn_affine_gradient, CUDA):
// the analysis of this contract (the transposed synthesis) of the maps'
// cotangent ct into u, with two more operands after it, the batch norm's input
// coefficients a (the output's shape and dtype) and factor (S, C) complex, and
// results ct_a = factor u (the coefficients' layout), products and constant
// (B..., S, C) complex, scratch:
//   products = sum_{l, m} u a (no conjugate),  constant = u at l = 0, m = 0.
inline xla::ffi::Error check_affine_gradient(const char* target, const Geometry& g,
                                             const xla::ffi::AnyBuffer& ct_a, const xla::ffi::AnyBuffer& a,
                                             const xla::ffi::AnyBuffer& factor,
                                             const xla::ffi::AnyBuffer& products,
                                             const xla::ffi::AnyBuffer& constant) {
  using contract_detail::invalid;
  if (xla::ffi::Error e = contract_detail::same_shape(target, "a", a, "ct_a", ct_a); e.failure()) return e;
  const size_t lanes = static_cast<size_t>(g.spins) * g.channels;
  if (xla::ffi::Error e = contract_detail::per_lane(target, "factor", factor, a.element_type(), lanes); e.failure()) {
    return e;
  }
  for (const auto* result : {&products, &constant}) {
    if (result->element_type() != a.element_type() || result->element_count() != g.batch * lanes) {
      return invalid(target, std::string(result == &products ? "products" : "constant") + " must hold B * S * C = " +
                                 std::to_string(g.batch * lanes) + " values of the coefficients' complex dtype");
    }
  }
  return xla::ffi::Error::Success();
}

// Its gradient for the activated analysis (target sphcnn_mixing_gradient, CUDA):
// operands ct_b (b's cotangent, the coefficients of a synthesis of this contract
// with (S_out, C_out) for (S, C)), filters, then maps, bias, taps, ring_scale
// and table as sphcnn_activated_gradient, with its results (ct_maps, ct_bias,
// scratch) and attributes: the activated gradient of
//   ct_a[l, m, i, c] = sum_{o, d} ct_b[l, m, o, d] w[l, i, o, c, d].
// check_filters and check_gradient apply.

// The extension points of the fused path. Each fused target above is a
// transform of this contract with a stage of its own where the transform moves
// data between memory and its two stages (the ring FFT and the Legendre
// stage). There are four such points; the kernels of both platforms take a
// fused stage under these names:
//
//   RingLoad          the analysis reading ring j of batch item b of its maps:
//                     as they are (real maps promoted to complex), or activated
//                     and pooled (sphcnn_activated_analysis,
//                     sphcnn_mixing_analysis; sphcnn/activation.h).
//                     CPU: ring_load(b, j, worker) -> the ring's values
//                     (analysis in transforms_cpu.cc); CUDA: the ring_load of
//                     grid_to_orders_block, with activated_value (ring_dft.h).
//   RingStore         the synthesis writing ring j of item b: into the maps, or
//                     through the nonlinearity's gradient
//                     (sphcnn_activated_gradient, sphcnn_mixing_gradient).
//                     CPU: ring_store.target(b, j, worker) -> where the ring
//                     goes, ring_store.finish(b, j, worker) once it is there
//                     (synthesis in transforms_cpu.cc); CUDA: the ring_store of
//                     orders_to_grid_block, with gradient_store (ring_dft.h).
//   CoefficientLoad   the synthesis reading its coefficients: as they are,
//                     affinely mapped (sphcnn_affine_synthesis; the synthesis
//                     is linear, so the map acts on the order blocks the
//                     Legendre stage writes), or as the transposed mixing of
//                     the mixed coefficients' cotangent (sphcnn_mixing_gradient).
//                     CPU: the CoefficientAffine of orders_to_ring
//                     (transforms_cpu.cc); CUDA: the coefficient_load of
//                     orders_to_grid_block (ring_dft.h), and the prologue of
//                     synthesis_mixing_block (mixing_stage.h).
//   CoefficientStore  the analysis writing coefficient (l, +-m) of a column: as
//                     it is, or into the mixing epilogue (sphcnn_mixing_analysis)
//                     or the batch norm's backward (sphcnn_affine_gradient).
//                     CUDA: the coefficient_store of analysis_table_tile
//                     (legendre_gemm.h), given by analysis_table_block,
//                     analysis_mixing_block (mixing_stage.h) and
//                     affine_gradient_block (affine_stage.h); none on the CPU.

}  // namespace sphcnn

XLA_FFI_REGISTER_ENUM_ATTR_DECODING(sphcnn::Sign);
XLA_FFI_REGISTER_ENUM_ATTR_DECODING(sphcnn::LambdaSource);
