/* Class names: Fashion-MNIST's built in, others from a file of one name per
 * line, "class K" for the rest (the rules are in class_names.h).
 *
 * A list is one allocation: the struct followed by n_classes fixed slots of
 * GB_CLASS_NAMES_MAX_LEN + 1 bytes. Fixed slots cost at most 650 KB at the
 * largest class count and make every name a plain array index; they also
 * let the fallback names be written into the same slots, so get() needs no
 * case of its own. The file is read whole (bounded before it is read) and
 * checked line by line, so an error can name the line and byte. */
#include "data/class_names.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "data/dataset.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define S_SLOT (GB_CLASS_NAMES_MAX_LEN + 1)
#define S_SOURCE_MAX 4096

struct gb_class_names {
    int n;                     /* classes: slots */
    int named;                 /* slots 0..named-1 hold real names */
    char source[S_SOURCE_MAX]; /* "fashion-mnist", the file path, or "none" */
    char names[];              /* n slots of S_SLOT bytes, NUL-terminated */
};

/* The names of Fashion-MNIST's classes 0..9, as its README spells them. */
static const char *const S_FASHION[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                          "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                          "Bag",         "Ankle boot"};

static char *s_slot(gb_class_names_t *c, int k)
{
    return c->names + (size_t)k * S_SLOT;
}

/* A list of n "class K" names, or NULL after filling err. */
static gb_class_names_t *s_new(int n, const char *source, gb_error_t *err)
{
    if (n < 1 || n > GB_CLASS_NAMES_MAX_CLASSES) {
        gb_error_set(err, GB_EINVAL, "class names: class count %d outside 1..%d", n,
                     GB_CLASS_NAMES_MAX_CLASSES);
        return NULL;
    }
    gb_class_names_t *c = gb_calloc(1, sizeof *c + (size_t)n * S_SLOT);
    if (!c) {
        gb_error_set(err, GB_ENOMEM, "class names: out of memory for %d classes", n);
        return NULL;
    }
    c->n = n;
    snprintf(c->source, sizeof c->source, "%s", source);
    for (int k = 0; k < n; k++)
        snprintf(s_slot(c, k), S_SLOT, "class %d", k);
    return c;
}

/* Checks that p[0..n) is printable UTF-8. Returns 0, or 1 with *at the
 * offset of the first bad byte and *cp the control character found there
 * (or -1: not UTF-8). */
static int s_check_utf8(const unsigned char *p, size_t n, size_t *at, long *cp)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = p[i];
        uint32_t u;
        size_t len;
        if (b < 0x80) {
            u = b;
            len = 1;
        } else if (b >= 0xc2 && b <= 0xdf) {
            u = b & 0x1f;
            len = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            u = b & 0x0f;
            len = 3;
        } else if (b >= 0xf0 && b <= 0xf4) {
            u = b & 0x07;
            len = 4;
        } else {
            break; /* a continuation byte, an overlong lead (c0, c1) or beyond U+10FFFF */
        }
        if (len > n - i)
            break;
        size_t j = 1;
        for (; j < len && (p[i + j] & 0xc0) == 0x80; j++)
            u = u << 6 | (p[i + j] & 0x3f);
        if (j < len)
            break;
        /* overlong 3- and 4-byte forms, surrogates, beyond U+10FFFF */
        if ((len == 3 && (u < 0x800 || (u >= 0xd800 && u <= 0xdfff))) ||
            (len == 4 && (u < 0x10000 || u > 0x10ffff)))
            break;
        if (u < 0x20 || (u >= 0x7f && u <= 0x9f)) {
            *at = i;
            *cp = (long)u;
            return 1;
        }
        i += len;
    }
    if (i == n)
        return 0;
    *at = i;
    *cp = -1;
    return 1;
}

