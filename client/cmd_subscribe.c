/* `glassbox-client subscribe`: the federation's publication stream for a
 * certified member. It opens a mutual TLS session to the coordinator with
 * its own certificate (the same link and checks as `run`), joins with the
 * subscriber role (front_door.h: no tasks, not counted in rounds), and for
 * every publication that arrives checks the signature and the signer
 * (net/signing.h: the federation CA, the coordinator's name, serverAuth and
 * the publication-signing mark, the CRL if given), decodes it with the
 * validating decoder, refuses a round not newer than the last, and saves
 * round-NNNNNN.pub, round-NNNNNN.sig and coordinator.crt in --out, the files
 * README's openssl recipe checks. Reconnects by itself; a revoked
 * certificate's session is ended by the coordinator and never comes back.
 * With --pub it listens to the coordinator's PUB socket instead (serve
 * --publish; public, so no certificate of its own), net/publish.h's
 * subscriber doing the same checks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "commands.h"
#include "enroll.h"
#include "glassbox.pb-c.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
#include "net/publish.h"
#include "net/publication.h"
#include "net/signing.h"
#include "util/alloc.h"
#include "util/args.h"
#include "util/file.h"
#include "util/log.h"
#include "util/time.h"

#define S_ROLE_KEY "role"          /* front_door.h GB_FRONT_DOOR_ROLE_KEY */
#define S_ROLE_VALUE "subscriber"  /* front_door.h GB_FRONT_DOOR_ROLE_SUBSCRIBER */
#define S_HEARTBEAT_S 5.0

typedef struct {
    const char *out_dir;           /* where files go */
    gb_verify_opts_t trust;        /* CA, CRL, coordinator name */
    uint64_t last_round;           /* newest round saved */
    int saved;                     /* publications saved */
} s_sub_t;

static int s_link_send(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    return gb_link_client_send(arg, frame, len, err);
}

static int s_join(gb_conversation_t *conv, gb_link_client_t *link, const char *name,
                  gb_error_t *err)
{
    Glassbox__KeyValue kv = GLASSBOX__KEY_VALUE__INIT;
    kv.key = S_ROLE_KEY;
    kv.value = S_ROLE_VALUE;
    Glassbox__KeyValue *caps[1] = {&kv};
    Glassbox__Join j = GLASSBOX__JOIN__INIT;
    j.min_protocol_version = j.max_protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    j.client_name = (char *)name;
    j.software_version = "glassbox " GLASSBOX_VERSION;
    j.n_capabilities = 1;
    j.capabilities = caps;
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_JOIN;
    env.join = &j;
    int rc = gb_conversation_queue(conv, &env, NULL, err);
    if (rc == 0 && (rc = gb_conversation_flush(conv, s_link_send, link, err)) == GB_EAGAIN)
        rc = 0;
    return rc;
}

static void s_heartbeat(gb_conversation_t *conv, gb_link_client_t *link)
{
    Glassbox__Heartbeat hb = GLASSBOX__HEARTBEAT__INIT;
    hb.sent_unix_ms = gb_time_unix_ms();
    hb.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE;
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    gb_error_t err = {0};
    int rc = gb_conversation_queue(conv, &env, NULL, &err);
    if (rc == 0)
        rc = gb_conversation_flush(conv, s_link_send, link, &err);
    if (rc != 0 && rc != GB_EAGAIN)
        gb_log_debug("subscribe: heartbeat not sent: %s", err.msg);
}

/* Saves one verified publication p (its packed bytes pub[0..pub_len), as
 * signed in sp): the signer's certificate and the publication first, the
 * signature last, as the coordinator writes them. */
