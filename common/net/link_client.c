/* A client's side of the link (net/link.h): one DEALER socket, one TLS
 * channel at a time, and reconnection.
 *
 * The client is in one of three states: waiting (no channel; the next
 * handshake starts at next_attempt), handshaking and established. Any failure
 * (a record that does not verify, a reset from the coordinator, a handshake
 * that does not finish in time) drops the channel and goes back to waiting
 * with exponential backoff and jitter, so a restarted coordinator is not met
 * by every client at the same millisecond. A new handshake gets a new random
 * session id, which tells the coordinator to forget the old session.
 *
 * ZMQ_IMMEDIATE keeps frames out of the socket until a connection exists:
 * they wait in the channel's outbox instead, where back-pressure can see
 * them. ZeroMQ's own heartbeats notice a dead TCP connection, and its
 * reconnection brings a new one; the session above it is restored by the
 * coordinator's reset and a new handshake. */
#include "net/link.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <zmq.h>

#include "net/event_loop.h"
#include "net/link_frame.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

#define S_BLOCKED_RETRY_MS 5
#define S_FRAME_SLACK (64 << 10)
#define S_ZMQ_HEARTBEAT_MS 2000
#define S_ZMQ_HEARTBEAT_TIMEOUT_MS 6000

typedef enum { S_WAITING, S_HANDSHAKE, S_ESTABLISHED } s_state_t;

struct gb_link_client {
    void *sock;              /* DEALER */
    void *monitor;           /* PAIR receiving the DEALER's disconnect events */
    gb_tls_t *tls;           /* borrowed client configuration */
    char *server_name;       /* the coordinator's certificate name */
    gb_link_options_t o;     /* options with defaults filled */
    gb_channel_t *ch;        /* the current TLS session, or NULL */
    s_state_t state;         /* see the file comment */
    uint64_t session_id;     /* random id of the current handshake */
    uint64_t session_number; /* 1, 2, ... per handshake, reported in events */
    bool hello_sent;         /* the first frame of this session went out */
    bool closing;            /* the coordinator closed: drain, then end */
    bool cursor;             /* the channel may hold messages */
    bool blocked;            /* the socket had no room for the outbox at the last flush */
    bool lingering;          /* closed by us: the close_notify still waits for room */
    double linger_until;     /* while lingering: when to give up on it (gb_time_now) */
    double started;          /* when the current handshake began */
    double next_attempt;     /* when waiting ends */
    int backoff_ms;          /* next delay after a failure */
    bool pending;            /* an event waits in `event` */
    gb_link_event_t event;   /* a connected or disconnected event */
    char peer[256];          /* the coordinator's name, once verified */
    gb_event_loop_t *loop;   /* a waiting poll's loop (made on the first such poll) */
};

static uint64_t s_random_id(void)
{
    uint64_t id = 0;
    while (id == 0)
        if (RAND_bytes((unsigned char *)&id, sizeof id) != 1)
            id = (uint64_t)(gb_time_now() * 1e9) ^ (uint64_t)(uintptr_t)&id;
    return id;
}

/* A delay of ms with +-25% jitter. */
static double s_jittered(int ms)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)(gb_time_now() * 1e6);
    double f = 0.75 + 0.5 * (r / 4294967296.0);
    return ms * f / 1000.0;
}

static void s_set_event(gb_link_client_t *cli, gb_link_event_kind_t kind, const char *reason)
{
    memset(&cli->event, 0, sizeof cli->event);
    cli->event.kind = kind;
    cli->event.session = cli->session_number;
    cli->event.peer_name = cli->peer[0] ? cli->peer : NULL;
    if (reason)
        snprintf(cli->event.reason, sizeof cli->event.reason, "%s", reason);
    cli->pending = true;
}

/* Drops the channel and waits before the next handshake. wait_ms < 0: use
 * the backoff (and double it). */
static void s_drop(gb_link_client_t *cli, const char *reason, int wait_ms)
{
    if (cli->state == S_ESTABLISHED)
        s_set_event(cli, GB_LINK_EV_DISCONNECTED, reason);
    gb_channel_destroy(&cli->ch);
    cli->state = S_WAITING;
    cli->cursor = false;
    cli->closing = false;
    cli->blocked = false;
    if (wait_ms < 0) {
        wait_ms = cli->backoff_ms;
        cli->backoff_ms = cli->backoff_ms * 2 > cli->o.retry_max_ms ? cli->o.retry_max_ms
                                                                   : cli->backoff_ms * 2;
    }
    cli->next_attempt = gb_time_now() + s_jittered(wait_ms);
}

