/* Tests for net/event_loop: timers fire in deadline order and on their
 * grid, sockets and descriptors are dispatched, removal from inside a
 * callback holds, sources are asked and called once a turn, and an idle loop
 * sleeps: the poll's timeout is the distance to the nearest deadline. Most
 * tests run on a fake clock and a fake poll that advances it by the timeout
 * it was given, so nothing here depends on how fast the machine is. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "net/event_loop.h"
#include "util/alloc.h"
#include "util/time.h"

/* ---- a fake clock and poll ------------------------------------------------ */

typedef struct {
    double now;          /* the clock */
    long timeouts[16];   /* what each poll was given */
    int polls;           /* how many polls */
    int ready_item;      /* -1, or the item the next poll reports ready */
    short ready_events;  /* what it is ready for */
} s_fake_t;

static double s_fake_clock(void *arg)
{
    return ((s_fake_t *)arg)->now;
}

static int s_fake_poll(zmq_pollitem_t *items, int n, long timeout_ms, void *arg)
{
    s_fake_t *f = arg;
    if (f->polls < 16)
        f->timeouts[f->polls] = timeout_ms;
    f->polls++;
    for (int i = 0; i < n; i++)
        items[i].revents = 0;
    if (f->ready_item >= 0 && f->ready_item < n) {
        items[f->ready_item].revents = f->ready_events;
        f->ready_item = -1;
        return 1;
    }
    if (timeout_ms > 0)
        f->now += timeout_ms / 1000.0; /* slept the whole timeout */
    return 0;
}

static gb_event_loop_t *s_fake_loop(s_fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->now = 100.0;
    f->ready_item = -1;
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    assert_non_null(loop);
    gb_event_loop_set_clock(loop, s_fake_clock, f);
    gb_event_loop_set_poll(loop, s_fake_poll, f);
    return loop;
}

/* ---- a record of callbacks ------------------------------------------------ */

typedef struct {
    int order[32];       /* tags in call order */
    int n;               /* how many calls */
    short revents[32];   /* io: what each was ready for */
    gb_event_loop_t *loop; /* for callbacks that act on the loop */
    uint64_t victim;     /* a registration a callback removes */
    double rearm_at;     /* a timer callback re-arms itself here (0: no) */
    bool stop;           /* a callback stops the loop */
} s_log_t;

typedef struct {
    s_log_t *log; /* shared record */
    int tag;      /* what this registration writes into it */
} s_tag_t;

static void s_note(s_tag_t *t, short revents)
{
    s_log_t *l = t->log;
    if (l->n < 32) {
        l->revents[l->n] = revents;
        l->order[l->n] = t->tag;
    }
    l->n++;
}

static void s_on_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    s_tag_t *t = arg;
    s_note(t, 0);
    if (t->log->victim) {
        gb_event_loop_remove(loop, t->log->victim);
        t->log->victim = 0;
    }
    if (t->log->rearm_at > 0) {
        assert_int_equal(gb_event_loop_timer_set(loop, id, t->log->rearm_at), 0);
        t->log->rearm_at = 0;
    }
    if (t->log->stop)
        gb_event_loop_stop(loop);
}

static void s_on_io(gb_event_loop_t *loop, uint64_t id, short revents, void *arg)
{
    (void)id;
    s_tag_t *t = arg;
    s_note(t, revents);
    if (t->log->victim) {
        gb_event_loop_remove(loop, t->log->victim);
        t->log->victim = 0;
    }
}

/* ---- tests ---------------------------------------------------------------- */

/* What most tests start from: a loop on the fake clock and poll, and an
 * empty record of callbacks. */
typedef struct {
    s_fake_t f;            /* the fake clock and poll */
    gb_event_loop_t *loop; /* on them */
    s_log_t log;           /* what the callbacks did */
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->loop = s_fake_loop(&x->f);
    *state = x;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_destroy(&x->loop);
    free(x);
    return 0;
}

