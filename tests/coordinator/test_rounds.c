/* Tests for coordinator/rounds: the round loop as a state machine, driven by
 * events with the time passed in, so nothing sleeps. Covered: a full round
 * with five clients and the start of the next; the selection count (the
 * 0.1 * 30 trap included), seeded reproducibility and independence of join
 * order; every refusal of a result (duplicate, stale round, closed round,
 * wrong task, unselected, unknown, future round, bad values, evaluation not
 * asked for), each leaving the counts unchanged; deadline with quorum
 * closes, without quorum abandons and re-selects after a doubling backoff
 * from the clients connected then; a client that leaves and rejoins
 * mid-round gets the same task id; client evaluation; step reports in and
 * out of order and failed steps; total rounds ends the run; resume from a
 * checkpointed round; config errors; the known-client bound; the action
 * queue bound; allocation failures; the log lines.
 * Doubles as the usage example:
 *
 *     gb_rounds_config_t c;  gb_rounds_config_default(&c);  c.min_clients = 5; ...
 *     gb_rounds_t *r = gb_rounds_new(&c, last_finished_round, &err);
 *     gb_rounds_join(r, "client-a", 6000, 1000, now_ms, &err); // on every event ...
 *     gb_rounds_action_t a;
 *     while (gb_rounds_next_action(r, &a)) carry_out(&a);     // ... then drain
 *     gb_rounds_step_done(r, GB_ROUNDS_ACT_AGGREGATE, a.round, now_ms, &err);
 */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rounds.h"
#include "util/alloc.h"
#include "util/log.h"

#define T0 ((uint64_t)1700000000000) /* a Unix time in ms */
#define MAX_ACTS 256

typedef struct {
    gb_rounds_action_t a[MAX_ACTS];
    size_t n;
} acts_t;

static gb_rounds_config_t s_cfg(uint32_t min_clients, uint32_t min_per_round, uint32_t quorum)
{
    gb_rounds_config_t c;
    gb_rounds_config_default(&c);
    c.min_clients = min_clients;
    c.min_per_round = min_per_round;
    c.quorum = quorum;
    c.deadline_ms = 60000;
    c.backoff_ms = 1000;
    c.seed = 42;
    return c;
}

static gb_rounds_t *s_new(const gb_rounds_config_t *c, uint64_t last)
{
    gb_error_t err = {0};
    gb_rounds_t *r = gb_rounds_new(c, last, &err);
    if (!r)
        fail_msg("%s", err.msg);
    return r;
}

static void s_take(gb_rounds_t *r, acts_t *acts)
{
    acts->n = 0;
    gb_rounds_action_t a;
    while (gb_rounds_next_action(r, &a)) {
        assert_true(acts->n < MAX_ACTS);
        acts->a[acts->n++] = a;
    }
    assert_int_equal(gb_rounds_pending(r), 0);
}

static void s_none(gb_rounds_t *r)
{
    assert_int_equal(gb_rounds_pending(r), 0);
}

static void s_join(gb_rounds_t *r, const char *id, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_join(r, id, 100, 10, now, &err) != 0)
        fail_msg("%s", err.msg);
}

static void s_leave(gb_rounds_t *r, const char *id, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_leave(r, id, now, &err) != 0)
        fail_msg("%s", err.msg);
}

static void s_tick(gb_rounds_t *r, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_tick(r, now, &err) != 0)
        fail_msg("%s", err.msg);
}

static void s_done(gb_rounds_t *r, gb_rounds_action_kind_t step, uint64_t round, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_step_done(r, step, round, now, &err) != 0)
        fail_msg("%s", err.msg);
}

/* Sends the update of the task in a and asserts the verdict. */
static int s_update(gb_rounds_t *r, const gb_rounds_action_t *a, uint64_t now,
                    gb_rounds_verdict_t want)
{
    gb_error_t err = {0};
    gb_rounds_verdict_t v = GB_ROUNDS_INTERNAL;
    int rc = gb_rounds_update(r, a->client_id, a->round, a->task_id, 10, now, &v, &err);
    if (v != want)
        fail_msg("update from %s: verdict %s, want %s (%s)", a->client_id,
                 gb_rounds_verdict_name(v), gb_rounds_verdict_name(want), err.msg);
    return rc;
}

static void s_status(const gb_rounds_t *r, gb_rounds_status_t *st)
{
    gb_rounds_status(r, st);
}

static const gb_rounds_action_t *s_task_of(const acts_t *acts, const char *id)
{
    for (size_t i = 0; i < acts->n; i++)
        if (acts->a[i].kind == GB_ROUNDS_ACT_SEND_TASK && !strcmp(acts->a[i].client_id, id))
            return &acts->a[i];
    return NULL;
}

static void s_join_n(gb_rounds_t *r, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%02d", i);
        s_join(r, id, now);
    }
}

/* Takes the three steps after AGGREGATE and the checkpoint, asserting each. */
static void s_finish_round(gb_rounds_t *r, uint64_t round, uint64_t now)
{
    static const gb_rounds_action_kind_t steps[] = {
        GB_ROUNDS_ACT_AGGREGATE, GB_ROUNDS_ACT_EVALUATE, GB_ROUNDS_ACT_PUBLISH,
        GB_ROUNDS_ACT_CHECKPOINT};
    static const gb_rounds_state_t states[] = {GB_ROUNDS_AGGREGATING, GB_ROUNDS_EVALUATING,
                                               GB_ROUNDS_PUBLISHING, GB_ROUNDS_CHECKPOINTING};
    for (int i = 1; i < 4; i++) {
        gb_rounds_status_t st;
        s_status(r, &st);
        assert_int_equal(st.state, states[i - 1]);
        s_done(r, steps[i - 1], round, now);
        acts_t acts;
        s_take(r, &acts);
        assert_int_equal(acts.n, 1);
        assert_int_equal(acts.a[0].kind, steps[i]);
        assert_int_equal(acts.a[0].round, round);
    }
    s_done(r, GB_ROUNDS_ACT_CHECKPOINT, round, now);
}

/* ---- a full round ------------------------------------------------------ */

