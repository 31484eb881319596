/* The coordinator's side of the link (net/link.h): one ROUTER socket, one TLS
 * channel per ZeroMQ peer.
 *
 * Sessions live in a fixed array of slots sized by max_sessions, found by
 * routing id through an open-addressing index (linear probing, backward-shift
 * deletion, so no tombstones pile up under churn) and by handle through the
 * slot number in the handle's low 32 bits; the high 32 bits are a generation,
 * so a stale handle never reaches a newer session in the same slot.
 *
 * Events that are not messages (connected, disconnected) wait in a growable
 * ring; messages are taken straight from the channel that produced them (the
 * cursor), so a received message is never copied. A frame the socket cannot
 * take now stays in its channel's outbox, and poll retries such sessions every
 * few milliseconds: that is the back-pressure of ROUTER_MANDATORY.
 *
 * The server is an event-loop source (net/event_loop.h): its sockets, and
 * deadlines that are absolute times kept in the server (the timeout scan's
 * grid, the next retry of blocked sessions, the descriptor count while
 * descriptors run low), so that a loop which wakes often for others still
 * finds them due. A poll that waits runs a private loop with the server as
 * its only source; a process with one loop attaches the server to it
 * instead (gb_link_server_attach) and drains it without waiting. */
#include "net/link.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "net/event_loop.h"
#include "net/fd_guard.h"
#include "net/link_frame.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/log_limit.h"
#include "util/metrics.h"
#include "util/time.h"

#define S_TIMER_PERIOD 0.1     /* seconds between timeout scans, at least */
#define S_AWAY 1.0             /* a later scan than this means the owner was busy */
#define S_CLOSE_LINGER_MS 1000
#define S_BLOCKED_RETRY_MS 5   /* how often blocked sessions retry their send */
#define S_FRAME_SLACK (64 << 10)
#define S_EVICT_AGE 1.0        /* a handshake half-open this long may give way to a newcomer */
#define S_PEER_LOG_RATE 2.0    /* log lines a second a source may cause, after a burst of */
#define S_PEER_LOG_BURST 20.0
#define S_PEER_LOG_REPORT 5.0  /* seconds between reports of the lines held back */
#define S_SOURCE_MAX 64        /* "tcp address:port"-sized peer addresses */

/* A log line a peer caused, within its source's budget (log_limit.h). */
#define S_PEER_LOG(srv, key, level, ...)                                                       \
    do {                                                                                       \
        if (s_peer_log_allow((srv), (key)))                                                    \
            gb_log_##level(__VA_ARGS__);                                                       \
    } while (0)

typedef struct {
    uint64_t handle;                      /* 0 while the slot is free */
    uint64_t session_id;                  /* the client's id for this handshake */
    uint8_t rid[GB_LINK_MAX_ROUTING_ID];  /* the peer's ZeroMQ routing id */
    size_t rid_len;                       /* its length */
    gb_channel_t *ch;                     /* the TLS session */
    char source[S_SOURCE_MAX];            /* the peer's address ("" when not known) */
    size_t preauth_bytes;                 /* bytes received before a certificate showed */
    bool anonymous;                       /* established without a certificate */
    double started;                       /* when the hello arrived */
    double last_seen;                     /* last frame from the peer */
    bool announced;                       /* CONNECTED was reported */
    bool blocked;                         /* outbox waits for the socket */
    bool closing;                         /* peer closed: drain, then end */
} s_session_t;

typedef struct {
    gb_link_event_kind_t kind; /* CONNECTED or DISCONNECTED */
    uint64_t session;          /* handle */
    bool has_peer;             /* peer name known */
    char peer[256];            /* copied: the session may be gone */
    char reason[256];          /* DISCONNECTED: why */
} s_event_t;

struct gb_link_server {
    void *sock;                /* ROUTER */
    gb_tls_t *tls;             /* borrowed server configuration */
    gb_link_options_t o;       /* options with defaults filled */
    char endpoint[256];        /* the bound endpoint */
    s_session_t *slots;        /* max_sessions slots */
    uint32_t *index;           /* routing id hash -> slot + 1 (0: empty) */
    size_t index_mask;         /* index size - 1 (a power of two) */
    int count;                 /* sessions held */
    int handshakes;            /* of those, not yet established */
    int blocked;               /* of those, with a frame waiting for the socket */
    uint32_t generation;       /* for the next handle */
    int free_hint;             /* where to look for a free slot first */
    s_event_t *events;         /* ring of pending events */
    size_t ev_head, ev_count, ev_cap; /* ring state */
    int cursor;                /* slot whose channel may hold messages, or -1 */
    uint64_t cursor_handle;    /* its handle, to notice it was replaced */
    double next_timer;         /* when timeouts are checked next */
    double last_visit;         /* when the owner last polled (the timers last ran) */
    char last_peer[256];       /* backing store of the returned event's name */
    gb_fd_guard_t *guard;      /* refuses new connections while descriptors run low */
    int *hs;                   /* slots of the sessions in their handshake (handshakes) */
    gb_log_limiter_t peer_log; /* budget of the log lines peers cause */
    double next_log_report;    /* when the lines held back are reported next */
    bool log_held;             /* lines were held back since the last report */
    gb_event_loop_t *loop;     /* a waiting poll's loop (made on the first such poll) */
    double next_retry;         /* when blocked sessions retry their send next */
    double next_guard;         /* when the descriptor guard counts next (while low) */
    gb_event_loop_t *attached; /* the owner's loop it is a source of (borrowed), or NULL */
    uint64_t source;           /* its registration there (0: none) */
    gb_link_server_ready_fn on_ready; /* the owner's drain, called by that loop */
    void *on_ready_arg;        /* passed to it */
};

