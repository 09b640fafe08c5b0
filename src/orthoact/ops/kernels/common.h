// Shared pieces of the fused CPU kernels: sin/cos, exp and tanh on vectors, parameter layouts, and the
// interface every family implements (the vector types are in simd.h).
//
// Every family is a struct template `template <typename T, int N> struct XxxF` (N > 0: degree
// known at compile time; N == 0: degree n at run time) whose formulas are templates over the vector
// type V (a register or a Pack of them, see simd.h) with
//   static constexpr int P;                      // parameters per group it may need (array size)
//   static constexpr bool HAS_DERIVATIVE;        // fwd_d and bwd<true> exist (the family takes a domain)
//   template <class V, class L> static V fwd(V x, const L& a, i64 pos, int n, int p, T aux);          // F(x)
//   template <bool EXT, class V, class L> static V bwd(V x, V g, L& a, i64 pos, int n, int p, T aux, V t);
//        returns g F'(x) and calls a.acc(k, pos, g dF/dtheta_k) for every parameter k; with EXT
//        (x is a domain end, t = u - x the distance beyond it) g (dF/dtheta_k + t dF'/dtheta_k)
//   template <class V, class L> static V fwd_d(V x, const L& a, i64 pos, int n, int p, T aux, V& d);
//        F(x) and d = F'(x) (on the forward-prepared parameters), for the linear extension
//   static T aux(const T* params, i64 G, int p, int n, bool runs);   // a family scalar (all groups; runs:
//        the call takes the runs layout, long runs of one group, rather than rows, see kernels.cpp)
//   static void prepare_forward(const T* raw, T* out, int n, int p, T aux);   // per-group forward form
//   static void prepare_backward(const T* raw, T* out, int n, int p, T aux);  // per-group backward form
//        (what fwd / bwd read through a.param; the gradients keep the raw columns' order)
// and optionally
//   static void finish_backward(const T* raw, const T* prepared, double* grad, int n, int p, T aux);
//        // the group's sums to its gradients (scaled, rotated, moved), from its raw and backward-prepared rows
//   static constexpr int PX;  static int extra(int n, bool forward, T aux);  // extra prepared columns (at
//        most PX; extra(n, forward, aux) at degree n in the forward's or the backward's rows), which
//        prepare_forward / prepare_backward write from column p + 1 on
//   static constexpr int own(int n);  // the family's own columns at degree n, where they are fixed by
//        it (the kernels then refuse a row of another width: oa_forward / oa_backward return 3)
//   static constexpr int pack_forward(int mode), pack_backward(int mode);  // float32 registers per
//        step in the runs layout without an input map (default 1; see simd.h and kernels.cpp), chosen
//        by kernel-only A/B; mode 0 for a family without clean chunks
//   static constexpr int FAST_MODES;  static int fast_mode(T aux, unsigned skip);  static T fast_bound(T aux);
//   static constexpr bool forward_mode(int mode), value_mode(int mode);
//   template <int MODE, bool FORWARD, class V, class L> static S fast_first(V x, const L& a, i64 pos, int n, T aux);
//   template <int MODE, class V, class L> static V fwd_fast(const S& first, V x, const L& a, i64 pos, int n, int p, T aux);
//   template <int MODE, class V, class L> static V bwd_fast(const S& first, V x, V g, L& a, i64 pos, int n, int p, T aux);
//   template <int MODE, class V, class L> static V bwd_value_fast(const S& first, V x, V g, L& a, i64 pos, int n, int p, T aux, V& y);
//        // clean chunks (kernels.cpp, Clean: the chunk's |x| all finite and within fast_bound(aux), else
//        // it is computed again by fwd / bwd / bwd_value): one of FAST_MODES chosen per call by
//        // fast_mode (the forward's with skip 0), in two stages, fast_first's result S (the
//        // forward's with FORWARD) then the formula from it; forward_mode / value_mode say which modes
//        // a forward and a backward with the value take. A family without FAST_MODES has no clean chunks.
//   static bool value_in_backward(T aux, unsigned skip);  template <class V, class L>
//   static V bwd_value(V x, V g, L& a, i64 pos, int n, int p, T aux, V& y);  // bwd<false> that also
//        sets y = F(x) (on the backward-prepared parameters), for a call that asks for the value
//        (oa_backward's y) in the runs layout without an input map, where value_in_backward says so;
//        otherwise the driver runs the forward first
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

#include "simd.h"

#ifndef OA_MAX_DEGREE
#error "build through orthoact/ops/_build.py: families.inc defines OA_MAX_DEGREE"
#endif
static constexpr int MAX_DEGREE = OA_MAX_DEGREE;  // orthoact.ops._common.MAX_KERNEL_DEGREE
static constexpr int MAX_P = 4 * (MAX_DEGREE + 1) + 1;  // the largest family's row, plus a clamp limit

