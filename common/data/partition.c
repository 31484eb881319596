/* Partitioners. All three start from the same seeded RNG stream and, where
 * labels matter, from one shuffled permutation stably sorted by label (a
 * counting sort), which gives every class's samples in a random order with a
 * single shuffle of n. The owner array doubles as the scratch space for that
 * permutation, so a partition of n samples needs one extra n-entry array.
 *
 * Dirichlet draws are made in log space (log Gamma(alpha + 1) + log(U) /
 * alpha for alpha < 1, as in gb_rng_gamma's boost) so that tiny alphas, whose
 * gammas underflow to 0 in double, still give a proper proportion vector
 * instead of 0/0. A draw is only a table of counts per (class, client), so
 * retrying until every client has its minimum costs no pass over the data. */
#include "data/partition.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/log.h"
#include "util/rng.h"

#define S_STREAM 0x706172746974696fULL /* "partitio": the partitioner's RNG stream */
#define S_MAX_SHARDS 1000000           /* shards:K upper bound (keeps clients x K small) */
#define S_DRAW_BUDGET 2000000          /* dirichlet: gamma draws over all retries */
#define S_MIN_TRIES 100
#define S_MAX_TRIES 10000

static const char *s_expected = "expected iid, dirichlet:ALPHA or shards:K";

int gb_partition_parse(const char *text, gb_partition_t *out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_partition_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return gb_error_warn(err, GB_EINVAL, "empty partition: %s", s_expected);
    if (strcmp(text, "iid") == 0) {
        out->kind = GB_PARTITION_IID;
        return 0;
    }
    if (strcmp(text, "dirichlet") == 0 || strcmp(text, "shards") == 0)
        return gb_error_warn(err, GB_EINVAL, "partition '%s' needs a parameter: %s", text, s_expected);
    if (strncmp(text, "dirichlet:", 10) == 0) {
        const char *v = text + 10;
        char *end = NULL;
        errno = 0;
        double alpha = (*v >= '0' && *v <= '9') || *v == '.' ? strtod(v, &end) : NAN;
        if (!end || *end || errno == ERANGE || !isfinite(alpha) || !(alpha > 0.0))
            return gb_error_warn(err, GB_EINVAL,
                          "partition '%s': dirichlet ALPHA must be a finite number > 0, got "
                          "'%s'",
                          text, v);
        out->kind = GB_PARTITION_DIRICHLET;
        out->alpha = alpha;
        return 0;
    }
    if (strncmp(text, "shards:", 7) == 0) {
        const char *v = text + 7;
        char *end = NULL;
        errno = 0;
        long k = (*v >= '0' && *v <= '9') ? strtol(v, &end, 10) : 0;
        if (!end || *end || errno == ERANGE || k < 1 || k > S_MAX_SHARDS)
            return gb_error_warn(err, GB_EINVAL,
                          "partition '%s': shards K must be an integer 1..%d, got '%s'", text,
                          S_MAX_SHARDS, v);
        out->kind = GB_PARTITION_SHARDS;
        out->shards = (int)k;
        return 0;
    }
    return gb_error_warn(err, GB_EINVAL, "unknown partition '%s': %s", text, s_expected);
}

char *gb_partition_format(const gb_partition_t *p, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return buf;
    switch (p ? (int)p->kind : -1) {
    case GB_PARTITION_IID:
        snprintf(buf, cap, "iid");
        break;
    case GB_PARTITION_DIRICHLET: {
        /* shortest of %.15g / %.17g that reads back as the same double */
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.15g", p->alpha);
        if (strtod(tmp, NULL) != p->alpha)
            snprintf(tmp, sizeof tmp, "%.17g", p->alpha);
        snprintf(buf, cap, "dirichlet:%s", tmp);
        break;
    }
    case GB_PARTITION_SHARDS:
        snprintf(buf, cap, "shards:%d", p->shards);
        break;
    default:
        snprintf(buf, cap, "?");
        break;
    }
    return buf;
}

/* Sample indices grouped by class, each class in a random order: a shuffled
 * permutation (built in `scratch`) stably counting-sorted by label into
 * `order`; start[c] .. start[c + 1] delimit class c. */
static void s_group_shuffled(const int32_t *labels, int64_t n, int n_classes, gb_rng_t *rng,
                             int32_t *scratch, int32_t *order, int64_t *start)
{
    for (int64_t i = 0; i < n; i++)
        scratch[i] = (int32_t)i;
    gb_rng_shuffle(rng, scratch, n);
    memset(start, 0, sizeof *start * ((size_t)n_classes + 1));
    for (int64_t i = 0; i < n; i++)
        start[labels[i] + 1]++;
    for (int c = 0; c < n_classes; c++)
        start[c + 1] += start[c];
    /* place with a moving cursor per class; start[] is restored afterwards */
    for (int64_t i = 0; i < n; i++) {
        int32_t s = scratch[i];
        order[start[labels[s]]++] = s;
    }
    for (int c = n_classes; c > 0; c--)
        start[c] = start[c - 1];
    start[0] = 0;
}

