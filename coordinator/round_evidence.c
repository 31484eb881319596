/* Update evidence of a round: hash sketches, norms and lessons
 * (round_evidence.h). */
#include "round_evidence.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define S_SKETCH_DIM_MAX 65536
#define S_MIN_LESSONS 3

struct gb_round_evidence {
    size_t max_clients, dim;
    size_t count, cap;                        /* updates kept, room for */
    size_t n_params;                          /* the round's delta length (0: none yet) */
    float *sketches;                          /* cap x dim */
    double *norms;                            /* cap */
    char (*names)[GB_ROUND_EVIDENCE_NAME_MAX + 1]; /* cap */
    float *column;                            /* cap: one coordinate's values */
    float *median;                            /* dim */
    size_t features;                          /* floats of a lesson (0: none kept) */
    float *lessons;                           /* cap x features */
    size_t *with_lesson;                      /* cap: the updates that have one, in order */
    size_t n_lessons;                         /* of them this round */
};

gb_round_evidence_t *gb_round_evidence_new(size_t max_clients, size_t sketch_dim,
                                           size_t lesson_features, gb_error_t *err)
{
    if (!sketch_dim)
        sketch_dim = GB_ROUND_EVIDENCE_SKETCH_DIM;
    size_t widest = sketch_dim > lesson_features ? sketch_dim : lesson_features;
    if (max_clients == 0 || sketch_dim > S_SKETCH_DIM_MAX ||
        lesson_features > GB_ROUND_EVIDENCE_MAX_FEATURES ||
        max_clients > SIZE_MAX / sizeof(float) / widest) {
        gb_error_set(err, GB_EINVAL,
                     "round evidence: %zu clients of %zu-float sketches and %zu-float lessons "
                     "is out of range", max_clients, sketch_dim, lesson_features);
        return NULL;
    }
    gb_round_evidence_t *e = gb_calloc(1, sizeof *e);
    if (e)
        e->median = gb_calloc(sketch_dim, sizeof *e->median);
    if (!e || !e->median) {
        gb_round_evidence_destroy(&e);
        gb_error_set(err, GB_ENOMEM, "round evidence: out of memory");
        return NULL;
    }
    e->max_clients = max_clients;
    e->dim = sketch_dim;
    e->features = lesson_features;
    return e;
}

void gb_round_evidence_destroy(gb_round_evidence_t **e)
{
    if (!e || !*e)
        return;
    gb_free((*e)->sketches);
    gb_free((*e)->norms);
    gb_free((*e)->names);
    gb_free((*e)->column);
    gb_free((*e)->median);
    gb_free((*e)->lessons);
    gb_free((*e)->with_lesson);
    gb_free(*e);
    *e = NULL;
}

void gb_round_evidence_clear(gb_round_evidence_t *e)
{
    e->count = 0;
    e->n_params = 0;
    e->n_lessons = 0;
}

/* *slot, a pointer of any object type passed by its address, reallocated
 * to bytes; false, and *slot as it was, without the memory. */
static bool s_resize(void *slot, size_t bytes)
{
    void *old;
    memcpy(&old, slot, sizeof old);
    void *p = gb_realloc(old, bytes);
    if (p)
        memcpy(slot, &p, sizeof p);
    return p != NULL;
}

/* Room for one more update; the capacity doubles (up to max_clients), so a
 * round of N updates costs about log N reallocations. A failure leaves the
 * arrays that grew merely bigger. */
static int s_grow(gb_round_evidence_t *e, gb_error_t *err)
{
    if (e->count < e->cap)
        return 0;
    size_t cap = e->cap ? 2 * e->cap : 16;
    if (cap > e->max_clients)
        cap = e->max_clients;
    bool ok = s_resize(&e->sketches, cap * e->dim * sizeof *e->sketches) &&
              s_resize(&e->norms, cap * sizeof *e->norms) &&
              s_resize(&e->names, cap * sizeof *e->names) &&
              s_resize(&e->column, cap * sizeof *e->column) &&
              (!e->features ||
               (s_resize(&e->lessons, cap * e->features * sizeof *e->lessons) &&
                s_resize(&e->with_lesson, cap * sizeof *e->with_lesson)));
    if (!ok)
        return gb_error_set(err, GB_ENOMEM, "round evidence: out of memory for %zu updates",
                            cap);
    e->cap = cap;
    return 0;
}

/* Bucket and sign of coordinate i: the top bits of a 64-bit mix of i
 * (splitmix64's finaliser: every input bit reaches every output bit, so
 * neighbouring weights of one layer land in unrelated buckets). */
