/* Zero-run image codec and the compressed image store (format in pixels.h).
 *
 * Token pairs "Z zeros, then L literals" with 4-bit counts and one extension
 * byte each were chosen over one-kind-per-token runs by measuring Fashion-MNIST
 * (452 against 466 bytes per image; 3/5 and 5/3 bit splits were worse): a
 * row's object is one literal run between two zero runs, so most tokens are a
 * (zeros, literals) pair anyway. Decoding first zeroes the whole image (one
 * memset the compiler turns into wide stores), then only visits literal runs;
 * every count is checked before it is used, so a damaged stream can neither
 * write past the image nor read past the stream. Literals are widened with the
 * same expression as the raw path, (float)pixel * scale, so a compressed
 * dataset gives bit-identical batches. */
#include "data/pixels.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "util/alloc.h"

#define S_NIBBLE 15u /* a count nibble that says an extension byte follows */

/* Appends one token (z zeros, then the l literals at lit) at out + *o, or
 * returns false when that would make the stream reach `size` bytes (the raw
 * image is then as short). z, l <= GB_PIXELS_RUN_MAX. */
static inline bool s_token(uint8_t *restrict out, size_t *o, size_t size, size_t z, size_t l,
                           const uint8_t *restrict lit)
{
    size_t need = 1 + (z >= S_NIBBLE) + (l >= S_NIBBLE) + l;
    if (need >= size - *o)
        return false;
    uint8_t *p = out + *o;
    *p++ = (uint8_t)((z < S_NIBBLE ? z : S_NIBBLE) << 4 | (l < S_NIBBLE ? l : S_NIBBLE));
    if (z >= S_NIBBLE)
        *p++ = (uint8_t)(z - S_NIBBLE);
    if (l >= S_NIBBLE)
        *p++ = (uint8_t)(l - S_NIBBLE);
    if (l)
        memcpy(p, lit, l);
    *o += need;
    return true;
}

size_t gb_pixels_encode(const uint8_t *img, size_t size, uint8_t *out)
{
    assert(img && out && size >= 1);
    size_t end = size; /* zeros from end on are implicit */
    while (end > 0 && img[end - 1] == 0)
        end--;
    size_t i = 0, o = 0;
    while (i < end) { /* img[end - 1] != 0: every zero run ends before end */
        size_t z = 0, l = 0;
        while (img[i + z] == 0)
            z++;
        while (i + z + l < end && img[i + z + l] != 0)
            l++;
        const uint8_t *lit = img + i + z;
        i += z + l;
        for (; z > GB_PIXELS_RUN_MAX; z -= GB_PIXELS_RUN_MAX)
            if (!s_token(out, &o, size, GB_PIXELS_RUN_MAX, 0, NULL))
                goto raw;
        for (; l > GB_PIXELS_RUN_MAX; l -= GB_PIXELS_RUN_MAX, lit += GB_PIXELS_RUN_MAX, z = 0)
            if (!s_token(out, &o, size, z, GB_PIXELS_RUN_MAX, lit))
                goto raw;
        if (!s_token(out, &o, size, z, l, lit))
            goto raw;
    }
    return o;
raw:
    memcpy(out, img, size);
    return size;
}

/* Reads one token at *p (< end): its zero and literal counts. False when an
 * extension byte is missing. */
static inline bool s_read_token(const uint8_t **p, const uint8_t *end, size_t *z, size_t *l)
{
    const uint8_t *q = *p;
    unsigned t = *q++;
    *z = t >> 4;
    *l = t & S_NIBBLE;
    if (*z == S_NIBBLE) {
        if (q == end)
            return false;
        *z += *q++;
    }
    if (*l == S_NIBBLE) {
        if (q == end)
            return false;
        *l += *q++;
    }
    *p = q;
    return true;
}

int gb_pixels_decode(const uint8_t *enc, size_t len, size_t size, uint8_t *out)
{
    if (len > size)
        return GB_EFORMAT;
    if (len == size) {
        memcpy(out, enc, size);
        return 0;
    }
    memset(out, 0, size);
    if (len == 0)
        return 0;
    const uint8_t *p = enc, *end = enc + len;
    size_t pos = 0, z, l;
    while (p < end) {
        if (!s_read_token(&p, end, &z, &l) || z + l > size - pos || l > (size_t)(end - p))
            return GB_EFORMAT;
        pos += z;
        memcpy(out + pos, p, l);
        pos += l;
        p += l;
    }
    return 0;
}

static inline void s_widen(float *restrict dst, const uint8_t *restrict src, size_t n, float scale)
{
    for (size_t k = 0; k < n; k++)
        dst[k] = (float)src[k] * scale;
}

int gb_pixels_decode_float(const uint8_t *enc, size_t len, size_t size, float scale, float *out)
{
    if (len > size)
        return GB_EFORMAT;
    if (len == size) {
        s_widen(out, enc, size, scale);
        return 0;
    }
    memset(out, 0, size * sizeof *out); /* all-zero bits is 0.0f */
    if (len == 0)
        return 0;
    const uint8_t *p = enc, *end = enc + len;
    size_t pos = 0, z, l;
    while (p < end) {
        if (!s_read_token(&p, end, &z, &l) || z + l > size - pos || l > (size_t)(end - p))
            return GB_EFORMAT;
        pos += z;
        s_widen(out + pos, p, l, scale);
        pos += l;
        p += l;
    }
    return 0;
}

/* Checks size and max_n and allocates an empty store with its offset
 * table into *out. */
