/* The field checkers of net/envelope_check.h, each on both sides of each
 * of its bounds (test_envelope.c and the fuzz targets reach them through
 * whole messages; here every one is called directly). */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "net/envelope_check.h"

static void test_fail_count_max_enum(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_int_equal(gb_check_fail(&err, GB_ERANGE, "a.b", "is %d", 7), GB_ERANGE);
    assert_string_equal(err.msg, "a.b: is 7");
    assert_int_equal(gb_check_count(&err, "round", 1), 0);
    assert_int_equal(gb_check_count(&err, "round", 0), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "round"));
    assert_int_equal(gb_check_max(&err, "n", 5, 5), 0);
    assert_int_equal(gb_check_max(&err, "n", 6, 5), GB_EINVAL);
    assert_int_equal(gb_check_enum(&err, "method", 0, 0, 5), 0);
    assert_int_equal(gb_check_enum(&err, "method", 5, 0, 5), 0);
    assert_int_equal(gb_check_enum(&err, "method", 6, 0, 5), GB_EINVAL);
    assert_int_equal(gb_check_enum(&err, "method", -1, 0, 5), GB_EINVAL);
}

static void test_text_and_name(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_int_equal(gb_check_text(&err, "t", "abc", 1, 3, false), 0);
    assert_int_equal(gb_check_text(&err, "t", NULL, 0, 3, false), 0); /* NULL reads as empty */
    assert_int_equal(gb_check_text(&err, "t", "", 1, 3, false), GB_EFORMAT);
    assert_int_equal(gb_check_text(&err, "t", "abcd", 1, 3, false), GB_ERANGE);
    assert_int_equal(gb_check_text(&err, "t", "a\tb", 1, 8, false), GB_EINVAL);
    assert_int_equal(gb_check_text(&err, "t", "a\tb", 1, 8, true), 0);
    assert_int_equal(gb_check_text(&err, "t", "a\x01", 1, 8, true), GB_EINVAL);
    assert_int_equal(gb_check_text(&err, "t", "caf\xc3\xa9", 1, 8, false), 0);
    assert_int_equal(gb_check_text(&err, "t", "caf\xc3", 1, 8, false), GB_EINVAL);
    assert_int_equal(gb_check_name(&err, "n", "client-1.a_b", 64, false, ""), 0);
    assert_int_equal(gb_check_name(&err, "n", "Client", 64, false, ""), GB_EINVAL);
    assert_int_equal(gb_check_name(&err, "n", "Client", 64, true, ""), 0);
    assert_int_equal(gb_check_name(&err, "n", "a:b", 64, false, ""), GB_EINVAL);
    assert_int_equal(gb_check_name(&err, "n", "a:b", 64, false, ":"), 0);
    assert_int_equal(gb_check_name(&err, "n", "abcd", 3, false, ""), GB_ERANGE);
    assert_int_not_equal(gb_check_name(&err, "n", "", 3, false, ""), 0);
}

static void test_blob_real_list(void **state)
{
    (void)state;
    gb_error_t err = {0};
    uint8_t bytes[4] = {1, 2, 3, 4};
    ProtobufCBinaryData b = {4, bytes}, none = {4, NULL}, empty = {0, NULL};
    assert_int_equal(gb_check_blob(&err, "b", b, 1, 4), 0);
    assert_int_not_equal(gb_check_blob(&err, "b", b, 5, 8), 0);
    assert_int_equal(gb_check_blob(&err, "b", b, 1, 3), GB_ERANGE);
    assert_int_not_equal(gb_check_blob(&err, "b", none, 1, 8), 0); /* length without data */
    assert_int_equal(gb_check_blob(&err, "b", empty, 0, 8), 0);
    assert_int_equal(gb_check_real(&err, "r", 0.0, 0.0, 1.0, false), 0);
    assert_int_equal(gb_check_real(&err, "r", 1.0, 0.0, 1.0, false), 0);
    assert_int_equal(gb_check_real(&err, "r", 1.0, 0.0, 1.0, true), GB_EINVAL);
    assert_int_equal(gb_check_real(&err, "r", -1e-300, 0.0, 1.0, false), GB_EINVAL);
    assert_int_equal(gb_check_real(&err, "r", NAN, 0.0, 1.0, false), GB_EINVAL);
    assert_int_equal(gb_check_real(&err, "r", INFINITY, 0.0, INFINITY, false), GB_EINVAL);
    int items[2];
    assert_int_equal(gb_check_list(&err, "l", 2, items, 2), 0);
    assert_int_equal(gb_check_list(&err, "l", 3, items, 2), GB_ERANGE);
    assert_int_equal(gb_check_list(&err, "l", 1, NULL, 2), GB_EFORMAT);
    assert_int_equal(gb_check_list(&err, "l", 0, NULL, 2), 0);
}

