/* Tests for coordinator/report_history: a round in and out of history.json
 * with every field (NaN kept as null), the caps (rounds, distances, flags)
 * and what they report, a federation run again from an older round, names
 * from the wire made safe, every allocation failure leaving the history as
 * it was, and history files that are missing, truncated, not JSON or
 * hostile in one field each refused with the field named. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_history.h"
#include "util/alloc.h"

typedef struct {
    char *dir;
    char path[600];
    gb_report_distance_t d[150];
    gb_report_flag_t g[120];
    double classes[3];
    uint32_t maps[2];
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = gb_test_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, GB_REPORT_HISTORY_FILE);
    for (int i = 0; i < 150; i++) {
        snprintf(f->d[i].client, sizeof f->d[i].client, "client-%03d", i);
        f->d[i].distance = i / 1000.0;
    }
    for (int i = 0; i < 120; i++) {
        gb_report_flag_t *g = &f->g[i];
        snprintf(g->client, sizeof g->client, "client-%03d", i);
        g->score = 4.5 + i;
        g->strongest = GB_FLAG_UPDATE;
        g->rounds_out = 2;
        g->rounds_seen = 3;
        g->z[GB_FLAG_EXPLANATION] = NAN;
        g->z[GB_FLAG_UPDATE] = 7.25;
        g->z[GB_FLAG_NORM] = -0.5;
        g->z[GB_FLAG_DISAGREE] = NAN;
        g->update_distance = 0.75;
        g->norm = 1.5;
        g->explanation_distance = NAN;
        g->n_classes_moved = 1;
        g->classes_moved[0] = 2;
        g->class_ratio[0] = 4.5;
        g->n_moved = 2;
        g->moved[0] = 24 * 28 + 25; /* a trigger patch's corner */
        g->moved_share[0] = 0.125;
        g->moved[1] = 783;
        g->moved_share[1] = 0.0625;
        g->lesson_class = i % 2 ? 0 : 2; /* odd ones have no lesson */
        snprintf(g->lesson_cells, sizeof g->lesson_cells, "%s",
                 i % 2 ? "" : "rows 24-27, cols 24-27");
    }
    f->classes[0] = 0.5;
    f->classes[1] = NAN; /* absent from the test data */
    f->classes[2] = 1;
    f->maps[0] = 0;
    f->maps[1] = 2;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* A round with 2 distances and 1 flag, every other figure set. */
static gb_report_round_t s_round(fixture_t *f, uint64_t round)
{
    return (gb_report_round_t){.round = round,
                               .seconds = 1.25,
                               .participants = 3,
                               .samples = 6000,
                               .test_accuracy = 0.8125,
                               .test_loss = 0.5,
                               .train_accuracy = NAN,
                               .train_loss = 0.625,
                               .client_accuracy = 0.75,
                               .client_loss = 0.7,
                               .clients_evaluated = 3,
                               .acc_min = 0.5,
                               .acc_p10 = 0.5,
                               .acc_median = 0.75,
                               .acc_max = 1,
                               .n_classes = 3,
                               .class_accuracy = f->classes,
                               .n_heatmaps = 2,
                               .heatmap_classes = f->maps,
                               .importance_heatmap = true,
                               .importance_rank = 3,
                               .importance_shape = {1, 28, 28},
                               .n_distances = 2,
                               .distances = f->d + 10,
                               .distances_total = 2,
                               .n_flags = 1,
                               .flags = f->g,
                               .flags_total = 1};
}