static void s_save(s_sub_t *sub, const Glassbox__Publication *p, const uint8_t *pub,
                   size_t pub_len, const Glassbox__SignedPublication *sp)
{
    gb_error_t err = {0};
    X509 *cert = NULL;
    char pub_path[4096], sig_path[4096], crt_path[4096];
    snprintf(pub_path, sizeof pub_path, "%s/round-%06" PRIu64 ".pub", sub->out_dir, p->round);
    snprintf(sig_path, sizeof sig_path, "%s/round-%06" PRIu64 ".sig", sub->out_dir, p->round);
    snprintf(crt_path, sizeof crt_path, "%s/coordinator.crt", sub->out_dir);
    if (!(cert = gb_pki_cert_from_der(sp->signer_certificate.data, sp->signer_certificate.len,
                                      &err)) ||
        gb_pki_cert_save(crt_path, cert, &err) != 0 ||
        gb_file_write_atomic(pub_path, pub, pub_len, 0644, &err) != 0 ||
        gb_file_write_atomic(sig_path, sp->signature.data, sp->signature.len, 0644, &err) != 0) {
        gb_log_error("subscribe: round %" PRIu64 " not saved: %s", p->round, err.msg);
        X509_free(cert);
        return;
    }
    X509_free(cert);
    sub->last_round = p->round;
    sub->saved++;
    printf("round %" PRIu64 ": verified (signed by the coordinator), %u participants, %s; "
           "saved %s\n", p->round, p->participants, p->aggregator ? p->aggregator : "?",
           pub_path);
    fflush(stdout);
}

/* Verifies, decodes and saves one publication. Refusals are logged and
 * change nothing. */
static void s_take(s_sub_t *sub, const Glassbox__SignedPublication *sp)
{
    gb_error_t err = {0};
    size_t len = glassbox__signed_publication__get_packed_size(sp);
    uint8_t *buf = gb_malloc(len ? len : 1), *pub = NULL;
    size_t pub_len = 0;
    Glassbox__Publication *p = NULL;
    if (!buf) {
        gb_log_error("subscribe: out of memory for a publication of %zu bytes", len);
        return;
    }
    glassbox__signed_publication__pack(sp, buf);
    if (gb_publication_verify(buf, len, &sub->trust, &pub, &pub_len, &err) != 0)
        goto out; /* logged */
    if (gb_publication_decode(pub, pub_len, &p, &err) != 0) {
        gb_log_warn("subscribe: publication refused: %s", err.msg);
        goto out;
    }
    if (p->round <= sub->last_round) {
        gb_log_warn("subscribe: publication of round %" PRIu64 " refused: round %" PRIu64
                    " was already saved", p->round, sub->last_round);
        goto out;
    }
    s_save(sub, p, pub, pub_len, sp);
out:
    gb_publication_free(&p);
    gb_free(pub);
    gb_free(buf);
}

/* --pub: the coordinator's PUB socket (serve --publish), which authenticates
 * no one, so no certificate of ours is needed: net/publish.h's subscriber
 * checks each publication (signature, signer, validation, replays) and the
 * accepted ones are saved like those of the TLS session. Returns the exit
 * status. */
static int s_run_pub(const char *pub_endpoint, s_sub_t *sub, int count, int timeout_s)
{
    gb_error_t err = {0};
    void *ctx = zmq_ctx_new();
    gb_subscriber_t *s = gb_subscriber_new(ctx, pub_endpoint, &sub->trust, &err);
    int rc = 1;
    if (!s) {
        fprintf(stderr, "glassbox-client subscribe: --pub: %s\n", err.msg);
        goto out;
    }
    gb_log_info("subscribe: listening to %s's publications", pub_endpoint);
    double last_new = gb_time_now();
    for (;;) {
        Glassbox__Publication *p = NULL;
        Glassbox__SignedPublication *sp = NULL;
        int got = gb_subscriber_poll(s, 200, &p, &sp, &err);
        if (got < 0) {
            fprintf(stderr, "glassbox-client subscribe: %s\n", err.msg);
            goto out;
        }
        if (got == 1) {
            int before = sub->saved;
            s_save(sub, p, sp->publication.data, sp->publication.len, sp);
            if (sub->saved > before)
                last_new = gb_time_now();
            gb_publication_free(&p);
            glassbox__signed_publication__free_unpacked(sp, NULL);
        }
        if (count && sub->saved >= count) {
            rc = 0;
            break;
        }
        if (timeout_s && gb_time_now() - last_new > timeout_s) {
            fprintf(stderr, "glassbox-client subscribe: no new publication in %d s (%d saved)\n",
                    timeout_s, sub->saved);
            goto out;
        }
    }
out:
    gb_subscriber_destroy(&s);
    zmq_ctx_term(ctx);
    return rc;
}

