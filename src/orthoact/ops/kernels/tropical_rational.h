// Tropical rational: F = max_k (p_k x + a_k) - max_k (q_k x + b_k).
// Packed row: [p_0..p_n, a_0..a_n, q_0..q_n, b_0..b_n] (P = 4(n + 1)).
//   at the numerator's arg-max i: dF/dp_i = x, dF/da_i = 1; at the denominator's j: dF/dq_j = -x,
//   dF/db_j = -1;  F'(x) = p_i - q_j  (first arg-max on ties; +-inf inputs count as NaN).
#pragma once
#include "common.h"

template <typename T, int N> struct TropicalRationalF {
    static constexpr int P = N > 0 ? 4 * (N + 1) : MAX_P;
    static constexpr bool HAS_DERIVATIVE = false;  // grows linearly already: no domain
    // max_k (s_k x + o_k), its first arg-max and the slope there. With one group's parameters in every
    // lane (runs layout) and the n + 1 slopes fitting one vector, the slope is one permute of them by
    // the arg-max, not a blend per piece.
    // Two registers per backward step (simd.h): kernel-only A/B on AMD Zen 3 (AVX2), TR-5, 1 thread,
    // 4M float32: backward 0.87x; the forward gains nothing (1.00x).
    static constexpr int PACK = 2;
    static int pack_forward(T) { return 1; }
    static int pack_backward(T) { return PACK; }
    template <class L> static constexpr bool lookup() { return N > 0 && N + 1 <= VT<T>::W && L::UNIFORM; }
    template <class V, class L>
    static OA_INLINE void max_affine(V x, const L& a, i64 pos, int n, int s0, int o0, V& best, V& slope, Mask<V>& arg) {
        typedef Mask<V> I;
        slope = a.param(s0, pos);
        best = slope * x + a.param(o0, pos);
        arg = I{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V s = a.param(s0 + k, pos);
            const V v = s * x + a.param(o0 + k, pos);
            const auto better = v > best;
            best = select(better, v, best);
            if (!lookup<L>()) slope = select(better, s, slope);
            arg = select(better, splat<I>(k), arg);
        }
        if constexpr (lookup<L>()) {
            typename VT<T>::V table{};
            for (int k = 0; k <= n; ++k) table[k] = a.param(s0 + k, pos)[0];
            slope = permute(table, arg);
        }
    }
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, s;
        Mask<V> i;
        max_affine(x, a, pos, n, 0, m, num, s, i);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, s, i);
        return num - den;
    }
    // The backward of one vector, in one pass: both arg-maxes and the 4(n + 1) masked sums (x g and g
    // at the numerator's arg-max, -x g and -g at the denominator's). Splitting the numerator's and the
    // denominator's sums into two sweeps per chunk (12 accumulators live, not 24) was 5-25% slower on
    // the AMD EPYC (Zen 5) of 2026-12-04 (kernel-only A/B, 4M float32, 1 and 2 threads, by the
    // machine's state), though an Intel Xeon had preferred it: one pass is the simpler code.
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T, V) {
        V y;
        return backward<false>(x, g, a, pos, n_rt, y);
    }
    // The backward that writes the value too (kernels.cpp): the difference of the maxima it finds anyway.
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T, V& y) {
        return backward<true>(x, g, a, pos, n_rt, y);
    }
    template <bool VALUE, class V, class L> static OA_INLINE V backward(V x, V g, L& a, i64 pos, int n_rt, V& y) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, num_slope, den_slope;
        Mask<V> arg;
        max_affine(x, a, pos, n, 0, m, num, num_slope, arg);
        arg_sums(a, pos, n, 0, arg, g, g * x);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, den_slope, arg);
        const V ng = -g;
        arg_sums(a, pos, n, 2 * m, arg, ng, ng * x);
        if constexpr (VALUE) y = num - den;
        return g * (num_slope - den_slope);
    }
    // The slope sums (columns s0..s0+n) and offset sums (the n + 1 after them) of one max: v x and v on
    // the lanes whose arg-max is k.
    template <class V, class L> static OA_INLINE void arg_sums(L& a, i64 pos, int n, int s0, Mask<V> arg, V v, V vx) {
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) {
            const auto on = arg == k;
            a.acc_if(s0 + k, pos, on, vx);
            a.acc_if(s0 + n + 1 + k, pos, on, v);
        }
    }
    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T*, i64, int, int) { return T(0); }
};