static const char *const s_names[3] = {"T-shirt/top", "Trouser", NULL};

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    assert_non_null(h);
    assert_int_equal(gb_report_history_count(h), 0);
    for (uint64_t r = 1; r <= 3; r++) {
        gb_report_round_t x = s_round(f, r);
        assert_int_equal(gb_report_history_add(h, &x, 3, s_names, &err), 0);
    }
    assert_int_equal(gb_report_history_write(h, f->path, &err), 0);
    gb_report_history_destroy(&h);
    assert_null(h);
    gb_report_history_destroy(&h); /* NULL-safe */

    h = gb_report_history_read(f->path, &err);
    if (!h)
        fail_msg("read: %s", err.msg);
    assert_int_equal(gb_report_history_count(h), 3);
    assert_int_equal(gb_report_history_dropped(h), 0);
    assert_int_equal(gb_report_history_classes(h), 3);
    assert_string_equal(gb_report_history_class_name(h, 0), "T-shirt/top");
    assert_string_equal(gb_report_history_class_name(h, 2), "class 2");
    assert_null(gb_report_history_class_name(h, 3));
    assert_null(gb_report_history_round(h, 3));
    const gb_report_round_t *r = gb_report_history_round(h, 2);
    assert_int_equal(r->round, 3);
    assert_true(r->seconds == 1.25 && r->test_accuracy == 0.8125 && r->test_loss == 0.5);
    assert_true(isnan(r->train_accuracy) && r->train_loss == 0.625);
    assert_true(r->client_accuracy == 0.75 && r->client_loss == 0.7);
    assert_int_equal(r->participants, 3);
    assert_int_equal(r->samples, 6000);
    assert_int_equal(r->clients_evaluated, 3);
    assert_true(r->acc_min == 0.5 && r->acc_p10 == 0.5 && r->acc_median == 0.75 &&
                r->acc_max == 1);
    assert_int_equal(r->n_classes, 3);
    assert_true(r->class_accuracy[0] == 0.5 && isnan(r->class_accuracy[1]) &&
                r->class_accuracy[2] == 1);
    assert_int_equal(r->n_heatmaps, 2);
    assert_int_equal(r->heatmap_classes[1], 2);
    assert_true(r->importance_heatmap);
    assert_int_equal(r->n_distances, 2);
    /* largest first */
    assert_string_equal(r->distances[0].client, "client-011");
    assert_true(r->distances[0].distance == 0.011);
    assert_int_equal(r->n_flags, 1);
    const gb_report_flag_t *g = &r->flags[0];
    assert_string_equal(g->client, "client-000");
    assert_true(g->score == 4.5 && g->strongest == GB_FLAG_UPDATE);
    assert_int_equal(g->rounds_out, 2);
    assert_int_equal(g->rounds_seen, 3);
    assert_true(isnan(g->z[GB_FLAG_EXPLANATION]) && g->z[GB_FLAG_UPDATE] == 7.25 &&
                g->z[GB_FLAG_NORM] == -0.5);
    assert_true(g->update_distance == 0.75 && g->norm == 1.5 && isnan(g->explanation_distance));
    assert_int_equal(r->importance_rank, 3);
    assert_int_equal(r->importance_shape[1], 28);
    assert_int_equal(g->n_moved, 2);
    assert_int_equal(g->moved[0], 24 * 28 + 25);
    assert_true(g->moved_share[0] == 0.125 && g->moved_share[1] == 0.0625);
    assert_int_equal(g->n_classes_moved, 1);
    assert_int_equal(g->classes_moved[0], 2);
    assert_true(g->class_ratio[0] == 4.5);
    assert_int_equal(g->lesson_class, 2);
    assert_string_equal(g->lesson_cells, "rows 24-27, cols 24-27");

    /* the federation runs again from round 2: rounds 2 and 3 are replaced */
    gb_report_round_t again = s_round(f, 2);
    again.test_accuracy = 0.25;
    assert_int_equal(gb_report_history_add(h, &again, 0, NULL, &err), 0);
    assert_int_equal(gb_report_history_count(h), 2);
    assert_true(gb_report_history_round(h, 1)->test_accuracy == 0.25);
    assert_int_equal(gb_report_history_classes(h), 3); /* no names given: kept */
    gb_report_history_destroy(&h);
}