static inline uint64_t s_mix(uint64_t i)
{
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void s_sketch(const float *delta, size_t n, float *out, size_t dim)
{
    memset(out, 0, dim * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        uint64_t h = s_mix(i);
        float v = delta[i];
        out[(h >> 1) % dim] += (h & 1) ? v : -v;
    }
}

int gb_round_evidence_add(gb_round_evidence_t *e, const char *client, const float *delta,
                          size_t n, double norm, const float *lesson, gb_error_t *err)
{
    size_t len = client ? strlen(client) : 0;
    if (len == 0 || len > GB_ROUND_EVIDENCE_NAME_MAX)
        return gb_error_set(err, GB_EINVAL, "round evidence: a client name of %zu bytes "
                            "(1..%d)", len, GB_ROUND_EVIDENCE_NAME_MAX);
    if (n == 0 || (e->count && n != e->n_params))
        return gb_error_set(err, GB_EINVAL,
                            "round evidence: '%s' sent %zu parameters, the round's have %zu",
                            client, n, e->n_params);
    if (e->count == e->max_clients)
        return gb_error_set(err, GB_ERANGE, "round evidence: more than %zu updates in a round",
                            e->max_clients);
    if (lesson && !e->features)
        return gb_error_set(err, GB_EINVAL, "round evidence: '%s' came with a lesson, but "
                            "lessons are not kept", client);
    for (size_t j = 0; lesson && j < e->features; j++)
        if (!isfinite(lesson[j]))
            return gb_error_set(err, GB_ERANGE, "round evidence: the lesson of '%s' has a "
                                "share that is not finite (feature %zu)", client, j);
    int rc = s_grow(e, err);
    if (rc)
        return rc;
    if (lesson) {
        memcpy(e->lessons + e->n_lessons * e->features, lesson, e->features * sizeof *lesson);
        e->with_lesson[e->n_lessons++] = e->count;
    }
    s_sketch(delta, n, e->sketches + e->count * e->dim, e->dim);
    e->norms[e->count] = norm;
    memcpy(e->names[e->count], client, len + 1);
    e->n_params = n;
    e->count++;
    return 0;
}

size_t gb_round_evidence_count(const gb_round_evidence_t *e)
{
    return e->count;
}

const char *gb_round_evidence_client(const gb_round_evidence_t *e, size_t i)
{
    return e->names[i];
}

double gb_round_evidence_norm(const gb_round_evidence_t *e, size_t i)
{
    return e->norms[i];
}

static int s_by_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* The median of v[0..n) (n >= 1), which it sorts; of an even count, the
 * mean of the middle two. */
static float s_median(float *v, size_t n)
{
    qsort(v, n, sizeof *v, s_by_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

/* Column j of the rows x stride matrix m into e->column; returns its
 * median. */
static float s_column_median(gb_round_evidence_t *e, const float *m, size_t rows,
                             size_t stride, size_t j)
{
    for (size_t c = 0; c < rows; c++)
        e->column[c] = m[c * stride + j];
    return s_median(e->column, rows);
}

void gb_round_evidence_distances(gb_round_evidence_t *e, double *dist)
{
    /* everything it needs was allocated as the updates came */
    const size_t N = e->count, D = e->dim;
    if (N == 0)
        return;
    for (size_t j = 0; j < D; j++)
        e->median[j] = s_column_median(e, e->sketches, N, D, j);
    for (size_t c = 0; c < N; c++) {
        const float *s = e->sketches + c * D;
        double sum = 0;
        for (size_t j = 0; j < D; j++) {
            double d = (double)s[j] - e->median[j];
            sum += d * d;
        }
        dist[c] = sqrt(sum);
    }
}

void gb_round_evidence_lessons(gb_round_evidence_t *e, double floor_share, double *z,
                               size_t *feature)
{
    const size_t L = e->n_lessons, F = e->features;
    for (size_t i = 0; i < e->count; i++) {
        z[i] = NAN;
        feature[i] = 0;
    }
    if (L < S_MIN_LESSONS)
        return;
    for (size_t r = 0; r < L; r++)
        z[e->with_lesson[r]] = -INFINITY;
    const double floor = floor_share / (double)F;
    for (size_t j = 0; j < F; j++) {
        const float med = s_column_median(e, e->lessons, L, F, j);
        for (size_t r = 0; r < L; r++)
            e->column[r] = fabsf(e->lessons[r * F + j] - med);
        const double s = fmax(1.4826 * (double)s_median(e->column, L), floor);
        for (size_t r = 0; r < L; r++) {
            const size_t i = e->with_lesson[r];
            const double zj = ((double)e->lessons[r * F + j] - med) / s;
            if (zj > z[i]) {
                z[i] = zj;
                feature[i] = j;
            }
        }
    }
}
