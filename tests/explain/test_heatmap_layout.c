/* Tests of explain/heatmap_layout.c, the one layout of the client's and the
 * coordinator's heatmaps: each shape gets its kind, size and caption; fill
 * puts every cell where the kind says (channels summed, a sequence
 * transposed, a wide map wrapped into rows with zeros after the last cell,
 * none dropped); apply sets the heatmap up so it renders; bad shapes and
 * maps too large even for wrapped rows are refused, not cut. */
#include "testutil.h"

#include "explain/heatmap_layout.h"

#include <stdlib.h>
#include <string.h>

static gb_heatmap_layout_t t_plan(const size_t *dims, int rank, bool grid)
{
    gb_heatmap_layout_t l;
    gb_error_t err = {0};
    if (gb_heatmap_layout_plan(dims, rank, grid, &l, &err))
        fail_msg("plan: %s", err.msg);
    return l;
}

static void test_image_channels_summed(void **state)
{
    (void)state;
    const size_t dims[3] = {2, 3, 4};
    gb_heatmap_layout_t l = t_plan(dims, 3, false);
    assert_int_equal(l.kind, GB_HEATMAP_CHANNELS);
    assert_int_equal(l.h, 3);
    assert_int_equal(l.w, 4);
    assert_int_equal(l.cells, 24);
    assert_int_equal(gb_heatmap_layout_size(&l), 12);
    float map[24], pic[12];
    for (int i = 0; i < 24; i++)
        map[i] = (float)i;
    gb_heatmap_layout_fill(&l, map, pic);
    for (int i = 0; i < 12; i++)
        assert_true(pic[i] == map[i] + map[12 + i]);
    gb_heatmap_t h = {.title = "t"};
    gb_heatmap_layout_apply(&l, pic, &h);
    assert_ptr_equal(h.map, pic);
    assert_int_equal(h.h, 3);
    assert_int_equal(h.w, 4);
    assert_null(h.x_label);
    assert_string_equal(h.title, "t"); /* left as it was */
}

static void test_grid_and_sequence(void **state)
{
    (void)state;
    const size_t dims[2] = {4, 2};
    float map[8], pic[8];
    for (int i = 0; i < 8; i++)
        map[i] = (float)i;
    /* Grad-CAM: (H', W') as it is */
    gb_heatmap_layout_t g = t_plan(dims, 2, true);
    assert_int_equal(g.kind, GB_HEATMAP_GRID);
    assert_int_equal(g.h, 4);
    assert_int_equal(g.w, 2);
    gb_heatmap_layout_fill(&g, map, pic);
    assert_memory_equal(pic, map, sizeof map);
    /* a sequence of 4 steps x 2 features: 2 rows by 4 columns */
    gb_heatmap_layout_t s = t_plan(dims, 2, false);
    assert_int_equal(s.kind, GB_HEATMAP_SEQUENCE);
    assert_int_equal(s.h, 2);
    assert_int_equal(s.w, 4);
    gb_heatmap_layout_fill(&s, map, pic);
    for (int t = 0; t < 4; t++)
        for (int f = 0; f < 2; f++)
            assert_true(pic[f * 4 + t] == map[t * 2 + f]);
    gb_heatmap_t h = {0};
    gb_heatmap_layout_apply(&s, pic, &h);
    assert_string_equal(h.x_label, "time: step 1..4 ->");
    assert_string_equal(h.y_label, "feature");
    assert_int_equal(h.cell_w, GB_HEATMAP_TARGET_PX / 4);
    assert_int_equal(h.cell_h, 80);
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    gb_heatmap_image_free(&img);
}

static void test_vector_one_strip(void **state)
{
    (void)state;
    const size_t dims[1] = {10};
    gb_heatmap_layout_t l = t_plan(dims, 1, false);
    assert_int_equal(l.kind, GB_HEATMAP_ROWS);
    assert_int_equal(l.h, 1);
    assert_int_equal(l.w, 10);
    assert_int_equal(l.padding, 0);
    float map[10] = {1, 2, 3}, pic[10];
    gb_heatmap_layout_fill(&l, map, pic);
    assert_memory_equal(pic, map, sizeof map);
    gb_heatmap_t h = {0};
    gb_heatmap_layout_apply(&l, pic, &h);
    assert_string_equal(h.x_label, "feature 1..10 ->");
    assert_int_equal(h.cell_w, GB_HEATMAP_TARGET_PX / 10);
    assert_int_equal(h.cell_h, 40);
}

