/* Tests for coordinator/html_report: the page of a fixed history shows the
 * last round, every round's figures in its plots, the class names and
 * client ids escaped (a hostile name stays text), the flags with their
 * evidence, the heatmaps by relative name with their class names, the
 * distance plots capped at GB_HTML_REPORT_MAX_CLIENTS clients and saying
 * so; it holds no script and nothing from outside its folder; an empty
 * history gives a page that says so; the page is written atomically into
 * the directory; allocation failures are errors, not half pages. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html_report.h"
#include "util/alloc.h"

#define N_CLIENTS 60

typedef struct {
    gb_report_history_t *h;
    gb_report_distance_t d[N_CLIENTS];
    gb_report_flag_t g;
    double classes[3];
    uint32_t maps[3];
} fixture_t;

static const char *const s_names[3] = {"T-shirt/top", "<script>alert(1)</script>", "Bag & \"Co\""};

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    gb_error_t err = {0};
    f->h = gb_report_history_new(&err);
    assert_non_null(f->h);
    f->classes[0] = 0.9;
    f->classes[1] = 0.25;
    f->classes[2] = NAN;
    for (uint32_t k = 0; k < 3; k++)
        f->maps[k] = k;
    snprintf(f->g.client, sizeof f->g.client, "evil<img src=x>");
    f->g.score = 8.75;
    f->g.strongest = GB_FLAG_UPDATE;
    f->g.rounds_out = 2;
    f->g.rounds_seen = 3;
    f->g.z[GB_FLAG_EXPLANATION] = 1.5;
    f->g.z[GB_FLAG_UPDATE] = 12.25;
    f->g.z[GB_FLAG_NORM] = NAN;
    f->g.z[GB_FLAG_DISAGREE] = 7.5;
    f->g.z[GB_FLAG_LESSON] = 6.5;
    f->g.update_distance = 0.0625;
    f->g.norm = 1.5;
    f->g.explanation_distance = 0.375;
    f->g.n_classes_moved = 2;
    f->g.classes_moved[0] = 1; /* a hostile name, escaped */
    f->g.class_ratio[0] = 3.5;
    f->g.classes_moved[1] = 7; /* past the names: by number */
    f->g.class_ratio[1] = 2;
    f->g.lesson_class = 1; /* by its (hostile) name; the cells escaped too */
    snprintf(f->g.lesson_cells, sizeof f->g.lesson_cells, "rows 24-27, cols <b>");
    f->g.n_moved = 2;
    f->g.moved[0] = 24 * 28 + 25;
    f->g.moved_share[0] = 0.125;
    f->g.moved[1] = 783;
    f->g.moved_share[1] = 0.0625;
    for (uint64_t r = 1; r <= 3; r++) {
        for (int i = 0; i < N_CLIENTS; i++) {
            snprintf(f->d[i].client, sizeof f->d[i].client, "edge-%02d", i);
            f->d[i].distance = 0.001 * i + 0.01 * (double)r;
        }
        snprintf(f->d[0].client, sizeof f->d[0].client, "evil<img src=x>");
        f->d[0].distance = 0.9;
        gb_report_round_t x = {.round = r,
                               .seconds = 2,
                               .participants = N_CLIENTS,
                               .samples = 1000 * r,
                               .test_accuracy = 0.5 + 0.1 * (double)r,
                               .test_loss = 1.0 / (double)r,
                               .train_accuracy = NAN,
                               .train_loss = 1.2 / (double)r,
                               .client_accuracy = 0.55,
                               .client_loss = NAN,
                               .clients_evaluated = 4,
                               .acc_min = 0.25,
                               .acc_p10 = 0.3,
                               .acc_median = 0.5,
                               .acc_max = 0.875,
                               .n_classes = 3,
                               .class_accuracy = f->classes,
                               .n_heatmaps = 3,
                               .heatmap_classes = f->maps,
                               .importance_heatmap = true,
                               .importance_rank = 3,
                               .importance_shape = {1, 28, 28},
                               .n_distances = N_CLIENTS,
                               .distances = f->d,
                               .distances_total = N_CLIENTS,
                               .n_flags = r >= 2,
                               .flags = &f->g,
                               .flags_total = r >= 2};
        assert_int_equal(gb_report_history_add(f->h, &x, 3, s_names, &err), 0);
    }
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_report_history_destroy(&f->h);
    free(f);
    return 0;
}

