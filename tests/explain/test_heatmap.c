/* Tests for explain/heatmap: the usage example.
 *
 * A known map is drawn and written as PNG, read back with libpng, and its
 * pixels checked: zero is exactly white, positive red, negative blue, the
 * extremes are the scale's end colours, the legend bar runs red (top) to
 * white (middle) to blue (bottom) with its labels drawn beside it, the title
 * and axis captions are drawn, the underlay darkens only where the image is
 * bright, and the image has the size the layout says. Also: the colour
 * scale's fixed points and symmetry, bilinear upsampling against values
 * PyTorch's interpolate(align_corners=False) gives, refusals, and
 * allocation failures. */
#include "testutil.h"

#include <math.h>
#include <png.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "explain/heatmap.h"
#include "util/alloc.h"

static const uint8_t *s_px(const gb_heatmap_image_t *img, int x, int y)
{
    assert_true(x >= 0 && y >= 0 && x < img->width && y < img->height);
    return img->rgb + ((size_t)y * img->width + x) * 3;
}

/* Centre pixel of map cell (row, col). */
static const uint8_t *s_cell(const gb_heatmap_image_t *img, int row, int col)
{
    return s_px(img, img->map_x + col * img->cell_w + img->cell_w / 2,
                img->map_y + row * img->cell_h + img->cell_h / 2);
}

static bool s_is(const uint8_t *p, int r, int g, int b)
{
    return p[0] == r && p[1] == g && p[2] == b;
}

static bool s_reddish(const uint8_t *p)
{
    return p[0] > p[2] + 40 && p[0] > p[1] + 40;
}
static bool s_bluish(const uint8_t *p)
{
    return p[2] > p[0] + 40;
}

/* Pixels of the text ink colour inside a rectangle. */
static int s_ink(const gb_heatmap_image_t *img, int x0, int y0, int x1, int y1)
{
    int n = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < img->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < img->width; x++)
            n += s_is(s_px(img, x, y), 40, 40, 40);
    return n;
}

static void test_color_scale(void **state)
{
    (void)state;
    uint8_t c[3];
    gb_heatmap_color(0.0, c);
    assert_true(s_is(c, 255, 255, 255));
    gb_heatmap_color(-0.0, c);
    assert_true(s_is(c, 255, 255, 255));
    gb_heatmap_color(NAN, c);
    assert_true(s_is(c, 255, 255, 255));
    gb_heatmap_color(1.0, c);
    assert_true(s_is(c, 103, 0, 31));
    gb_heatmap_color(7.0, c); /* clamped */
    assert_true(s_is(c, 103, 0, 31));
    gb_heatmap_color(-1.0, c);
    assert_true(s_is(c, 5, 48, 97));
    gb_heatmap_color(-INFINITY, c);
    assert_true(s_is(c, 5, 48, 97));
    /* Every positive value is reddish, every negative one bluish, and the
     * colour darkens steadily away from zero. */
    int last_pos = 3 * 255, last_neg = 3 * 255;
    for (int i = 1; i <= 100; i++) {
        double t = i / 100.0;
        uint8_t p[3], n[3];
        gb_heatmap_color(t, p);
        gb_heatmap_color(-t, n);
        assert_true(p[0] >= p[2] && p[0] >= p[1]);
        assert_true(n[2] >= n[0]);
        int lp = p[0] + p[1] + p[2], ln = n[0] + n[1] + n[2];
        assert_true(lp <= last_pos && ln <= last_neg);
        last_pos = lp;
        last_neg = ln;
    }
    gb_heatmap_color(0.01, c);
    assert_true(c[0] >= 250 && c[1] >= 245 && c[2] >= 245); /* near zero: near white */
}

/* A 4 x 6 map: two columns of -1, two of 0, two of +0.5 with one cell +1. */
static void s_known_map(float map[24])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 6; c++)
            map[r * 6 + c] = c < 2 ? -1.0f : c < 4 ? 0.0f : 0.5f;
    map[1 * 6 + 5] = 1.0f;
}