/* A fresh fake loop in place of the fixture's (the clock back at 100 s). */
static gb_event_loop_t *s_fake_renew(s_fix_t *x)
{
    gb_event_loop_destroy(&x->loop);
    return x->loop = s_fake_loop(&x->f);
}

/* Two connected inproc PAIR sockets, a bound and b connected on endpoint,
 * in a context of their own; s_pair_close ends them. */
typedef struct {
    void *ctx, *a, *b;
} s_pair_t;

static s_pair_t s_pair(const char *endpoint)
{
    s_pair_t p = {.ctx = zmq_ctx_new()};
    p.a = zmq_socket(p.ctx, ZMQ_PAIR);
    p.b = zmq_socket(p.ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(p.a, endpoint), 0);
    assert_int_equal(zmq_connect(p.b, endpoint), 0);
    return p;
}

static void s_pair_close(s_pair_t *p)
{
    zmq_close(p->a);
    zmq_close(p->b);
    zmq_ctx_term(p->ctx);
}

static void test_new_destroy(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    assert_non_null(loop);
    assert_int_equal(gb_event_loop_count(loop), 0);
    assert_int_equal(gb_event_loop_last_timeout(loop), -1);
    assert_false(gb_event_loop_stopping(loop));
    gb_event_loop_destroy(&loop);
    assert_null(loop);
    gb_event_loop_destroy(&loop); /* NULL-safe */
    gb_event_loop_destroy(NULL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    int dummy = 0;
    assert_int_equal(gb_event_loop_add_socket(loop, NULL, ZMQ_POLLIN, s_on_io, NULL, &err), 0);
    assert_int_equal(err.code, GB_EINVAL);
    assert_int_equal(gb_event_loop_add_socket(loop, &dummy, 0, s_on_io, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_socket(loop, &dummy, ZMQ_POLLIN, NULL, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_fd(loop, -1, ZMQ_POLLIN, s_on_io, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "-1"));
    assert_int_equal(gb_event_loop_add_timer(loop, 1.0, 0, NULL, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_timer(loop, NAN, 0, s_on_timer, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_timer(loop, 1.0, -1.0, s_on_timer, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_timer(loop, 1.0, INFINITY, s_on_timer, NULL, &err), 0);
    assert_int_equal(err.code, GB_EINVAL);
    assert_int_equal(gb_event_loop_count(loop), 0);
    /* ids that are not live */
    assert_int_equal(gb_event_loop_set_events(loop, 0, ZMQ_POLLIN), GB_EINVAL);
    assert_int_equal(gb_event_loop_set_events(loop, 12345, ZMQ_POLLIN), GB_EINVAL);
    assert_int_equal(gb_event_loop_timer_set(loop, 0, 1.0), GB_EINVAL);
    gb_event_loop_remove(loop, 0);
    gb_event_loop_remove(loop, 99);
    /* a timer is not a socket, and the other way round */
    uint64_t t = gb_event_loop_add_timer(loop, HUGE_VAL, 0, s_on_timer, NULL, &err);
    assert_true(t != 0);
    assert_int_equal(gb_event_loop_set_events(loop, t, ZMQ_POLLIN), GB_EINVAL);
    assert_int_equal(gb_event_loop_timer_set(loop, t, NAN), GB_EINVAL);
    uint64_t f = gb_event_loop_add_fd(loop, 0, ZMQ_POLLIN, s_on_io, NULL, &err);
    assert_true(f != 0);
    assert_int_equal(gb_event_loop_timer_set(loop, f, 1.0), GB_EINVAL);
    /* a removed id stays dead even when its slot is taken again */
    gb_event_loop_remove(loop, f);
    uint64_t g = gb_event_loop_add_fd(loop, 0, ZMQ_POLLIN, s_on_io, NULL, &err);
    assert_true(g != 0 && g != f);
    assert_int_equal(gb_event_loop_set_events(loop, f, ZMQ_POLLIN), GB_EINVAL);
    assert_int_equal(gb_event_loop_set_events(loop, g, ZMQ_POLLOUT), 0);
    assert_int_equal(gb_event_loop_count(loop), 2);
    gb_event_loop_destroy(&loop);
}

static void test_nothing_to_wait_for(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    /* no items, no timers, no timeout: the turn would never end */
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), GB_EINVAL);
    assert_int_equal(x->f.polls, 0);
    /* a disarmed timer does not count either */
    s_tag_t t = {&x->log, 1};
    assert_true(gb_event_loop_add_timer(loop, HUGE_VAL, 0, s_on_timer, &t, &err) != 0);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), GB_EINVAL);
    /* with a timeout it sleeps that long */
    assert_int_equal(gb_event_loop_run_once(loop, 40, &err), 0);
    assert_int_equal(x->f.timeouts[0], 40);
    assert_int_equal(x->log.n, 0);
}

static void test_timers_ordered(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t a = {&x->log, 30}, b = {&x->log, 10}, c = {&x->log, 20}, d = {&x->log, 21};
    /* eighths of a second: exact in binary, so the expected timeouts are exact */
    assert_true(gb_event_loop_add_timer(loop, 100.375, 0, s_on_timer, &a, &err));
    assert_true(gb_event_loop_add_timer(loop, 100.125, 0, s_on_timer, &b, &err));
    assert_true(gb_event_loop_add_timer(loop, 100.25, 0, s_on_timer, &c, &err));
    assert_true(gb_event_loop_add_timer(loop, 100.25, 0, s_on_timer, &d, &err)); /* tie */
    for (int turn = 0; turn < 3; turn++)
        assert_true(gb_event_loop_run_once(loop, -1, &err) >= 1);
    assert_int_equal(x->log.n, 4);
    assert_int_equal(x->log.order[0], 10);
    assert_int_equal(x->log.order[1], 20);
    assert_int_equal(x->log.order[2], 21); /* the tie in registration order */
    assert_int_equal(x->log.order[3], 30);
    /* each poll slept exactly until the next deadline: no busy wait */
    assert_int_equal(x->f.polls, 3);
    assert_int_equal(x->f.timeouts[0], 125);
    assert_int_equal(x->f.timeouts[1], 125);
    assert_int_equal(x->f.timeouts[2], 125);
    /* one-shots fired once and stay registered, disarmed */
    assert_int_equal(gb_event_loop_count(loop), 4);
    assert_int_equal(gb_event_loop_run_once(loop, 0, &err), 0);
    assert_int_equal(x->log.n, 4);
    /* a timeout shorter than the nearest deadline wins */
    assert_true(gb_event_loop_add_timer(loop, x->f.now + 1.0, 0, s_on_timer, &a, &err));
    assert_int_equal(gb_event_loop_run_once(loop, 5, &err), 0);
    assert_int_equal(gb_event_loop_last_timeout(loop), 5);
    /* a deadline that passed gives a poll that does not wait */
    assert_true(gb_event_loop_add_timer(loop, x->f.now - 3.0, 0, s_on_timer, &b, &err));
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(gb_event_loop_last_timeout(loop), 0);
    assert_int_equal(x->log.order[4], 10);
}

static void test_timeout_rounds_up(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t a = {&x->log, 1};
    /* 2.2 ms away: a 2 ms poll would wake before it and spin; 3 ms does not */
    assert_true(gb_event_loop_add_timer(loop, 100.0022, 0, s_on_timer, &a, &err));
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->f.timeouts[0], 3);
    assert_int_equal(x->log.n, 1);
}

static void test_periodic_grid(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t a = {&x->log, 1};
    uint64_t id = gb_event_loop_add_timer(loop, 100.25, 0.25, s_on_timer, &a, &err);
    assert_true(id);
    for (int turn = 0; turn < 4; turn++)
        assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->log.n, 4);
    for (int turn = 0; turn < 4; turn++)
        assert_int_equal(x->f.timeouts[turn], 250);
    assert_true(fabs(x->f.now - 101.0) < 1e-9);
    /* busy for 1.125 s: one call, not four, and back on the grid (101.25 + k/4) */
    x->f.now += 1.125;
    assert_int_equal(gb_event_loop_run_once(loop, 0, &err), 1);
    assert_int_equal(x->log.n, 5);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->f.timeouts[5], 125); /* 102.125 -> 102.25 */
    /* moved by timer_set, and disarmed */
    assert_int_equal(gb_event_loop_timer_set(loop, id, x->f.now + 0.0625), 0);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->f.timeouts[6], 63); /* 62.5 rounded up */
    assert_int_equal(gb_event_loop_timer_set(loop, id, HUGE_VAL), 0);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), GB_EINVAL);
}

