/* Shared wire helpers (see wire.h). The UTF-8 check is a strict decoder
 * rather than a table: it must refuse overlong forms and surrogates, which
 * a permissive check lets through and which can smuggle a '/' or a NUL past
 * a later byte-level check. The finite scan reads raw bit patterns, so it
 * neither depends on the host's byte order nor trips UBSan on misaligned
 * input (protobuf-c gives bytes fields no alignment). */
#include "net/wire.h"

#include "util/alloc.h"

#include <stdarg.h>
#include <stdio.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

_Static_assert(sizeof(float) == 4, "tensors are 4-byte IEEE-754 floats on the wire");

bool gb_wire_text_ok(const char *text, size_t len, bool allow_space, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            bool space = c == '\t' || c == '\n' || c == '\r';
            if ((c < 0x20 && !(allow_space && space)) || c == 0x7f)
                goto bad;
            i++;
            continue;
        }
        size_t need;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (len - i <= need)
            goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp <= 0x9f))
            goto bad;
        i += need + 1;
    }
    return true;
bad:
    if (bad)
        *bad = i;
    return false;
}

bool gb_wire_openssl_reasons(char *buf, size_t cap)
{
    size_t used = 0;
    bool out_of_memory = false;
    buf[0] = '\0';
    const char *data = NULL;
    int flags = 0;
    unsigned long e;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            out_of_memory = true;
        const char *reason = ERR_reason_error_string(e);
        char code[32];
        if (!reason) {
            snprintf(code, sizeof code, "OpenSSL error %lx", e);
            reason = code;
        }
        bool detail = (flags & ERR_TXT_STRING) && data && data[0];
        if (used < cap) {
            int n = snprintf(buf + used, cap - used, "%s%s%s%s%s", used ? "; " : "", reason,
                             detail ? " (" : "", detail ? data : "", detail ? ")" : "");
            if (n > 0)
                used += (size_t)n;
        }
    }
    if (!buf[0])
        snprintf(buf, cap, "no OpenSSL reason");
    return out_of_memory;
}

int gb_wire_openssl_error(gb_error_t *err, int code, const char *fmt, ...)
{
    char what[GB_ERROR_MSG_MAX], why[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (gb_wire_openssl_reasons(why, sizeof why))
        code = GB_ENOMEM;
    return gb_error_set(err, code, "%s: %s", what, why);
}

int gb_wire_sha256(const void *data, size_t len, uint8_t out[GB_WIRE_SHA256_LEN],
                   gb_error_t *err)
{
    unsigned int out_len = 0;
    if (!EVP_Digest(len ? data : "", len, out, &out_len, EVP_sha256(), NULL) ||
        out_len != GB_WIRE_SHA256_LEN)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "SHA-256 failed");
    return 0;
}

static uint32_t s_u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

float gb_wire_float_le(const uint8_t *p)
{
    uint32_t u = s_u32_le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void gb_wire_floats_from_le(float *dst, const uint8_t *src, size_t n)
{
#if GB_WIRE_LITTLE_ENDIAN
    if (n)
        memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++)
        dst[i] = gb_wire_float_le(src + 4 * i);
#endif
}

void gb_wire_floats_to_le(uint8_t *dst, const float *src, size_t n)
{
#if GB_WIRE_LITTLE_ENDIAN
    if (n)
        memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        dst[4 * i] = (uint8_t)u;
        dst[4 * i + 1] = (uint8_t)(u >> 8);
        dst[4 * i + 2] = (uint8_t)(u >> 16);
        dst[4 * i + 3] = (uint8_t)(u >> 24);
    }
#endif
}

size_t gb_wire_first_nonfinite(const uint8_t *le, size_t n)
{
    /* NaN and Inf are exactly the patterns whose exponent bits are all ones.
     * OR-reduce blocks first: most tensors are clean, and the block test
     * vectorises where a per-element branch would not. */
    const uint32_t exp = 0x7f800000u;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 256 ? i + 256 : n;
        int any = 0;
        for (size_t k = i; k < end; k++)
            any |= (s_u32_le(le + 4 * k) & exp) == exp;
        if (any)
            for (size_t k = i; k < end; k++)
                if ((s_u32_le(le + 4 * k) & exp) == exp)
                    return k;
        i = end;
    }
    return n;
}

#define S_BUDGET_SLACK ((size_t)64 << 10)

gb_wire_budget_t gb_wire_budget(size_t len)
{
    gb_wire_budget_t b = {.used = 0,
                          .limit = len > (SIZE_MAX - S_BUDGET_SLACK) / 2
                                       ? SIZE_MAX
                                       : 2 * len + S_BUDGET_SLACK};
    return b;
}

static void *s_budget_alloc(void *data, size_t size)
{
    gb_wire_budget_t *b = data;
    if (size > b->limit - b->used) {
        b->over = true;
        return NULL;
    }
    void *p = gb_malloc(size);
    if (!p)
        b->out_of_mem = true;
    else
        b->used += size;
    return p;
}

static void *s_plain_alloc(void *data, size_t size)
{
    (void)data;
    return gb_malloc(size);
}

static void s_plain_free(void *data, void *p)
{
    (void)data;
    gb_free(p);
}

ProtobufCAllocator gb_wire_budget_allocator(gb_wire_budget_t *b)
{
    ProtobufCAllocator a = {.alloc = s_budget_alloc, .free = s_plain_free, .allocator_data = b};
    return a;
}

ProtobufCAllocator *gb_wire_allocator(void)
{
    static ProtobufCAllocator plain = {
        .alloc = s_plain_alloc, .free = s_plain_free, .allocator_data = NULL};
    return &plain;
}