static void test_render_known_map(void **state)
{
    (void)state;
    float map[24];
    s_known_map(map);
    gb_heatmap_t h = {.map = map, .h = 4, .w = 6, .cell_w = 10, .cell_h = 12, .title = "class 7"};
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    assert_int_equal(img.map_w, 60);
    assert_int_equal(img.map_h, 48);
    assert_true(img.range == 1.0);
    assert_true(img.map_x >= 1 && img.map_y > 14); /* title above */
    assert_true(img.width > img.bar_x + img.bar_w && img.height >= img.map_y + img.map_h);
    for (int r = 0; r < 4; r++) {
        assert_true(s_is(s_cell(&img, r, 0), 5, 48, 97));     /* -1: darkest blue */
        assert_true(s_is(s_cell(&img, r, 2), 255, 255, 255)); /* 0: white */
        assert_true(s_is(s_cell(&img, r, 3), 255, 255, 255));
        assert_true(s_reddish(s_cell(&img, r, 4))); /* +0.5: red */
    }
    assert_true(s_is(s_cell(&img, 1, 5), 103, 0, 31)); /* +1: darkest red */
    uint8_t half[3];
    gb_heatmap_color(0.5, half);
    assert_memory_equal(s_cell(&img, 0, 4), half, 3);
    /* Every pixel of a cell has the cell's colour (blocks, no smoothing). */
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 10; x++)
            assert_true(s_is(s_px(&img, img.map_x + 50 + x, img.map_y + 12 + y), 103, 0, 31));
    /* A frame just outside the map. */
    assert_true(s_is(s_px(&img, img.map_x - 1, img.map_y + 5), 150, 150, 150));

    /* The legend: red at the top, white in the middle, blue at the bottom. */
    int bx = img.bar_x + img.bar_w / 2;
    assert_true(img.bar_h >= 100);
    assert_true(s_reddish(s_px(&img, bx, img.bar_y)));
    assert_true(s_bluish(s_px(&img, bx, img.bar_y + img.bar_h - 1)));
    const uint8_t *mid = s_px(&img, bx, img.bar_y + img.bar_h / 2);
    assert_true(mid[0] >= 245 && mid[1] >= 245 && mid[2] >= 245);
    /* Its three labels ("+1", "0", "-1") beside it, at the top, middle and
     * bottom, and the title above the map. */
    int lx = img.bar_x + img.bar_w + 2;
    assert_true(s_ink(&img, lx, img.bar_y - 8, img.width, img.bar_y + 12) > 10);
    assert_true(s_ink(&img, lx, img.bar_y + img.bar_h / 2 - 10, img.width,
                      img.bar_y + img.bar_h / 2 + 10) > 10);
    assert_true(s_ink(&img, lx, img.bar_y + img.bar_h - 14, img.width, img.bar_y + img.bar_h + 4) >
                10);
    assert_true(s_ink(&img, 0, 0, img.width, img.map_y - 2) > 20);
    /* Nothing drawn in ink over the map itself. */
    assert_int_equal(
        s_ink(&img, img.map_x, img.map_y, img.map_x + img.map_w, img.map_y + img.map_h), 0);
    gb_heatmap_image_free(&img);
    assert_null(img.rgb);
    gb_heatmap_image_free(&img);
}

static void test_png_round_trip(void **state)
{
    (void)state;
    float map[24];
    s_known_map(map);
    gb_heatmap_t h = {.map = map, .h = 4, .w = 6, .title = "class 0  ig"}; /* auto cells */
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    assert_int_equal(img.cell_w, 46); /* 280 / 6 */
    assert_int_equal(img.cell_h, 46);
    char *dir = gb_test_mkdtemp();
    size_t cap = strlen(dir) + 16;
    char *path = malloc(cap);
    snprintf(path, cap, "%s/h.png", dir);
    assert_int_equal(gb_heatmap_save(path, &h, &err), 0);

    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&im, path));
    assert_int_equal(im.width, img.width);
    assert_int_equal(im.height, img.height);
    im.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    assert_true(png_image_finish_read(&im, NULL, px, 0, NULL));
    assert_memory_equal(px, img.rgb, (size_t)img.width * img.height * 3);
    /* And in the file: white zero, red positive, blue negative. */
    gb_heatmap_image_t back = img;
    back.rgb = px;
    assert_true(s_is(s_cell(&back, 2, 3), 255, 255, 255));
    assert_true(s_reddish(s_cell(&back, 2, 5)));
    assert_true(s_bluish(s_cell(&back, 2, 1)));
    free(px);

    /* A directory that does not exist: GB_EIO naming the file. */
    snprintf(path, cap, "%s/no/h.png", dir);
    assert_int_equal(gb_heatmap_save(path, &h, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "/no")); /* the directory it could not write in */
    uint8_t *png = NULL;
    size_t len = 0;
    gb_heatmap_image_t empty = {0};
    assert_int_equal(gb_heatmap_png(&empty, &png, &len, &err), GB_EINVAL);
    assert_null(png);
    assert_int_equal(gb_heatmap_png(&img, &png, &len, &err), 0);
    assert_true(len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    gb_free(png);
    gb_heatmap_image_free(&img);
    gb_test_rmtree(dir);
    free(dir);
    free(path);
}

