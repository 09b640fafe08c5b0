// Shared pieces of the fused CPU kernels: SIMD types, loads and stores, sin/cos, parameter layouts.
//
// Every family is a struct template `template <typename T, int N> struct XxxF` (N > 0: degree
// known at compile time; N == 0: degree n at run time) with
//   static constexpr int P;                      // parameters per group it may need (array size)
//   static constexpr bool HAS_DERIVATIVE;        // fwd_d and bwd<true> exist (the family takes a domain)
//   template <class L> static V fwd(V x, const L& a, i64 pos, int n, int p, T aux);          // F(x)
//   template <bool EXT, class L> static V bwd(V x, V g, L& a, i64 pos, int n, int p, T aux, V t);
//        returns g F'(x) and calls a.acc(k, pos, g dF/dtheta_k) for every parameter k; with EXT
//        (x is a domain end, t = u - x the distance beyond it) g (dF/dtheta_k + t dF'/dtheta_k)
//   template <class L> static V fwd_d(V x, const L& a, i64 pos, int n, int p, T aux, V& d);
//        F(x) and d = F'(x) (on the forward-prepared parameters), for the linear extension
//   static T aux(const T* params, i64 G, int p, int n);              // a family scalar (all groups)
//   static void prepare_forward(const T* raw, T* out, int n, int p, T aux);   // per-group forward form
//   static void prepare_backward(const T* raw, T* out, int n, int p, T aux);  // per-group backward form
//        (what fwd / bwd read through a.param; the gradients keep the raw columns' order)
// and optionally
//   static void finish_backward(const T* raw, double* grad, int n, int p, T aux);  // scale the sums
//   static constexpr int PX;  static int extra(int n);  // extra prepared columns (at most PX; extra(n)
//        at degree n), which prepare_forward / prepare_backward write from column p + 1 on
// p is the number of the family's own columns (a clamp limit, when there is one, comes after them).
// The drivers in kernels.cpp apply the non-finite rules for every family (see kernels.cpp), so a
// family only computes its formula; on non-finite lanes its result is overwritten.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef int64_t i64;

// The SIMD helpers below are forced inline: GCC otherwise keeps some (sin/cos) out of line in the
// largest loops, where a call per vector costs more than the arithmetic.
#define OA_INLINE inline __attribute__((always_inline))

#ifndef OA_MAX_DEGREE
#error "build through orthoact/ops/_build.py: families.inc defines OA_MAX_DEGREE"
#endif
static constexpr int MAX_DEGREE = OA_MAX_DEGREE;  // orthoact.ops._common.MAX_KERNEL_DEGREE
static constexpr int MAX_P = 4 * (MAX_DEGREE + 1) + 1;  // the largest family's row, plus a clamp limit

// ---------------------------------------------------------------------------------------------
// SIMD types (GCC/Clang vector extensions): 64-byte vectors (16 floats or 8 doubles) where the
// compiler targets AVX-512 (-march=native on such a CPU: twice the lanes per instruction and 32
// registers), 32-byte vectors (8 floats, 4 doubles) elsewhere. OA_NO_AVX512 forces the latter.
template <typename T> struct VT;
#if defined(__AVX512F__) && !defined(OA_NO_AVX512)
#define OA_VBYTES 64
#else
#define OA_VBYTES 32
#endif
template <> struct VT<float> {
    typedef float V __attribute__((vector_size(OA_VBYTES)));
    typedef int32_t I __attribute__((vector_size(OA_VBYTES)));
    typedef uint32_t U __attribute__((vector_size(OA_VBYTES)));
    static constexpr int W = OA_VBYTES / 4;
};
template <> struct VT<double> {
    typedef double V __attribute__((vector_size(OA_VBYTES)));
    typedef int64_t I __attribute__((vector_size(OA_VBYTES)));
    typedef uint64_t U __attribute__((vector_size(OA_VBYTES)));
    static constexpr int W = OA_VBYTES / 8;
};

