/* Per-sample tensor shapes. A batch adds a leading dimension that is never
 * stored here: images are (C, H, W), sequences (T, F), vectors (N). */
#ifndef GB_ENGINE_SHAPE_H
#define GB_ENGINE_SHAPE_H

#include <stddef.h>

#define GB_SHAPE_MAX_RANK 3

typedef struct {
    int rank;                   /* 1..3 */
    int dim[GB_SHAPE_MAX_RANK]; /* row-major sizes; unused entries are 1 */
} gb_shape_t;

/* Number of floats in one sample of this shape. */
static inline size_t gb_shape_size(const gb_shape_t *s)
{
    size_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= (size_t)s->dim[i];
    return n;
}

/* Writes "CxHxW"-style text into buf (always NUL-terminated); returns buf. */
char *gb_shape_format(const gb_shape_t *s, char *buf, size_t cap);

#endif
