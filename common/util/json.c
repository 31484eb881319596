/* JSON helpers over jansson (see json.h): the UTF-8 repair, the real
 * number rule and the one set of dump flags.
 *
 * The UTF-8 check is written out rather than left to jansson because
 * jansson only accepts or refuses a whole string (json_string returns NULL
 * on a bad byte), and a name with one bad byte must still be written: the
 * repaired copy is built in a buffer of 3 bytes per input byte (U+FFFD is
 * 3 bytes in UTF-8) and handed to json_stringn, which then checks a string
 * that is valid by construction. */
#include "util/json.h"
#include "util/alloc.h"

#include <math.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
static int s_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++) /* a NUL ends the string and fails here */
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

json_t *gb_json_string(const char *s)
{
    if (!s)
        return json_null();
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        int n = s_utf8_len(p + i);
        if (n == 0)
            break;
        i += (size_t)n;
    }
    if (i == len) /* the usual case: valid as it is */
        return json_stringn(s, len);
    char *fixed = gb_malloc(3 * len + 1);
    if (!fixed)
        return NULL;
    size_t w = 0;
    for (i = 0; i < len;) {
        int n = s_utf8_len(p + i);
        if (n == 0) {
            memcpy(fixed + w, "\xEF\xBF\xBD", 3); /* U+FFFD */
            w += 3;
            i++;
        } else {
            memcpy(fixed + w, p + i, (size_t)n);
            w += (size_t)n;
            i += (size_t)n;
        }
    }
    json_t *j = json_stringn(fixed, w);
    gb_free(fixed);
    return j;
}

json_t *gb_json_real(double v)
{
    if (!isfinite(v))
        return NULL;
    return json_real(v == 0 ? 0.0 : v); /* never "-0.0" */
}

json_t *gb_json_real_or_null(double v)
{
    return isfinite(v) ? gb_json_real(v) : json_null();
}

int gb_json_dump(const json_t *doc, char **out, size_t *len, gb_error_t *err)
{
    *out = NULL;
    *len = 0;
    size_t n = doc ? json_dumpb(doc, NULL, 0, GB_JSON_FLAGS) : 0;
    if (n == 0)
        return gb_error_set(err, GB_ENOMEM, "json: cannot write the document");
    char *buf = gb_malloc(n + 2);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "json: out of memory for %zu bytes", n + 2);
    if (json_dumpb(doc, buf, n, GB_JSON_FLAGS) != n) {
        gb_free(buf);
        return gb_error_set(err, GB_ENOMEM, "json: cannot write the document");
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    *out = buf;
    *len = n + 1;
    return 0;
}

int gb_json_print(FILE *f, const json_t *doc, gb_error_t *err)
{
    if (!doc || json_dumpf(doc, f, GB_JSON_FLAGS) != 0 || fputc('\n', f) == EOF ||
        fflush(f) != 0)
        return gb_error_set(err, GB_EIO, "json: cannot write the document");
    return 0;
}
