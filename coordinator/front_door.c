/* The coordinator's front door (see front_door.h): link events in, replies
 * out. Session state is a table (an array, in no order) that the link itself
 * bounds; a session is found in it through an index (session_index.h) by
 * its link handle, on every message, and by its client's name, on every
 * send, so that a round's tasks to N clients cost N lookups, not N^2
 * compares. The index holds every session's handle and the name of every
 * joined session (so at most one session per name). Each session has a
 * conversation (net/conversation.h) for its sequence numbers, chunked
 * transfers and the frames the link had no room for.
 *
 * The door lives on an event loop (net/event_loop.h): the link server is a
 * source of it, drained without waiting (s_service) whenever the loop says
 * the link has something to do; the CRL check is a periodic timer, and a
 * one-shot "service" timer closes what gb_front_door_close marked and
 * offers waiting frames to the link again. A callback cannot return an
 * error, so a failure of the socket is kept (d->fail) and every step
 * returns it. */
#include "front_door.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "enroll_service.h"
#include "enroll_tokens.h"
#include "net/channel.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "net/event_loop.h"
#include "net/link.h"
#include "net/pki.h"
#include "session_index.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

#define S_CRL_CHECK_S 1.0 /* how often crl.pem's time stamp is looked at */
#define S_FLUSH_RETRY_S 0.2 /* frames the link had no room for are offered again at least this
                               often (the link also wakes the door when its own queue moves) */
#define S_MAX_QUEUED ((size_t)64 << 20) /* unsent bytes held per session */
/* an anonymous session sends one EnrollRequest: a token and a CSR */
#define S_ANON_MAX_TRANSFER ((uint64_t)GB_ENVELOPE_MAX_TOKEN + GB_ENVELOPE_MAX_DER + 4096)

typedef struct {
    uint64_t handle;                   /* the link's session handle */
    bool anonymous;                    /* no certificate: enrollment only */
    bool joined;                       /* Join received and welcomed */
    gb_conversation_t *conv;           /* its Envelopes both ways */
    bool closing;                      /* to be closed at the end of the step */
    bool subscriber;                   /* joined as a subscriber: gets publications only */
    char name[GB_PKI_NAME_MAX + 1];    /* certificate CN ("" when anonymous) */
} s_session_t;

struct gb_front_door {
    gb_front_door_options_t o;    /* options, defaults filled (strings borrowed) */
    char ca_file[4096];           /* DIR/ca.crt */
    char crl_file[4096];          /* DIR/crl.pem */
    gb_ca_t *ca;                  /* signs enrollment requests */
    gb_tokens_t *tokens;          /* enrollment tokens */
    gb_tls_t *tls;                /* server configuration */
    gb_link_server_t *link;       /* the ROUTER socket */
    s_session_t *sessions;        /* connected sessions */
    size_t n_sessions, cap;       /* used and allocated */
    gb_session_index_t *index;    /* handle -> slot of sessions, name -> slot of joined ones;
                                     room for cap of each, so puts never fail */
    gb_front_door_handlers_t h;   /* the round loop's callbacks (all NULL: none) */
    struct timespec crl_mtime;    /* crl.pem's time stamp when last loaded */
    gb_event_loop_t *loop;        /* the loop it is attached to (borrowed, or own_loop) */
    gb_event_loop_t *own_loop;    /* gb_front_door_step's, made when it finds none */
    uint64_t crl_timer;           /* the periodic CRL check in loop */
    uint64_t service_timer;       /* one-shot: close marked sessions, flush */
    gb_error_t fail;              /* the socket's failure met in a callback (code 0: none) */
    uint8_t *last_pub;            /* the latest packed SignedPublication, for new subscribers */
    size_t last_pub_len;          /* its bytes */
    uint64_t current_round;       /* told in Welcome (gb_front_door_set_round) */
    uint64_t max_transfer;        /* a certified session's bound (0: the default) */
};

static void s_defaults(gb_front_door_options_t *o, const gb_front_door_options_t *in)
{
    *o = *in;
    if (!o->listen)
        o->listen = "tcp://0.0.0.0:7700";
    if (!o->federation)
        o->federation = "glassbox";
    if (o->cert_days <= 0)
        o->cert_days = 365;
    if (o->heartbeat_interval_ms <= 0)
        o->heartbeat_interval_ms = 5000;
    if (o->heartbeat_timeout_ms <= 0)
        o->heartbeat_timeout_ms = 30000;
}

