/* Heatmap rendering and PNG output (see heatmap.h for what is drawn).
 *
 * Everything is drawn into one RGB buffer with a handful of primitives
 * (filled rectangle, frame, text in a 5 x 7 bitmap font scaled 2x), then
 * handed to libpng row by row. The font is a table of 7 row bitmaps per
 * character (bit 4 the leftmost column), in the style of the HD44780
 * character ROM: small, legible at 2x, and enough for numbers, class names
 * and method names.
 *
 * libpng reports errors by longjmp; the only state that must survive one is
 * the output buffer, which lives behind a pointer set before setjmp, so
 * nothing automatic changes between setjmp and a longjmp. */
#include "explain/heatmap.h"
#include "util/alloc.h"
#include "util/file.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define S_FONT_SCALE 2
#define S_GLYPH_W (5 * S_FONT_SCALE)
#define S_GLYPH_H (7 * S_FONT_SCALE) /* cap height; descenders go below */
#define S_LINE_H (9 * S_FONT_SCALE)
#define S_ADVANCE (6 * S_FONT_SCALE)
#define S_MARGIN 12
#define S_BAR_W 18
#define S_BAR_MIN_H 160

static const uint8_t S_INK[3] = {40, 40, 40};
static const uint8_t S_FRAME[3] = {150, 150, 150};

/* ---- font ---------------------------------------------------------------- */

static const char S_FONT_CHARS[] = "0123456789+-.:=/(),_<>abcdefghijklmnopqrstuvwxyz";
static const uint8_t S_FONT[][9] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00}, /* 9 */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00}, /* . */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00}, /* : */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00}, /* = */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, /* / */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ) */
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08, 0x00, 0x00}, /* , */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00}, /* _ */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* < */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* > */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00}, /* b */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00}, /* c */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00}, /* d */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00}, /* e */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00}, /* f */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* h */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* k */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, /* l */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* n */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00}, /* o */
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* r */
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00}, /* s */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00}, /* w */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* y */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, /* z */
};

static const uint8_t *s_glyph(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        ch = (char)(ch - 'A' + 'a');
    const char *p = ch ? strchr(S_FONT_CHARS, ch) : NULL;
    return p ? S_FONT[p - S_FONT_CHARS] : NULL;
}

static int s_text_width(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n ? (int)n * S_ADVANCE - S_FONT_SCALE : 0;
}

/* ---- drawing ------------------------------------------------------------- */

typedef struct {
    uint8_t *rgb; /* pixels */
    int w, h;     /* size */
} s_canvas_t;

static void s_pixel(s_canvas_t *c, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    memcpy(c->rgb + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void s_fill(s_canvas_t *c, int x, int y, int w, int h, const uint8_t rgb[3])
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++)
            s_pixel(c, i, j, rgb);
}

/* One-pixel frame just outside the rectangle (x, y, w, h). */
static void s_frame(s_canvas_t *c, int x, int y, int w, int h, const uint8_t rgb[3])
{
    s_fill(c, x - 1, y - 1, w + 2, 1, rgb);
    s_fill(c, x - 1, y + h, w + 2, 1, rgb);
    s_fill(c, x - 1, y, 1, h, rgb);
    s_fill(c, x + w, y, 1, h, rgb);
}

/* Text with its top-left corner at (x, y); `up` draws it rotated a quarter
 * turn counter-clockwise, reading upwards, with (x, y) its bottom-left. */
static void s_text(s_canvas_t *c, int x, int y, const char *s, bool up)
{
    for (int k = 0; s && s[k]; k++) {
        const uint8_t *g = s_glyph(s[k]);
        if (!g)
            continue;
        for (int r = 0; r < 9; r++)
            for (int col = 0; col < 5; col++) {
                if (!(g[r] & (0x10 >> col)))
                    continue;
                int gx = k * S_ADVANCE + col * S_FONT_SCALE, gy = r * S_FONT_SCALE;
                for (int dy = 0; dy < S_FONT_SCALE; dy++)
                    for (int dx = 0; dx < S_FONT_SCALE; dx++) {
                        if (up)
                            s_pixel(c, x + gy + dy, y - gx - dx, S_INK);
                        else
                            s_pixel(c, x + gx + dx, y + gy + dy, S_INK);
                    }
            }
    }
}

