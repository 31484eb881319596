/* The aggregator object (spec strings, the round's life cycle, the checks
 * every update passes), streaming FedAvg, and the exact sums it rests on.
 * The robust rules' arithmetic lives in aggregate_robust.c; this file only
 * keeps their updates for them.
 *
 * Why exact sums. Floating-point addition is not associative, so a float or
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
#include "aggregate.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gb_aggregator {
    gb_agg_spec_t spec;     /* the rule and its parameters */
    char name[96];          /* canonical spec string */
    size_t max_clients;     /* updates accepted per round */
    size_t min_updates;     /* updates finish needs */
    uint64_t round;         /* current or last round */
    size_t p;               /* floats per update this round */
    bool open;              /* begun and not finished */
    size_t n;               /* updates accepted this round */
    uint64_t weight;        /* their total num_samples */
    gb_exact_sum_t *acc;    /* fedavg: p exact sums of w * delta */
    size_t acc_cap;         /* fedavg: sums allocated */
    float *rows;            /* robust: n x p kept updates, row-major */
    size_t rows_cap;        /* robust: floats allocated in rows */
    uint64_t *weights;      /* robust: n num_samples */
    size_t weights_cap;     /* robust: entries allocated in weights */
    void *work;             /* robust: gb_robust_aggregate's workspace */
    size_t work_cap;        /* robust: bytes allocated in work */
    size_t *selected;       /* krum rules: spec.m chosen indices of the last finish */
    size_t n_selected;      /* krum rules: how many of them are valid */
};

/* ---- exact sums ------------------------------------------------------------ */

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

/* ---- spec strings -------------------------------------------------------- */

/* A whole decimal number 0..max in s[0..len); false for anything else. */
static bool s_parse_count(const char *s, size_t len, size_t max, size_t *out)
{
    if (len == 0)
        return false;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

static const char s_rules_hint[] =
    "expected fedavg, median, trimmed_mean:BETA, krum:F or multi_krum:F:M";

int gb_agg_spec_parse(const char *spec, gb_agg_spec_t *out, gb_error_t *err)
{
    if (!spec || !*spec)
        return gb_error_set(err, GB_EINVAL, "aggregator: empty spec; %s", s_rules_hint);
    size_t len = strnlen(spec, GB_AGG_SPEC_MAX + 1);
    if (len > GB_AGG_SPEC_MAX)
        return gb_error_set(err, GB_EINVAL, "aggregator: spec '%.*s...' longer than %d characters",
                            GB_AGG_SPEC_MAX, spec, GB_AGG_SPEC_MAX);
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : len;
    const char *arg = colon ? colon + 1 : NULL;
    gb_agg_spec_t s = {.rule = GB_AGG_FEDAVG, .beta = 0, .f = 0, .m = 1};

#define S_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(spec, lit, nlen) == 0)
    if (S_IS("fedavg") || S_IS("median")) {
        s.rule = S_IS("fedavg") ? GB_AGG_FEDAVG : GB_AGG_MEDIAN;
        if (arg)
            return gb_error_set(err, GB_EINVAL, "aggregator '%s': %.*s takes no parameter", spec,
                                (int)nlen, spec);
    } else if (S_IS("trimmed_mean")) {
        s.rule = GB_AGG_TRIMMED_MEAN;
        if (!arg || !*arg)
            return gb_error_set(err, GB_EINVAL,
                                "trimmed_mean: needs the fraction cut from each side, as "
                                "trimmed_mean:0.1");
        char *end = NULL;
        errno = 0;
        double beta = (*arg == '-' || *arg == '+' || (*arg >= '0' && *arg <= '9') || *arg == '.')
                          ? strtod(arg, &end)
                          : 0;
        if (!end || end == arg || *end)
            return gb_error_set(err, GB_EINVAL, "trimmed_mean: beta '%s' is not a number", arg);
        if (!isfinite(beta) || !(beta >= 0 && beta < 0.5))
            return gb_error_set(err, GB_EINVAL, "trimmed_mean: beta %s must be in [0, 0.5)", arg);
        s.beta = beta + 0.0; /* "-0" is 0, and prints so */
    } else if (S_IS("krum") || S_IS("multi_krum")) {
        bool multi = S_IS("multi_krum");
        const char *name = multi ? "multi_krum" : "krum";
        s.rule = multi ? GB_AGG_MULTI_KRUM : GB_AGG_KRUM;
        if (!arg || !*arg)
            return gb_error_set(err, GB_EINVAL, "%s: needs %s, as %s", name,
                                multi ? "F and M" : "F (the Byzantine clients assumed)",
                                multi ? "multi_krum:2:5" : "krum:2");
        const char *colon2 = strchr(arg, ':');
        size_t flen = colon2 ? (size_t)(colon2 - arg) : strlen(arg);
        if (!s_parse_count(arg, flen, GB_AGG_MAX_CLIENTS, &s.f))
            return gb_error_set(err, GB_EINVAL, "%s: F '%.*s' must be a whole number 0..%zu", name,
                                (int)flen, arg, GB_AGG_MAX_CLIENTS);
        if (!multi && colon2)
            return gb_error_set(err, GB_EINVAL, "krum: takes one parameter F, got '%s'", arg);
        if (multi) {
            if (!colon2)
                return gb_error_set(err, GB_EINVAL,
                                    "multi_krum: needs M (the updates averaged) after F, as "
                                    "multi_krum:%zu:5",
                                    s.f);
            const char *marg = colon2 + 1;
            if (!s_parse_count(marg, strlen(marg), GB_AGG_MAX_CLIENTS, &s.m))
                return gb_error_set(err, GB_EINVAL,
                                    "multi_krum: M '%s' must be a whole number 1..%zu", marg,
                                    GB_AGG_MAX_CLIENTS);
            if (s.m < 1)
                return gb_error_set(err, GB_EINVAL, "multi_krum: M 0 must be at least 1");
        }
    } else {
        return gb_error_set(err, GB_EINVAL, "aggregator '%s': unknown rule '%.*s'; %s", spec,
                            (int)nlen, spec, s_rules_hint);
    }
#undef S_IS
    *out = s;
    return 0;
}

size_t gb_agg_spec_format(const gb_agg_spec_t *spec, char *buf, size_t cap)
{
    int n = 0;
    switch (spec->rule) {
    case GB_AGG_FEDAVG:
        n = snprintf(buf, cap, "fedavg");
        break;
    case GB_AGG_MEDIAN:
        n = snprintf(buf, cap, "median");
        break;
    case GB_AGG_TRIMMED_MEAN: {
        /* The fewest significant digits that read back to the same beta. */
        char digits[32];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(digits, sizeof digits, "%.*g", prec, spec->beta);
            if (strtod(digits, NULL) == spec->beta)
                break;
        }
        n = snprintf(buf, cap, "trimmed_mean:%s", digits);
        break;
    }
    case GB_AGG_KRUM:
        n = snprintf(buf, cap, "krum:%zu", spec->f);
        break;
    case GB_AGG_MULTI_KRUM:
        n = snprintf(buf, cap, "multi_krum:%zu:%zu", spec->f, spec->m);
        break;
    }
    return n < 0 ? 0 : (size_t)n;
}

