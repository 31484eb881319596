/* Allocation wrappers and the failure-injection countdown. */
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Atomic: daemons allocate from more than one thread. */
static _Atomic long s_countdown;
static _Atomic long s_count;

static int s_should_fail(void)
{
    s_count++;
    if (s_countdown > 0 && --s_countdown == 0)
        return 1;
    return 0;
}

long gb_alloc_fail_after(long countdown)
{
    long n = s_count;
    s_count = 0;
    s_countdown = countdown;
    return n;
}

void *gb_malloc(size_t size)
{
    if (s_should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *gb_calloc(size_t n, size_t size)
{
    if (s_should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *gb_realloc(void *p, size_t size)
{
    if (s_should_fail())
        return NULL;
    return realloc(p, size ? size : 1);
}

void gb_free(void *p)
{
    free(p);
}

void *gb_alloc_aligned(size_t size)
{
    if (s_should_fail())
        return NULL;
    if (size > SIZE_MAX - 64)
        return NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded == 0)
        rounded = 64;
    /* Big buffers start on a 2 MiB boundary so madvise can back them with huge pages. */
    size_t align = rounded >= (4u << 20) ? (2u << 20) : 64;
    void *p = NULL;
    if (posix_memalign(&p, align, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (rounded >= (4u << 20))
        madvise(p, rounded, MADV_HUGEPAGE);
#endif
    memset(p, 0, rounded);
    return p;
}

void gb_free_aligned(void *p)
{
    free(p);
}

char *gb_strdup(const char *s)
{
    size_t n = strlen(s);
    char *copy = gb_malloc(n + 1);
    if (copy)
        memcpy(copy, s, n + 1);
    return copy;
}
