/* Tests for the coordinator's explanation report with class names and
 * class support (coordinator/explain_report.h,
 * gb_explain_report_write_named): every class object of
 * explanation-ROUND.json ends with its "class_name", "clients", "samples"
 * and "weakly_explained" (the keys before them and their order unchanged),
 * Fashion-MNIST's names, names from a file, indices beyond the list (they
 * come from the wire) and no list at all give "class K" where there is no
 * name, a name with quotes and backslashes is escaped, and the heatmap
 * title carries the name (a title longer than the map widens the PNG); the
 * weak marking by hand counts on both sides of --min-class-clients, off at
 * 0 and 1, the classes nobody explained listed by name, and a weak class's
 * title saying so. gb_explain_report_write, the same report without
 * names, stays tested in tests/coordinator/test_explain_merge.c.
 *
 * It lives in tests/cli beside the command-line tests of the same feature
 * (tests/cli/test_explain_sanity.py) because the coordinator's test folder
 * is another module owner's; it links the coordinator library as every
 * test does. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/class_names.h"
#include "explain_report.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define N_CLASSES 3

/* An aggregate of classes {7, 9, 12} of 1x2x2 maps, round 4. */
typedef struct {
    Glassbox__Explanation x;
    Glassbox__ClassAttribution cls[N_CLASSES], *cls_p[N_CLASSES];
    Glassbox__Tensor t[N_CLASSES];
    uint32_t shape[3];
    uint8_t data[N_CLASSES][16];
} t_agg_t;

static void t_agg(t_agg_t *a)
{
    static const uint32_t idx[N_CLASSES] = {7, 9, 12};
    static const float v[4] = {0.5f, -0.25f, 1.0f, 0.0f};
    glassbox__explanation__init(&a->x);
    a->x.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    a->x.round = 4;
    a->x.count = 12;
    a->shape[0] = 1;
    a->shape[1] = 2;
    a->shape[2] = 2;
    for (int i = 0; i < N_CLASSES; i++) {
        glassbox__tensor__init(&a->t[i]);
        a->t[i].n_shape = 3;
        a->t[i].shape = a->shape;
        memcpy(a->data[i], v, sizeof v); /* little-endian hosts: the wire's order */
        a->t[i].data.len = sizeof v;
        a->t[i].data.data = a->data[i];
        glassbox__class_attribution__init(&a->cls[i]);
        a->cls[i].class_index = idx[i];
        a->cls[i].count = 4;
        a->cls[i].mean_attribution = &a->t[i];
        a->cls_p[i] = &a->cls[i];
    }
    a->x.n_classes = N_CLASSES;
    a->x.classes = a->cls_p;
}

static char *t_read(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    if (gb_file_read_all(path, 1 << 20, &data, &len, &err))
        fail_msg("%s", err.msg);
    return (char *)data;
}

/* Width of the PNG at path (its IHDR). */
static unsigned t_png_width(const char *path)
{
    unsigned char *p = (unsigned char *)t_read(path);
    unsigned w = (unsigned)p[16] << 24 | (unsigned)p[17] << 16 | (unsigned)p[18] << 8 | p[19];
    gb_free(p);
    return w;
}

/* Writes the report of a with names into base/sub; returns the JSON parsed
 * with jansson (the caller json_decrefs it). */
static json_t *t_write_opts(const char *base, const char *sub, const t_agg_t *a,
                            const gb_explain_report_opts_t *opts)
{
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", base, sub);
    gb_error_t err = {0};
    if (gb_explain_report_write_named(dir, 4, &a->x, NULL, 0, opts, &err))
        fail_msg("report: %s", err.msg);
    snprintf(path, sizeof path, "%s/explanation-4.json", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc)
        fail_msg("%s is not JSON: %s", path, jerr.text);
    return doc;
}

/* t_write_opts with names only (no weak marking). */
static json_t *t_write(const char *base, const char *sub, const t_agg_t *a,
                       const gb_class_names_t *names)
{
    gb_explain_report_opts_t opts = {names, 0};
    return t_write_opts(base, sub, a, &opts);
}

/* Class object i of the report (classes 7, 9, 12 in that order) has the
 * keys of the unnamed report in their order, then "class_name" == want. */
