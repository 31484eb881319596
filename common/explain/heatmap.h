/* Heatmaps of attribution maps as PNG images a person can read.
 *
 * A signed map is drawn on a diverging blue-white-red scale (ColorBrewer's
 * RdBu): white is exactly zero, red positive (the feature pushes the
 * explained logit up), blue negative, over a symmetric range [-m, m] with m
 * the largest |value| unless the caller fixes it. Each map cell becomes a
 * block of cell_w x cell_h pixels (a 28 x 28 map becomes 280 x 280 pixels).
 * Optionally an image (the class's mean input) is drawn faintly underneath:
 * each pixel's colour is darkened by up to GB_HEATMAP_UNDER_SHADE where the
 * image is bright, so the object's outline shows through without hiding
 * the colours; zero attribution on the image's background stays white.
 * Beside the map stands a legend bar (+m red at the top, 0 white in the
 * middle, -m blue at the bottom) labelled with the three numbers; above it a
 * title line, and optional axis captions below and left of the map, all in
 * a small built-in 5 x 7 bitmap font with descenders (digits, a-z and
 * + - . : = / ( ) , _ < >; upper case is drawn as lower case, anything else
 * as a blank).
 *
 * PNG files are written through libpng into memory and then atomically
 * (util/file.h), so a reader never sees half an image.
 *
 * Ownership: gb_heatmap_render fills an image whose pixels the caller frees
 * with gb_heatmap_image_free. Nothing keeps the caller's arrays. */
#ifndef GB_EXPLAIN_HEATMAP_H
#define GB_EXPLAIN_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Longer side of the map, in pixels, when the cell size is chosen here. */
#define GB_HEATMAP_TARGET_PX 280
/* Largest map side and largest image side accepted. */
#define GB_HEATMAP_MAX_CELLS 4096
#define GB_HEATMAP_MAX_PX 8192
/* How much a fully bright underlay pixel darkens the colour above it. */
#define GB_HEATMAP_UNDER_SHADE 0.3

typedef struct {
    const float *map;    /* h x w values, row-major, finite */
    int h, w;            /* rows and columns, 1..GB_HEATMAP_MAX_CELLS */
    const float *under;  /* h x w grey values in [0, 1] drawn faintly under the map, or NULL */
    int cell_w, cell_h;  /* pixels per cell (both >= 1), or both 0: square cells chosen so the
                            longer side is about GB_HEATMAP_TARGET_PX (at least 1) */
    double range;        /* colours span [-range, range]; <= 0: the largest |value| */
    const char *title;   /* line above the map ("class 3  ig"), or NULL */
    const char *x_label; /* caption under the map ("time"), or NULL */
    const char *y_label; /* caption left of the map, read upwards ("feature"), or NULL */
} gb_heatmap_t;

typedef struct {
    uint8_t *rgb;       /* width x height x 3 bytes, row-major RGB, owned */
    int width;          /* pixels */
    int height;         /* pixels */
    int map_x, map_y;   /* top-left pixel of the map */
    int map_w, map_h;   /* the map's size in pixels (w x cell_w, h x cell_h) */
    int cell_w, cell_h; /* pixels per cell used */
    int bar_x, bar_y;   /* top-left pixel of the legend bar */
    int bar_w, bar_h;   /* the legend bar's size */
    double range;       /* the m used: colours span [-m, m] */
} gb_heatmap_image_t;

/* The colour of t in [-1, 1] (clamped; NaN is 0): white at 0, red towards
 * +1, blue towards -1. */
void gb_heatmap_color(double t, uint8_t rgb[3]);

/* Draws the heatmap into a new image (see the top of this file). Refuses
 * (GB_EINVAL) a missing map, sizes out of range, a non-finite value or an
 * image over GB_HEATMAP_MAX_PX a side; GB_ENOMEM. On failure img is zeroed. */
int gb_heatmap_render(const gb_heatmap_t *h, gb_heatmap_image_t *img,
                      gb_error_t *err) GB_MUST_CHECK;

/* Frees img's pixels and zeroes it; safe on a zeroed image. */
void gb_heatmap_image_free(gb_heatmap_image_t *img);

/* Encodes img as an 8-bit RGB PNG into a new buffer (*png, *len; the caller
 * frees it with gb_free). GB_EIO if libpng fails, GB_ENOMEM. */
int gb_heatmap_png(const gb_heatmap_image_t *img, uint8_t **png, size_t *len,
                   gb_error_t *err) GB_MUST_CHECK;

/* Encodes img and writes it to path atomically, mode 0644; err names the
 * file. */
int gb_heatmap_write_png(const char *path, const gb_heatmap_image_t *img,
                         gb_error_t *err) GB_MUST_CHECK;

/* Renders h and writes it to path in one call. */
int gb_heatmap_save(const char *path, const gb_heatmap_t *h, gb_error_t *err) GB_MUST_CHECK;

/* Lays h out for a sequence's map of T steps x F features, drawn F rows by
 * T columns with time along x (the caller puts the values in that order):
 * sizes, cells stretched towards GB_HEATMAP_TARGET_PX (at most 80 pixels
 * high) and the axis captions. x_label points into xlab (cap bytes), which
 * must live as long as h is used. T, F >= 1. */
void gb_heatmap_layout_sequence(gb_heatmap_t *h, int T, int F, char *xlab, size_t cap);

/* Resamples an h x w map to H x W bilinearly with half-pixel centres (as
 * PyTorch's interpolate with align_corners=False, which Grad-CAM uses to lay
 * a coarse map over its input): output pixel (y, x) samples the source at
 * ((y + 0.5) h / H - 0.5, (x + 0.5) w / W - 0.5), clamped to the edges. All
 * sizes >= 1; dst holds H x W floats and must not overlap src. */
void gb_heatmap_upsample(const float *src, int h, int w, float *dst, int H, int W);

#endif
