// Fused CPU kernels of the four orthoact families (forward and backward).
//
// One pass over each big tensor: forward reads x and writes y; backward reads x and dy, writes dx
// and reduces the parameter gradients. Nothing but x is kept between forward and backward: the
// basis is recomputed by its recurrence in registers. The code is written on GCC/Clang vector
// extensions (32-byte vectors: 8 floats or 4 doubles) so every step is SIMD whatever the
// auto-vectorizer decides; for float32 with the parameters shared by long runs of elements the
// degree is a template parameter (1..MAX_SPECIALIZED), so the recurrences unroll and all
// accumulators stay in registers.
//
// Parameter gradients: dL/dtheta_k = sum_i dy_i * dF(x_i)/dtheta_k. Each SIMD lane accumulates
// FLUSH / W terms in the compute precision (float32 for float32 inputs), then the lanes are added
// into float64 per-thread partial sums, which are added together at the end (no atomics).
//
// Groups: the tensor is contiguous; element i belongs to group (i / block_len) % groups. Layouts:
//   * blocked (long runs of one group): the parameters are broadcast scalars inside a run;
//   * rows (short runs, e.g. per-channel parameters with channels last): the group pattern repeats
//     every R = groups * block_len elements, the parameters are expanded to (P, R) per position and
//     the gradients are accumulated per position, then folded into groups.
//
// Parameter packing (row g of a (groups, P) array):
//   hermite           [a_0 .. a_n]                                 P = n + 1
//   fourier           [b, c_1..c_n, w_1..w_n, phi_1..phi_n]         P = 3n + 1
//   tropical          [a_0 .. a_n]                                 P = n + 1
//   tropical_rational [p_0..p_n, a_0..a_n, q_0..q_n, b_0..b_n]     P = 4(n + 1)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num() { return 0; }
static inline int omp_get_num_threads() { return 1; }
#endif

typedef int64_t i64;

static constexpr i64 MIN_PARALLEL = 65536;  // below this, threads cost more than they save
static constexpr i64 MIN_BLOCK = 256;       // shorter runs of one group use the rows layout
static constexpr i64 FLUSH = 8192;          // elements per lane-accumulator flush into float64
static constexpr int MAX_DEGREE = 64;       // the Python side sends higher degrees to the reference
static constexpr int MAX_P = 4 * (MAX_DEGREE + 1);
#define MAX_SPECIALIZED 10

enum Family { HERMITE = 0, FOURIER = 1, TROPICAL = 2, RATIONAL = 3 };

static inline int n_params(int family, int n) {
    switch (family) {
        case HERMITE: return n + 1;
        case FOURIER: return 3 * n + 1;
        case TROPICAL: return n + 1;
        case RATIONAL: return 4 * (n + 1);
    }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// SIMD types.
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
template <typename T, typename V> static inline bool any_lane(V mask) {
    bool out = false;
    for (int l = 0; l < VT<T>::W; ++l) out |= mask[l] != 0;
    return out;
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
template <typename T, int P> struct Blocked {
    typedef typename VT<T>::V V;
    V A[P];
    V S[P];
    void set(const T* params, int p) {
        for (int k = 0; k < p; ++k) {
            A[k] = splat<V>(params[k]);
            S[k] = V{};
        }
    }
    inline V param(int k, i64) const { return A[k]; }
    inline void acc(int k, i64, V v) { S[k] += v; }
};

template <typename T> struct RowsLayout {
    typedef typename VT<T>::V V;
    const T* base;  // (P, Rp) expanded parameters
    T* racc;        // (P, Rp) per-position gradient accumulators
    i64 Rp;
    inline V param(int k, i64 pos) const { return load<V>(base + k * Rp + pos); }
    inline void acc(int k, i64 pos, V v) {
        T* p = racc + k * Rp + pos;
        store(p, load<V>(p) + v);
    }
};

// ---------------------------------------------------------------------------------------------
// Families. N > 0: degree known at compile time; N == 0: degree n at run time.
// fwd(x) -> F(x); bwd(x, g) -> dx = g F'(x), and acc(k, g dF/dtheta_k) for every parameter k.
// `aux` is a family-specific scalar prepared by the driver.

template <typename T, int N> struct HermiteF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? N + 1 : MAX_P;
    // Forward evaluates the series by Horner's rule on its monomial coefficients (prepared by the
    // driver): n FMAs per element instead of the three-term recurrence.
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, T) {
        const int n = N > 0 ? N : n_rt;
        V y = a.param(n, pos);
#pragma GCC unroll 16
        for (int k = n - 1; k >= 0; --k) y = y * x + a.param(k, pos);
        return y;
    }
    template <class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, T) {
        const int n = N > 0 ? N : n_rt;
        V hp = splat<V>(T(1)), hc = x, d = a.param(1, pos);
        a.acc(0, pos, g);
        a.acc(1, pos, g * x);
#pragma GCC unroll 16
        for (int k = 1; k < n; ++k) {
            const V hn = (x * hc - hp) * (T(1) / T(k + 1));
            d += a.param(k + 1, pos) * hc;  // h_{k+1}' = h_k
            a.acc(k + 1, pos, g * hn);
            hp = hc;
            hc = hn;
        }
        return g * d;
    }
    static void prepare_forward(const T* raw, T* out, int n) {
        // Monomial coefficients of sum_k a_k h_k, in float64: h_{k+1} = (x h_k - h_{k-1}) / (k+1).
        std::vector<double> prev(n + 1, 0.0), cur(n + 1, 0.0), next(n + 1, 0.0), mono(n + 1, 0.0);
        prev[0] = 1.0;
        mono[0] += raw[0];
        if (n >= 1) {
            cur[1] = 1.0;
            mono[1] += raw[1];
        }
        for (int k = 1; k < n; ++k) {
            for (int j = 0; j <= n; ++j) next[j] = ((j > 0 ? cur[j - 1] : 0.0) - prev[j]) / (k + 1);
            for (int j = 0; j <= n; ++j) mono[j] += raw[k + 1] * next[j];
            std::swap(prev, cur);
            std::swap(cur, next);
        }
        for (int j = 0; j <= n; ++j) out[j] = T(mono[j]);
    }
    static T aux(const T*, i64, int, int) { return T(0); }
};