static void test_caps(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    for (uint64_t r = 1; r <= GB_REPORT_HISTORY_MAX_ROUNDS + 5; r++) {
        gb_report_round_t x = s_round(f, r);
        x.distances = f->d;
        x.n_distances = 150;
        x.distances_total = 0; /* raised to what was given */
        x.flags = f->g;
        x.n_flags = 120;
        x.flags_total = 130; /* more were flagged than the caller listed */
        assert_int_equal(gb_report_history_add(h, &x, 3, s_names, &err), 0);
    }
    assert_int_equal(gb_report_history_count(h), GB_REPORT_HISTORY_MAX_ROUNDS);
    assert_int_equal(gb_report_history_dropped(h), 5);
    const gb_report_round_t *r = gb_report_history_round(h, 0);
    assert_int_equal(r->round, 6);
    assert_int_equal(r->n_distances, GB_REPORT_HISTORY_MAX_DISTANCES);
    assert_int_equal(r->distances_total, 150);
    assert_string_equal(r->distances[0].client, "client-149"); /* the largest kept */
    assert_string_equal(r->distances[GB_REPORT_HISTORY_MAX_DISTANCES - 1].client, "client-050");
    assert_int_equal(r->n_flags, GB_REPORT_HISTORY_MAX_FLAGS);
    assert_int_equal(r->flags_total, 130);
    /* and the capped history reads back */
    assert_int_equal(gb_report_history_write(h, f->path, &err), 0);
    gb_report_history_t *back = gb_report_history_read(f->path, &err);
    if (!back)
        fail_msg("read: %s", err.msg);
    assert_int_equal(gb_report_history_count(back), GB_REPORT_HISTORY_MAX_ROUNDS);
    assert_int_equal(gb_report_history_dropped(back), 5);
    gb_report_history_destroy(&back);
    gb_report_history_destroy(&h);
}

static void test_bad_rounds_and_names(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    gb_report_round_t x = s_round(f, 0);
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), GB_EINVAL);
    x = s_round(f, 1);
    gb_report_distance_t d[2] = {{"", 0.5}, {"ok", -1}};
    x.distances = d;
    x.n_distances = 1;
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), GB_EINVAL);
    x.distances = d + 1;
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), GB_EINVAL);
    x = s_round(f, 1);
    x.n_classes = GB_REPORT_HISTORY_MAX_CLASSES + 1;
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), GB_EINVAL);
    x = s_round(f, 1);
    assert_int_equal(gb_report_history_add(h, &x, GB_REPORT_HISTORY_MAX_CLASSES + 1, NULL, &err),
                     GB_EINVAL);
    assert_int_equal(gb_report_history_count(h), 0);

    /* names from the wire: a bad byte becomes '?', a long name is cut
     * between characters, and the file reads back */
    char long_name[80];
    memset(long_name, 'a', 63);
    memcpy(long_name + 63, "\xc3\xa9zz", 5); /* a 2-byte character across byte 64 */
    const char *names[2] = {"bad\xff" "byte", long_name};
    x = s_round(f, 1);
    x.n_classes = 2;
    gb_report_distance_t odd = {"", 0.25};
    memcpy(odd.client, "x\x80y", 4);
    x.distances = &odd;
    x.n_distances = 1;
    assert_int_equal(gb_report_history_add(h, &x, 2, names, &err), 0);
    assert_string_equal(gb_report_history_class_name(h, 0), "bad?byte");
    assert_int_equal(strlen(gb_report_history_class_name(h, 1)), 63);
    assert_string_equal(gb_report_history_round(h, 0)->distances[0].client, "x?y");
    assert_int_equal(gb_report_history_write(h, f->path, &err), 0);
    gb_report_history_t *back = gb_report_history_read(f->path, &err);
    if (!back)
        fail_msg("read: %s", err.msg);
    assert_string_equal(gb_report_history_class_name(back, 0), "bad?byte");
    gb_report_history_destroy(&back);
    gb_report_history_destroy(&h);
}