/* ColorBrewer RdBu (11 classes) at t = 0, 0.2, ..., 1 for the red side and
 * the blue side, with pure white at 0. */
static const uint8_t S_RED[6][3] = {{255, 255, 255}, {253, 219, 199}, {244, 165, 130},
                                    {214, 96, 77},   {178, 24, 43},   {103, 0, 31}};
static const uint8_t S_BLUE[6][3] = {{255, 255, 255}, {209, 229, 240}, {146, 197, 222},
                                     {67, 147, 195},  {33, 102, 172},  {5, 48, 97}};

void gb_heatmap_color(double t, uint8_t rgb[3])
{
    if (isnan(t))
        t = 0;
    const uint8_t(*stops)[3] = t < 0 ? S_BLUE : S_RED;
    double a = fabs(t);
    if (a > 1)
        a = 1;
    double pos = a * 5;
    int i = (int)pos;
    if (i >= 5)
        i = 4;
    double f = pos - i;
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (uint8_t)lround(stops[i][ch] + f * (stops[i + 1][ch] - stops[i][ch]));
}

/* "%.3g": only digits, '.', 'e', '+' and '-', all in the font. */
static void s_number(char *buf, size_t cap, double v, bool plus)
{
    snprintf(buf, cap, plus ? "%+.3g" : "%.3g", v);
}

/* ---- rendering ----------------------------------------------------------- */

static int s_bad(gb_heatmap_image_t *img, gb_error_t *err, const char *msg)
{
    memset(img, 0, sizeof *img);
    return gb_error_set(err, GB_EINVAL, "heatmap: %s", msg);
}

