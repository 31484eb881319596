/* gb_link_peer: the C end of the interoperability test (test_interop.py).
 *
 *   gb_link_peer server PKI_DIR ENDPOINT PORT_FILE
 *       A coordinator-shaped server with PKI_DIR's coordinator certificate:
 *       answers Join with Welcome, Heartbeat with Ack, and anything it
 *       refuses with Error carrying the refusal's code; writes the bound
 *       endpoint to PORT_FILE; runs until SIGTERM.
 *   gb_link_peer client PKI_DIR ENDPOINT NAME
 *       A client with PKI_DIR's NAME certificate: sends Join, expects
 *       Welcome, sends Heartbeat, expects Ack, exits 0 (1 on anything else,
 *       after 15 s at most).
 *
 * Every message goes through the real link, channel and envelope code. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "net/envelope.h"
#include "net/link.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

#define SERVER_NAME "coordinator.test"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static gb_tls_t *s_tls(gb_tls_role_t role, const char *dir, const char *name)
{
    char ca[512], cert[512], key[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    gb_tls_options_t o = {.role = role, .ca_file = ca, .cert_file = cert, .key_file = key};
    gb_error_t err = {0};
    gb_tls_t *tls = gb_tls_new(&o, &err);
    if (!tls)
        fprintf(stderr, "gb_link_peer: %s\n", err.msg);
    return tls;
}

typedef int (*send_fn)(void *link, uint64_t session, const void *msg, size_t len,
                       gb_error_t *err);

static int s_send_env(send_fn send, void *link, uint64_t session, const Glassbox__Envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    int rc = gb_envelope_encode(env, NULL, &buf, &len, &err);
    if (rc == 0)
        rc = send(link, session, buf, len, &err);
    if (rc != 0)
        fprintf(stderr, "gb_link_peer: send: %s\n", err.msg);
    gb_free(buf);
    return rc;
}

static int s_server_send(void *link, uint64_t session, const void *msg, size_t len,
                         gb_error_t *err)
{
    return gb_link_server_send(link, session, msg, len, err);
}

static int s_client_send(void *link, uint64_t session, const void *msg, size_t len,
                         gb_error_t *err)
{
    (void)session;
    return gb_link_client_send(link, msg, len, err);
}

static void s_answer(gb_link_server_t *srv, const gb_link_event_t *ev, uint64_t *seq)
{
    Glassbox__Envelope *in = NULL;
    gb_error_t err = {0};
    int rc = gb_envelope_decode(ev->data, ev->len, NULL, &in, &err);
    if (rc != 0) {
        Glassbox__Envelope *reply =
            gb_envelope_make_error((*seq)++, gb_envelope_error_code(rc), 0, err.msg, &err);
        if (reply)
            s_send_env(s_server_send, srv, ev->session, reply);
        printf("refused: %s\n", err.msg);
        gb_envelope_free(&reply);
        return;
    }
    printf("received %s from %s\n", gb_envelope_body_name(in), ev->peer_name);
    if (in->body_case == GLASSBOX__ENVELOPE__BODY_JOIN) {
        Glassbox__Envelope out = GLASSBOX__ENVELOPE__INIT;
        Glassbox__Welcome welcome = GLASSBOX__WELCOME__INIT;
        welcome.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
        welcome.client_id = (char *)ev->peer_name;
        welcome.federation = "interop";
        welcome.heartbeat_interval_ms = 1000;
        welcome.heartbeat_timeout_ms = 5000;
        welcome.software_version = "glassbox " GLASSBOX_VERSION;
        out.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
        out.sequence = (*seq)++;
        out.body_case = GLASSBOX__ENVELOPE__BODY_WELCOME;
        out.welcome = &welcome;
        s_send_env(s_server_send, srv, ev->session, &out);
    } else if (in->body_case == GLASSBOX__ENVELOPE__BODY_HEARTBEAT) {
        Glassbox__Envelope *ack = gb_envelope_make_ack((*seq)++, in->sequence, 0, 0, &err);
        if (ack)
            s_send_env(s_server_send, srv, ev->session, ack);
        gb_envelope_free(&ack);
    }
    gb_envelope_free(&in);
}

static int s_server(void *ctx, const char *dir, const char *endpoint, const char *port_file)
{
    gb_tls_t *tls = s_tls(GB_TLS_SERVER, dir, "coordinator");
    if (!tls)
        return 1;
    gb_error_t err = {0};
    gb_link_server_t *srv = gb_link_server_new(ctx, endpoint, tls, NULL, &err);
    if (!srv) {
        fprintf(stderr, "gb_link_peer: %s\n", err.msg);
        gb_tls_destroy(&tls);
        return 1;
    }
    FILE *f = fopen(port_file, "w");
    if (f) {
        fprintf(f, "%s\n", gb_link_server_endpoint(srv));
        fclose(f);
    }
    uint64_t seq = 1;
    int rc = 0;
    while (!s_stop) {
        gb_link_event_t ev;
        if (gb_link_server_poll(srv, 100, &ev, &err) != 0) {
            fprintf(stderr, "gb_link_peer: %s\n", err.msg);
            rc = 1;
            break;
        }
        if (ev.kind == GB_LINK_EV_CONNECTED)
            printf("connected: %s\n", ev.peer_name ? ev.peer_name : "(anonymous)");
        else if (ev.kind == GB_LINK_EV_MESSAGE)
            s_answer(srv, &ev, &seq);
        fflush(stdout);
    }
    gb_link_server_destroy(&srv);
    gb_tls_destroy(&tls);
    return rc;
}

static int s_client(void *ctx, const char *dir, const char *endpoint, const char *name)
{
    gb_tls_t *tls = s_tls(GB_TLS_CLIENT, dir, name);
    if (!tls)
        return 1;
    gb_error_t err = {0};
    gb_link_client_t *cli = gb_link_client_new(ctx, endpoint, tls, SERVER_NAME, NULL, &err);
    if (!cli) {
        fprintf(stderr, "gb_link_peer: %s\n", err.msg);
        gb_tls_destroy(&tls);
        return 1;
    }
    int rc = 1, stage = 0;
    double end = gb_time_now() + 15;
    while (stage < 3 && gb_time_now() < end) {
        gb_link_event_t ev;
        if (gb_link_client_poll(cli, 100, &ev, &err) != 0)
            break;
        if (ev.kind == GB_LINK_EV_CONNECTED && stage == 0) {
            printf("connected to %s\n", ev.peer_name);
            Glassbox__Envelope out = GLASSBOX__ENVELOPE__INIT;
            Glassbox__Join join = GLASSBOX__JOIN__INIT;
            join.min_protocol_version = join.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
            join.client_name = (char *)name;
            join.software_version = "glassbox " GLASSBOX_VERSION;
            out.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
            out.sequence = 1;
            out.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
            out.join = &join;
            if (s_send_env(s_client_send, cli, 0, &out) == 0)
                stage = 1;
        } else if (ev.kind == GB_LINK_EV_MESSAGE) {
            Glassbox__Envelope *in = NULL;
            if (gb_envelope_decode(ev.data, ev.len, NULL, &in, &err) != 0) {
                fprintf(stderr, "gb_link_peer: %s\n", err.msg);
                break;
            }
            printf("received %s\n", gb_envelope_body_name(in));
            if (stage == 1 && in->body_case == GLASSBOX__ENVELOPE__BODY_WELCOME) {
                Glassbox__Envelope out = GLASSBOX__ENVELOPE__INIT;
                Glassbox__Heartbeat hb = GLASSBOX__HEARTBEAT__INIT;
                hb.sent_unix_ms = 1;
                hb.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE;
                out.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
                out.sequence = 2;
                out.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT;
                out.heartbeat = &hb;
                if (s_send_env(s_client_send, cli, 0, &out) == 0)
                    stage = 2;
            } else if (stage == 2 && in->body_case == GLASSBOX__ENVELOPE__BODY_ACK &&
                       in->ack->acked_sequence == 2) {
                stage = 3;
                rc = 0;
            }
            gb_envelope_free(&in);
        }
        fflush(stdout);
    }
    if (rc)
        fprintf(stderr, "gb_link_peer: client stopped at stage %d\n", stage);
    gb_link_client_close(cli, 1000);
    gb_link_client_destroy(&cli);
    gb_tls_destroy(&tls);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "server") != 0 && strcmp(argv[1], "client") != 0)) {
        fprintf(stderr, "usage: gb_link_peer server PKI_DIR ENDPOINT PORT_FILE\n"
                        "       gb_link_peer client PKI_DIR ENDPOINT NAME\n");
        return 2;
    }
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    void *ctx = zmq_ctx_new();
    int rc = strcmp(argv[1], "server") == 0 ? s_server(ctx, argv[2], argv[3], argv[4])
                                            : s_client(ctx, argv[2], argv[3], argv[4]);
    zmq_ctx_term(ctx);
    return rc;
}