static bool s_mtime(const char *path, struct timespec *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    *out = st.st_mtim;
    return true;
}

gb_front_door_t *gb_front_door_new(void *zmq_ctx, const gb_front_door_options_t *opts,
                                   gb_error_t *err)
{
    if (!opts || !opts->ca_dir) {
        gb_error_set(err, GB_EINVAL, "front door: the CA directory is required");
        return NULL;
    }
    gb_front_door_t *d = gb_calloc(1, sizeof *d);
    if (!d) {
        gb_error_set(err, GB_ENOMEM, "front door: out of memory");
        return NULL;
    }
    s_defaults(&d->o, opts);
    if (!(d->index = gb_session_index_new(0, err)))
        goto fail;
    char key[4096], cert[4096];
    snprintf(d->ca_file, sizeof d->ca_file, "%s/%s", opts->ca_dir, GB_CA_CERT_FILE);
    snprintf(d->crl_file, sizeof d->crl_file, "%s/%s", opts->ca_dir, GB_CA_CRL_FILE);
    snprintf(key, sizeof key, "%s/%s", opts->ca_dir, GB_CA_COORD_KEY_FILE);
    snprintf(cert, sizeof cert, "%s/%s", opts->ca_dir, GB_CA_COORD_CERT_FILE);
    if (!(d->ca = gb_ca_open(opts->ca_dir, err)) ||
        !(d->tokens = gb_tokens_load(opts->ca_dir, err)))
        goto fail;
    s_mtime(d->crl_file, &d->crl_mtime);
    gb_tls_options_t to = {.role = GB_TLS_SERVER, .ca_file = d->ca_file, .cert_file = cert,
                           .key_file = key, .crl_file = d->crl_file,
                           .allow_anonymous_peers = true};
    if (!(d->tls = gb_tls_new(&to, err)))
        goto fail;
    gb_link_options_t lo = {.idle_timeout_ms = d->o.heartbeat_timeout_ms};
    if (!(d->link = gb_link_server_new(zmq_ctx, d->o.listen, d->tls, &lo, err)))
        goto fail;
    gb_log_info("coordinator: federation '%s', CA %s, clients on %s", d->o.federation,
                opts->ca_dir, gb_link_server_endpoint(d->link));
    return d;
fail:
    gb_front_door_destroy(&d);
    return NULL;
}

void gb_front_door_destroy(gb_front_door_t **pd)
{
    if (!pd || !*pd)
        return;
    gb_front_door_t *d = *pd;
    gb_front_door_detach(d);
    gb_event_loop_destroy(&d->own_loop);
    for (size_t i = 0; i < d->n_sessions; i++)
        gb_conversation_destroy(&d->sessions[i].conv);
    gb_link_server_destroy(&d->link);
    gb_tls_destroy(&d->tls);
    gb_tokens_destroy(&d->tokens);
    gb_ca_destroy(&d->ca);
    gb_free(d->sessions);
    gb_session_index_destroy(&d->index);
    gb_free(d->last_pub);
    gb_free(d);
    *pd = NULL;
}

const char *gb_front_door_endpoint(const gb_front_door_t *d)
{
    return gb_link_server_endpoint(d->link);
}

void gb_front_door_set_round(gb_front_door_t *d, uint64_t round)
{
    d->current_round = round;
}

void gb_front_door_set_max_transfer(gb_front_door_t *d, uint64_t bytes)
{
    d->max_transfer = bytes;
    for (size_t i = 0; i < d->n_sessions; i++)
        if (!d->sessions[i].anonymous)
            gb_conversation_set_max_transfer(d->sessions[i].conv, bytes);
}

size_t gb_front_door_joined(const gb_front_door_t *d)
{
    return gb_session_index_names(d->index); /* the index names joined sessions only */
}

/* The session of a link handle, or NULL. The pointer is valid until the
 * table changes (a session added or forgotten). */
static s_session_t *s_find(gb_front_door_t *d, uint64_t handle)
{
    size_t slot;
    return gb_session_index_find_handle(d->index, handle, &slot) ? &d->sessions[slot] : NULL;
}

/* The joined session of client_id, or NULL. */
static s_session_t *s_find_name(gb_front_door_t *d, const char *client_id)
{
    size_t slot;
    return gb_session_index_find_name(d->index, client_id, &slot) ? &d->sessions[slot] : NULL;
}

