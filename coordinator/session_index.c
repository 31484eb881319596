/* The session index (session_index.h): two open-addressing hash tables,
 * handles and names, each a power-of-two array of buckets probed linearly.
 *
 * Why this shape: lookups run on every message and every send, so they
 * must not allocate or chase pointers; buckets hold their keys inline (a
 * name is at most 64 bytes) and the slot + 1 (0 marks an empty bucket, so a
 * zeroed array is an empty table). Deletion shifts the following run of
 * the cluster back (Knuth's Algorithm R) instead of leaving tombstones, so a
 * table's probe lengths depend only on what it holds now, not on how many
 * sessions came and went. Each table is kept at most half full. */
#include "session_index.h"

#include <string.h>
#include <time.h>

#include "util/alloc.h"

#define S_MIN_CAP 16 /* buckets of a table at least */

typedef struct {
    uint64_t handle; /* the key */
    size_t slot1;    /* slot + 1; 0: empty bucket */
} s_hbucket_t;

typedef struct {
    uint64_t hash;                               /* the name's hash (compared first) */
    size_t slot1;                                /* slot + 1; 0: empty bucket */
    char name[GB_SESSION_INDEX_NAME_MAX + 1];    /* the key, NUL-terminated */
} s_nbucket_t;

struct gb_session_index {
    uint64_t seed;        /* mixed into every hash */
    s_hbucket_t *h;       /* handle table */
    size_t h_cap, h_n;    /* its buckets (a power of two) and keys */
    s_nbucket_t *nm;      /* name table */
    size_t n_cap, n_n;    /* its buckets (a power of two) and keys */
};

/* splitmix64's finaliser: every input bit moves every output bit, so the
 * low bits that pick a bucket depend on the whole key. */
static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t s_hash_handle(const gb_session_index_t *ix, uint64_t handle)
{
    return s_mix(handle ^ ix->seed);
}

/* FNV-1a over the bytes, then mixed; *len receives the length (or a value
 * over the maximum when the name is too long). */
static uint64_t s_hash_name(const gb_session_index_t *ix, const char *name, size_t *len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ ix->seed;
    size_t i = 0;
    for (; name[i] && i <= GB_SESSION_INDEX_NAME_MAX; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ull;
    }
    *len = i;
    return s_mix(h);
}

/* The smallest power-of-two bucket count that holds n keys at most half full. */
static size_t s_cap_for(size_t n)
{
    size_t cap = S_MIN_CAP;
    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 4)
            return 0;
        cap *= 2;
    }
    return cap;
}

gb_session_index_t *gb_session_index_new(size_t expected, gb_error_t *err)
{
    gb_session_index_t *ix = gb_calloc(1, sizeof *ix);
    if (!ix) {
        gb_error_set(err, GB_ENOMEM, "session index: out of memory");
        return NULL;
    }
    ix->seed = s_mix((uint64_t)(uintptr_t)ix ^ (uint64_t)time(NULL));
    if (gb_session_index_reserve(ix, expected ? expected : S_MIN_CAP / 2, err) != 0) {
        gb_session_index_destroy(&ix);
        return NULL;
    }
    return ix;
}

void gb_session_index_destroy(gb_session_index_t **pix)
{
    if (!pix || !*pix)
        return;
    gb_free((*pix)->h);
    gb_free((*pix)->nm);
    gb_free(*pix);
    *pix = NULL;
}

/* ---- handles ------------------------------------------------------------- */

/* The bucket holding handle, or the empty bucket where it would go. */
static size_t s_hprobe(const gb_session_index_t *ix, uint64_t handle)
{
    size_t mask = ix->h_cap - 1;
    size_t i = (size_t)s_hash_handle(ix, handle) & mask;
    while (ix->h[i].slot1 && ix->h[i].handle != handle)
        i = (i + 1) & mask;
    return i;
}

/* Moves every handle into nb (cap buckets, zeroed), which becomes the table. */
static void s_hadopt(gb_session_index_t *ix, s_hbucket_t *nb, size_t cap)
{
    s_hbucket_t *old = ix->h;
    size_t old_cap = ix->h_cap;
    ix->h = nb;
    ix->h_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].slot1)
            ix->h[s_hprobe(ix, old[i].handle)] = old[i];
    gb_free(old);
}

static int s_hgrow(gb_session_index_t *ix, size_t cap, gb_error_t *err)
{
    s_hbucket_t *nb = cap ? gb_calloc(cap, sizeof *nb) : NULL;
    if (!nb)
        return gb_error_set(err, GB_ENOMEM, "session index: out of memory for %zu handles",
                            cap / 2);
    s_hadopt(ix, nb, cap);
    return 0;
}

int gb_session_index_put_handle(gb_session_index_t *ix, uint64_t handle, size_t slot,
                                gb_error_t *err)
{
    size_t i = s_hprobe(ix, handle);
    if (ix->h[i].slot1) { /* present: an update */
        ix->h[i].slot1 = slot + 1;
        return 0;
    }
    if (ix->h_n + 1 > ix->h_cap / 2) {
        int rc = s_hgrow(ix, s_cap_for(ix->h_n + 1), err);
        if (rc)
            return rc;
        i = s_hprobe(ix, handle);
    }
    ix->h[i].handle = handle;
    ix->h[i].slot1 = slot + 1;
    ix->h_n++;
    return 0;
}

bool gb_session_index_find_handle(const gb_session_index_t *ix, uint64_t handle, size_t *slot)
{
    size_t i = s_hprobe(ix, handle);
    if (!ix->h[i].slot1)
        return false;
    if (slot)
        *slot = ix->h[i].slot1 - 1;
    return true;
}

