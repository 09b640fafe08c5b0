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
#ifdef __AVX__
#include <immintrin.h>
#endif

typedef int64_t i64;

#ifndef OA_MAX_DEGREE
#error "build through orthoact/ops/_build.py: families.inc defines OA_MAX_DEGREE"
#endif
static constexpr int MAX_DEGREE = OA_MAX_DEGREE;  // orthoact.ops._common.MAX_KERNEL_DEGREE
static constexpr int MAX_P = 4 * (MAX_DEGREE + 1) + 1;  // the largest family's row, plus a clamp limit

// ---------------------------------------------------------------------------------------------
// SIMD types (GCC/Clang vector extensions, 32-byte vectors: 8 floats or 4 doubles).
template <typename T> struct VT;
template <> struct VT<float> {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t I __attribute__((vector_size(32)));
    typedef uint32_t U __attribute__((vector_size(32)));
    static constexpr int W = 8;
};
template <> struct VT<double> {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t I __attribute__((vector_size(32)));
    typedef uint64_t U __attribute__((vector_size(32)));
    static constexpr int W = 4;
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

template <typename T> static inline T inv_factorial(int k) {
    double f = 1.0;
    for (int j = 2; j <= k; ++j) f *= j;  // inf above 170: 1/inf = 0, as the reference's underflow
    return T(1.0 / f);
}

// sin and cos of float vectors: Cody-Waite reduction by pi/2 (two FMA steps) and Cephes' minimax
// polynomials on [-pi/4, pi/4]; accurate to a few ulp for |z| <= 8192 (callers route larger
// arguments to libm). With WANT_SIN false only the cosine is produced (the forward pass).
template <bool WANT_SIN>
static inline void sincos_v(VT<float>::V z, VT<float>::V& s, VT<float>::V& c) {
    typedef VT<float>::V V;
    typedef VT<float>::U U;
    const V q = (z * 0.636619772367581343f + 12582912.0f) - 12582912.0f;  // round to nearest
    V r = z - q * 1.57079637050628662109375f;   // float(pi/2)
    r = r + q * 4.37113900018624283e-8f;       // float(pi/2) - pi/2
    const V r2 = r * r;
    const V sp = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    const V cp = 1.0f - 0.5f * r2 +
                 r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    // Odd quadrants swap sine and cosine; bit 1 of q (of q + 1) flips the sign of the sine (cosine).
    const U quadrant = (U)__builtin_convertvector(q, VT<float>::I);
    const U swap = 0u - (quadrant & 1u);
    const U bs = (U)sp, bc = (U)cp;
    if (WANT_SIN) s = (V)(((bc & swap) | (bs & ~swap)) ^ ((quadrant & 2u) << 30));
    c = (V)(((bs & swap) | (bc & ~swap)) ^ (((quadrant + 1u) & 2u) << 30));
}
template <bool WANT_SIN>
static inline void sincos_v(VT<double>::V z, VT<double>::V& s, VT<double>::V& c) {
    for (int l = 0; l < 4; ++l) {
        s[l] = std::sin(z[l]);
        c[l] = std::cos(z[l]);
    }
}

// 1 / q for q >= 1 (the rational's denominator): the hardware reciprocal estimate (12 bits) and two
// Newton steps, within an ulp of the division (exact at q = 1) at less than its cost (vdivps issues
// once every 5 cycles); a division where there is no AVX estimate and for doubles.
static inline VT<float>::V vrecip(VT<float>::V q) {
#ifdef __AVX__
    VT<float>::V r = (VT<float>::V)_mm256_rcp_ps((__m256)q);
    r = r + r * (1.0f - q * r);  // each step squares the relative error (FMAs: -ffp-contract=fast)
    r = r + r * (1.0f - q * r);  // the second makes 1/1 exactly 1 (a rational's identity stays x)
    return q == INFINITY ? VT<float>::V{} : r;  // 1/inf = 0 (the Newton steps would give 0 * inf = NaN)
#else
    return 1.0f / q;
#endif
}
static inline VT<double>::V vrecip(VT<double>::V q) { return 1.0 / q; }

template <typename V> static inline V vmin(V a, V b) { return a < b ? a : b; }
template <typename V> static inline V vmax(V a, V b) { return a > b ? a : b; }

// exp of float vectors (Cephes' expf: reduction by ln 2 in two steps and a degree-6 polynomial,
// about 1 ulp), the argument clamped to [-87.3, 88.3] (no overflow, no denormal scale).
static inline VT<float>::V vexp(VT<float>::V x) {
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
static inline VT<float>::V tanh_half(VT<float>::V x) {
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
static inline VT<double>::V tanh_half(VT<double>::V x) {
    VT<double>::V out;
    for (int l = 0; l < 4; ++l) out[l] = std::tanh(0.5 * x[l]);
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
// mark(pos, mask) records lanes whose input was non-finite (their group's gradients become NaN).
template <typename T, int P> struct Blocked {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
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
    inline void mark(i64, I mask) { bad |= mask; }
};

template <typename T> struct RowsLayout {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    const T* base;  // (P, Rp) expanded parameters
    T* racc;        // (P, Rp) per-position gradient accumulators
    i64 Rp;
    typename VT<T>::I* bad;  // (Rp / W) per-position marks of non-finite inputs
    inline V param(int k, i64 pos) const { return load<V>(base + k * Rp + pos); }
    inline void acc(int k, i64 pos, V v) {
        T* p = racc + k * Rp + pos;
        store(p, load<V>(p) + v);
    }
    inline void mark(i64 pos, I mask) { bad[pos / VT<T>::W] |= mask; }
};

template <typename I> static inline bool any_set(I mask) {  // a few scalar ORs, not one per lane
    uint64_t words[sizeof(I) / 8];
    std::memcpy(words, &mask, sizeof(I));
    uint64_t out = 0;
    for (uint64_t w : words) out |= w;
    return out != 0;
}