/* Marks s joined (in the name index) or not. The index has room for every
 * session (reserved as the table grew), so joining cannot fail. */
static void s_set_joined(gb_front_door_t *d, s_session_t *s, bool joined)
{
    if (joined == s->joined)
        return;
    if (joined) {
        gb_error_t err = {0};
        int rc = gb_session_index_put_name(d->index, s->name, (size_t)(s - d->sessions), &err);
        assert(rc == 0); /* room reserved; a CN fits GB_SESSION_INDEX_NAME_MAX */
        (void)rc;
    } else {
        gb_session_index_remove_name(d->index, s->name);
    }
    s->joined = joined;
}

/* Drops the session of handle; the last session of the table moves into
 * its slot (and the index follows it), so pointers into the table are
 * stale after the call. */
static void s_forget(gb_front_door_t *d, uint64_t handle)
{
    s_session_t *s = s_find(d, handle);
    if (!s)
        return;
    gb_conversation_destroy(&s->conv);
    s_set_joined(d, s, false);
    gb_session_index_remove_handle(d->index, handle);
    size_t slot = (size_t)(s - d->sessions), last = --d->n_sessions;
    if (slot == last)
        return;
    *s = d->sessions[last];
    /* updates of keys present: they never allocate or fail */
    int rc = gb_session_index_put_handle(d->index, s->handle, slot, NULL);
    if (rc == 0 && s->joined)
        rc = gb_session_index_put_name(d->index, s->name, slot, NULL);
    assert(rc == 0);
    (void)rc;
}

static void s_on_connected(gb_front_door_t *d, const gb_link_event_t *ev)
{
    gb_error_t err = {0};
    if (s_find(d, ev->session)) { /* the link never repeats a handle (a generation is in
                                     it); if it did, the stale state must not linger
                                     unreachable behind the index */
        gb_log_error("coordinator: session handle %llu connected again; its old state dropped",
                     (unsigned long long)ev->session);
        s_forget(d, ev->session);
    }
    if (d->n_sessions == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        s_session_t *grown = gb_session_index_reserve(d->index, cap, &err) == 0
                                 ? gb_realloc(d->sessions, cap * sizeof *grown)
                                 : NULL;
        if (!grown) {
            gb_log_error("coordinator: out of memory for session state; closing the session");
            gb_link_server_close(d->link, ev->session);
            return;
        }
        d->sessions = grown;
        d->cap = cap;
    }
    /* what one client does not read is bounded well below the default: a
     * Task always fits (the bound is checked before queueing), a second
     * waits for room */
    gb_conversation_options_t co = {
        .max_queued_bytes = S_MAX_QUEUED,
        .max_transfer = ev->peer_name ? d->max_transfer : S_ANON_MAX_TRANSFER};
    gb_conversation_t *conv = gb_conversation_new(&co, &err);
    if (!conv) {
        gb_log_error("coordinator: %s; closing the session", err.msg);
        gb_link_server_close(d->link, ev->session);
        return;
    }
    if (gb_session_index_put_handle(d->index, ev->session, d->n_sessions, &err) != 0) {
        /* cannot happen: room for cap handles was reserved */
        gb_log_error("coordinator: %s; closing the session", err.msg);
        gb_conversation_destroy(&conv);
        gb_link_server_close(d->link, ev->session);
        return;
    }
    s_session_t *s = &d->sessions[d->n_sessions++];
    memset(s, 0, sizeof *s);
    s->handle = ev->session;
    s->anonymous = ev->peer_name == NULL;
    s->conv = conv;
    if (ev->peer_name)
        snprintf(s->name, sizeof s->name, "%s", ev->peer_name);
}

/* Sends packed bytes outside any conversation (the enrollment answer). */
static void s_send_packed(gb_front_door_t *d, const s_session_t *s, const uint8_t *buf,
                          size_t len)
{
    gb_error_t err = {0};
    if (gb_link_server_send(d->link, s->handle, buf, len, &err) != 0)
        gb_log_warn("coordinator: reply to %s not sent: %s", s->name[0] ? s->name : "a client",
                    err.msg);
}

typedef struct {
    gb_link_server_t *link; /* where frames go */
    uint64_t handle;        /* the session */
} s_route_t;

static int s_link_send(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    const s_route_t *r = arg;
    return gb_link_server_send(r->link, r->handle, frame, len, err);
}