static void test_metrics_and_capabilities(void **state)
{
    (void)state;
    gb_error_t err = {0};
    Glassbox__Metric m1 = GLASSBOX__METRIC__INIT, m2 = GLASSBOX__METRIC__INIT;
    m1.name = "accuracy/class_3";
    m1.value = 0.5;
    m2.name = "loss";
    m2.value = 1.0;
    Glassbox__Metric *ms[] = {&m1, &m2};
    assert_int_equal(gb_check_metrics(&err, "u.metrics", 2, ms), 0);
    m2.value = NAN;
    assert_int_not_equal(gb_check_metrics(&err, "u.metrics", 2, ms), 0);
    m2.value = 1.0;
    m2.name = "lo ss";
    assert_int_not_equal(gb_check_metrics(&err, "u.metrics", 2, ms), 0);
    assert_int_equal(gb_check_metrics(&err, "u.metrics", GB_ENVELOPE_MAX_METRICS + 1, ms),
                     GB_ERANGE);

    Glassbox__KeyValue k1 = GLASSBOX__KEY_VALUE__INIT, k2 = GLASSBOX__KEY_VALUE__INIT;
    k1.key = "engine";
    k1.value = "glassbox 0.1";
    k2.key = "engine";
    k2.value = "x";
    Glassbox__KeyValue *kv[] = {&k1, &k2};
    assert_int_equal(gb_check_capabilities(&err, "j.caps", 1, kv), 0);
    assert_int_not_equal(gb_check_capabilities(&err, "j.caps", 2, kv), 0); /* repeated key */
    k2.key = "Engine";
    assert_int_not_equal(gb_check_capabilities(&err, "j.caps", 2, kv), 0);
    assert_int_equal(gb_check_capabilities(&err, "j.caps", GB_ENVELOPE_MAX_KV + 1, kv),
                     GB_ERANGE);
}

static void test_tensor_and_classes(void **state)
{
    (void)state;
    gb_error_t err = {0};
    float v[6] = {1, 2, 3, 4, 5, 6};
    uint32_t shape[2] = {2, 3}, other[2] = {3, 2};
    Glassbox__Tensor t = GLASSBOX__TENSOR__INIT;
    t.n_shape = 2;
    t.shape = shape;
    t.data.len = sizeof v;
    t.data.data = (uint8_t *)v;
    assert_int_equal(gb_check_tensor(&err, "t", &t, NULL, 0), 0);
    assert_int_equal(gb_check_tensor(&err, "t", &t, shape, 2), 0);
    assert_int_equal(gb_check_tensor(&err, "t", &t, other, 2), GB_ESHAPE);
    t.data.len = 5 * sizeof(float); /* 2 x 3 needs 24 bytes */
    assert_int_not_equal(gb_check_tensor(&err, "t", &t, NULL, 0), 0);
    t.data.len = sizeof v;
    v[4] = NAN;
    assert_int_not_equal(gb_check_tensor(&err, "t", &t, NULL, 0), 0);
    v[4] = 5;
    uint32_t zero[2] = {2, 0};
    t.shape = zero;
    assert_int_not_equal(gb_check_tensor(&err, "t", &t, NULL, 0), 0);

    gb_check_classes_t seen = {{0}};
    assert_int_equal(gb_check_class(&err, "c", &seen, 0), 0);
    assert_int_equal(gb_check_class(&err, "c", &seen, GB_ENVELOPE_MAX_CLASSES - 1), 0);
    assert_int_equal(gb_check_class(&err, "c", &seen, 0), GB_EINVAL); /* repeated */
    assert_int_equal(gb_check_class(&err, "c", &seen, GB_ENVELOPE_MAX_CLASSES), GB_EINVAL);
}

static void test_model_explanation_unknown(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_int_equal(gb_check_model("task.model", NULL, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "task.model"));
    Glassbox__Explanation x = GLASSBOX__EXPLANATION__INIT;
    x.method = (Glassbox__ExplainMethod)99;
    assert_int_not_equal(gb_check_explanation(&x, "update.explanation", 0, &err), 0);
    x.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    /* neither classes nor a feature importance */
    assert_int_not_equal(gb_check_explanation(&x, "update.explanation", 0, &err), 0);
    Glassbox__Metric m = GLASSBOX__METRIC__INIT;
    assert_int_equal(gb_check_unknown_fields(&m.base, &err), 0);
}

/* A class's clients: none in a client's own explanation, at most the
 * allowed number and the class's count in an aggregate. */
static void test_explanation_class_clients(void **state)
{
    (void)state;
    gb_error_t err = {0};
    static const float v[2] = {1, 2};
    static const uint32_t shape[1] = {2};
    gb_test_explanation_t e;
    gb_test_explanation_one(&e, GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY, 3, 5, v, shape, 1);
    Glassbox__Explanation *x = &e.x;
    Glassbox__ClassAttribution *c = &e.c;
    assert_int_equal(gb_check_explanation(x, "update.explanation", 0, &err), 0);
    c->clients = 1; /* a client claims support: not its field */
    assert_int_equal(gb_check_explanation(x, "update.explanation", 0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "update.explanation.classes[0].clients"));
    c->clients = 4;
    assert_int_equal(gb_check_explanation(x, "p.explanation", 4, &err), 0);
    c->clients = 5; /* one past the allowed clients, within the count */
    assert_int_equal(gb_check_explanation(x, "p.explanation", 4, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "allowed"));
    c->clients = 5;
    assert_int_equal(gb_check_explanation(x, "p.explanation", 100, &err), 0);
    c->clients = 6; /* more clients than samples: each has at least one */
    assert_int_equal(gb_check_explanation(x, "p.explanation", 100, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "count"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_count_max_enum),
        cmocka_unit_test(test_text_and_name),
        cmocka_unit_test(test_blob_real_list),
        cmocka_unit_test(test_metrics_and_capabilities),
        cmocka_unit_test(test_tensor_and_classes),
        cmocka_unit_test(test_model_explanation_unknown),
        cmocka_unit_test(test_explanation_class_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
