/* Tests of client/virtual_clients.c: N daemons in one process against the
 * real coordinator (front door and federation) in this thread, on small
 * synthetic data (gb_test_blobs) and a small MLP. What
 * they prove: the options are checked by name (counts, slices, certificate
 * files) before anything connects; three virtual clients join under their
 * own certificates, each trains its own slice (the round's samples add up
 * to the whole training split), every finished task is reported with the
 * client's name, the three tasks train one after another on the shared run
 * queue (no two reports' run times overlap, and the queue never ran two at
 * once), and when the federation ends every client finishes and the step
 * says so; stop and destroy are safe at any time. An idle step waits in its
 * poll instead of returning at once. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "data_source.h"
#include "federation.h"
#include "front_door.h"
#include "net/pki.h"
#include "util/rng.h"
#include "util/time.h"
#include "virtual_clients.h"

enum { N_TRAIN = 90, N_TEST = 30, CLIENTS = 3 };

typedef struct {
    char *base, ca[600], certs[600], ca_file[700], spec[700];
    void *ctx;
    gb_dataset_t *train, *test;
    gb_data_source_t data;
    int reports;
    uint64_t samples;
    char seen[CLIENTS][32];
    double start[CLIENTS], end[CLIENTS]; /* each task's run, gb_time_now() */
} fixture_t;

static void s_report(void *arg, const char *name, const gb_daemon_task_report_t *r)
{
    fixture_t *f = arg;
    assert_true(f->reports < CLIENTS);
    f->start[f->reports] = r->started;
    f->end[f->reports] = r->started + r->seconds;
    assert_true(r->started > 0 && r->queued_seconds >= 0);
    snprintf(f->seen[f->reports++], sizeof f->seen[0], "%s", name);
    assert_true(r->trained);
    f->samples += r->samples;
}

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->base = gb_test_mkdtemp();
    snprintf(f->ca, sizeof f->ca, "%s/ca", f->base);
    snprintf(f->certs, sizeof f->certs, "%s/certs", f->base);
    snprintf(f->ca_file, sizeof f->ca_file, "%s/%s", f->ca, GB_CA_CERT_FILE);
    gb_test_ca_make(f->ca, "virtual", f->certs, "client-", 0, CLIENTS);
    free(gb_test_write_file(f->base, "mlp.spec", "input 1 4 4\nflatten\ndense 8\nrelu\ndense 3\n",
                            41));
    snprintf(f->spec, sizeof f->spec, "%s/mlp.spec", f->base);
    f->ctx = zmq_ctx_new();
    f->train = gb_test_blobs(N_TRAIN, 1);
    f->test = gb_test_blobs(N_TEST, 2);
    f->data = gb_data_source_defaults();
    f->data.clients = CLIENTS;
    f->data.index = 0;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_dataset_destroy(&f->train);
    gb_dataset_destroy(&f->test);
    zmq_ctx_term(f->ctx);
    gb_test_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

static gb_virtual_options_t s_options(fixture_t *f, const char *endpoint, int count)
{
    gb_virtual_options_t o = {.zmq_ctx = f->ctx,
                              .endpoint = endpoint,
                              .cert_dir = f->certs,
                              .ca_file = f->ca_file,
                              .server_name = "localhost",
                              .count = count,
                              .data = &f->data,
                              .train = f->train,
                              .test = f->test,
                              .threads = 1,
                              .retry_ms = 20,
                              .retry_max_ms = 100,
                              .report = s_report,
                              .report_arg = f};
    return o;
}

static void test_options_checked(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_virtual_options_t o = s_options(f, "tcp://127.0.0.1:1", CLIENTS);
    assert_int_equal(gb_virtual_check(&o, &err), 0);
    o.count = 0;
    assert_true(gb_virtual_check(&o, &err) < 0);
    o.count = CLIENTS + 1; /* more clients than slices */
    assert_int_equal(gb_virtual_check(&o, &err), GB_EUSAGE);
    assert_non_null(strstr(err.msg, "--clients"));
    assert_null(gb_virtual_new(&o, &err));
    o.count = CLIENTS;
    o.name_prefix = "edge-"; /* no such certificates */
    assert_int_equal(gb_virtual_check(&o, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "edge-0.crt"));
    assert_null(gb_virtual_new(&o, &err));
    assert_null(gb_virtual_new(&o, NULL)); /* err may be NULL */

    /* certificates that exist but do not parse: the first daemon fails,
     * named, and with err NULL nothing reads the missing buffer */
    o.name_prefix = "junk-";
    for (int k = 0; k < CLIENTS; k++) {
        char name[32];
        snprintf(name, sizeof name, "junk-%d.crt", k);
        free(gb_test_write_file(f->certs, name, "not a certificate\n", 18));
        snprintf(name, sizeof name, "junk-%d.key", k);
        free(gb_test_write_file(f->certs, name, "not a key\n", 10));
    }
    assert_int_equal(gb_virtual_check(&o, &err), 0);
    assert_null(gb_virtual_new(&o, NULL));
    gb_error_clear(&err);
    assert_null(gb_virtual_new(&o, &err));
    assert_non_null(strstr(err.msg, "junk-0"));
    gb_virtual_destroy(NULL);
}