static void s_iid(int64_t n, int clients, gb_rng_t *rng, int32_t *owner)
{
    /* balanced round-robin labels, then a uniform permutation of them */
    for (int64_t i = 0; i < n; i++)
        owner[i] = (int32_t)(i % clients);
    gb_rng_shuffle(rng, owner, n);
}

static int s_shards(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                    int clients, gb_rng_t *rng, int32_t *owner, gb_error_t *err)
{
    int64_t total = (int64_t)clients * p->shards;
    if (total > n)
        return gb_error_warn(err, GB_EINVAL,
                      "shards:%d over %d clients needs at least %lld samples, have %lld",
                      p->shards, clients, (long long)total, (long long)n);
    int rc = 0;
    int32_t *order = gb_malloc((size_t)n * sizeof *order);
    int64_t *start = gb_malloc(((size_t)n_classes + 1) * sizeof *start);
    int32_t *shard = gb_malloc((size_t)total * sizeof *shard);
    if (!order || !start || !shard) {
        rc = gb_error_set(err, GB_ENOMEM, "shards: out of memory for %lld samples",
                          (long long)n);
        goto cleanup;
    }
    s_group_shuffled(labels, n, n_classes, rng, owner, order, start);
    for (int64_t s = 0; s < total; s++)
        shard[s] = (int32_t)s;
    gb_rng_shuffle(rng, shard, total);
    for (int64_t t = 0; t < total; t++) {
        int32_t client = (int32_t)(t / p->shards);
        int64_t s = shard[t];
        int64_t lo = s * n / total, hi = (s + 1) * n / total;
        for (int64_t i = lo; i < hi; i++)
            owner[order[i]] = client;
    }

cleanup:
    gb_free(order);
    gb_free(start);
    gb_free(shard);
    return rc;
}

/* log of a Gamma(alpha, 1) draw, finite for any alpha > 0. */
static double s_log_gamma(gb_rng_t *rng, double alpha)
{
    if (alpha >= 1.0)
        return log(gb_rng_gamma(rng, alpha));
    double u = 1.0 - gb_rng_uniform(rng); /* (0, 1] */
    return log(gb_rng_gamma(rng, alpha + 1.0)) + log(u) / alpha;
}

/* One Dirichlet draw per class turned into counts cnt[c * clients + k];
 * returns the smallest client total. */
static int64_t s_dirichlet_draw(double alpha, const int64_t *start, int n_classes, int clients,
                                gb_rng_t *rng, double *w, int64_t *cnt, int64_t *totals)
{
    memset(totals, 0, sizeof *totals * (size_t)clients);
    for (int c = 0; c < n_classes; c++) {
        int64_t size = start[c + 1] - start[c];
        int64_t *row = cnt + (size_t)c * clients;
        if (size == 0) {
            memset(row, 0, sizeof *row * (size_t)clients);
            continue;
        }
        double max = -INFINITY;
        for (int k = 0; k < clients; k++) {
            w[k] = s_log_gamma(rng, alpha);
            if (w[k] > max)
                max = w[k];
        }
        double sum = 0.0;
        for (int k = 0; k < clients; k++)
            sum += (w[k] = exp(w[k] - max)); /* the largest is exactly 1: sum >= 1 */
        double cum = 0.0;
        int64_t prev = 0;
        for (int k = 0; k < clients; k++) {
            cum += w[k];
            int64_t cut = k == clients - 1 ? size : (int64_t)floor(cum / sum * (double)size);
            if (cut > size)
                cut = size;
            if (cut < prev)
                cut = prev;
            row[k] = cut - prev;
            totals[k] += row[k];
            prev = cut;
        }
    }
    int64_t min = totals[0];
    for (int k = 1; k < clients; k++)
        if (totals[k] < min)
            min = totals[k];
    return min;
}

static int s_dirichlet(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                       int clients, gb_rng_t *rng, int32_t *owner, gb_error_t *err)
{
    int64_t want = n / (2 * (int64_t)clients);
    if (want < 1)
        want = 1;
    if (want > GB_PARTITION_MIN_SAMPLES)
        want = GB_PARTITION_MIN_SAMPLES;
    int64_t cells = (int64_t)n_classes * clients;
    int64_t tries = S_DRAW_BUDGET / cells;
    if (tries < S_MIN_TRIES)
        tries = S_MIN_TRIES;
    if (tries > S_MAX_TRIES)
        tries = S_MAX_TRIES;

    int rc = 0;
    int32_t *order = gb_malloc((size_t)n * sizeof *order);
    int64_t *start = gb_malloc(((size_t)n_classes + 1) * sizeof *start);
    double *w = gb_malloc((size_t)clients * sizeof *w);
    int64_t *cnt = gb_malloc((size_t)cells * sizeof *cnt);
    int64_t *totals = gb_malloc((size_t)clients * sizeof *totals);
    if (!order || !start || !w || !cnt || !totals) {
        rc = gb_error_set(err, GB_ENOMEM, "dirichlet: out of memory for %lld samples x %d "
                          "clients", (long long)n, clients);
        goto cleanup;
    }
    s_group_shuffled(labels, n, n_classes, rng, owner, order, start);
    int64_t t = 0, min = -1;
    for (t = 0; t < tries; t++) {
        min = s_dirichlet_draw(p->alpha, start, n_classes, clients, rng, w, cnt, totals);
        if (min >= want)
            break;
    }
    if (t == tries) {
        char text[64];
        rc = gb_error_warn(err, GB_ERANGE,
                    "%s over %d clients: in %lld draws some client always got fewer than %lld "
                    "sample%s (at best %lld); use a larger alpha or fewer clients",
                    gb_partition_format(p, text, sizeof text), clients, (long long)tries,
                    (long long)want, want == 1 ? "" : "s", (long long)min);
        goto cleanup;
    }
    if (t > 0)
        gb_log_debug("dirichlet:%g: draw %lld gave every client >= %lld samples", p->alpha,
                     (long long)t + 1, (long long)want);
    for (int c = 0; c < n_classes; c++) {
        int64_t pos = start[c];
        for (int k = 0; k < clients; k++) {
            int64_t end = pos + cnt[(size_t)c * clients + k];
            for (; pos < end; pos++)
                owner[order[pos]] = k;
        }
    }

cleanup:
    gb_free(order);
    gb_free(start);
    gb_free(w);
    gb_free(cnt);
    gb_free(totals);
    return rc;
}