int gb_cmd_subscribe(int argc, char **argv)
{
    const char *endpoint = NULL, *cert = NULL, *key = NULL, *ca_file = NULL, *crl = NULL;
    const char *server_name = NULL, *out_dir = NULL, *pub_endpoint = NULL;
    int count = 0, timeout_s = 0;
    gb_arg_t opts[] = {
        {"--coordinator", GB_ARG_STRING, &endpoint, 0, 0, NULL, "tcp://HOST:PORT of the coordinator's client port (required)", false},
        {"--pub", GB_ARG_STRING, &pub_endpoint, 0, 0, NULL, "tcp://HOST:PORT of the coordinator's PUB socket (serve --publish) instead of --coordinator: no certificate of this client's is needed, every publication is checked the same way", false},
        {"--cert", GB_ARG_STRING, &cert, 0, 0, NULL, "this client's certificate from the federation CA, PEM (required)", false},
        {"--key", GB_ARG_STRING, &key, 0, 0, NULL, "its private key, PEM (required)", false},
        {"--ca-file", GB_ARG_STRING, &ca_file, 0, 0, NULL, "the federation CA certificate, PEM (required)", false},
        {"--crl-file", GB_ARG_STRING, &crl, 0, 0, NULL, "the CA's revocation list, checked for the signer (optional)", false},
        {"--server-name", GB_ARG_STRING, &server_name, 0, 0, NULL, "name on the coordinator's certificate (default: HOST of --coordinator)", false},
        {"--out", GB_ARG_STRING, &out_dir, 0, 0, NULL, "directory for round-NNNNNN.pub/.sig and coordinator.crt (required, must exist)", false},
        {"--count", GB_ARG_INT, &count, 0, 1000000, NULL, "exit 0 after saving this many publications (default 0: never)", false},
        {"--timeout", GB_ARG_INT, &timeout_s, 0, 604800, NULL, "exit 1 after this many seconds without a new publication (default 0: never)", false},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err)) {
        fprintf(stderr, "glassbox-client subscribe: %s (see glassbox-client subscribe --help)\n",
                err.msg);
        return 2;
    }
    if (help) {
        printf("usage: glassbox-client subscribe --coordinator tcp://HOST:7700 --cert C --key K "
               "--ca-file CA --out DIR [options]\n"
               "       glassbox-client subscribe --pub tcp://HOST:7701 --ca-file CA --out DIR "
               "[options]\n\n"
               "Receives the federation's signed publications over a mutual TLS session\n"
               "(this client's certificate; no tasks are taken), or from the coordinator's\n"
               "public PUB socket with --pub, checks each signature and signer, and saves\n"
               "round-NNNNNN.pub/.sig and coordinator.crt in DIR.\n\n"
               "options:\n");
        gb_args_print_help(opts, n_opts);
        return 0;
    }
    if (pub_endpoint && endpoint) {
        fprintf(stderr, "glassbox-client subscribe: --pub and --coordinator exclude each other "
                        "(see glassbox-client subscribe --help)\n");
        return 2;
    }
    const char *missing = pub_endpoint ? (!ca_file ? "--ca-file" : !out_dir ? "--out" : NULL)
                        : !endpoint ? "--coordinator or --pub" : !cert ? "--cert" : !key ? "--key"
                        : !ca_file ? "--ca-file" : !out_dir ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "glassbox-client subscribe: %s is required (see glassbox-client "
                        "subscribe --help)\n", missing);
        return 2;
    }
    char host[256];
    if (gb_enroll_endpoint_host(pub_endpoint ? pub_endpoint : endpoint, host, sizeof host,
                                &err) != 0) {
        fprintf(stderr, "glassbox-client subscribe: %s: %s\n",
                pub_endpoint ? "--pub" : "--coordinator", err.msg);
        return 2;
    }
    if (!server_name)
        server_name = host;
    if (pub_endpoint) {
        s_sub_t psub = {.out_dir = out_dir,
                        .trust = {.ca_file = ca_file, .crl_file = crl,
                                  .expected_name = server_name}};
        return s_run_pub(pub_endpoint, &psub, count, timeout_s);
    }
    char name[GB_PKI_NAME_MAX + 1];
    X509 *own = gb_pki_cert_load(cert, &err);
    if (!own || gb_pki_cert_name(own, name, &err) != 0) {
        X509_free(own);
        fprintf(stderr, "glassbox-client subscribe: %s\n", err.msg);
        return 1;
    }
    X509_free(own);
    gb_tls_options_t to = {.role = GB_TLS_CLIENT, .ca_file = ca_file, .cert_file = cert,
                           .key_file = key};
    void *ctx = zmq_ctx_new();
    gb_tls_t *tls = gb_tls_new(&to, &err);
    gb_link_client_t *link = tls ? gb_link_client_new(ctx, endpoint, tls, server_name, NULL, &err)
                                 : NULL;
    gb_conversation_t *conv = link ? gb_conversation_new(NULL, &err) : NULL;
    int rc = 1;
    if (!conv) {
        fprintf(stderr, "glassbox-client subscribe: %s\n", err.msg);
        goto out;
    }
    s_sub_t sub = {.out_dir = out_dir,
                   .trust = {.ca_file = ca_file, .crl_file = crl, .expected_name = server_name}};
    double last_new = gb_time_now(), next_hb = 0;
    for (;;) {
        gb_link_event_t ev;
        if (gb_link_client_poll(link, 200, &ev, &err) != 0) {
            fprintf(stderr, "glassbox-client subscribe: %s\n", err.msg);
            goto out;
        }
        double now = gb_time_now();
        if (ev.kind == GB_LINK_EV_CONNECTED) {
            gb_conversation_reset(conv);
            if (s_join(conv, link, name, &err) != 0)
                gb_log_warn("subscribe: cannot join: %s", err.msg);
            next_hb = now + S_HEARTBEAT_S;
        } else if (ev.kind == GB_LINK_EV_DISCONNECTED) {
            gb_log_warn("subscribe: session ended: %s; reconnecting", ev.reason);
        } else if (ev.kind == GB_LINK_EV_MESSAGE) {
            Glassbox__Envelope *in = NULL;
            if (gb_conversation_receive(conv, ev.data, ev.len, &in, &err) == 1) {
                if (in->body_case == GLASSBOX__ENVELOPE__BODY_WELCOME)
                    gb_log_info("subscribe: subscribed to '%s' as '%s'",
                                in->welcome->federation, in->welcome->client_id);
                else if (in->body_case == GLASSBOX__ENVELOPE__BODY_PUBLICATION) {
                    int before = sub.saved;
                    s_take(&sub, in->publication);
                    if (sub.saved > before)
                        last_new = now;
                } else if (in->body_case == GLASSBOX__ENVELOPE__BODY_ERROR)
                    gb_log_warn("subscribe: the coordinator says %s: %s",
                                gb_envelope_error_name(in->error->code), in->error->message);
                gb_envelope_free(&in);
            }
        }
        if (count && sub.saved >= count) {
            rc = 0;
            break;
        }
        if (timeout_s && now - last_new > timeout_s) {
            fprintf(stderr, "glassbox-client subscribe: no new publication in %d s (%d saved)\n",
                    timeout_s, sub.saved);
            goto out;
        }
        if (gb_link_client_connected(link) && now >= next_hb) {
            s_heartbeat(conv, link);
            next_hb = now + S_HEARTBEAT_S;
        }
        if (gb_link_client_connected(link) && gb_conversation_queued_bytes(conv) &&
            gb_conversation_flush(conv, s_link_send, link, &err) < 0 && err.code != GB_EAGAIN)
            gb_log_debug("subscribe: sending: %s", err.msg);
    }
    gb_link_client_close(link, 500);
out:
    gb_conversation_destroy(&conv);
    gb_link_client_destroy(&link);
    gb_tls_destroy(&tls);
    zmq_ctx_term(ctx);
    return rc;
}
