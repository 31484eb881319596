/* Tests for coordinator/enroll_service and, end to end, client/enroll: a real
 * CA directory and token store, the coordinator's link server accepting
 * anonymous sessions in this thread, and gb_enroll running in another.
 *
 * Covered: every refusal of gb_enroll_service_answer with its ErrorCode
 * (wrong body, bad CSR, CSR name not the requested one, wrong, expired and
 * used-up tokens, a name held by another key, the coordinator's name in any
 * case and other reserved names, malformed bytes), that neither a bad CSR
 * nor a request the CA's policy refuses spends a token use, the granted certificate (chains to the CA,
 * right name and key); and gb_enroll over the wire: files written (key 0600),
 * re-enrollment keeping the key, a refused token reported with the
 * coordinator's reason, and a coordinator whose certificate the client's CA
 * does not vouch for (the token is never sent). */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zmq.h>

#include "enroll.h"
#include "enroll_service.h"
#include "net/envelope.h"
#include "net/link.h"
#include "util/alloc.h"
#include "util/time.h"

#define COORD "coordinator.test"

typedef struct {
    char *dir;            /* CA directory */
    gb_ca_t *ca;          /* the CA */
    gb_tokens_t *tokens;  /* its token store */
    char token[GB_TOKEN_HEX_LEN + 1]; /* a token with 3 uses */
    gb_enroll_service_t svc;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    gb_error_t err = {0};
    char *base = gb_test_mkdtemp();
    f->dir = gb_test_path(base, "ca");
    free(base);
    assert_int_equal(gb_ca_init(f->dir, "test", COORD, 30, &err), 0);
    f->ca = gb_ca_open(f->dir, &err);
    assert_non_null(f->ca);
    f->tokens = gb_tokens_load(f->dir, &err);
    assert_non_null(f->tokens);
    char id[13];
    assert_int_equal(gb_tokens_create(f->tokens, 3, 3600, time(NULL), f->token, id, &err), 0);
    f->svc = (gb_enroll_service_t){.ca = f->ca, .tokens = f->tokens, .days = 7};
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_tokens_destroy(&f->tokens);
    gb_ca_destroy(&f->ca);
    char *parent = strdup(f->dir);
    *strrchr(parent, '/') = '\0';
    gb_test_rmtree(parent);
    free(parent);
    free(f->dir);
    free(f);
    return 0;
}

/* A packed EnrollRequest for name, with a CSR for csr_name by key. */
static uint8_t *s_request(const char *name, const char *csr_name, EVP_PKEY *key,
                          const char *token, size_t *len)
{
    gb_error_t err = {0};
    X509_REQ *csr = gb_pki_csr_new(key, csr_name, &err);
    assert_non_null(csr);
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(gb_pki_csr_to_der(csr, &der, &der_len, &err), 0);
    X509_REQ_free(csr);
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__EnrollRequest req = GLASSBOX__ENROLL_REQUEST__INIT;
    req.token.data = (uint8_t *)token;
    req.token.len = strlen(token);
    req.csr.data = der;
    req.csr.len = der_len;
    req.client_name = (char *)name;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 5;
    env.body_case = GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST;
    env.enroll_request = &req;
    uint8_t *buf = NULL;
    assert_int_equal(gb_envelope_encode(&env, NULL, &buf, len, &err), 0);
    gb_free(der);
    return buf;
}

/* Answers msg and returns the decoded reply; *rc gets the service's code. */
static Glassbox__Envelope *s_answer(fixture_t *f, const uint8_t *msg, size_t len, int *rc)
{
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    gb_error_t err = {0};
    *rc = gb_enroll_service_answer(&f->svc, msg, len, 9, 0, &reply, &reply_len, &err);
    assert_non_null(reply);
    Glassbox__Envelope *env = NULL;
    assert_int_equal(gb_envelope_decode(reply, reply_len, NULL, &env, &err), 0);
    assert_true(env->sequence == 9);
    gb_free(reply);
    return env;
}

static void s_expect_error(fixture_t *f, const uint8_t *msg, size_t len,
                           Glassbox__ErrorCode code, const char *text)
{
    int rc = 0;
    Glassbox__Envelope *env = s_answer(f, msg, len, &rc);
    assert_true(rc < 0);
    assert_int_equal(env->body_case, GLASSBOX__ENVELOPE__BODY_ERROR);
    assert_int_equal(env->error->code, code);
    if (!strstr(env->error->message, text))
        fail_msg("error message '%s' lacks '%s'", env->error->message, text);
    gb_envelope_free(&env);
}