static void s_start(gb_link_client_t *cli)
{
    gb_error_t err = {0};
    cli->ch = gb_channel_new(cli->tls, cli->server_name, cli->o.max_message, &err);
    if (!cli->ch) {
        gb_log_error("link: cannot start a handshake: %s", err.msg);
        s_drop(cli, err.msg, -1);
        return;
    }
    cli->state = S_HANDSHAKE;
    cli->session_id = s_random_id();
    cli->session_number++;
    cli->hello_sent = false;
    cli->peer[0] = '\0';
    cli->started = gb_time_now();
    gb_log_debug("link: handshake %llu with %s", (unsigned long long)cli->session_number,
                 cli->server_name);
}

/* Moves the outbox to the socket. Returns false when it must wait. */
static bool s_flush(gb_link_client_t *cli)
{
    cli->blocked = false;
    if (!cli->ch)
        return true;
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(cli->ch, &bytes);
    if (!n)
        return true;
    gb_error_t err = {0};
    int kind = cli->hello_sent ? GB_LINK_DATA : GB_LINK_HELLO;
    int rc = gb_link_send(cli->sock, NULL, 0, kind, cli->session_id, bytes, n, &err);
    if (rc == GB_EAGAIN) {
        cli->blocked = true;
        return false;
    }
    if (rc != 0) {
        gb_log_warn("link: %s", err.msg);
        s_drop(cli, err.msg, -1);
        return true;
    }
    cli->hello_sent = true;
    gb_channel_outbox_consume(cli->ch, n);
    return true;
}

static void s_on_data(gb_link_client_t *cli, const gb_link_received_t *m)
{
    gb_error_t err = {0};
    int rc = gb_channel_feed(cli->ch, zmq_msg_data((zmq_msg_t *)&m->payload),
                             zmq_msg_size((zmq_msg_t *)&m->payload), &err);
    if (rc != 0) {
        gb_log_warn("link: session with %s failed: %s", cli->server_name, err.msg);
        s_flush(cli); /* the alert, if the socket takes it */
        s_drop(cli, err.msg, -1);
        return;
    }
    if (cli->state == S_HANDSHAKE && gb_channel_established(cli->ch)) {
        /* TLS 1.3 finishes on the client before the server has checked the
         * client's certificate; the server's empty first message says it
         * has, so CONNECTED means both sides accepted the session. */
        const uint8_t *first;
        size_t first_len;
        if (gb_channel_next_message(cli->ch, &first, &first_len) != 1) {
            s_flush(cli);
            return;
        }
        if (first_len != 0) {
            gb_log_warn("link: %s spoke before accepting the session", cli->server_name);
            s_drop(cli, "protocol violation: no session acceptance", -1);
            return;
        }
        cli->state = S_ESTABLISHED;
        cli->backoff_ms = cli->o.retry_ms;
        const char *name = gb_channel_peer_name(cli->ch);
        snprintf(cli->peer, sizeof cli->peer, "%s", name ? name : cli->server_name);
        gb_log_info("link: connected to %s (session %llu)", cli->peer,
                    (unsigned long long)cli->session_number);
        s_set_event(cli, GB_LINK_EV_CONNECTED, NULL);
    }
    if (gb_channel_failed(cli->ch))
        cli->closing = true;
    cli->cursor = true;
    s_flush(cli);
}

static void s_on_message(gb_link_client_t *cli, const gb_link_received_t *m)
{
    if (!cli->ch || m->header.session_id != cli->session_id) {
        gb_log_debug("link: frame for an old session ignored");
        return;
    }
    switch (m->header.kind) {
    case GB_LINK_DATA:
        s_on_data(cli, m);
        return;
    case GB_LINK_RESET:
        gb_log_info("link: %s reset the session; reconnecting", cli->server_name);
        s_drop(cli, "coordinator reset the session", cli->state == S_ESTABLISHED
                                                         ? cli->o.retry_ms : -1);
        return;
    case GB_LINK_BUSY: {
        const uint8_t *p = zmq_msg_data((zmq_msg_t *)&m->payload);
        uint32_t wait = cli->o.retry_ms;
        if (zmq_msg_size((zmq_msg_t *)&m->payload) == 4)
            wait = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (wait > (uint32_t)cli->o.retry_max_ms)
            wait = (uint32_t)cli->o.retry_max_ms;
        gb_log_info("link: %s is busy; retrying in %u ms", cli->server_name, wait);
        s_drop(cli, "coordinator busy", (int)wait);
        return;
    }
    default:
        gb_log_warn("link: coordinator sent a '%c' frame, which only clients send; ignored",
                    m->header.kind);
    }
}