template <typename T> static inline T inv_factorial(int k) {
    double f = 1.0;
    for (int j = 2; j <= k; ++j) f *= j;
    return T(1.0 / f);
}

template <typename T, int N> struct FourierF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? 3 * N + 1 : MAX_P;
    // Arguments |w x - phi| above 8192 leave the float32 reduction's range: `aux` is the largest
    // |x| for which every argument stays below it; a vector with any larger (or non-finite) x is
    // computed lane by lane with libm in float64.
    static inline bool safe(V x, T bound) {
        typedef typename VT<T>::V VV;
        const VV ax = x < T(0) ? -x : x;
        return !any_lane<T>(!(ax <= bound));
    }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, T bound) {
        const int n = N > 0 ? N : n_rt;
        if (!safe(x, bound)) return fwd_libm(x, a, pos, n);
        V y = a.param(0, pos);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            V s, c;
            sincos_v<false>(a.param(n + k, pos) * x - a.param(2 * n + k, pos), s, c);
            y += a.param(k, pos) * inv_factorial<T>(k) * c;
        }
        return y;
    }
    template <class L> static V fwd_libm(V x, const L& a, i64 pos, int n) {
        V y;
        for (int l = 0; l < VT<T>::W; ++l) {
            double out = a.param(0, pos)[l];
            for (int k = 1; k <= n; ++k)
                out += double(a.param(k, pos)[l]) * inv_factorial<double>(k) *
                       std::cos(double(a.param(n + k, pos)[l]) * x[l] - a.param(2 * n + k, pos)[l]);
            y[l] = T(out);
        }
        return y;
    }
    template <class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, T bound) {
        const int n = N > 0 ? N : n_rt;
        a.acc(0, pos, g);
        V d = V{};
        const bool fast = safe(x, bound);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V w = a.param(n + k, pos), z = w * x - a.param(2 * n + k, pos);
            V s, c;
            if (fast) {
                sincos_v<true>(z, s, c);
            } else {
                for (int l = 0; l < VT<T>::W; ++l) {
                    s[l] = T(std::sin(double(w[l]) * x[l] - a.param(2 * n + k, pos)[l]));
                    c[l] = T(std::cos(double(w[l]) * x[l] - a.param(2 * n + k, pos)[l]));
                }
            }
            const T f = inv_factorial<T>(k);
            const V amp = a.param(k, pos) * f;  // c_k / k!
            const V gs = g * amp * s;
            d -= amp * w * s;
            a.acc(k, pos, g * c * f);        // dF/dc_k   = cos(z) / k!
            a.acc(n + k, pos, -(gs * x));    // dF/dw_k   = -c_k/k! sin(z) x
            a.acc(2 * n + k, pos, gs);       // dF/dphi_k =  c_k/k! sin(z)
        }
        return g * d;
    }
    static void prepare_forward(const T* raw, T* out, int n) { std::memcpy(out, raw, sizeof(T) * (3 * n + 1)); }
    static T aux(const T* params, i64 G, int P, int n) {
        double wmax = 0.0, pmax = 0.0;
        for (i64 g = 0; g < G; ++g)
            for (int k = 1; k <= n; ++k) {
                wmax = std::max(wmax, std::fabs(double(params[g * P + n + k])));
                pmax = std::max(pmax, std::fabs(double(params[g * P + 2 * n + k])));
            }
        if (!(wmax < 1e30) || !(pmax < 8192.0)) return T(-1);  // non-finite or huge: always libm
        return wmax == 0.0 ? T(INFINITY) : T((8192.0 - pmax) / wmax);
    }
};

