// Tropical polynomial: F = s max_k (k x + a_k), s = sqrt(2)/n, the piece k = 0 constant.
// Packed row: [a_0 .. a_n] (P = n + 1).
//   dF/da_k = s [k = argmax]     F'(x) = s argmax      (first arg-max on ties)
// At x = +inf every sloped piece is +inf: the arg-max is 1, F = +inf; at -inf the constant wins.
// The float32 backward of the runs layout takes the arg-max from the lines' upper envelope (envelope.h,
// prepared per group on the host): a comparison per piece boundary and one masked sum per piece, and
// the first arg-max of the exact values k x + a_k, as the float64 reference's, where comparing
// float32-rounded values picks another line within a rounding of a crossing (the paper's init: every
// 0 < x below about 1e-7; 4 inputs in 40M of N(0, 1)). Kernel-only A/B against the per-line loop,
// 2 threads, 4M float32, Tropical-5: backward 0.94-0.99 with the paper's init (2 pieces), 1.2-1.7
// with every line on the envelope (6 pieces). The forward, the rows layout, float64 kernels, degrees
// compiled without their own code (N = 0) and offsets that fail exact_differences keep the per-line
// loop: aux < 0 says the envelope (its magnitude is s either way). With denormals flushed
// (torch.set_flush_denormal(True)) a piece starting at the least denormal starts at 0: there the
// paper's init gives x = 0 line n.
#pragma once
#include "common.h"
#include "envelope.h"