size_t gb_agg_spec_min_updates(const gb_agg_spec_t *spec)
{
    switch (spec->rule) {
    case GB_AGG_KRUM:
        return 2 * spec->f + 3;
    case GB_AGG_MULTI_KRUM: {
        size_t a = 2 * spec->f + 3, b = spec->m + spec->f;
        return a > b ? a : b;
    }
    default:
        return 1;
    }
}

/* ---- the aggregator -------------------------------------------------------- */

static bool s_is_krum(gb_agg_rule_t rule)
{
    return rule == GB_AGG_KRUM || rule == GB_AGG_MULTI_KRUM;
}

gb_aggregator_t *gb_aggregator_new(const char *spec, size_t max_clients, gb_error_t *err)
{
    gb_agg_spec_t parsed;
    if (gb_agg_spec_parse(spec, &parsed, err) != 0)
        return NULL;
    if (max_clients < 1 || max_clients > GB_AGG_MAX_CLIENTS) {
        gb_error_set(err, GB_EINVAL, "aggregator: max_clients %zu outside 1..%zu", max_clients,
                     GB_AGG_MAX_CLIENTS);
        return NULL;
    }
    size_t need = gb_agg_spec_min_updates(&parsed);
    if (max_clients < need) {
        gb_error_set(err, GB_EINVAL,
                     "aggregator '%s': needs at least %zu updates a round, but max_clients is %zu",
                     spec, need, max_clients);
        return NULL;
    }
    gb_aggregator_t *agg = gb_calloc(1, sizeof *agg);
    if (!agg) {
        gb_error_set(err, GB_ENOMEM, "aggregator: out of memory");
        return NULL;
    }
    agg->spec = parsed;
    gb_agg_spec_format(&parsed, agg->name, sizeof agg->name);
    agg->max_clients = max_clients;
    agg->min_updates = need;
    if (s_is_krum(parsed.rule)) {
        agg->selected = gb_calloc(parsed.m, sizeof *agg->selected);
        if (!agg->selected) {
            gb_error_set(err, GB_ENOMEM, "aggregator: out of memory");
            gb_free(agg);
            return NULL;
        }
    }
    return agg;
}