static size_t s_count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void s_has(const char *page, const char *needle)
{
    if (!strstr(page, needle))
        fail_msg("the page lacks '%s'", needle);
}

static void test_page_of_a_history(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    char *page = NULL;
    size_t len = 0;
    gb_html_report_info_t info = {.federation = "demo<&>", .generated_unix_ms = 1700000000000};
    assert_int_equal(gb_html_report_render(f->h, &info, &page, &len, &err), 0);
    assert_int_equal(strlen(page), len);
    s_has(page, "<!DOCTYPE html>");
    s_has(page, "<title>Glassbox demo&lt;&amp;&gt;: round 3</title>");
    s_has(page, "data-round=\"3\"><b>Round 3</b>: 60 clients averaged (3000 samples), test "
                "accuracy 80.0%");
    s_has(page, "2023-11-14 22:13:20 UTC");
    s_has(page, "Rounds 1 to 3 shown.");
    /* the plots: one polyline point per round of the test accuracy */
    s_has(page, "id=\"accuracy-plot\"");
    s_has(page, "id=\"loss-plot\"");
    s_has(page, "id=\"spread-plot\"");
    s_has(page, "Round 3: 4 clients evaluated; min 25.0%, p10 30.0%, median 50.0%, max 87.5%");
    /* class names escaped, in the table and in the heatmap captions */
    s_has(page, "<td class=\"l\">&lt;script&gt;alert(1)&lt;/script&gt;</td><td>25.0%");
    s_has(page, "Bag &amp; &quot;Co&quot;");
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "<img src=x>"));
    s_has(page, "<img src=\"explanation-3-class-1.png\" alt=\"class 1 &lt;script&gt;");
    s_has(page, "<figcaption>2 Bag &amp; &quot;Co&quot;</figcaption>");
    s_has(page, "src=\"explanation-3-importance.png\"");
    s_has(page, "href=\"explanation-3.json\"");
    /* the flags of rounds 2 and 3, newest first, with their evidence */
    s_has(page, "id=\"flag-table\"");
    s_has(page, "<th class=\"l\">what its update taught</th>");
    s_has(page, "<tr><td>3</td><td class=\"l\">evil&lt;img src=x&gt;</td><td>8.75</td>"
                "<td class=\"l\">update</td><td>1.5</td><td>12.2</td><td>&ndash;</td>"
                "<td>7.5</td><td>6.5</td><td>2 of 3</td><td>0.0625</td><td>1.5</td><td>0.375</td>"
                "<td class=\"l\">&lt;script&gt;alert(1)&lt;/script&gt; &times;3.5, class 7 "
                "&times;2.0</td><td class=\"l\">&lt;script&gt;alert(1)&lt;/script&gt; at rows "
                "24-27, cols &lt;b&gt; (z 6.5)</td><td class=\"l\"><svg class=\"moved\" width=\"84\" "
                "height=\"84\"");
    /* where it moved: the map 3 px a cell, the largest excess darkest, and named */
    s_has(page, "<rect x=\"75.0\" y=\"72.0\" width=\"3.0\" height=\"3.0\" fill=\"#c00\" "
                "fill-opacity=\"1.00\"/><rect x=\"81.0\" y=\"81.0\" width=\"3.0\" "
                "height=\"3.0\" fill=\"#c00\" fill-opacity=\"0.68\"/></svg> row 24, col 25 "
                "+0.125; row 27, col 27 +0.062</td></tr>");
    assert_int_equal(s_count(page, "evil&lt;img src=x&gt;</td><td>8.75"), 2);
    /* the summary: one row for the client, flagged in 2 rounds, last in 3 */
    s_has(page, "<table id=\"flag-clients\">");
    s_has(page, "<tr><td class=\"l\">evil&lt;img src=x&gt;</td><td>2</td><td>3</td>"
                "<td>8.75</td><td class=\"l\">update</td></tr>");
    s_has(page, "<details open><summary>Every flag");
    /* distances: the 50 largest of 60 clients, the flagged one red and first */
    s_has(page, "60 clients; the 50 of largest distance shown");
    const char *plots = strstr(page, "id=\"distance-plots\"");
    assert_non_null(plots);
    assert_int_equal(s_count(plots, "<div class=\"cell"), GB_HTML_REPORT_MAX_CLIENTS);
    s_has(plots, "<div class=\"cell flagged\"><b>evil&lt;img src=x&gt;</b> (flagged), max 0.9");
    assert_null(strstr(plots, "<b>edge-01</b>")); /* among the 10 smallest: left out */
    s_has(plots, "<b>edge-59</b>");
    /* nothing from outside the folder, no script */
    assert_null(strstr(page, "src=\"http"));
    assert_null(strstr(page, "href=\"http"));
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "javascript:"));
    gb_free(page);
}