bool gb_session_index_remove_handle(gb_session_index_t *ix, uint64_t handle)
{
    size_t mask = ix->h_cap - 1;
    size_t i = s_hprobe(ix, handle);
    if (!ix->h[i].slot1)
        return false;
    /* Backward shift: move each later member of the cluster whose home lies
     * cyclically at or before the hole into it, so no probe ever stops
     * short at the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!ix->h[j].slot1)
            break;
        size_t home = (size_t)s_hash_handle(ix, ix->h[j].handle) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->h[i] = ix->h[j];
            i = j;
        }
    }
    ix->h[i].slot1 = 0;
    ix->h_n--;
    return true;
}

/* ---- names --------------------------------------------------------------- */

static size_t s_nprobe(const gb_session_index_t *ix, uint64_t hash, const char *name, size_t len)
{
    size_t mask = ix->n_cap - 1;
    size_t i = (size_t)hash & mask;
    while (ix->nm[i].slot1 &&
           (ix->nm[i].hash != hash || memcmp(ix->nm[i].name, name, len + 1) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Moves every name into nb (cap buckets, zeroed), which becomes the table. */
static void s_nadopt(gb_session_index_t *ix, s_nbucket_t *nb, size_t cap)
{
    s_nbucket_t *old = ix->nm;
    size_t old_cap = ix->n_cap, mask = cap - 1;
    ix->nm = nb;
    ix->n_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].slot1)
            continue;
        size_t k = (size_t)old[i].hash & mask; /* keys are distinct: the first empty bucket */
        while (ix->nm[k].slot1)
            k = (k + 1) & mask;
        ix->nm[k] = old[i];
    }
    gb_free(old);
}

static int s_ngrow(gb_session_index_t *ix, size_t cap, gb_error_t *err)
{
    s_nbucket_t *nb = cap ? gb_calloc(cap, sizeof *nb) : NULL;
    if (!nb)
        return gb_error_set(err, GB_ENOMEM, "session index: out of memory for %zu names",
                            cap / 2);
    s_nadopt(ix, nb, cap);
    return 0;
}

int gb_session_index_put_name(gb_session_index_t *ix, const char *name, size_t slot,
                              gb_error_t *err)
{
    if (!name)
        return gb_error_set(err, GB_EINVAL, "session index: no name");
    size_t len;
    uint64_t hash = s_hash_name(ix, name, &len);
    if (len > GB_SESSION_INDEX_NAME_MAX)
        return gb_error_set(err, GB_EINVAL, "session index: name '%.16s...' over %d bytes",
                            name, GB_SESSION_INDEX_NAME_MAX);
    size_t i = s_nprobe(ix, hash, name, len);
    if (ix->nm[i].slot1) {
        ix->nm[i].slot1 = slot + 1;
        return 0;
    }
    if (ix->n_n + 1 > ix->n_cap / 2) {
        int rc = s_ngrow(ix, s_cap_for(ix->n_n + 1), err);
        if (rc)
            return rc;
        i = s_nprobe(ix, hash, name, len);
    }
    ix->nm[i].hash = hash;
    ix->nm[i].slot1 = slot + 1;
    memcpy(ix->nm[i].name, name, len + 1);
    ix->n_n++;
    return 0;
}

bool gb_session_index_find_name(const gb_session_index_t *ix, const char *name, size_t *slot)
{
    if (!name)
        return false;
    size_t len;
    uint64_t hash = s_hash_name(ix, name, &len);
    if (len > GB_SESSION_INDEX_NAME_MAX)
        return false;
    size_t i = s_nprobe(ix, hash, name, len);
    if (!ix->nm[i].slot1)
        return false;
    if (slot)
        *slot = ix->nm[i].slot1 - 1;
    return true;
}

bool gb_session_index_remove_name(gb_session_index_t *ix, const char *name)
{
    if (!name)
        return false;
    size_t len;
    uint64_t hash = s_hash_name(ix, name, &len);
    if (len > GB_SESSION_INDEX_NAME_MAX)
        return false;
    size_t mask = ix->n_cap - 1;
    size_t i = s_nprobe(ix, hash, name, len);
    if (!ix->nm[i].slot1)
        return false;
    size_t j = i; /* backward shift, as for handles */
    for (;;) {
        j = (j + 1) & mask;
        if (!ix->nm[j].slot1)
            break;
        size_t home = (size_t)ix->nm[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->nm[i] = ix->nm[j];
            i = j;
        }
    }
    ix->nm[i].slot1 = 0;
    ix->n_n--;
    return true;
}

/* ---- sizes --------------------------------------------------------------- */

int gb_session_index_reserve(gb_session_index_t *ix, size_t n, gb_error_t *err)
{
    size_t cap = s_cap_for(n);
    if (!cap)
        return gb_error_set(err, GB_ENOMEM, "session index: %zu sessions is too many", n);
    /* Both tables are grown before either is swapped in, so a failure
     * leaves the index as it was. */
    s_hbucket_t *hb = cap > ix->h_cap ? gb_calloc(cap, sizeof *hb) : NULL;
    s_nbucket_t *nb = cap > ix->n_cap ? gb_calloc(cap, sizeof *nb) : NULL;
    if ((cap > ix->h_cap && !hb) || (cap > ix->n_cap && !nb)) {
        gb_free(hb);
        gb_free(nb);
        return gb_error_set(err, GB_ENOMEM, "session index: out of memory for %zu sessions", n);
    }
    if (hb)
        s_hadopt(ix, hb, cap);
    if (nb)
        s_nadopt(ix, nb, cap);
    return 0;
}

size_t gb_session_index_handles(const gb_session_index_t *ix)
{
    return ix->h_n;
}

size_t gb_session_index_names(const gb_session_index_t *ix)
{
    return ix->n_n;
}

size_t gb_session_index_capacity(const gb_session_index_t *ix)
{
    return ix->h_cap + ix->n_cap;
}
