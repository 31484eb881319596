/* The shared heatmap layout (see heatmap_layout.h). Planned once from the
 * shape, then filled: the plan is all either caller needs to allocate the
 * picture, and a test can check the plan without drawing anything. */
#include "explain/heatmap_layout.h"

#include <stdio.h>
#include <string.h>

int gb_heatmap_layout_plan(const size_t *dims, int rank, bool grid, gb_heatmap_layout_t *l,
                           gb_error_t *err)
{
    memset(l, 0, sizeof *l);
    if (!dims || rank < 1 || rank > GB_HEATMAP_LAYOUT_MAX_RANK)
        return gb_error_set(err, GB_EINVAL, "heatmap layout: rank %d is not 1..%d", rank,
                            GB_HEATMAP_LAYOUT_MAX_RANK);
    size_t cells = 1;
    for (int i = 0; i < rank; i++) {
        /* the wire caps a map far below this; the bound keeps the product exact */
        if (dims[i] < 1 || dims[i] > ((size_t)1 << 40) / cells)
            return gb_error_set(err, GB_EINVAL, "heatmap layout: dimension %d is %zu", i,
                                dims[i]);
        cells *= dims[i];
    }
    l->cells = cells;
    const size_t max = GB_HEATMAP_MAX_CELLS;
    if (rank == 3 && dims[1] <= max && dims[2] <= max) {
        l->kind = GB_HEATMAP_CHANNELS;
        l->a = dims[0], l->b = dims[1], l->c = dims[2];
        l->h = (int)dims[1];
        l->w = (int)dims[2];
    } else if (rank == 2 && dims[0] <= max && dims[1] <= max) {
        l->kind = grid ? GB_HEATMAP_GRID : GB_HEATMAP_SEQUENCE;
        l->a = dims[0], l->b = dims[1];
        l->h = (int)(grid ? dims[0] : dims[1]);
        l->w = (int)(grid ? dims[1] : dims[0]);
        if (!grid)
            snprintf(l->x_label, sizeof l->x_label, "time: step 1..%zu ->", dims[0]);
    } else {
        size_t w = cells < max ? cells : max, rows = (cells + w - 1) / w;
        if (rows > max) {
            memset(l, 0, sizeof *l);
            return gb_error_set(err, GB_ERANGE, "heatmap layout: %zu cells are too many to "
                                "draw (at most %zu rows of %zu)", cells, max, max);
        }
        l->kind = GB_HEATMAP_ROWS;
        l->h = (int)rows;
        l->w = (int)w;
        l->padding = rows * w - cells;
        if (rows == 1)
            snprintf(l->x_label, sizeof l->x_label, "feature 1..%zu ->", cells);
        else /* says it wraps: the picture is not a 2-d map */
            snprintf(l->x_label, sizeof l->x_label, "feature 1..%zu, %zu a row ->", cells, w);
    }
    return 0;
}

size_t gb_heatmap_layout_size(const gb_heatmap_layout_t *l)
{
    return (size_t)l->h * (size_t)l->w;
}

void gb_heatmap_layout_fill(const gb_heatmap_layout_t *l, const float *map, float *pic)
{
    switch (l->kind) {
    case GB_HEATMAP_CHANNELS: {
        size_t hw = l->b * l->c;
        memset(pic, 0, hw * sizeof *pic);
        for (size_t i = 0; i < l->cells; i++)
            pic[i % hw] += map[i];
        break;
    }
    case GB_HEATMAP_SEQUENCE: {
        size_t T = l->a, F = l->b;
        for (size_t t = 0; t < T; t++)
            for (size_t f = 0; f < F; f++)
                pic[f * T + t] = map[t * F + f];
        break;
    }
    case GB_HEATMAP_GRID:
    case GB_HEATMAP_ROWS:
        memcpy(pic, map, l->cells * sizeof *pic);
        memset(pic + l->cells, 0, l->padding * sizeof *pic);
        break;
    }
}

void gb_heatmap_layout_apply(const gb_heatmap_layout_t *l, const float *pic, gb_heatmap_t *h)
{
    h->map = pic;
    h->h = l->h;
    h->w = l->w;
    h->cell_w = h->cell_h = 0; /* square cells towards GB_HEATMAP_TARGET_PX */
    h->x_label = l->x_label[0] ? l->x_label : NULL;
    h->y_label = NULL;
    if (l->kind == GB_HEATMAP_SEQUENCE) {
        /* the sequence's own cell shape and captions; x_label as planned */
        char unused[64];
        gb_heatmap_layout_sequence(h, (int)l->a, (int)l->b, unused, sizeof unused);
        h->x_label = l->x_label;
    } else if (l->kind == GB_HEATMAP_ROWS && l->h == 1) {
        /* one strip: stretched towards GB_HEATMAP_TARGET_PX wide, 40 high */
        h->cell_w = l->w >= GB_HEATMAP_TARGET_PX ? 1 : GB_HEATMAP_TARGET_PX / l->w;
        h->cell_h = 40;
    }
}

int gb_heatmap_layout_locate(const gb_heatmap_layout_t *l, size_t cell, int *row, int *col,
                             size_t *channel, gb_error_t *err)
{
    *row = *col = 0;
    *channel = 0;
    if (cell >= l->cells)
        return gb_error_set(err, GB_ERANGE, "heatmap layout: cell %zu is past the map's %zu",
                            cell, l->cells);
    switch (l->kind) {
    case GB_HEATMAP_CHANNELS: {
        size_t hw = l->b * l->c;
        *channel = cell / hw;
        *row = (int)(cell % hw / l->c);
        *col = (int)(cell % l->c);
        break;
    }
    case GB_HEATMAP_SEQUENCE: /* map (t, f) is drawn at row f, column t */
        *row = (int)(cell % l->b);
        *col = (int)(cell / l->b);
        break;
    case GB_HEATMAP_GRID:
    case GB_HEATMAP_ROWS:
        *row = (int)(cell / (size_t)l->w);
        *col = (int)(cell % (size_t)l->w);
        break;
    }
    return 0;
}

void gb_heatmap_layout_cell_name(const gb_heatmap_layout_t *l, size_t cell, char *out, size_t cap)
{
    int row = 0, col = 0;
    size_t channel = 0;
    if (cap == 0)
        return;
    if (gb_heatmap_layout_locate(l, cell, &row, &col, &channel, NULL) != 0) {
        snprintf(out, cap, "cell %zu (outside the map)", cell);
        return;
    }
    switch (l->kind) {
    case GB_HEATMAP_CHANNELS:
        if (l->a > 1)
            snprintf(out, cap, "channel %zu, row %d, col %d", channel, row, col);
        else
            snprintf(out, cap, "row %d, col %d", row, col);
        break;
    case GB_HEATMAP_GRID:
        snprintf(out, cap, "row %d, col %d", row, col);
        break;
    case GB_HEATMAP_SEQUENCE:
        snprintf(out, cap, "step %d, feature %d", col + 1, row + 1);
        break;
    case GB_HEATMAP_ROWS:
        snprintf(out, cap, "feature %zu", cell + 1);
        break;
    }
}
