/* The session index (session_index.h): one open-addressing hash table,
 * used twice (handles, names), a power-of-two array of buckets probed
 * linearly.
 *
 * Why this shape: lookups run on every message and every send, so they
 * must not allocate or chase pointers; a bucket is the key's 64-bit hash,
 * the slot + 1 (0 marks an empty bucket, so a zeroed array is an empty
 * table) and the key's bytes inline (a name is at most 64 bytes). A handle
 * table stores no key bytes at all: a handle's hash (the seed XORed in,
 * then splitmix64's finaliser) is a bijection of the handle, so equal
 * hashes are equal handles. Deletion shifts the following run of the
 * cluster back (Knuth's Algorithm R) instead of leaving tombstones, so a
 * table's probe lengths depend only on what it holds now, not on how many
 * sessions came and went. Each table is kept at most half full. */
#include "session_index.h"

#include <string.h>
#include <time.h>

#include "util/alloc.h"

#define S_MIN_CAP 16 /* buckets of a table at least */

typedef struct {
    uint64_t hash; /* the key's hash (compared first; for handles the key itself) */
    size_t slot1;  /* slot + 1; 0: empty bucket */
} s_head_t;        /* followed by key_size key bytes, padded to the bucket stride */

typedef struct {
    unsigned char *b;  /* cap buckets of `stride` bytes */
    size_t stride;     /* bytes a bucket */
    size_t key_size;   /* key bytes kept after the head (0: the hash is the key) */
    size_t cap, n;     /* buckets (a power of two) and keys */
    const char *what;  /* "handles" or "names", for error messages */
} s_table_t;

struct gb_session_index {
    uint64_t seed;     /* mixed into every hash */
    s_table_t handles; /* handle -> slot */
    s_table_t names;   /* name -> slot */
};

/* splitmix64's finaliser: every input bit moves every output bit, so the
 * low bits that pick a bucket depend on the whole key; it is invertible,
 * which makes a handle's hash a key of its own. */
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

/* ---- the table ----------------------------------------------------------- */

static void s_table_init(s_table_t *t, size_t key_size, const char *what)
{
    size_t align = _Alignof(s_head_t);
    t->b = NULL;
    t->key_size = key_size;
    t->stride = (sizeof(s_head_t) + key_size + align - 1) / align * align;
    t->cap = t->n = 0;
    t->what = what;
}

static s_head_t *s_bucket(const s_table_t *t, size_t i)
{
    return (s_head_t *)(void *)(t->b + i * t->stride);
}

static unsigned char *s_key(s_head_t *h)
{
    return (unsigned char *)(h + 1);
}

/* The bucket holding the key (hash, and klen key bytes when the table keeps
 * them), or the empty bucket where it would go. */
static size_t s_probe(const s_table_t *t, uint64_t hash, const void *key, size_t klen)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)hash & mask;
    for (;; i = (i + 1) & mask) {
        s_head_t *h = s_bucket(t, i);
        if (!h->slot1)
            return i;
        if (h->hash == hash && (!t->key_size || memcmp(s_key(h), key, klen) == 0))
            return i;
    }
}

/* Moves every key into nb (cap buckets, zeroed), which becomes the table. */
static void s_adopt(s_table_t *t, unsigned char *nb, size_t cap)
{
    unsigned char *old = t->b;
    size_t old_cap = t->cap, mask = cap - 1;
    t->b = nb;
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        const s_head_t *o = (const s_head_t *)(const void *)(old + i * t->stride);
        if (!o->slot1)
            continue;
        size_t k = (size_t)o->hash & mask; /* keys are distinct: the first empty bucket */
        while (s_bucket(t, k)->slot1)
            k = (k + 1) & mask;
        memcpy(s_bucket(t, k), o, t->stride);
    }
    gb_free(old);
}

/* A zeroed array of cap buckets for t, or NULL. */
static unsigned char *s_alloc(const s_table_t *t, size_t cap)
{
    return cap ? gb_calloc(cap, t->stride) : NULL;
}

/* Inserts or updates (an update never allocates and never fails). */
static int s_put(s_table_t *t, uint64_t hash, const void *key, size_t klen, size_t slot,
                 gb_error_t *err)
{
    size_t i = s_probe(t, hash, key, klen);
    if (s_bucket(t, i)->slot1) { /* present: an update */
        s_bucket(t, i)->slot1 = slot + 1;
        return 0;
    }
    if (t->n + 1 > t->cap / 2) {
        size_t cap = s_cap_for(t->n + 1);
        unsigned char *nb = s_alloc(t, cap);
        if (!nb)
            return gb_error_set(err, GB_ENOMEM, "session index: out of memory for %zu %s",
                                cap / 2, t->what);
        s_adopt(t, nb, cap);
        i = s_probe(t, hash, key, klen);
    }
    s_head_t *h = s_bucket(t, i);
    h->hash = hash;
    h->slot1 = slot + 1;
    if (t->key_size)
        memcpy(s_key(h), key, klen);
    t->n++;
    return 0;
}

