/* The process's one event loop (net/event_loop.h).
 *
 * Registrations of every kind live in one growable array of slots; an id is
 * the slot number in its low 32 bits and a generation in its high 32 (never
 * 0, as link_server.c's handles), so a stale id never reaches the
 * registration that took its slot later. The poll array is rebuilt each
 * turn from the live slots: that costs a pass over a few hundred slots at
 * most (100 virtual clients) per wake-up, and it makes removal during
 * dispatch trivial (the turn's array keeps the ids it was built from, and a
 * slot whose id changed is skipped). Timers are found by a scan as well, as
 * Redis's ae does: the loops here hold tens of them, not millions, and a
 * heap would be more code to get wrong for no measurable gain.
 *
 * Nothing allocates in a turn once the arrays have grown to the number of
 * registrations. */
#include "net/event_loop.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/time.h"

typedef enum { S_FREE = 0, S_SOCKET, S_FD, S_TIMER, S_SOURCE } s_kind_t;

typedef struct {
    s_kind_t kind;          /* S_FREE while the slot is unused */
    uint64_t id;            /* generation << 32 | slot (0 while free) */
    uint64_t seq;           /* registration order, for ties between timers */
    void *socket;           /* S_SOCKET */
    int fd;                 /* S_FD */
    short events;           /* S_SOCKET, S_FD: what to wait for */
    double at;              /* S_TIMER: next deadline (HUGE_VAL: disarmed); S_SOURCE:
                               this turn's deadline */
    double period;          /* S_TIMER: 0 for one-shot */
    int max_items;          /* S_SOURCE: items it may fill */
    int first_item;         /* S_SOURCE, S_SOCKET, S_FD: first item this turn (-1: none) */
    int n_items;            /* S_SOURCE: items filled this turn */
    gb_event_io_fn io;      /* S_SOCKET, S_FD */
    gb_event_timer_fn timer; /* S_TIMER */
    gb_event_fill_fn fill;  /* S_SOURCE */
    gb_event_ready_fn ready; /* S_SOURCE */
    void *arg;              /* passed to the callbacks */
} s_entry_t;

struct gb_event_loop {
    s_entry_t *entries;      /* cap slots */
    int cap;                 /* slots allocated */
    int live;                /* registrations live */
    uint32_t generation;     /* for the next id */
    uint64_t seq;            /* for the next registration */
    zmq_pollitem_t *items;   /* this turn's poll array */
    uint64_t *item_ids;      /* the registration each item came from */
    int items_cap;           /* both arrays' length */
    uint64_t *due;           /* this turn's due timers */
    int due_cap;             /* its length */
    bool stop;               /* gb_event_loop_stop was called */
    long last_timeout;       /* what the last poll was given */
    gb_event_clock_fn clock; /* NULL: gb_time_now */
    void *clock_arg;         /* its argument */
    gb_event_poll_fn poll;   /* NULL: zmq_poll */
    void *poll_arg;          /* its argument */
};

static double s_now(const gb_event_loop_t *loop)
{
    return loop->clock ? loop->clock(loop->clock_arg) : gb_time_now();
}

static s_entry_t *s_lookup(gb_event_loop_t *loop, uint64_t id)
{
    uint32_t slot = (uint32_t)id;
    if (!id || slot >= (uint32_t)loop->cap || loop->entries[slot].id != id)
        return NULL;
    return &loop->entries[slot];
}

/* A free slot, the array grown if need be; NULL when out of memory. */
static s_entry_t *s_take(gb_event_loop_t *loop, s_kind_t kind, void *arg, gb_error_t *err)
{
    int slot = -1;
    for (int i = 0; i < loop->cap; i++)
        if (loop->entries[i].kind == S_FREE) {
            slot = i;
            break;
        }
    if (slot < 0) {
        int cap = loop->cap ? loop->cap * 2 : 16;
        s_entry_t *e = gb_realloc(loop->entries, (size_t)cap * sizeof *e);
        if (!e) {
            gb_error_set(err, GB_ENOMEM, "event loop: out of memory for %d registrations", cap);
            return NULL;
        }
        memset(e + loop->cap, 0, (size_t)(cap - loop->cap) * sizeof *e);
        slot = loop->cap;
        loop->entries = e;
        loop->cap = cap;
    }
    if (++loop->generation == 0) /* generation 0 with slot 0 would be id 0: "none" */
        loop->generation = 1;
    s_entry_t *e = &loop->entries[slot];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->id = ((uint64_t)loop->generation << 32) | (uint32_t)slot;
    e->seq = ++loop->seq;
    e->arg = arg;
    e->first_item = -1;
    e->at = HUGE_VAL;
    loop->live++;
    return e;
}