/* Whether a line a peer caused fits its source's budget; a line held back
 * is reported within S_PEER_LOG_REPORT seconds (s_report_held). */
static bool s_peer_log_allow(gb_link_server_t *srv, const char *key)
{
    double now = gb_time_now();
    if (gb_log_limit_allow(&srv->peer_log, key, strlen(key), now))
        return true;
    if (!srv->log_held) {
        srv->log_held = true;
        if (srv->next_log_report < now)
            srv->next_log_report = now + S_PEER_LOG_REPORT;
    }
    return false;
}

/* Bytes on the link, counted per frame (header and payload, not ZeroMQ's
 * routing id or framing) for every peer, certified or not: what the
 * coordinator's socket carries (a message of the wrong shape, dropped
 * unread, is not counted). */
static void s_count_received(size_t payload)
{
    gb_metrics_counter_add("glassbox_link_bytes_received_total",
                           "Bytes of link frames received from peers (headers and payloads)",
                           NULL, NULL, (double)(GB_LINK_HEADER_BYTES + payload));
}

/* gb_link_send, counting what the socket took. */
static int s_send(gb_link_server_t *srv, const uint8_t *rid, size_t rid_len, int kind,
                  uint64_t session_id, const void *payload, size_t len, gb_error_t *err)
{
    int rc = gb_link_send(srv->sock, rid, rid_len, kind, session_id, payload, len, err);
    if (rc == 0)
        gb_metrics_counter_add("glassbox_link_bytes_sent_total",
                               "Bytes of link frames sent to peers (headers and payloads)", NULL,
                               NULL, (double)(GB_LINK_HEADER_BYTES + len));
    return rc;
}