static void test_timer_callbacks_change_timers(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t a = {&x->log, 1}, b = {&x->log, 2};
    /* both due in the same turn; the first removes the second */
    assert_true(gb_event_loop_add_timer(loop, 100.125, 0, s_on_timer, &a, &err));
    uint64_t second = gb_event_loop_add_timer(loop, 100.125, 0, s_on_timer, &b, &err);
    x->log.victim = second;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->log.n, 1);
    assert_int_equal(x->log.order[0], 1);
    assert_int_equal(gb_event_loop_count(loop), 1);
    assert_int_equal(gb_event_loop_timer_set(loop, second, 1.0), GB_EINVAL);
    /* a one-shot re-arms itself from its own callback */
    loop = s_fake_renew(x);
    memset(&x->log, 0, sizeof x->log);
    uint64_t t = gb_event_loop_add_timer(loop, 100.125, 0, s_on_timer, &a, &err);
    assert_true(t);
    x->log.rearm_at = 100.25;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->f.timeouts[1], 125);
    assert_int_equal(x->log.n, 2);
}

static void s_on_timer_adds(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)id;
    s_tag_t *t = arg;
    s_note(t, 0);
    gb_error_t err = {0};
    /* due at once: it must wait for the next turn, not run in this one */
    assert_true(gb_event_loop_add_timer(loop, 0.0, 0, s_on_timer, t + 1, &err));
}