/* Offers the session's queued frames to the link; what it has no room for
 * waits for the next step. */
static int s_flush(gb_front_door_t *d, s_session_t *s, gb_error_t *err)
{
    s_route_t route = {d->link, s->handle};
    int rc = gb_conversation_flush(s->conv, s_link_send, &route, err);
    return rc == GB_EAGAIN ? 0 : rc;
}

static int s_queue(gb_front_door_t *d, s_session_t *s, Glassbox__Envelope *env, uint64_t *seq,
                   gb_error_t *err)
{
    int rc = gb_conversation_queue(s->conv, env, seq, err);
    if (rc)
        return rc;
    if ((rc = s_flush(d, s, err)) != 0)
        gb_log_warn("coordinator: sending to %s: %s", s->name[0] ? s->name : "a client",
                    err ? err->msg : "");
    return 0; /* queued: a session that failed is ended by the link */
}

static void s_send(gb_front_door_t *d, s_session_t *s, Glassbox__Envelope *env)
{
    gb_error_t err = {0};
    if (s_queue(d, s, env, NULL, &err) != 0)
        gb_log_error("coordinator: cannot send a %s to %s: %s", gb_envelope_body_name(env),
                     s->name[0] ? s->name : "a client", err.msg);
}

static void s_refuse_retry(gb_front_door_t *d, s_session_t *s, Glassbox__ErrorCode code,
                           uint64_t in_reply_to, const char *why, uint32_t retry_after_ms)
{
    gb_error_t err = {0};
    Glassbox__Envelope *env = gb_envelope_make_error(1, code, in_reply_to, why, &err);
    if (!env) {
        gb_log_error("coordinator: cannot make an error reply: %s", err.msg);
        return;
    }
    env->error->retry_after_ms = retry_after_ms;
    s_send(d, s, env);
    gb_envelope_free(&env);
}

static void s_refuse(gb_front_door_t *d, s_session_t *s, Glassbox__ErrorCode code,
                     uint64_t in_reply_to, const char *why)
{
    s_refuse_retry(d, s, code, in_reply_to, why, 0);
}

static void s_enroll(gb_front_door_t *d, s_session_t *s, const gb_link_event_t *ev)
{
    gb_enroll_service_t svc = {.ca = d->ca, .tokens = d->tokens, .days = d->o.cert_days};
    uint8_t *reply = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    /* Granted or refused, there is a reply to send (an Error for a refusal),
     * and the service has logged the outcome. */
    int granted = gb_enroll_service_answer(&svc, ev->data, ev->len, 1, 0, &reply, &len, &err);
    (void)granted;
    if (reply)
        s_send_packed(d, s, reply, len);
    gb_free(reply);
    /* One request per anonymous session: it has its answer. */
    gb_link_server_close(d->link, s->handle);
    s_forget(d, s->handle);
}

/* A Join whose capabilities hold role=subscriber: a certified member of the
 * federation that takes publications and no tasks. */
static bool s_wants_publications(const Glassbox__Join *j)
{
    for (size_t i = 0; i < j->n_capabilities; i++)
        if (j->capabilities[i]->key && j->capabilities[i]->value &&
            strcmp(j->capabilities[i]->key, GB_FRONT_DOOR_ROLE_KEY) == 0 &&
            strcmp(j->capabilities[i]->value, GB_FRONT_DOOR_ROLE_SUBSCRIBER) == 0)
            return true;
    return false;
}

/* Queues one packed SignedPublication for s; 0 or a negative gb_err. */
static int s_send_publication(gb_front_door_t *d, s_session_t *s, const uint8_t *buf, size_t len,
                              gb_error_t *err)
{
    Glassbox__SignedPublication *sp = glassbox__signed_publication__unpack(NULL, len, buf);
    if (!sp)
        return gb_error_set(err, GB_EFORMAT, "a signed publication of %zu bytes does not unpack",
                            len);
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_PUBLICATION;
    env.publication = sp;
    int rc = s_queue(d, s, &env, NULL, err);
    glassbox__signed_publication__free_unpacked(sp, NULL);
    return rc;
}

