// Shared pieces of the fused CPU kernels: SIMD types, loads and stores, sin/cos, parameter layouts.
//
// Every family is a struct template `template <typename T, int N> struct XxxF` (N > 0: degree
// known at compile time; N == 0: degree n at run time) with
//   static constexpr int P;                      // parameters per group it may need (array size)
//   template <class L> static V fwd(V x, const L& a, i64 pos, int n, int p, T aux);          // F(x)
//   template <class L> static V bwd(V x, V g, L& a, i64 pos, int n, int p, T aux);  // g F'(x), and
//        a.acc(k, pos, g dF/dtheta_k) for every parameter k
//   static void prepare_forward(const T* raw, T* out, int n, int p);  // per-group forward form
//   static T aux(const T* params, i64 G, int p, int n);              // a family scalar
// The drivers in kernels.cpp apply the non-finite rules for every family (see kernels.cpp), so a
// family only computes its formula; on non-finite lanes its result is overwritten.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

typedef int64_t i64;

#ifndef OA_MAX_DEGREE
#error "build through orthoact/ops/_build.py: families.inc defines OA_MAX_DEGREE"
#endif
static constexpr int MAX_DEGREE = OA_MAX_DEGREE;  // orthoact.ops._common.MAX_KERNEL_DEGREE
static constexpr int MAX_P = 4 * (MAX_DEGREE + 1);

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