gb_event_loop_t *gb_event_loop_new(gb_error_t *err)
{
    gb_event_loop_t *loop = gb_calloc(1, sizeof *loop);
    if (!loop) {
        gb_error_set(err, GB_ENOMEM, "event loop: out of memory");
        return NULL;
    }
    loop->last_timeout = -1;
    return loop;
}

void gb_event_loop_destroy(gb_event_loop_t **ploop)
{
    if (!ploop || !*ploop)
        return;
    gb_event_loop_t *loop = *ploop;
    gb_free(loop->entries);
    gb_free(loop->items);
    gb_free(loop->item_ids);
    gb_free(loop->due);
    gb_free(loop);
    *ploop = NULL;
}

static uint64_t s_add_io(gb_event_loop_t *loop, s_kind_t kind, void *socket, int fd,
                         short events, gb_event_io_fn fn, void *arg, gb_error_t *err)
{
    if (!fn || !events) {
        gb_error_set(err, GB_EINVAL, "event loop: a %s needs a callback and events to wait for",
                     kind == S_SOCKET ? "socket" : "descriptor");
        return 0;
    }
    s_entry_t *e = s_take(loop, kind, arg, err);
    if (!e)
        return 0;
    e->socket = socket;
    e->fd = fd;
    e->events = events;
    e->io = fn;
    return e->id;
}

uint64_t gb_event_loop_add_socket(gb_event_loop_t *loop, void *socket, short events,
                                  gb_event_io_fn fn, void *arg, gb_error_t *err)
{
    if (!socket) {
        gb_error_set(err, GB_EINVAL, "event loop: no socket to wait on");
        return 0;
    }
    return s_add_io(loop, S_SOCKET, socket, -1, events, fn, arg, err);
}

uint64_t gb_event_loop_add_fd(gb_event_loop_t *loop, int fd, short events, gb_event_io_fn fn,
                              void *arg, gb_error_t *err)
{
    if (fd < 0) {
        gb_error_set(err, GB_EINVAL, "event loop: descriptor %d cannot be waited on", fd);
        return 0;
    }
    return s_add_io(loop, S_FD, NULL, fd, events, fn, arg, err);
}

int gb_event_loop_set_events(gb_event_loop_t *loop, uint64_t id, short events)
{
    s_entry_t *e = s_lookup(loop, id);
    if (!e || (e->kind != S_SOCKET && e->kind != S_FD))
        return GB_EINVAL;
    e->events = events;
    return 0;
}

uint64_t gb_event_loop_add_timer(gb_event_loop_t *loop, double at, double period,
                                 gb_event_timer_fn fn, void *arg, gb_error_t *err)
{
    if (!fn || isnan(at) || isnan(period) || period < 0 || isinf(period)) {
        gb_error_set(err, GB_EINVAL, "event loop: a timer needs a callback and a finite "
                     "period >= 0 (got %g)", period);
        return 0;
    }
    s_entry_t *e = s_take(loop, S_TIMER, arg, err);
    if (!e)
        return 0;
    e->at = at;
    e->period = period;
    e->timer = fn;
    return e->id;
}

int gb_event_loop_timer_set(gb_event_loop_t *loop, uint64_t id, double at)
{
    s_entry_t *e = s_lookup(loop, id);
    if (!e || e->kind != S_TIMER || isnan(at))
        return GB_EINVAL;
    e->at = at;
    return 0;
}

uint64_t gb_event_loop_add_source(gb_event_loop_t *loop, int max_items, gb_event_fill_fn fill,
                                  gb_event_ready_fn ready, void *arg, gb_error_t *err)
{
    if (!fill || !ready || max_items < 1 || max_items > GB_EVENT_SOURCE_MAX_ITEMS) {
        gb_error_set(err, GB_EINVAL, "event loop: a source needs both callbacks and 1..%d "
                     "items (got %d)", GB_EVENT_SOURCE_MAX_ITEMS, max_items);
        return 0;
    }
    s_entry_t *e = s_take(loop, S_SOURCE, arg, err);
    if (!e)
        return 0;
    e->max_items = max_items;
    e->fill = fill;
    e->ready = ready;
    return e->id;
}

