// What the CPU emulations of tests/cuda_emulation share besides the launch
// (emulated_launch.h): scratch that starts as NaN, the float64 lambda of the
// references, random data, the error bookkeeping of a check, a digest of a
// case's outputs, and their interface to the tests: a case read from one
// command-line argument, a flat JSON object (CaseArguments; the tests write
// them, tests/emulation_cases.py), and one JSON line per check (print_records):
//   {"case": <the argument as given>, "plan": {<the launch choices>},
//    "digest": "<hex>", "check": "<name>", "value": V, "bound": B, "pass": P}
// where P is V <= B (V a number, or an object for checks of several numbers).
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "block_common.h"
#include "sphcnn/recurrences.h"

namespace sphcnn {
namespace emulation {

using cd = std::complex<double>;

// `bytes` of scratch (and 16 more) holding NaN of T: whatever a kernel reads
// before writing shows up in its outputs.
template <typename T>
std::vector<unsigned char> nan_scratch(size_t bytes) {
  std::vector<unsigned char> scratch(bytes + 16);
  const T nan = T(NAN);
  for (size_t i = 0; i + sizeof(T) <= scratch.size(); i += sizeof(T)) std::memcpy(scratch.data() + i, &nan, sizeof(T));
  return scratch;
}

// lambda_{l,m,s}(theta_j) in float64 from the recurrence of sphcnn/recurrences.h
// at the colatitudes theta of n rings, at [((s n + j) M + mi) L + l] (mi = m +
// ell_max); zeros for |s| > ell_max.
inline std::vector<double> lambda_reference(const std::vector<double>& theta, int ell_max,
                                            const std::vector<int>& spins) {
  const int L = ell_max + 1, M = 2 * ell_max + 1, n = static_cast<int>(theta.size());
  std::vector<double> lam(spins.size() * static_cast<size_t>(n) * M * L, 0.0);
  for (size_t s = 0; s < spins.size(); ++s) {
    for (int j = 0; j < n; ++j) {
      if (std::abs(spins[s]) <= ell_max) {
        spin_legendre_columns(ell_max, spins[s], theta[j], lam.data() + (s * n + j) * M * L);
      }
    }
  }
  return lam;
}

// The rings of the n x n grid, theta_j = pi j / (n - 1).
inline std::vector<double> lambda_reference(int n, int ell_max, const std::vector<int>& spins) {
  std::vector<double> theta(n);
  for (int j = 0; j < n; ++j) theta[j] = ring_theta(j, n);
  return lambda_reference(theta, ell_max, spins);
}

// sum_j lambda_{l,m,s}(theta_j) F[s, mi, j, p]: the Legendre sum of Fourier
// rings F (S, M, n, padded) at column p, for the lambda of lambda_reference.
template <typename T>
cd legendre_sum(const std::vector<double>& lam, const cuda::Cpx<T>* rings, int64_t padded, int n, int ell_max, int s,
                int mi, int l, int64_t p) {
  const int L = ell_max + 1, M = 2 * ell_max + 1;
  cd sum = 0.0;
  for (int j = 0; j < n; ++j) {
    const cuda::Cpx<T> v = rings[((static_cast<int64_t>(s) * M + mi) * n + j) * padded + p];
    sum += lam[((static_cast<size_t>(s) * n + j) * M + mi) * L + l] * cd(v.re, v.im);
  }
  return sum;
}

// Standard normal complex values of T, `count` from `values`.
template <typename T>
void fill_normal(cuda::Cpx<T>* values, size_t count, std::mt19937& rng) {
  std::normal_distribution<double> nd;
  for (size_t i = 0; i < count; ++i) values[i] = cuda::Cpx<T>{static_cast<T>(nd(rng)), static_cast<T>(nd(rng))};
}

template <typename T>
void fill_normal(std::vector<cuda::Cpx<T>>& values, std::mt19937& rng) {
  fill_normal(values.data(), values.size(), rng);
}

// The work items of block `block` when `blocks` blocks take items block,
// block + blocks, ... of `items`.
inline int64_t items_of_block(int64_t items, int64_t block, int64_t blocks) {
  return items > block ? (items - block + blocks - 1) / blocks : 0;
}

// One output checked against its float64 reference: the largest reference
// magnitude and error over the values written, the values not written (not
// finite), and those not exactly zero where they must be.
struct Check {
  double ref = 0, worst = 0;
  int64_t unwritten = 0, nonzero = 0;
  template <typename T>
  void note(cuda::Cpx<T> got, cd want, bool zero = false) {
    if (!std::isfinite(got.re) || !std::isfinite(got.im)) {
      unwritten++;
      return;
    }
    if (zero && (got.re != T(0) || got.im != T(0))) nonzero++;
    ref = std::max(ref, std::abs(want));
    worst = std::max(worst, std::abs(cd(got.re, got.im) - want));
  }
  // error relative to the largest reference value
  double relative() const { return worst / (ref > 0 ? ref : 1.0); }
};

// FNV-1a (64-bit) over the bytes of a case's outputs: a bit-exact digest, in
// every record of the case, so that runs under the two schedules of
// emulated_schedule.h can be compared.
struct Digest {
  uint64_t value = 14695981039346656037ull;
  void add(const void* data, size_t bytes) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) value = (value ^ p[i]) * 1099511628211ull;
  }
  template <typename V>
  void add(const std::vector<V>& values) {
    add(values.data(), values.size() * sizeof(V));
  }
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
    return text;
  }
};