static void test_timer_added_in_turn_waits(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t tags[2] = {{&x->log, 1}, {&x->log, 2}};
    assert_true(gb_event_loop_add_timer(loop, 100.0, 0, s_on_timer_adds, &tags[0], &err));
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->log.n, 1);
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(gb_event_loop_last_timeout(loop), 0);
    assert_int_equal(x->log.n, 2);
    assert_int_equal(x->log.order[1], 2);
}

static void s_on_timer_stop_at_4(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)id;
    s_tag_t *t = arg;
    s_note(t, 0);
    if (t->log->n >= 4)
        gb_event_loop_stop(loop);
}

static void test_run_and_stop(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t a = {&x->log, 1}, b = {&x->log, 2};
    assert_true(gb_event_loop_add_timer(loop, 100.125, 0.125, s_on_timer_stop_at_4, &a, &err));
    assert_true(gb_event_loop_add_timer(loop, 100.375, 0, s_on_timer_stop_at_4, &b, &err));
    gb_event_loop_stop(loop); /* a stop before run is cleared by run */
    assert_int_equal(gb_event_loop_run(loop, &err), 0);
    assert_true(gb_event_loop_stopping(loop));
    /* three turns: a, a, then a and b together (the fourth call stops) */
    assert_int_equal(x->f.polls, 3);
    assert_int_equal(x->log.n, 4);
    assert_int_equal(x->log.order[0], 1);
    assert_int_equal(x->log.order[1], 1);
    assert_int_equal(x->log.order[2], 1);
    assert_int_equal(x->log.order[3], 2);
    /* a failing turn ends run with its error */
    loop = s_fake_renew(x);
    assert_int_equal(gb_event_loop_run(loop, &err), GB_EINVAL);
}