template <typename V> static inline V load(const void* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename V> static inline void store(void* p, V v) { std::memcpy(p, &v, sizeof v); }
template <typename V, typename T> static inline V splat(T s) { return V{} + s; }
template <typename T, typename V> static inline T lane_sum(V v) {
    T out = 0;
    for (int l = 0; l < VT<T>::W; ++l) out += v[l];
    return out;
}
// |x| and the sign of x (0 at 0, as torch.sign) with bit operations: one and/or per lane.
template <typename V> using LaneOf = std::remove_cv_t<std::remove_reference_t<decltype(V{}[0])>>;
template <typename V> static inline auto sign_bits() {  // the sign bit of every lane (not splat(-0.0): 0 + -0 is +0)
    typedef decltype(V{} < V{}) I;
    return (I)splat<V>(LaneOf<V>(-1.0)) ^ (I)splat<V>(LaneOf<V>(1.0));
}
template <typename V> static inline V vabs(V x) {
    typedef decltype(x < x) I;  // the integer vector of the same shape
    return (V)((I)x & ~sign_bits<V>());
}
template <typename V> static inline V vsgn(V x) {
    typedef decltype(x < x) I;
    const I sign = (I)x & sign_bits<V>(), one = (I)splat<V>(LaneOf<V>(1.0));
    return (V)((sign | one) & (x != LaneOf<V>(0)));  // +-1, and 0 where x == 0 (the comparison is all ones or zero)
}

// a * b + c rounded once, whatever the compiler's contraction decides (-ffp-contract=fast fuses a
// product used once, not one it shares between expressions): the sin/cos argument w x - phi and the
// range reduction need the single rounding for their accuracy.
static OA_INLINE VT<float>::V vfma(VT<float>::V a, VT<float>::V b, VT<float>::V c) {
#if OA_VBYTES == 64
    return (VT<float>::V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (VT<float>::V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    VT<float>::V out;
    for (int l = 0; l < VT<float>::W; ++l) out[l] = std::fma(a[l], b[l], c[l]);
    return out;
#endif
}
static OA_INLINE VT<double>::V vfma(VT<double>::V a, VT<double>::V b, VT<double>::V c) {
#if OA_VBYTES == 64
    return (VT<double>::V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
    return (VT<double>::V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    VT<double>::V out;
    for (int l = 0; l < VT<double>::W; ++l) out[l] = std::fma(a[l], b[l], c[l]);
    return out;
#endif
}

template <typename T> static inline T inv_factorial(int k) {
    double f = 1.0;
    for (int j = 2; j <= k; ++j) f *= j;  // inf above 170: 1/inf = 0, as the reference's underflow
    return T(1.0 / f);
}

// sin and cos of float vectors: Cody-Waite reduction by pi (two FMA steps: z = q pi + r, |r| <= pi/2)
// and minimax polynomials on [-pi/2, pi/2] (sine to degree 9, relative error 6e-9; cosine to degree
// 10, 2.5e-10), the sign of both flipped for odd q. Within 1.5e-7 (about one ulp of 1) of the exact
// values for |z| <= 8192 (callers route larger arguments to libm): ~20 vector operations for both,
// no quadrant selection. With WANT_SIN false only the cosine is produced. The polynomials are
// evaluated by Estrin's scheme (in r^2 and r^4), not Horner's: three dependent FMAs instead of five.
// The kernels that call this are latency-bound (one vector's chain of dependent operations is longer
// than the out-of-order window hides), so the shorter chain is ~8% of a fixed-frequency Fourier-5
// forward+backward (one call per element; kernel-only, 2 threads, 4M float32) at the same operation
// count and the same 1.3e-7 maximum error. Learned frequencies take sincospi_v (below) instead.
template <bool WANT_SIN>
static OA_INLINE void sincos_v(VT<float>::V z, VT<float>::V& s, VT<float>::V& c) {
    typedef VT<float>::V V;
    typedef VT<float>::I I;
    // t = 1.5 2^23 + round(z / pi): its last mantissa bit is the parity of q, (-1)^q its sign bit
    const V t = vfma(z, splat<V>(0.318309886183790672f), splat<V>(12582912.0f)), q = t - 12582912.0f;
    V r = vfma(q, splat<V>(-3.14159274101257324f), z);  // -float(pi) (q negated by the constant: no extra op)
    r = vfma(q, splat<V>(8.74227765734758577e-8f), r);  // -(pi - float(pi))
    const V r2 = r * r;
    const I sign = (I)((VT<float>::U)t << 31u);
    const V r4 = r2 * r2;
    const V cp = (1.0f + r2 * -0.5f) + r4 * ((4.166664183e-2f + r2 * -1.388840377e-3f) +
                                             r4 * (2.476188638e-5f + r2 * -2.607710314e-7f));
    c = (V)((I)cp ^ sign);
    if (WANT_SIN) {
        const V sp = r + (r * r2) * ((-1.666665971e-1f + r2 * 8.333066478e-3f) +
                                     r4 * (-1.980960224e-4f + r2 * 2.605780537e-6f));
        s = (V)((I)sp ^ sign);
    }
}
template <bool WANT_SIN>
static OA_INLINE void sincos_v(VT<double>::V z, VT<double>::V& s, VT<double>::V& c) {
    for (int l = 0; l < VT<double>::W; ++l) {
        s[l] = std::sin(z[l]);
        c[l] = std::cos(z[l]);
    }
}

// sin(pi u) and cos(pi u) of float vectors (u in half-turns: Fourier's learned frequencies form
// u = w' x - phi' with w' = w / pi, phi' = phi / pi prepared per group): q = round(u) and f = u - q
// (exact: no Cody-Waite steps), then the polynomials above in pi f (their coefficients scaled by
// powers of pi: cosine by Estrin's scheme, sine as f times a Horner polynomial, the most accurate of
// the orders tried), the sign of both flipped for odd q. Three adds replace three FMAs of sincos_v's
// reduction. Within 1.6e-7 (sine) and 8.4e-8 (cosine) of sin(pi u), cos(pi u) for |u| < 2^22.
template <bool WANT_SIN>
static OA_INLINE void sincospi_v(VT<float>::V u, VT<float>::V& s, VT<float>::V& c) {
    typedef VT<float>::V V;
    typedef VT<float>::I I;
    const V t = u + 12582912.0f, f = u - (t - 12582912.0f);  // t = 1.5 2^23 + round(u), as in sincos_v
    const V f2 = f * f, f4 = f2 * f2;
    const I sign = (I)((VT<float>::U)t << 31u);
    const V cp = (1.0f + f2 * -4.934802055e+00f) + f4 * ((4.058709621e+00f + f2 * -1.335216165e+00f) +
                                                       f4 * (2.349539250e-01f + f2 * -2.442069724e-02f));
    c = (V)((I)cp ^ sign);
    if (WANT_SIN) {
        const V sp = f * (3.141592741e+00f + f2 * (-5.167710781e+00f + f2 * (2.550082445e+00f +
                                                f2 * (-5.983080864e-01f + f2 * 7.767596841e-02f))));
        s = (V)((I)sp ^ sign);
    }
}

// 1 / q for q >= 1 (the rational's denominator): the hardware reciprocal estimate (12 bits) and two
// Newton steps, within an ulp of the division (exact at q = 1) at less than its cost (vdivps issues
// once every 5 cycles); a division where there is no AVX estimate and for doubles.
static OA_INLINE VT<float>::V vrecip(VT<float>::V q) {
#if OA_VBYTES == 64
    VT<float>::V r = (VT<float>::V)_mm512_rcp14_ps((__m512)q);
#elif defined(__AVX__)
    VT<float>::V r = (VT<float>::V)_mm256_rcp_ps((__m256)q);
#endif
#if OA_VBYTES == 64 || defined(__AVX__)
    r = r + r * (1.0f - q * r);  // each step squares the relative error (FMAs: -ffp-contract=fast)
    r = r + r * (1.0f - q * r);  // the second makes 1/1 exactly 1 (a rational's identity stays x)
    return q == INFINITY ? VT<float>::V{} : r;  // 1/inf = 0 (the Newton steps would give 0 * inf = NaN)
#else
    return 1.0f / q;
#endif
}
static OA_INLINE VT<double>::V vrecip(VT<double>::V q) { return 1.0 / q; }

template <typename V> static inline V vmin(V a, V b) { return a < b ? a : b; }
template <typename V> static inline V vmax(V a, V b) { return a > b ? a : b; }

// exp of float vectors (Cephes' expf: reduction by ln 2 in two steps and a degree-6 polynomial,
// about 1 ulp), the argument clamped to [-87.3, 88.3] (no overflow, no denormal scale).
static OA_INLINE VT<float>::V vexp(VT<float>::V x) {
    typedef VT<float>::V V;
    typedef VT<float>::I I;
    x = vmin(vmax(x, splat<V>(-87.3f)), splat<V>(88.3f));
    const V n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
    V r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const V z = r * r;
    const V p = ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
                   1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r) + 1.0f;
    const I scale = (__builtin_convertvector(n, I) + 127) << 23;  // 2^n
    return p * (V)scale;
}

// tanh(x / 2) = 2 sigmoid(x) - 1, the learnable clamp's squashing: an odd Taylor polynomial of tanh
// for |x| < 1/2 (no cancellation near 0), (1 - e) / (1 + e) with e = exp(-|x|) beyond; a few ulp.
// (vrecip is defined above: the reciprocal estimate and a Newton step.)
static OA_INLINE VT<float>::V tanh_half(VT<float>::V x) {
    typedef VT<float>::V V;
    typedef VT<float>::I I;
    const V a = vabs(x), y = 0.5f * a, y2 = y * y;
    const V small = y + y * y2 * (-0.333333333f + y2 * (0.133333333f + y2 * (-0.0539682540f +
                                   y2 * (0.0218694885f + y2 * -0.00886323552f))));
    const V e = vexp(-a);
    const V large = (1.0f - e) * vrecip(1.0f + e);  // 1 + e in (1, 2]
    const V t = a < 0.5f ? small : large;
    return (V)((I)t | ((I)x & sign_bits<V>()));
}
static OA_INLINE VT<double>::V tanh_half(VT<double>::V x) {
    VT<double>::V out;
    for (int l = 0; l < VT<double>::W; ++l) out[l] = std::tanh(0.5 * x[l]);
    return out;
}

// The input map (see orthoact/inputs.py): a learnable clamp u = limit tanh(x / 2), the limit the
// row's last column, and a domain [lo, hi] outside which F continues along its tangent.
template <typename T> struct InputMap {
    bool clamp = false, domain = false;
    T lo = 0, hi = 0;
};

// ---------------------------------------------------------------------------------------------
// Layouts: where parameter k of the vector at position pos comes from, and where its gradient goes.
// acc_if(k, pos, mask, v) adds v on the lanes of mask only; mark(pos, mask) records lanes whose
// input was non-finite (their group's gradients become NaN).
template <typename T, int P> struct Blocked {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    static constexpr bool UNIFORM = true;  // param(k, pos) is the same in every lane
    V A[P];
    V S[P];
    I bad{};
    void set(const T* params, int p) {
        for (int k = 0; k < p; ++k) {
            A[k] = splat<V>(params[k]);
            S[k] = V{};
        }
    }
    inline V param(int k, i64) const { return A[k]; }
    inline void acc(int k, i64, V v) { S[k] += v; }
    inline void acc_if(int k, i64, I mask, V v) { S[k] = mask ? S[k] + v : S[k]; }  // one masked add
    inline void mark(i64, I mask) { bad |= mask; }
};

template <typename T> struct RowsLayout {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    static constexpr bool UNIFORM = false;
    const T* base;  // (P, Rp) expanded parameters
    T* racc;        // (P, Rp) per-position gradient accumulators
    i64 Rp;
    typename VT<T>::I* bad;  // (Rp / W) per-position marks of non-finite inputs
    inline V param(int k, i64 pos) const { return load<V>(base + k * Rp + pos); }
    inline void acc(int k, i64 pos, V v) {
        T* p = racc + k * Rp + pos;
        store(p, load<V>(p) + v);
    }
    inline void acc_if(int k, i64 pos, I mask, V v) { acc(k, pos, mask ? v : V{}); }
    inline void mark(i64 pos, I mask) { bad[pos / VT<T>::W] |= mask; }
};

template <typename I> static inline bool any_set(I mask) {  // one vector test, not one per lane
#if OA_VBYTES == 64
    if constexpr (sizeof(I) == 64) return _mm512_test_epi64_mask((__m512i)mask, (__m512i)mask) != 0;
#endif
#ifdef __AVX__
    if constexpr (sizeof(I) == 32) return !_mm256_testz_si256((__m256i)mask, (__m256i)mask);
#endif
    uint64_t words[sizeof(I) / 8];
    std::memcpy(words, &mask, sizeof(I));
    uint64_t out = 0;
    for (uint64_t w : words) out |= w;
    return out != 0;
}