int gb_heatmap_render(const gb_heatmap_t *h, gb_heatmap_image_t *img, gb_error_t *err)
{
    memset(img, 0, sizeof *img);
    if (!h || !h->map)
        return s_bad(img, err, "no map");
    if (h->h < 1 || h->w < 1 || h->h > GB_HEATMAP_MAX_CELLS || h->w > GB_HEATMAP_MAX_CELLS)
        return gb_error_set(err, GB_EINVAL, "heatmap: map size %d x %d outside 1..%d", h->h, h->w,
                            GB_HEATMAP_MAX_CELLS);
    int cw = h->cell_w, ch = h->cell_h;
    if (cw == 0 && ch == 0) {
        int side = h->h > h->w ? h->h : h->w;
        cw = ch = side >= GB_HEATMAP_TARGET_PX ? 1 : GB_HEATMAP_TARGET_PX / side;
    }
    if (cw < 1 || ch < 1 || cw > GB_HEATMAP_MAX_PX || ch > GB_HEATMAP_MAX_PX)
        return gb_error_set(err, GB_EINVAL, "heatmap: cell size %d x %d", cw, ch);
    size_t n = (size_t)h->h * h->w;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(h->map[i]))
            return gb_error_set(err, GB_EINVAL, "heatmap: value %zu is %g", i, (double)h->map[i]);
        if (fabs(h->map[i]) > m)
            m = fabs(h->map[i]);
    }
    if (h->range > 0 && isfinite(h->range))
        m = h->range;
    if ((long)h->w * cw > GB_HEATMAP_MAX_PX || (long)h->h * ch > GB_HEATMAP_MAX_PX)
        return gb_error_set(err, GB_EINVAL, "heatmap: map of %d x %d pixels too big", h->w * cw,
                            h->h * ch);

    char top[32], mid[32] = "0", bottom[32];
    s_number(top, sizeof top, m, m > 0);
    s_number(bottom, sizeof bottom, m > 0 ? -m : 0.0, false);
    int label_w = s_text_width(top);
    if (s_text_width(bottom) > label_w)
        label_w = s_text_width(bottom);

    /* Layout, left to right: margin, y caption, map, legend bar, labels. */
    int title_h = h->title ? S_LINE_H + 6 : 0;
    int ylab_w = h->y_label ? S_LINE_H + 6 : 0;
    img->cell_w = cw;
    img->cell_h = ch;
    img->map_x = S_MARGIN + ylab_w;
    img->map_y = S_MARGIN + title_h;
    img->map_w = h->w * cw;
    img->map_h = h->h * ch;
    img->bar_x = img->map_x + img->map_w + 16;
    img->bar_y = img->map_y;
    img->bar_w = S_BAR_W;
    img->bar_h = img->map_h > S_BAR_MIN_H ? img->map_h : S_BAR_MIN_H;
    int label_x = img->bar_x + img->bar_w + 8;
    int width = label_x + label_w + S_MARGIN;
    if (S_MARGIN + s_text_width(h->title) + S_MARGIN > width)
        width = S_MARGIN + s_text_width(h->title) + S_MARGIN;
    int bottom_y = img->map_y + (img->map_h > img->bar_h ? img->map_h : img->bar_h);
    int xlab_y = bottom_y + 8;
    int height = bottom_y + (h->x_label ? 8 + S_LINE_H : 0) + S_MARGIN;
    if (width > GB_HEATMAP_MAX_PX || height > GB_HEATMAP_MAX_PX)
        return gb_error_set(err, GB_EINVAL, "heatmap: image of %d x %d pixels too big", width,
                            height);
    img->width = width;
    img->height = height;
    img->range = m;
    img->rgb = gb_malloc((size_t)width * height * 3);
    if (!img->rgb) {
        memset(img, 0, sizeof *img);
        return gb_error_set(err, GB_ENOMEM, "heatmap: out of memory for %d x %d pixels", width,
                            height);
    }
    memset(img->rgb, 255, (size_t)width * height * 3);
    s_canvas_t c = {img->rgb, width, height};

    for (int y = 0; y < h->h; y++)
        for (int x = 0; x < h->w; x++) {
            size_t i = (size_t)y * h->w + x;
            uint8_t rgb[3];
            gb_heatmap_color(m > 0 ? h->map[i] / m : 0.0, rgb);
            if (h->under) {
                double g = isfinite(h->under[i]) ? h->under[i] : 0.0;
                g = g < 0 ? 0 : g > 1 ? 1 : g;
                double shade = 1.0 - GB_HEATMAP_UNDER_SHADE * g;
                for (int k = 0; k < 3; k++)
                    rgb[k] = (uint8_t)lround(rgb[k] * shade);
            }
            s_fill(&c, img->map_x + x * cw, img->map_y + y * ch, cw, ch, rgb);
        }
    s_frame(&c, img->map_x, img->map_y, img->map_w, img->map_h, S_FRAME);

    for (int y = 0; y < img->bar_h; y++) {
        uint8_t rgb[3];
        gb_heatmap_color(1.0 - 2.0 * (y + 0.5) / img->bar_h, rgb);
        s_fill(&c, img->bar_x, img->bar_y + y, img->bar_w, 1, rgb);
    }
    s_frame(&c, img->bar_x, img->bar_y, img->bar_w, img->bar_h, S_FRAME);
    int ticks[3] = {img->bar_y, img->bar_y + img->bar_h / 2, img->bar_y + img->bar_h - 1};
    const char *labels[3] = {top, mid, bottom};
    for (int t = 0; t < 3; t++) {
        s_fill(&c, img->bar_x + img->bar_w + 1, ticks[t], 5, 1, S_INK);
        int ly = ticks[t] - S_GLYPH_H / 2;
        if (ly < img->bar_y - 2)
            ly = img->bar_y - 2;
        if (ly > img->bar_y + img->bar_h + 2 - S_GLYPH_H)
            ly = img->bar_y + img->bar_h + 2 - S_GLYPH_H;
        s_text(&c, label_x, ly, labels[t], false);
    }

    if (h->title)
        s_text(&c, S_MARGIN, S_MARGIN, h->title, false);
    if (h->x_label) {
        int x = img->map_x + (img->map_w - s_text_width(h->x_label)) / 2;
        s_text(&c, x < S_MARGIN ? S_MARGIN : x, xlab_y, h->x_label, false);
    }
    if (h->y_label) {
        /* Centred on the map, but kept below the title: beside a thin map
         * it runs down past the map's bottom instead. */
        int tw = s_text_width(h->y_label);
        int y = img->map_y + (img->map_h + tw) / 2;
        if (y - tw < img->map_y)
            y = img->map_y + tw;
        if (y >= height)
            y = height - 1;
        s_text(&c, S_MARGIN, y, h->y_label, true);
    }
    return 0;
}

