/* Shape formatting for error messages. */
#include "engine/shape.h"

#include <stdio.h>

char *gb_shape_format(const gb_shape_t *s, char *buf, size_t cap)
{
    size_t used = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (int i = 0; i < s->rank && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, i ? "x%d" : "%d", s->dim[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}