// Tropical: arg-max with strict '>' keeps the first index on ties; a NaN input never wins a
// comparison, so it is propagated explicitly.
template <typename T, int N> struct TropicalF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? N + 1 : MAX_P;
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, T scale) {
        const int n = N > 0 ? N : n_rt;
        V best = a.param(0, pos);
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V v = T(k) * x + a.param(k, pos);
            best = v > best ? v : best;
        }
        return x != x ? x : scale * best;
    }
    template <class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, T scale) {
        const int n = N > 0 ? N : n_rt;
        V best = a.param(0, pos), arg = V{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V v = T(k) * x + a.param(k, pos);
            const auto better = v > best;
            best = better ? v : best;
            arg = better ? splat<V>(T(k)) : arg;
        }
        const V gs = g * scale;
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) a.acc(k, pos, arg == T(k) ? gs : V{});
        return x != x ? x : gs * arg;
    }
    static void prepare_forward(const T* raw, T* out, int n) { std::memcpy(out, raw, sizeof(T) * (n + 1)); }
    static T aux(const T*, i64, int, int n) { return T(std::sqrt(2.0) / n); }
};

template <typename T, int N> struct RationalF {
    typedef typename VT<T>::V V;
    static constexpr int P = N > 0 ? 4 * (N + 1) : MAX_P;
    template <class L>
    static inline void max_affine(V x, const L& a, i64 pos, int n, int s0, int o0, V& best, V& slope, V& arg) {
        slope = a.param(s0, pos);
        best = slope * x + a.param(o0, pos);
        arg = V{};
#pragma GCC unroll 16
        for (int k = 1; k <= n; ++k) {
            const V s = a.param(s0 + k, pos);
            const V v = s * x + a.param(o0 + k, pos);
            const auto better = v > best;
            best = better ? v : best;
            slope = better ? s : slope;
            arg = better ? splat<V>(T(k)) : arg;
        }
    }
    template <class L> static inline V fwd(V x, const L& a, i64 pos, int n_rt, T) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, s, i;
        max_affine(x, a, pos, n, 0, m, num, s, i);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, s, i);
        return num - den;
    }
    template <class L> static inline V bwd(V x, V g, L& a, i64 pos, int n_rt, T) {
        const int n = N > 0 ? N : n_rt, m = n + 1;
        V num, den, sn, sd, in, id;
        max_affine(x, a, pos, n, 0, m, num, sn, in);
        max_affine(x, a, pos, n, 2 * m, 3 * m, den, sd, id);
        const V gx = g * x;
#pragma GCC unroll 16
        for (int k = 0; k <= n; ++k) {
            const auto on_num = in == T(k), on_den = id == T(k);
            a.acc(k, pos, on_num ? gx : V{});
            a.acc(m + k, pos, on_num ? g : V{});
            a.acc(2 * m + k, pos, on_den ? -gx : V{});
            a.acc(3 * m + k, pos, on_den ? -g : V{});
        }
        return g * (sn - sd);
    }
    static void prepare_forward(const T* raw, T* out, int n) { std::memcpy(out, raw, sizeof(T) * 4 * (n + 1)); }
    static T aux(const T*, i64, int, int) { return T(0); }
};

// ---------------------------------------------------------------------------------------------
// Drivers.

static int thread_count(i64 N, int requested) {
    if (N < MIN_PARALLEL || requested < 1) return 1;
    return (int)std::min<i64>(requested, (N + MIN_PARALLEL - 1) / MIN_PARALLEL);
}