static uint32_t s_uses_left(fixture_t *f)
{
    gb_error_t err = {0};
    gb_tokens_destroy(&f->tokens);
    f->tokens = gb_tokens_load(f->dir, &err);
    f->svc.tokens = f->tokens;
    return gb_tokens_get(f->tokens, 0)->uses_left;
}

static void test_grant(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    EVP_PKEY *key = gb_pki_key_new(&err);
    size_t len;
    uint8_t *msg = s_request("edge-1", "edge-1", key, f->token, &len);
    int rc = -1;
    Glassbox__Envelope *env = s_answer(f, msg, len, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(env->body_case, GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE);
    X509 *cert = gb_pki_cert_from_der(env->enroll_response->certificate.data,
                                      env->enroll_response->certificate.len, &err);
    assert_non_null(cert);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
    char *ca_file = gb_test_path(f->dir, GB_CA_CERT_FILE);
    assert_int_equal(gb_pki_verify_cert(ca_file, NULL, cert, "edge-1", &err), 0);
    X509 *ca = gb_pki_cert_load(ca_file, &err);
    X509 *sent_ca = gb_pki_cert_from_der(env->enroll_response->ca_certificate.data,
                                         env->enroll_response->ca_certificate.len, &err);
    assert_int_equal(X509_cmp(ca, sent_ca), 0);
    assert_int_equal(s_uses_left(f), 2);
    X509_free(cert);
    X509_free(ca);
    X509_free(sent_ca);
    free(ca_file);
    gb_envelope_free(&env);
    gb_free(msg);

    /* the same name for another key is refused by the CA's policy, and
     * costs the token nothing */
    EVP_PKEY *other = gb_pki_key_new(&err);
    msg = s_request("edge-1", "edge-1", other, f->token, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN, "edge-1");
    gb_free(msg);
    assert_int_equal(s_uses_left(f), 2);
    /* the last two uses, then used up */
    static const char *const last[] = {"edge-2", "edge-4"};
    for (int i = 0; i < 2; i++) {
        msg = s_request(last[i], last[i], other, f->token, &len);
        env = s_answer(f, msg, len, &rc);
        assert_int_equal(rc, 0);
        gb_envelope_free(&env);
        gb_free(msg);
        assert_int_equal(s_uses_left(f), (uint32_t)(1 - i));
        if (i > 0)
            break;
        /* an enrolled name asked for again by another key: refused, free */
        msg = s_request("edge-1", "edge-1", other, f->token, &len);
        s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN, "different key");
        gb_free(msg);
        assert_int_equal(s_uses_left(f), 1);
    }
    /* used up: refused for the token, whatever the CA would say of the name */
    msg = s_request("edge-1", "edge-1", other, f->token, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED, "spent");
    gb_free(msg);
    msg = s_request("edge-3", "edge-3", other, f->token, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED, "spent");
    gb_free(msg);
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
}

static void test_refusals_spend_nothing(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    EVP_PKEY *key = gb_pki_key_new(&err);
    size_t len;
    /* the CSR's name is not the one asked for */
    uint8_t *msg = s_request("edge-1", "edge-9", key, f->token, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "not the requested");
    gb_free(msg);
    /* a wrong token */
    char wrong[GB_TOKEN_HEX_LEN + 1];
    memset(wrong, 'a', GB_TOKEN_HEX_LEN);
    wrong[GB_TOKEN_HEX_LEN] = '\0';
    msg = s_request("edge-1", "edge-1", key, wrong, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED, "");
    gb_free(msg);
    /* the coordinator's own name, in any case, and names reserved for
     * servers: refused by the CA's policy before a use is spent */
    static const char *const reserved[] = {COORD, "COORDINATOR.TEST", "Coordinator.Test.",
                                           "localhost", "192.168.1.1"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        msg = s_request(reserved[i], reserved[i], key, f->token, &len);
        s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN, "reserved");
        gb_free(msg);
    }
    /* with a wrong token the same names get only the token's refusal: no
     * one without a good token learns what the CA would say */
    msg = s_request("COORDINATOR.TEST", "COORDINATOR.TEST", key, wrong, &len);
    s_expect_error(f, msg, len, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED, "no such token");
    gb_free(msg);
    assert_int_equal(s_uses_left(f), 3); /* none reached the token's count */
    /* not an enrollment request */
    Glassbox__Envelope *hb = gb_envelope_make_ack(1, 1, 0, 0, &err);
    uint8_t *buf = NULL;
    assert_int_equal(gb_envelope_encode(hb, NULL, &buf, &len, &err), 0);
    s_expect_error(f, buf, len, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED,
                   "only an enrollment request");
    gb_free(buf);
    gb_envelope_free(&hb);
    /* not an envelope at all */
    s_expect_error(f, (const uint8_t *)"\xff\xff\xff\xff", 4,
                   GLASSBOX__ERROR_CODE__ERROR_MALFORMED, "");
    /* a CSR whose signature does not hold: flip a byte near its end */
    msg = s_request("edge-1", "edge-1", key, f->token, &len);
    Glassbox__Envelope *env = NULL;
    assert_int_equal(gb_envelope_decode(msg, len, NULL, &env, &err), 0);
    env->enroll_request->csr.data[env->enroll_request->csr.len - 3] ^= 0x01;
    uint8_t *bad = NULL;
    size_t bad_len = 0;
    assert_int_equal(gb_envelope_encode(env, NULL, &bad, &bad_len, &err), 0);
    s_expect_error(f, bad, bad_len, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "");
    gb_free(bad);
    gb_envelope_free(&env);
    gb_free(msg);
    assert_int_equal(s_uses_left(f), 3);
    EVP_PKEY_free(key);
}