static void test_underlay_and_range(void **state)
{
    (void)state;
    float map[9] = {0, 0, 0, 0, 0.5f, 0, 0, 0, -0.5f}, under[9] = {0, 1, 0, 0, 1, 0, 0, 0, 0.5f};
    gb_heatmap_t h = {
        .map = map, .h = 3, .w = 3, .under = under, .cell_w = 4, .cell_h = 4, .range = 2.0};
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    assert_true(img.range == 2.0);
    assert_true(s_is(s_cell(&img, 0, 0), 255, 255, 255)); /* zero on dark background: white */
    int grey = (int)lround(255 * (1 - GB_HEATMAP_UNDER_SHADE));
    assert_true(s_is(s_cell(&img, 0, 1), grey, grey, grey)); /* zero on a bright pixel */
    uint8_t c[3];
    gb_heatmap_color(0.25, c); /* 0.5 of range 2 */
    for (int k = 0; k < 3; k++)
        assert_int_equal(s_cell(&img, 1, 1)[k], (int)lround(c[k] * (1 - GB_HEATMAP_UNDER_SHADE)));
    assert_true(s_cell(&img, 1, 1)[0] > s_cell(&img, 1, 1)[2] + 30); /* still red */
    assert_true(s_cell(&img, 2, 2)[2] > s_cell(&img, 2, 2)[0] + 30); /* still blue */
    gb_heatmap_image_free(&img);

    /* An all-zero map is all white, and the legend still reads 0. */
    float zeros[4] = {0};
    gb_heatmap_t z = {.map = zeros, .h = 2, .w = 2};
    assert_int_equal(gb_heatmap_render(&z, &img, &err), 0);
    assert_true(img.range == 0.0);
    assert_true(s_is(s_cell(&img, 1, 1), 255, 255, 255));
    gb_heatmap_image_free(&img);
}

static void test_sequence_layout(void **state)
{
    (void)state;
    /* A features x time map (4 features, 20 steps), time on x. */
    float map[80];
    for (int f = 0; f < 4; f++)
        for (int t = 0; t < 20; t++)
            map[f * 20 + t] = (float)((f - 1.5) * t);
    gb_heatmap_t h = {.map = map,
                      .h = 4,
                      .w = 20,
                      .cell_w = 14,
                      .cell_h = 30,
                      .x_label = "time",
                      .y_label = "feature"};
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    assert_int_equal(img.map_w, 280);
    assert_int_equal(img.map_h, 120);
    /* Captions: under the map and left of it. */
    assert_true(
        s_ink(&img, img.map_x, img.map_y + img.map_h + 2, img.map_x + img.map_w, img.height) > 20);
    assert_true(s_ink(&img, 0, img.map_y, img.map_x - 2, img.map_y + img.map_h) > 20);
    assert_true(img.bar_h >= img.map_h);
    /* Time grows to the right: feature 0 (negative slope) darkens to blue. */
    assert_true(s_is(s_cell(&img, 0, 0), 255, 255, 255));
    assert_true(s_is(s_cell(&img, 0, 19), 5, 48, 97));
    assert_true(s_is(s_cell(&img, 3, 19), 103, 0, 31));
    gb_heatmap_image_free(&img);

    /* Auto cell size: a 28 x 28 map becomes 280 px, a long one 1 px a cell. */
    float *big = calloc(3 * 500, sizeof *big);
    gb_heatmap_t b = {.map = big, .h = 3, .w = 500};
    assert_int_equal(gb_heatmap_render(&b, &img, &err), 0);
    assert_int_equal(img.cell_w, 1);
    gb_heatmap_image_free(&img);
    free(big);
}