int gb_partition_assign(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                        int clients, uint64_t seed, int32_t *owner, gb_error_t *err)
{
    if (!p || !labels || !owner)
        return gb_error_set(err, GB_EINVAL, "gb_partition_assign: NULL argument");
    if (clients < 1)
        return gb_error_warn(err, GB_EINVAL, "partition: %d clients: expected at least 1", clients);
    if (n < clients || n > INT32_MAX)
        return gb_error_warn(err, GB_EINVAL, "partition: %lld samples for %d clients: need one "
                      "sample per client at least (and at most %d samples)",
                      (long long)n, clients, INT32_MAX);
    if (n_classes < 1 || n_classes > (1 << 24))
        return gb_error_set(err, GB_EINVAL, "partition: %d classes", n_classes);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return gb_error_warn(err, GB_ERANGE, "partition: sample %lld has label %d, expected 0..%d",
                          (long long)i, labels[i], n_classes - 1);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, S_STREAM);
    switch (p->kind) {
    case GB_PARTITION_IID:
        s_iid(n, clients, &rng, owner);
        return 0;
    case GB_PARTITION_DIRICHLET:
        if (!isfinite(p->alpha) || !(p->alpha > 0.0))
            return gb_error_set(err, GB_EINVAL, "dirichlet alpha %g: expected finite > 0",
                                p->alpha);
        return s_dirichlet(p, labels, n, n_classes, clients, &rng, owner, err);
    case GB_PARTITION_SHARDS:
        if (p->shards < 1 || p->shards > S_MAX_SHARDS)
            return gb_error_set(err, GB_EINVAL, "shards:%d: expected 1..%d", p->shards,
                                S_MAX_SHARDS);
        return s_shards(p, labels, n, n_classes, clients, &rng, owner, err);
    }
    return gb_error_set(err, GB_EINVAL, "partition: unknown kind %d", (int)p->kind);
}

int gb_partition_indices(const int32_t *owner, int64_t n, int client, int32_t **idx,
                         int64_t *count, gb_error_t *err)
{
    if (!idx || !count)
        return gb_error_set(err, GB_EINVAL, "gb_partition_indices: NULL output");
    *idx = NULL;
    *count = 0;
    if ((!owner && n > 0) || n < 0 || n > INT32_MAX || client < 0)
        return gb_error_set(err, GB_EINVAL, "gb_partition_indices: bad arguments");
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        m += owner[i] == client;
    int32_t *out = gb_malloc(m ? (size_t)m * sizeof *out : 1);
    if (!out)
        return gb_error_set(err, GB_ENOMEM, "out of memory for %lld indices", (long long)m);
    int64_t j = 0;
    for (int64_t i = 0; i < n; i++)
        if (owner[i] == client)
            out[j++] = (int32_t)i;
    *idx = out;
    *count = m;
    return 0;
}

int gb_partition_client(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                        int clients, uint64_t seed, int client, int32_t **idx, int64_t *count,
                        gb_error_t *err)
{
    if (!idx || !count)
        return gb_error_set(err, GB_EINVAL, "gb_partition_client: NULL output");
    *idx = NULL;
    *count = 0;
    if (client < 0 || client >= clients)
        return gb_error_warn(err, GB_EINVAL, "partition: client %d of %d: expected 0..%d", client,
                      clients, clients - 1);
    if (n < 1 || n > INT32_MAX)
        return gb_error_warn(err, GB_EINVAL, "partition: %lld samples: expected 1..%d", (long long)n,
                      INT32_MAX);
    int32_t *owner = gb_malloc((size_t)n * sizeof *owner);
    if (!owner)
        return gb_error_set(err, GB_ENOMEM, "out of memory for %lld samples", (long long)n);
    int rc = gb_partition_assign(p, labels, n, n_classes, clients, seed, owner, err);
    if (rc == 0)
        rc = gb_partition_indices(owner, n, client, idx, count, err);
    gb_free(owner);
    return rc;
}