/* The coordinator's side of the wire: a link server that accepts anonymous
 * sessions and answers them with the service, polled until *done. */
typedef struct {
    gb_enroll_options_t opts;
    int rc;
    gb_error_t err;
    volatile int done;
} enroll_job_t;

static void *s_enroll_thread(void *arg)
{
    enroll_job_t *job = arg;
    job->rc = gb_enroll(&job->opts, &job->err);
    job->done = 1;
    return NULL;
}

static int s_enroll_over_wire(fixture_t *f, const char *server_cert_dir, const char *name,
                              const char *token, const char *out_dir, gb_error_t *err)
{
    gb_error_t e = {0};
    char *ca_file = gb_test_path(f->dir, GB_CA_CERT_FILE);
    char *cert = gb_test_path(server_cert_dir, GB_CA_COORD_CERT_FILE);
    char *key = gb_test_path(server_cert_dir, GB_CA_COORD_KEY_FILE);
    char *server_ca = gb_test_path(server_cert_dir, GB_CA_CERT_FILE);
    gb_tls_options_t to = {.role = GB_TLS_SERVER, .ca_file = server_ca, .cert_file = cert,
                           .key_file = key, .allow_anonymous_peers = true};
    gb_tls_t *tls = gb_tls_new(&to, &e);
    assert_non_null(tls);
    void *ctx = zmq_ctx_new();
    gb_link_server_t *srv = gb_link_server_new(ctx, "tcp://127.0.0.1:*", tls, NULL, &e);
    assert_non_null(srv);

    enroll_job_t job = {.opts = {.zmq_ctx = ctx, .endpoint = gb_link_server_endpoint(srv),
                                 .server_name = COORD, .ca_file = ca_file,
                                 .token = (const uint8_t *)token, .token_len = strlen(token),
                                 .name = name, .out_dir = out_dir, .timeout_ms = 3000}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_enroll_thread, &job), 0);
    while (!job.done) {
        gb_link_event_t ev;
        assert_int_equal(gb_link_server_poll(srv, 10, &ev, &e), 0);
        if (ev.kind != GB_LINK_EV_MESSAGE)
            continue;
        assert_null(ev.peer_name); /* anonymous */
        uint8_t *reply = NULL;
        size_t reply_len = 0;
        int granted = gb_enroll_service_answer(&f->svc, ev.data, ev.len, 1, 0, &reply,
                                               &reply_len, &e);
        assert_true(granted <= 0); /* a refusal still has its Error reply */
        assert_non_null(reply);
        assert_int_equal(gb_link_server_send(srv, ev.session, reply, reply_len, &e), 0);
        gb_free(reply);
    }
    pthread_join(t, NULL);
    gb_link_server_destroy(&srv);
    zmq_ctx_term(ctx);
    gb_tls_destroy(&tls);
    free(ca_file);
    free(cert);
    free(key);
    free(server_ca);
    *err = job.err;
    return job.rc;
}