static void test_full_round_five_clients(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(5, 5, 3);
    gb_rounds_t *r = s_new(&c, 0);
    gb_rounds_status_t st;
    acts_t acts;

    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_WAITING);
    assert_int_equal(st.round, 1);
    assert_int_equal(st.attempt, 0);
    assert_int_equal(gb_rounds_wake_at(r), UINT64_MAX);

    /* Four clients: still waiting. */
    const char *ids[5] = {"eve", "bob", "dan", "amy", "cat"};
    for (int i = 0; i < 4; i++)
        s_join(r, ids[i], T0 + (uint64_t)i);
    s_none(r);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_WAITING);
    assert_int_equal(st.known, 4);
    assert_int_equal(st.connected, 4);

    /* The fifth starts round 1: five tasks, in id order, distinct ids. */
    s_join(r, ids[4], T0 + 10);
    s_take(r, &acts);
    assert_int_equal(acts.n, 5);
    const char *sorted[5] = {"amy", "bob", "cat", "dan", "eve"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(acts.a[i].kind, GB_ROUNDS_ACT_SEND_TASK);
        assert_string_equal(acts.a[i].client_id, sorted[i]);
        assert_int_equal(acts.a[i].round, 1);
        assert_int_equal(acts.a[i].attempt, 1);
        assert_int_equal(acts.a[i].task_id, i + 1);
        assert_int_equal(acts.a[i].deadline_ms, T0 + 10 + 60000);
        assert_false(acts.a[i].evaluate);
    }
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(st.selected, 5);
    assert_int_equal(st.updated, 0);
    assert_int_equal(st.deadline_ms, T0 + 10 + 60000);
    assert_int_equal(st.tasks_sent, 5);
    assert_int_equal(gb_rounds_wake_at(r), T0 + 10 + 60000);

    /* Client view for a status page. */
    gb_rounds_client_t cl;
    assert_true(gb_rounds_client_at(r, 0, &cl));
    assert_string_equal(cl.client_id, "amy");
    assert_true(cl.connected && cl.selected && !cl.updated);
    assert_int_equal(cl.task_id, 1);
    assert_int_equal(cl.train_samples, 100);
    assert_false(gb_rounds_client_at(r, 5, &cl));

    /* Every update is fed; the last one closes the round at once. */
    acts_t tasks = acts;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(s_update(r, &tasks.a[i], T0 + 100 + i, GB_ROUNDS_ACCEPTED), 0);
        s_take(r, &acts);
        assert_int_equal(acts.n, i < 4 ? 1 : 2);
        assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FEED_UPDATE);
        assert_string_equal(acts.a[0].client_id, tasks.a[i].client_id);
        assert_int_equal(acts.a[0].task_id, tasks.a[i].task_id);
        assert_int_equal(acts.a[0].num_samples, 10);
        s_status(r, &st);
        assert_int_equal(st.updated, i + 1);
        assert_int_equal(st.answered, i + 1);
    }
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[1].count, 5);
    assert_int_equal(acts.a[1].num_samples, 50);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_AGGREGATING);
    assert_int_equal(st.update_samples, 50);
    assert_int_equal(gb_rounds_wake_at(r), UINT64_MAX);

    /* aggregate -> evaluate -> publish -> checkpoint; then round 2 starts. */
    s_finish_round(r, 1, T0 + 200);
    s_take(r, &acts);
    assert_int_equal(acts.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(acts.a[i].kind, GB_ROUNDS_ACT_SEND_TASK);
        assert_int_equal(acts.a[i].round, 2);
        assert_int_equal(acts.a[i].attempt, 1);
        assert_int_equal(acts.a[i].task_id, 6 + i); /* unique in the run */
        assert_int_equal(acts.a[i].deadline_ms, T0 + 200 + 60000);
    }
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(st.round, 2);
    assert_int_equal(st.last_finished, 1);
    assert_int_equal(st.updated, 0);
    gb_rounds_destroy(&r);
    assert_null(r);
    gb_rounds_destroy(&r);
    gb_rounds_destroy(NULL);
}

/* ---- selection --------------------------------------------------------- */

static void test_select_count(void **state)
{
    (void)state;
    assert_int_equal(gb_rounds_select_count(30, 0.1, 1), 3); /* 0.1*30 = 3.0000000000000004 */
    assert_int_equal(gb_rounds_select_count(10, 0.1, 1), 1);
    assert_int_equal(gb_rounds_select_count(10, 0.25, 1), 3);
    assert_int_equal(gb_rounds_select_count(10, 0.1, 4), 4);
    assert_int_equal(gb_rounds_select_count(7, 0.5, 2), 4);
    assert_int_equal(gb_rounds_select_count(3, 1.0, 1), 3);
    assert_int_equal(gb_rounds_select_count(100, 0.07, 1), 7); /* 7.000000000000001 */
    assert_int_equal(gb_rounds_select_count(3, 0.5, 5), 3);    /* never more than there are */
    assert_int_equal(gb_rounds_select_count(0, 0.5, 1), 0);
    assert_int_equal(gb_rounds_select_count(1000, 1e-12, 1), 1);
}

static int s_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static void test_sample(void **state)
{
    (void)state;
    size_t a[50], b[50];
    for (size_t i = 0; i < 50; i++)
        a[i] = b[i] = i;
    gb_rounds_sample(7, 3, 1, a, 50, 10);
    gb_rounds_sample(7, 3, 1, b, 50, 10);
    assert_memory_equal(a, b, sizeof a); /* same (seed, round, attempt): same choice */
    for (size_t i = 0; i < 10; i++) {
        assert_true(a[i] < 50);
        if (i)
            assert_true(a[i - 1] < a[i]); /* ascending, so distinct */
    }
    /* The whole array is still a permutation. */
    size_t p[50];
    memcpy(p, a, sizeof p);
    qsort(p, 50, sizeof *p, s_cmp);
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(p[i], i);

    /* Another round, attempt or seed chooses differently (fixed values, so
     * this is deterministic: 10 of 50 agreeing by chance is C(50,10)^-1). */
    size_t c[50], d[50], e[50];
    for (size_t i = 0; i < 50; i++)
        c[i] = d[i] = e[i] = i;
    gb_rounds_sample(7, 4, 1, c, 50, 10);
    gb_rounds_sample(7, 3, 2, d, 50, 10);
    gb_rounds_sample(8, 3, 1, e, 50, 10);
    assert_true(memcmp(a, c, 10 * sizeof *a) != 0);
    assert_true(memcmp(a, d, 10 * sizeof *a) != 0);
    assert_true(memcmp(a, e, 10 * sizeof *a) != 0);

    /* k == n takes everything; k == 0 takes nothing and changes nothing. */
    size_t f[5] = {4, 3, 2, 1, 0};
    gb_rounds_sample(1, 1, 1, f, 5, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(f[i], i);
    size_t g[3] = {2, 0, 1};
    gb_rounds_sample(1, 1, 1, g, 3, 0);
    assert_int_equal(g[0], 2);
    assert_int_equal(g[1], 0);
    assert_int_equal(g[2], 1);
}

/* Selected ids of the first attempt after joining ids in the given order. */
typedef char client_name_t[GB_ROUNDS_ID_MAX + 1];

static void s_selected_after(const char *const *ids, size_t n, uint64_t seed, client_name_t *out,
                             size_t *k)
{
    gb_rounds_config_t c = s_cfg((uint32_t)n, 1, 1);
    c.fraction = 0.3;
    c.seed = seed;
    gb_rounds_t *r = s_new(&c, 0);
    for (size_t i = 0; i < n; i++)
        s_join(r, ids[i], T0);
    acts_t acts;
    s_take(r, &acts);
    *k = acts.n;
    for (size_t i = 0; i < acts.n; i++) {
        assert_int_equal(acts.a[i].kind, GB_ROUNDS_ACT_SEND_TASK);
        memcpy(out[i], acts.a[i].client_id, sizeof out[i]);
    }
    gb_rounds_destroy(&r);
}

static void test_selection_seeded_and_order_free(void **state)
{
    (void)state;
    const char *fwd[20], *rev[20], *mix[20];
    char names[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "client-%02d", i);
        fwd[i] = names[i];
        rev[19 - i] = names[i];
        mix[i] = names[(i * 7) % 20]; /* 7 is coprime with 20: a permutation */
    }
    client_name_t a[20], b[20], c[20], d[20], e[20];
    size_t ka, kb, kc, kd, ke;
    s_selected_after(fwd, 20, 42, a, &ka);
    s_selected_after(rev, 20, 42, b, &kb);
    s_selected_after(mix, 20, 42, c, &kc);
    s_selected_after(fwd, 20, 42, d, &kd);
    assert_int_equal(ka, 6); /* ceil(0.3 * 20) */
    assert_int_equal(kb, 6);
    assert_int_equal(kc, 6);
    assert_int_equal(kd, 6);
    assert_memory_equal(a, b, sizeof a[0] * 6);
    assert_memory_equal(a, c, sizeof a[0] * 6);
    assert_memory_equal(a, d, sizeof a[0] * 6);
    s_selected_after(fwd, 20, 43, e, &ke);
    assert_int_equal(ke, 6);
    assert_true(memcmp(a, e, sizeof a[0] * 6) != 0);
}

/* ---- results ----------------------------------------------------------- */

typedef struct {
    gb_rounds_status_t st;
    gb_rounds_client_t cl[8];
    size_t n;
} snapshot_t;

static void s_snap(const gb_rounds_t *r, snapshot_t *s)
{
    memset(s, 0, sizeof *s);
    gb_rounds_status(r, &s->st);
    while (s->n < 8 && gb_rounds_client_at(r, s->n, &s->cl[s->n]))
        s->n++;
}