static void t_named(const json_t *doc, size_t i, const char *want)
{
    static const char *const keys[] = {"class", "count", "min", "max", "mean", "mean_abs",
                                       "l2", "max_abs_cell", "heatmap", "class_name",
                                       "clients", "samples", "weakly_explained"};
    static const int cls[N_CLASSES] = {7, 9, 12};
    json_t *c = json_array_get(json_object_get(doc, "classes"), i);
    assert_non_null(c);
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v) {
        assert_true(k < sizeof keys / sizeof *keys);
        assert_string_equal(key, keys[k++]);
    }
    assert_int_equal(k, sizeof keys / sizeof *keys);
    assert_int_equal(json_integer_value(json_object_get(c, "class")), cls[i]);
    char png[64];
    snprintf(png, sizeof png, "explanation-4-class-%d.png", cls[i]);
    assert_string_equal(json_string_value(json_object_get(c, "heatmap")), png);
    assert_string_equal(json_string_value(json_object_get(c, "class_name")), want);
}

static void test_fashion_names(void **state)
{
    (void)state;
    char *base = gb_test_mkdtemp();
    t_agg_t a;
    t_agg(&a);
    gb_error_t err = {0};
    gb_class_names_t *names = gb_class_names_builtin("fashion-mnist", 10, &err);
    json_t *doc = t_write(base, "fashion", &a, names);
    /* the keys before class_name as they were; class 12 is beyond the list */
    json_t *c7 = json_array_get(json_object_get(doc, "classes"), 0);
    assert_int_equal(json_integer_value(json_object_get(c7, "count")), 4);
    assert_true(json_real_value(json_object_get(c7, "min")) == -0.25);
    assert_true(json_real_value(json_object_get(c7, "max")) == 1);
    t_named(doc, 0, "Sneaker");
    t_named(doc, 1, "Ankle boot");
    t_named(doc, 2, "class 12");
    json_decref(doc);
    gb_class_names_destroy(&names);
    gb_test_rmtree(base);
    free(base);
}

static void test_no_names(void **state)
{
    (void)state;
    char *base = gb_test_mkdtemp();
    t_agg_t a;
    t_agg(&a);
    json_t *doc = t_write(base, "none", &a, NULL);
    t_named(doc, 0, "class 7");
    t_named(doc, 2, "class 12");
    json_decref(doc);
    /* the unnamed entry point writes the same report */
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/plain", base);
    gb_error_t err = {0};
    assert_int_equal(gb_explain_report_write(dir, 4, &a.x, NULL, 0, &err), 0);
    snprintf(path, sizeof path, "%s/explanation-4.json", dir);
    char *plain = t_read(path);
    snprintf(path, sizeof path, "%s/none/explanation-4.json", base);
    char *none = t_read(path);
    assert_string_equal(plain, none);
    gb_free(plain);
    gb_free(none);
    /* errors are those of the unnamed report */
    assert_int_equal(gb_explain_report_write_named(dir, 5, &a.x, NULL, 0, NULL, &err),
                     GB_EINVAL);
    gb_explain_report_opts_t opts = {NULL, 3};
    assert_int_equal(gb_explain_report_write_named(dir, 5, &a.x, NULL, 0, &opts, &err),
                     GB_EINVAL);
    assert_int_equal(gb_explain_report_write_named(NULL, 4, &a.x, NULL, 0, NULL, &err),
                     GB_EINVAL);
    gb_test_rmtree(base);
    free(base);
}

static void test_names_from_a_file(void **state)
{
    (void)state;
    char *base = gb_test_mkdtemp();
    t_agg_t a;
    t_agg(&a);
    /* ten classes named; a name needing escapes; class 7's name is long
     * enough to widen its heatmap's title; class 12 lies beyond the list */
    char text[2048];
    size_t n = 0;
    for (int k = 0; k < 10; k++) {
        if (k == 7)
            n += (size_t)snprintf(text + n, sizeof text - n,
                                  "a \"quoted\" \\ name of sixty-four bytes, long for a title\n");
        else
            n += (size_t)snprintf(text + n, sizeof text - n, "n%d\n", k);
    }
    char *path = gb_test_write_file(base, "names.txt", text, n);
    gb_error_t err = {0};
    gb_class_names_t *names = gb_class_names_load(path, 10, &err);
    assert_non_null(names);
    assert_int_equal(gb_class_names_named(names), 10);
    json_t *doc = t_write(base, "file", &a, names);
    t_named(doc, 0, "a \"quoted\" \\ name of sixty-four bytes, long for a title");
    t_named(doc, 1, "n9");
    t_named(doc, 2, "class 12");
    json_decref(doc);
    /* the name is in the title: class 7's picture is wider than without names */
    char png[1200];
    snprintf(png, sizeof png, "%s/file/explanation-4-class-7.png", base);
    unsigned named = t_png_width(png);
    json_decref(t_write(base, "plain", &a, NULL));
    snprintf(png, sizeof png, "%s/plain/explanation-4-class-7.png", base);
    unsigned unnamed = t_png_width(png);
    assert_true(named > unnamed);
    /* class 12 has no name: its title is the same as without names */
    snprintf(png, sizeof png, "%s/file/explanation-4-class-12.png", base);
    unsigned a12 = t_png_width(png);
    snprintf(png, sizeof png, "%s/plain/explanation-4-class-12.png", base);
    assert_int_equal(a12, t_png_width(png));
    gb_class_names_destroy(&names);
    free(path);
    gb_test_rmtree(base);
    free(base);
}

