/* The HTML text buffer (html_text.h). Grows by doubling, so a page of
 * thousands of small appends costs a few reallocations. */
#include "html_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

/* Room for `more` bytes and a NUL; false (and the failure kept) when not. */
static bool s_room(gb_html_text_t *t, size_t more)
{
    if (t->fail)
        return false;
    size_t max = t->max ? t->max : GB_HTML_TEXT_DEFAULT_MAX;
    if (more > max || t->len > max - more) {
        t->fail = GB_ERANGE;
        return false;
    }
    size_t need = t->len + more + 1;
    if (need <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *s = gb_realloc(t->s, cap);
    if (!s) {
        t->fail = GB_ENOMEM;
        return false;
    }
    t->s = s;
    t->cap = cap;
    return true;
}

static void s_put(gb_html_text_t *t, const char *p, size_t n)
{
    if (!s_room(t, n))
        return;
    memcpy(t->s + t->len, p, n);
    t->len += n;
    t->s[t->len] = '\0';
}

void gb_html_text_printf(gb_html_text_t *t, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (!t->fail)
            t->fail = GB_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        s_put(t, small, (size_t)n);
        return;
    }
    if (!s_room(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void gb_html_text_esc(gb_html_text_t *t, const char *s)
{
    if (!s)
        return;
    const char *run = s; /* bytes not yet copied that need no escape */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        const char *ref = c == '&'   ? "&amp;"
                          : c == '<' ? "&lt;"
                          : c == '>' ? "&gt;"
                          : c == '"' ? "&quot;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        bool drop = c != '\0' && c < 0x20 && c != '\t' && c != '\n';
        if (c != '\0' && !ref && !drop)
            continue;
        s_put(t, run, (size_t)(p - run));
        if (c == '\0')
            return;
        if (ref)
            s_put(t, ref, strlen(ref));
        run = p + 1;
    }
}

int gb_html_text_take(gb_html_text_t *t, char **out, size_t *len, gb_error_t *err)
{
    *out = NULL;
    *len = 0;
    if (!t->fail && !t->s)
        s_put(t, "", 0);
    int fail = t->fail;
    if (fail) {
        gb_html_text_free(t);
        return gb_error_set(err, fail, fail == GB_ERANGE ? "html text: larger than its limit"
                                                          : "html text: out of memory");
    }
    *out = t->s;
    *len = t->len;
    size_t max = t->max;
    memset(t, 0, sizeof *t);
    t->max = max;
    return 0;
}

void gb_html_text_free(gb_html_text_t *t)
{
    gb_free(t->s);
    size_t max = t->max;
    memset(t, 0, sizeof *t);
    t->max = max;
}