static void test_sockets_and_fds_dispatched(void **state)
{
    (void)state;
    s_pair_t pair = s_pair("inproc://event-loop");
    void *a = pair.a, *b = pair.b;
    int p[2];
    assert_int_equal(pipe(p), 0);

    gb_error_t err = {0};
    gb_event_loop_t *loop = gb_event_loop_new(&err);
    s_log_t log = {0};
    s_tag_t ta = {&log, 1}, tp = {&log, 2}, tt = {&log, 3};
    uint64_t sa = gb_event_loop_add_socket(loop, a, ZMQ_POLLIN, s_on_io, &ta, &err);
    uint64_t fp = gb_event_loop_add_fd(loop, p[0], ZMQ_POLLIN, s_on_io, &tp, &err);
    assert_true(sa && fp);
    /* nothing ready: the poll waits for the timeout and calls nothing */
    assert_int_equal(gb_event_loop_run_once(loop, 1, &err), 0);
    assert_int_equal(log.n, 0);

    assert_int_equal(zmq_send(b, "x", 1, 0), 1);
    assert_int_equal(gb_event_loop_run_once(loop, 5000, &err), 1);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.order[0], 1);
    assert_true(log.revents[0] & ZMQ_POLLIN);
    char buf[4];
    assert_int_equal(zmq_recv(a, buf, sizeof buf, 0), 1);

    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(gb_event_loop_run_once(loop, 5000, &err), 1);
    assert_int_equal(log.order[1], 2);
    assert_int_equal(read(p[0], buf, 1), 1);

    /* POLLOUT asked for: a PAIR with a peer has room at once */
    assert_int_equal(gb_event_loop_set_events(loop, sa, ZMQ_POLLOUT), 0);
    assert_int_equal(gb_event_loop_run_once(loop, 5000, &err), 1);
    assert_true(log.revents[2] & ZMQ_POLLOUT);
    /* events 0: registered but not polled */
    assert_int_equal(gb_event_loop_set_events(loop, sa, 0), 0);
    assert_int_equal(gb_event_loop_run_once(loop, 0, &err), 0);
    assert_int_equal(log.n, 3);

    /* a real timer with a real socket: the turn ends at the timer, with a
     * poll timeout no longer than the timer's distance */
    assert_int_equal(gb_event_loop_set_events(loop, sa, ZMQ_POLLIN), 0);
    assert_true(gb_event_loop_add_timer(loop, gb_time_now() + 0.02, 0, s_on_timer, &tt, &err));
    int rc;
    while ((rc = gb_event_loop_run_once(loop, -1, &err)) == 0) {
    }
    assert_int_equal(rc, 1);
    assert_true(gb_event_loop_last_timeout(loop) >= 0 && gb_event_loop_last_timeout(loop) <= 20);
    assert_int_equal(log.order[3], 3);

    gb_event_loop_destroy(&loop);
    close(p[0]);
    close(p[1]);
    s_pair_close(&pair);
}

static void test_removal_during_dispatch(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    s_tag_t t1 = {&x->log, 1}, t2 = {&x->log, 2}, t3 = {&x->log, 3};
    int dummy1, dummy2;
    uint64_t first = gb_event_loop_add_socket(loop, &dummy1, ZMQ_POLLIN, s_on_io, &t1, &err);
    uint64_t second = gb_event_loop_add_socket(loop, &dummy2, ZMQ_POLLIN, s_on_io, &t2, &err);
    uint64_t timer = gb_event_loop_add_timer(loop, 100.0, 0, s_on_timer, &t3, &err);
    assert_true(first && second && timer);
    /* item 0 ready; its callback removes the timer due in the same turn */
    x->log.victim = timer;
    x->f.ready_item = 0;
    x->f.ready_events = ZMQ_POLLIN;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->log.n, 1);
    assert_int_equal(x->log.order[0], 1);
    /* the fake poll reports both sockets ready; the first removes the second */
    gb_event_loop_set_poll(loop, NULL, NULL);
    x->log.victim = second;
    x->log.n = 0;
    /* real sockets for this part */
    gb_event_loop_remove(loop, first);
    gb_event_loop_remove(loop, second);
    s_pair_t pair = s_pair("inproc://event-loop-rm");
    first = gb_event_loop_add_socket(loop, pair.a, ZMQ_POLLOUT, s_on_io, &t1, &err);
    second = gb_event_loop_add_socket(loop, pair.b, ZMQ_POLLOUT, s_on_io, &t2, &err);
    x->log.victim = second;
    assert_int_equal(gb_event_loop_run_once(loop, 5000, &err), 1);
    assert_int_equal(x->log.n, 1);
    assert_int_equal(x->log.order[0], 1);
    assert_int_equal(gb_event_loop_count(loop), 1); /* the timer and second are gone */
    s_pair_close(&pair);
}