/* Class object i's support: clients, samples, weakly_explained. */
static void t_support(const json_t *doc, size_t i, int clients, int samples, bool weak)
{
    json_t *c = json_array_get(json_object_get(doc, "classes"), i);
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(c, "clients")), clients);
    assert_int_equal(json_integer_value(json_object_get(c, "samples")), samples);
    assert_true(json_is_boolean(json_object_get(c, "weakly_explained")));
    assert_int_equal(json_is_true(json_object_get(c, "weakly_explained")), weak);
}

static void test_class_support(void **state)
{
    (void)state;
    char *base = gb_test_mkdtemp();
    t_agg_t a;
    t_agg(&a);
    /* by hand: class 7 from 1 client (4 samples), class 9 from 2 (30), class
     * 12 from 3 (100) */
    a.cls[0].clients = 1;
    a.cls[1].clients = 2;
    a.cls[1].count = 30;
    a.cls[2].clients = 3;
    a.cls[2].count = 100;
    gb_error_t err = {0};
    gb_class_names_t *names = gb_class_names_builtin("fashion-mnist", 10, &err);
    /* threshold 3: fewer than 3 is weak, 3 is not */
    gb_explain_report_opts_t opts = {names, 3};
    json_t *doc = t_write_opts(base, "min3", &a, &opts);
    t_support(doc, 0, 1, 4, true);
    t_support(doc, 1, 2, 30, true);
    t_support(doc, 2, 3, 100, false);
    assert_int_equal(json_integer_value(json_object_get(doc, "min_class_clients")), 3);
    /* classes 0..9 but 7 and 9 nobody explained: listed by name, in order
     * (12 is beyond the names list and explained) */
    json_t *un = json_object_get(doc, "unexplained_classes");
    assert_int_equal(json_array_size(un), 8);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(un, 0), "class")), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(un, 0), "class_name")),
                        "T-shirt/top");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(un, 7), "class")), 8);
    assert_string_equal(json_string_value(json_object_get(json_array_get(un, 7), "class_name")),
                        "Bag");
    /* the last keys of the document, after "distance" */
    const char *key, *last2 = NULL, *last1 = NULL;
    json_t *v;
    json_object_foreach(doc, key, v) {
        last2 = last1;
        last1 = key;
    }
    assert_string_equal(last2, "min_class_clients");
    assert_string_equal(last1, "unexplained_classes");
    json_decref(doc);
    /* threshold 2: only the one-client class is weak */
    opts.min_class_clients = 2;
    doc = t_write_opts(base, "min2", &a, &opts);
    t_support(doc, 0, 1, 4, true);
    t_support(doc, 1, 2, 30, false);
    json_decref(doc);
    /* 0 and 1 turn the marking off */
    for (uint32_t off = 0; off < 2; off++) {
        opts.min_class_clients = off;
        doc = t_write_opts(base, off ? "min1" : "min0", &a, &opts);
        for (size_t i = 0; i < N_CLASSES; i++)
            assert_false(json_is_true(json_object_get(
                json_array_get(json_object_get(doc, "classes"), i), "weakly_explained")));
        json_decref(doc);
    }
    assert_true(gb_explain_report_is_weak(0, 2));
    assert_true(gb_explain_report_is_weak(1, 2));
    assert_false(gb_explain_report_is_weak(2, 2));
    assert_false(gb_explain_report_is_weak(0, 1));
    assert_false(gb_explain_report_is_weak(0, 0));
    /* a weak class's title says so: "1 client: weak" is wider than
     * "1 client" (the same class, the same counts) */
    char png[1200];
    snprintf(png, sizeof png, "%s/min2/explanation-4-class-7.png", base);
    unsigned weak = t_png_width(png);
    snprintf(png, sizeof png, "%s/min1/explanation-4-class-7.png", base);
    assert_true(weak > t_png_width(png));
    /* no names list: nothing to call unexplained */
    opts.names = NULL;
    doc = t_write_opts(base, "nonames", &a, &opts);
    assert_int_equal(json_array_size(json_object_get(doc, "unexplained_classes")), 0);
    json_decref(doc);
    gb_class_names_destroy(&names);
    gb_test_rmtree(base);
    free(base);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_names),
        cmocka_unit_test(test_no_names),
        cmocka_unit_test(test_names_from_a_file),
        cmocka_unit_test(test_class_support),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