static void s_welcome(gb_front_door_t *d, s_session_t *s, const Glassbox__Envelope *in)
{
    const Glassbox__Join *j = in->join;
    if (j->min_protocol_version > GB_ENVELOPE_PROTOCOL_VERSION ||
        j->max_protocol_version < GB_ENVELOPE_PROTOCOL_VERSION) {
        char why[128];
        snprintf(why, sizeof why, "this coordinator speaks protocol %u only",
                 GB_ENVELOPE_PROTOCOL_VERSION);
        gb_log_warn("coordinator: '%s' speaks protocols %u..%u: %s", s->name,
                    j->min_protocol_version, j->max_protocol_version, why);
        s_refuse(d, s, GLASSBOX__ERROR_CODE__ERROR_VERSION, in->sequence, why);
        return;
    }
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__Welcome w = GLASSBOX__WELCOME__INIT;
    w.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    w.client_id = s->name;
    w.federation = (char *)d->o.federation;
    w.heartbeat_interval_ms = (uint32_t)d->o.heartbeat_interval_ms;
    w.heartbeat_timeout_ms = (uint32_t)d->o.heartbeat_timeout_ms;
    w.current_round = d->current_round;
    w.software_version = "glassbox " GLASSBOX_VERSION;
    env.body_case = GLASSBOX__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    if (!s->subscriber && !s_wants_publications(j) && d->h.welcome) {
        gb_log_blame(NULL); /* the round loop's lines are its own */
        d->h.welcome(d->h.arg, s->name, j, &w);
    }
    if (s->joined || s->subscriber) { /* a repeated Join: the Welcome again, nothing else */
        s_send(d, s, &env);
        return;
    }
    if (s_wants_publications(j)) {
        /* Not a participant: the round loop never hears of it, so it is
         * neither counted nor selected. It gets the latest publication now
         * and every later one on this authenticated session. */
        s->subscriber = true;
        gb_log_info("coordinator: '%s' subscribed to publications", s->name);
        s_send(d, s, &env);
        gb_error_t err = {0};
        if (d->last_pub && s_send_publication(d, s, d->last_pub, d->last_pub_len, &err) != 0)
            gb_log_warn("coordinator: latest publication not sent to '%s': %s", s->name,
                        err.msg);
        return;
    }
    /* The same client on an older session (it reconnected before that one
     * timed out): the new session replaces it. */
    s_session_t *old = s_find_name(d, s->name);
    if (old) {
        gb_log_info("coordinator: '%s' is back on a new session; closing the old one", s->name);
        uint64_t handle = s->handle;
        gb_link_server_close(d->link, old->handle);
        s_forget(d, old->handle);
        s = s_find(d, handle); /* the table moved */
    }
    gb_log_info("coordinator: '%s' joined (%s, %llu training samples)", s->name,
                j->software_version && j->software_version[0] ? j->software_version
                                                              : "unknown version",
                (unsigned long long)j->train_samples);
    s_set_joined(d, s, true);
    s_send(d, s, &env);
    /* The round loop hears of it after the Welcome has been queued, so that
     * a Task it sends at once follows the Welcome. */
    gb_front_door_refusal_t no = {.code = GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN};
    if (d->h.joined && !d->h.joined(d->h.arg, s->name, j, &no)) {
        gb_log_warn("coordinator: '%s' is turned away: %s", s->name, no.why);
        s_refuse_retry(d, s, no.code, in->sequence, no.why, no.retry_after_ms);
        s_set_joined(d, s, false);
    }
}

/* One message of a session, with what it makes us log blamed on its peer
 * (util/log.h: rate-limited per peer), except what the round loop logs. */
static void s_handle_message(gb_front_door_t *d, s_session_t *s, const gb_link_event_t *ev)
{
    if (s->anonymous) {
        s_enroll(d, s, ev);
        return;
    }
    Glassbox__Envelope *in = NULL;
    gb_error_t err = {0};
    int rc = gb_conversation_receive(s->conv, ev->data, ev->len, &in, &err);
    if (rc < 0) {
        /* the decoder or reassembler logged it */
        s_refuse(d, s, gb_envelope_error_code(rc), gb_conversation_last_sequence(s->conv),
                 err.msg);
        return;
    }
    if (rc == 0)
        return; /* a chunk of a transfer still incomplete */
    switch (in->body_case) {
    case GLASSBOX__ENVELOPE__BODY_JOIN:
        gb_log_blame(NULL); /* the round loop hears of it: its lines are its own */
        s_welcome(d, s, in);
        break;
    case GLASSBOX__ENVELOPE__BODY_HEARTBEAT:
        if (!s->joined && !s->subscriber) {
            s_refuse(d, s, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, in->sequence,
                     "send Join first");
            break;
        }
        {
            Glassbox__Envelope *ack = gb_envelope_make_ack(1, in->sequence, 0, 0, &err);
            if (ack)
                s_send(d, s, ack);
            gb_envelope_free(&ack);
        }
        break;
    case GLASSBOX__ENVELOPE__BODY_ERROR:
        gb_log_warn("coordinator: '%s' reports %s: %s", s->name,
                    gb_envelope_error_name(in->error->code), in->error->message);
        break;
    default: {
        if (s->joined && d->h.message) {
            gb_log_blame(NULL); /* the round loop blames what is the client's */
            d->h.message(d->h.arg, s->name, in);
            break;
        }
        char why[160];
        snprintf(why, sizeof why, "%s %s", gb_envelope_body_name(in),
                 s->joined ? "is not expected now (no round in progress)"
                           : "before Join: send Join first");
        gb_log_warn("coordinator: '%s' sent %s", s->name, why);
        s_refuse(d, s, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, in->sequence, why);
    }
    }
    gb_envelope_free(&in);
}