static void test_refusals(void **state)
{
    (void)state;
    float map[4] = {0, 1, 2, 3};
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    gb_heatmap_t h = {.map = NULL, .h = 2, .w = 2};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    assert_null(img.rgb);
    h.map = map;
    h.h = 0;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    h.h = GB_HEATMAP_MAX_CELLS + 1;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    h.h = 2;
    h.cell_w = -1;
    h.cell_h = 3;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    h.cell_w = 5000;
    h.cell_h = 5000;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "too big"));
    h.cell_w = h.cell_h = 0;
    map[2] = NAN;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "value 2"));
    map[2] = INFINITY;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), GB_EINVAL);
    map[2] = 2;
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    gb_heatmap_image_free(&img);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    float map[24];
    s_known_map(map);
    gb_heatmap_t h = {.map = map, .h = 4, .w = 6, .title = "x"};
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_heatmap_render(&h, &img, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(img.rgb);
    }
    for (long k = 1;; k++) {
        uint8_t *png = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_heatmap_png(&img, &png, &len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            gb_free(png);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(png);
    }
    gb_heatmap_image_free(&img);
}

static void test_upsample(void **state)
{
    (void)state;
    /* torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear",
     * align_corners=False) of [[0, 1], [2, 3]]. */
    const float src[4] = {0, 1, 2, 3};
    const float want[16] = {0,    0.25f, 0.75f, 1,    0.5f, 0.75f, 1.25f, 1.5f,
                            1.5f, 1.75f, 2.25f, 2.5f, 2,    2.25f, 2.75f, 3};
    float dst[16];
    gb_heatmap_upsample(src, 2, 2, dst, 4, 4);
    for (int i = 0; i < 16; i++)
        assert_true(fabsf(dst[i] - want[i]) < 1e-6f);
    /* Same size: the identity. Non-square and 1-wide inputs work. */
    float id[4];
    gb_heatmap_upsample(src, 2, 2, id, 2, 2);
    assert_memory_equal(id, src, sizeof id);
    const float col[3] = {1, 2, 3};
    float wide[12];
    gb_heatmap_upsample(col, 3, 1, wide, 3, 4);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            assert_true(wide[y * 4 + x] == col[y]);
    /* 4 x 4 -> 28 x 28 stays within the source's range. */
    float s16[16], big[784];
    for (int i = 0; i < 16; i++)
        s16[i] = (float)(i % 5) - 2.0f;
    gb_heatmap_upsample(s16, 4, 4, big, 28, 28);
    for (int i = 0; i < 784; i++)
        assert_true(big[i] >= -2.0f && big[i] <= 2.0f);
}

/* The sequence layout: F rows by T columns, cells stretched towards the
 * target size (at most 80 pixels high), captions. */
static void test_layout_sequence(void **state)
{
    (void)state;
    gb_heatmap_t h = {0};
    char xlab[64];
    gb_heatmap_layout_sequence(&h, 28, 1, xlab, sizeof xlab);
    assert_int_equal(h.h, 1);
    assert_int_equal(h.w, 28);
    assert_int_equal(h.cell_w, GB_HEATMAP_TARGET_PX / 28);
    assert_int_equal(h.cell_h, 80);
    assert_string_equal(h.x_label, "time: step 1..28 ->");
    assert_null(h.y_label);
    gb_heatmap_layout_sequence(&h, 500, 7, xlab, sizeof xlab);
    assert_int_equal(h.h, 7);
    assert_int_equal(h.cell_w, 1);
    assert_int_equal(h.cell_h, GB_HEATMAP_TARGET_PX / 7);
    assert_string_equal(h.y_label, "feature");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_color_scale),     cmocka_unit_test(test_render_known_map),
        cmocka_unit_test(test_png_round_trip),  cmocka_unit_test(test_underlay_and_range),
        cmocka_unit_test(test_sequence_layout), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_alloc_failures),  cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_layout_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
