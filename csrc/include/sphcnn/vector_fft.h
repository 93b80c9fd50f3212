// A mixed-radix complex FFT over "vector elements": the transform runs along an
// axis of length n whose every element is a contiguous vector of `lanes` complex
// numbers (interleaved real, imaginary), so all lanes are transformed at once with
// unit-stride, vectorizable inner loops. This is the layout of one ring of a
// spatial map, (lon, spin, channel), so no transposition is needed.
//
// Algorithm: Stockham autosort, radices 4, 2, 3, 5 and any odd radix by direct
// DFT (Govindaraju et al., "High performance discrete Fourier transforms on
// graphics processors", SC 2008, algorithm 2, generalized to mixed radices).
// Host only.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace sphcnn {

template <typename T>
class VectorFft {
 public:
  // out_q = sum_k in_k exp(sign * 2 pi i q k / n), unnormalized; sign is +1 or -1.
  VectorFft(int n, int sign) : n_(n), sign_(sign) {
    int rest = n;
    std::vector<int> radices;
    while (rest % 4 == 0) { radices.push_back(4); rest /= 4; }
    while (rest % 2 == 0) { radices.push_back(2); rest /= 2; }
    for (int p = 3; rest > 1; p += 2) {
      while (rest % p == 0) { radices.push_back(p); rest /= p; }
    }
    const double two_pi = 6.283185307179586476925286766559;
    int span = 1;
    for (int radix : radices) {
      Stage st;
      st.radix = radix;
      st.span = span;
      const int64_t period = static_cast<int64_t>(span) * radix;
      st.twiddles.resize(static_cast<size_t>(span) * (radix - 1) * 2);
      for (int k = 0; k < span; ++k) {
        for (int r = 1; r < radix; ++r) {
          const double angle = sign * two_pi * static_cast<double>((static_cast<int64_t>(k) * r) % period) /
                               static_cast<double>(period);
          st.twiddles[(static_cast<size_t>(k) * (radix - 1) + (r - 1)) * 2] = static_cast<T>(std::cos(angle));
          st.twiddles[(static_cast<size_t>(k) * (radix - 1) + (r - 1)) * 2 + 1] = static_cast<T>(std::sin(angle));
        }
      }
      st.roots.resize(static_cast<size_t>(radix) * 2);
      for (int r = 0; r < radix; ++r) {
        const double angle = sign * two_pi * r / radix;
        st.roots[2 * r] = static_cast<T>(std::cos(angle));
        st.roots[2 * r + 1] = static_cast<T>(std::sin(angle));
      }
      stages_.push_back(std::move(st));
      span *= radix;
    }
  }

  int size() const { return n_; }

  // in, out, work: n * lanes complex values each; in is not modified and may not
  // alias out or work.
  void execute(const T* in, T* out, T* work, int64_t lanes) const {
    const int count = static_cast<int>(stages_.size());
    const T* src = in;
    for (int i = 0; i < count; ++i) {
      T* dst = ((count - 1 - i) % 2 == 0) ? out : work;
      run_stage(stages_[i], src, dst, lanes);
      src = dst;
    }
  }

 private:
  struct Stage {
    int radix;
    int span;                 // length of the sub-transforms already combined
    std::vector<T> twiddles;  // [span][radix - 1] complex
    std::vector<T> roots;     // [radix] complex: exp(sign 2 pi i r / radix)
  };

  void run_stage(const Stage& st, const T* __restrict src, T* __restrict dst,
                 int64_t lanes) const {
    const int radix = st.radix;
    const int groups = n_ / radix;
    const int64_t esize = 2 * lanes;  // T values per element
    const T* in_ptr[16];
    T* out_ptr[16];
    std::vector<const T*> in_big;
    std::vector<T*> out_big;
    const T** ip = in_ptr;
    T** op = out_ptr;
    if (radix > 16) {
      in_big.resize(radix);
      out_big.resize(radix);
      ip = in_big.data();
      op = out_big.data();
    }
    for (int j = 0; j < groups; ++j) {
      const int k = j % st.span;
      const int64_t base = static_cast<int64_t>(j / st.span) * st.span * radix + k;
      for (int r = 0; r < radix; ++r) {
        ip[r] = src + (static_cast<int64_t>(j) + static_cast<int64_t>(r) * groups) * esize;
        op[r] = dst + (base + static_cast<int64_t>(r) * st.span) * esize;
      }
      const T* tw = st.twiddles.data() + static_cast<size_t>(k) * (radix - 1) * 2;
      switch (radix) {
        case 2: radix2(ip, op, tw, lanes); break;
        case 4: radix4(ip, op, tw, lanes); break;
        case 3: radix3(ip, op, tw, lanes); break;
        case 5: radix5(ip, op, tw, lanes); break;
        default: radix_generic(radix, ip, op, tw, st.roots.data(), lanes); break;
      }
    }
  }

