// Fused CPU kernels of the four orthoact families (forward and backward).
//
// One pass over each big tensor: forward reads x and writes y; backward reads x and dy, writes dx
// and reduces the parameter gradients. Nothing but x is kept between forward and backward: the
// basis is recomputed by its recurrence. Elements are processed in chunks of CHUNK values so the
// per-parameter derivative rows E[k][i] = dF(x_i)/dtheta_k stay in L1 and every inner loop
// vectorizes.
//
// Parameter gradients: dL/dtheta_k = sum_i dy_i * E[k][i]. Each chunk reduces in the compute
// precision (float32 for float32 inputs), chunks are accumulated in float64 per thread, and the
// per-thread partial sums are added at the end (no atomics).
//
// Groups: the tensor is contiguous; element i belongs to group (i / block_len) % groups. Two
// layouts:
//   * blocked (long runs of one group): parameters are scalars inside a run;
//   * rows (short runs, e.g. per-channel parameters with channels last): the group pattern repeats
//     every R = groups * block_len elements, the parameters are expanded to (P, R) per position and
//     the gradients are accumulated per position, then folded into groups.
//
// Parameter packing (row g of a (groups, P) array):
//   hermite           [a_0 .. a_n]                          P = n + 1
//   fourier           [b, c_1..c_n, w_1..w_n, phi_1..phi_n]  P = 3n + 1
//   tropical          [a_0 .. a_n]                          P = n + 1
//   tropical_rational [p_0..p_n, a_0..a_n, q_0..q_n, b_0..b_n]  P = 4(n + 1)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num() { return 0; }
static inline int omp_get_num_threads() { return 1; }
#endif

typedef int64_t i64;
static constexpr int CHUNK = 256;
static constexpr i64 MIN_PARALLEL = 32768;  // below this, threads cost more than they save
static constexpr i64 MIN_BLOCK = 128;       // shorter runs of one group use the rows layout

enum Family { HERMITE = 0, FOURIER = 1, TROPICAL = 2, RATIONAL = 3 };

static int n_params(int family, int n) {
    switch (family) {
        case HERMITE: return n + 1;
        case FOURIER: return 3 * n + 1;
        case TROPICAL: return n + 1;
        case RATIONAL: return 4 * (n + 1);
    }
    return -1;
}

// Parameter views: a(k, i) is parameter k at chunk position i.
template <typename T> struct Scalar {
    const T* p;
    inline T operator()(int k, int) const { return p[k]; }
};
template <typename T> struct Rows {
    const T* p;
    i64 stride;
    inline T operator()(int k, int i) const { return p[k * stride + i]; }
};