// JSON text of a number (Infinity and NaN as Python's json module reads them;
// 17 digits: the record holds the double exactly), a string without escapes,
// and an object of fields already written as JSON.
inline std::string json_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char text[32];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}
inline std::string json_string(const std::string& text) { return "\"" + text + "\""; }
inline std::string json_bool(bool value) { return value ? "true" : "false"; }
inline std::string json_object(std::initializer_list<std::pair<const char*, std::string>> fields) {
  std::string text = "{";
  for (const auto& [key, value] : fields) text += (text.size() > 1 ? "," : "") + json_string(key) + ":" + value;
  return text + "}";
}

// One case from its command-line argument, a flat JSON object whose values are
// integers, booleans, strings or arrays of integers. Each accessor takes its
// key (a default where the key is optional); done() ends the program when a key
// was not taken, as do a malformed argument and a missing or mistyped value
// (exit status 2, the argument on stderr).
class CaseArguments {
 public:
  explicit CaseArguments(std::string text) : text_(std::move(text)) {
    size_t i = skip(0);
    if (i >= text_.size() || text_[i] != '{') fail("not a JSON object");
    i = skip(i + 1);
    while (i < text_.size() && text_[i] != '}') {
      if (text_[i] != '"') fail("a key is not a string");
      const size_t key_end = text_.find('"', i + 1);
      if (key_end == std::string::npos) fail("an unterminated key");
      const std::string key = text_.substr(i + 1, key_end - i - 1);
      i = skip(key_end + 1);
      if (i >= text_.size() || text_[i] != ':') fail("a key without a value");
      i = skip(i + 1);
      const char close = i < text_.size() && text_[i] == '[' ? ']' : i < text_.size() && text_[i] == '"' ? '"' : 0;
      const size_t end = close ? text_.find(close, i + 1) + 1 : text_.find_first_of(",}", i);
      if (end == std::string::npos || end == 0) fail("an unterminated value");
      values_[key] = text_.substr(i, end - i);
      while (!values_[key].empty() && values_[key].back() == ' ') values_[key].pop_back();
      i = skip(end);
      if (i < text_.size() && text_[i] == ',') i = skip(i + 1);
    }
    if (i >= text_.size()) fail("an unterminated object");
  }

  // The argument as given, and a seed of the case's random data from its bytes:
  // a case draws the same data whichever cases run with it.
  const std::string& json() const { return text_; }
  uint32_t seed() const {
    Digest digest;
    digest.add(text_.data(), text_.size());
    return static_cast<uint32_t>(digest.value);
  }

  int64_t integer(const char* key) { return parse_integer(take(key), key); }
  int64_t integer(const char* key, int64_t otherwise) { return values_.count(key) ? integer(key) : otherwise; }
  bool flag(const char* key, bool otherwise = false) {
    if (!values_.count(key)) return otherwise;
    const std::string value = take(key);
    if (value != "true" && value != "false") fail(key);
    return value == "true";
  }
  std::string text(const char* key) {
    const std::string value = take(key);
    if (value.size() < 2 || value.front() != '"') fail(key);
    return value.substr(1, value.size() - 2);
  }
  // Whether the string at `key` is `yes` (rather than `no`, anything else fails).
  bool either(const char* key, const char* yes, const char* no) {
    const std::string value = text(key);
    if (value != yes && value != no) fail(key);
    return value == yes;
  }
  std::vector<int> integers(const char* key) {
    const std::string value = take(key);
    if (value.size() < 2 || value.front() != '[') fail(key);
    std::vector<int> items;
    for (size_t start = 1; start < value.size() - 1;) {
      const size_t end = std::min(value.find(',', start), value.size() - 1);
      items.push_back(static_cast<int>(parse_integer(value.substr(start, end - start), key)));
      start = end + 1;
    }
    return items;
  }
  void done() const {
    if (!values_.empty()) fail(("unknown key " + values_.begin()->first).c_str());
  }

 private:
  size_t skip(size_t i) const {
    while (i < text_.size() && text_[i] == ' ') ++i;
    return i;
  }
  std::string take(const char* key) {
    const auto found = values_.find(key);
    if (found == values_.end()) fail(("missing " + std::string(key)).c_str());
    const std::string value = found->second;
    values_.erase(found);
    return value;
  }
  int64_t parse_integer(const std::string& value, const char* key) const {
    char* end = nullptr;
    const long long number = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0') fail(key);
    return number;
  }
  [[noreturn]] void fail(const char* what) const {
    std::fprintf(stderr, "bad case (%s): %s\n", what, text_.c_str());
    std::exit(2);
  }

  std::string text_;
  std::map<std::string, std::string> values_;
};

// One check of a case: its name, the measured value and the bound as JSON, and
// whether the value is within the bound.
struct Record {
  std::string check, value, bound;
  bool pass;
};

// A value that must be at most `bound` (NaN fails), and a count that must be 0.
inline Record at_most(const char* check, double value, double bound) {
  return {check, json_number(value), json_number(bound), value <= bound};
}
inline Record none_found(const char* check, int64_t count) {
  return {check, std::to_string(count), "0", count == 0};
}

// Prints the records of a case, one JSON line each (the case as given, its
// plan and the digest of its outputs first), and returns whether all passed.
inline bool print_records(const CaseArguments& args, const std::string& plan, const Digest& digest,
                          const std::vector<Record>& records) {
  bool passed = true;
  for (const Record& r : records) {
    std::printf("{\"case\":%s,\"plan\":%s,\"digest\":\"%s\",\"check\":\"%s\",\"value\":%s,\"bound\":%s,\"pass\":%s}\n",
                args.json().c_str(), plan.c_str(), digest.hex().c_str(), r.check.c_str(), r.value.c_str(),
                r.bound.c_str(), json_bool(r.pass).c_str());
    passed = passed && r.pass;
  }
  std::fflush(stdout);
  return passed;
}

}  // namespace emulation
}  // namespace sphcnn
