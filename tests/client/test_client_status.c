/* Tests for client/client_status: the /status document carries the
 * daemon's fields, /healthz turns unhealthy only after the grace without a
 * Welcome, and publish mirrors the counters into the metrics registry
 * without counting twice. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client_status.h"
#include "util/metrics.h"

static gb_daemon_status_t s_status(void)
{
    gb_daemon_status_t st;
    memset(&st, 0, sizeof st);
    snprintf(st.client_id, sizeof st.client_id, "edge-7");
    st.connected = st.welcomed = true;
    st.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING;
    st.sessions = 2;
    st.last_round = 41;
    st.tasks_done = 40;
    st.results_pending = 1;
    return st;
}

static void test_json(void **state)
{
    (void)state;
    gb_daemon_status_t st = s_status();
    gb_error_t err = {0};
    char *doc = gb_client_status_json(&st, &err);
    assert_non_null(doc);
    json_error_t jerr;
    json_t *o = json_loads(doc, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "edge-7");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "training");
    assert_true(json_is_true(json_object_get(o, "welcomed")));
    assert_int_equal(json_integer_value(json_object_get(o, "last_round")), 41);
    assert_int_equal(json_integer_value(json_object_get(o, "tasks_done")), 40);
    json_decref(o);
    free(doc);
    /* an id that is not UTF-8 is written as every name is (util/json.h) */
    snprintf(st.client_id, sizeof st.client_id, "edge-\xff");
    doc = gb_client_status_json(&st, &err);
    assert_non_null(doc);
    o = json_loads(doc, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "edge-\xef\xbf\xbd");
    json_decref(o);
    free(doc);
}

static void test_health(void **state)
{
    (void)state;
    gb_daemon_status_t st = s_status();
    char why[128];
    assert_false(gb_client_status_unhealthy(&st, 1e6, why, sizeof why)); /* welcomed */
    assert_string_equal(why, "");
    st.welcomed = false;
    assert_false(gb_client_status_unhealthy(&st, GB_CLIENT_STATUS_GRACE_S - 1, why, sizeof why));
    assert_true(gb_client_status_unhealthy(&st, GB_CLIENT_STATUS_GRACE_S + 5, why, sizeof why));
    assert_non_null(strstr(why, "not welcomed by the coordinator for 65 s"));
}

static void test_publish_metrics(void **state)
{
    (void)state;
    gb_metrics_reset();
    gb_daemon_status_t st = s_status();
    gb_client_status_publish(NULL, &st, 0);
    gb_client_status_publish(NULL, &st, 0); /* the same counts: nothing added */
    assert_true(gb_metrics_value("glassbox_client_tasks_done_total", NULL, NULL) == 40);
    assert_true(gb_metrics_value("glassbox_client_connected", NULL, NULL) == 1);
    st.tasks_done = 45;
    st.connected = false;
    gb_client_status_publish(NULL, &st, 0);
    assert_true(gb_metrics_value("glassbox_client_tasks_done_total", NULL, NULL) == 45);
    assert_true(gb_metrics_value("glassbox_client_connected", NULL, NULL) == 0);
    assert_true(gb_metrics_value("glassbox_client_last_round", NULL, NULL) == 41);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_publish_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