  // (a + ib)(c + id)
  static inline void cmul(T a, T b, T c, T d, T& re, T& im) {
    re = a * c - b * d;
    im = a * d + b * c;
  }

  static void radix2(const T** ip, T** op, const T* tw, int64_t lanes) {
    const T* __restrict x0 = ip[0];
    const T* __restrict x1 = ip[1];
    T* __restrict y0 = op[0];
    T* __restrict y1 = op[1];
    const T wr = tw[0], wi = tw[1];
    for (int64_t v = 0; v < lanes; ++v) {
      T br, bi;
      cmul(x1[2 * v], x1[2 * v + 1], wr, wi, br, bi);
      const T ar = x0[2 * v], ai = x0[2 * v + 1];
      y0[2 * v] = ar + br;
      y0[2 * v + 1] = ai + bi;
      y1[2 * v] = ar - br;
      y1[2 * v + 1] = ai - bi;
    }
  }

  void radix4(const T** ip, T** op, const T* tw, int64_t lanes) const {
    const T* __restrict x0 = ip[0];
    const T* __restrict x1 = ip[1];
    const T* __restrict x2 = ip[2];
    const T* __restrict x3 = ip[3];
    T* __restrict y0 = op[0];
    T* __restrict y1 = op[1];
    T* __restrict y2 = op[2];
    T* __restrict y3 = op[3];
    const T w1r = tw[0], w1i = tw[1], w2r = tw[2], w2i = tw[3], w3r = tw[4], w3i = tw[5];
    const T sg = static_cast<T>(sign_);
    for (int64_t v = 0; v < lanes; ++v) {
      const T a0r = x0[2 * v], a0i = x0[2 * v + 1];
      T a1r, a1i, a2r, a2i, a3r, a3i;
      cmul(x1[2 * v], x1[2 * v + 1], w1r, w1i, a1r, a1i);
      cmul(x2[2 * v], x2[2 * v + 1], w2r, w2i, a2r, a2i);
      cmul(x3[2 * v], x3[2 * v + 1], w3r, w3i, a3r, a3i);
      const T t0r = a0r + a2r, t0i = a0i + a2i;
      const T t1r = a0r - a2r, t1i = a0i - a2i;
      const T t2r = a1r + a3r, t2i = a1i + a3i;
      // t3 = (a1 - a3) * (sign i)
      const T t3r = -sg * (a1i - a3i), t3i = sg * (a1r - a3r);
      y0[2 * v] = t0r + t2r;
      y0[2 * v + 1] = t0i + t2i;
      y2[2 * v] = t0r - t2r;
      y2[2 * v + 1] = t0i - t2i;
      y1[2 * v] = t1r + t3r;
      y1[2 * v + 1] = t1i + t3i;
      y3[2 * v] = t1r - t3r;
      y3[2 * v + 1] = t1i - t3i;
    }
  }

  void radix3(const T** ip, T** op, const T* tw, int64_t lanes) const {
    const T* __restrict x0 = ip[0];
    const T* __restrict x1 = ip[1];
    const T* __restrict x2 = ip[2];
    T* __restrict y0 = op[0];
    T* __restrict y1 = op[1];
    T* __restrict y2 = op[2];
    const T w1r = tw[0], w1i = tw[1], w2r = tw[2], w2i = tw[3];
    const T h = static_cast<T>(sign_ * 0.86602540378443864676372317075294);  // sign sqrt(3)/2
    for (int64_t v = 0; v < lanes; ++v) {
      const T a0r = x0[2 * v], a0i = x0[2 * v + 1];
      T a1r, a1i, a2r, a2i;
      cmul(x1[2 * v], x1[2 * v + 1], w1r, w1i, a1r, a1i);
      cmul(x2[2 * v], x2[2 * v + 1], w2r, w2i, a2r, a2i);
      const T sr = a1r + a2r, si = a1i + a2i;
      const T dr = a1r - a2r, di = a1i - a2i;
      const T mr = a0r - static_cast<T>(0.5) * sr, mi = a0i - static_cast<T>(0.5) * si;
      // n = (sign i sqrt(3)/2) d
      const T nr = -h * di, ni = h * dr;
      y0[2 * v] = a0r + sr;
      y0[2 * v + 1] = a0i + si;
      y1[2 * v] = mr + nr;
      y1[2 * v + 1] = mi + ni;
      y2[2 * v] = mr - nr;
      y2[2 * v + 1] = mi - ni;
    }
  }