static void s_too_many_moved(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->n_moved = GB_REPORT_HISTORY_MAX_MOVED + 1;
    for (size_t i = 0; i < g->n_moved; i++) {
        g->moved[i % GB_REPORT_HISTORY_MAX_MOVED] = (uint32_t)i;
        g->moved_share[i % GB_REPORT_HISTORY_MAX_MOVED] = 0.5;
    }
}
static void s_moved_outside(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->moved[1] = 784; /* one past 1 x 28 x 28 */
}
static void s_moved_without_map(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)g;
    x->importance_rank = 0;
}
static void s_moved_share_zero(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->moved_share[1] = 0;
}
static void s_moved_share_nan(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->moved_share[0] = NAN;
}
static void s_moved_repeated(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->moved[1] = g->moved[0];
}
static void s_shape_zero(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)g;
    x->importance_shape[0] = 0;
}
static void s_shape_rank(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)g;
    x->importance_rank = GB_REPORT_HISTORY_MAX_RANK + 1;
}
static void s_too_many_classes(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->n_classes_moved = GB_REPORT_HISTORY_MAX_MOVED + 1;
}
static void s_class_past(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->classes_moved[0] = GB_REPORT_HISTORY_MAX_CLASSES;
}
static void s_class_ratio_low(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->class_ratio[0] = 0.5;
}
static void s_class_ratio_inf(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->class_ratio[0] = INFINITY;
}
static void s_class_repeated(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->n_classes_moved = 2;
    g->classes_moved[1] = g->classes_moved[0];
    g->class_ratio[1] = 2;
}
static void s_lesson_class_past(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->lesson_class = GB_REPORT_HISTORY_MAX_CLASSES;
}
static void s_lesson_class_negative(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)x;
    g->lesson_class = -1;
}
static void s_shape_cells(gb_report_round_t *x, gb_report_flag_t *g)
{
    (void)g;
    x->importance_shape[0] = (uint32_t)(GB_REPORT_HISTORY_MAX_CELLS / 784 + 1);
}

/* A flag's moved cells and the map's shape, each bound crossed: add
 * refuses and the history is unchanged. */
static void test_moved_cells_bounds(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    gb_report_flag_t g = f->g[0];
    gb_report_round_t x = s_round(f, 1);
    x.flags = &g;
    const struct {
        const char *says;
        void (*apply)(gb_report_round_t *, gb_report_flag_t *);
    } cases[] = {
        {"too many moved cells", s_too_many_moved},
        {"outside the importance map", s_moved_outside},
        {"without an importance map", s_moved_without_map},
        {"moved share outside", s_moved_share_zero},
        {"moved share outside", s_moved_share_nan},
        {"repeats a moved cell", s_moved_repeated},
        {"shape", s_shape_zero},
        {"shape", s_shape_rank},
        {"shape", s_shape_cells},
        {"too many moved classes", s_too_many_classes},
        {"moved class past the classes", s_class_past},
        {"not finite and >= 1", s_class_ratio_low},
        {"not finite and >= 1", s_class_ratio_inf},
        {"repeats a moved class", s_class_repeated},
        {"lesson of a class past", s_lesson_class_past},
        {"lesson of a class past", s_lesson_class_negative},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g = f->g[0];
        x = s_round(f, 1);
        x.flags = &g;
        cases[i].apply(&x, &g);
        err = (gb_error_t){0};
        assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), GB_EINVAL);
        if (!strstr(err.msg, cases[i].says))
            fail_msg("'%s' does not say '%s'", err.msg, cases[i].says);
        assert_int_equal(gb_report_history_count(h), 0);
    }
    /* the most of each is taken */
    g = f->g[0];
    x = s_round(f, 1);
    x.flags = &g;
    g.n_moved = GB_REPORT_HISTORY_MAX_MOVED;
    for (size_t i = 0; i < g.n_moved; i++) {
        g.moved[i] = (uint32_t)(783 - i);
        g.moved_share[i] = 1;
    }
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), 0);
    x = s_round(f, 2);
    x.n_flags = 0;
    x.importance_rank = GB_REPORT_HISTORY_MAX_RANK;
    for (int i = 0; i < GB_REPORT_HISTORY_MAX_RANK; i++)
        x.importance_shape[i] = 8; /* 2^24 cells */
    assert_int_equal(gb_report_history_add(h, &x, 0, NULL, &err), 0);
    assert_int_equal(gb_report_history_count(h), 2);
    gb_report_history_destroy(&h);
}