// Thread t's share of [0, N), aligned to 64 elements.
static inline void thread_range(i64 N, int t, int nt, i64& lo, i64& hi) {
    const i64 per = (((N + nt - 1) / nt) + 63) & ~i64(63);
    lo = std::min(N, t * per);
    hi = std::min(N, lo + per);
}

// Apply `body(xv, gv, pos)` to [begin, end) in vectors; the tail is zero-padded (a zero dy adds
// nothing to any gradient) and only its valid lanes are written back.
template <typename T, class Body>
static inline void for_vectors(const T* x, const T* g, T* out, i64 begin, i64 end, i64 pos0, Body body) {
    typedef typename VT<T>::V V;
    constexpr int W = VT<T>::W;
    i64 i = begin;
    for (; i + W <= end; i += W) {
        const V r = body(load<V>(x + i), g ? load<V>(g + i) : V{}, pos0 + (i - begin));
        if (out) store(out + i, r);
    }
    if (i < end) {
        T xt[W] = {}, gt[W] = {}, rt[W];
        const int m = (int)(end - i);
        std::memcpy(xt, x + i, sizeof(T) * m);
        if (g) std::memcpy(gt, g + i, sizeof(T) * m);
        store(rt, body(load<V>(xt), load<V>(gt), pos0 + (i - begin)));
        if (out) std::memcpy(out + i, rt, sizeof(T) * m);
    }
}

template <typename T> static std::vector<T> expand_rows(const T* params, i64 G, int P, i64 block_len, i64 Rp) {
    // (G, P) -> (P, Rp): position j of a period uses group j / block_len; padding repeats the last.
    const i64 R = G * block_len;
    std::vector<T> out((size_t)P * Rp);
    for (int k = 0; k < P; ++k)
        for (i64 j = 0; j < Rp; ++j) out[k * Rp + j] = params[(std::min(j, R - 1) / block_len) * P + k];
    return out;
}

template <typename T, class F>
static void forward_blocked(const T* x, T* y, i64 N, i64 block_len, i64 G, const T* prepared, int n, int P, T aux,
                            int nthreads) {
#pragma omp parallel num_threads(thread_count(N, nthreads))
    {
        i64 lo, hi;
        thread_range(N, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
        Blocked<T, F::P> a;
        for (i64 i = lo; i < hi;) {
            const i64 block = G == 1 ? 0 : i / block_len;
            const i64 end = G == 1 ? hi : std::min(hi, (block + 1) * block_len);
            a.set(prepared + (block % G) * P, P);
            for_vectors<T>(x, nullptr, y, i, end, 0, [&](auto xv, auto, i64 pos) { return F::fwd(xv, a, pos, n, aux); });
            i = end;
        }
    }
}

template <typename T, class F>
static void backward_blocked(const T* x, const T* g, T* dx, double* dparams, i64 N, i64 block_len, i64 G,
                             const T* params, int n, int P, T aux, int nthreads) {
    const int nt_max = thread_count(N, nthreads);
    std::vector<double> partial(dparams ? (size_t)nt_max * G * P : 0, 0.0);
#pragma omp parallel num_threads(nt_max)
    {
        const int t = omp_get_thread_num();
        i64 lo, hi;
        thread_range(N, t, omp_get_num_threads(), lo, hi);
        double* acc = dparams ? partial.data() + (size_t)t * G * P : nullptr;
        Blocked<T, F::P> a;
        for (i64 i = lo; i < hi;) {
            const i64 block = G == 1 ? 0 : i / block_len;
            const i64 end = G == 1 ? hi : std::min(hi, (block + 1) * block_len);
            const i64 group = block % G;
            a.set(params + group * P, P);
            for (i64 s = i; s < end; s += FLUSH) {
                const i64 e = std::min(end, s + FLUSH);
                for_vectors<T>(x, g, dx, s, e, 0, [&](auto xv, auto gv, i64 pos) { return F::bwd(xv, gv, a, pos, n, aux); });
                if (acc)
                    for (int k = 0; k < P; ++k) {
                        acc[group * P + k] += double(lane_sum<T>(a.S[k]));
                        a.S[k] = typename VT<T>::V{};
                    }
            }
            i = end;
        }
    }
    if (!dparams) return;
    std::fill(dparams, dparams + G * P, 0.0);
    for (int t = 0; t < nt_max; ++t)
        for (i64 q = 0; q < G * P; ++q) dparams[q] += partial[(size_t)t * G * P + q];
}

template <typename T, class F>
static void forward_rows(const T* x, T* y, i64 N, i64 block_len, i64 G, const T* prepared, int n, int P, T aux,
                         int nthreads) {
    constexpr int W = VT<T>::W;
    const i64 R = G * block_len, Rp = (R + W - 1) / W * W, rows = N / R;
    const std::vector<T> expanded = expand_rows(prepared, G, P, block_len, Rp);
#pragma omp parallel for num_threads(thread_count(N, nthreads)) schedule(static)
    for (i64 r = 0; r < rows; ++r) {
        const RowsLayout<T> a{expanded.data(), nullptr, Rp};
        for_vectors<T>(x, nullptr, y, r * R, (r + 1) * R, 0, [&](auto xv, auto, i64 pos) { return F::fwd(xv, a, pos, n, aux); });
    }
}

template <typename T, class F>
static void backward_rows(const T* x, const T* g, T* dx, double* dparams, i64 N, i64 block_len, i64 G,
                          const T* params, int n, int P, T aux, int nthreads) {
    constexpr int W = VT<T>::W;
    const i64 R = G * block_len, Rp = (R + W - 1) / W * W, rows = N / R;
    const std::vector<T> expanded = expand_rows(params, G, P, block_len, Rp);
    const int nt_max = thread_count(N, nthreads);
    std::vector<double> partial(dparams ? (size_t)nt_max * P * Rp : 0, 0.0);
#pragma omp parallel num_threads(nt_max)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const i64 per = (rows + nt - 1) / nt, lo = std::min(rows, t * per), hi = std::min(rows, lo + per);
        std::vector<T> racc((size_t)P * Rp, T(0));
        double* acc = dparams ? partial.data() + (size_t)t * P * Rp : nullptr;
        RowsLayout<T> a{expanded.data(), racc.data(), Rp};
        const i64 flush_rows = std::max<i64>(1, FLUSH / R);
        for (i64 r = lo; r < hi; ++r) {
            for_vectors<T>(x, g, dx, r * R, (r + 1) * R, 0, [&](auto xv, auto gv, i64 pos) { return F::bwd(xv, gv, a, pos, n, aux); });
            if (acc && ((r - lo + 1) % flush_rows == 0 || r + 1 == hi))
                for (size_t q = 0; q < racc.size(); ++q) {
                    acc[q] += double(racc[q]);
                    racc[q] = T(0);
                }
        }
    }
    if (!dparams) return;
    std::fill(dparams, dparams + G * P, 0.0);
    for (int t = 0; t < nt_max; ++t)
        for (int k = 0; k < P; ++k)
            for (i64 j = 0; j < R; ++j) dparams[(j / block_len) * P + k] += partial[(size_t)t * P * Rp + k * Rp + j];
}