  void radix5(const T** ip, T** op, const T* tw, int64_t lanes) const {
    const T* __restrict x0 = ip[0];
    const T* __restrict x1 = ip[1];
    const T* __restrict x2 = ip[2];
    const T* __restrict x3 = ip[3];
    const T* __restrict x4 = ip[4];
    T* __restrict y0 = op[0];
    T* __restrict y1 = op[1];
    T* __restrict y2 = op[2];
    T* __restrict y3 = op[3];
    T* __restrict y4 = op[4];
    const T c1 = static_cast<T>(0.30901699437494742410229341718282);   // cos(2 pi / 5)
    const T c2 = static_cast<T>(-0.80901699437494742410229341718282);  // cos(4 pi / 5)
    const T s1 = static_cast<T>(sign_ * 0.95105651629515357211643933337938);  // sign sin(2 pi / 5)
    const T s2 = static_cast<T>(sign_ * 0.58778525229247312916870595463907);  // sign sin(4 pi / 5)
    for (int64_t v = 0; v < lanes; ++v) {
      const T a0r = x0[2 * v], a0i = x0[2 * v + 1];
      T a1r, a1i, a2r, a2i, a3r, a3i, a4r, a4i;
      cmul(x1[2 * v], x1[2 * v + 1], tw[0], tw[1], a1r, a1i);
      cmul(x2[2 * v], x2[2 * v + 1], tw[2], tw[3], a2r, a2i);
      cmul(x3[2 * v], x3[2 * v + 1], tw[4], tw[5], a3r, a3i);
      cmul(x4[2 * v], x4[2 * v + 1], tw[6], tw[7], a4r, a4i);
      const T t1r = a1r + a4r, t1i = a1i + a4i;
      const T t2r = a2r + a3r, t2i = a2i + a3i;
      const T t3r = a1r - a4r, t3i = a1i - a4i;
      const T t4r = a2r - a3r, t4i = a2i - a3i;
      const T p1r = a0r + c1 * t1r + c2 * t2r, p1i = a0i + c1 * t1i + c2 * t2i;
      const T p2r = a0r + c2 * t1r + c1 * t2r, p2i = a0i + c2 * t1i + c1 * t2i;
      // q1 = i (s1 t3 + s2 t4), q2 = i (s2 t3 - s1 t4)
      const T q1r = -(s1 * t3i + s2 * t4i), q1i = s1 * t3r + s2 * t4r;
      const T q2r = -(s2 * t3i - s1 * t4i), q2i = s2 * t3r - s1 * t4r;
      y0[2 * v] = a0r + t1r + t2r;
      y0[2 * v + 1] = a0i + t1i + t2i;
      y1[2 * v] = p1r + q1r;
      y1[2 * v + 1] = p1i + q1i;
      y4[2 * v] = p1r - q1r;
      y4[2 * v + 1] = p1i - q1i;
      y2[2 * v] = p2r + q2r;
      y2[2 * v + 1] = p2i + q2i;
      y3[2 * v] = p2r - q2r;
      y3[2 * v + 1] = p2i - q2i;
    }
  }

  static void radix_generic(int radix, const T** ip, T** op, const T* tw, const T* roots,
                            int64_t lanes) {
    for (int q = 0; q < radix; ++q) {
      T* __restrict y = op[q];
      for (int64_t v = 0; v < lanes; ++v) {
        y[2 * v] = ip[0][2 * v];
        y[2 * v + 1] = ip[0][2 * v + 1];
      }
      for (int r = 1; r < radix; ++r) {
        // twiddle w_r times root^(q r)
        const int e = static_cast<int>((static_cast<int64_t>(q) * r) % radix);
        T cr, ci;
        cmul(tw[2 * (r - 1)], tw[2 * (r - 1) + 1], roots[2 * e], roots[2 * e + 1], cr, ci);
        const T* __restrict x = ip[r];
        for (int64_t v = 0; v < lanes; ++v) {
          T pr, pi;
          cmul(x[2 * v], x[2 * v + 1], cr, ci, pr, pi);
          y[2 * v] += pr;
          y[2 * v + 1] += pi;
        }
      }
    }
  }

  int n_;
  int sign_;
  std::vector<Stage> stages_;
};

}  // namespace sphcnn