// |x| and the sign of x (0 at 0, as torch.sign) with bit operations: one and/or per lane.
template <class V> static OA_INLINE Mask<V> sign_bits() {  // the sign bit of every lane (not splat(-0.0): 0 + -0 is +0)
    return as<Mask<V>>(splat<V>(-1.0)) ^ as<Mask<V>>(splat<V>(1.0));
}
template <class V> static OA_INLINE V vabs(V x) { return as<V>(as<Mask<V>>(x) & ~sign_bits<V>()); }
template <class V> static OA_INLINE V vsgn(V x) {
    const Mask<V> sign = as<Mask<V>>(x) & sign_bits<V>(), one = as<Mask<V>>(splat<V>(1.0));
    return as<V>((sign | one) & (x != Lane<V>(0)));  // +-1, and 0 where x == 0 (the comparison is all ones or zero)
}
template <class V> static OA_INLINE V vmin(V a, V b) { return select(a < b, a, b); }
template <class V> static OA_INLINE V vmax(V a, V b) { return select(a > b, a, b); }

template <typename T> static inline T inv_factorial(int k) {
    double f = 1.0;
    for (int j = 2; j <= k; ++j) f *= j;  // inf above 170: 1/inf = 0, as the reference's underflow
    return T(1.0 / f);
}

// sin and cos of double vectors, lane by lane with libm (the float32 kernels take sincospi_v below).
template <bool WANT_SIN, class V>
static OA_INLINE void sincos_v(V z, V& s, V& c) {
    static_assert(std::is_same<Lane<V>, double>::value, "float32 takes sincospi_v");
    for (int l = 0; l < lanes<V>; ++l) {
        if (WANT_SIN) s[l] = std::sin(double(z[l]));
        c[l] = std::cos(double(z[l]));
    }
}

