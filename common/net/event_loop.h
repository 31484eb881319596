/* One event loop per process (issue 13), shaped as Redis's ae: one poll set
 * with timers, one zmq_poll that waits until the nearest deadline and no
 * longer, then the callbacks of what is ready and of the timers that came.
 *
 * What can be registered:
 *   - a ZeroMQ socket or a plain descriptor, with the events to wait for
 *     (ZMQ_POLLIN, ZMQ_POLLOUT) and a readiness callback;
 *   - a timer, one-shot or periodic, on gb_time_now's monotonic clock;
 *   - a source: an object that already knows what it waits on and when
 *     (the link client, a daemon, the link server: poll_items plus
 *     next_deadline). Before every poll the loop asks it to fill its items
 *     and its deadline; after the poll it calls its ready callback once if
 *     any of its items is ready or its deadline has come. That is how
 *     objects whose wants change with every message join the one poll
 *     without re-registering after each send.
 *
 * Every registration has an id (never 0, never reused by a later
 * registration in the same loop); gb_event_loop_remove ends any of them,
 * also from inside a callback of the same loop (a removed registration is
 * not called again, even later in the same dispatch).
 *
 * Order within one turn: sockets and descriptors in the order they were
 * registered, then sources in that order, then the timers that are due, earliest deadline first
 * (ties: registration order); a timer registered during the turn waits for
 * the next one. A periodic timer keeps its grid: its next
 * deadline is the first multiple of its period after now, so a loop that
 * was busy skips the missed ticks instead of firing them in a burst.
 *
 * Not thread-safe: one thread registers, runs and removes.
 *
 * Ownership: gb_event_loop_new returns a loop the caller owns
 * (gb_event_loop_destroy). Sockets, descriptors and callback arguments are
 * borrowed: the loop never reads, writes or closes them, and they must
 * outlive their registration. */
#ifndef GB_NET_EVENT_LOOP_H
#define GB_NET_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <zmq.h>

#include "util/error.h"

typedef struct gb_event_loop gb_event_loop_t;

/* A socket or descriptor is ready: revents holds what it is ready for. */
typedef void (*gb_event_io_fn)(gb_event_loop_t *loop, uint64_t id, short revents, void *arg);

/* A timer's deadline came. */
typedef void (*gb_event_timer_fn)(gb_event_loop_t *loop, uint64_t id, void *arg);

/* A source, before each poll: fill up to cap items (socket or fd, and
 * events; revents is ignored) and *deadline (gb_time_now's clock; HUGE_VAL:
 * none; now or earlier: at once), and return how many items were filled.
 * It must not register or remove anything in the loop: the turn's poll
 * array is being built. */
typedef int (*gb_event_fill_fn)(void *arg, zmq_pollitem_t *items, int cap, double *deadline);

/* A source, after the poll: one of its items is ready or its deadline came.
 * Called at most once a turn. */
typedef void (*gb_event_ready_fn)(gb_event_loop_t *loop, uint64_t id, void *arg);

/* For tests: the clock (seconds, monotonic) and the poll the loop uses
 * instead of gb_time_now and zmq_poll. The poll returns as zmq_poll does
 * (the number ready, or -1 with errno). */
typedef double (*gb_event_clock_fn)(void *arg);
typedef int (*gb_event_poll_fn)(zmq_pollitem_t *items, int n, long timeout_ms, void *arg);

/* A source's items, most. */
#define GB_EVENT_SOURCE_MAX_ITEMS 8

/* Returns an empty loop, or NULL with err filled (GB_ENOMEM). */
gb_event_loop_t *gb_event_loop_new(gb_error_t *err);

/* Frees the loop (not what was registered); sets *loop to NULL; NULL-safe.
 * Not from inside one of its callbacks. */
void gb_event_loop_destroy(gb_event_loop_t **loop);

/* Registers a ZeroMQ socket (add_socket) or a plain descriptor (add_fd)
 * with the events to wait for. Returns its id, or 0 with err filled
 * (GB_EINVAL: no socket, a negative descriptor, no callback or no events
 * asked for; GB_ENOMEM). Polled from the next turn on. */
uint64_t gb_event_loop_add_socket(gb_event_loop_t *loop, void *socket, short events,
                                  gb_event_io_fn fn, void *arg, gb_error_t *err) GB_MUST_CHECK;
uint64_t gb_event_loop_add_fd(gb_event_loop_t *loop, int fd, short events, gb_event_io_fn fn,
                              void *arg, gb_error_t *err) GB_MUST_CHECK;

/* Changes the events a socket or descriptor waits for (0: none for now; it
 * stays registered). Returns 0, or GB_EINVAL for an id that is not a live
 * socket or descriptor of this loop. */
int gb_event_loop_set_events(gb_event_loop_t *loop, uint64_t id, short events) GB_MUST_CHECK;

