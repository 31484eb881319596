/* The coordinator's front door (see front_door.h): link events in, replies
 * out. Session state is a small table keyed by the link's session handle;
 * the link itself bounds how many sessions there are. */
#include "front_door.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "enroll_service.h"
#include "enroll_tokens.h"
#include "net/channel.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

#define S_CRL_CHECK_S 1.0 /* how often crl.pem's time stamp is looked at */

typedef struct {
    uint64_t handle;                   /* the link's session handle */
    bool anonymous;                    /* no certificate: enrollment only */
    bool joined;                       /* Join received and welcomed */
    uint64_t next_seq;                 /* our next Envelope.sequence to it */
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
    struct timespec crl_mtime;    /* crl.pem's time stamp when last loaded */
    double next_crl_check;        /* when to look again */
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
    gb_link_server_destroy(&d->link);
    gb_tls_destroy(&d->tls);
    gb_tokens_destroy(&d->tokens);
    gb_ca_destroy(&d->ca);
    gb_free(d->sessions);
    gb_free(d);
    *pd = NULL;
}

const char *gb_front_door_endpoint(const gb_front_door_t *d)
{
    return gb_link_server_endpoint(d->link);
}

size_t gb_front_door_joined(const gb_front_door_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_sessions; i++)
        n += d->sessions[i].joined;
    return n;
}

static s_session_t *s_find(gb_front_door_t *d, uint64_t handle)
{
    for (size_t i = 0; i < d->n_sessions; i++)
        if (d->sessions[i].handle == handle)
            return &d->sessions[i];
    return NULL;
}

static void s_forget(gb_front_door_t *d, uint64_t handle)
{
    s_session_t *s = s_find(d, handle);
    if (s)
        *s = d->sessions[--d->n_sessions];
}

static void s_on_connected(gb_front_door_t *d, const gb_link_event_t *ev)
{
    if (d->n_sessions == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        s_session_t *grown = gb_realloc(d->sessions, cap * sizeof *grown);
        if (!grown) {
            gb_log_error("coordinator: out of memory for session state; closing the session");
            gb_link_server_close(d->link, ev->session);
            return;
        }
        d->sessions = grown;
        d->cap = cap;
    }
    s_session_t *s = &d->sessions[d->n_sessions++];
    memset(s, 0, sizeof *s);
    s->handle = ev->session;
    s->anonymous = ev->peer_name == NULL;
    s->next_seq = 1;
    if (ev->peer_name)
        snprintf(s->name, sizeof s->name, "%s", ev->peer_name);
}

/* Packs and sends env to the session; our own failures are logged here. */
static void s_send_packed(gb_front_door_t *d, const s_session_t *s, const uint8_t *buf,
                          size_t len)
{
    gb_error_t err = {0};
    if (gb_link_server_send(d->link, s->handle, buf, len, &err) != 0)
        gb_log_warn("coordinator: reply to %s not sent: %s", s->name[0] ? s->name : "a client",
                    err.msg);
}

static void s_send(gb_front_door_t *d, s_session_t *s, Glassbox__Envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    if (gb_envelope_encode(env, NULL, &buf, &len, &err) != 0) {
        gb_log_error("coordinator: cannot pack a %s: %s", gb_envelope_body_name(env), err.msg);
        return;
    }
    s_send_packed(d, s, buf, len);
    gb_free(buf);
}

static void s_refuse(gb_front_door_t *d, s_session_t *s, Glassbox__ErrorCode code,
                     uint64_t in_reply_to, const char *why)
{
    gb_error_t err = {0};
    Glassbox__Envelope *env = gb_envelope_make_error(s->next_seq++, code, in_reply_to, why, &err);
    if (!env) {
        gb_log_error("coordinator: cannot make an error reply: %s", err.msg);
        return;
    }
    s_send(d, s, env);
    gb_envelope_free(&env);
}