/* ---- sources -------------------------------------------------------------- */

typedef struct {
    void *socket;       /* what it waits on (NULL: nothing) */
    double deadline;    /* what it says */
    int fills;          /* fill calls */
    int readies;        /* ready calls */
    gb_event_loop_t *loop; /* to remove itself */
    uint64_t self;      /* its id */
    uint64_t victim;    /* removed by its ready (0: none) */
} s_source_t;

static int s_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    s_source_t *s = arg;
    s->fills++;
    *deadline = s->deadline;
    if (!s->socket || cap < 1)
        return 0;
    items[0] = (zmq_pollitem_t){.socket = s->socket, .events = ZMQ_POLLIN};
    return 1;
}

static void s_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    s_source_t *s = arg;
    assert_int_equal(id, s->self);
    s->readies++;
    s->deadline = HUGE_VAL; /* served */
    if (s->victim) {
        gb_event_loop_remove(loop, s->victim);
        s->victim = 0;
    }
}

static void test_sources(void **state)
{
    s_fix_t *x = *state;
    gb_event_loop_t *loop = x->loop;
    gb_error_t err = {0};
    assert_int_equal(gb_event_loop_add_source(loop, 0, s_fill, s_ready, NULL, &err), 0);
    assert_int_equal(err.code, GB_EINVAL);
    assert_int_equal(
        gb_event_loop_add_source(loop, GB_EVENT_SOURCE_MAX_ITEMS + 1, s_fill, s_ready, NULL, &err),
        0);
    assert_int_equal(gb_event_loop_add_source(loop, 1, NULL, s_ready, NULL, &err), 0);
    assert_int_equal(gb_event_loop_add_source(loop, 1, s_fill, NULL, NULL, &err), 0);

    int dummy1, dummy2;
    s_source_t a = {.socket = &dummy1, .deadline = 100.125};
    s_source_t b = {.socket = &dummy2, .deadline = 100.25};
    a.self = gb_event_loop_add_source(loop, 2, s_fill, s_ready, &a, &err);
    b.self = gb_event_loop_add_source(loop, 2, s_fill, s_ready, &b, &err);
    assert_true(a.self && b.self);
    /* the nearest source deadline bounds the poll; only a is due */
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(x->f.timeouts[0], 125);
    assert_int_equal(a.readies, 1);
    assert_int_equal(b.readies, 0);
    assert_int_equal(a.fills, 1);
    assert_int_equal(b.fills, 1);
    /* b's item ready (item 1: a's one item, then b's) and its deadline
     * come at once: one call */
    b.deadline = 100.0;
    x->f.ready_item = 1;
    x->f.ready_events = ZMQ_POLLIN;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(b.readies, 1);
    assert_int_equal(a.readies, 1);
    /* a ready removes b, which is due in the same turn: b is not called */
    a.deadline = b.deadline = 0.0;
    a.victim = b.self;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), 1);
    assert_int_equal(a.readies, 2);
    assert_int_equal(b.readies, 1);
    assert_int_equal(gb_event_loop_count(loop), 1);
    /* a source with nothing to wait for and no deadline: nothing to do */
    a.socket = NULL;
    a.deadline = HUGE_VAL;
    assert_int_equal(gb_event_loop_run_once(loop, -1, &err), GB_EINVAL);
}

/* ---- gb_event_loop_wait: the private loop of an object not attached -------- */

/* The private loop's source: counts (its id is the private loop's). */
static void s_wait_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    s_source_t *s = arg;
    s->readies++;
}