void gb_aggregator_destroy(gb_aggregator_t **agg)
{
    if (!agg || !*agg)
        return;
    gb_aggregator_t *a = *agg;
    gb_free_aligned(a->acc);
    gb_free(a->rows);
    gb_free(a->weights);
    gb_free(a->work);
    gb_free(a->selected);
    gb_free(a);
    *agg = NULL;
}

int gb_aggregator_begin(gb_aggregator_t *agg, uint64_t round, size_t param_count, gb_error_t *err)
{
    if (param_count < 1 || param_count > GB_AGG_MAX_PARAMS)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: round %llu: param_count %zu outside 1..%zu",
                            (unsigned long long)round, param_count, GB_AGG_MAX_PARAMS);
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        if (agg->acc_cap < param_count) {
            /* New before free: a failure leaves the open round intact. */
            gb_exact_sum_t *acc = gb_alloc_aligned(param_count * sizeof *acc);
            if (!acc)
                return gb_error_set(err, GB_ENOMEM,
                                    "aggregator: round %llu: out of memory for %zu sums",
                                    (unsigned long long)round, param_count);
            gb_free_aligned(agg->acc);
            agg->acc = acc;
            agg->acc_cap = param_count;
        } else {
            memset(agg->acc, 0, param_count * sizeof *agg->acc);
        }
    }
    if (agg->open && agg->n)
        gb_log_info("aggregator %s: round %llu begun again; %zu updates of round %llu dropped",
                    agg->name, (unsigned long long)round, agg->n,
                    (unsigned long long)agg->round);
    agg->round = round;
    agg->p = param_count;
    agg->open = true;
    agg->n = 0;
    agg->weight = 0;
    agg->n_selected = 0;
    return 0;
}

/* Makes room for one more kept update (robust rules). Buffers only grow; one
 * that grew before another failed is merely bigger, so a failure changes
 * nothing the round can see. */
static int s_reserve(gb_aggregator_t *agg, gb_error_t *err)
{
    size_t want = agg->n + 1, p = agg->p;
    size_t target = agg->n * 2 > 4 ? agg->n * 2 : 4;
    if (target < want)
        target = want;
    if (target > agg->max_clients)
        target = agg->max_clients;
    if (p > SIZE_MAX / sizeof(float) / target)
        goto nomem;
    if (agg->weights_cap < want) {
        uint64_t *w = gb_realloc(agg->weights, target * sizeof *w);
        if (!w)
            goto nomem;
        agg->weights = w;
        agg->weights_cap = target;
    }
    if (agg->rows_cap < want * p) {
        float *rows = gb_realloc(agg->rows, target * p * sizeof *rows);
        if (!rows)
            goto nomem;
        agg->rows = rows;
        agg->rows_cap = target * p;
    }
    size_t need = gb_robust_work_bytes(agg->spec.rule, want);
    if (agg->work_cap < need) {
        size_t bytes = gb_robust_work_bytes(agg->spec.rule, target);
        if (bytes == SIZE_MAX)
            goto nomem;
        void *work = gb_malloc(bytes); /* contents are scratch: no copy */
        if (!work)
            goto nomem;
        gb_free(agg->work);
        agg->work = work;
        agg->work_cap = bytes;
    }
    return 0;
nomem:
    return gb_error_set(err, GB_ENOMEM, "aggregator: round %llu: out of memory keeping update %zu",
                        (unsigned long long)agg->round, want);
}