// ---------------------------------------------------------------------------------------------
// sin and cos of one argument. float: Cody-Waite reduction by pi/2 and Cephes' minimax
// polynomials on [-pi/4, pi/4] (branch-free, so the loops vectorize); large arguments are redone
// by libm (count_large). double: libm.
static inline uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
static inline float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
static inline void sincos_t(float z, float& s, float& c) {
    const float q = (z * 0.636619772367581343f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = z - q * 1.5703125f;
    r = r - q * 4.837512969970703125e-4f;
    r = r - q * 7.54978995489188216e-8f;
    const float r2 = r * r;
    const float sp = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    const float cp = 1.0f - 0.5f * r2 +
                     r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    // Quadrant selection by bit operations (no branches, so GCC vectorizes the caller's loop):
    // odd quadrants swap sine and cosine; bit 1 of q (of q + 1) flips the sign of the sine (cosine).
    const uint32_t quadrant = (uint32_t)(int32_t)q;
    const uint32_t swap = 0u - (quadrant & 1u);
    const uint32_t bs = bits(sp), bc = bits(cp);
    s = from_bits(((bc & swap) | (bs & ~swap)) ^ ((quadrant & 2u) << 30));
    c = from_bits(((bs & swap) | (bc & ~swap)) ^ (((quadrant + 1u) & 2u) << 30));
}
static inline void sincos_t(double z, double& s, double& c) {
    s = std::sin(z);
    c = std::cos(z);
}
static inline bool needs_libm(float z) { return !(std::fabs(z) <= 8192.0f); }
static inline bool needs_libm(double) { return false; }

// ---------------------------------------------------------------------------------------------
// Per-family chunk kernels. fwd: y[i] = F(x[i]). bwd: dx[i] = dy[i] * F'(x[i]) (if dx) and
// E[k * CHUNK + i] = dF(x[i]) / dtheta_k (if E).

template <typename T, typename PV>
static void hermite_fwd(const T* x, T* y, int m, int n, PV a) {
    T hp[CHUNK], hc[CHUNK], acc[CHUNK];
    for (int i = 0; i < m; ++i) {
        hp[i] = T(1);
        hc[i] = x[i];
        acc[i] = a(0, i) + a(1, i) * x[i];
    }
    for (int k = 1; k < n; ++k) {
        const T inv = T(1) / T(k + 1);
        for (int i = 0; i < m; ++i) {
            const T hn = (x[i] * hc[i] - hp[i]) * inv;
            acc[i] += a(k + 1, i) * hn;
            hp[i] = hc[i];
            hc[i] = hn;
        }
    }
    for (int i = 0; i < m; ++i) y[i] = acc[i];
}

template <typename T, typename PV>
static void hermite_bwd(const T* x, const T* g, T* dx, T* E, int m, int n, PV a) {
    T d[CHUNK], hp[CHUNK], hc[CHUNK];
    for (int i = 0; i < m; ++i) {
        hp[i] = T(1);
        hc[i] = x[i];
        d[i] = a(1, i);
    }
    if (E) {
        for (int i = 0; i < m; ++i) {
            E[i] = T(1);
            E[CHUNK + i] = x[i];
        }
    }
    for (int k = 1; k < n; ++k) {
        const T inv = T(1) / T(k + 1);
        for (int i = 0; i < m; ++i) {
            const T hn = (x[i] * hc[i] - hp[i]) * inv;
            d[i] += a(k + 1, i) * hc[i];  // h_{k+1}' = h_k
            hp[i] = hc[i];
            hc[i] = hn;
        }
        if (E) std::memcpy(E + (k + 1) * CHUNK, hc, sizeof(T) * m);
    }
    if (dx)
        for (int i = 0; i < m; ++i) dx[i] = g[i] * d[i];
}

template <typename T> static inline T inv_factorial(int k) {
    T f = T(1);
    for (int j = 2; j <= k; ++j) f *= T(j);
    return T(1) / f;
}

// Number of |z| > 8192 (or non-finite) arguments in a chunk: the float32 reduction above is
// accurate below that, larger ones are recomputed with libm. Counting keeps the loop vectorized.
template <typename T>
static inline int count_large(const T* z, int m) {
    int count = 0;
#pragma omp simd reduction(+ : count)
    for (int i = 0; i < m; ++i) count += needs_libm(z[i]) ? 1 : 0;
    return count;
}

template <typename T, typename PV>
static void fourier_fwd(const T* x, T* y, int m, int n, PV a) {
    T acc[CHUNK], z[CHUNK], sn[CHUNK], cs[CHUNK];
    for (int i = 0; i < m; ++i) acc[i] = a(0, i);
    for (int k = 1; k <= n; ++k) {
        const T f = inv_factorial<T>(k);
        for (int i = 0; i < m; ++i) z[i] = a(n + k, i) * x[i] - a(2 * n + k, i);
        if (count_large(z, m)) {
            for (int i = 0; i < m; ++i) acc[i] += a(k, i) * f * T(std::cos(double(z[i])));
            continue;
        }
        // Through arrays: with the sine unused GCC if-converts less and the loop stays scalar.
        for (int i = 0; i < m; ++i) sincos_t(z[i], sn[i], cs[i]);
        for (int i = 0; i < m; ++i) acc[i] += a(k, i) * f * cs[i];
    }
    for (int i = 0; i < m; ++i) y[i] = acc[i];
}

template <typename T, typename PV>
static void fourier_bwd(const T* x, const T* g, T* dx, T* E, int m, int n, PV a) {
    T d[CHUNK], z[CHUNK], sn[CHUNK], cs[CHUNK];
    for (int i = 0; i < m; ++i) d[i] = T(0);
    if (E)
        for (int i = 0; i < m; ++i) E[i] = T(1);
    for (int k = 1; k <= n; ++k) {
        const T f = inv_factorial<T>(k);
        for (int i = 0; i < m; ++i) z[i] = a(n + k, i) * x[i] - a(2 * n + k, i);
        if (count_large(z, m)) {
            for (int i = 0; i < m; ++i) {
                sn[i] = T(std::sin(double(z[i])));
                cs[i] = T(std::cos(double(z[i])));
            }
        } else {
            for (int i = 0; i < m; ++i) sincos_t(z[i], sn[i], cs[i]);
        }
        for (int i = 0; i < m; ++i) d[i] -= a(k, i) * f * a(n + k, i) * sn[i];
        if (E)
            for (int i = 0; i < m; ++i) {
                const T amp = a(k, i) * f;  // c_k / k!
                E[k * CHUNK + i] = f * cs[i];                   // dF/dc_k
                E[(n + k) * CHUNK + i] = -amp * sn[i] * x[i];   // dF/dw_k
                E[(2 * n + k) * CHUNK + i] = amp * sn[i];       // dF/dphi_k
            }
    }
    if (dx)
        for (int i = 0; i < m; ++i) dx[i] = g[i] * d[i];
}

// Tropical: arg-max with strict '>' keeps the first index on ties; a NaN input never wins a
// comparison, so it is propagated explicitly.
template <typename T, typename PV>
static void tropical_fwd(const T* x, T* y, int m, int n, PV a) {
    const T scale = T(std::sqrt(2.0) / n);
    for (int i = 0; i < m; ++i) {
        T best = a(0, i);
        for (int k = 1; k <= n; ++k) {
            const T v = T(k) * x[i] + a(k, i);
            best = v > best ? v : best;
        }
        y[i] = x[i] != x[i] ? x[i] : scale * best;
    }
}

template <typename T, typename PV>
static void tropical_bwd(const T* x, const T* g, T* dx, T* E, int m, int n, PV a) {
    const T scale = T(std::sqrt(2.0) / n);
    int idx[CHUNK];
    for (int i = 0; i < m; ++i) {
        T best = a(0, i);
        int arg = 0;
        for (int k = 1; k <= n; ++k) {
            const T v = T(k) * x[i] + a(k, i);
            const bool better = v > best;
            best = better ? v : best;
            arg = better ? k : arg;
        }
        idx[i] = arg;
    }
    if (dx)
        for (int i = 0; i < m; ++i) dx[i] = x[i] != x[i] ? x[i] : g[i] * scale * T(idx[i]);
    if (E)
        for (int k = 0; k <= n; ++k)
            for (int i = 0; i < m; ++i) E[k * CHUNK + i] = idx[i] == k ? scale : T(0);
}

template <typename T, typename PV>
static inline void max_affine(T xi, int i, int n, PV a, int slope0, int offset0, T& best, T& slope, int& arg) {
    best = a(slope0, i) * xi + a(offset0, i);
    slope = a(slope0, i);
    arg = 0;
    for (int k = 1; k <= n; ++k) {
        const T v = a(slope0 + k, i) * xi + a(offset0 + k, i);
        const bool better = v > best;
        best = better ? v : best;
        slope = better ? a(slope0 + k, i) : slope;
        arg = better ? k : arg;
    }
}

template <typename T, typename PV>
static void rational_fwd(const T* x, T* y, int m, int n, PV a) {
    const int P = n + 1;
    for (int i = 0; i < m; ++i) {
        T num, den, s;
        int arg;
        max_affine(x[i], i, n, a, 0, P, num, s, arg);
        max_affine(x[i], i, n, a, 2 * P, 3 * P, den, s, arg);
        y[i] = num - den;
    }
}

template <typename T, typename PV>
static void rational_bwd(const T* x, const T* g, T* dx, T* E, int m, int n, PV a) {
    const int P = n + 1;
    int inum[CHUNK], iden[CHUNK];
    T d[CHUNK];
    for (int i = 0; i < m; ++i) {
        T num, den, sn, sd;
        max_affine(x[i], i, n, a, 0, P, num, sn, inum[i]);
        max_affine(x[i], i, n, a, 2 * P, 3 * P, den, sd, iden[i]);
        d[i] = sn - sd;
    }
    if (dx)
        for (int i = 0; i < m; ++i) dx[i] = g[i] * d[i];
    if (E)
        for (int k = 0; k <= n; ++k)
            for (int i = 0; i < m; ++i) {
                const bool on_num = inum[i] == k, on_den = iden[i] == k;
                E[k * CHUNK + i] = on_num ? x[i] : T(0);
                E[(P + k) * CHUNK + i] = on_num ? T(1) : T(0);
                E[(2 * P + k) * CHUNK + i] = on_den ? -x[i] : T(0);
                E[(3 * P + k) * CHUNK + i] = on_den ? T(-1) : T(0);
            }
}

template <typename T, typename PV>
static void chunk_fwd(int family, const T* x, T* y, int m, int n, PV a) {
    switch (family) {
        case HERMITE: hermite_fwd(x, y, m, n, a); break;
        case FOURIER: fourier_fwd(x, y, m, n, a); break;
        case TROPICAL: tropical_fwd(x, y, m, n, a); break;
        case RATIONAL: rational_fwd(x, y, m, n, a); break;
    }
}

template <typename T, typename PV>
static void chunk_bwd(int family, const T* x, const T* g, T* dx, T* E, int m, int n, PV a) {
    switch (family) {
        case HERMITE: hermite_bwd(x, g, dx, E, m, n, a); break;
        case FOURIER: fourier_bwd(x, g, dx, E, m, n, a); break;
        case TROPICAL: tropical_bwd(x, g, dx, E, m, n, a); break;
        case RATIONAL: rational_bwd(x, g, dx, E, m, n, a); break;
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.

static int thread_count(i64 N, int requested) {
    if (N < MIN_PARALLEL || requested < 1) return 1;
    return (int)std::min<i64>(requested, (N + MIN_PARALLEL - 1) / MIN_PARALLEL);
}

template <typename T>
static std::vector<T> expand_rows(const T* params, i64 G, int P, i64 block_len) {
    // (G, P) -> (P, R): position j of a period uses group j / block_len.
    const i64 R = G * block_len;
    std::vector<T> out((size_t)P * R);
    for (int k = 0; k < P; ++k)
        for (i64 j = 0; j < R; ++j) out[k * R + j] = params[(j / block_len) * P + k];
    return out;
}

template <typename T>
static void forward(int family, const T* x, T* y, i64 N, i64 block_len, i64 G, const T* params, int n, int nthreads) {
    const int P = n_params(family, n);
    if (G == 1 || block_len >= MIN_BLOCK) {
#pragma omp parallel num_threads(thread_count(N, nthreads))
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const i64 per = (((N + nt - 1) / nt) + 63) & ~i64(63);
            const i64 lo = std::min(N, t * per), hi = std::min(N, lo + per);
            for (i64 i = lo; i < hi;) {
                const i64 block = G == 1 ? 0 : i / block_len;
                const i64 end = G == 1 ? hi : std::min(hi, (block + 1) * block_len);
                const Scalar<T> a{params + (block % G) * P};
                for (i64 s = i; s < end; s += CHUNK)
                    chunk_fwd(family, x + s, y + s, (int)std::min<i64>(CHUNK, end - s), n, a);
                i = end;
            }
        }
        return;
    }
    const i64 R = G * block_len, rows = N / R;
    const std::vector<T> expanded = expand_rows(params, G, P, block_len);
#pragma omp parallel for num_threads(thread_count(N, nthreads)) schedule(static)
    for (i64 r = 0; r < rows; ++r)
        for (i64 j = 0; j < R; j += CHUNK) {
            const Rows<T> a{expanded.data() + j, R};
            chunk_fwd(family, x + r * R + j, y + r * R + j, (int)std::min<i64>(CHUNK, R - j), n, a);
        }
}

template <typename T>
static void backward(int family, const T* x, const T* g, T* dx, double* dparams, i64 N, i64 block_len, i64 G,
                     const T* params, int n, int nthreads) {
    const int P = n_params(family, n);
    const bool blocked = G == 1 || block_len >= MIN_BLOCK;
    const i64 R = blocked ? 0 : G * block_len;
    const i64 acc_size = blocked ? G * P : P * R;
    const int nt_max = thread_count(N, nthreads);
    std::vector<double> partial(dparams ? (size_t)nt_max * acc_size : 0, 0.0);
    std::vector<T> expanded;
    if (!blocked) expanded = expand_rows(params, G, P, block_len);

#pragma omp parallel num_threads(nt_max)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        std::vector<T> scratch(dparams ? (size_t)P * CHUNK : 0);
        T* E = dparams ? scratch.data() : nullptr;
        double* acc = dparams ? partial.data() + (size_t)t * acc_size : nullptr;
        if (blocked) {
            const i64 per = (((N + nt - 1) / nt) + 63) & ~i64(63);
            const i64 lo = std::min(N, t * per), hi = std::min(N, lo + per);
            for (i64 i = lo; i < hi;) {
                const i64 block = G == 1 ? 0 : i / block_len;
                const i64 end = G == 1 ? hi : std::min(hi, (block + 1) * block_len);
                const i64 group = block % G;
                const Scalar<T> a{params + group * P};
                for (i64 s = i; s < end; s += CHUNK) {
                    const int m = (int)std::min<i64>(CHUNK, end - s);
                    chunk_bwd(family, x + s, g + s, dx ? dx + s : nullptr, E, m, n, a);
                    if (E)
                        for (int k = 0; k < P; ++k) {
                            T sum = T(0);
                            const T* e = E + k * CHUNK;
                            const T* gs = g + s;
#pragma omp simd reduction(+ : sum)
                            for (int q = 0; q < m; ++q) sum += gs[q] * e[q];
                            acc[group * P + k] += double(sum);
                        }
                }
                i = end;
            }
        } else {
            const i64 rows = N / R;
            const i64 per = (rows + nt - 1) / nt;
            const i64 lo = std::min(rows, t * per), hi = std::min(rows, lo + per);
            for (i64 r = lo; r < hi; ++r)
                for (i64 j = 0; j < R; j += CHUNK) {
                    const int m = (int)std::min<i64>(CHUNK, R - j);
                    const i64 s = r * R + j;
                    const Rows<T> a{expanded.data() + j, R};
                    chunk_bwd(family, x + s, g + s, dx ? dx + s : nullptr, E, m, n, a);
                    if (E)
                        for (int k = 0; k < P; ++k) {
                            double* out = acc + k * R + j;
                            const T* e = E + k * CHUNK;
                            const T* gs = g + s;
#pragma omp simd
                            for (int q = 0; q < m; ++q) out[q] += double(gs[q] * e[q]);
                        }
                }
        }
    }
    if (!dparams) return;
    std::fill(dparams, dparams + G * P, 0.0);
    for (int t = 0; t < nt_max; ++t) {
        const double* acc = partial.data() + (size_t)t * acc_size;
        if (blocked) {
            for (i64 q = 0; q < G * P; ++q) dparams[q] += acc[q];
        } else {
            for (int k = 0; k < P; ++k)
                for (i64 j = 0; j < R; ++j) dparams[(j / block_len) * P + k] += acc[k * R + j];
        }
    }
}

extern "C" {

int oa_n_params(int family, int degree) { return n_params(family, degree); }

// dtype: 0 = float32, 1 = float64. Returns 0 on success.
int oa_forward(int family, int dtype, const void* x, void* y, i64 N, i64 block_len, i64 G, const void* params,
               int degree, int nthreads) {
    if (n_params(family, degree) < 0 || degree < 1) return 1;
    if (dtype == 0)
        forward<float>(family, (const float*)x, (float*)y, N, block_len, G, (const float*)params, degree, nthreads);
    else if (dtype == 1)
        forward<double>(family, (const double*)x, (double*)y, N, block_len, G, (const double*)params, degree, nthreads);
    else
        return 2;
    return 0;
}

// dx may be null (no input gradient), dparams may be null (no parameter gradient); dparams is a
// (G, P) float64 array.
int oa_backward(int family, int dtype, const void* x, const void* g, void* dx, double* dparams, i64 N, i64 block_len,
                i64 G, const void* params, int degree, int nthreads) {
    if (n_params(family, degree) < 0 || degree < 1) return 1;
    if (dtype == 0)
        backward<float>(family, (const float*)x, (const float*)g, (float*)dx, dparams, N, block_len, G,
                        (const float*)params, degree, nthreads);
    else if (dtype == 1)
        backward<double>(family, (const double*)x, (const double*)g, (double*)dx, dparams, N, block_len, G,
                         (const double*)params, degree, nthreads);
    else
        return 2;
    return 0;
}
}