static int s_new(size_t size, int64_t max_n, gb_pixels_t **out, gb_error_t *err)
{
    *out = NULL;
    if (size < 1 || max_n < 0)
        return gb_error_set(err, GB_EINVAL, "pixel store: %zu bytes per image, %lld images", size,
                            (long long)max_n);
    size_t total;
    if ((uint64_t)max_n > SIZE_MAX || __builtin_mul_overflow(size, (size_t)max_n, &total) ||
        total > GB_PIXELS_MAX_BYTES)
        return gb_error_set(err, GB_ERANGE,
                            "pixel store: %lld images of %zu bytes are over the %zu-byte limit",
                            (long long)max_n, size, GB_PIXELS_MAX_BYTES);
    gb_pixels_t *p = gb_calloc(1, sizeof *p);
    if (p)
        p->off = gb_malloc(((size_t)max_n + 1) * sizeof *p->off);
    if (!p || !p->off) {
        gb_free(p);
        return gb_error_set(err, GB_ENOMEM, "pixel store: out of memory for %lld offsets",
                            (long long)max_n);
    }
    p->size = size;
    p->max_n = max_n;
    p->off[0] = 0;
    *out = p;
    return 0;
}

gb_pixels_t *gb_pixels_new(size_t size, int64_t max_n, gb_error_t *err)
{
    gb_pixels_t *p;
    return s_new(size, max_n, &p, err) == 0 ? p : NULL;
}

void gb_pixels_destroy(gb_pixels_t **p)
{
    if (!p || !*p)
        return;
    gb_free((*p)->off);
    gb_free((*p)->data);
    gb_free(*p);
    *p = NULL;
}

int gb_pixels_append(gb_pixels_t *p, const uint8_t *img, gb_error_t *err)
{
    assert(p && img);
    if (p->n >= p->max_n)
        return gb_error_set(err, GB_EINVAL, "pixel store full: %lld images", (long long)p->max_n);
    size_t used = p->off[p->n], limit = (size_t)p->max_n * p->size; /* <= UINT32_MAX */
    if (p->cap - used < p->size) {
        /* first guess half the raw size, then double; never past `limit`,
         * which holds every image raw */
        size_t cap = !p->cap ? limit / 2 : p->cap > limit / 2 ? limit : 2 * p->cap;
        if (cap < used + p->size)
            cap = used + p->size;
        if (cap > limit)
            cap = limit;
        uint8_t *data = gb_realloc(p->data, cap);
        if (!data)
            return gb_error_set(err, GB_ENOMEM, "pixel store: out of memory for %zu bytes", cap);
        p->data = data;
        p->cap = cap;
    }
    size_t len = gb_pixels_encode(img, p->size, p->data + used);
    p->off[p->n + 1] = (uint32_t)(used + len);
    p->n++;
    return 0;
}

void gb_pixels_trim(gb_pixels_t *p)
{
    assert(p);
    size_t used = p->off[p->n];
    void *q;
    if (used == 0) {
        gb_free(p->data);
        p->data = NULL;
        p->cap = 0;
    } else if (used < p->cap && (q = gb_realloc(p->data, used)) != NULL) {
        p->data = q;
        p->cap = used;
    }
    if (p->max_n > p->n && (q = gb_realloc(p->off, ((size_t)p->n + 1) * sizeof *p->off)) != NULL) {
        p->off = q;
        p->max_n = p->n;
    }
}

int gb_pixels_get(const gb_pixels_t *p, int64_t i, uint8_t *out)
{
    assert(p && out && i >= 0 && i < p->n);
    uint32_t a = p->off[i], b = p->off[i + 1];
    return gb_pixels_decode(b > a ? p->data + a : NULL, b > a ? b - a : 0, p->size, out);
}

int gb_pixels_get_float(const gb_pixels_t *p, int64_t i, float scale, float *out)
{
    assert(p && out && i >= 0 && i < p->n);
    uint32_t a = p->off[i], b = p->off[i + 1];
    return gb_pixels_decode_float(b > a ? p->data + a : NULL, b > a ? b - a : 0, p->size, scale,
                                  out);
}

int gb_pixels_subset(const gb_pixels_t *p, const int32_t *idx, int64_t n, gb_pixels_t **out,
                     gb_error_t *err)
{
    assert(p && out);
    *out = NULL;
    if (n < 0 || (n > 0 && !idx))
        return gb_error_set(err, GB_EINVAL, "gb_pixels_subset: bad arguments");
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= p->n)
            return gb_error_set(err, GB_ERANGE, "pixel store: image %d out of range 0..%lld",
                                idx[i], (long long)p->n - 1);
    gb_pixels_t *sub;
    int rc = s_new(p->size, n, &sub, err); /* n x size <= GB_PIXELS_MAX_BYTES from here */
    if (rc)
        return rc;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++)
        total += p->off[idx[i] + 1] - p->off[idx[i]];
    if (total > 0 && !(sub->data = gb_malloc(total))) {
        gb_pixels_destroy(&sub);
        return gb_error_set(err, GB_ENOMEM, "pixel store: out of memory for %zu bytes", total);
    }
    sub->cap = total;
    size_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = p->off[idx[i]], len = p->off[idx[i] + 1] - a;
        if (len)
            memcpy(sub->data + used, p->data + a, len);
        used += len;
        sub->off[i + 1] = (uint32_t)used;
    }
    sub->n = n;
    *out = sub;
    return 0;
}

void gb_pixels_limit(gb_pixels_t *p, int64_t n)
{
    assert(p && n >= 0);
    if (n >= p->n)
        return;
    p->n = n;
    gb_pixels_trim(p);
}

size_t gb_pixels_bytes(const gb_pixels_t *p)
{
    return p ? p->cap + ((size_t)p->max_n + 1) * sizeof *p->off : 0;
}