static void test_allocation_failures(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    gb_report_round_t x = s_round(f, 1);
    assert_int_equal(gb_report_history_add(h, &x, 3, s_names, &err), 0);
    int failures = 0;
    for (long k = 1; k < 50; k++) {
        x = s_round(f, 2);
        gb_alloc_fail_after(k);
        int rc = gb_report_history_add(h, &x, 3, s_names, &err);
        long used = gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_true(used < k); /* every allocation point has been failed once */
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_int_equal(gb_report_history_count(h), 1); /* nothing changed */
        assert_int_equal(gb_report_history_round(h, 0)->round, 1);
        failures++;
    }
    assert_true(failures >= 3);
    assert_int_equal(gb_report_history_count(h), 2);
    gb_alloc_fail_after(1);
    assert_null(gb_report_history_new(&err));
    gb_alloc_fail_after(0);
    assert_int_equal(err.code, GB_ENOMEM);
    gb_report_history_destroy(&h);
}

/* The good file of two rounds, as a jansson document to break. */
static json_t *s_good_doc(fixture_t *f)
{
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_new(&err);
    for (uint64_t r = 1; r <= 2; r++) {
        gb_report_round_t x = s_round(f, r);
        assert_int_equal(gb_report_history_add(h, &x, 3, s_names, &err), 0);
    }
    assert_int_equal(gb_report_history_write(h, f->path, &err), 0);
    gb_report_history_destroy(&h);
    json_error_t jerr;
    json_t *doc = json_load_file(f->path, 0, &jerr);
    assert_non_null(doc);
    return doc;
}

/* Writes doc to the history file and expects it refused with code and a
 * message containing says. */
static void s_refused(fixture_t *f, json_t *doc, int code, const char *says)
{
    assert_int_equal(json_dump_file(doc, f->path, 0), 0);
    json_decref(doc);
    gb_error_t err = {0};
    gb_report_history_t *h = gb_report_history_read(f->path, &err);
    if (h)
        fail_msg("accepted a history that should be refused for '%s'", says);
    if (err.code != code)
        fail_msg("'%s': code %d, want %d (%s)", says, err.code, code, err.msg);
    if (!strstr(err.msg, says))
        fail_msg("'%s' does not say '%s'", err.msg, says);
}

static json_t *s_round0(json_t *doc)
{
    return json_array_get(json_object_get(doc, "rounds"), 0);
}

/* The first round's first flag. */
static json_t *s_flag0(json_t *doc)
{
    return json_array_get(json_object_get(s_round0(doc), "flags"), 0);
}