int gb_aggregator_add(gb_aggregator_t *agg, const float *delta, size_t param_count,
                      uint64_t num_samples, gb_error_t *err)
{
    unsigned long long round = (unsigned long long)agg->round;
    if (!agg->open)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: no round open (add before begin or after finish)");
    if (!delta)
        return gb_error_set(err, GB_EINVAL, "aggregator: round %llu: no delta given", round);
    if (param_count != agg->p)
        return gb_error_warn(err, GB_ESHAPE, "round %llu: update has %zu parameters, expected %zu",
                             round, param_count, agg->p);
    if (num_samples == 0)
        return gb_error_warn(err, GB_EINVAL, "round %llu: update has num_samples 0 (must be >= 1)",
                             round);
    if (num_samples > GB_AGG_MAX_WEIGHT - agg->weight)
        return gb_error_warn(err, GB_ERANGE,
                             "round %llu: num_samples %llu would take the round's total past %llu "
                             "(now %llu)",
                             round, (unsigned long long)num_samples,
                             (unsigned long long)GB_AGG_MAX_WEIGHT,
                             (unsigned long long)agg->weight);
    if (agg->n >= agg->max_clients)
        return gb_error_warn(err, GB_ERANGE, "round %llu: already %zu updates, the maximum", round,
                             agg->n);
    /* One branch-free pass for the common case; the index only on failure. */
    uint32_t bad = 0;
    for (size_t i = 0; i < param_count; i++) {
        uint32_t bits;
        memcpy(&bits, &delta[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) {
        size_t i = 0;
        while (isfinite(delta[i]))
            i++;
        return gb_error_warn(err, GB_ERANGE, "round %llu: update value %zu is %s", round, i,
                             isnan(delta[i]) ? "NaN" : "infinite");
    }
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        gb_exact_sum_t *acc = agg->acc;
        for (size_t i = 0; i < param_count; i++)
            s_exact_add(&acc[i], delta[i], num_samples);
    } else {
        int rc = s_reserve(agg, err);
        if (rc)
            return rc;
        memcpy(agg->rows + agg->n * param_count, delta, param_count * sizeof *delta);
        agg->weights[agg->n] = num_samples;
    }
    agg->n++;
    agg->weight += num_samples;
    return 0;
}

int gb_aggregator_finish(gb_aggregator_t *agg, float *out, size_t param_count, gb_error_t *err)
{
    unsigned long long round = (unsigned long long)agg->round;
    if (!agg->open)
        return gb_error_set(err, GB_EINVAL, "aggregator: no round open to finish");
    if (!out || param_count != agg->p)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: round %llu: output of %zu floats, expected %zu", round,
                            param_count, agg->p);
    if (agg->n == 0)
        return gb_error_set(err, GB_EINVAL, "round %llu: no update to aggregate", round);
    if (agg->n < agg->min_updates)
        return gb_error_set(err, GB_EINVAL, "round %llu: %s needs at least %zu updates, got %zu",
                            round, agg->name, agg->min_updates, agg->n);
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        for (size_t i = 0; i < param_count; i++)
            out[i] = gb_exact_sum_mean(&agg->acc[i], agg->weight);
    } else {
        size_t n_sel = 0;
        int rc = gb_robust_aggregate(&agg->spec, agg->rows, agg->weights, agg->n, agg->p, out,
                                     agg->selected, &n_sel, agg->work, err);
        if (rc)
            return rc;
        agg->n_selected = n_sel;
    }
    agg->open = false;
    if (s_is_krum(agg->spec.rule))
        gb_log_info("aggregator %s: round %llu: %zu updates (%llu samples), chose %zu, best is "
                    "update %zu",
                    agg->name, round, agg->n, (unsigned long long)agg->weight, agg->n_selected,
                    agg->selected[0]);
    else
        gb_log_info("aggregator %s: round %llu: %zu updates (%llu samples)", agg->name, round,
                    agg->n, (unsigned long long)agg->weight);
    return 0;
}

const char *gb_aggregator_name(const gb_aggregator_t *agg)
{
    return agg->name;
}

gb_agg_spec_t gb_aggregator_spec(const gb_aggregator_t *agg)
{
    return agg->spec;
}

size_t gb_aggregator_max_clients(const gb_aggregator_t *agg)
{
    return agg->max_clients;
}

size_t gb_aggregator_min_updates(const gb_aggregator_t *agg)
{
    return agg->min_updates;
}

uint64_t gb_aggregator_round(const gb_aggregator_t *agg)
{
    return agg->round;
}

size_t gb_aggregator_param_count(const gb_aggregator_t *agg)
{
    return agg->p;
}

int gb_aggregator_is_open(const gb_aggregator_t *agg)
{
    return agg->open;
}

size_t gb_aggregator_updates(const gb_aggregator_t *agg)
{
    return agg->n;
}

uint64_t gb_aggregator_weight(const gb_aggregator_t *agg)
{
    return agg->weight;
}

size_t gb_aggregator_selected(const gb_aggregator_t *agg, size_t *idx, size_t cap)
{
    if (idx)
        for (size_t i = 0; i < agg->n_selected && i < cap; i++)
            idx[i] = agg->selected[i];
    return agg->n_selected;
}