static void test_enroll_over_the_wire(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    char *out = gb_test_mkdtemp();
    char *id = gb_test_path(out, "id");
    assert_int_equal(s_enroll_over_wire(f, f->dir, "edge-7", f->token, id, &err), 0);
    char *key_path = gb_test_path(id, "edge-7.key");
    char *cert_path = gb_test_path(id, "edge-7.crt");
    char *ca_path = gb_test_path(id, "ca.crt");
    struct stat st;
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(id, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    X509 *cert = gb_pki_cert_load(cert_path, &err);
    assert_non_null(cert);
    assert_int_equal(gb_pki_verify_cert(ca_path, NULL, cert, "edge-7", &err), 0);
    EVP_PKEY *key = gb_pki_key_load(key_path, &err);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
    X509_free(cert);

    /* again, same directory: the key is kept, the certificate renewed */
    assert_int_equal(s_enroll_over_wire(f, f->dir, "edge-7", f->token, id, &err), 0);
    EVP_PKEY *again = gb_pki_key_load(key_path, &err);
    assert_int_equal(EVP_PKEY_eq(key, again), 1);
    EVP_PKEY_free(again);
    EVP_PKEY_free(key);

    /* a wrong token: the coordinator's reason comes back */
    char wrong[GB_TOKEN_HEX_LEN + 1];
    memset(wrong, 'b', GB_TOKEN_HEX_LEN);
    wrong[GB_TOKEN_HEX_LEN] = '\0';
    char *id2 = gb_test_path(out, "id2");
    assert_int_equal(s_enroll_over_wire(f, f->dir, "edge-8", wrong, id2, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "ERROR_UNAUTHENTICATED"));
    char *crt2 = gb_test_path(id2, "edge-8.crt");
    assert_false(gb_test_exists(crt2));
    free(crt2);

    /* an impostor coordinator (its own CA): the client never gets a session,
     * so the token is never sent */
    char *rogue = gb_test_path(out, "rogue-ca");
    assert_int_equal(gb_ca_init(rogue, "rogue", COORD, 30, &err), 0);
    uint32_t before = s_uses_left(f);
    assert_int_equal(s_enroll_over_wire(f, rogue, "edge-9", f->token, id2, &err), GB_ECLOSED);
    assert_non_null(strstr(err.msg, "secure session"));
    assert_int_equal(s_uses_left(f), before);

    free(rogue);
    free(id2);
    free(key_path);
    free(cert_path);
    free(ca_path);
    free(id);
    gb_test_rmtree(out);
    free(out);
}

static void test_token_file_and_endpoint(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_error_t err = {0};
    uint8_t *tok = NULL;
    size_t len = 0;
    char *p = gb_test_write_file(dir, "t", "  abc123\n", 9);
    assert_int_equal(gb_enroll_token_read(p, &tok, &len, &err), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(tok, "abc123", 6);
    gb_enroll_token_free(&tok, len);
    assert_null(tok);
    free(p);
    p = gb_test_write_file(dir, "empty", " \n", 2);
    assert_int_equal(gb_enroll_token_read(p, &tok, &len, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    free(p);
    p = gb_test_write_file(dir, "bin", "ab\x01" "cd", 5);
    assert_int_equal(gb_enroll_token_read(p, &tok, &len, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "printable"));
    free(p);
    char big[2000];
    memset(big, 'x', sizeof big);
    p = gb_test_write_file(dir, "big", big, sizeof big);
    assert_true(gb_enroll_token_read(p, &tok, &len, &err) < 0);
    free(p);
    assert_int_equal(gb_enroll_token_read("/nonexistent/t", &tok, &len, &err), GB_EIO);
    gb_test_rmtree(dir);
    free(dir);

    char host[64];
    assert_int_equal(gb_enroll_endpoint_host("tcp://coord.example:7700", host, sizeof host,
                                             &err), 0);
    assert_string_equal(host, "coord.example");
    assert_int_equal(gb_enroll_endpoint_host("tcp://[::1]:7700", host, sizeof host, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(gb_enroll_endpoint_host("ipc:///x", host, sizeof host, &err), GB_EINVAL);
    assert_int_equal(gb_enroll_endpoint_host("tcp://nohost", host, sizeof host, &err),
                     GB_EINVAL);
    assert_int_equal(gb_enroll_endpoint_host("tcp://:7700", host, sizeof host, &err), GB_EINVAL);
    assert_int_equal(gb_enroll_endpoint_host(NULL, host, sizeof host, &err), GB_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grant, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals_spend_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_enroll_over_the_wire, s_setup, s_teardown),
        cmocka_unit_test(test_token_file_and_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
