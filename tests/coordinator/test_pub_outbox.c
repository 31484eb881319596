/* Tests for coordinator/pub_outbox: a round written at once (signature,
 * publication, certificate); a round whose directory cannot take it is kept,
 * counted in the metrics, kept in the state directory, retried with a backoff
 * and written once the directory is back; rounds retried in order, stopping
 * at the first failure; a new outbox (a restarted coordinator) writes what
 * the last one left in the state directory and removes the state file; a
 * damaged state file is removed with a log line; temporary files an
 * interrupted write left are removed at start, files of others are not; the
 * bound on waiting rounds gives up the oldest. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glassbox.pb-c.h"
#include "net/pki.h"
#include "net/signing.h"
#include "pub_outbox.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/metrics.h"
#include "util/time.h"

typedef struct {
    char *base;
    char out[600], state[600];
    gb_signer_t *signer;
} fix_t;

static int s_setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    gb_error_t err = {0};
    f->base = gb_test_mkdtemp();
    char ca[600], key[700], cert[700];
    snprintf(ca, sizeof ca, "%s/ca", f->base);
    assert_int_equal(gb_ca_init(ca, "fed", "coordinator.test", 30, &err), 0);
    snprintf(key, sizeof key, "%s/%s", ca, GB_CA_COORD_KEY_FILE);
    snprintf(cert, sizeof cert, "%s/%s", ca, GB_CA_COORD_CERT_FILE);
    assert_non_null(f->signer = gb_signer_load(key, cert, &err));
    snprintf(f->out, sizeof f->out, "%s/out", f->base);
    snprintf(f->state, sizeof f->state, "%s/state", f->base);
    assert_int_equal(mkdir(f->out, 0755), 0);
    assert_int_equal(mkdir(f->state, 0700), 0);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fix_t *f = *state;
    gb_signer_destroy(&f->signer);
    gb_test_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

/* A packed Publication of `round` without an explanation. */
static uint8_t *s_pub(uint64_t round, size_t *len)
{
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    p.round = round;
    p.participants = 3;
    p.aggregator = "fedavg";
    *len = glassbox__publication__get_packed_size(&p);
    uint8_t *b = malloc(*len);
    glassbox__publication__pack(&p, b);
    return b;
}

static bool s_has(const char *dir, const char *name)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return gb_test_exists(path);
}

/* Makes the output directory unwritable for us, root included: it becomes
 * a file, so every write under it fails with ENOTDIR. */
static void s_break(const fix_t *f)
{
    char aside[700];
    snprintf(aside, sizeof aside, "%s.aside", f->out);
    assert_int_equal(rename(f->out, aside), 0);
    FILE *fp = fopen(f->out, "w");
    assert_non_null(fp);
    fclose(fp);
}

static void s_mend(const fix_t *f)
{
    char aside[700];
    snprintf(aside, sizeof aside, "%s.aside", f->out);
    assert_int_equal(unlink(f->out), 0);
    assert_int_equal(rename(aside, f->out), 0);
}

static void test_written_at_once(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, f->state, f->signer, 100, &err);
    assert_non_null(ob);
    size_t len;
    uint8_t *b = s_pub(1, &len);
    assert_int_equal(gb_pub_outbox_put(ob, 1, b, len, &err), 0);
    assert_true(s_has(f->out, "round-000001.pub"));
    assert_true(s_has(f->out, "round-000001.sig"));
    assert_true(s_has(f->out, "coordinator.crt"));
    assert_int_equal(gb_pub_outbox_waiting(ob, NULL, NULL), 0);
    assert_false(s_has(f->state, "unpublished-000001.pb"));
    free(b);
    gb_pub_outbox_destroy(&ob);
    assert_null(ob);
    gb_pub_outbox_destroy(&ob); /* NULL-safe */
}

/* set_report: the explanation report of a round put afterwards carries the
 * names and the weak marking it was given. */
static void test_report_options(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, NULL, f->signer, 0, &err);
    assert_non_null(ob);
    gb_class_names_t *names = gb_class_names_builtin("fashion-mnist", 10, &err);
    assert_non_null(names);
    gb_explain_report_opts_t opts = {names, 3};
    gb_pub_outbox_set_report(ob, &opts);
    static const float v[4] = {1, 0, -1, 0.5f};
    static const uint32_t shape[3] = {1, 2, 2};
    gb_test_explanation_t e;
    gb_test_explanation_one(&e, GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY, 7, 40, v, shape, 3);
    e.c.clients = 2;
    e.x.round = 2;
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    p.round = 2;
    p.participants = 2;
    p.aggregator = "fedavg";
    p.explanation = &e.x;
    size_t len = glassbox__publication__get_packed_size(&p);
    uint8_t *b = malloc(len);
    glassbox__publication__pack(&p, b);
    assert_int_equal(gb_pub_outbox_put(ob, 2, b, len, &err), 0);
    char path[800];
    snprintf(path, sizeof path, "%s/explanation-2.json", f->out);
    json_t *doc = gb_test_json_read(path);
    json_t *sneaker = gb_test_json_class(doc, "Sneaker");
    assert_int_equal(gb_test_json_int(sneaker, "clients"), 2);
    assert_true(json_is_true(json_object_get(sneaker, "weakly_explained")));
    assert_int_equal(gb_test_json_int(doc, "min_class_clients"), 3);
    json_decref(doc);
    free(b);
    gb_pub_outbox_destroy(&ob);
    gb_class_names_destroy(&names);
}

