// Tropical polynomial: F = s max_k (k x + a_k), s = sqrt(2)/n, the piece k = 0 constant.
// Packed row: [a_0 .. a_n] (P = n + 1).
//   dF/da_k = s [k = argmax]     F'(x) = s argmax      (first arg-max on ties)
// At x = +inf every sloped piece is +inf: the arg-max is 1, F = +inf; at -inf the constant wins.
#pragma once
#include "common.h"

template <typename T, int N> struct TropicalF {
    static constexpr int P = N > 0 ? N + 1 : MAX_P;
    static constexpr bool HAS_DERIVATIVE = false;  // grows linearly already: no domain
    template <class V, class L> static OA_INLINE V argmax(V x, const L& a, i64 pos, int n, V& best) {
        best = a.param(0, pos);
        V arg = V{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V v = T(k) * x + a.param(k, pos);
            const auto better = v > best;
            best = select(better, v, best);
            arg = select(better, splat<V>(T(k)), arg);
        }
        return arg;
    }
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T scale) {
        V best;
        argmax(x, a, pos, N > 0 ? N : n_rt, best);
        return scale * best;
    }
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T scale, V) {
        V best;
        return backward(x, g, a, pos, n_rt, scale, best);
    }
    // The backward that writes the value too (kernels.cpp): s times the maximum it finds anyway.
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T scale, V& y) {
        V best;
        const V dx = backward(x, g, a, pos, n_rt, scale, best);
        y = scale * best;
        return dx;
    }
    template <class V, class L> static OA_INLINE V backward(V x, V g, L& a, i64 pos, int n_rt, T scale, V& best) {
        const int n = N > 0 ? N : n_rt;
        const V arg = argmax(x, a, pos, n, best);
        const V gs = g * scale;
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) a.acc(k, pos, select(arg == T(k), gs, V{}));
        return gs * arg;
    }
    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static T aux(const T*, i64, int, int n, bool) { return T(std::sqrt(2.0) / n); }
};