static void s_same(const snapshot_t *a, const snapshot_t *b)
{
    assert_memory_equal(&a->st, &b->st, sizeof a->st);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->cl[i].client_id, b->cl[i].client_id);
        assert_int_equal(a->cl[i].connected, b->cl[i].connected);
        assert_int_equal(a->cl[i].selected, b->cl[i].selected);
        assert_int_equal(a->cl[i].task_id, b->cl[i].task_id);
        assert_int_equal(a->cl[i].updated, b->cl[i].updated);
        assert_int_equal(a->cl[i].evaluated, b->cl[i].evaluated);
    }
}

/* Sends an update and asserts the verdict, the return code, the ErrorCode
 * and that nothing changed. */
static void s_refused(gb_rounds_t *r, const char *id, uint64_t round, uint64_t task,
                      uint64_t samples, uint64_t now, gb_rounds_verdict_t want, int want_rc,
                      Glassbox__ErrorCode want_code)
{
    snapshot_t before, after;
    s_snap(r, &before);
    gb_error_t err = {0};
    gb_rounds_verdict_t v = GB_ROUNDS_ACCEPTED;
    int rc = gb_rounds_update(r, id, round, task, samples, now, &v, &err);
    if (v != want)
        fail_msg("update (%s, %llu, %llu): verdict %s, want %s", id ? id : "(null)",
                 (unsigned long long)round, (unsigned long long)task, gb_rounds_verdict_name(v),
                 gb_rounds_verdict_name(want));
    assert_int_equal(rc, want_rc);
    assert_int_equal(gb_rounds_verdict_error_code(v), want_code);
    if (rc != 0)
        assert_true(strlen(err.msg) > 0);
    s_none(r);
    s_snap(r, &after);
    s_same(&before, &after);
}

static void test_result_refusals(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(3, 2, 1);
    c.fraction = 0.5; /* 2 of 4 */
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    acts_t tasks;
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 2);
    s_join(r, "late", T0 + 1); /* known, connected, never selected */
    s_none(r);
    /* Who was not selected among c00..c02? */
    const char *unselected = NULL;
    for (int i = 0; i < 3; i++) {
        static const char *const ids[] = {"c00", "c01", "c02"};
        if (!s_task_of(&tasks, ids[i]))
            unselected = ids[i];
    }
    assert_non_null(unselected);
    const gb_rounds_action_t *t0 = &tasks.a[0], *t1 = &tasks.a[1];
    const Glassbox__ErrorCode STALE = GLASSBOX__ERROR_CODE__ERROR_STALE;
    const Glassbox__ErrorCode UNEXP = GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED;
    const Glassbox__ErrorCode INVAL = GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;

    /* Before any is counted. */
    s_refused(r, t0->client_id, 1, t1->task_id, 5, T0 + 2, GB_ROUNDS_WRONG_TASK, GB_EPROTO,
              STALE);
    s_refused(r, t0->client_id, 1, 999, 5, T0 + 2, GB_ROUNDS_WRONG_TASK, GB_EPROTO, STALE);
    s_refused(r, unselected, 1, t0->task_id, 5, T0 + 2, GB_ROUNDS_NOT_SELECTED, GB_EPROTO,
              UNEXP);
    s_refused(r, "late", 1, 1, 5, T0 + 2, GB_ROUNDS_NOT_SELECTED, GB_EPROTO, UNEXP);
    s_refused(r, "stranger", 1, t0->task_id, 5, T0 + 2, GB_ROUNDS_UNKNOWN_CLIENT, GB_EPROTO,
              UNEXP);
    s_refused(r, t0->client_id, 2, t0->task_id, 5, T0 + 2, GB_ROUNDS_FUTURE_ROUND, GB_EINVAL,
              INVAL);
    s_refused(r, t0->client_id, 1, t0->task_id, 0, T0 + 2, GB_ROUNDS_INVALID, GB_EINVAL, INVAL);
    s_refused(r, t0->client_id, 0, t0->task_id, 5, T0 + 2, GB_ROUNDS_INVALID, GB_EINVAL, INVAL);
    s_refused(r, t0->client_id, 1, 0, 5, T0 + 2, GB_ROUNDS_INVALID, GB_EINVAL, INVAL);
    s_refused(r, NULL, 1, t0->task_id, 5, T0 + 2, GB_ROUNDS_INVALID, GB_EINVAL, INVAL);
    s_refused(r, "", 1, t0->task_id, 5, T0 + 2, GB_ROUNDS_INVALID, GB_EINVAL, INVAL);

    acts_t acts;
    /* A client that left: its result is refused until it is back (the
     * round does not wait for it meanwhile, but t0 is still out). */
    s_leave(r, t1->client_id, T0 + 2);
    s_refused(r, t1->client_id, 1, t1->task_id, 5, T0 + 2, GB_ROUNDS_UNKNOWN_CLIENT, GB_EPROTO,
              UNEXP);
    s_join(r, t1->client_id, T0 + 2);
    s_take(r, &acts); /* its task again */
    assert_int_equal(acts.n, 1);

    /* A counted update, then its resend: acknowledged, counted once. */
    assert_int_equal(s_update(r, t0, T0 + 3, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    s_refused(r, t0->client_id, 1, t0->task_id, 10, T0 + 4, GB_ROUNDS_DUPLICATE, 0,
              GLASSBOX__ERROR_CODE__ERROR_DUPLICATE);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.updated, 1);
    assert_int_equal(st.update_samples, 10);

    /* Close the round; a late result is refused as closed; a resend of a
     * counted one is still a duplicate. */
    assert_int_equal(s_update(r, t1, T0 + 8, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    s_refused(r, unselected, 1, 3, 5, T0 + 9, GB_ROUNDS_CLOSED, GB_EPROTO, STALE);
    s_refused(r, t1->client_id, 1, t1->task_id, 5, T0 + 9, GB_ROUNDS_DUPLICATE, 0,
              GLASSBOX__ERROR_CODE__ERROR_DUPLICATE);

    /* Next round: round 1's results are stale. */
    s_finish_round(r, 1, T0 + 10);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    s_refused(r, t0->client_id, 1, t0->task_id, 5, T0 + 11, GB_ROUNDS_STALE_ROUND, GB_EPROTO,
              STALE);
    /* Evaluation was not asked for. */
    gb_error_t err = {0};
    gb_rounds_verdict_t v;
    assert_int_equal(gb_rounds_eval_result(r, acts.a[0].client_id, 2, acts.a[0].task_id, 5,
                                           T0 + 12, &v, &err),
                     GB_EPROTO);
    assert_int_equal(v, GB_ROUNDS_NOT_ASKED);
    assert_int_equal(gb_rounds_verdict_error_code(v), UNEXP);
    s_none(r);
    /* A NULL verdict is allowed. */
    assert_int_equal(gb_rounds_update(r, acts.a[0].client_id, 2, acts.a[0].task_id, 5, T0 + 13,
                                      NULL, &err),
                     0);
    gb_rounds_destroy(&r);
}

/* ---- deadline ---------------------------------------------------------- */

static void test_deadline_with_quorum_closes(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(4, 4, 2);
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 4, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 4);
    uint64_t deadline = T0 + 60000;
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, &tasks.a[1], T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    s_tick(r, deadline - 1);
    s_none(r);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    /* A result at the deadline is late: the round closes first. */
    assert_int_equal(s_update(r, &tasks.a[2], deadline, GB_ROUNDS_CLOSED), GB_EPROTO);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[0].count, 2);
    assert_int_equal(acts.a[0].num_samples, 20);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_AGGREGATING);
    assert_int_equal(st.updated, 2);
    gb_rounds_destroy(&r);

    /* The same with tick. */
    r = s_new(&c, 0);
    s_join_n(r, 4, T0);
    s_take(r, &tasks);
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, &tasks.a[3], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_tick(r, deadline + 5000);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[0].count, 2);
    gb_rounds_destroy(&r);
}