/* The client once drew only the first 4,096 cells of a wide map: every cell
 * is in the picture now, and the caption says the rows wrap. */
static void test_wide_map_wraps_not_cut(void **state)
{
    (void)state;
    const size_t n = 10000, dims[1] = {n};
    gb_heatmap_layout_t l = t_plan(dims, 1, false);
    assert_int_equal(l.kind, GB_HEATMAP_ROWS);
    assert_int_equal(l.w, GB_HEATMAP_MAX_CELLS);
    assert_int_equal(l.h, 3);
    assert_int_equal(l.padding, 3 * GB_HEATMAP_MAX_CELLS - n);
    assert_string_equal(l.x_label, "feature 1..10000, 4096 a row ->");
    float *map = malloc(n * sizeof *map), *pic = malloc(gb_heatmap_layout_size(&l) * sizeof *pic);
    assert_non_null(map);
    assert_non_null(pic);
    for (size_t i = 0; i < n; i++)
        map[i] = (float)(i % 13) - 6;
    memset(pic, 0xff, gb_heatmap_layout_size(&l) * sizeof *pic); /* NaNs: must be overwritten */
    gb_heatmap_layout_fill(&l, map, pic);
    assert_memory_equal(pic, map, n * sizeof *map);
    for (size_t i = n; i < gb_heatmap_layout_size(&l); i++)
        assert_true(pic[i] == 0.0f);
    gb_heatmap_t h = {0};
    gb_heatmap_layout_apply(&l, pic, &h);
    gb_heatmap_image_t img;
    gb_error_t err = {0};
    assert_int_equal(gb_heatmap_render(&h, &img, &err), 0);
    assert_true(img.map_w >= GB_HEATMAP_MAX_CELLS && img.map_h >= 3);
    gb_heatmap_image_free(&img);
    free(map);
    free(pic);
    /* a sequence or an image with a side too long for one row wraps too */
    const size_t seq[2] = {3, GB_HEATMAP_MAX_CELLS + 1}, im[3] = {1, 2, GB_HEATMAP_MAX_CELLS + 1};
    assert_int_equal(t_plan(seq, 2, false).kind, GB_HEATMAP_ROWS);
    assert_int_equal(t_plan(im, 3, false).kind, GB_HEATMAP_ROWS);
    /* rank 4: wrapped rows as well */
    const size_t r4[4] = {2, 2, 2, 2};
    gb_heatmap_layout_t l4 = t_plan(r4, 4, false);
    assert_int_equal(l4.kind, GB_HEATMAP_ROWS);
    assert_int_equal(l4.w, 16);
}