static void s_on_message(gb_front_door_t *d, const gb_link_event_t *ev)
{
    s_session_t *s = s_find(d, ev->session);
    if (!s)
        return; /* closed by us a moment ago */
    gb_log_blame(s->anonymous ? "(anonymous)" : s->name);
    s_handle_message(d, s, ev);
    gb_log_blame(NULL);
}

/* Reloads the CRL when `ca revoke` or `ca crl` has rewritten it (the crl
 * timer's work, every S_CRL_CHECK_S). Returns the sessions it ended. */
static int s_check_crl(gb_front_door_t *d)
{
    struct timespec t;
    if (!s_mtime(d->crl_file, &t) ||
        (t.tv_sec == d->crl_mtime.tv_sec && t.tv_nsec == d->crl_mtime.tv_nsec))
        return 0;
    int ended = 0;
    gb_error_t err = {0};
    if (gb_tls_reload_crl(d->tls, d->crl_file, &err) != 0) {
        gb_log_error("coordinator: the new %s is refused, the old list stays: %s",
                     d->crl_file, err.msg);
    } else {
        gb_log_info("coordinator: revocation list reloaded from %s", d->crl_file);
        /* A revoked client's open session ends now, not at its next
         * handshake: its DISCONNECTED events follow at once, so the round
         * loop drops it and takes nothing more from it. */
        ended = gb_link_server_recheck(d->link, &err);
        if (ended < 0)
            gb_log_error("coordinator: sessions not checked against the new list: %s",
                         err.msg);
        else if (ended > 0)
            gb_metrics_counter_add("glassbox_sessions_revoked_total",
                                   "Sessions ended because their certificate was revoked or "
                                   "expired", NULL, NULL, ended);
        if (ended > 0)
            gb_log_warn("coordinator: %d session(s) ended: their certificate no longer passes",
                        ended);
    }
    d->crl_mtime = t; /* a refused file is not retried until it changes again */
    return ended;
}