static void test_deadline_without_quorum_abandons(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(3, 3, 2);
    c.backoff_ms = 1000;
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 4, T0); /* starts at the third join with c00..c02; c03 joins during it */
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 3);
    assert_null(s_task_of(&tasks, "c03"));
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);

    uint64_t deadline = T0 + 60000;
    s_tick(r, deadline);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    assert_int_equal(acts.a[0].round, 1);
    assert_int_equal(acts.a[0].attempt, 1);
    assert_int_equal(acts.a[0].failed_step, 0);
    assert_string_equal(acts.a[0].reason, "deadline passed with 1 of 3 updates, quorum 2");
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_BACKOFF);
    assert_int_equal(st.round, 1);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.selected, 0);
    assert_int_equal(st.retry_at_ms, deadline + 1000);
    assert_int_equal(gb_rounds_wake_at(r), deadline + 1000);
    /* The old tasks are over. */
    assert_int_equal(s_update(r, &tasks.a[1], deadline + 1, GB_ROUNDS_CLOSED), GB_EPROTO);

    /* c00 leaves during the backoff; at its end round 1 selects again from
     * the three connected then (c01 c02 c03), attempt 2, new task ids. */
    s_leave(r, "c00", deadline + 10);
    s_tick(r, deadline + 999);
    s_none(r);
    s_tick(r, deadline + 1000);
    s_take(r, &acts);
    assert_int_equal(acts.n, 3);
    assert_null(s_task_of(&acts, "c00"));
    assert_non_null(s_task_of(&acts, "c03"));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(acts.a[i].round, 1);
        assert_int_equal(acts.a[i].attempt, 2);
        assert_int_equal(acts.a[i].task_id, 4 + i);
        assert_int_equal(acts.a[i].deadline_ms, deadline + 1000 + 60000);
    }
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(st.attempt, 2);
    /* Attempt 1's task of a client selected again is the wrong task now. */
    const gb_rounds_action_t *old = s_task_of(&tasks, "c01");
    assert_int_equal(s_update(r, old, deadline + 1001, GB_ROUNDS_WRONG_TASK), GB_EPROTO);

    /* A second failure waits twice as long. */
    uint64_t d2 = deadline + 1000 + 60000;
    s_tick(r, d2);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    assert_int_equal(acts.a[0].attempt, 2);
    s_status(r, &st);
    assert_int_equal(st.failures, 2);
    assert_int_equal(st.retry_at_ms, d2 + 2000);
    /* Too few clients at the end of the backoff: it waits for them. */
    s_leave(r, "c01", d2 + 1);
    s_tick(r, d2 + 2000);
    s_none(r);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_WAITING);
    s_join(r, "c00", d2 + 3000);
    s_take(r, &acts);
    assert_int_equal(acts.n, 3);
    assert_int_equal(acts.a[0].attempt, 3);
    /* A finished round resets the failure count. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(s_update(r, &acts.a[i], d2 + 3001, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_finish_round(r, 1, d2 + 3002);
    s_status(r, &st);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.round, 2);
    gb_rounds_destroy(&r);
}

static void test_backoff_caps_and_zero(void **state)
{
    (void)state;
    /* Zero backoff: the round selects again in the same call. */
    gb_rounds_config_t c = s_cfg(2, 2, 2);
    c.backoff_ms = 0;
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    acts_t acts;
    s_take(r, &acts);
    s_tick(r, T0 + 60000);
    s_take(r, &acts);
    assert_int_equal(acts.n, 3);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_SEND_TASK);
    assert_int_equal(acts.a[1].attempt, 2);
    gb_rounds_destroy(&r);

    /* Doubling stops at GB_ROUNDS_MAX_BACKOFF_MS. */
    c.backoff_ms = GB_ROUNDS_MAX_BACKOFF_MS / 2 + 1;
    r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    uint64_t now = T0;
    gb_rounds_status_t st;
    for (int i = 0; i < 4; i++) {
        s_take(r, &acts);
        s_status(r, &st);
        assert_int_equal(st.state, GB_ROUNDS_TRAINING);
        now = st.deadline_ms;
        s_tick(r, now);
        s_status(r, &st);
        uint64_t wait = i == 0 ? GB_ROUNDS_MAX_BACKOFF_MS / 2 + 1 : GB_ROUNDS_MAX_BACKOFF_MS;
        assert_int_equal(st.retry_at_ms, now + wait);
        s_tick(r, st.retry_at_ms);
    }
    gb_rounds_destroy(&r);
}

/* ---- leaving and rejoining --------------------------------------------- */

static void test_leave_and_rejoin_mid_round(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(3, 3, 2);
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    const gb_rounds_action_t *t1 = s_task_of(&tasks, "c01");
    assert_non_null(t1);

    /* c01 leaves: the round goes on without waiting for it. */
    s_leave(r, "c01", T0 + 1);
    s_none(r);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(st.connected, 2);
    assert_int_equal(st.known, 3);
    assert_int_equal(st.selected, 3);
    assert_int_equal(st.gone, 1);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING); /* c02 is still out */

    /* It rejoins while the round collects: the same task, same id and
     * deadline, and it counts again. */
    s_join(r, "c01", T0 + 4);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_SEND_TASK);
    assert_string_equal(acts.a[0].client_id, "c01");
    assert_int_equal(acts.a[0].task_id, t1->task_id);
    assert_int_equal(acts.a[0].deadline_ms, t1->deadline_ms);
    assert_int_equal(acts.a[0].attempt, 1);
    s_status(r, &st);
    assert_int_equal(st.gone, 0);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c02"), T0 + 5, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1); /* waits for c01, back on a session */
    /* It had sent its update before it dropped: the resend is one update,
     * and completes the round. */
    assert_int_equal(s_update(r, t1, T0 + 5, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[1].count, 3);
    assert_int_equal(s_update(r, t1, T0 + 6, GB_ROUNDS_DUPLICATE), 0);
    s_none(r);
    /* A client that answered gets no task again when it reconnects. */
    s_leave(r, "c00", T0 + 7);
    s_join(r, "c00", T0 + 8);
    s_none(r);
    gb_rounds_destroy(&r);

    /* A client gone while the others answered: the round closes at once,
     * long before the deadline, and a later rejoin gets no task. */
    r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    s_take(r, &tasks);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c02"), T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    s_leave(r, "c01", T0 + 2);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[0].count, 2);
    s_join(r, "c01", T0 + 3);
    s_none(r);

    /* A join while connected is a reconnect on a new session: during a
     * round it resends an unanswered task too. */
    s_finish_round(r, 1, T0 + 60001);
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 3);
    s_join(r, "c02", T0 + 60002);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].task_id, s_task_of(&tasks, "c02")->task_id);
    s_status(r, &st);
    assert_int_equal(st.connected, 3);
    gb_rounds_destroy(&r);
}

static void s_refuse_result(gb_rounds_t *r, const gb_rounds_action_t *a, bool eval, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_refused(r, a->client_id, eval, a->round, a->task_id, now, &err) != 0)
        fail_msg("refusal of %s: %s", a->client_id, err.msg);
}

/* A result refused on its content (issue 7/11: one bad update held every
 * round to its deadline): the round waits for that client only while the
 * quorum needs it, takes a correction while it collects, and counts a client
 * refused, gone and back the same way. */