static void test_empty_and_sparse(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    char *page = NULL;
    size_t len = 0;
    assert_int_equal(gb_html_report_render(h, NULL, &page, &len, &err), 0);
    s_has(page, "data-round=\"0\">No round has finished yet.");
    gb_free(page);
    /* a round without evaluations, classes, explanations or flags says so */
    gb_report_round_t x = {.round = 7, .test_accuracy = NAN, .test_loss = NAN,
                           .train_accuracy = NAN, .train_loss = 0.5, .client_accuracy = NAN,
                           .client_loss = NAN, .acc_min = NAN, .acc_p10 = NAN,
                           .acc_median = NAN, .acc_max = NAN, .seconds = NAN};
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), 0);
    assert_int_equal(gb_html_report_render(h, NULL, &page, &len, &err), 0);
    s_has(page, "data-round=\"7\"");
    s_has(page, "<title>Glassbox: round 7</title>");
    s_has(page, "No round had these figures."); /* accuracy: none */
    s_has(page, "id=\"loss-plot\"");             /* the training loss */
    s_has(page, "serve --client-eval");
    s_has(page, "serve --test-data");
    s_has(page, "No client was flagged in the rounds shown.");
    s_has(page, "serve --explain");
    s_has(page, "No client explanation was measured");
    gb_free(page);
    gb_report_history_destroy(&h);
}

static void test_write(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    char *dir = gb_test_mkdtemp();
    assert_int_equal(gb_html_report_write(dir, f->h, NULL, &err), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, GB_HTML_REPORT_FILE);
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    char head[64] = {0};
    assert_true(fread(head, 1, sizeof head - 1, in) > 0);
    fclose(in);
    assert_non_null(strstr(head, "<!DOCTYPE html>"));
    char gone[700];
    snprintf(gone, sizeof gone, "%s/missing/dir", dir);
    assert_int_equal(gb_html_report_write(gone, f->h, NULL, &err), GB_EIO);
    assert_int_equal(gb_html_report_write(NULL, f->h, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_html_report_write("", f->h, NULL, &err), GB_EINVAL);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_allocation_failures(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    int failed = 0;
    for (long k = 1; k < 200; k++) {
        char *page = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_html_report_render(f->h, NULL, &page, &len, &err);
        long used = gb_alloc_fail_after(0);
        if (rc == 0 && used < k) {
            gb_free(page);
            break;
        }
        /* a failed allocation is an error, or a section that says it ran
         * out of memory (the distance plots); never a crash */
        if (rc == 0) {
            assert_non_null(strstr(page, "Out of memory for"));
            gb_free(page);
        } else {
            assert_int_equal(rc, GB_ENOMEM);
            assert_null(page);
        }
        failed++;
    }
    assert_true(failed >= 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_page_of_a_history, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_sparse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_write, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
