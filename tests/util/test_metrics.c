/* Tests for util/metrics: counters add, gauges set and clear, the text is the
 * Prometheus exposition format with peer-chosen label values escaped and cut,
 * and the series bound holds against a peer that picks new label values. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics.h"

static int s_reset(void **state)
{
    (void)state;
    gb_metrics_reset();
    return 0;
}

static char *s_render(void)
{
    char *text = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    assert_int_equal(gb_metrics_render(&text, &len, &err), 0);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_counter_adds(void **state)
{
    (void)state;
    gb_metrics_counter_add("gb_updates_refused_total", "Updates refused", "reason", "norm", 1);
    gb_metrics_counter_add("gb_updates_refused_total", "Updates refused", "reason", "norm", 2);
    gb_metrics_counter_add("gb_updates_refused_total", "Updates refused", "reason", "stale", 1);
    gb_metrics_counter_add("gb_updates_refused_total", "Updates refused", "reason", "norm", -5);
    gb_metrics_counter_add("gb_updates_refused_total", "Updates refused", "reason", "norm", NAN);
    assert_true(gb_metrics_value("gb_updates_refused_total", "reason", "norm") == 3);
    assert_true(gb_metrics_value("gb_updates_refused_total", "reason", "stale") == 1);
    assert_true(gb_metrics_value("gb_updates_refused_total", "reason", "shape") == 0);
    assert_true(gb_metrics_value("gb_nothing", NULL, NULL) == 0);
}

static void test_gauge_set_and_clear(void **state)
{
    (void)state;
    gb_metrics_gauge_set("gb_round", "Last finished round", NULL, NULL, 4);
    gb_metrics_gauge_set("gb_round", "Last finished round", NULL, NULL, 5);
    gb_metrics_gauge_set("gb_distance", "Explanation distance", "client", "a", 0.5);
    gb_metrics_gauge_set("gb_distance", "Explanation distance", "client", "b", 0.25);
    assert_true(gb_metrics_value("gb_round", NULL, NULL) == 5);
    gb_metrics_gauge_clear("gb_distance");
    assert_true(gb_metrics_value("gb_distance", "client", "a") == 0);
    char *text = s_render();
    assert_null(strstr(text, "gb_distance{"));
    assert_non_null(strstr(text, "# TYPE gb_distance gauge\n"));
    free(text);
}

static void test_render_format(void **state)
{
    (void)state;
    gb_metrics_counter_add("gb_bytes_in_total", "Bytes\nreceived \\ from clients", NULL, NULL, 10);
    gb_metrics_gauge_set("gb_accuracy", "Test accuracy", NULL, NULL, NAN);
    gb_metrics_gauge_set("gb_loss", "Loss", NULL, NULL, INFINITY);
    gb_metrics_gauge_set("gb_named", "By client", "client", "say \"hi\"\\\n", 1);
    char *text = s_render();
    const char *want =
        "# HELP gb_bytes_in_total Bytes\\nreceived \\\\ from clients\n"
        "# TYPE gb_bytes_in_total counter\n"
        "gb_bytes_in_total 10\n"
        "# HELP gb_accuracy Test accuracy\n"
        "# TYPE gb_accuracy gauge\n"
        "gb_accuracy NaN\n"
        "# HELP gb_loss Loss\n"
        "# TYPE gb_loss gauge\n"
        "gb_loss +Inf\n"
        "# HELP gb_named By client\n"
        "# TYPE gb_named gauge\n"
        "gb_named{client=\"say \\\"hi\\\"\\\\?\"} 1\n";
    assert_string_equal(text, want);
    free(text);
}

static void test_empty_render(void **state)
{
    (void)state;
    char *text = s_render();
    assert_string_equal(text, "");
    free(text);
}

static void test_label_value_cut_at_utf8_boundary(void **state)
{
    (void)state;
    char name[GB_METRICS_MAX_LABEL_VALUE + 8];
    memset(name, 'x', GB_METRICS_MAX_LABEL_VALUE - 1);
    memcpy(name + GB_METRICS_MAX_LABEL_VALUE - 1, "\xc3\xa9tail", 7); /* é across the cut */
    gb_metrics_gauge_set("gb_long", "Long", "client", name, 2);
    char *text = s_render();
    char want[GB_METRICS_MAX_LABEL_VALUE + 64];
    snprintf(want, sizeof want, "gb_long{client=\"%.*s\"} 2\n", GB_METRICS_MAX_LABEL_VALUE - 1,
             name);
    assert_non_null(strstr(text, want));
    free(text);
    /* the same long name finds the same series */
    assert_true(gb_metrics_value("gb_long", "client", name) == 2);
}