/* Closes the sessions gb_front_door_close marked, telling the round loop. */
static void s_close_marked(gb_front_door_t *d)
{
    for (size_t i = 0; i < d->n_sessions;) {
        s_session_t *s = &d->sessions[i];
        if (!s->closing) {
            i++;
            continue;
        }
        char name[GB_PKI_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s", s->name);
        bool joined = s->joined;
        gb_link_server_close(d->link, s->handle);
        s_forget(d, s->handle); /* the last session moves into slot i */
        if (joined && d->h.left)
            d->h.left(d->h.arg, name, "closed by the coordinator");
    }
}

/* Offers every session's waiting frames to the link again. Returns whether
 * some still wait. */
static bool s_flush_all(gb_front_door_t *d)
{
    bool waiting = false;
    for (size_t i = 0; i < d->n_sessions; i++) {
        s_session_t *s = &d->sessions[i];
        gb_error_t err = {0};
        if (gb_conversation_queued_bytes(s->conv) && s_flush(d, s, &err) != 0)
            gb_log_warn("coordinator: sending to %s: %s", s->name[0] ? s->name : "a client",
                        err.msg);
        waiting = waiting || gb_conversation_queued_bytes(s->conv);
    }
    return waiting;
}

/* The service timer's next run (HUGE_VAL: disarm); nothing when detached. */
static void s_arm_service(gb_front_door_t *d, double at)
{
    if (d->loop && gb_event_loop_timer_set(d->loop, d->service_timer, at) != 0)
        gb_log_error("coordinator: the front door's service timer is gone");
}

/* One link event, answered. */
static void s_on_event(gb_front_door_t *d, const gb_link_event_t *ev)
{
    switch (ev->kind) {
    case GB_LINK_EV_NONE:
        return;
    case GB_LINK_EV_CONNECTED:
        s_on_connected(d, ev);
        return;
    case GB_LINK_EV_MESSAGE:
        s_on_message(d, ev);
        return;
    case GB_LINK_EV_DISCONNECTED: {
        s_session_t *s = s_find(d, ev->session);
        char name[GB_PKI_NAME_MAX + 1] = "";
        if (s && s->joined) {
            gb_log_info("coordinator: '%s' left: %s", s->name, ev->reason);
            snprintf(name, sizeof name, "%s", s->name);
        }
        s_forget(d, ev->session);
        if (name[0] && d->h.left)
            d->h.left(d->h.arg, name, ev->reason);
        return;
    }
    }
}

/* Everything the door can do now: every pending link event answered, the
 * marked sessions closed, waiting frames offered again (and, while some
 * still wait, the service timer armed to offer them again). A socket
 * failure is kept for the step to return. */
static void s_service(gb_front_door_t *d)
{
    gb_link_event_t ev;
    for (;;) {
        gb_error_t err = {0};
        int rc = gb_link_server_poll(d->link, 0, &ev, &err);
        if (rc != 0) {
            if (!d->fail.code)
                gb_error_set(&d->fail, rc, "%s", err.msg);
            break;
        }
        if (ev.kind == GB_LINK_EV_NONE)
            break;
        s_on_event(d, &ev);
    }
    s_close_marked(d);
    s_arm_service(d, s_flush_all(d) ? gb_time_now() + S_FLUSH_RETRY_S : HUGE_VAL);
}

static void s_on_link_ready(void *arg)
{
    s_service(arg);
}

static void s_on_service_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    s_service(arg);
}

static void s_on_crl_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_front_door_t *d = arg;
    if (s_check_crl(d) > 0)
        s_service(d); /* the ended sessions' DISCONNECTED events */
}

int gb_front_door_attach(gb_front_door_t *d, gb_event_loop_t *loop, gb_error_t *err)
{
    if (!loop)
        return gb_error_set(err, GB_EINVAL, "front door: attach needs a loop");
    if (d->loop == loop)
        return 0;
    if (d->loop && d->loop != d->own_loop)
        return gb_error_set(err, GB_EINVAL, "front door: attached to another loop already");
    gb_front_door_detach(d); /* from its own loop, if a step made one */
    double now = gb_time_now();
    int rc = gb_link_server_attach(d->link, loop, s_on_link_ready, d, err);
    if (rc)
        return rc;
    /* the first CRL check and service at once, as a step always began */
    d->crl_timer = gb_event_loop_add_timer(loop, now, S_CRL_CHECK_S, s_on_crl_timer, d, err);
    d->service_timer =
        d->crl_timer ? gb_event_loop_add_timer(loop, now, 0, s_on_service_timer, d, err) : 0;
    if (!d->service_timer) {
        gb_event_loop_remove(loop, d->crl_timer);
        d->crl_timer = 0;
        gb_link_server_detach(d->link);
        return err && err->code ? err->code : GB_ENOMEM;
    }
    d->loop = loop;
    return 0;
}

void gb_front_door_detach(gb_front_door_t *d)
{
    if (!d->loop)
        return;
    gb_event_loop_remove(d->loop, d->crl_timer);
    gb_event_loop_remove(d->loop, d->service_timer);
    gb_link_server_detach(d->link);
    d->crl_timer = d->service_timer = 0;
    d->loop = NULL;
}

int gb_front_door_failure(const gb_front_door_t *d, gb_error_t *err)
{
    if (!d->fail.code)
        return 0;
    return gb_error_set(err, d->fail.code, "%s", d->fail.msg);
}

int gb_front_door_step(gb_front_door_t *d, int timeout_ms, gb_error_t *err)
{
    if (!d->loop) {
        if (!d->own_loop && !(d->own_loop = gb_event_loop_new(err)))
            return err && err->code ? err->code : GB_ENOMEM;
        int rc = gb_front_door_attach(d, d->own_loop, err);
        if (rc)
            return rc;
    }
    int rc = gb_event_loop_run_once(d->loop, timeout_ms, err);
    if (rc < 0)
        return rc;
    return gb_front_door_failure(d, err);
}