static void test_kept_retried_and_written(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, f->state, f->signer, 100, &err);
    assert_non_null(ob);
    assert_true(gb_pub_outbox_next_retry(ob) == HUGE_VAL); /* nothing waits: nothing timed */
    double failures = gb_metrics_value("glassbox_publication_failures_total", NULL, NULL);
    s_break(f);
    size_t len2, len3;
    uint8_t *b2 = s_pub(2, &len2), *b3 = s_pub(3, &len3);
    double before = gb_time_now();
    assert_int_equal(gb_pub_outbox_put(ob, 2, b2, len2, &err), GB_EIO);
    /* the first retry after the first backoff */
    double next = gb_pub_outbox_next_retry(ob);
    assert_true(next >= before + GB_PUB_OUTBOX_FIRST_RETRY_MS / 1000.0 &&
                next <= gb_time_now() + GB_PUB_OUTBOX_FIRST_RETRY_MS / 1000.0);
    assert_int_equal(gb_pub_outbox_put(ob, 3, b3, len3, NULL), GB_EIO); /* err may be NULL */
    assert_true(gb_pub_outbox_next_retry(ob) == next); /* the oldest round's time */
    uint64_t first = 0;
    const char *why = NULL;
    assert_int_equal(gb_pub_outbox_waiting(ob, &first, &why), 2);
    assert_int_equal(first, 2);
    assert_non_null(strstr(why, "out"));
    assert_true(s_has(f->state, "unpublished-000002.pb"));
    assert_true(s_has(f->state, "unpublished-000003.pb"));
    assert_true(gb_metrics_value("glassbox_publication_failures_total", NULL, NULL) >=
                failures + 2);
    assert_int_equal(gb_metrics_value("glassbox_publications_unwritten", NULL, NULL), 2);
    /* not due yet: nothing tried */
    assert_int_equal(gb_pub_outbox_retry(ob, gb_time_now()), 0);
    /* due, still broken: tried once, both still wait, the next try later */
    assert_int_equal(gb_pub_outbox_retry(ob, gb_time_now() + 3600), 0);
    assert_int_equal(gb_pub_outbox_waiting(ob, NULL, NULL), 2);
    assert_true(gb_pub_outbox_next_retry(ob) > next);
    /* mended: both written, in order, and their state files gone */
    s_mend(f);
    assert_int_equal(gb_pub_outbox_retry(ob, gb_time_now() + 3600), 2);
    assert_int_equal(gb_pub_outbox_waiting(ob, &first, NULL), 0);
    assert_int_equal(first, 0);
    assert_true(gb_pub_outbox_next_retry(ob) == HUGE_VAL);
    assert_true(s_has(f->out, "round-000002.pub") && s_has(f->out, "round-000002.sig"));
    assert_true(s_has(f->out, "round-000003.pub") && s_has(f->out, "round-000003.sig"));
    assert_false(s_has(f->state, "unpublished-000002.pb"));
    assert_false(s_has(f->state, "unpublished-000003.pb"));
    assert_int_equal(gb_metrics_value("glassbox_publications_unwritten", NULL, NULL), 0);
    free(b2);
    free(b3);
    gb_pub_outbox_destroy(&ob);
}

static void test_restart_writes_what_was_left(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, f->state, f->signer, 100, &err);
    s_break(f);
    size_t len;
    uint8_t *b = s_pub(4, &len);
    assert_int_equal(gb_pub_outbox_put(ob, 4, b, len, &err), GB_EIO);
    gb_pub_outbox_destroy(&ob); /* the coordinator stops with round 4 unwritten */
    s_mend(f);
    /* a damaged state file and leftovers of an interrupted write */
    free(gb_test_write_file(f->state, "unpublished-000009.pb", "garbage", 7));
    free(gb_test_write_file(f->out, ".round-000004.pub.tmp-AbC123", "x", 1));
    free(gb_test_write_file(f->out, ".explanation-4.json.tmp-q1w2e3", "x", 1));
    free(gb_test_write_file(f->out, ".someone-elses.tmp-zzzzzz", "x", 1));
    free(gb_test_write_file(f->out, ".index.html.tmp-r4p0rt", "x", 1));
    free(gb_test_write_file(f->out, ".history.json.tmp-h1st0r", "x", 1));
    ob = gb_pub_outbox_new(f->out, f->state, f->signer, 100, &err);
    assert_non_null(ob);
    assert_false(s_has(f->state, "unpublished-000009.pb")); /* removed, logged */
    assert_false(s_has(f->out, ".round-000004.pub.tmp-AbC123"));
    assert_false(s_has(f->out, ".explanation-4.json.tmp-q1w2e3"));
    assert_true(s_has(f->out, ".someone-elses.tmp-zzzzzz")); /* not ours */
    assert_false(s_has(f->out, ".index.html.tmp-r4p0rt"));     /* the report's */
    assert_false(s_has(f->out, ".history.json.tmp-h1st0r"));
    uint64_t first;
    assert_int_equal(gb_pub_outbox_waiting(ob, &first, NULL), 1);
    assert_int_equal(first, 4);
    assert_int_equal(gb_pub_outbox_retry(ob, gb_time_now()), 1);
    assert_true(s_has(f->out, "round-000004.pub"));
    assert_false(s_has(f->state, "unpublished-000004.pb"));
    free(b);
    gb_pub_outbox_destroy(&ob);
}