void gb_heatmap_image_free(gb_heatmap_image_t *img)
{
    if (!img)
        return;
    gb_free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct {
    uint8_t *p;    /* bytes so far */
    size_t len;    /* bytes written */
    size_t cap;    /* bytes allocated */
    char msg[128]; /* libpng's error message */
} s_png_buf_t;

static void s_png_write(png_structp png, png_bytep data, png_size_t n)
{
    s_png_buf_t *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = gb_realloc(b->p, cap);
        if (!p)
            png_error(png, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void s_png_flush(png_structp png)
{
    (void)png;
}

static void s_png_error(png_structp png, png_const_charp msg)
{
    s_png_buf_t *b = png_get_error_ptr(png);
    snprintf(b->msg, sizeof b->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void s_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int gb_heatmap_png(const gb_heatmap_image_t *img, uint8_t **out, size_t *out_len, gb_error_t *err)
{
    *out = NULL;
    *out_len = 0;
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return gb_error_set(err, GB_EINVAL, "heatmap png: empty image");
    s_png_buf_t *b = gb_calloc(1, sizeof *b);
    if (!b)
        return gb_error_set(err, GB_ENOMEM, "heatmap png: out of memory");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, b, s_png_error, s_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        gb_free(b);
        return gb_error_set(err, GB_ENOMEM, "heatmap png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        int rc = strcmp(b->msg, "out of memory") == 0 ? GB_ENOMEM : GB_EIO;
        gb_error_set(err, rc, "heatmap png: libpng: %s", b->msg);
        gb_free(b->p);
        gb_free(b);
        return rc;
    }
    png_set_write_fn(png, b, s_png_write, s_png_flush);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->rgb + (size_t)y * img->width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = b->p;
    *out_len = b->len;
    gb_free(b);
    return 0;
}

int gb_heatmap_write_png(const char *path, const gb_heatmap_image_t *img, gb_error_t *err)
{
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = gb_heatmap_png(img, &png, &len, err);
    if (rc)
        return gb_error_prefix(err, rc, "%s: ", path);
    rc = gb_file_write_atomic(path, png, len, 0644, err);
    gb_free(png);
    return rc;
}

int gb_heatmap_save(const char *path, const gb_heatmap_t *h, gb_error_t *err)
{
    gb_heatmap_image_t img;
    int rc = gb_heatmap_render(h, &img, err);
    if (rc)
        return gb_error_prefix(err, rc, "%s: ", path);
    rc = gb_heatmap_write_png(path, &img, err);
    gb_heatmap_image_free(&img);
    return rc;
}

/* ---- resampling ---------------------------------------------------------- */

void gb_heatmap_layout_sequence(gb_heatmap_t *h, int T, int F, char *xlab, size_t cap)
{
    h->h = F;
    h->w = T;
    h->cell_w = T >= GB_HEATMAP_TARGET_PX ? 1 : GB_HEATMAP_TARGET_PX / T;
    h->cell_h = F >= GB_HEATMAP_TARGET_PX ? 1 : GB_HEATMAP_TARGET_PX / F;
    if (h->cell_h > 80)
        h->cell_h = 80;
    snprintf(xlab, cap, "time: step 1..%d ->", T);
    h->x_label = xlab;
    h->y_label = F > 1 ? "feature" : NULL;
}

void gb_heatmap_upsample(const float *src, int h, int w, float *dst, int H, int W)
{
    for (int y = 0; y < H; y++) {
        double sy = (y + 0.5) * h / H - 0.5;
        if (sy < 0)
            sy = 0;
        if (sy > h - 1)
            sy = h - 1;
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        double fy = sy - y0;
        for (int x = 0; x < W; x++) {
            double sx = (x + 0.5) * w / W - 0.5;
            if (sx < 0)
                sx = 0;
            if (sx > w - 1)
                sx = w - 1;
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            double fx = sx - x0;
            double top = src[(size_t)y0 * w + x0] * (1 - fx) + src[(size_t)y0 * w + x1] * fx;
            double bot = src[(size_t)y1 * w + x0] * (1 - fx) + src[(size_t)y1 * w + x1] * fx;
            dst[(size_t)y * W + x] = (float)(top * (1 - fy) + bot * fy);
        }
    }
}
