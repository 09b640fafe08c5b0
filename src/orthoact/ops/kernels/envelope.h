// The upper envelope of n + 1 lines s_k x + o_k (host code): the pieces of x's axis on which one line
// is the first arg-max of the exact values, and the float where each piece starts, found by exact
// comparisons. TropicalRational's and Tropical's float32 backwards read each max from it (see their
// headers): every element's gradient then goes to the first arg-max of the exact values, as the float64
// reference's does up to its own rounding, where comparing float32-rounded values may pick another
// line within a rounding of a crossing. M: the most lines' degree; pieces() writes up to n + 2 entries
// of line and start (callers give M + 3).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

template <typename T, int M> struct UpperEnvelope {
    // Whether a - b is exact in float64 for any two of the n + 1 values (float32 ones: finite, their
    // exponents within 28 of each other, zeros aside): then every comparison below is exact.
    static bool exact_differences(const T* v, int n) {
        int lo = 1 << 20, hi = -(1 << 20);
        for (int k = 0; k <= n; ++k) {
            if (!std::isfinite(v[k])) return false;
            if (v[k] != T(0)) lo = std::min(lo, std::ilogb(v[k])), hi = std::max(hi, std::ilogb(v[k]));
        }
        return hi - lo <= 28;
    }
    // The first arg-max of s_k x + o_k at a finite x, each pair compared by the sign of
    // (s_k - s_b) x + (o_k - o_b) in one FMA (exact: the differences are, see exact_differences, and the
    // FMA rounds the exact value once), or at x = -inf (sign < 0: least slope, then greatest offset)
    // or +inf (sign > 0).
    static int winner(const T* s, const T* o, int n, double x, int sign) {
        int best = 0;
        for (int k = 1; k <= n; ++k) {
            const double ds = double(s[k]) - double(s[best]), dn = double(o[k]) - double(o[best]);
            if (sign != 0 ? sign * ds > 0 || (ds == 0 && dn > 0) : std::fma(ds, x, dn) > 0) best = k;
        }
        return best;
    }
    // The greatest T <= t and the least T >= t (+-inf beyond T's range).
    static T at_or_below(double t) {
        if (!(t < double(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
        if (t < -double(std::numeric_limits<T>::max())) return -T(INFINITY);
        const T f = T(t);
        return double(f) > t ? std::nextafter(f, -T(INFINITY)) : f;
    }
    static T at_or_above(double t) { return -at_or_below(-t); }
    // The pieces of max_k (s_k x + o_k) over the finite T values x: line[i] the first arg-max on piece i,
    // start[i] (i >= 1) the least x of piece i. Every crossing of two lines is c = (o_j - o_i) / (s_i - s_j)
    // rounded once (the differences are exact): where the exact crossing is a T value, c is that
    // value; otherwise no T value lies at it or between it and c. So per crossing c, in increasing x:
    // c itself, when it is a T value, as a piece of one value (its exact winner: lines may tie there),
    // then the stretch up to the next crossing, from the least T value above c, with the winner at the
    // midpoint of the two crossings (which lies in the stretch's exact region whenever the stretch
    // holds a T value). A candidate starting at or before earlier ones replaces them (they hold no T
    // value); adjacent candidates with one line merge. Every piece's line is then the exact first
    // arg-max on it, and each line's set is an interval (where it equals the maximum is one, the lines
    // before it tie there at its ends only), so there are at most n + 1 pieces (a candidate about to
    // be replaced may exceed that by one). Returns the count; more than n + 1, which exact_differences
    // rules out, returns 0.
    static int pieces(const T* s, const T* o, int n, int* line, T* start) {
        double cross[(M + 1) * M / 2];
        int m = 0;
        for (int i = 0; i <= n; ++i)
            for (int j = 0; j < i; ++j)
                if (s[i] != s[j]) cross[m++] = (double(o[j]) - double(o[i])) / (double(s[i]) - double(s[j]));
        std::sort(cross, cross + m);
        m = int(std::unique(cross, cross + m) - cross);
        line[0] = winner(s, o, n, 0.0, -1);
        start[0] = -T(INFINITY);
        int count = 1;
        bool over = false;
        auto add = [&](T from, int k) {
            while (count > 1 && from <= start[count - 1]) --count;  // candidates holding no other T value
            if (over || line[count - 1] == k) return;                // the same line goes on
            if (count > n + 1) {
                over = true;
                return;
            }
            line[count] = k;
            start[count++] = from;
        };
        for (int c = 0; c < m; ++c) {
            T b = at_or_above(cross[c]);        // the stretch after the crossing starts at b, or after it
            if (double(b) == cross[c]) {        // the crossing is a float: a piece of its own
                add(b, winner(s, o, n, b, 0));
                b = std::nextafter(b, T(INFINITY));
            }
            add(b, c + 1 < m ? winner(s, o, n, 0.5 * (cross[c] + cross[c + 1]), 0) : winner(s, o, n, 0.0, 1));
        }
        return over || count > n + 1 ? 0 : count;
    }
};