gb_class_names_t *gb_class_names_load(const char *path, int n_classes, gb_error_t *err)
{
    if (!path) {
        gb_error_set(err, GB_EINVAL, "class names: no file given");
        return NULL;
    }
    gb_class_names_t *c = s_new(n_classes, path, err);
    if (!c)
        return NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    size_t max = GB_CLASS_NAMES_FILE_MAX(n_classes);
    int rc = gb_file_read_all(path, max, &data, &len, err);
    if (rc == GB_ERANGE) {
        gb_error_warn(err, GB_ERANGE,
                      "%s: over %zu bytes, more than %d names of at most %d bytes need", path,
                      max, n_classes, GB_CLASS_NAMES_MAX_LEN);
        goto fail;
    }
    if (rc)
        goto fail;
    const unsigned char *p = data, *end = data + len;
    if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        p += 3;
    int line = 0, blank_line = 0; /* blank_line: the first blank line not yet followed */
    while (p < end) {
        const unsigned char *start = p, *nl = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *eol = nl ? nl : end, *next = nl ? nl + 1 : end;
        line++;
        if (eol > p && eol[-1] == '\r')
            eol--;
        const unsigned char *a = p, *b = eol;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        size_t n = (size_t)(b - a);
        p = next;
        if (n == 0) {
            if (!blank_line)
                blank_line = line;
            continue;
        }
        if (blank_line) {
            gb_error_warn(err, GB_EFORMAT, "%s:%d: empty name for class %d", path,
                               blank_line, blank_line - 1);
            goto fail;
        }
        if (line > n_classes) {
            gb_error_warn(err, GB_EFORMAT, "%s:%d: more names than the model's %d classes",
                               path, line, n_classes);
            goto fail;
        }
        if (n > GB_CLASS_NAMES_MAX_LEN) {
            gb_error_warn(err, GB_EFORMAT, "%s:%d: the name of class %d is %zu bytes, at "
                               "most %d", path, line, line - 1, n, GB_CLASS_NAMES_MAX_LEN);
            goto fail;
        }
        size_t at;
        long cp;
        if (s_check_utf8(a, n, &at, &cp)) {
            size_t col = (size_t)(a - start) + at + 1; /* 1-based, in the line as written */
            if (cp < 0)
                gb_error_warn(err, GB_EFORMAT, "%s:%d: the name of class %d is not valid UTF-8 "
                              "at byte %zu", path, line, line - 1, col);
            else
                gb_error_warn(err, GB_EFORMAT, "%s:%d: the name of class %d holds control "
                              "character U+%04lX at byte %zu", path, line, line - 1,
                              (unsigned long)cp, col);
            goto fail;
        }
        char *slot = s_slot(c, line - 1);
        memcpy(slot, a, n);
        slot[n] = '\0';
        for (int k = 0; k < line - 1; k++) {
            if (strcmp(s_slot(c, k), slot) == 0) {
                gb_error_warn(err, GB_EFORMAT, "%s:%d: class %d's name '%s' is class %d's "
                                   "too (line %d)", path, line, line - 1, slot, k, k + 1);
                goto fail;
            }
        }
        c->named = line;
    }
    if (c->named == 0) {
        gb_error_warn(err, GB_EFORMAT, "%s: no class names in it", path);
        goto fail;
    }
    if (c->named < n_classes) {
        gb_error_warn(err, GB_EFORMAT, "%s: %d names for the model's %d classes (line K+1 "
                      "names class K; every class needs one)", path, c->named, n_classes);
        goto fail;
    }
    gb_free(data);
    return c;
fail:
    gb_free(data);
    gb_class_names_destroy(&c);
    return NULL;
}

int gb_class_names_is_fashion_mnist(const char *data)
{
    if (!data)
        return 0;
    if (strcmp(data, "fashion-mnist") == 0)
        return 1;
    static const char idx[] = "idx:" GB_FASHION_MNIST_DIR;
    size_t n = sizeof idx - 1;
    return strncmp(data, idx, n) == 0 && (data[n] == '\0' || strcmp(data + n, "/") == 0);
}

gb_class_names_t *gb_class_names_builtin(const char *data, int n_classes, gb_error_t *err)
{
    bool fashion = n_classes == 10 && gb_class_names_is_fashion_mnist(data);
    gb_class_names_t *c = s_new(n_classes, fashion ? "fashion-mnist" : "none", err);
    if (!c || !fashion)
        return c;
    for (int k = 0; k < 10; k++)
        snprintf(s_slot(c, k), S_SLOT, "%s", S_FASHION[k]);
    c->named = 10;
    return c;
}

gb_class_names_t *gb_class_names_choose(const char *path, const char *data, int n_classes,
                                        gb_error_t *err)
{
    if (!path)
        return gb_class_names_builtin(data, n_classes, err);
    gb_class_names_t *c = gb_class_names_load(path, n_classes, err);
    if (!c)
        gb_error_prefix(err, GB_EINVAL, "--class-names: ");
    return c;
}

void gb_class_names_destroy(gb_class_names_t **names)
{
    if (!names || !*names)
        return;
    gb_free(*names);
    *names = NULL;
}

int gb_class_names_count(const gb_class_names_t *names)
{
    return names ? names->n : 0;
}

int gb_class_names_named(const gb_class_names_t *names)
{
    return names ? names->named : 0;
}

const char *gb_class_names_source(const gb_class_names_t *names)
{
    return names ? names->source : "none";
}

const char *gb_class_names_get(const gb_class_names_t *names, int cls)
{
    if (!names || cls < 0 || cls >= names->n)
        return NULL;
    return names->names + (size_t)cls * S_SLOT;
}

const char *gb_class_names_label(const gb_class_names_t *names, int cls, char *buf, size_t cap)
{
    const char *name = gb_class_names_get(names, cls);
    if (name)
        return name;
    if (cap)
        snprintf(buf, cap, "class %d", cls);
    return buf;
}