/* Registers a timer: first deadline at (gb_time_now's clock; HUGE_VAL:
 * disarmed until gb_event_loop_timer_set), then every period seconds
 * (0: one-shot). A one-shot timer that fired stays registered, disarmed,
 * so its owner can arm it again. Returns its id, or 0 with err filled
 * (GB_EINVAL: no callback, a negative or NaN period or deadline; GB_ENOMEM). */
uint64_t gb_event_loop_add_timer(gb_event_loop_t *loop, double at, double period,
                                 gb_event_timer_fn fn, void *arg, gb_error_t *err) GB_MUST_CHECK;

/* Moves a timer's next deadline to at (HUGE_VAL: disarm). Returns 0, or
 * GB_EINVAL for an id that is not a live timer of this loop or a NaN at. */
int gb_event_loop_timer_set(gb_event_loop_t *loop, uint64_t id, double at) GB_MUST_CHECK;

/* Registers a source (see above) of at most max_items items
 * (1..GB_EVENT_SOURCE_MAX_ITEMS). Returns its id, or 0 with err filled
 * (GB_EINVAL: a missing callback or max_items out of range; GB_ENOMEM). */
uint64_t gb_event_loop_add_source(gb_event_loop_t *loop, int max_items, gb_event_fill_fn fill,
                                  gb_event_ready_fn ready, void *arg,
                                  gb_error_t *err) GB_MUST_CHECK;

/* Ends a registration of any kind; an id that is not live (removed
 * already, 0, another loop's) is ignored. Safe inside callbacks. */
void gb_event_loop_remove(gb_event_loop_t *loop, uint64_t id);

/* One turn: asks the sources for their items and deadlines, polls every
 * registered socket and descriptor until the nearest deadline of any timer
 * or source, or timeout_ms (-1: no limit but the deadlines; 0: do not
 * wait), whichever comes first, then dispatches (see above). The wait is
 * rounded up to the millisecond: a poll that woke just before a deadline
 * would find nothing due and poll again at once, a spin. Returns the
 * number of callbacks made (0 on a timeout, or when a signal cut the poll
 * short: the caller looks at its flags), or GB_EIO with err filled when
 * the poll itself failed, or GB_EINVAL when there is nothing to wait for
 * and timeout_ms is -1 (the turn would never end). */
int gb_event_loop_run_once(gb_event_loop_t *loop, int timeout_ms, gb_error_t *err) GB_MUST_CHECK;

/* Runs turns until gb_event_loop_stop is called (from a callback) or a turn
 * fails. Clears the stop flag first. Returns 0 after a stop, or what the
 * failed turn returned. */
int gb_event_loop_run(gb_event_loop_t *loop, gb_error_t *err) GB_MUST_CHECK;

/* Asks gb_event_loop_run to return after the current turn. */
void gb_event_loop_stop(gb_event_loop_t *loop);

/* True between gb_event_loop_stop and the next gb_event_loop_run. */
bool gb_event_loop_stopping(const gb_event_loop_t *loop);

/* The timeout, in milliseconds, the last turn gave its poll (-1: none): what
 * tests look at to see that an idle loop sleeps until its deadline. */
long gb_event_loop_last_timeout(const gb_event_loop_t *loop);

/* Registrations of every kind now live. */
int gb_event_loop_count(const gb_event_loop_t *loop);

/* After each turn of gb_event_loop_wait: > 0 the wait is over (what it
 * waited for came), 0 wait on, < 0 an error to return as it is. */
typedef int (*gb_event_check_fn)(void *arg, gb_error_t *err);

/* What gb_event_loop_wait makes its private loop of and waits for. */
typedef struct {
    int max_items;          /* the source's items, as gb_event_loop_add_source */
    gb_event_fill_fn fill;  /* the source's fill callback */
    gb_event_ready_fn ready; /* the source's ready callback */
    void *arg;              /* their argument */
    gb_event_check_fn check; /* asked after every turn */
    void *check_arg;        /* its argument */
    const char *who;        /* prefixes the loop's own errors ("link client: "); NULL: none */
} gb_event_wait_t;

/* The one private-loop fallback for an object that waits but is not
 * attached to a loop (a one-shot command's link, a test's daemon): on the
 * first call makes *own, a loop whose only source is the object (w's
 * fill, ready, arg), then runs its turns, each sleeping until the
 * source's deadline or the time left, until w->check says the wait is
 * over or timeout_ms passed (-1: no limit; 0 returns at once, no turn).
 * Returns w->check's positive value, 0 when the time is up, or a negative
 * code: check's as it is, GB_ENOMEM or the loop's with err filled.
 * The caller owns *own (gb_event_loop_destroy) and keeps it between calls. */
int gb_event_loop_wait(gb_event_loop_t **own, const gb_event_wait_t *w, int timeout_ms,
                       gb_error_t *err) GB_MUST_CHECK;

/* For tests: replace the clock and the poll (NULL: gb_time_now, zmq_poll). */
void gb_event_loop_set_clock(gb_event_loop_t *loop, gb_event_clock_fn clock, void *arg);
void gb_event_loop_set_poll(gb_event_loop_t *loop, gb_event_poll_fn poll, void *arg);

#endif