static void s_enroll(gb_front_door_t *d, s_session_t *s, const gb_link_event_t *ev)
{
    gb_enroll_service_t svc = {.ca = d->ca, .tokens = d->tokens, .days = d->o.cert_days};
    uint8_t *reply = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    /* Granted or refused, there is a reply to send (an Error for a refusal),
     * and the service has logged the outcome. */
    int granted = gb_enroll_service_answer(&svc, ev->data, ev->len, s->next_seq++, 0, &reply,
                                           &len, &err);
    (void)granted;
    if (reply)
        s_send_packed(d, s, reply, len);
    gb_free(reply);
    /* One request per anonymous session: it has its answer. */
    gb_link_server_close(d->link, s->handle);
    s_forget(d, s->handle);
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
    w.software_version = "glassbox " GLASSBOX_VERSION;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = s->next_seq++;
    env.body_case = GLASSBOX__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    if (!s->joined)
        gb_log_info("coordinator: '%s' joined (%s, %llu training samples)", s->name,
                    j->software_version && j->software_version[0] ? j->software_version
                                                                  : "unknown version",
                    (unsigned long long)j->train_samples);
    s->joined = true;
    s_send(d, s, &env);
}

static void s_on_message(gb_front_door_t *d, const gb_link_event_t *ev)
{
    s_session_t *s = s_find(d, ev->session);
    if (!s)
        return; /* closed by us a moment ago */
    if (s->anonymous) {
        s_enroll(d, s, ev);
        return;
    }
    Glassbox__Envelope *in = NULL;
    gb_error_t err = {0};
    int rc = gb_envelope_decode(ev->data, ev->len, NULL, &in, &err);
    if (rc != 0) {
        s_refuse(d, s, gb_envelope_error_code(rc), 0, err.msg); /* decode logged it */
        return;
    }
    switch (in->body_case) {
    case GLASSBOX__ENVELOPE__BODY_JOIN:
        s_welcome(d, s, in);
        break;
    case GLASSBOX__ENVELOPE__BODY_HEARTBEAT:
        if (!s->joined) {
            s_refuse(d, s, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, in->sequence,
                     "send Join first");
            break;
        }
        {
            Glassbox__Envelope *ack = gb_envelope_make_ack(s->next_seq++, in->sequence, 0, 0,
                                                           &err);
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

/* Reloads the CRL when `ca revoke` or `ca crl` has rewritten it. */
static void s_check_crl(gb_front_door_t *d)
{
    double now = gb_time_now();
    if (now < d->next_crl_check)
        return;
    d->next_crl_check = now + S_CRL_CHECK_S;
    struct timespec t;
    if (!s_mtime(d->crl_file, &t) ||
        (t.tv_sec == d->crl_mtime.tv_sec && t.tv_nsec == d->crl_mtime.tv_nsec))
        return;
    gb_error_t err = {0};
    if (gb_tls_reload_crl(d->tls, d->crl_file, &err) != 0) {
        gb_log_error("coordinator: the new %s is refused, the old list stays: %s",
                     d->crl_file, err.msg);
    } else {
        gb_log_info("coordinator: revocation list reloaded from %s", d->crl_file);
    }
    d->crl_mtime = t; /* a refused file is not retried until it changes again */
}

int gb_front_door_step(gb_front_door_t *d, int timeout_ms, gb_error_t *err)
{
    gb_link_event_t ev;
    int wait = timeout_ms;
    for (;;) {
        s_check_crl(d);
        int rc = gb_link_server_poll(d->link, wait, &ev, err);
        if (rc != 0)
            return rc;
        switch (ev.kind) {
        case GB_LINK_EV_NONE:
            return 0;
        case GB_LINK_EV_CONNECTED:
            s_on_connected(d, &ev);
            break;
        case GB_LINK_EV_MESSAGE:
            s_on_message(d, &ev);
            break;
        case GB_LINK_EV_DISCONNECTED: {
            s_session_t *s = s_find(d, ev.session);
            if (s && s->joined)
                gb_log_info("coordinator: '%s' left: %s", s->name, ev.reason);
            s_forget(d, ev.session);
            break;
        }
        }
        wait = 0; /* drain what is pending, then return */
    }
}