void gb_front_door_set_handlers(gb_front_door_t *d, const gb_front_door_handlers_t *h)
{
    if (h)
        d->h = *h;
    else
        memset(&d->h, 0, sizeof d->h);
}

int gb_front_door_send(gb_front_door_t *d, const char *client_id, Glassbox__Envelope *env,
                       uint64_t *seq, gb_error_t *err)
{
    s_session_t *s = client_id ? s_find_name(d, client_id) : NULL;
    if (!s)
        return gb_error_set(err, GB_ECLOSED, "coordinator: '%s' is not connected",
                            client_id ? client_id : "(null)");
    return s_queue(d, s, env, seq, err);
}

int gb_front_door_send_parts(gb_front_door_t *d, const char *client_id,
                             Glassbox__Envelope__BodyCase body,
                             const gb_conversation_part_t *parts, size_t n_parts, uint64_t *seq,
                             gb_error_t *err)
{
    s_session_t *s = client_id ? s_find_name(d, client_id) : NULL;
    if (!s)
        return gb_error_set(err, GB_ECLOSED, "coordinator: '%s' is not connected",
                            client_id ? client_id : "(null)");
    int rc = gb_conversation_queue_parts(s->conv, body, parts, n_parts, seq, err);
    if (rc)
        return rc;
    if (s_flush(d, s, err) != 0)
        gb_log_warn("coordinator: sending to %s: %s", s->name, err ? err->msg : "");
    return 0; /* queued: a session that failed is ended by the link */
}

void gb_front_door_refuse(gb_front_door_t *d, const char *client_id, Glassbox__ErrorCode code,
                          uint64_t in_reply_to, const char *why)
{
    s_session_t *s = s_find_name(d, client_id);
    if (!s) {
        gb_log_warn("coordinator: error reply to '%s' dropped: not connected", client_id);
        return;
    }
    s_refuse(d, s, code, in_reply_to, why);
}

void gb_front_door_ack(gb_front_door_t *d, const char *client_id, uint64_t acked_sequence,
                       uint64_t round, uint64_t task_id)
{
    s_session_t *s = s_find_name(d, client_id);
    gb_error_t err = {0};
    Glassbox__Envelope *ack = s ? gb_envelope_make_ack(1, acked_sequence, round, task_id, &err)
                                : NULL;
    if (!ack) {
        gb_log_warn("coordinator: ack to '%s' dropped: %s", client_id,
                    s ? err.msg : "not connected");
        return;
    }
    s_send(d, s, ack);
    gb_envelope_free(&ack);
}

size_t gb_front_door_queued_bytes(const gb_front_door_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_sessions; i++)
        n += gb_conversation_queued_bytes(d->sessions[i].conv);
    return n;
}

void gb_front_door_close(gb_front_door_t *d, const char *client_id, const char *why)
{
    s_session_t *s = s_find_name(d, client_id);
    if (!s)
        return;
    gb_log_warn("coordinator: closing the session of '%s': %s", client_id, why);
    s->closing = true;
    s_arm_service(d, gb_time_now()); /* this turn's timers, or the next turn's */
}

int gb_front_door_publish(gb_front_door_t *d, const uint8_t *signed_pub, size_t len,
                          gb_error_t *err)
{
    uint8_t *copy = len ? gb_malloc(len) : NULL;
    if (!copy)
        return gb_error_set(err, len ? GB_ENOMEM : GB_EINVAL,
                            "front door: cannot keep a publication of %zu bytes", len);
    memcpy(copy, signed_pub, len);
    gb_free(d->last_pub);
    d->last_pub = copy;
    d->last_pub_len = len;
    int sent = 0;
    for (size_t i = 0; i < d->n_sessions; i++) {
        s_session_t *s = &d->sessions[i];
        if (!s->subscriber || s->closing)
            continue;
        gb_error_t e = {0};
        /* A subscriber that does not read misses this one (its queue is
         * bounded), as a slow SUB socket would; the others are not held up. */
        if (s_send_publication(d, s, copy, len, &e) != 0) {
            gb_log_warn("coordinator: publication not sent to subscriber '%s': %s", s->name,
                        e.msg);
            continue;
        }
        sent++;
    }
    return sent;
}
