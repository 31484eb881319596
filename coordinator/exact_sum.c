/* The exact sums of exact_sum.h.
 *
 * Floating-point addition is not associative, so a float or
 * double running sum of client updates depends on the order they arrived
 * in, and a re-run of a federation with the same seed would drift from the
 * first run as soon as the network delivered two updates the other way
 * round. Summation in fixed point with enough bits is plain integer addition:
 * exact, hence order-free. A float32 is m * 2^(e-150) with m < 2^24, so every
 * finite float32 is an integer number of units of 2^-149 below 2^277; times
 * a weight w <= 2^40 it is below 2^317, and so is the sum of any updates
 * whose weights total at most 2^40 (the weighted sum is at most the total
 * weight times the largest |value|). Five 64-bit limbs (320 bits, two's
 * complement) hold that. An add is one 64-bit product (m * w < 2^64) shifted
 * into two neighbouring limbs with a carry: a few nanoseconds per
 * parameter, against the 40 bytes per parameter of memory it costs. The
 * division by the total weight at the end is a long division of the 320-bit
 * integer by w in 32- or 16-bit digits (so no 128-bit type is needed),
 * followed by one round-to-nearest-even to float32: the mean is correctly
 * rounded, not merely reproducible. */
#include "exact_sum.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

void gb_exact_sum_clear(gb_exact_sum_t *s)
{
    memset(s, 0, sizeof *s);
}

/* limb[k..k+1] += (hi, lo), carrying upwards; k <= GB_EXACT_LIMBS - 2. */
static inline void s_limbs_add(uint64_t *limb, unsigned k, uint64_t lo, uint64_t hi)
{
    uint64_t t = limb[k] + lo;
    uint64_t carry = t < lo;
    limb[k] = t;
    t = limb[k + 1] + hi;
    uint64_t c2 = t < hi;
    limb[k + 1] = t + carry;
    carry = c2 | (limb[k + 1] < carry);
    for (unsigned i = k + 2; carry && i < GB_EXACT_LIMBS; i++)
        carry = ++limb[i] == 0;
}

/* limb[k..k+1] -= (hi, lo), borrowing upwards. */
static inline void s_limbs_sub(uint64_t *limb, unsigned k, uint64_t lo, uint64_t hi)
{
    uint64_t borrow = limb[k] < lo;
    limb[k] -= lo;
    uint64_t b2 = limb[k + 1] < hi;
    uint64_t t = limb[k + 1] - hi;
    b2 |= t < borrow;
    limb[k + 1] = t - borrow;
    borrow = b2;
    for (unsigned i = k + 2; borrow && i < GB_EXACT_LIMBS; i++)
        borrow = limb[i]-- == 0;
}

static inline void s_exact_add(gb_exact_sum_t *s, float v, uint64_t w)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t e = (bits >> 23) & 0xffu;
    uint64_t m = bits & 0x7fffffu;
    unsigned shift = 0; /* of m * w, in units of 2^-149 */
    if (e) {
        m |= 0x800000u;
        shift = e - 1;
    } else if (!m) {
        return;
    }
    uint64_t prod = m * w; /* < 2^24 * 2^40 */
    unsigned k = shift >> 6, b = shift & 63u;
    uint64_t lo = prod << b, hi = b ? prod >> (64 - b) : 0;
    if (bits >> 31)
        s_limbs_sub(s->limb, k, lo, hi);
    else
        s_limbs_add(s->limb, k, lo, hi);
}

void gb_exact_sum_add(gb_exact_sum_t *s, float v, uint64_t w)
{
    s_exact_add(s, v, w);
}

/* Bits [pos, pos + 64) of a magnitude (zeros above the top). */
static uint64_t s_bits_at(const uint64_t *q, unsigned pos)
{
    unsigned i = pos >> 6, off = pos & 63u;
    uint64_t v = i < GB_EXACT_LIMBS ? q[i] >> off : 0;
    if (off && i + 1 < GB_EXACT_LIMBS)
        v |= q[i + 1] << (64 - off);
    return v;
}

/* Any bit set below position pos? */
static bool s_any_below(const uint64_t *q, unsigned pos)
{
    unsigned i = pos >> 6, off = pos & 63u;
    for (unsigned j = 0; j < i; j++)
        if (q[j])
            return true;
    return off && (q[i] & ((UINT64_C(1) << off) - 1));
}

float gb_exact_sum_mean(const gb_exact_sum_t *s, uint64_t total_w)
{
    uint64_t a[GB_EXACT_LIMBS];
    memcpy(a, s->limb, sizeof a);
    bool neg = a[GB_EXACT_LIMBS - 1] >> 63;
    if (neg) { /* magnitude: two's complement negation */
        uint64_t carry = 1;
        for (int i = 0; i < GB_EXACT_LIMBS; i++) {
            a[i] = ~a[i] + carry;
            carry = carry && a[i] == 0;
        }
    }
    /* Q = a / total_w, R = a % total_w, in digits small enough that
     * (R << digit) fits 64 bits: R < total_w <= 2^40. */
    uint64_t q[GB_EXACT_LIMBS] = {0}, r = 0;
    unsigned dbits = total_w <= (UINT64_C(1) << 32) ? 32 : 16;
    uint64_t dmask = (UINT64_C(1) << dbits) - 1;
    for (int i = GB_EXACT_LIMBS - 1; i >= 0; i--) {
        if (!a[i] && !r)
            continue;
        for (int sh = 64 - (int)dbits; sh >= 0; sh -= (int)dbits) {
            r = (r << dbits) | ((a[i] >> sh) & dmask);
            q[i] |= (r / total_w) << sh;
            r %= total_w;
        }
    }
    int top = GB_EXACT_LIMBS - 1;
    while (top >= 0 && !q[top])
        top--;
    unsigned len = top < 0 ? 0 : 64u * (unsigned)top + 64u - (unsigned)__builtin_clzll(q[top]);
    float out;
    if (len <= 24) {
        /* Below 2^24 units every integer is a float32: round R / W alone. */
        uint64_t mant = q[0];
        uint64_t twice = 2 * r;
        if (twice > total_w || (twice == total_w && (mant & 1)))
            mant++;
        out = ldexpf((float)mant, -149);
    } else {
        unsigned sh = len - 24;
        uint64_t mant = s_bits_at(q, sh) & 0xffffffu;
        bool half = (s_bits_at(q, sh - 1) & 1u) != 0;
        bool sticky = r != 0 || s_any_below(q, sh - 1);
        if (half && (sticky || (mant & 1)))
            mant++;
        out = ldexpf((float)mant, (int)sh - 149);
    }
    return neg ? -out : out;
}