static void test_refused_results(void **state)
{
    (void)state;
    /* Quorum 2 of 3: two updates in and the third refused closes the round
     * at once, long before the deadline. */
    gb_rounds_config_t c = s_cfg(3, 3, 2);
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    s_refuse_result(r, s_task_of(&tasks, "c01"), false, T0 + 1);
    s_none(r);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(st.refused, 1);
    /* The same refusal again (the client resent its bad update) changes nothing. */
    s_refuse_result(r, s_task_of(&tasks, "c01"), false, T0 + 1);
    s_status(r, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c02"), T0 + 3, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[1].count, 2);
    /* A correction after the round closed is late. */
    assert_int_equal(s_update(r, s_task_of(&tasks, "c01"), T0 + 4, GB_ROUNDS_CLOSED), GB_EPROTO);
    gb_rounds_destroy(&r);

    /* Quorum 3 of 3: the quorum needs the refused client, so the round
     * waits; its correction is counted and completes the round. */
    c = s_cfg(3, 3, 3);
    r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    s_take(r, &tasks);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c02"), T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_refuse_result(r, s_task_of(&tasks, "c01"), false, T0 + 2);
    s_none(r);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c01"), T0 + 3, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[1].count, 3);
    s_status(r, &st);
    assert_int_equal(st.refused, 0);
    gb_rounds_destroy(&r);

    /* Refused, gone, back: counted once as gone, then as refused again;
     * a refusal for another task, a stale round or a client never
     * selected holds nothing up. */
    c = s_cfg(3, 3, 2);
    r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    s_take(r, &tasks);
    const gb_rounds_action_t *t1 = s_task_of(&tasks, "c01");
    gb_rounds_action_t wrong = *t1;
    wrong.task_id++;
    s_refuse_result(r, &wrong, false, T0 + 1);
    wrong = *t1;
    wrong.round = 0;
    s_refuse_result(r, &wrong, false, T0 + 1);
    s_status(r, &st);
    assert_int_equal(st.refused, 0);
    s_refuse_result(r, t1, false, T0 + 1);
    s_leave(r, "c01", T0 + 2);
    s_status(r, &st);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.gone, 1);
    s_join(r, "c01", T0 + 3);
    s_take(r, &acts); /* its task again */
    s_status(r, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.gone, 0);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 4, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c02"), T0 + 4, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.a[acts.n - 1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[acts.n - 1].count, 2);
    gb_rounds_destroy(&r);

    /* With clients' evaluations asked for, a refused EvalResult is the
     * same; a bad client id is an error. */
    c = s_cfg(2, 2, 1);
    c.client_eval = true;
    r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    s_take(r, &tasks);
    gb_error_t err = {0};
    gb_rounds_verdict_t v;
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(gb_rounds_eval_result(r, tasks.a[0].client_id, 1, tasks.a[0].task_id, 5,
                                           T0 + 1, &v, &err), 0);
    assert_int_equal(s_update(r, &tasks.a[1], T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_refuse_result(r, &tasks.a[1], true, T0 + 3);
    s_take(r, &acts);
    assert_int_equal(acts.a[acts.n - 1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(gb_rounds_refused(r, "", false, 1, 1, T0 + 4, &err), GB_EINVAL);
    gb_rounds_destroy(&r);
}

/* Clients that leave so that the quorum is out of reach: the attempt is
 * given up at once (no backoff, no failure counted) and the round selects
 * again among those connected; one that leaves after the rest answered
 * without the quorum does the same. */
static void test_gone_clients_reselect(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(3, 3, 2);
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 3, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 3);
    s_leave(r, "c00", T0 + 1);
    s_none(r); /* two left can still make the quorum */
    assert_int_equal(s_update(r, s_task_of(&tasks, "c01"), T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_leave(r, "c02", T0 + 3);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    assert_int_equal(acts.a[0].failed_step, 0);
    assert_string_equal(acts.a[0].reason, "2 of 3 selected clients left; the rest cannot reach "
                                          "the quorum of 2");
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_WAITING); /* one connected, three needed */
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.dropped, 2);
    /* Clients join: attempt 2 starts at once, without a backoff. */
    s_join(r, "c03", T0 + 4);
    s_none(r);
    s_join(r, "c04", T0 + 4);
    s_take(r, &acts);
    assert_int_equal(acts.n, 3);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_SEND_TASK);
    assert_int_equal(acts.a[0].attempt, 2);
    assert_int_equal(acts.a[0].deadline_ms, T0 + 4 + 60000);
    assert_null(s_task_of(&acts, "c00"));
    /* The old task is stale now. */
    assert_int_equal(s_update(r, s_task_of(&tasks, "c01"), T0 + 5, GB_ROUNDS_WRONG_TASK),
                     GB_EPROTO);
    gb_rounds_destroy(&r);

    /* With evaluation asked for: an Update in but no EvalResult still counts
     * for the quorum; the client that left is not waited for. */
    c = s_cfg(2, 2, 1);
    c.client_eval = true;
    r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    s_take(r, &tasks);
    assert_int_equal(s_update(r, s_task_of(&tasks, "c00"), T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    s_leave(r, "c00", T0 + 2); /* updated, not evaluated: gone */
    s_none(r);                 /* c01 is still out */
    gb_error_t err = {0};
    gb_rounds_verdict_t v;
    const gb_rounds_action_t *t = s_task_of(&tasks, "c01");
    assert_int_equal(gb_rounds_update(r, t->client_id, 1, t->task_id, 10, T0 + 3, &v, &err), 0);
    assert_int_equal(gb_rounds_eval_result(r, t->client_id, 1, t->task_id, 10, T0 + 3, &v, &err),
                     0);
    s_take(r, &acts);
    assert_int_equal(acts.a[acts.n - 1].kind, GB_ROUNDS_ACT_AGGREGATE);
    assert_int_equal(acts.a[acts.n - 1].count, 2);
    gb_rounds_destroy(&r);
}

static void test_find_client(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "b", T0);
    gb_rounds_client_t k;
    assert_true(gb_rounds_find_client(r, "b", &k));
    assert_string_equal(k.client_id, "b");
    assert_int_equal(k.train_samples, 100);
    assert_int_equal(k.test_samples, 10);
    assert_true(k.connected);
    assert_false(gb_rounds_find_client(r, "a", &k));
    assert_false(gb_rounds_find_client(r, "", &k));
    assert_false(gb_rounds_find_client(r, NULL, &k));
    gb_rounds_destroy(&r);
}

static void test_join_leave_errors(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    gb_rounds_t *r = s_new(&c, 0);
    gb_error_t err = {0};
    char longid[GB_ROUNDS_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    snapshot_t before, after;
    s_snap(r, &before);
    assert_int_equal(gb_rounds_join(r, NULL, 1, 0, T0, &err), GB_EINVAL);
    assert_int_equal(gb_rounds_join(r, "", 1, 0, T0, &err), GB_EINVAL);
    assert_int_equal(gb_rounds_join(r, longid, 1, 0, T0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "client id"));
    assert_int_equal(gb_rounds_leave(r, NULL, T0, &err), GB_EINVAL);
    assert_int_equal(gb_rounds_leave(r, "nobody", T0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "'nobody'"));
    assert_non_null(strstr(err.msg, "never joined"));
    s_snap(r, &after);
    s_same(&before, &after);

    /* The longest id is fine; leaving twice is refused the second time. */
    longid[GB_ROUNDS_ID_MAX] = '\0';
    s_join(r, longid, T0);
    s_leave(r, longid, T0 + 1);
    s_snap(r, &before);
    assert_int_equal(gb_rounds_leave(r, longid, T0 + 2, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "not connected"));
    s_snap(r, &after);
    s_same(&before, &after);
    gb_rounds_client_t cl;
    assert_true(gb_rounds_client_at(r, 0, &cl));
    assert_string_equal(cl.client_id, longid);
    assert_false(cl.connected);
    gb_rounds_destroy(&r);
}

static void test_known_client_bound(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.max_clients = 3;
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "a", T0);
    s_leave(r, "a", T0);
    s_join(r, "b", T0);
    s_join(r, "c", T0);
    acts_t acts;
    s_take(r, &acts);
    snapshot_t before, after;
    s_snap(r, &before);
    gb_error_t err = {0};
    assert_int_equal(gb_rounds_join(r, "d", 5, 0, T0 + 1, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "'d'"));
    assert_non_null(strstr(err.msg, "max_clients"));
    s_none(r);
    s_snap(r, &after);
    s_same(&before, &after);
    /* Known clients still come back. */
    s_join(r, "a", T0 + 2);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.known, 3);
    assert_int_equal(st.connected, 3);
    gb_rounds_destroy(&r);
}

/* ---- client evaluation -------------------------------------------------- */

static void test_client_eval(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.client_eval = true;
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 2);
    assert_true(tasks.a[0].evaluate);
    gb_error_t err = {0};
    gb_rounds_verdict_t v;
    const gb_rounds_action_t *a = &tasks.a[0], *b = &tasks.a[1];

    /* Eval first, then the update: only both together are an answer. */
    assert_int_equal(gb_rounds_eval_result(r, a->client_id, 1, a->task_id, 7, T0 + 1, &v, &err),
                     0);
    assert_int_equal(v, GB_ROUNDS_ACCEPTED);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FEED_EVAL);
    assert_int_equal(acts.a[0].num_samples, 7);
    assert_int_equal(gb_rounds_eval_result(r, a->client_id, 1, a->task_id, 7, T0 + 2, &v, &err),
                     0);
    assert_int_equal(v, GB_ROUNDS_DUPLICATE);
    assert_int_equal(gb_rounds_eval_result(r, a->client_id, 1, b->task_id, 7, T0 + 2, &v, &err),
                     GB_EPROTO);
    assert_int_equal(v, GB_ROUNDS_WRONG_TASK);
    s_none(r);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.evaluated, 1);
    assert_int_equal(st.answered, 0);
    assert_int_equal(s_update(r, a, T0 + 3, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, b, T0 + 3, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    s_status(r, &st);
    assert_int_equal(st.answered, 1);
    assert_int_equal(st.state, GB_ROUNDS_TRAINING);
    /* b rejoins: its answer is incomplete, so it gets its task again. */
    s_join(r, b->client_id, T0 + 4);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].task_id, b->task_id);
    assert_int_equal(gb_rounds_eval_result(r, b->client_id, 1, b->task_id, 9, T0 + 5, &v, &err),
                     0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FEED_EVAL);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_AGGREGATE);
    s_done(r, GB_ROUNDS_ACT_AGGREGATE, 1, T0 + 6);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_EVALUATE);
    assert_int_equal(acts.a[0].count, 2);
    assert_int_equal(acts.a[0].num_samples, 16);
    gb_rounds_destroy(&r);
}