static bool s_take_message(gb_link_client_t *cli, gb_link_event_t *ev)
{
    if (!cli->cursor || !cli->ch)
        return false;
    const uint8_t *msg;
    size_t len;
    if (gb_channel_next_message(cli->ch, &msg, &len) == 1) {
        ev->kind = GB_LINK_EV_MESSAGE;
        ev->session = cli->session_number;
        ev->peer_name = cli->peer[0] ? cli->peer : NULL;
        ev->data = msg;
        ev->len = len;
        return true;
    }
    cli->cursor = false;
    if (cli->closing) {
        gb_log_info("link: %s closed the session", cli->server_name);
        s_drop(cli, "coordinator closed the session", cli->o.retry_ms);
    }
    return false;
}

/* Reads the monitor's events; a disconnect ends the current session. */
static void s_check_monitor(gb_link_client_t *cli)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, cli->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&ev) >= sizeof id)
            memcpy(&id, zmq_msg_data(&ev), sizeof id);
        bool disconnected = (id & ZMQ_EVENT_DISCONNECTED) != 0;
        while (zmq_msg_more(&ev)) { /* the endpoint frame */
            zmq_msg_close(&ev);
            zmq_msg_init(&ev);
            if (zmq_msg_recv(&ev, cli->monitor, ZMQ_DONTWAIT) < 0)
                break;
        }
        zmq_msg_close(&ev);
        if (disconnected && cli->state != S_WAITING) {
            gb_log_info("link: connection to %s lost; reconnecting", cli->server_name);
            s_drop(cli, "connection lost", cli->o.retry_ms);
        }
    }
}