static void test_bound_and_memory_only(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    /* no state directory: kept in memory only */
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, NULL, f->signer, 100, &err);
    assert_non_null(ob);
    s_break(f);
    size_t len;
    for (uint64_t r = 1; r <= GB_PUB_OUTBOX_MAX_WAITING + 2; r++) {
        uint8_t *b = s_pub(r, &len);
        assert_int_equal(gb_pub_outbox_put(ob, r, b, len, &err), GB_EIO);
        free(b);
    }
    uint64_t first;
    assert_int_equal(gb_pub_outbox_waiting(ob, &first, NULL), GB_PUB_OUTBOX_MAX_WAITING);
    assert_int_equal(first, 3); /* the two oldest were given up */
    assert_true(gb_metrics_value("glassbox_publications_lost_total", NULL, NULL) >= 2);
    s_mend(f);
    gb_pub_outbox_destroy(&ob);
    assert_null(gb_pub_outbox_new(NULL, NULL, f->signer, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
}

/* Staged before the checkpoint: a new outbox (the coordinator restarted
 * after a crash) publishes the rounds up to the checkpointed one, hands the
 * newest out once to be sent again, and drops the later ones. */
static void test_staged_rounds_after_a_crash(void **state)
{
    fix_t *f = *state;
    gb_error_t err = {0};
    gb_pub_outbox_t *ob = gb_pub_outbox_new(f->out, f->state, f->signer, 4, &err);
    assert_non_null(ob);
    size_t len5, len6;
    uint8_t *b5 = s_pub(5, &len5), *b6 = s_pub(6, &len6);
    assert_int_equal(gb_pub_outbox_stage(ob, 5, b5, len5, &err), 0);
    assert_int_equal(gb_pub_outbox_stage(ob, 6, b6, len6, &err), 0);
    assert_true(s_has(f->state, "unpublished-000005.pb"));
    gb_pub_outbox_destroy(&ob); /* killed: round 5 checkpointed, round 6 not */
    ob = gb_pub_outbox_new(f->out, f->state, f->signer, 5, &err);
    assert_non_null(ob);
    assert_false(s_has(f->state, "unpublished-000006.pb"));
    uint64_t round = 0;
    const uint8_t *pub = NULL;
    size_t len = 0;
    assert_true(gb_pub_outbox_recovered(ob, &round, &pub, &len));
    assert_int_equal(round, 5);
    assert_int_equal(len, len5);
    assert_memory_equal(pub, b5, len5);
    assert_false(gb_pub_outbox_recovered(ob, &round, &pub, &len)); /* once */
    assert_int_equal(gb_pub_outbox_retry(ob, gb_time_now()), 1);
    assert_true(s_has(f->out, "round-000005.pub") && s_has(f->out, "round-000005.sig"));
    assert_false(s_has(f->out, "round-000006.pub"));
    assert_false(s_has(f->state, "unpublished-000005.pb"));
    gb_pub_outbox_destroy(&ob);

    /* no output directory: staged, then dropped once the round is put */
    ob = gb_pub_outbox_new(NULL, f->state, NULL, 5, &err);
    assert_non_null(ob);
    assert_int_equal(gb_pub_outbox_stage(ob, 6, b6, len6, &err), 0);
    assert_true(s_has(f->state, "unpublished-000006.pb"));
    assert_int_equal(gb_pub_outbox_put(ob, 6, b6, len6, &err), 0);
    assert_false(s_has(f->state, "unpublished-000006.pb"));
    assert_false(gb_pub_outbox_recovered(ob, &round, &pub, &len));
    gb_pub_outbox_destroy(&ob);
    /* files need a signer */
    assert_null(gb_pub_outbox_new(f->out, NULL, NULL, 0, &err));
    free(b5);
    free(b6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_written_at_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kept_retried_and_written, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_writes_what_was_left, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bound_and_memory_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_staged_rounds_after_a_crash, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