template <typename T, int N> struct TropicalF {
    static constexpr int P = N > 0 ? N + 1 : MAX_P;
    static constexpr int M = N > 0 ? N : OA_MAX_DEGREE;
    static constexpr bool HAS_DERIVATIVE = false;  // grows linearly already: no domain
    static constexpr bool ENVELOPE = N > 0 && std::is_same<T, float>::value;
    static OA_INLINE bool by_envelope(T aux) { return ENVELOPE && aux < T(0); }
    static OA_INLINE T scale_of(T aux) { return aux < T(0) ? -aux : aux; }
    typedef UpperEnvelope<T, M> Envelope;

    // Extra backward columns with the envelope (from own(n) + 1): the count of sum columns, whether
    // +inf lanes leave the last piece, and the column they sum into; the starts of pieces 1..n (NaN
    // past the last piece: no x reaches them); the n + 1 pieces' lines k and offsets a_k (tables that
    // permute reads as one vector; past the last piece, the last's); W columns of padding. The first
    // piece is line 0's (the least slope), which wins at -inf as the rule says. At +inf the rule says
    // line 1, which the last piece is only at degree 1: elsewhere +inf lanes sum into line 1's piece's
    // column, or, when line 1 is on no piece, into the column after the last piece (a line off the
    // envelope leaves one free).
    static constexpr int PX = ENVELOPE ? 3 * M + 5 + VT<T>::W : 0;
    static int extra(int n, bool forward, T aux) { return forward || !by_envelope(aux) ? 0 : 3 * n + 5 + VT<T>::W; }
    static constexpr OA_INLINE int own(int n) { return n + 1; }

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
    template <class V, class L> static OA_INLINE V fwd(V x, const L& a, i64 pos, int n_rt, int, T aux) {
        V best;
        argmax(x, a, pos, N > 0 ? N : n_rt, best);
        return scale_of(aux) * best;
    }
    template <bool EXT, class V, class L> static OA_INLINE V bwd(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V) {
        V best;
        return backward<false>(x, g, a, pos, n_rt, aux, best);
    }
    // The backward that writes the value too (kernels.cpp): s times the maximum it finds anyway.
    static bool value_in_backward(T, unsigned) { return true; }
    template <class V, class L> static OA_INLINE V bwd_value(V x, V g, L& a, i64 pos, int n_rt, int, T aux, V& y) {
        V best;
        const V dx = backward<true>(x, g, a, pos, n_rt, aux, best);
        y = scale_of(aux) * best;
        return dx;
    }
    template <bool VALUE, class V, class L> static OA_INLINE V backward(V x, V g, L& a, i64 pos, int n_rt, T aux, V& best) {
        const int n = N > 0 ? N : n_rt;
        const V gs = g * scale_of(aux);
        if constexpr (ENVELOPE && L::UNIFORM)
            if (by_envelope(aux)) return gs * envelope_max<VALUE>(x, a, pos, n, gs, best);
        const V arg = argmax(x, a, pos, n, best);
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) a.acc(k, pos, select(arg == T(k), gs, V{}));
        return gs * arg;
    }
    // The arg-max line k at x from the envelope, the maximum with VALUE; gs summed per piece (piece i's
    // in column i, +inf lanes' in theirs: finish_backward moves them to the lines). The loop stops at
    // the group's last column (a branch per piece, the same for a whole run).
    static constexpr bool lookup() { return N > 0 && N + 1 <= VT<T>::W; }
    template <bool VALUE, class V, class L> static OA_INLINE V envelope_max(V x, L& a, i64 pos, int n, V gs, V& best) {
        typedef Mask<V> I;
        const int c0 = own(n) + 1, s0 = c0 + 3, l0 = s0 + n, o0 = l0 + n + 1;  // count, +inf, starts, lines, offsets
        const int stop = int(a.param(c0, pos)[0]) - 1;  // the last column: the last piece's, or +inf's after it
        const int inf_column = int(a.param(c0 + 2, pos)[0]);
        const bool own_inf = a.param(c0 + 1, pos)[0] != T(0);
        const I inf = own_inf ? I(x == T(INFINITY)) : I{}, keep = ~inf;
        I idx{}, from = ~I{};  // the piece's index; the lanes at or past the current piece's start
        V line{}, offset{};
        if constexpr (!lookup()) line = a.param(l0, pos), offset = a.param(o0, pos);
#pragma GCC unroll 16
        for (int i = 0; i <= n; ++i) {
            if (i > stop) break;
            const I next = i < n ? I(x >= V(a.param(s0 + i, pos))) : I{};
            if (i < n) {
                idx -= next;
                if constexpr (!lookup()) {
                    line = select(next, V(a.param(l0 + 1 + i, pos)), line);
                    offset = select(next, V(a.param(o0 + 1 + i, pos)), offset);
                }
            }
            a.acc_if(i, pos, ((from ^ next) & keep) | (i == inf_column ? inf : I{}), gs);
            from = next;
        }
        if constexpr (lookup()) {
            line = permute(a.lanes(l0), idx);
            if constexpr (VALUE) offset = permute(a.lanes(o0), idx);
        }
        line = select(inf, splat<V>(T(1)), line);
        if constexpr (VALUE) best = select(line == T(0), offset, line * x + offset);  // (0 * -inf: a_0)
        return line;
    }

    static void prepare_forward(const T* raw, T* out, int, int p, T) { std::memcpy(out, raw, sizeof(T) * p); }
    static void prepare_backward(const T* raw, T* out, int n, int p, T aux) {
        std::memcpy(out, raw, sizeof(T) * p);
        if (!by_envelope(aux)) return;
        T slopes[M + 1];
        for (int k = 0; k <= n; ++k) slopes[k] = T(k);
        int line[M + 3];
        T start[M + 3];
        int count = Envelope::pieces(slopes, raw, n, line, start);
        if (!count) line[0] = 0, count = 1;  // (more pieces than lines, which cannot happen: line 0 alone)
        int inf_column = count;  // line 1's piece, or the column after the last
        for (int i = 0; i < count; ++i)
            if (line[i] == 1) inf_column = i;
        const int c0 = own(n) + 1, s0 = c0 + 3, l0 = s0 + n, o0 = l0 + n + 1;
        out[c0] = T(std::max(count, inf_column + 1));  // the columns the kernel sums into
        out[c0 + 1] = T(line[count - 1] != 1);
        out[c0 + 2] = T(inf_column);
        for (int i = 1; i <= n; ++i) out[s0 + i - 1] = i < count ? start[i] : T(NAN);
        for (int i = 0; i <= n; ++i) {
            const int k = line[std::min(i, count - 1)];
            out[l0 + i] = T(k);
            out[o0 + i] = raw[k];
        }
    }
    // The envelope's per-piece sums to the pieces' lines, and +inf's column to line 1 (from the
    // prepared row); a group whose inputs had a NaN (every sum NaN) keeps them.
    static void finish_backward(const T*, const T* prepared, double* grad, int n, int, T aux) {
        if (!by_envelope(aux)) return;
        bool all_nan = true;
        for (int k = 0; k <= n; ++k) all_nan = all_nan && std::isnan(grad[k]);
        if (all_nan) return;
        const int c0 = own(n) + 1, l0 = c0 + 3 + n, columns = int(prepared[c0]), inf_column = int(prepared[c0 + 2]);
        double piece[M + 1];
        std::copy(grad, grad + n + 1, piece);
        std::fill(grad, grad + n + 1, 0.0);
        for (int i = 0; i < columns; ++i) grad[i == inf_column ? 1 : int(prepared[l0 + i])] += piece[i];
    }
    // -s for float32 kernels of a compiled degree in the runs layout whose offsets have exact
    // differences in every group (exact_differences: the lines' slopes 0..n always do), else s.
    static T aux(const T* params, i64 G, int P_, int n, bool runs) {
        const T s = T(std::sqrt(2.0) / n);
        if (!ENVELOPE || !runs) return s;
        for (i64 g = 0; g < G; ++g)
            if (!Envelope::exact_differences(params + g * P_, n)) return s;
        return -s;
    }
};