gb_link_client_t *gb_link_client_new(void *zmq_ctx, const char *endpoint, gb_tls_t *tls,
                                     const char *server_name, const gb_link_options_t *opts,
                                     gb_error_t *err)
{
    if (!server_name || !*server_name) {
        gb_error_set(err, GB_EINVAL, "link client: the coordinator's name is required");
        return NULL;
    }
    gb_link_client_t *cli = gb_calloc(1, sizeof *cli);
    if (!cli || !(cli->server_name = gb_strdup(server_name))) {
        gb_error_set(err, GB_ENOMEM, "link client: out of memory");
        goto fail;
    }
    gb_link_options_fill(&cli->o, opts);
    cli->tls = tls;
    cli->backoff_ms = cli->o.retry_ms;
    cli->sock = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (!cli->sock) {
        gb_error_set(err, GB_EIO, "link client: cannot make a socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int one = 1, zero = 0, ivl = S_ZMQ_HEARTBEAT_MS, timeout = S_ZMQ_HEARTBEAT_TIMEOUT_MS;
    int reconnect = cli->o.retry_ms, reconnect_max = cli->o.retry_max_ms;
    int64_t max_frame = (int64_t)(cli->o.max_queued_bytes + cli->o.max_message + S_FRAME_SLACK);
    if (zmq_setsockopt(cli->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_SNDHWM, &cli->o.socket_hwm, sizeof(int)) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_RCVHWM, &cli->o.socket_hwm, sizeof(int)) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_RECONNECT_IVL, &reconnect, sizeof reconnect) != 0 ||
        zmq_setsockopt(cli->sock, ZMQ_RECONNECT_IVL_MAX, &reconnect_max,
                       sizeof reconnect_max) != 0) {
        gb_error_set(err, GB_EIO, "link client: socket options: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_connect(cli->sock, endpoint) != 0) {
        gb_error_set(err, GB_EIO, "link client: cannot connect to %s: %s", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    /* A lost TCP connection takes the frames queued on it along and comes
     * back under a new routing id the coordinator does not know; hearing of
     * the loss at once starts a new handshake instead of waiting for a reply
     * that cannot come. */
    /* Named by a counter, not by the address: a client freed a moment ago
     * may leave its monitor endpoint bound a while (ZeroMQ closes sockets
     * asynchronously), and the next client can get the same address. */
    static atomic_ulong monitors;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://gb-link-monitor-%lu",
             (unsigned long)atomic_fetch_add(&monitors, 1));
    cli->monitor = zmq_socket(zmq_ctx, ZMQ_PAIR);
    if (!cli->monitor || zmq_setsockopt(cli->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_socket_monitor(cli->sock, mon, ZMQ_EVENT_DISCONNECTED) != 0 ||
        zmq_connect(cli->monitor, mon) != 0) {
        gb_error_set(err, GB_EIO, "link client: socket monitor: %s", zmq_strerror(errno));
        goto fail;
    }
    cli->state = S_WAITING;
    cli->next_attempt = 0;
    return cli;
fail:
    gb_link_client_destroy(&cli);
    return NULL;
}

void gb_link_client_destroy(gb_link_client_t **pcli)
{
    if (!pcli || !*pcli)
        return;
    gb_link_client_t *cli = *pcli;
    gb_event_loop_destroy(&cli->loop);
    gb_channel_destroy(&cli->ch);
    /* Stop the monitor while our end of its PAIR is still open: ZeroMQ's I/O
     * thread sends each event with a blocking send while holding the
     * monitor's lock, and a PAIR without its peer blocks for ever, so
     * closing our end first could leave an event (the coordinator hanging
     * up at that moment) stuck, and this thread waiting for the lock. */
    if (cli->sock)
        zmq_socket_monitor(cli->sock, NULL, 0);
    if (cli->monitor)
        zmq_close(cli->monitor);
    if (cli->sock)
        zmq_close(cli->sock);
    gb_free(cli->server_name);
    gb_free(cli);
    *pcli = NULL;
}

/* Everything the link can do without waiting: an event already made, the
 * next message of the channel, the timers (a reconnection due, a
 * handshake's timeout), the outbox, the monitor and every frame the socket
 * holds. Returns 0 with ev->kind GB_LINK_EV_NONE when nothing is left. */
static int s_poll_now(gb_link_client_t *cli, gb_link_event_t *ev, gb_error_t *err)
{
    memset(ev, 0, sizeof *ev);
    for (;;) {
        if (cli->pending) {
            *ev = cli->event;
            cli->pending = false;
            return 0;
        }
        if (s_take_message(cli, ev))
            return 0;
        if (cli->pending)
            continue;
        double now = gb_time_now();
        if (cli->state == S_WAITING && now >= cli->next_attempt)
            s_start(cli);
        s_flush(cli);
        if (cli->state == S_HANDSHAKE &&
            now - cli->started > cli->o.handshake_timeout_ms / 1000.0) {
            gb_log_warn("link: no handshake with %s in %d ms; retrying", cli->server_name,
                        cli->o.handshake_timeout_ms);
            s_drop(cli, "handshake timed out", -1);
        }
        s_check_monitor(cli);
        if (cli->pending)
            continue;
        gb_link_received_t m;
        int rc = gb_link_recv(cli->sock, 0, &m, err);
        if (rc == 1) {
            s_on_message(cli, &m);
            gb_link_received_close(&m);
            continue;
        }
        if (rc == GB_EPROTO) {
            gb_log_warn("link: from %s: %s; dropped", cli->server_name,
                        err ? err->msg : "bad message");
            gb_link_received_close(&m);
            gb_error_clear(err);
            continue;
        }
        return rc; /* 0: nothing more now */
    }
}

/* The link as the one source of its own loop: its items (POLLOUT while the
 * outbox waits for room) and its nearest timer. Ready needs nothing: the
 * poll looks again after every turn. */
static int s_fill(void *arg, zmq_pollitem_t *items, int cap, double *deadline)
{
    const gb_link_client_t *cli = arg;
    *deadline = gb_link_client_next_deadline(cli);
    return gb_link_client_poll_items(cli, items, cap);
}

static void s_ready(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
}

/* What gb_link_client_poll waits for: an event, taken into ev. */
typedef struct {
    gb_link_client_t *cli; /* the waiting link */
    gb_link_event_t *ev;   /* the waiting poll's event */
} s_wait_t;

static int s_wait_check(void *arg, gb_error_t *err)
{
    s_wait_t *w = arg;
    int rc = s_poll_now(w->cli, w->ev, err);
    return rc < 0 ? rc : w->ev->kind != GB_LINK_EV_NONE ? 1 : 0;
}

int gb_link_client_poll(gb_link_client_t *cli, int timeout_ms, gb_link_event_t *ev,
                        gb_error_t *err)
{
    int rc = s_poll_now(cli, ev, err);
    if (rc != 0 || ev->kind != GB_LINK_EV_NONE || timeout_ms == 0)
        return rc;
    s_wait_t w = {cli, ev};
    const gb_event_wait_t how = {.max_items = GB_LINK_CLIENT_POLL_ITEMS, .fill = s_fill,
                                 .ready = s_ready, .arg = cli, .check = s_wait_check,
                                 .check_arg = &w, .who = "link client: "};
    rc = gb_event_loop_wait(&cli->loop, &how, timeout_ms, err);
    return rc < 0 ? rc : 0;
}

int gb_link_client_poll_items(const gb_link_client_t *cli, zmq_pollitem_t *items, int cap)
{
    if (cap < GB_LINK_CLIENT_POLL_ITEMS)
        return 0;
    /* POLLOUT only while blocked: a DEALER with ZMQ_IMMEDIATE reports it
     * once a connection exists and has room, which is exactly when the
     * outbox can move; asked for always, it would be ready always. */
    items[0] = (zmq_pollitem_t){.socket = cli->sock,
                                .events = (short)(ZMQ_POLLIN | (cli->blocked ? ZMQ_POLLOUT : 0))};
    items[1] = (zmq_pollitem_t){.socket = cli->monitor, .events = ZMQ_POLLIN};
    return GB_LINK_CLIENT_POLL_ITEMS;
}

double gb_link_client_next_deadline(const gb_link_client_t *cli)
{
    if (cli->lingering)
        return cli->linger_until; /* POLLOUT (blocked) says when there is room before */
    if (cli->pending || (cli->cursor && cli->ch))
        return 0; /* taken in already: no socket will say so again */
    if (cli->state == S_WAITING)
        return cli->next_attempt >= 1e18 ? HUGE_VAL : cli->next_attempt;
    if (cli->state == S_HANDSHAKE)
        return cli->started + cli->o.handshake_timeout_ms / 1000.0;
    return HUGE_VAL;
}

int gb_link_client_send(gb_link_client_t *cli, const void *msg, size_t len, gb_error_t *err)
{
    if (cli->state != S_ESTABLISHED || cli->closing)
        return gb_error_set(err, GB_ECLOSED, "link: not connected to %s", cli->server_name);
    if (len > cli->o.max_message)
        return gb_error_set(err, GB_ERANGE, "link: message of %zu bytes exceeds the limit %zu",
                            len, cli->o.max_message);
    if (gb_link_client_queued(cli) >= cli->o.max_queued_bytes)
        return gb_error_set(err, GB_EAGAIN, "link: %zu bytes already queued for %s",
                            cli->o.max_queued_bytes, cli->server_name);
    int rc = gb_channel_send(cli->ch, msg, len, err);
    if (rc != 0)
        return rc;
    s_flush(cli);
    return 0;
}

bool gb_link_client_connected(const gb_link_client_t *cli)
{
    return cli->state == S_ESTABLISHED && !cli->closing;
}

size_t gb_link_client_queued(const gb_link_client_t *cli)
{
    if (!cli->ch)
        return 0;
    const uint8_t *bytes;
    return gb_channel_outbox(cli->ch, &bytes);
}

bool gb_link_client_close_begin(gb_link_client_t *cli, int linger_ms)
{
    if (!cli->ch || cli->lingering)
        return cli->lingering;
    gb_channel_close(cli->ch);
    cli->lingering = true;
    cli->linger_until = gb_time_now() + linger_ms / 1000.0;
    return gb_link_client_linger(cli);
}

bool gb_link_client_linger(gb_link_client_t *cli)
{
    if (!cli->lingering)
        return false;
    if (!s_flush(cli) && gb_time_now() < cli->linger_until)
        return true;
    gb_channel_destroy(&cli->ch);
    cli->lingering = false;
    cli->blocked = false;
    cli->state = S_WAITING;
    cli->next_attempt = 1e18; /* closed on purpose: no reconnection */
    return false;
}

bool gb_link_client_lingering(const gb_link_client_t *cli)
{
    return cli->lingering;
}

void gb_link_client_close(gb_link_client_t *cli, int linger_ms)
{
    /* standalone (a one-shot command): wait here, nothing else to serve */
    while (gb_link_client_close_begin(cli, linger_ms)) {
        zmq_pollitem_t item = {.socket = cli->sock, .events = ZMQ_POLLOUT};
        zmq_poll(&item, 1, S_BLOCKED_RETRY_MS);
        if (!gb_link_client_linger(cli))
            break;
    }
}
