/* The round's lessons compared across clients (update_lessons.h). */
#include "update_lessons.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define S_NAME_MAX 64
#define S_FEATURES_MAX 65536
#define S_MIN_CLIENTS 3

struct gb_update_lessons {
    size_t max_clients, features, count, cap;
    double floor_share;
    float *shares;                      /* cap x features */
    char (*names)[S_NAME_MAX + 1];      /* cap */
    double *z;                          /* cap: the last score */
    size_t *feature;                    /* cap */
    float *column;                      /* cap */
    int scored;
};

gb_update_lessons_t *gb_update_lessons_new(size_t max_clients, size_t features,
                                           double floor_share, gb_error_t *err)
{
    if (max_clients == 0 || features == 0 || features > S_FEATURES_MAX ||
        max_clients > SIZE_MAX / sizeof(float) / features || !(floor_share > 0) ||
        !isfinite(floor_share)) {
        gb_error_set(err, GB_EINVAL, "update lessons: %zu clients of %zu features (floor %g) "
                     "is out of range", max_clients, features, floor_share);
        return NULL;
    }
    gb_update_lessons_t *l = gb_calloc(1, sizeof *l);
    if (!l) {
        gb_error_set(err, GB_ENOMEM, "update lessons: out of memory");
        return NULL;
    }
    l->max_clients = max_clients;
    l->features = features;
    l->floor_share = floor_share;
    return l;
}

void gb_update_lessons_destroy(gb_update_lessons_t **lp)
{
    if (!lp || !*lp)
        return;
    gb_update_lessons_t *l = *lp;
    gb_free(l->shares);
    gb_free(l->names);
    gb_free(l->z);
    gb_free(l->feature);
    gb_free(l->column);
    gb_free(l);
    *lp = NULL;
}

void gb_update_lessons_clear(gb_update_lessons_t *l)
{
    l->count = 0;
    l->scored = 0;
}

static int s_grow(gb_update_lessons_t *l, gb_error_t *err)
{
    if (l->count < l->cap)
        return 0;
    size_t cap = l->cap ? 2 * l->cap : 16;
    if (cap > l->max_clients)
        cap = l->max_clients;
    float *sh = gb_realloc(l->shares, cap * l->features * sizeof *sh);
    if (sh)
        l->shares = sh;
    char(*names)[S_NAME_MAX + 1] = sh ? gb_realloc(l->names, cap * sizeof *names) : NULL;
    if (names)
        l->names = names;
    double *z = names ? gb_realloc(l->z, cap * sizeof *z) : NULL;
    if (z)
        l->z = z;
    size_t *ft = z ? gb_realloc(l->feature, cap * sizeof *ft) : NULL;
    if (ft)
        l->feature = ft;
    float *col = ft ? gb_realloc(l->column, cap * sizeof *col) : NULL;
    if (!col)
        return gb_error_set(err, GB_ENOMEM, "update lessons: out of memory for %zu clients",
                            cap);
    l->column = col;
    l->cap = cap;
    return 0;
}

static long s_find(const gb_update_lessons_t *l, const char *client)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->names[i], client) == 0)
            return (long)i;
    return -1;
}

int gb_update_lessons_add(gb_update_lessons_t *l, const char *client, const float *share,
                          gb_error_t *err)
{
    size_t len = client ? strlen(client) : 0;
    if (len == 0 || len > S_NAME_MAX)
        return gb_error_set(err, GB_EINVAL, "update lessons: a client name of %zu bytes (1..%d)",
                            len, S_NAME_MAX);
    if (s_find(l, client) >= 0)
        return gb_error_set(err, GB_EINVAL, "update lessons: '%s' twice in a round", client);
    if (l->count == l->max_clients)
        return gb_error_set(err, GB_ERANGE, "update lessons: more than %zu clients in a round",
                            l->max_clients);
    for (size_t j = 0; j < l->features; j++)
        if (!isfinite(share[j]))
            return gb_error_set(err, GB_ERANGE, "update lessons: '%s' has a share that is not "
                                "finite (feature %zu)", client, j);
    int rc = s_grow(l, err);
    if (rc)
        return rc;
    memcpy(l->shares + l->count * l->features, share, l->features * sizeof *share);
    memcpy(l->names[l->count], client, len + 1);
    l->count++;
    l->scored = 0;
    return 0;
}

size_t gb_update_lessons_count(const gb_update_lessons_t *l)
{
    return l->count;
}

static int s_by_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static float s_median(float *v, size_t n)
{
    qsort(v, n, sizeof *v, s_by_float);
    return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

void gb_update_lessons_score(gb_update_lessons_t *l)
{
    const size_t N = l->count, F = l->features;
    for (size_t c = 0; c < N; c++) {
        l->z[c] = N < S_MIN_CLIENTS ? NAN : -INFINITY;
        l->feature[c] = 0;
    }
    l->scored = 1;
    if (N < S_MIN_CLIENTS)
        return;
    const double floor = l->floor_share / (double)F;
    for (size_t j = 0; j < F; j++) {
        for (size_t c = 0; c < N; c++)
            l->column[c] = l->shares[c * F + j];
        float med = s_median(l->column, N);
        for (size_t c = 0; c < N; c++)
            l->column[c] = fabsf(l->shares[c * F + j] - med);
        double s = fmax(1.4826 * (double)s_median(l->column, N), floor);
        for (size_t c = 0; c < N; c++) {
            double z = ((double)l->shares[c * F + j] - med) / s;
            if (z > l->z[c]) {
                l->z[c] = z;
                l->feature[c] = j;
            }
        }
    }
}

double gb_update_lessons_z(const gb_update_lessons_t *l, const char *client, size_t *feature)
{
    long i = l->scored ? s_find(l, client) : -1;
    if (feature)
        *feature = i >= 0 ? l->feature[i] : 0;
    return i >= 0 ? l->z[i] : NAN;
}