/* ---- steps -------------------------------------------------------------- */

static void test_step_reports(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.backoff_ms = 500;
    gb_rounds_t *r = s_new(&c, 0);
    gb_error_t err = {0};
    snapshot_t before, after;

    /* Nothing pending while waiting. */
    s_snap(r, &before);
    assert_int_equal(gb_rounds_step_done(r, GB_ROUNDS_ACT_AGGREGATE, 1, T0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "waiting"));
    s_snap(r, &after);
    s_same(&before, &after);

    s_join_n(r, 2, T0);
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, &tasks.a[1], T0 + 1, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);

    /* Out of order, wrong round, not a step: refused, nothing changes. */
    s_snap(r, &before);
    assert_int_equal(gb_rounds_step_done(r, GB_ROUNDS_ACT_PUBLISH, 1, T0 + 2, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "waiting for aggregate"));
    assert_int_equal(gb_rounds_step_done(r, GB_ROUNDS_ACT_AGGREGATE, 2, T0 + 2, &err), GB_EINVAL);
    assert_int_equal(gb_rounds_step_done(r, GB_ROUNDS_ACT_SEND_TASK, 1, T0 + 2, &err), GB_EINVAL);
    assert_int_equal(gb_rounds_step_failed(r, GB_ROUNDS_ACT_CHECKPOINT, 1, "x", T0 + 2, &err),
                     GB_EINVAL);
    s_none(r);
    s_snap(r, &after);
    s_same(&before, &after);

    /* Publish fails: the attempt is abandoned, round 1 is tried again. */
    s_done(r, GB_ROUNDS_ACT_AGGREGATE, 1, T0 + 3);
    s_done(r, GB_ROUNDS_ACT_EVALUATE, 1, T0 + 4);
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[1].kind, GB_ROUNDS_ACT_PUBLISH);
    assert_int_equal(gb_rounds_step_failed(r, GB_ROUNDS_ACT_PUBLISH, 1, "no signing key",
                                           T0 + 5, &err),
                     0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    assert_int_equal(acts.a[0].failed_step, GB_ROUNDS_ACT_PUBLISH);
    assert_string_equal(acts.a[0].reason, "publish failed: no signing key");
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_BACKOFF);
    assert_int_equal(st.round, 1);
    assert_int_equal(st.last_finished, 0);
    assert_int_equal(st.retry_at_ms, T0 + 5 + 500);
    s_tick(r, T0 + 505);
    s_take(r, &tasks);
    assert_int_equal(tasks.n, 2);
    assert_int_equal(tasks.a[0].round, 1);
    assert_int_equal(tasks.a[0].attempt, 2);

    /* A failed aggregate with no reason. */
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 506, GB_ROUNDS_ACCEPTED), 0);
    assert_int_equal(s_update(r, &tasks.a[1], T0 + 506, GB_ROUNDS_ACCEPTED), 0);
    s_take(r, &acts);
    assert_int_equal(gb_rounds_step_failed(r, GB_ROUNDS_ACT_AGGREGATE, 1, NULL, T0 + 507, &err),
                     0);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_string_equal(acts.a[0].reason, "aggregate failed: no reason given");
    s_status(r, &st);
    assert_int_equal(st.failures, 2);
    gb_rounds_destroy(&r);
}

/* ---- end and resume ---------------------------------------------------- */

static void s_run_round(gb_rounds_t *r, uint64_t round, uint64_t now)
{
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_true(tasks.n > 0);
    for (size_t i = 0; i < tasks.n; i++) {
        assert_int_equal(tasks.a[i].round, round);
        assert_int_equal(s_update(r, &tasks.a[i], now, GB_ROUNDS_ACCEPTED), 0);
    }
    s_take(r, &acts);
    s_finish_round(r, round, now);
}

static void test_total_rounds_end_the_run(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.total_rounds = 2;
    gb_rounds_t *r = s_new(&c, 0);
    s_join_n(r, 2, T0);
    s_run_round(r, 1, T0 + 1);
    s_run_round(r, 2, T0 + 2);
    acts_t acts;
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FINISHED);
    assert_int_equal(acts.a[0].round, 2);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_DONE);
    assert_int_equal(st.round, 2);
    assert_int_equal(st.last_finished, 2);
    assert_int_equal(gb_rounds_wake_at(r), UINT64_MAX);
    /* Nothing more starts; clients are still tracked. */
    s_join(r, "c09", T0 + 3);
    s_tick(r, T0 + 1000000);
    s_none(r);
    s_status(r, &st);
    assert_int_equal(st.known, 3);
    assert_int_equal(st.state, GB_ROUNDS_DONE);
    gb_rounds_verdict_t v;
    gb_error_t err = {0};
    assert_int_equal(gb_rounds_update(r, "c00", 2, 99, 1, T0 + 4, &v, &err), GB_EPROTO);
    assert_int_equal(v, GB_ROUNDS_CLOSED);
    /* A resend of round 2's counted update is still acknowledged. */
    assert_int_equal(gb_rounds_update(r, "c00", 2, 3, 1, T0 + 4, &v, &err), 0);
    assert_int_equal(v, GB_ROUNDS_DUPLICATE);
    gb_rounds_destroy(&r);
}

