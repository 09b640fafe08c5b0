// Tropical rational: F = max_k (p_k x + a_k) - max_k (q_k x + b_k).
// Packed row: [p_0..p_n, a_0..a_n, q_0..q_n, b_0..b_n] (P = 4(n + 1)).
//   at the numerator's arg-max i: dF/dp_i = x, dF/da_i = 1; at the denominator's j: dF/dq_j = -x,
//   dF/db_j = -1;  F'(x) = p_i - q_j  (first arg-max on ties; +-inf inputs count as NaN).
#pragma once
#include "common.h"

template <typename T, int N> struct TropicalRationalF {
    typedef typename VT<T>::V V;
    typedef typename VT<T>::I I;
    static constexpr int P = N > 0 ? 4 * (N + 1) : MAX_P;
    static constexpr bool HAS_DERIVATIVE = false;  // grows linearly already: no domain
    // max_k (s_k x + o_k), its first arg-max and the slope there. With one group's parameters in every
    // lane (runs layout) and the n + 1 slopes fitting one vector, the slope is one permute of them by
    // the arg-max, not a blend per piece.
    template <class L> static constexpr bool lookup() { return N > 0 && N + 1 <= VT<T>::W && L::UNIFORM; }
    template <class L>
    static OA_INLINE void max_affine(V x, const L& a, i64 pos, int n, int s0, int o0, V& best, V& slope, I& arg) {
        slope = a.param(s0, pos);
        best = slope * x + a.param(o0, pos);
        arg = I{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V s = a.param(s0 + k, pos);
            const V v = s * x + a.param(o0 + k, pos);
            const auto better = v > best;
            best = better ? v : best;
            if (!lookup<L>()) slope = better ? s : slope;
            arg = better ? splat<I>(k) : arg;
        }
        if constexpr (lookup<L>()) {
            V table{};
            for (int k = 0; k <= n; ++k) table[k] = a.param(s0 + k, pos)[0];
            slope = __builtin_shuffle(table, arg);
        }
    }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, int, T) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, s;
        I i;
        max_affine(x, a, pos, n, 0, m, num, s, i);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, s, i);
        return num - den;
    }
    // The backward of one vector: both sweeps in turn (the rows layout and the clamp take this).
    template <bool EXT, class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, int p, T aux, V) {
        V slope_num;
        bwd_sweep<0>(x, g, a, pos, n_rt, p, aux, slope_num);
        return bwd_sweep<1>(x, g, a, pos, n_rt, p, aux, slope_num);
    }
    // The plain backward in two sweeps over each chunk (kernels.cpp): the numerator's 2(n + 1)
    // accumulators, then the denominator's, each set live in registers alone (24 at degree 5 did not
    // fit the 32 vector registers with the parameters: each accumulation was a load, add and store).
    // Sweep 0 leaves the numerator's slope in `carry`; sweep 1 returns g F'(x).
    static constexpr int SWEEPS = 2;
    template <int S, class L> static OA_INLINE V bwd_sweep(V x, V g, L& a, i64 pos, int n_rt, int, T, V& carry) {
        const int n = N > 0 ? N : n_rt, m = n + 1, s0 = S == 0 ? 0 : 2 * m;
        V best, slope;
        I arg;
        max_affine(x, a, pos, n, s0, s0 + m, best, slope, arg);
        const V gs = S == 0 ? g : -g, gx = gs * x;
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) {
            const auto on = arg == k;
            a.acc_if(s0 + k, pos, on, gx);
            a.acc_if(s0 + m + k, pos, on, gs);
        }
        if (S == 0) {
            carry = slope;
            return V{};
        }
        return g * (carry - slope);
    }
    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T*, i64, int, int) { return T(0); }
};
