/* The guard's held updates (held_updates.h): one block of deltas that only
 * grows, in steps of whole updates, so a round after the first allocates
 * nothing. */
#include "held_updates.h"

#include <string.h>

#include "util/alloc.h"

typedef struct {
    char client[GB_HELD_UPDATES_NAME_MAX + 1];
    uint64_t weight;
} s_held_t;

struct gb_held_updates {
    size_t max_updates; /* a round's most */
    size_t n_params;    /* floats per delta */
    s_held_t *held;     /* [cap] */
    float *deltas;      /* [cap * n_params] */
    size_t n, cap;      /* held, room */
};

gb_held_updates_t *gb_held_updates_new(size_t max_updates, size_t n_params, gb_error_t *err)
{
    if (max_updates == 0 || n_params == 0 || max_updates > SIZE_MAX / sizeof(float) / n_params) {
        gb_error_set(err, GB_EINVAL, "held updates: %zu updates of %zu parameters", max_updates,
                     n_params);
        return NULL;
    }
    gb_held_updates_t *h = gb_calloc(1, sizeof *h);
    if (!h) {
        gb_error_set(err, GB_ENOMEM, "held updates: out of memory");
        return NULL;
    }
    h->max_updates = max_updates;
    h->n_params = n_params;
    return h;
}

void gb_held_updates_destroy(gb_held_updates_t **ph)
{
    if (!ph || !*ph)
        return;
    gb_free((*ph)->held);
    gb_free((*ph)->deltas);
    gb_free(*ph);
    *ph = NULL;
}

void gb_held_updates_clear(gb_held_updates_t *h)
{
    if (h)
        h->n = 0;
}

/* Room for one more; GB_ENOMEM leaves the store as it was. */
static int s_reserve(gb_held_updates_t *h)
{
    if (h->n < h->cap)
        return 0;
    size_t cap = h->cap ? 2 * h->cap : 8;
    if (cap > h->max_updates)
        cap = h->max_updates;
    s_held_t *held = gb_realloc(h->held, cap * sizeof *held);
    if (!held)
        return GB_ENOMEM;
    h->held = held;
    float *deltas = gb_realloc(h->deltas, cap * h->n_params * sizeof *deltas);
    if (!deltas)
        return GB_ENOMEM;
    h->deltas = deltas;
    h->cap = cap;
    return 0;
}

int gb_held_updates_add(gb_held_updates_t *h, const char *client, const float *delta, size_t n,
                        uint64_t weight, gb_error_t *err)
{
    size_t len = client ? strnlen(client, GB_HELD_UPDATES_NAME_MAX + 1) : 0;
    if (len == 0 || len > GB_HELD_UPDATES_NAME_MAX)
        return gb_error_set(err, GB_EINVAL, "held updates: a client name of 1 to %d bytes",
                            GB_HELD_UPDATES_NAME_MAX);
    if (n != h->n_params || weight == 0)
        return gb_error_set(err, GB_EINVAL, "held updates: '%s': %zu parameters of weight "
                            "%llu, want %zu of weight >= 1", client, n,
                            (unsigned long long)weight, h->n_params);
    if (h->n == h->max_updates)
        return gb_error_set(err, GB_ERANGE, "held updates: '%s': the round holds %zu already, "
                            "its most", client, h->max_updates);
    if (s_reserve(h) != 0)
        return gb_error_set(err, GB_ENOMEM, "held updates: out of memory holding %zu updates "
                            "of %zu parameters", h->n + 1, h->n_params);
    memcpy(h->held[h->n].client, client, len);
    h->held[h->n].client[len] = '\0';
    h->held[h->n].weight = weight;
    memcpy(h->deltas + h->n * h->n_params, delta, n * sizeof *delta);
    h->n++;
    return 0;
}

size_t gb_held_updates_count(const gb_held_updates_t *h)
{
    return h ? h->n : 0;
}

const char *gb_held_updates_client(const gb_held_updates_t *h, size_t i)
{
    return h->held[i].client;
}

const float *gb_held_updates_delta(const gb_held_updates_t *h, size_t i)
{
    return h->deltas + i * h->n_params;
}

uint64_t gb_held_updates_weight(const gb_held_updates_t *h, size_t i)
{
    return h->held[i].weight;
}