static void test_resume(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.total_rounds = 9;
    c.task_id_base = (uint64_t)1 << 40;
    gb_rounds_t *r = s_new(&c, 7);
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.round, 8);
    assert_int_equal(st.last_finished, 7);
    s_join_n(r, 2, T0);
    acts_t acts;
    s_take(r, &acts);
    assert_int_equal(acts.n, 2);
    assert_int_equal(acts.a[0].round, 8);
    assert_int_equal(acts.a[0].task_id, ((uint64_t)1 << 40) + 1);
    /* Round 7's results (from before the restart) are stale. */
    gb_rounds_verdict_t v;
    gb_error_t err = {0};
    assert_int_equal(gb_rounds_update(r, "c00", 7, 1, 1, T0 + 1, &v, &err), GB_EPROTO);
    assert_int_equal(v, GB_ROUNDS_STALE_ROUND);
    /* Task ids of a previous run that used no base are not this run's. */
    assert_int_equal(gb_rounds_update(r, "c00", 8, 1, 1, T0 + 1, &v, &err), GB_EPROTO);
    assert_int_equal(v, GB_ROUNDS_WRONG_TASK);
    gb_rounds_destroy(&r);

    /* Same seed, same round, same clients: a restarted coordinator selects
     * as the first one did. */
    c.total_rounds = 0;
    c.min_clients = 8;
    c.fraction = 0.5;
    c.task_id_base = 0;
    gb_rounds_t *a = s_new(&c, 4), *b = s_new(&c, 4);
    s_join_n(a, 8, T0);
    s_join_n(b, 8, T0 + 555);
    acts_t aa, bb;
    s_take(a, &aa);
    s_take(b, &bb);
    assert_int_equal(aa.n, 4);
    assert_int_equal(bb.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(aa.a[i].client_id, bb.a[i].client_id);
        assert_int_equal(aa.a[i].round, 5);
    }
    gb_rounds_destroy(&a);
    gb_rounds_destroy(&b);

    /* Resuming after the last round: done at once. */
    c.total_rounds = 3;
    r = s_new(&c, 3);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FINISHED);
    assert_int_equal(acts.a[0].round, 3);
    s_status(r, &st);
    assert_int_equal(st.state, GB_ROUNDS_DONE);
    s_join_n(r, 2, T0);
    s_none(r);
    gb_rounds_destroy(&r);

    /* No round after UINT64_MAX. */
    c.total_rounds = 0;
    assert_null(gb_rounds_new(&c, UINT64_MAX, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "last finished round"));
}

/* ---- config ----------------------------------------------------------- */

static void s_bad(const gb_rounds_config_t *c, const char *needle)
{
    gb_error_t err = {0};
    assert_int_equal(gb_rounds_config_check(c, &err), GB_EINVAL);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not name '%s'", err.msg, needle);
    err = (gb_error_t){0};
    assert_null(gb_rounds_new(c, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
}

static void test_config(void **state)
{
    (void)state;
    gb_rounds_config_t d, c;
    gb_rounds_config_default(&d);
    gb_error_t err = {0};
    assert_int_equal(gb_rounds_config_check(&d, &err), 0);
    assert_int_equal(d.max_clients, GB_ROUNDS_DEFAULT_MAX_CLIENTS);
    assert_int_equal(gb_rounds_config_check(NULL, &err), GB_EINVAL);

#define BAD(field, value, needle)                                                                  \
    do {                                                                                           \
        c = d;                                                                                     \
        c.field = value;                                                                           \
        s_bad(&c, needle);                                                                         \
    } while (0)
    BAD(min_clients, 0, "min_clients 0");
    BAD(min_clients, d.max_clients + 1, "min_clients 10001");
    BAD(fraction, 0.0, "fraction 0");
    BAD(fraction, -0.5, "fraction -0.5");
    BAD(fraction, 1.5, "fraction 1.5");
    BAD(fraction, NAN, "fraction nan");
    BAD(min_per_round, 0, "min_per_round 0");
    BAD(min_per_round, 3, "min_per_round 3 is out of range 1..min_clients (2)");
    BAD(quorum, 0, "quorum 0");
    BAD(quorum, 3, "quorum 3 is out of range 1..min_per_round (2)");
    BAD(deadline_ms, 0, "deadline_ms 0");
    BAD(deadline_ms, GB_ROUNDS_MAX_DEADLINE_MS + 1, "deadline_ms");
    BAD(backoff_ms, GB_ROUNDS_MAX_BACKOFF_MS + 1, "backoff_ms");
    BAD(max_clients, 0, "max_clients 0");
    BAD(max_clients, GB_ROUNDS_MAX_CLIENTS + 1, "max_clients 1000001");
    BAD(task_id_base, GB_ROUNDS_MAX_TASK_ID_BASE + 1, "task_id_base");
#undef BAD
    assert_null(gb_rounds_new(NULL, 0, &err));

    /* The edges are allowed. */
    c = d;
    c.min_clients = c.min_per_round = c.quorum = 1;
    c.fraction = 1e-9;
    c.deadline_ms = 1;
    c.backoff_ms = 0;
    c.max_clients = 1;
    c.task_id_base = GB_ROUNDS_MAX_TASK_ID_BASE;
    assert_int_equal(gb_rounds_config_check(&c, &err), 0);
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "only", T0);
    acts_t acts;
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].task_id, GB_ROUNDS_MAX_TASK_ID_BASE + 1);
    assert_int_equal(acts.a[0].deadline_ms, T0 + 1);
    gb_rounds_destroy(&r);
}

/* ---- time, queue, memory ------------------------------------------------ */

static void test_time_never_runs_back(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "a", T0 + 5000);
    s_join(r, "b", T0); /* earlier than seen: counts as T0 + 5000 */
    acts_t tasks, acts;
    s_take(r, &tasks);
    assert_int_equal(tasks.a[0].deadline_ms, T0 + 5000 + 60000);
    s_tick(r, T0 + 64999);
    s_none(r);
    s_tick(r, 1); /* a clock stepping back does not reopen anything */
    s_none(r);
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 65000, GB_ROUNDS_CLOSED), GB_EPROTO);
    s_take(r, &acts);
    assert_int_equal(acts.n, 1);
    assert_int_equal(acts.a[0].kind, GB_ROUNDS_ACT_FAILED);
    /* Still closed at an earlier time afterwards. */
    assert_int_equal(s_update(r, &tasks.a[1], T0 + 10, GB_ROUNDS_CLOSED), GB_EPROTO);
    gb_rounds_destroy(&r);
}