static void test_refusals(void **state)
{
    (void)state;
    gb_heatmap_layout_t l;
    gb_error_t err = {0};
    const size_t dims[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, zero[2] = {3, 0};
    assert_int_equal(gb_heatmap_layout_plan(dims, 0, false, &l, &err), GB_EINVAL);
    assert_int_equal(gb_heatmap_layout_plan(dims, 9, false, &l, &err), GB_EINVAL);
    assert_int_equal(gb_heatmap_layout_plan(NULL, 1, false, &l, &err), GB_EINVAL);
    assert_int_equal(gb_heatmap_layout_plan(zero, 2, false, &l, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "dimension 1"));
    /* more than 4096 rows of 4096: refused, never cut */
    const size_t huge[1] = {(size_t)GB_HEATMAP_MAX_CELLS * GB_HEATMAP_MAX_CELLS + 1};
    assert_int_equal(gb_heatmap_layout_plan(huge, 1, false, &l, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "too many"));
    assert_int_equal(l.h, 0);
    assert_int_equal(gb_heatmap_layout_size(&l), 0);
    const size_t most[1] = {(size_t)GB_HEATMAP_MAX_CELLS * GB_HEATMAP_MAX_CELLS};
    assert_int_equal(gb_heatmap_layout_plan(most, 1, false, &l, &err), 0);
    assert_int_equal(l.h, GB_HEATMAP_MAX_CELLS);
}

/* locate says where fill draws: a map that is 1 at one cell and 0
 * elsewhere lights exactly the picture cell locate names, for every cell
 * of a map of each kind. */
static void test_locate_matches_fill(void **state)
{
    (void)state;
    const struct {
        size_t dims[3];
        int rank;
        bool grid;
    } shapes[] = {{{2, 3, 4}, 3, false}, {{1, 28, 28}, 3, false}, {{4, 2}, 2, true},
                  {{5, 3}, 2, false},    {{7}, 1, false},         {{5000}, 1, false}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        gb_heatmap_layout_t l = t_plan(shapes[s].dims, shapes[s].rank, shapes[s].grid);
        float *map = calloc(l.cells, sizeof *map);
        float *pic = calloc(gb_heatmap_layout_size(&l), sizeof *pic);
        assert_non_null(map);
        assert_non_null(pic);
        for (size_t cell = 0; cell < l.cells; cell++) {
            map[cell] = 1;
            gb_heatmap_layout_fill(&l, map, pic);
            map[cell] = 0;
            int row = -1, col = -1;
            size_t channel = 99;
            gb_error_t err = {0};
            assert_int_equal(gb_heatmap_layout_locate(&l, cell, &row, &col, &channel, &err), 0);
            assert_true(row >= 0 && row < l.h && col >= 0 && col < l.w);
            assert_true(pic[(size_t)row * (size_t)l.w + (size_t)col] == 1);
            if (l.kind == GB_HEATMAP_CHANNELS)
                assert_int_equal(channel, cell / (l.b * l.c));
            else
                assert_int_equal(channel, 0);
        }
        int row, col;
        size_t channel;
        gb_error_t err = {0};
        assert_int_equal(gb_heatmap_layout_locate(&l, l.cells, &row, &col, &channel, &err),
                         GB_ERANGE);
        assert_non_null(strstr(err.msg, "past the map"));
        free(map);
        free(pic);
    }
}

static void test_cell_names(void **state)
{
    (void)state;
    char name[64];
    const size_t image[3] = {1, 28, 28}, rgb[3] = {3, 4, 5}, seq[2] = {10, 3}, vec[1] = {9000};
    gb_heatmap_layout_t l = t_plan(image, 3, false);
    gb_heatmap_layout_cell_name(&l, 24 * 28 + 25, name, sizeof name);
    assert_string_equal(name, "row 24, col 25");
    gb_heatmap_layout_cell_name(&l, 784, name, sizeof name);
    assert_string_equal(name, "cell 784 (outside the map)");
    l = t_plan(rgb, 3, false);
    gb_heatmap_layout_cell_name(&l, 2 * 20 + 1 * 5 + 3, name, sizeof name);
    assert_string_equal(name, "channel 2, row 1, col 3");
    l = t_plan(seq, 2, false); /* (T, F): cell t * F + f */
    gb_heatmap_layout_cell_name(&l, 4 * 3 + 2, name, sizeof name);
    assert_string_equal(name, "step 5, feature 3");
    l = t_plan(image + 1, 2, true);
    gb_heatmap_layout_cell_name(&l, 30, name, sizeof name);
    assert_string_equal(name, "row 1, col 2");
    l = t_plan(vec, 1, false);
    gb_heatmap_layout_cell_name(&l, 117, name, sizeof name);
    assert_string_equal(name, "feature 118");
    /* a short buffer is cut, terminated */
    l = t_plan(image, 3, false);
    gb_heatmap_layout_cell_name(&l, 0, name, 5);
    assert_string_equal(name, "row ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_channels_summed),
        cmocka_unit_test(test_grid_and_sequence),
        cmocka_unit_test(test_vector_one_strip),
        cmocka_unit_test(test_wide_map_wraps_not_cut),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_locate_matches_fill),
        cmocka_unit_test(test_cell_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