void gb_event_loop_remove(gb_event_loop_t *loop, uint64_t id)
{
    s_entry_t *e = s_lookup(loop, id);
    if (!e)
        return;
    memset(e, 0, sizeof *e); /* kind S_FREE, id 0: this turn's dispatch skips it */
    loop->live--;
}

/* Room for n poll items and n due timers. */
static int s_reserve(gb_event_loop_t *loop, int n, gb_error_t *err)
{
    if (n <= loop->items_cap && n <= loop->due_cap)
        return 0;
    int cap = loop->items_cap ? loop->items_cap : 16;
    while (cap < n)
        cap *= 2;
    zmq_pollitem_t *items = gb_realloc(loop->items, (size_t)cap * sizeof *items);
    if (items)
        loop->items = items;
    uint64_t *ids = gb_realloc(loop->item_ids, (size_t)cap * sizeof *ids);
    if (ids)
        loop->item_ids = ids;
    uint64_t *due = gb_realloc(loop->due, (size_t)cap * sizeof *due);
    if (due)
        loop->due = due;
    if (!items || !ids || !due)
        return gb_error_set(err, GB_ENOMEM, "event loop: out of memory for %d poll items", cap);
    loop->items_cap = loop->due_cap = cap;
    return 0;
}

/* Earlier deadline first, then registration order. */
static bool s_before(const s_entry_t *a, const s_entry_t *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

/* The timers that were registered before this turn began (turn_seq) and are
 * due by now, earliest first. A timer a callback of this turn registers
 * waits for the next one, as in ae: a timer that re-registers itself at
 * "now" cannot starve the poll. */
static void s_run_timers(gb_event_loop_t *loop, double now, uint64_t turn_seq, int *calls)
{
    int n = 0;
    for (int i = 0; i < loop->cap; i++) {
        s_entry_t *e = &loop->entries[i];
        if (e->kind != S_TIMER || e->at > now || e->seq > turn_seq)
            continue;
        /* insertion sort: a turn has few due timers */
        int k = n++;
        while (k > 0 && s_before(e, s_lookup(loop, loop->due[k - 1]))) {
            loop->due[k] = loop->due[k - 1];
            k--;
        }
        loop->due[k] = e->id;
    }
    for (int k = 0; k < n; k++) {
        s_entry_t *e = s_lookup(loop, loop->due[k]);
        if (!e || e->at > now) /* removed or moved by an earlier callback */
            continue;
        if (e->period > 0) {
            /* the first tick of the grid after now: missed ticks are skipped */
            double ticks = floor((now - e->at) / e->period) + 1.0;
            e->at += ticks * e->period;
        } else {
            e->at = HUGE_VAL;
        }
        gb_event_timer_fn fn = e->timer;
        void *arg = e->arg;
        fn(loop, loop->due[k], arg);
        (*calls)++;
    }
}

int gb_event_loop_run_once(gb_event_loop_t *loop, int timeout_ms, gb_error_t *err)
{
    /* Items a turn may need: one per socket or descriptor, max_items per source. */
    int need = 0, cap = loop->cap;
    uint64_t turn_seq = loop->seq;
    for (int i = 0; i < cap; i++) {
        const s_entry_t *e = &loop->entries[i];
        need += e->kind == S_SOURCE ? e->max_items : e->kind != S_FREE ? 1 : 0;
    }
    int rc = s_reserve(loop, need, err);
    if (rc)
        return rc;
    double now = s_now(loop);
    double next = HUGE_VAL; /* the nearest deadline of a timer or source */
    int n = 0;
    for (int i = 0; i < cap; i++) { /* a fill callback must not register (header) */
        s_entry_t *e = &loop->entries[i];
        e->first_item = -1;
        if (e->kind == S_SOCKET || e->kind == S_FD) {
            if (!e->events)
                continue;
            e->first_item = n;
            loop->items[n] = (zmq_pollitem_t){.socket = e->socket, .fd = e->fd,
                                              .events = e->events};
            loop->item_ids[n++] = e->id;
        } else if (e->kind == S_SOURCE) {
            uint64_t id = e->id;
            double deadline = HUGE_VAL;
            int got = e->fill(e->arg, loop->items + n, e->max_items, &deadline);
            e = s_lookup(loop, id); /* the callback may not add, but be safe */
            if (!e)
                continue;
            if (got < 0)
                got = 0;
            if (got > e->max_items)
                got = e->max_items;
            e->first_item = n;
            e->n_items = got;
            e->at = deadline;
            for (int k = 0; k < got; k++) {
                loop->items[n + k].revents = 0;
                loop->item_ids[n + k] = id;
            }
            n += got;
            if (deadline < next)
                next = deadline;
        } else if (e->kind == S_TIMER && e->at < next) {
            next = e->at;
        }
    }
    if (next == HUGE_VAL && n == 0 && timeout_ms < 0)
        return gb_error_set(err, GB_EINVAL, "event loop: nothing to wait for and no timeout");
    long wait_ms = next == HUGE_VAL ? -1 : next <= now ? 0 : (long)ceil((next - now) * 1000.0);
    if (timeout_ms >= 0 && (wait_ms < 0 || timeout_ms < wait_ms))
        wait_ms = timeout_ms; /* the caller's bound, as given: no round trip through the clock */
    loop->last_timeout = wait_ms;
    int ready = loop->poll ? loop->poll(loop->items, n, wait_ms, loop->poll_arg)
                           : zmq_poll(loop->items, n, wait_ms);
    if (ready < 0) {
        if (errno == EINTR)
            return 0;
        return gb_error_set(err, GB_EIO, "event loop: poll failed: %s", zmq_strerror(errno));
    }
    int calls = 0;
    now = s_now(loop);
    /* In registration order. An item's registration may have been removed,
     * or its slot taken by a newer one, by an earlier callback: the id says. */
    for (int i = 0; i < n; i++) {
        s_entry_t *e = s_lookup(loop, loop->item_ids[i]);
        if (!e || e->first_item != i)
            continue; /* gone, or a source's later item (handled with its first) */
        uint64_t id = e->id;
        void *arg = e->arg;
        if (e->kind == S_SOURCE)
            continue; /* sources below, so that one due without items is not missed */
        if (loop->items[i].revents) {
            gb_event_io_fn fn = e->io;
            fn(loop, id, loop->items[i].revents, arg);
            calls++;
        }
    }
    for (int i = 0; i < loop->cap; i++) {
        s_entry_t *e = &loop->entries[i];
        if (e->kind != S_SOURCE || e->first_item < 0)
            continue;
        bool due = e->at <= now;
        for (int k = e->first_item; !due && k < e->first_item + e->n_items; k++)
            due = loop->items[k].revents != 0;
        e->first_item = -1;
        if (due) {
            gb_event_ready_fn fn = e->ready;
            fn(loop, e->id, e->arg);
            calls++;
        }
    }
    s_run_timers(loop, now, turn_seq, &calls);
    return calls;
}

int gb_event_loop_run(gb_event_loop_t *loop, gb_error_t *err)
{
    loop->stop = false;
    while (!loop->stop) {
        int rc = gb_event_loop_run_once(loop, -1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void gb_event_loop_stop(gb_event_loop_t *loop)
{
    loop->stop = true;
}

bool gb_event_loop_stopping(const gb_event_loop_t *loop)
{
    return loop->stop;
}

long gb_event_loop_last_timeout(const gb_event_loop_t *loop)
{
    return loop->last_timeout;
}

int gb_event_loop_count(const gb_event_loop_t *loop)
{
    return loop->live;
}

int gb_event_loop_wait(gb_event_loop_t **own, const gb_event_wait_t *w, int timeout_ms,
                       gb_error_t *err)
{
    if (!*own) {
        if (!(*own = gb_event_loop_new(err)))
            return GB_ENOMEM;
        if (!gb_event_loop_add_source(*own, w->max_items, w->fill, w->ready, w->arg, err)) {
            gb_event_loop_destroy(own);
            return err && err->code ? err->code : GB_ENOMEM;
        }
    }
    /* the loop's clock, so that a test's clock moves the end as well */
    double end = timeout_ms < 0 ? HUGE_VAL : s_now(*own) + timeout_ms / 1000.0;
    for (;;) {
        double left = end - s_now(*own);
        if (left <= 0)
            return 0;
        int wait_ms = timeout_ms < 0 ? -1 : (int)ceil(left * 1000.0);
        int rc = gb_event_loop_run_once(*own, wait_ms, err);
        if (rc < 0)
            return w->who ? gb_error_prefix(err, rc, "%s", w->who) : rc;
        if ((rc = w->check(w->check_arg, err)) != 0)
            return rc;
    }
}

void gb_event_loop_set_clock(gb_event_loop_t *loop, gb_event_clock_fn clock, void *arg)
{
    loop->clock = clock;
    loop->clock_arg = arg;
}

void gb_event_loop_set_poll(gb_event_loop_t *loop, gb_event_poll_fn poll, void *arg)
{
    loop->poll = poll;
    loop->poll_arg = arg;
}