/* FNV-1a over the routing id. */
static size_t s_hash(const uint8_t *rid, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= rid[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static int s_find(const gb_link_server_t *srv, const uint8_t *rid, size_t len)
{
    for (size_t i = s_hash(rid, len) & srv->index_mask;; i = (i + 1) & srv->index_mask) {
        uint32_t v = srv->index[i];
        if (!v)
            return -1;
        const s_session_t *s = &srv->slots[v - 1];
        if (s->rid_len == len && memcmp(s->rid, rid, len) == 0)
            return (int)v - 1;
    }
}

static void s_index_insert(gb_link_server_t *srv, int slot)
{
    const s_session_t *s = &srv->slots[slot];
    size_t i = s_hash(s->rid, s->rid_len) & srv->index_mask;
    while (srv->index[i])
        i = (i + 1) & srv->index_mask;
    srv->index[i] = (uint32_t)slot + 1;
}

/* Backward-shift deletion: later entries of the same probe run move up, so
 * lookups never need tombstones. */
static void s_index_remove(gb_link_server_t *srv, int slot)
{
    const s_session_t *s = &srv->slots[slot];
    size_t i = s_hash(s->rid, s->rid_len) & srv->index_mask;
    while (srv->index[i] != (uint32_t)slot + 1)
        i = (i + 1) & srv->index_mask;
    size_t hole = i;
    for (size_t j = (hole + 1) & srv->index_mask; srv->index[j]; j = (j + 1) & srv->index_mask) {
        const s_session_t *t = &srv->slots[srv->index[j] - 1];
        size_t home = s_hash(t->rid, t->rid_len) & srv->index_mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        bool stays = (hole < j) ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            srv->index[hole] = srv->index[j];
            hole = j;
        }
    }
    srv->index[hole] = 0;
}

static void s_rid_hex(const uint8_t *rid, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 3 <= cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", rid[i]);
    if (cap)
        out[n < cap ? n : cap - 1] = '\0';
}

/* A name for a session in log lines: its certificate name, else its id. */
static const char *s_who(const s_session_t *s, char *buf, size_t cap)
{
    const char *name = s->ch && s->announced ? gb_channel_peer_name(s->ch) : NULL;
    if (name) {
        snprintf(buf, cap, "'%s'", name);
        return buf;
    }
    char hex[64];
    s_rid_hex(s->rid, s->rid_len, hex, sizeof hex);
    snprintf(buf, cap, "peer %s", hex);
    return buf;
}

/* What peer-caused log lines are budgeted by: the address, else the routing id. */
static const char *s_log_key(const s_session_t *s, char *buf, size_t cap)
{
    if (s->source[0])
        return s->source;
    s_rid_hex(s->rid, s->rid_len, buf, cap);
    return buf;
}

/* The handshakes in progress, as a list of slots: the pre-authentication
 * budgets look at them on every hello, so they must not cost a scan of
 * every session. */
static void s_hs_add(gb_link_server_t *srv, int slot)
{
    srv->hs[srv->handshakes++] = slot;
}

static void s_hs_remove(gb_link_server_t *srv, int slot)
{
    for (int i = 0; i < srv->handshakes; i++)
        if (srv->hs[i] == slot) {
            srv->hs[i] = srv->hs[--srv->handshakes];
            return;
        }
}

static int s_hs_from(const gb_link_server_t *srv, const char *source)
{
    int n = 0;
    for (int i = 0; i < srv->handshakes; i++)
        n += strcmp(srv->slots[srv->hs[i]].source, source) == 0;
    return n;
}

/* The slot of the oldest handshake half-open since before `before` (from
 * `source` only, unless NULL), or -1. */
static int s_hs_oldest(const gb_link_server_t *srv, double before, const char *source)
{
    int oldest = -1;
    for (int i = 0; i < srv->handshakes; i++) {
        const s_session_t *s = &srv->slots[srv->hs[i]];
        if (s->started < before && (!source || strcmp(s->source, source) == 0) &&
            (oldest < 0 || s->started < srv->slots[oldest].started))
            oldest = srv->hs[i];
    }
    return oldest;
}

static void s_end(gb_link_server_t *srv, int slot, const char *reason, bool announce);

/* When the timeout scan must look at session s next: its handshake's end,
 * an anonymous session's end of life, the end of its allowed silence. */
static double s_expiry(const gb_link_server_t *srv, const s_session_t *s)
{
    if (!s->announced)
        return s->started + srv->o.handshake_timeout_ms / 1000.0;
    double t = s->last_seen + srv->o.idle_timeout_ms / 1000.0;
    if (s->anonymous && s->started + srv->o.enroll_timeout_ms / 1000.0 < t)
        t = s->started + srv->o.enroll_timeout_ms / 1000.0;
    return t;
}

/* A session whose expiry may be nearer than the next scan: the scan comes
 * sooner. (A later last_seen only moves expiries away: such a scan finds
 * nothing due and schedules the next.) */
static void s_scan_by(gb_link_server_t *srv, const s_session_t *s)
{
    double t = s_expiry(srv, s);
    if (t < srv->next_timer)
        srv->next_timer = t;
}

/* Room for a new handshake from `source`: NULL, possibly after evicting the
 * oldest half-open one (of that source when it holds its share, else of
 * anyone); else why there is none. */
static const char *s_make_room(gb_link_server_t *srv, const char *source)
{
    if (srv->count >= srv->o.max_sessions)
        return "session table full";
    bool source_full = s_hs_from(srv, source) >= srv->o.max_handshakes_per_source;
    if (!source_full && srv->handshakes < srv->o.max_handshakes)
        return NULL;
    int old = s_hs_oldest(srv, gb_time_now() - S_EVICT_AGE, source_full ? source : NULL);
    if (old < 0)
        return source_full ? "too many handshakes in progress from its address"
                           : "too many handshakes in progress";
    char who[96], key[64];
    s_session_t *s = &srv->slots[old];
    S_PEER_LOG(srv, s_log_key(s, key, sizeof key), warn,
               "link: %s: handshake half-open for %.1f s gives way to a new peer",
               s_who(s, who, sizeof who), gb_time_now() - s->started);
    s_end(srv, old, "handshake evicted", false);
    return NULL;
}

static int s_push_event(gb_link_server_t *srv, gb_link_event_kind_t kind, const s_session_t *s,
                        const char *reason)
{
    if (srv->ev_count == srv->ev_cap) {
        size_t cap = srv->ev_cap ? 2 * srv->ev_cap : 16;
        s_event_t *grown = gb_malloc(cap * sizeof *grown);
        if (!grown)
            return GB_ENOMEM;
        for (size_t i = 0; i < srv->ev_count; i++)
            grown[i] = srv->events[(srv->ev_head + i) % srv->ev_cap];
        gb_free(srv->events);
        srv->events = grown;
        srv->ev_cap = cap;
        srv->ev_head = 0;
    }
    s_event_t *e = &srv->events[(srv->ev_head + srv->ev_count) % srv->ev_cap];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->session = s->handle;
    const char *name = s->ch ? gb_channel_peer_name(s->ch) : NULL;
    if (name) {
        e->has_peer = true;
        snprintf(e->peer, sizeof e->peer, "%s", name);
    }
    if (reason)
        snprintf(e->reason, sizeof e->reason, "%s", reason);
    srv->ev_count++;
    return 0;
}

static bool s_pop_event(gb_link_server_t *srv, gb_link_event_t *ev)
{
    if (!srv->ev_count)
        return false;
    const s_event_t *e = &srv->events[srv->ev_head];
    ev->kind = e->kind;
    ev->session = e->session;
    if (e->has_peer) {
        memcpy(srv->last_peer, e->peer, sizeof srv->last_peer);
        ev->peer_name = srv->last_peer;
    }
    snprintf(ev->reason, sizeof ev->reason, "%s", e->reason);
    srv->ev_head = (srv->ev_head + 1) % srv->ev_cap;
    srv->ev_count--;
    return true;
}

/* Frees a session's slot. announce: report DISCONNECTED if CONNECTED was. */
static void s_end(gb_link_server_t *srv, int slot, const char *reason, bool announce)
{
    s_session_t *s = &srv->slots[slot];
    if (announce && s->announced && s_push_event(srv, GB_LINK_EV_DISCONNECTED, s, reason) != 0)
        gb_log_error("link: out of memory reporting the end of a session");
    if (!s->announced)
        s_hs_remove(srv, slot);
    if (s->blocked)
        srv->blocked--;
    s_index_remove(srv, slot);
    gb_channel_destroy(&s->ch);
    memset(s, 0, sizeof *s);
    srv->count--;
    if (srv->cursor == slot)
        srv->cursor = -1;
}

/* Moves a session's outbox to the socket. Returns 0, or GB_ECLOSED when the
 * session ended because its peer is gone. */
static int s_flush(gb_link_server_t *srv, int slot)
{
    s_session_t *s = &srv->slots[slot];
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(s->ch, &bytes);
    if (!n)
        goto unblocked;
    gb_error_t err = {0};
    int rc = s_send(srv, s->rid, s->rid_len, GB_LINK_DATA, s->session_id, bytes, n, &err);
    if (rc == GB_EAGAIN) {
        if (!s->blocked) {
            s->blocked = true;
            srv->blocked++;
        }
        return 0;
    }
    if (rc != 0) {
        char who[96];
        gb_log_info("link: %s: %s; session ended", s_who(s, who, sizeof who), err.msg);
        s_end(srv, slot, err.msg, true);
        return GB_ECLOSED;
    }
    gb_channel_outbox_consume(s->ch, n);
unblocked:
    if (s->blocked) {
        s->blocked = false;
        srv->blocked--;
    }
    return 0;
}

static void s_send_control(gb_link_server_t *srv, const gb_link_received_t *m, int kind,
                           uint32_t wait_ms)
{
    uint8_t payload[4] = {(uint8_t)(wait_ms >> 24), (uint8_t)(wait_ms >> 16),
                          (uint8_t)(wait_ms >> 8), (uint8_t)wait_ms};
    gb_error_t err = {0};
    /* Best effort: a peer that cannot take a reset now will time out. */
    if (s_send(srv, m->routing_id, m->routing_id_len, kind, m->header.session_id, payload,
               kind == GB_LINK_BUSY ? sizeof payload : 0, &err) != 0)
        gb_log_debug("link: control frame not sent: %s", err.msg);
}

static int s_free_slot(gb_link_server_t *srv)
{
    for (int k = 0; k < srv->o.max_sessions; k++) {
        int i = (srv->free_hint + k) % srv->o.max_sessions;
        if (!srv->slots[i].handle) {
            srv->free_hint = (i + 1) % srv->o.max_sessions;
            return i;
        }
    }
    return -1;
}

/* Queues a close_notify and offers it to the socket (best effort: a peer
 * that misses it times out instead). */
static void s_close_notify(gb_link_server_t *srv, s_session_t *s)
{
    gb_channel_close(s->ch);
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(s->ch, &bytes);
    gb_error_t err = {0};
    if (n && s_send(srv, s->rid, s->rid_len, GB_LINK_DATA, s->session_id, bytes, n, &err) != 0)
        gb_log_debug("link: close_notify not sent: %s", err.msg);
}

/* After a successful feed: report the handshake, point the cursor here. */
static void s_after_feed(gb_link_server_t *srv, int slot)
{
    s_session_t *s = &srv->slots[slot];
    if (!s->announced && gb_channel_established(s->ch)) {
        /* The empty first message tells the client its certificate passed
         * (TLS 1.3 lets the client finish before the server has checked).
         * The handshake checked against the trust store of its start; a CRL
         * reloaded since (gb_link_server_recheck) must hold for it too. */
        gb_error_t err = {0};
        if (gb_channel_recheck_peer(s->ch, &err) != 0) {
            char who[96], key[64];
            S_PEER_LOG(srv, s_log_key(s, key, sizeof key), warn, "link: %s refused: %s",
                       s_who(s, who, sizeof who), err.msg);
            s_close_notify(srv, s);
            s_end(srv, slot, err.msg, false);
            return;
        }
        if (gb_channel_send(s->ch, "", 0, &err) != 0) {
            gb_log_error("link: cannot accept session %llu: %s", (unsigned long long)s->handle,
                         err.msg);
            s_end(srv, slot, err.msg, false);
            return;
        }
        s->announced = true;
        s_hs_remove(srv, slot);
        const char *name = gb_channel_peer_name(s->ch);
        s->anonymous = name == NULL;
        s_scan_by(srv, s);
        if (!s->anonymous)
            s->preauth_bytes = 0; /* authenticated: the session's own bounds hold from now */
        gb_log_info("link: session %llu established with %s%s",
                    (unsigned long long)s->handle, name ? "client " : "an anonymous client",
                    name ? name : "");
        if (s_push_event(srv, GB_LINK_EV_CONNECTED, s, NULL) != 0) {
            gb_log_error("link: out of memory accepting session %llu",
                         (unsigned long long)s->handle);
            s_end(srv, slot, "out of memory", false);
            return;
        }
    }
    if (gb_channel_failed(s->ch))
        s->closing = true;
    srv->cursor = slot;
    srv->cursor_handle = s->handle;
    s_flush(srv, slot);
}

static void s_feed(gb_link_server_t *srv, int slot, const gb_link_received_t *m)
{
    s_session_t *s = &srv->slots[slot];
    gb_error_t err = {0};
    s->last_seen = gb_time_now();
    size_t size = zmq_msg_size((zmq_msg_t *)&m->payload);
    char who[96], key[64];
    if (!s->announced || s->anonymous) {
        s->preauth_bytes += size;
        if (s->preauth_bytes > srv->o.max_preauth_bytes) {
            char why[128];
            snprintf(why, sizeof why, "sent %zu bytes without a certificate (at most %zu)",
                     s->preauth_bytes, srv->o.max_preauth_bytes);
            S_PEER_LOG(srv, s_log_key(s, key, sizeof key), warn, "link: %s cut off: %s",
                       s_who(s, who, sizeof who), why);
            s_end(srv, slot, why, true);
            return;
        }
    }
    int rc = gb_channel_feed(s->ch, zmq_msg_data((zmq_msg_t *)&m->payload), size, &err);
    if (rc == 0) {
        s_after_feed(srv, slot);
        return;
    }
    uint64_t handle = s->handle;
    S_PEER_LOG(srv, s_log_key(s, key, sizeof key), warn, "link: %s cut off: %s",
               s_who(s, who, sizeof who), err.msg);
    s_flush(srv, slot); /* the alert, if the socket takes it */
    if (srv->slots[slot].handle == handle)
        s_end(srv, slot, err.msg, true);
}

static void s_on_hello(gb_link_server_t *srv, int slot, const gb_link_received_t *m)
{
    if (slot >= 0) {
        char who[96], key[64];
        S_PEER_LOG(srv, s_log_key(&srv->slots[slot], key, sizeof key), info,
                   "link: %s started a new session; the old one ends",
                   s_who(&srv->slots[slot], who, sizeof who));
        s_end(srv, slot, "peer started a new session", true);
    }
    char source[S_SOURCE_MAX] = "";
    const char *addr = zmq_msg_gets((zmq_msg_t *)&m->payload, "Peer-Address");
    if (addr)
        snprintf(source, sizeof source, "%s", addr);
    else
        s_rid_hex(m->routing_id, m->routing_id_len, source, sizeof source);
    const char *busy = s_make_room(srv, source);
    if (busy) {
        S_PEER_LOG(srv, source, warn, "link: %s, new peer %s told to retry in %d ms", busy,
                   source, srv->o.retry_ms);
        s_send_control(srv, m, GB_LINK_BUSY, (uint32_t)srv->o.retry_ms);
        return;
    }
    gb_error_t err = {0};
    gb_channel_t *ch = gb_channel_new(srv->tls, NULL, srv->o.max_message, &err);
    if (!ch) {
        gb_log_error("link: cannot start a session: %s", err.msg);
        s_send_control(srv, m, GB_LINK_BUSY, (uint32_t)srv->o.retry_ms);
        return;
    }
    int i = s_free_slot(srv);
    s_session_t *s = &srv->slots[i];
    if (++srv->generation == 0) /* a wrapped generation 0 would make handle 0: "free" */
        srv->generation = 1;
    s->handle = ((uint64_t)srv->generation << 32) | (uint32_t)i;
    s->session_id = m->header.session_id;
    memcpy(s->rid, m->routing_id, m->routing_id_len);
    s->rid_len = m->routing_id_len;
    s->ch = ch;
    memcpy(s->source, source, sizeof s->source);
    s->started = s->last_seen = gb_time_now();
    srv->count++;
    s_hs_add(srv, i);
    s_index_insert(srv, i);
    s_scan_by(srv, s);
    s_feed(srv, i, m);
}

static void s_on_message(gb_link_server_t *srv, const gb_link_received_t *m)
{
    int slot = s_find(srv, m->routing_id, m->routing_id_len);
    switch (m->header.kind) {
    case GB_LINK_HELLO:
        s_on_hello(srv, slot, m);
        return;
    case GB_LINK_DATA:
        if (slot < 0 || srv->slots[slot].session_id != m->header.session_id) {
            gb_log_debug("link: data for an unknown session; reset sent");
            s_send_control(srv, m, GB_LINK_RESET, 0);
            return;
        }
        s_feed(srv, slot, m);
        return;
    default: {
        char hex[64];
        s_rid_hex(m->routing_id, m->routing_id_len, hex, sizeof hex);
        S_PEER_LOG(srv, hex, warn,
                   "link: peer %s sent a '%c' frame, which only the server sends; ignored", hex,
                   m->header.kind);
        return;
    }
    }
}

/* One line for the peers' lines held back in the last few seconds. */
static void s_report_held(gb_link_server_t *srv, double now)
{
    if (!srv->log_held || now < srv->next_log_report)
        return;
    uint64_t held = gb_log_limit_take_suppressed(&srv->peer_log);
    if (held)
        gb_log_warn("link: %llu more log lines about misbehaving peers held back in the "
                    "last %.0f s",
                    (unsigned long long)held, S_PEER_LOG_REPORT);
    srv->log_held = false;
    srv->next_log_report = now + S_PEER_LOG_REPORT;
}

/* The timeout scan: due at next_timer, the nearest expiry of any session
 * (found by the scan before, or made nearer by s_scan_by), but at most
 * every S_TIMER_PERIOD; no sessions, no scan. */
static void s_timers(gb_link_server_t *srv)
{
    double now = gb_time_now();
    double since_visit = srv->last_visit > 0 ? now - srv->last_visit : 0;
    srv->last_visit = now;
    s_report_held(srv, now);
    if (now < srv->next_timer)
        return;
    /* Time the owner spent away from poll (aggregating a round, writing a
     * checkpoint) is not the peers' silence: their frames wait unread in the
     * socket. A scan more than S_AWAY late shows such a gap; then the whole
     * time since the owner last polled is credited to every session, so
     * each is judged on the silence it had when the owner left (crediting
     * only the lateness would leave a session that was due at the missed
     * scan at its very limit, ended the moment the owner comes back). The
     * credit can include time the owner slept in its loop before it was
     * kept away, at most the wait to the missed scan: a silent peer then
     * lasts up to twice its idle timeout, never less than it. */
    bool late = srv->next_timer > 0 && isfinite(srv->next_timer) &&
                now - srv->next_timer > S_AWAY;
    double away = late ? since_visit : 0;
    double next = HUGE_VAL;
    for (int i = 0; i < srv->o.max_sessions && srv->count; i++) {
        s_session_t *s = &srv->slots[i];
        if (!s->handle)
            continue;
        if (away > 0) {
            s->started += away;
            s->last_seen += away;
        }
        char who[96], why[128], key[64];
        if (!s->announced && now - s->started > srv->o.handshake_timeout_ms / 1000.0) {
            S_PEER_LOG(srv, s_log_key(s, key, sizeof key), warn,
                       "link: %s: handshake not finished in %d ms; dropped",
                       s_who(s, who, sizeof who), srv->o.handshake_timeout_ms);
            s_end(srv, i, "handshake timed out", false);
        } else if (s->anonymous && now - s->started > srv->o.enroll_timeout_ms / 1000.0) {
            snprintf(why, sizeof why, "anonymous for %d ms", srv->o.enroll_timeout_ms);
            S_PEER_LOG(srv, s_log_key(s, key, sizeof key), info, "link: %s %s; session ended",
                       s_who(s, who, sizeof who), why);
            s_close_notify(srv, s);
            s_end(srv, i, why, true);
        } else if (s->announced && now - s->last_seen > srv->o.idle_timeout_ms / 1000.0) {
            snprintf(why, sizeof why, "silent for %d ms", srv->o.idle_timeout_ms);
            gb_log_info("link: %s %s; session ended", s_who(s, who, sizeof who), why);
            s_end(srv, i, why, true);
        }
        if (s->handle && s_expiry(srv, s) < next)
            next = s_expiry(srv, s);
    }
    srv->next_timer = next < now + S_TIMER_PERIOD ? now + S_TIMER_PERIOD : next;
}

static void s_retry_blocked(gb_link_server_t *srv)
{
    for (int i = 0; i < srv->o.max_sessions && srv->blocked; i++)
        if (srv->slots[i].handle && srv->slots[i].blocked)
            s_flush(srv, i);
}

/* The next message of the cursor's channel, or the end of a closed session. */
static bool s_take_message(gb_link_server_t *srv, gb_link_event_t *ev)
{
    if (srv->cursor < 0)
        return false;
    s_session_t *s = &srv->slots[srv->cursor];
    if (s->handle != srv->cursor_handle) {
        srv->cursor = -1;
        return false;
    }
    const uint8_t *msg;
    size_t len;
    if (gb_channel_next_message(s->ch, &msg, &len) == 1) {
        ev->kind = GB_LINK_EV_MESSAGE;
        ev->session = s->handle;
        ev->data = msg;
        ev->len = len;
        ev->peer_name = gb_channel_peer_name(s->ch);
        return true;
    }
    int slot = srv->cursor;
    srv->cursor = -1;
    if (s->closing) {
        char who[96];
        gb_log_info("link: %s closed the session", s_who(s, who, sizeof who));
        s_end(srv, slot, "peer closed the session", true);
    }
    return false;
}

gb_link_server_t *gb_link_server_new(void *zmq_ctx, const char *endpoint, gb_tls_t *tls,
                                     const gb_link_options_t *opts, gb_error_t *err)
{
    gb_link_server_t *srv = gb_calloc(1, sizeof *srv);
    if (!srv) {
        gb_error_set(err, GB_ENOMEM, "link server: out of memory");
        return NULL;
    }
    gb_link_options_fill(&srv->o, opts);
    srv->tls = tls;
    srv->cursor = -1;
    size_t index_size = 1;
    while (index_size < 2 * (size_t)srv->o.max_sessions)
        index_size <<= 1;
    srv->index_mask = index_size - 1;
    srv->slots = gb_calloc((size_t)srv->o.max_sessions, sizeof *srv->slots);
    srv->index = gb_calloc(index_size, sizeof *srv->index);
    srv->hs = gb_calloc((size_t)srv->o.max_handshakes, sizeof *srv->hs);
    gb_log_limit_init(&srv->peer_log, S_PEER_LOG_RATE, S_PEER_LOG_BURST);
    if (!srv->slots || !srv->index || !srv->hs) {
        gb_error_set(err, GB_ENOMEM, "link server: out of memory for %d sessions",
                     srv->o.max_sessions);
        goto fail;
    }
    srv->sock = zmq_socket(zmq_ctx, ZMQ_ROUTER);
    if (!srv->sock) {
        gb_error_set(err, GB_EIO, "link server: cannot make a socket: %s",
                     zmq_strerror(errno));
        goto fail;
    }
    int one = 1, zero = 0;
    int64_t max_frame = (int64_t)(srv->o.max_queued_bytes + srv->o.max_message + S_FRAME_SLACK);
    if (zmq_setsockopt(srv->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(srv->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(srv->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0 ||
        zmq_setsockopt(srv->sock, ZMQ_SNDHWM, &srv->o.socket_hwm, sizeof(int)) != 0 ||
        zmq_setsockopt(srv->sock, ZMQ_RCVHWM, &srv->o.socket_hwm, sizeof(int)) != 0) {
        gb_error_set(err, GB_EIO, "link server: socket options: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(srv->sock, endpoint) != 0) {
        gb_error_set(err, GB_EIO, "link server: cannot bind %s: %s", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    size_t len = sizeof srv->endpoint;
    if (zmq_getsockopt(srv->sock, ZMQ_LAST_ENDPOINT, srv->endpoint, &len) != 0)
        snprintf(srv->endpoint, sizeof srv->endpoint, "%s", endpoint);
    if (!(srv->guard = gb_fd_guard_new(zmq_ctx, srv->sock, srv->endpoint, err)))
        goto fail;
    gb_log_info("link: listening on %s", srv->endpoint);
    return srv;
fail:
    gb_link_server_destroy(&srv);
    return NULL;
}

void gb_link_server_destroy(gb_link_server_t **psrv)
{
    if (!psrv || !*psrv)
        return;
    gb_link_server_t *srv = *psrv;
    gb_link_server_detach(srv);
    gb_event_loop_destroy(&srv->loop);
    uint64_t held = gb_log_limit_take_suppressed(&srv->peer_log);
    if (held)
        gb_log_warn("link: %llu more log lines about misbehaving peers held back since the "
                    "last report",
                    (unsigned long long)held);
    if (srv->slots)
        for (int i = 0; i < srv->o.max_sessions; i++)
            gb_channel_destroy(&srv->slots[i].ch);
    gb_fd_guard_destroy(&srv->guard);
    if (srv->sock) {
        /* what was handed to the socket last (a closing notice, the last
         * publication for a subscriber) still leaves; the context's end
         * waits for it at most this long */
        int linger = S_CLOSE_LINGER_MS;
        zmq_setsockopt(srv->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(srv->sock);
    }
    gb_free(srv->slots);
    gb_free(srv->index);
    gb_free(srv->hs);
    gb_free(srv->events);
    gb_free(srv);
    *psrv = NULL;
}

const char *gb_link_server_endpoint(const gb_link_server_t *srv)
{
    return srv->endpoint;
}

/* Everything the server can do without waiting: pending events, the
 * cursor's next message, blocked sessions' retries, the timers, the
 * descriptor guard and every frame the socket holds. Returns 0 with
 * ev->kind GB_LINK_EV_NONE when nothing is left. */
static int s_poll_now(gb_link_server_t *srv, gb_link_event_t *ev, gb_error_t *err)
{
    memset(ev, 0, sizeof *ev);
    for (;;) {
        if (s_pop_event(srv, ev) || s_take_message(srv, ev))
            return 0;
        double now = gb_time_now();
        if (srv->blocked) {
            s_retry_blocked(srv);
            srv->next_retry = now + S_BLOCKED_RETRY_MS / 1000.0;
        }
        s_timers(srv);
        if (now >= srv->next_guard)
            srv->next_guard = now + GB_FD_GUARD_PERIOD_S;
        gb_fd_guard_check(srv->guard, now);
        if (srv->ev_count)
            continue;
        gb_link_received_t m;
        int rc = gb_link_recv(srv->sock, 1, &m, err);
        if (rc == 1) {
            s_count_received(zmq_msg_size(&m.payload));
            s_on_message(srv, &m);
            gb_link_received_close(&m);
            continue;
        }
        if (rc == GB_EPROTO) {
            char hex[64];
            s_rid_hex(m.routing_id, m.routing_id_len, hex, sizeof hex);
            S_PEER_LOG(srv, hex, warn, "link: peer %s: %s; dropped", hex,
                       err ? err->msg : "bad message");
            gb_link_received_close(&m);
            gb_error_clear(err);
            continue;
        }
        return rc; /* 0: nothing more now */
    }
}

/* The server as a source: the ROUTER and the guard's socket, and the nearest
 * of its timed duties: the timeout scan while it holds sessions, the retry
 * of blocked sessions (a ROUTER always says it has room, so POLLOUT cannot
 * tell), the descriptor count while descriptors run low (accepted
 * connections come on the guard's socket, so counting is only needed to
 * see them free again). Nothing else is timed: an idle server without
 * sessions sleeps until its sockets speak. */
static int s_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    const gb_link_server_t *srv = arg;
    double t = HUGE_VAL;
    if (srv->count)
        t = srv->next_timer;
    if (srv->blocked && srv->next_retry < t)
        t = srv->next_retry;
    if (gb_fd_guard_low(srv->guard) && srv->next_guard < t)
        t = srv->next_guard;
    if (srv->log_held && srv->next_log_report < t)
        t = srv->next_log_report;
    if (srv->ev_count || srv->cursor >= 0)
        t = 0; /* events or messages taken in already (a send that failed ends a session) */
    *deadline = t;
    if (cap < 2)
        return 0;
    items[0] = (zmq_pollitem_t){.socket = srv->sock, .events = ZMQ_POLLIN};
    items[1] = (zmq_pollitem_t){.socket = gb_fd_guard_socket(srv->guard), .events = ZMQ_POLLIN};
    return 2;
}

static void s_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg; /* the poll looks again after every turn */
}

/* As a source of the owner's loop: the owner drains. */
static void s_attached_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_link_server_t *srv = arg;
    srv->on_ready(srv->on_ready_arg);
}

int gb_link_server_attach(gb_link_server_t *srv, gb_event_loop_t *loop,
                          gb_link_server_ready_fn on_ready, void *arg, gb_error_t *err)
{
    if (srv->source || !loop || !on_ready)
        return gb_error_set(err, GB_EINVAL, "link server: %s",
                            srv->source ? "attached to a loop already"
                                        : "attach needs a loop and a callback");
    uint64_t id = gb_event_loop_add_source(loop, 2, s_fill, s_attached_ready, srv, err);
    if (!id)
        return err && err->code ? err->code : GB_ENOMEM;
    srv->attached = loop;
    srv->source = id;
    srv->on_ready = on_ready;
    srv->on_ready_arg = arg;
    return 0;
}

void gb_link_server_detach(gb_link_server_t *srv)
{
    if (!srv->source)
        return;
    gb_event_loop_remove(srv->attached, srv->source);
    srv->attached = NULL;
    srv->source = 0;
    srv->on_ready = NULL;
    srv->on_ready_arg = NULL;
}

/* What gb_link_server_poll waits for: an event, taken into ev. */
typedef struct {
    gb_link_server_t *srv; /* the waiting server */
    gb_link_event_t *ev;   /* the waiting poll's event */
} s_wait_t;

static int s_wait_check(void *arg, gb_error_t *err)
{
    s_wait_t *w = arg;
    int rc = s_poll_now(w->srv, w->ev, err);
    return rc < 0 ? rc : w->ev->kind != GB_LINK_EV_NONE ? 1 : 0;
}

int gb_link_server_poll(gb_link_server_t *srv, int timeout_ms, gb_link_event_t *ev,
                        gb_error_t *err)
{
    if (srv->source && timeout_ms != 0)
        return gb_error_set(err, GB_EINVAL, "link server: attached to a loop: poll with "
                                            "timeout 0 only (the loop waits)");
    int rc = s_poll_now(srv, ev, err);
    if (rc != 0 || ev->kind != GB_LINK_EV_NONE || timeout_ms == 0)
        return rc;
    s_wait_t w = {srv, ev};
    const gb_event_wait_t how = {.max_items = 2, .fill = s_fill, .ready = s_ready, .arg = srv,
                                 .check = s_wait_check, .check_arg = &w,
                                 .who = "link server: "};
    rc = gb_event_loop_wait(&srv->loop, &how, timeout_ms, err);
    return rc < 0 ? rc : 0;
}

static s_session_t *s_by_handle(gb_link_server_t *srv, uint64_t handle)
{
    uint32_t slot = (uint32_t)handle;
    if (!handle || slot >= (uint32_t)srv->o.max_sessions || srv->slots[slot].handle != handle)
        return NULL;
    return &srv->slots[slot];
}

int gb_link_server_send(gb_link_server_t *srv, uint64_t session, const void *msg, size_t len,
                        gb_error_t *err)
{
    s_session_t *s = s_by_handle(srv, session);
    if (!s || !s->announced || s->closing)
        return gb_error_set(err, GB_ECLOSED, "link: session %llu is not connected",
                            (unsigned long long)session);
    if (len > srv->o.max_message)
        return gb_error_set(err, GB_ERANGE, "link: message of %zu bytes exceeds the limit %zu",
                            len, srv->o.max_message);
    const uint8_t *queued;
    if (gb_channel_outbox(s->ch, &queued) >= srv->o.max_queued_bytes)
        return gb_error_set(err, GB_EAGAIN, "link: session %llu has %zu bytes queued",
                            (unsigned long long)session, srv->o.max_queued_bytes);
    int rc = gb_channel_send(s->ch, msg, len, err);
    if (rc != 0)
        return rc;
    if (s_flush(srv, (int)(uint32_t)session) == GB_ECLOSED)
        return gb_error_set(err, GB_ECLOSED, "link: session %llu: peer is gone",
                            (unsigned long long)session);
    return 0;
}

void gb_link_server_close(gb_link_server_t *srv, uint64_t session)
{
    s_session_t *s = s_by_handle(srv, session);
    if (!s)
        return;
    s_close_notify(srv, s);
    s_end(srv, (int)(uint32_t)session, "closed", false);
}

int gb_link_server_recheck(gb_link_server_t *srv, gb_error_t *err)
{
    int ended = 0;
    for (int i = 0; i < srv->o.max_sessions && srv->count; i++) {
        s_session_t *s = &srv->slots[i];
        if (!s->handle || !s->announced)
            continue; /* a handshake is checked again when it finishes */
        gb_error_t why = {0};
        int rc = gb_channel_recheck_peer(s->ch, &why);
        if (rc == 0)
            continue;
        if (rc == GB_ENOMEM)
            return gb_error_set(err, rc, "link: rechecking sessions: %s", why.msg);
        char who[96];
        gb_log_warn("link: %s: %s; session ended", s_who(s, who, sizeof who), why.msg);
        s_close_notify(srv, s);
        s_end(srv, i, why.msg, true);
        ended++;
    }
    return ended;
}

void gb_link_server_test_set_generation(gb_link_server_t *srv, uint32_t generation)
{
    srv->generation = generation;
}

int gb_link_server_sessions(const gb_link_server_t *srv)
{
    return srv->count;
}

int gb_link_server_handshakes(const gb_link_server_t *srv)
{
    return srv->handshakes;
}
