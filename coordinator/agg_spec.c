/* Parsing and printing aggregator spec strings (agg_spec.h). The canonical
 * form prints BETA in the fewest digits that read back to the same double,
 * so a spec survives a round trip through a checkpoint or a Publication's
 * `aggregator` field unchanged. */
#include "agg_spec.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