static void test_action_queue_bound(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    c.max_clients = 3;
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "a", T0);
    s_join(r, "b", T0); /* two SEND_TASK, not taken */
    gb_error_t err = {0};
    /* Resends on reconnect pile up until the bound (max_clients + 4 = 7). */
    for (int i = 0; i < 5; i++)
        s_join(r, "a", T0 + 1);
    assert_int_equal(gb_rounds_pending(r), 7);
    s_join(r, "a", T0 + 1);
    assert_int_equal(gb_rounds_pending(r), 8);
    snapshot_t before, after;
    s_snap(r, &before);
    assert_int_equal(gb_rounds_join(r, "c", 1, 0, T0 + 2, &err), GB_EAGAIN);
    assert_non_null(strstr(err.msg, "8 actions not taken"));
    assert_int_equal(gb_rounds_leave(r, "a", T0 + 2, &err), GB_EAGAIN);
    assert_int_equal(gb_rounds_tick(r, T0 + 100000, &err), GB_EAGAIN);
    gb_rounds_verdict_t v;
    assert_int_equal(gb_rounds_update(r, "a", 1, 1, 1, T0 + 2, &v, &err), GB_EAGAIN);
    assert_int_equal(v, GB_ROUNDS_BUSY);
    assert_int_equal(gb_rounds_verdict_error_code(v), GLASSBOX__ERROR_CODE__ERROR_BUSY);
    assert_int_equal(gb_rounds_pending(r), 8);
    s_snap(r, &after);
    s_same(&before, &after);
    /* Taking one is not enough to go under; taking them all is. */
    gb_rounds_action_t a;
    assert_true(gb_rounds_next_action(r, &a));
    assert_int_equal(gb_rounds_pending(r), 7);
    s_join(r, "c", T0 + 3);
    acts_t acts;
    s_take(r, &acts);
    assert_int_equal(acts.n, 7);
    assert_false(gb_rounds_next_action(r, &a));
    gb_rounds_destroy(&r);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_rounds_config_t c = s_cfg(2, 2, 1);
    gb_error_t err = {0};
    /* Construction: every allocation point. */
    for (long n = 1;; n++) {
        gb_alloc_fail_after(n);
        gb_rounds_t *r = gb_rounds_new(&c, 0, &err);
        long used = gb_alloc_fail_after(0);
        if (r) {
            gb_rounds_destroy(&r);
            assert_true(used < n);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
    }
    /* A join that needs memory fails cleanly, then succeeds. */
    gb_rounds_t *r = s_new(&c, 0);
    for (long n = 1;; n++) {
        snapshot_t before, after;
        s_snap(r, &before);
        gb_alloc_fail_after(n);
        int rc = gb_rounds_join(r, "a", 1, 0, T0, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        s_snap(r, &after);
        s_same(&before, &after);
        assert_true(n < 10);
    }
    /* Grow the client table past its first allocation under failures too. */
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%02d", i);
        gb_alloc_fail_after(1);
        int rc = gb_rounds_join(r, id, 1, 0, T0, &err);
        gb_alloc_fail_after(0);
        if (rc != 0) {
            assert_int_equal(rc, GB_ENOMEM);
            s_join(r, id, T0);
        }
        gb_rounds_action_t a;
        while (gb_rounds_next_action(r, &a))
            ;
    }
    gb_rounds_status_t st;
    s_status(r, &st);
    assert_int_equal(st.known, 41);
    gb_rounds_destroy(&r);

    /* A result when the queue must grow: out of memory is INTERNAL, and
     * nothing is counted. */
    r = s_new(&c, 0);
    s_join(r, "a", T0);
    s_join(r, "b", T0); /* two tasks, left in the queue (8 slots) */
    s_join(r, "a", T0); /* a reconnect resends: three queued */
    snapshot_t before, after;
    s_snap(r, &before);
    gb_rounds_verdict_t v = GB_ROUNDS_ACCEPTED;
    gb_alloc_fail_after(1);
    int rc = gb_rounds_update(r, "a", 1, 1, 5, T0 + 1, &v, &err);
    gb_alloc_fail_after(0);
    assert_int_equal(rc, GB_ENOMEM);
    assert_int_equal(v, GB_ROUNDS_INTERNAL);
    assert_int_equal(gb_rounds_pending(r), 3);
    s_snap(r, &after);
    s_same(&before, &after);
    assert_int_equal(gb_rounds_update(r, "a", 1, 1, 5, T0 + 1, &v, &err), 0);
    assert_int_equal(v, GB_ROUNDS_ACCEPTED);
    gb_rounds_destroy(&r);
}

/* ---- names and logs ------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_WAITING), "waiting");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_BACKOFF), "backoff");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_TRAINING), "training");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_AGGREGATING), "aggregating");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_EVALUATING), "evaluating");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_PUBLISHING), "publishing");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_CHECKPOINTING), "checkpointing");
    assert_string_equal(gb_rounds_state_name(GB_ROUNDS_DONE), "done");
    assert_string_equal(gb_rounds_state_name((gb_rounds_state_t)99), "?");
    static const char *const acts[] = {"?", "send_task", "feed_update", "feed_eval", "aggregate",
                                       "evaluate", "publish", "checkpoint", "failed",
                                       "finished", "?"};
    for (int k = 0; k <= 10; k++)
        assert_string_equal(gb_rounds_action_name((gb_rounds_action_kind_t)k), acts[k]);
    static const struct {
        const char *name;
        Glassbox__ErrorCode code;
    } v[] = {
        {"accepted", GLASSBOX__ERROR_CODE__ERROR_UNSPECIFIED},
        {"duplicate", GLASSBOX__ERROR_CODE__ERROR_DUPLICATE},
        {"stale_round", GLASSBOX__ERROR_CODE__ERROR_STALE},
        {"closed", GLASSBOX__ERROR_CODE__ERROR_STALE},
        {"wrong_task", GLASSBOX__ERROR_CODE__ERROR_STALE},
        {"not_selected", GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED},
        {"unknown_client", GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED},
        {"not_asked", GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED},
        {"future_round", GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE},
        {"invalid", GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE},
        {"busy", GLASSBOX__ERROR_CODE__ERROR_BUSY},
        {"internal", GLASSBOX__ERROR_CODE__ERROR_INTERNAL},
    };
    for (int i = 0; i < (int)(sizeof v / sizeof v[0]); i++) {
        assert_string_equal(gb_rounds_verdict_name((gb_rounds_verdict_t)i), v[i].name);
        assert_int_equal(gb_rounds_verdict_error_code((gb_rounds_verdict_t)i), v[i].code);
    }
    assert_string_equal(gb_rounds_verdict_name((gb_rounds_verdict_t)99), "?");
    assert_int_equal(gb_rounds_verdict_error_code((gb_rounds_verdict_t)99),
                     GLASSBOX__ERROR_CODE__ERROR_INTERNAL);
}

static char *s_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Asserts that a line of log holds needle and is logged at level. */
static void s_logged(const char *log, const char *level, const char *needle)
{
    const char *at = strstr(log, needle);
    if (!at)
        fail_msg("not logged: %s", needle);
    const char *line = at;
    while (line > log && line[-1] != '\n')
        line--;
    char want[16];
    snprintf(want, sizeof want, "Z %-5s ", level);
    const char *lv = strstr(line, want);
    if (!lv || lv > at)
        fail_msg("not at %s: %.*s", level, (int)(at - line) + (int)strlen(needle), line);
}

/* Actions and state changes at info, with round, client and task ids;
 * refusals at warn. */
static void test_log_lines(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char path[512];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    enum gb_log_level old = gb_log_get_level();
    gb_log_set_level(GB_LOG_INFO);

    gb_rounds_config_t c = s_cfg(2, 2, 1);
    gb_rounds_t *r = s_new(&c, 0);
    s_join(r, "alpha", T0);
    s_join(r, "beta", T0);
    acts_t tasks;
    s_take(r, &tasks);
    gb_error_t err = {0};
    gb_rounds_verdict_t v;
    int rc = gb_rounds_update(r, "beta", 1, 77, 3, T0 + 1, &v, &err);
    assert_int_equal(rc, GB_EPROTO);
    assert_int_equal(s_update(r, &tasks.a[0], T0 + 2, GB_ROUNDS_ACCEPTED), 0);
    gb_rounds_destroy(&r);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    gb_log_set_level(old);
    const char *log = s_read_text(path);
    s_logged(log, "info", "round 1 attempt 1: waiting -> training");
    s_logged(log, "info", "round 1 attempt 1: selected 2 of 2 connected clients (seed 42)");
    s_logged(log, "info", "round 1 attempt 1: send_task: task 1 to client 'alpha'");
    s_logged(log, "info", "round 1 attempt 1: send_task: task 2 to client 'beta'");
    s_logged(log, "info", "round 1: client 'beta' joined (100 training samples)");
    s_logged(log, "info", "round 1 attempt 1: feed_update: client 'alpha' task 1 (10 samples)");
    s_logged(log, "warn", "update from client 'beta' for round 1 task 77 refused (wrong_task)");
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_round_five_clients),
        cmocka_unit_test(test_select_count),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_selection_seeded_and_order_free),
        cmocka_unit_test(test_result_refusals),
        cmocka_unit_test(test_deadline_with_quorum_closes),
        cmocka_unit_test(test_deadline_without_quorum_abandons),
        cmocka_unit_test(test_backoff_caps_and_zero),
        cmocka_unit_test(test_leave_and_rejoin_mid_round),
        cmocka_unit_test(test_refused_results),
        cmocka_unit_test(test_gone_clients_reselect),
        cmocka_unit_test(test_find_client),
        cmocka_unit_test(test_join_leave_errors),
        cmocka_unit_test(test_known_client_bound),
        cmocka_unit_test(test_client_eval),
        cmocka_unit_test(test_step_reports),
        cmocka_unit_test(test_total_rounds_end_the_run),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_time_never_runs_back),
        cmocka_unit_test(test_action_queue_bound),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