template <typename T, template <typename, int> class F, int N>
static void run_forward(const T* x, T* y, i64 Ntot, i64 block_len, i64 G, const T* params, int n, int P, int nthreads) {
    std::vector<T> prepared((size_t)G * P);
    for (i64 g = 0; g < G; ++g) F<T, N>::prepare_forward(params + g * P, prepared.data() + g * P, n);
    const T aux = F<T, N>::aux(params, G, P, n);
    if (G == 1 || block_len >= MIN_BLOCK)
        forward_blocked<T, F<T, N>>(x, y, Ntot, block_len, G, prepared.data(), n, P, aux, nthreads);
    else
        forward_rows<T, F<T, 0>>(x, y, Ntot, block_len, G, prepared.data(), n, P, aux, nthreads);
}

template <typename T, template <typename, int> class F, int N>
static void run_backward(const T* x, const T* g, T* dx, double* dparams, i64 Ntot, i64 block_len, i64 G,
                         const T* params, int n, int P, int nthreads) {
    const T aux = F<T, N>::aux(params, G, P, n);
    if (G == 1 || block_len >= MIN_BLOCK)
        backward_blocked<T, F<T, N>>(x, g, dx, dparams, Ntot, block_len, G, params, n, P, aux, nthreads);
    else
        backward_rows<T, F<T, 0>>(x, g, dx, dparams, Ntot, block_len, G, params, n, P, aux, nthreads);
}

// Dispatch on the degree: float32 degrees 1..MAX_SPECIALIZED get their own unrolled code.
#define OA_DEGREE_CASES(CALL)                                                                           \
    switch (n) {                                                                                        \
        case 1: CALL(1); break;                                                                         \
        case 2: CALL(2); break;                                                                         \
        case 3: CALL(3); break;                                                                         \
        case 4: CALL(4); break;                                                                         \
        case 5: CALL(5); break;                                                                         \
        case 6: CALL(6); break;                                                                         \
        case 7: CALL(7); break;                                                                         \
        case 8: CALL(8); break;                                                                         \
        case 9: CALL(9); break;                                                                         \
        case 10: CALL(10); break;                                                                       \
        default: CALL(0);                                                                               \
    }