// sin(pi u) and cos(pi u) of float vectors (u in half-turns: Fourier's arguments w' x - phi' with
// w' = fl(w / pi), phi' = fl(phi / pi) prepared per group): q = round(u) and f = u - q, exact (no
// Cody-Waite steps: one rounding and one subtraction), then minimax polynomials in pi f on
// [-pi/2, pi/2] (cosine to degree 10, sine to degree 9, their coefficients scaled by powers of pi),
// the sign of both flipped for odd q: no quadrant selection. Within 1.6e-7 (sine) and 8.4e-8
// (cosine) of sin(pi u), cos(pi u) for |u| < 2^22. With WANT_SIN false only the cosine is produced.
// The cosine is evaluated by Estrin's scheme (in f^2 and f^4): three dependent FMAs instead of five,
// as the kernels that call this are latency-bound (one vector's chain of dependent operations is
// longer than the out-of-order window hides; ~8% of a fixed-frequency Fourier-5 forward+backward,
// kernel-only, 2 threads, 4M float32, at the same operation count); the sine as f times a Horner
// polynomial, the most accurate of the orders tried.
// In two steps, for callers that reduce one argument while the polynomials of another run
// (reduce_pi, then sincospi_reduced or sincospi_unsigned), and in one (sincospi_v).
template <class V> struct PiReduced {
    V f;  // u - round(u), in [-1/2, 1/2]
    V t;  // 1.5 2^23 + round(u): its last mantissa bit is round(u)'s parity
};
template <class V> static OA_INLINE PiReduced<V> reduce_pi(V u) { return PiReduced<V>{u - vround(u), u + 12582912.0f}; }
// The sign bit (alone) of the lanes whose round(u) is odd: where both sin(pi u) and cos(pi u) flip.
template <class V> static OA_INLINE Mask<V> odd_sign(const PiReduced<V>& r) {
    return as<Mask<V>>(as<Unsigned<V>>(r.t) << 31u);
}
template <class V> static OA_INLINE V flip(V v, Mask<V> sign) { return as<V>(as<Mask<V>>(v) ^ sign); }
template <class V> static OA_INLINE V cospi_poly(V f2, V f4) {
    return (1.0f + f2 * -4.934802055e+00f) + f4 * ((4.058709621e+00f + f2 * -1.335216165e+00f) +
                                                  f4 * (2.349539250e-01f + f2 * -2.442069724e-02f));
}
// cos(pi f) to degree 8 (Horner in f^2: four FMAs, no f^4), within 1.41e-7 on [-1/2, 1/2] (degree
// 10: 1.1e-7 in the same order, 8.4e-8 in cospi_poly's): for a cosine that only enters a gradient's
// sum (learned-frequency Fourier's dF/dc_k), whose float32 accumulation errs more. Minimax with the
// constant 1, the other coefficients searched among nearby floats for the least error of this
// evaluation (emulated over every float in [1/64, 1/2]: at most 1.404e-7).
template <class V> static OA_INLINE V cospi_poly8(V f2) {
    return 1.0f + f2 * (-4.9347954e+00f + f2 * (4.0584507e+00f + f2 * (-1.3320938e+00f + f2 * 2.2008061e-01f)));
}
template <class V> static OA_INLINE V sinpi_poly(V f, V f2) {  // f: the reduced argument, its sign flipped or not
    return f * (3.141592741e+00f + f2 * (-5.167710781e+00f + f2 * (2.550082445e+00f +
                                        f2 * (-5.983080864e-01f + f2 * 7.767596841e-02f))));
}
template <bool WANT_SIN, class V>
static OA_INLINE void sincospi_reduced(const PiReduced<V>& r, V& s, V& c) {
    const V f2 = r.f * r.f, f4 = f2 * f2;
    const Mask<V> sign = odd_sign(r);
    c = flip(cospi_poly(f2, f4), sign);
    if (WANT_SIN) s = flip(sinpi_poly(r.f, f2), sign);
}
// The same values with the cosine's sign left to the caller: s = sin(pi u) (the sine is odd: its sign
// goes onto f, beside f^2), cp = cos(pi f) = |cos(pi u)|, and the sign bit to apply to cp, or to a
// factor that multiplies it (also beside the polynomial). Bit for bit sincospi_reduced's values: a
// sign flip is exact, and (-a) b = -(a b) in every rounding. It takes the flip off the end of both
// chains (learned-frequency Fourier, where the rest of the harmonic waits on them). SUM_COSINE: the
// cosine to degree 8 (cospi_poly8).
template <bool WANT_SIN, bool SUM_COSINE = false, class V>
static OA_INLINE Mask<V> sincospi_unsigned(const PiReduced<V>& r, V& s, V& cp) {
    const V f2 = r.f * r.f;
    const Mask<V> sign = odd_sign(r);
    if constexpr (SUM_COSINE) cp = cospi_poly8(f2);
    else cp = cospi_poly(f2, f2 * f2);
    if (WANT_SIN) s = sinpi_poly(flip(r.f, sign), f2);
    return sign;
}
template <bool WANT_SIN, class V>
static OA_INLINE void sincospi_v(V u, V& s, V& c) {
    sincospi_reduced<WANT_SIN>(reduce_pi(u), s, c);
}

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
// Packs take it register by register (the clamp is not a hot path).
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
template <class V, int U> static OA_INLINE Pack<V, U> tanh_half(Pack<V, U> x) {
    for (int u = 0; u < U; ++u) x.v[u] = tanh_half(x.v[u]);
    return x;
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
// input was non-finite (their group's gradients become NaN). A family may leave out the sums of the
// tensors in `skip` (their columns are then not read).
// (The sums take a 64-byte line each, the object aligned to one: where a loop keeps them in memory,
// what else shares their lines moved with the stack's alignment and made its time bimodal;
// learned-frequency Fourier-5's backward, kernel-only, 1 thread, 4M float32, at the 16 stack offsets
// tried: 8.1-8.2 ms with the lines, 8.1-8.2 or 9.0-9.3 ms without.)
template <typename T, int P> struct alignas(64) Blocked {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    static constexpr bool UNIFORM = true;  // param(k, pos) is the same in every lane
    struct alignas(64) Sum { V v; };
    V A[P];
    Sum S[P];
    I bad{};
    unsigned skip = 0;  // parameter tensors whose gradients are not wanted (bit j: the j-th; see kernels.cpp)
    const T* row = nullptr;  // the group's prepared row, as set
    int width = 0;           // the row's columns, as set
    void set(const T* params, int p) {
        row = params;
        width = p;
        for (int k = 0; k < p; ++k) A[k] = splat<V>(params[k]);
        clear();
    }
    // The sums and marks back to zero (a chunk computed again, kernels.cpp).
    void clear() {
        for (int k = 0; k < width; ++k) S[k].v = V{};
        bad = I{};
    }
    OA_INLINE V param(int k, i64) const { return A[k]; }
    // Parameters k .. k + W - 1 of the row, one per lane (a table for permute; the row must have them).
    OA_INLINE V lanes(int k) const { return load<V>(row + k); }
    // A pack's registers are added together before they reach the accumulator (one add per pack).
    OA_INLINE V& sum(int k) { return S[k].v; }
    template <class X> OA_INLINE void acc(int k, i64, const X& v) { S[k].v += fold(v); }
    template <class M, class X> OA_INLINE void acc_if(int k, i64, const M& mask, const X& v) {
        if constexpr (VecTraits<X>::IS_PACK) S[k].v += fold(select(mask, v, X{}));
        else S[k].v = mask ? S[k].v + v : S[k].v;  // one masked add
    }
    template <class M> OA_INLINE void mark(i64, const M& mask) {
        if constexpr (VecTraits<M>::IS_PACK) {
            for (const I& m : mask.v) bad |= m;
        } else {
            bad |= mask;
        }
    }
};

// Per-position parameters (single registers only).
template <typename T> struct RowsLayout {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    static constexpr bool UNIFORM = false;
    const T* base;  // (P, Rp) expanded parameters
    T* racc;        // (P, Rp) per-position gradient accumulators
    i64 Rp;
    I* bad;         // (Rp / W) per-position marks of non-finite inputs
    unsigned skip;  // as Blocked's
    OA_INLINE V param(int k, i64 pos) const { return load<V>(base + k * Rp + pos); }
    OA_INLINE void acc(int k, i64 pos, V v) {
        T* p = racc + k * Rp + pos;
        store(p, load<V>(p) + v);
    }
    OA_INLINE void acc_if(int k, i64 pos, I mask, V v) { acc(k, pos, mask ? v : V{}); }
    OA_INLINE void mark(i64 pos, I mask) { bad[pos / VT<T>::W] |= mask; }
};