static void test_series_bound(void **state)
{
    (void)state;
    char label[32];
    for (int i = 0; i < GB_METRICS_MAX_SERIES + 10; i++) {
        snprintf(label, sizeof label, "peer-%d", i);
        gb_metrics_counter_add("gb_junk_total", "Junk", "peer", label, 1);
    }
    assert_int_equal(gb_metrics_dropped(), 10);
    snprintf(label, sizeof label, "peer-%d", GB_METRICS_MAX_SERIES - 1);
    assert_true(gb_metrics_value("gb_junk_total", "peer", label) == 1);
    snprintf(label, sizeof label, "peer-%d", GB_METRICS_MAX_SERIES);
    assert_true(gb_metrics_value("gb_junk_total", "peer", label) == 0);
    /* existing series still count once the table is full */
    gb_metrics_counter_add("gb_junk_total", "Junk", "peer", "peer-0", 1);
    assert_true(gb_metrics_value("gb_junk_total", "peer", "peer-0") == 2);
    gb_metrics_reset();
    assert_int_equal(gb_metrics_dropped(), 0);
}

/* Per-client gauges cleared each round (the explanation distances) give their
 * series back: a round of new clients after a full table is not refused. */
static void test_clear_gives_series_back(void **state)
{
    (void)state;
    char label[32];
    for (int i = 0; i < GB_METRICS_MAX_SERIES; i++) {
        snprintf(label, sizeof label, "client-%d", i);
        gb_metrics_gauge_set("gb_distance", "Distance", "client", label, i);
    }
    gb_metrics_counter_add("gb_late_total", "Made once the table is full", NULL, NULL, 1);
    assert_int_equal(gb_metrics_dropped(), 1);
    gb_metrics_gauge_clear("gb_distance");
    gb_metrics_counter_add("gb_late_total", "Made once the table is full", NULL, NULL, 1);
    assert_true(gb_metrics_value("gb_late_total", NULL, NULL) == 1);
    for (int i = 0; i < GB_METRICS_MAX_SERIES - 1; i++) {
        snprintf(label, sizeof label, "next-%d", i);
        gb_metrics_gauge_set("gb_distance", "Distance", "client", label, 0.5);
    }
    assert_int_equal(gb_metrics_dropped(), 1);
    assert_true(gb_metrics_value("gb_distance", "client", "client-7") == 0);
    assert_true(gb_metrics_value("gb_distance", "client", "next-7") == 0.5);
    char *text = s_render();
    assert_null(strstr(text, "client=\"client-"));
    assert_non_null(strstr(text, "# HELP gb_distance Distance\n# TYPE gb_distance gauge\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_adds, s_reset),
        cmocka_unit_test_setup(test_gauge_set_and_clear, s_reset),
        cmocka_unit_test_setup(test_render_format, s_reset),
        cmocka_unit_test_setup(test_empty_render, s_reset),
        cmocka_unit_test_setup(test_label_value_cut_at_utf8_boundary, s_reset),
        cmocka_unit_test_setup(test_series_bound, s_reset),
        cmocka_unit_test_setup(test_clear_gives_series_back, s_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