static void test_a_round_with_three_virtual_clients(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    gb_front_door_options_t fo = {.ca_dir = f->ca, .listen = "tcp://127.0.0.1:*",
                                  .federation = "virtual"};
    gb_front_door_t *door = gb_front_door_new(f->ctx, &fo, &err);
    assert_non_null(door);
    gb_federation_options_t o = {0};
    o.model = f->spec;
    gb_rounds_config_default(&o.rounds);
    o.rounds.min_clients = CLIENTS;
    o.rounds.min_per_round = CLIENTS;
    o.rounds.quorum = CLIENTS;
    o.rounds.total_rounds = 1;
    o.rounds.deadline_ms = 60000;
    glassbox__train_config__init(&o.train);
    o.train.epochs = 20; /* long enough that tasks run at once would overlap */
    o.train.batch_size = 8;
    o.train.learning_rate = 0.1;
    o.train.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_SGD;
    o.explain = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE;
    gb_federation_t *fed = gb_federation_new(f->ctx, door, &o, &err);
    if (!fed)
        fail_msg("federation: %s", err.msg);

    gb_virtual_options_t vo = s_options(f, gb_front_door_endpoint(door), CLIENTS);
    gb_virtual_t *v = gb_virtual_new(&vo, &err);
    if (!v)
        fail_msg("virtual: %s", err.msg);
    assert_int_equal(gb_virtual_count(v), CLIENTS);
    assert_string_equal(gb_virtual_name(v, 0), "client-0");
    assert_string_equal(gb_virtual_name(v, 2), "client-2");
    int rc = 0;
    double end = gb_time_now() + 60;
    while (rc != GB_DAEMON_FINISHED && gb_time_now() < end) {
        assert_int_equal(gb_federation_step(fed, 1, &err), 0);
        rc = gb_virtual_step(v, 5);
        assert_true(rc == 0 || rc == GB_DAEMON_FINISHED);
    }
    assert_int_equal(rc, GB_DAEMON_FINISHED);
    assert_true(gb_federation_finished(fed));
    assert_int_equal(gb_federation_round(fed), 1);
    assert_int_equal(gb_virtual_failed(v), 0);
    assert_int_equal(f->reports, CLIENTS);
    assert_int_equal(f->samples, N_TRAIN); /* three disjoint slices covering the split */
    /* one task at a time: every two runs are disjoint */
    for (int i = 0; i < CLIENTS; i++)
        for (int j = 0; j < CLIENTS; j++)
            if (i != j)
                assert_true(f->end[i] <= f->start[j] || f->end[j] <= f->start[i]);
    gb_daemon_queue_stats_t qs = gb_virtual_queue_stats(v);
    assert_int_equal(qs.most_running, 1);
    assert_int_equal(qs.finished, CLIENTS);
    assert_int_equal(qs.waiting + qs.running, 0);
    for (int k = 0; k < CLIENTS; k++) {
        char name[32];
        snprintf(name, sizeof name, "client-%d", k);
        bool found = false;
        for (int i = 0; i < CLIENTS; i++)
            found |= strcmp(f->seen[i], name) == 0;
        assert_true(found);
    }
    gb_virtual_stop(v, 100);
    gb_virtual_stop(v, 100); /* safe twice */
    assert_int_equal(gb_virtual_step(v, 10), GB_DAEMON_FINISHED);
    gb_virtual_destroy(&v);
    gb_virtual_destroy(&v); /* NULL-safe */
    gb_federation_destroy(&fed);
    gb_front_door_destroy(&door);
}

/* Clients with no coordinator to talk to have nothing to do between their
 * reconnection attempts: a step waits in its poll (for the next attempt or
 * the timeout) instead of returning at once, and a zero timeout does not
 * wait. */
static void test_idle_step_waits(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    /* a port nobody listens on: handshakes wait for a connection */
    gb_virtual_options_t vo = s_options(f, "tcp://127.0.0.1:1", CLIENTS);
    vo.retry_ms = 5000;
    vo.retry_max_ms = 5000;
    gb_virtual_t *v = gb_virtual_new(&vo, &err);
    if (!v)
        fail_msg("virtual: %s", err.msg);
    assert_int_equal(gb_virtual_step(v, 0), 0); /* the first handshakes start */
    int steps = 0;
    double t0 = gb_time_now();
    while (gb_time_now() - t0 < 0.2) {
        assert_int_equal(gb_virtual_step(v, 50), 0);
        steps++;
    }
    /* a loop that polled without waiting would have made thousands */
    assert_true(steps <= 20);
    assert_int_equal(gb_virtual_failed(v), 0);
    gb_virtual_stop(v, 0);
    gb_virtual_destroy(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_options_checked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_a_round_with_three_virtual_clients, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_idle_step_waits, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