static void test_hostile_files(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    json_t *rounds0 = NULL;
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.json", f->dir);
    assert_null(gb_report_history_read(missing, &err));
    assert_int_equal(err.code, GB_EIO);

    /* truncated at every tenth byte: never accepted, never a crash */
    json_t *doc = s_good_doc(f);
    char *text = json_dumps(doc, 0);
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut += len / 10 + 1) {
        free(gb_test_write_file(f->dir, GB_REPORT_HISTORY_FILE, text, cut));
        assert_null(gb_report_history_read(f->path, &err));
        assert_int_equal(err.code, GB_EFORMAT);
    }
    free(text);
    json_decref(doc);
    free(gb_test_write_file(f->dir, GB_REPORT_HISTORY_FILE, "{\"a\":1,\"a\":2}", 13));
    assert_null(gb_report_history_read(f->path, &err));
    assert_int_equal(err.code, GB_EFORMAT); /* a repeated key */

    doc = s_good_doc(f);
    json_object_set_new(doc, "format", json_string("something-else"));
    s_refused(f, doc, GB_EFORMAT, "glassbox-report-history");
    doc = s_good_doc(f);
    json_object_set_new(doc, "version", json_integer(2));
    s_refused(f, doc, GB_EFORMAT, "version");
    doc = s_good_doc(f);
    json_object_set_new(s_round0(doc), "test_accuracy", json_real(1.5));
    s_refused(f, doc, GB_EINVAL, "rounds[0] (round 1): test_accuracy");
    doc = s_good_doc(f);
    json_object_set_new(s_round0(doc), "test_loss", json_string("0.5"));
    s_refused(f, doc, GB_EINVAL, "test_loss");
    doc = s_good_doc(f);
    json_object_set_new(s_round0(doc), "round", json_integer(2)); /* not before round 2 */
    s_refused(f, doc, GB_EINVAL, "rounds[1] (round 2): round is not after");
    doc = s_good_doc(f);
    json_object_set_new(s_round0(doc), "round", json_integer(0));
    s_refused(f, doc, GB_EINVAL, "round is 0");
    doc = s_good_doc(f);
    json_array_append_new(json_object_get(s_round0(doc), "class_accuracy"), json_real(0.5));
    s_refused(f, doc, GB_EINVAL, "class_accuracy"); /* more classes than named */
    doc = s_good_doc(f);
    json_array_append_new(json_object_get(s_round0(doc), "heatmaps"), json_integer(-1));
    s_refused(f, doc, GB_EINVAL, "heatmaps");
    doc = s_good_doc(f);
    json_array_set_new(json_object_get(s_round0(doc), "client_accuracy_spread"), 0,
                       json_real(-0.5));
    s_refused(f, doc, GB_EINVAL, "client_accuracy_spread");
    doc = s_good_doc(f);
    json_object_set_new(s_round0(doc), "distances_total", json_integer(1)); /* 2 listed */
    s_refused(f, doc, GB_EINVAL, "distances_total");
    doc = s_good_doc(f);
    json_t *d0 = json_array_get(json_object_get(s_round0(doc), "distances"), 0);
    json_array_set_new(d0, 0, json_stringn("a\0b", 3)); /* a NUL inside a name: */
    s_refused(f, doc, GB_EFORMAT, "not JSON");                /* jansson refuses \u0000 */
    doc = s_good_doc(f);
    d0 = json_array_get(json_object_get(s_round0(doc), "distances"), 0);
    json_array_set_new(d0, 0, json_string(""));
    s_refused(f, doc, GB_EINVAL, "distances[].client");
    doc = s_good_doc(f);
    char name65[66];
    memset(name65, 'n', 65);
    name65[65] = '\0';
    json_array_set_new(json_object_get(doc, "classes"), 0, json_string(name65));
    s_refused(f, doc, GB_EINVAL, "classes[]");
    doc = s_good_doc(f);
    json_t *g0 = s_flag0(doc);
    json_object_set_new(g0, "rounds_out", json_integer(4)); /* of 3 seen */
    s_refused(f, doc, GB_EINVAL, "rounds_out");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(g0, "strongest", json_string("bogus"));
    s_refused(f, doc, GB_EINVAL, "strongest");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(g0, "z", json_array());
    s_refused(f, doc, GB_EINVAL, "flags[].z");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_array_set_new(json_array_get(json_object_get(g0, "moved"), 1), 0, json_integer(784));
    s_refused(f, doc, GB_EINVAL, "outside the importance map");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_array_set_new(json_object_get(g0, "moved"), 0, json_string("row 1"));
    s_refused(f, doc, GB_EINVAL, "not [index, number]");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_array_set_new(json_array_get(json_object_get(g0, "moved"), 0), 1, json_real(1.5));
    s_refused(f, doc, GB_EINVAL, "moved share outside");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    for (int i = 0; i < GB_REPORT_HISTORY_MAX_MOVED; i++)
        json_array_append_new(json_object_get(g0, "moved"), json_pack("[i, f]", 100 + i, 0.5));
    s_refused(f, doc, GB_EINVAL, "at most 8");
    doc = s_good_doc(f);
    json_array_set_new(json_object_get(s_round0(doc), "importance_shape"), 1, json_integer(0));
    s_refused(f, doc, GB_EINVAL, "importance_shape");
    doc = s_good_doc(f);
    json_object_del(s_round0(doc), "importance_shape"); /* moved cells without a map */
    s_refused(f, doc, GB_EINVAL, "without an importance map");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_array_set_new(json_array_get(json_object_get(g0, "classes_moved"), 0), 1,
                       json_real(0.25));
    s_refused(f, doc, GB_EINVAL, "not finite and >= 1");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(g0, "classes_moved", json_string("Sneaker"));
    s_refused(f, doc, GB_EINVAL, "flags[].classes_moved");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(g0, "lesson", json_string("Sneaker"));
    s_refused(f, doc, GB_EINVAL, "flags[].lesson");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(json_object_get(g0, "lesson"), "class",
                        json_integer(GB_REPORT_HISTORY_MAX_CLASSES));
    s_refused(f, doc, GB_EINVAL, "class");
    doc = s_good_doc(f);
    g0 = s_flag0(doc);
    json_object_set_new(json_object_get(g0, "lesson"), "cells", json_string(""));
    s_refused(f, doc, GB_EINVAL, "flags[].lesson.cells");
    /* a history written before moved cells were kept still reads */
    doc = s_good_doc(f);
    rounds0 = json_object_get(doc, "rounds");
    for (size_t i = 0; i < json_array_size(rounds0); i++) {
        json_t *r = json_array_get(rounds0, i);
        json_object_del(r, "importance_shape");
        json_t *fl = json_object_get(r, "flags");
        for (size_t j = 0; j < json_array_size(fl); j++) {
            json_object_del(json_array_get(fl, j), "moved");
            json_object_del(json_array_get(fl, j), "classes_moved");
            json_object_del(json_array_get(fl, j), "lesson");
        }
    }
    assert_int_equal(json_dump_file(doc, f->path, 0), 0);
    json_decref(doc);
    gb_report_history_t *old_h = gb_report_history_read(f->path, &err);
    if (!old_h)
        fail_msg("an older history: %s", err.msg);
    assert_int_equal(gb_report_history_round(old_h, 0)->importance_rank, 0);
    assert_int_equal(gb_report_history_round(old_h, 0)->flags[0].n_moved, 0);
    assert_string_equal(gb_report_history_round(old_h, 0)->flags[0].lesson_cells, "");
    gb_report_history_destroy(&old_h);

    /* counts past the caps */
    doc = s_good_doc(f);
    json_t *rounds = json_object_get(doc, "rounds");
    for (uint64_t r = 3; r <= GB_REPORT_HISTORY_MAX_ROUNDS + 1; r++) {
        json_t *c = json_deep_copy(json_array_get(rounds, 1));
        json_object_set_new(c, "round", json_integer((json_int_t)r));
        json_array_append_new(rounds, c);
    }
    s_refused(f, doc, GB_EINVAL, "rounds");
    doc = s_good_doc(f);
    json_t *dist = json_object_get(s_round0(doc), "distances");
    for (int i = 0; i < GB_REPORT_HISTORY_MAX_DISTANCES; i++)
        json_array_append_new(dist, json_pack("[s, f]", "c", 0.5));
    json_object_set_new(s_round0(doc), "distances_total", json_integer(1000));
    s_refused(f, doc, GB_EINVAL, "distances");

    /* the same checks on a buffer: a good document, and one past the limit
     * refused before a byte of it is read */
    doc = s_good_doc(f);
    text = json_dumps(doc, 0);
    json_decref(doc);
    gb_report_history_t *parsed = gb_report_history_parse(text, strlen(text), &err);
    assert_non_null(parsed);
    assert_int_equal(gb_report_history_count(parsed), 2);
    gb_report_history_destroy(&parsed);
    assert_null(gb_report_history_parse(text, GB_REPORT_HISTORY_MAX_BYTES + 1, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_null(gb_report_history_parse(text, 0, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    free(text);

    /* the good file still reads after all that */
    json_decref(s_good_doc(f));
    gb_report_history_t *h = gb_report_history_read(f->path, &err);
    assert_non_null(h);
    gb_report_history_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_caps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_rounds_and_names, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_moved_cells_bounds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_files, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