static bool s_find(const s_table_t *t, uint64_t hash, const void *key, size_t klen,
                   size_t *slot)
{
    const s_head_t *h = s_bucket(t, s_probe(t, hash, key, klen));
    if (!h->slot1)
        return false;
    if (slot)
        *slot = h->slot1 - 1;
    return true;
}

static bool s_remove(s_table_t *t, uint64_t hash, const void *key, size_t klen)
{
    size_t mask = t->cap - 1;
    size_t i = s_probe(t, hash, key, klen);
    if (!s_bucket(t, i)->slot1)
        return false;
    /* Backward shift: move each later member of the cluster whose home lies
     * cyclically at or before the hole into it, so no probe ever stops
     * short at the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        s_head_t *h = s_bucket(t, j);
        if (!h->slot1)
            break;
        size_t home = (size_t)h->hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            memcpy(s_bucket(t, i), h, t->stride);
            i = j;
        }
    }
    s_bucket(t, i)->slot1 = 0;
    t->n--;
    return true;
}

/* ---- the index ----------------------------------------------------------- */

gb_session_index_t *gb_session_index_new(size_t expected, gb_error_t *err)
{
    gb_session_index_t *ix = gb_calloc(1, sizeof *ix);
    if (!ix) {
        gb_error_set(err, GB_ENOMEM, "session index: out of memory");
        return NULL;
    }
    ix->seed = s_mix((uint64_t)(uintptr_t)ix ^ (uint64_t)time(NULL));
    s_table_init(&ix->handles, 0, "handles");
    s_table_init(&ix->names, GB_SESSION_INDEX_NAME_MAX + 1, "names");
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
    gb_free((*pix)->handles.b);
    gb_free((*pix)->names.b);
    gb_free(*pix);
    *pix = NULL;
}

int gb_session_index_put_handle(gb_session_index_t *ix, uint64_t handle, size_t slot,
                                gb_error_t *err)
{
    return s_put(&ix->handles, s_hash_handle(ix, handle), NULL, 0, slot, err);
}

bool gb_session_index_find_handle(const gb_session_index_t *ix, uint64_t handle, size_t *slot)
{
    return s_find(&ix->handles, s_hash_handle(ix, handle), NULL, 0, slot);
}

bool gb_session_index_remove_handle(gb_session_index_t *ix, uint64_t handle)
{
    return s_remove(&ix->handles, s_hash_handle(ix, handle), NULL, 0);
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
    return s_put(&ix->names, hash, name, len + 1, slot, err);
}

bool gb_session_index_find_name(const gb_session_index_t *ix, const char *name, size_t *slot)
{
    if (!name)
        return false;
    size_t len;
    uint64_t hash = s_hash_name(ix, name, &len);
    return len <= GB_SESSION_INDEX_NAME_MAX && s_find(&ix->names, hash, name, len + 1, slot);
}

bool gb_session_index_remove_name(gb_session_index_t *ix, const char *name)
{
    if (!name)
        return false;
    size_t len;
    uint64_t hash = s_hash_name(ix, name, &len);
    return len <= GB_SESSION_INDEX_NAME_MAX && s_remove(&ix->names, hash, name, len + 1);
}

/* ---- sizes --------------------------------------------------------------- */

int gb_session_index_reserve(gb_session_index_t *ix, size_t n, gb_error_t *err)
{
    size_t cap = s_cap_for(n);
    if (!cap)
        return gb_error_set(err, GB_ENOMEM, "session index: %zu sessions is too many", n);
    /* Both tables are grown before either is swapped in, so a failure
     * leaves the index as it was. */
    unsigned char *hb = cap > ix->handles.cap ? s_alloc(&ix->handles, cap) : NULL;
    unsigned char *nb = cap > ix->names.cap ? s_alloc(&ix->names, cap) : NULL;
    if ((cap > ix->handles.cap && !hb) || (cap > ix->names.cap && !nb)) {
        gb_free(hb);
        gb_free(nb);
        return gb_error_set(err, GB_ENOMEM, "session index: out of memory for %zu sessions", n);
    }
    if (hb)
        s_adopt(&ix->handles, hb, cap);
    if (nb)
        s_adopt(&ix->names, nb, cap);
    return 0;
}

size_t gb_session_index_handles(const gb_session_index_t *ix)
{
    return ix->handles.n;
}

size_t gb_session_index_names(const gb_session_index_t *ix)
{
    return ix->names.n;
}

size_t gb_session_index_capacity(const gb_session_index_t *ix)
{
    return ix->handles.cap + ix->names.cap;
}