/* Over (7) once the source was ready twice; an error while victim is 1. */
static int s_wait_check(void *arg, gb_error_t *err)
{
    const s_source_t *s = arg;
    if (s->victim == 1)
        return gb_error_set(err, GB_EPROTO, "check failed");
    return s->readies >= 2 ? 7 : 0;
}

static void test_wait(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_event_loop_t *own = NULL;
    s_source_t s = {.deadline = 0.0}; /* due at once, no items: no real wait */
    const gb_event_wait_t how = {.max_items = 1, .fill = s_fill, .ready = s_wait_ready, .arg = &s,
                                 .check = s_wait_check, .check_arg = &s, .who = "thing: "};
    /* timeout 0: no turn, but the loop is made (and kept) */
    assert_int_equal(gb_event_loop_wait(&own, &how, 0, &err), 0);
    assert_non_null(own);
    gb_event_loop_t *first = own;
    assert_int_equal(s.fills, 0);
    /* turns until the check says over; its value is returned */
    assert_int_equal(gb_event_loop_wait(&own, &how, -1, &err), 7);
    assert_int_equal(s.readies, 2);
    assert_ptr_equal(own, first);
    assert_int_equal(gb_event_loop_count(own), 1); /* one source, not one a call */
    /* the check's error as it is */
    s.victim = 1;
    assert_int_equal(gb_event_loop_wait(&own, &how, -1, &err), GB_EPROTO);
    assert_string_equal(err.msg, "check failed");
    s.victim = 0;
    /* the time runs out: 0 */
    s.readies = 0;
    s.deadline = HUGE_VAL;
    s_source_t quiet = {.deadline = HUGE_VAL};
    gb_event_loop_t *own2 = NULL;
    const gb_event_wait_t none = {.max_items = 1, .fill = s_fill, .ready = s_wait_ready,
                                  .arg = &quiet, .check = s_wait_check, .check_arg = &quiet};
    assert_int_equal(gb_event_loop_wait(&own2, &none, 5, &err), 0);
    assert_true(quiet.fills >= 1);
    assert_int_equal(quiet.readies, 0);
    /* the loop's own error, prefixed with who: nothing to wait for, no limit */
    assert_int_equal(gb_event_loop_wait(&own, &how, -1, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "thing: event loop: nothing to wait for"));
    gb_event_loop_destroy(&own);
    gb_event_loop_destroy(&own2);
    /* out of memory making the loop: GB_ENOMEM, nothing kept */
    for (long k = 1; k < 4; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_event_loop_wait(&own, &how, 0, &err);
        gb_alloc_fail_after(0);
        assert_true(rc == 0 || rc == GB_ENOMEM);
        assert_true(rc == 0 ? own != NULL : own == NULL);
        gb_event_loop_destroy(&own);
    }
}

static void test_alloc_failure(void **state)
{
    (void)state;
    for (long k = 1; k < 10; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_event_loop_t *loop = gb_event_loop_new(&err);
        uint64_t id = 0;
        if (loop) {
            s_log_t log = {0};
            s_tag_t t = {&log, 1};
            id = gb_event_loop_add_timer(loop, 0.0, 0, s_on_timer, &t, &err);
            if (id) {
                int rc = gb_event_loop_run_once(loop, 0, &err);
                assert_true(rc == 1 || rc == GB_ENOMEM);
                if (rc == GB_ENOMEM)
                    assert_int_equal(log.n, 0);
            } else {
                assert_int_equal(err.code, GB_ENOMEM);
            }
        } else {
            assert_int_equal(err.code, GB_ENOMEM);
        }
        gb_alloc_fail_after(0);
        gb_event_loop_destroy(&loop);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_destroy),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup_teardown(test_nothing_to_wait_for, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timers_ordered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_rounds_up, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_periodic_grid, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timer_callbacks_change_timers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timer_added_in_turn_waits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_run_and_stop, s_setup, s_teardown),
        cmocka_unit_test(test_sockets_and_fds_dispatched),
        cmocka_unit_test_setup_teardown(test_removal_during_dispatch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sources, s_setup, s_teardown),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
