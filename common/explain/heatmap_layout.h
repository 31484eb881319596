/* How an attribution map of any shape becomes a picture: the one layout the
 * client's `explain` heatmaps and the coordinator's report share, so a local
 * explanation and the federation's are drawn alike and neither cuts a map.
 *
 *   (C, H, W)  an image: channels summed, H rows by W columns;
 *   (H, W)     with `grid` (Grad-CAM's coarse map): drawn as it is;
 *   (T, F)     a sequence: F rows by T columns, time along x;
 *   otherwise  (a vector, a rank over 3, a side over GB_HEATMAP_MAX_CELLS)
 *              the flat map in rows of at most GB_HEATMAP_MAX_CELLS cells,
 *              the last row closed with zeros; the x caption says how many
 *              cells there are and, when it wraps, how many a row holds.
 *
 * Every cell of the map is drawn: a map too large even for wrapped rows is
 * refused (GB_ERANGE), never shortened. What is drawn under the map (a
 * class's mean input) and Grad-CAM's upsampling onto a known image size are
 * the client's own additions on top (client/cmd_explain.c).
 *
 * Ownership: a layout is a plain value; gb_heatmap_layout_apply makes h
 * borrow the picture and the layout's caption, valid while both live. */
#ifndef GB_EXPLAIN_HEATMAP_LAYOUT_H
#define GB_EXPLAIN_HEATMAP_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "explain/heatmap.h"
#include "util/error.h"

/* Largest rank of a map laid out (the wire's tensors have at most 8). */
#define GB_HEATMAP_LAYOUT_MAX_RANK 8

typedef enum {
    GB_HEATMAP_CHANNELS, /* (C, H, W): channels summed */
    GB_HEATMAP_GRID,     /* (H, W) as it is */
    GB_HEATMAP_SEQUENCE, /* (T, F): transposed, time along x */
    GB_HEATMAP_ROWS,     /* the flat map wrapped into rows */
} gb_heatmap_kind_t;

typedef struct {
    gb_heatmap_kind_t kind; /* which of the four layouts */
    size_t cells;           /* cells of the map (the product of its dimensions) */
    size_t a, b, c;         /* the dimensions the kind reads: (C, H, W), (H, W) or (T, F) */
    int h, w;               /* the picture's rows and columns (h x w floats) */
    size_t padding;         /* picture cells after the map (GB_HEATMAP_ROWS: zeros) */
    char x_label[64];       /* caption under the picture, or "" */
} gb_heatmap_layout_t;

/* Plans the picture of a map of `rank` dimensions dims[0..rank) (each >= 1,
 * rank 1..GB_HEATMAP_LAYOUT_MAX_RANK); grid marks a rank-2 map that is a
 * spatial grid (Grad-CAM), not a sequence. GB_EINVAL for a bad shape,
 * GB_ERANGE for a map whose wrapped rows would exceed GB_HEATMAP_MAX_CELLS;
 * *l is zeroed on failure. */
int gb_heatmap_layout_plan(const size_t *dims, int rank, bool grid, gb_heatmap_layout_t *l,
                           gb_error_t *err) GB_MUST_CHECK;

/* Floats of the picture: h x w. */
size_t gb_heatmap_layout_size(const gb_heatmap_layout_t *l);

/* Arranges map (l->cells floats, row-major in the planned shape) into pic
 * (gb_heatmap_layout_size floats, not overlapping map). */
void gb_heatmap_layout_fill(const gb_heatmap_layout_t *l, const float *map, float *pic);

/* Where map cell `cell` (0..l->cells, row-major in the planned shape) is
 * drawn: its picture row and column, and for GB_HEATMAP_CHANNELS its
 * channel (summed into that pixel; 0 for the other kinds). GB_ERANGE for a
 * cell past the map. */
int gb_heatmap_layout_locate(const gb_heatmap_layout_t *l, size_t cell, int *row, int *col,
                             size_t *channel, gb_error_t *err) GB_MUST_CHECK;

/* A person's name for map cell `cell`, written to out[0..cap): "row 24,
 * col 25" (a channel first when an image has more than one: "channel 2,
 * row 24, col 25"), "step 3, feature 2" for a sequence, "feature 118" for
 * a flat map (all counted from 1 for steps and features, from 0 for
 * pixels, as the captions do), "cell N (outside the map)" past it. */
void gb_heatmap_layout_cell_name(const gb_heatmap_layout_t *l, size_t cell, char *out,
                                 size_t cap);

/* Points h at pic and sets its size, cell sizes and captions for l; the
 * title, range and underlay are left as they are. */
void gb_heatmap_layout_apply(const gb_heatmap_layout_t *l, const float *pic, gb_heatmap_t *h);

#endif
