/* Quadrature rules for integrated gradients on [0, 1].
 *
 * Gauss-Legendre nodes are the roots of the Legendre polynomial P_n, found by
 * Newton's iteration in double from Tricomi's first-order guess
 * cos(pi (i - 1/4) / (n + 1/2)), with P_n and P_n' from the three-term
 * recurrence; the weight of a root t is 2 / ((1 - t^2) P_n'(t)^2) on [-1, 1],
 * halved on [0, 1]. Only the positive half is iterated: the rule is
 * symmetric, and an odd n has the root 0 exactly (alpha 1/2).
 *
 * Why the weights are fixed up: IG's answer on a linear model is (x - x') w
 * times the sum of the weights, so a rule whose weights do not sum to 1 is
 * wrong by that factor (Captum's trapezoid sums to 1 - 1/n). Computed in
 * double, the Gauss-Legendre weights sum to 1 within rounding (measured for
 * every n <= 4096: at most 5.6e-15 away, at n = 3574), and the trapezoid's
 * 1/(n-1) is itself rounded. Adjusting one weight by the residual does not
 * always reach 1.0 exactly in a left-to-right sum: ties in the additions
 * after it round to even and skip 1.0 for about 6% of the sizes. So every
 * weight is rounded to a whole multiple of u = 2^-53 and the shortfall of
 * the units from 2^53 (at most about n/2 + 50) is handed out one unit at a
 * time to the weights nearest the middle, the largest. Then every partial
 * sum is itself a multiple of u below 1, exactly representable: the weights
 * add up to exactly 1.0 in ANY order. Measured over both rules and every
 * n <= 4096: each weight moves by at most 1.5 u = 1.7e-16, at most 2.3e-10
 * of itself (the smallest Gauss-Legendre weight is 2.2e-7, at n = 4096):
 * far below the rule's own discretisation error and float32 gradients. */
#include "explain/attribution.h"

#include <math.h>
#include <stdint.h>

#define S_NEWTON_MAX 100

/* P_n(t) into *p and P_n'(t) into *dp, n >= 1, |t| < 1. */
static void s_legendre(int n, double t, double *p, double *dp)
{
    double p0 = 1.0, p1 = t;
    for (int k = 2; k <= n; k++) {
        double p2 = ((2.0 * k - 1.0) * t * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    *p = p1;
    *dp = n * (t * p1 - p0) / (t * t - 1.0);
}

static void s_gauss_legendre(int n, double *alpha, double *weight)
{
    const double pi = 3.14159265358979323846;
    int half = (n + 1) / 2;
    for (int i = 1; i <= half; i++) {
        double t = cos(pi * (i - 0.25) / (n + 0.5));
        double p, dp;
        if (n % 2 == 1 && i == half) {
            t = 0.0; /* the middle root of an odd rule, exactly */
        } else {
            for (int it = 0; it < S_NEWTON_MAX; it++) {
                s_legendre(n, t, &p, &dp);
                double dt = p / dp;
                t -= dt;
                if (fabs(dt) <= 1e-16 * fabs(t))
                    break;
            }
        }
        s_legendre(n, t, &p, &dp);
        double w = 1.0 / ((1.0 - t * t) * dp * dp); /* 2/(...) halved for [0, 1] */
        /* Root t > 0 is the i-th largest: alpha (1 + t)/2 at n - i, its
         * mirror (1 - t)/2 at i - 1. */
        alpha[n - i] = 0.5 * (1.0 + t);
        weight[n - i] = w;
        alpha[i - 1] = 0.5 * (1.0 - t);
        weight[i - 1] = w;
    }
}

/* Makes the weights whole multiples of 2^-53 that add up to exactly 2^53
 * units (see the top): each is rounded to the nearest unit, then the
 * shortfall (or excess) is handed out one unit at a time to the weights
 * nearest the middle, in mirrored pairs, which are the largest ones. */
static void s_normalise(double *w, int n)
{
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        int64_t units = (int64_t)llround(ldexp(w[k], 53));
        total += units;
        w[k] = (double)units;
    }
    int64_t deficit = ((int64_t)1 << 53) - total;
    /* Whole rounds at once (not needed by the rules here, whose shortfall
     * is below n, but it bounds the loop below), then the rest one unit each. */
    int64_t each = deficit / n;
    for (int k = 0; k < n; k++)
        w[k] += (double)each;
    deficit -= each * n;
    /* |deficit| < n now, and the pairs below visit every index once. */
    for (int d = 0; 2 * d < n && deficit != 0; d++) {
        int pair[2] = {(n - 1) / 2 - d, n / 2 + d};
        for (int q = 0; q < 2 && deficit != 0; q++) {
            if (q == 1 && pair[1] == pair[0])
                break;
            int64_t step = deficit > 0 ? 1 : -1;
            w[pair[q]] += (double)step;
            deficit -= step;
        }
    }
    for (int k = 0; k < n; k++)
        w[k] = ldexp(w[k], -53);
}

int gb_ig_rule_points(gb_ig_rule_t rule, int n, double *alpha, double *weight, gb_error_t *err)
{
    if (rule != GB_IG_GAUSS_LEGENDRE && rule != GB_IG_TRAPEZOID)
        return gb_error_set(err, GB_EINVAL, "quadrature rule %d unknown", (int)rule);
    int min = rule == GB_IG_TRAPEZOID ? 2 : 1;
    if (n < min || n > GB_IG_MAX_STEPS)
        return gb_error_set(err, GB_EINVAL, "%s rule: %d points outside %d..%d",
                            rule == GB_IG_TRAPEZOID ? "trapezoid" : "Gauss-Legendre", n, min,
                            GB_IG_MAX_STEPS);
    if (rule == GB_IG_GAUSS_LEGENDRE) {
        s_gauss_legendre(n, alpha, weight);
    } else {
        double h = 1.0 / (n - 1);
        for (int k = 0; k < n; k++) {
            alpha[k] = (double)k / (n - 1);
            weight[k] = (k == 0 || k == n - 1) ? 0.5 * h : h;
        }
        alpha[n - 1] = 1.0;
    }
    s_normalise(weight, n);
    return 0;
}