template <typename T, template <typename, int> class F>
static void forward_family(const T* x, T* y, i64 N, i64 block_len, i64 G, const T* params, int n, int P,
                           int nthreads) {
    if (std::is_same<T, float>::value) {
#define OA_CALL(D) run_forward<T, F, D>(x, y, N, block_len, G, params, n, P, nthreads)
        OA_DEGREE_CASES(OA_CALL)
#undef OA_CALL
    } else {
        run_forward<T, F, 0>(x, y, N, block_len, G, params, n, P, nthreads);
    }
}

template <typename T, template <typename, int> class F>
static void backward_family(const T* x, const T* g, T* dx, double* dparams, i64 N, i64 block_len, i64 G,
                            const T* params, int n, int P, int nthreads) {
    if (std::is_same<T, float>::value) {
#define OA_CALL(D) run_backward<T, F, D>(x, g, dx, dparams, N, block_len, G, params, n, P, nthreads)
        OA_DEGREE_CASES(OA_CALL)
#undef OA_CALL
    } else {
        run_backward<T, F, 0>(x, g, dx, dparams, N, block_len, G, params, n, P, nthreads);
    }
}

template <typename T>
static int forward(int family, const T* x, T* y, i64 N, i64 block_len, i64 G, const T* params, int n, int nt) {
    const int P = n_params(family, n);
    switch (family) {
        case HERMITE: forward_family<T, HermiteF>(x, y, N, block_len, G, params, n, P, nt); return 0;
        case FOURIER: forward_family<T, FourierF>(x, y, N, block_len, G, params, n, P, nt); return 0;
        case TROPICAL: forward_family<T, TropicalF>(x, y, N, block_len, G, params, n, P, nt); return 0;
        case RATIONAL: forward_family<T, RationalF>(x, y, N, block_len, G, params, n, P, nt); return 0;
    }
    return 1;
}

template <typename T>
static int backward(int family, const T* x, const T* g, T* dx, double* dp, i64 N, i64 block_len, i64 G,
                    const T* params, int n, int nt) {
    const int P = n_params(family, n);
    switch (family) {
        case HERMITE: backward_family<T, HermiteF>(x, g, dx, dp, N, block_len, G, params, n, P, nt); return 0;
        case FOURIER: backward_family<T, FourierF>(x, g, dx, dp, N, block_len, G, params, n, P, nt); return 0;
        case TROPICAL: backward_family<T, TropicalF>(x, g, dx, dp, N, block_len, G, params, n, P, nt); return 0;
        case RATIONAL: backward_family<T, RationalF>(x, g, dx, dp, N, block_len, G, params, n, P, nt); return 0;
    }
    return 1;
}

extern "C" {

int oa_max_degree() { return MAX_DEGREE; }

int oa_n_params(int family, int degree) { return n_params(family, degree); }

// dtype: 0 = float32, 1 = float64. Returns 0 on success.
int oa_forward(int family, int dtype, const void* x, void* y, i64 N, i64 block_len, i64 G, const void* params,
               int degree, int nthreads) {
    if (n_params(family, degree) < 0 || degree < 1 || degree > MAX_DEGREE) return 1;
    if (dtype == 0)
        return forward<float>(family, (const float*)x, (float*)y, N, block_len, G, (const float*)params, degree, nthreads);
    if (dtype == 1)
        return forward<double>(family, (const double*)x, (double*)y, N, block_len, G, (const double*)params, degree,
                               nthreads);
    return 2;
}

// dx may be null (no input gradient), dparams may be null (no parameter gradient); dparams is a
// (G, P) float64 array.
int oa_backward(int family, int dtype, const void* x, const void* g, void* dx, double* dparams, i64 N, i64 block_len,
                i64 G, const void* params, int degree, int nthreads) {
    if (n_params(family, degree) < 0 || degree < 1 || degree > MAX_DEGREE) return 1;
    if (dtype == 0)
        return backward<float>(family, (const float*)x, (const float*)g, (float*)dx, dparams, N, block_len, G,
                               (const float*)params, degree, nthreads);
    if (dtype == 1)
        return backward<double>(family, (const double*)x, (const double*)g, (double*)dx, dparams, N, block_len, G,
                                (const double*)params, degree, nthreads);
    return 2;
}
}
