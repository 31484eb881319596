/* Enrollment with a token: key, CSR, one request over TLS, checked answer.
 * See enroll.h for what is checked and why in this order. */
#include "enroll.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <zmq.h>

#include "net/channel.h"
#include "net/envelope.h"
#include "net/link.h"
#include "net/pki.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"
#include "util/time.h"

#define S_TOKEN_MAX 1024

int gb_enroll_token_read(const char *path, uint8_t **token, size_t *len, gb_error_t *err)
{
    *token = NULL;
    *len = 0;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = gb_file_read_all(path, S_TOKEN_MAX + 64, &data, &n, err);
    if (rc != 0)
        return gb_error_prefix(err, rc, "token file: ");
    size_t a = 0, b = n;
    while (a < b && isspace(data[a]))
        a++;
    while (b > a && isspace(data[b - 1]))
        b--;
    rc = 0;
    if (a == b)
        rc = gb_error_set(err, GB_EINVAL, "token file %s is empty", path);
    else if (b - a > S_TOKEN_MAX)
        rc = gb_error_set(err, GB_ERANGE, "token file %s: token longer than %d bytes", path,
                          S_TOKEN_MAX);
    for (size_t i = a; rc == 0 && i < b; i++)
        if (data[i] < 0x21 || data[i] > 0x7e)
            rc = gb_error_set(err, GB_EINVAL,
                              "token file %s: byte %zu is not printable ASCII", path, i);
    if (rc == 0) {
        memmove(data, data + a, b - a);
        *token = data;
        *len = b - a;
        OPENSSL_cleanse(data + (b - a), n - (b - a));
        return 0;
    }
    OPENSSL_cleanse(data, n);
    gb_free(data);
    return rc;
}

void gb_enroll_token_free(uint8_t **token, size_t len)
{
    if (!token || !*token)
        return;
    OPENSSL_cleanse(*token, len);
    gb_free(*token);
    *token = NULL;
}

int gb_enroll_endpoint_host(const char *endpoint, char *out, size_t cap, gb_error_t *err)
{
    const char *p = endpoint && strncmp(endpoint, "tcp://", 6) == 0 ? endpoint + 6 : NULL;
    const char *end = NULL;
    if (p && *p == '[') {
        p++;
        end = strchr(p, ']');
        if (end && end[1] != ':')
            end = NULL;
    } else if (p) {
        end = strrchr(p, ':');
    }
    if (!p || !end || end == p || (size_t)(end - p) >= cap)
        return gb_error_set(err, GB_EINVAL, "coordinator '%s': expected tcp://HOST:PORT",
                            endpoint ? endpoint : "(null)");
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 0;
}

/* The key in dir/<name>.key if there is one (re-enrollment keeps its key),
 * else a new one written there first. */
static EVP_PKEY *s_key(const char *path, gb_error_t *err)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        gb_log_info("enroll: reusing the key in %s", path);
        return gb_pki_key_load(path, err);
    }
    EVP_PKEY *key = gb_pki_key_new(err);
    if (key && gb_pki_key_save(path, key, err) != 0) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* Runs the session: waits for the handshake, sends the request, returns the
 * first answer decoded (the caller frees it). */
static int s_exchange(const gb_enroll_options_t *o, void *ctx, const uint8_t *csr,
                      size_t csr_len, Glassbox__Envelope **answer, gb_error_t *err)
{
    gb_tls_options_t to = {.role = GB_TLS_CLIENT, .ca_file = o->ca_file};
    gb_tls_t *tls = gb_tls_new(&to, err);
    if (!tls)
        return err ? err->code : GB_ECRYPTO;
    gb_link_options_t lo = {.retry_ms = 200, .retry_max_ms = 2000};
    int rc = GB_ECLOSED;
    gb_link_client_t *cli = gb_link_client_new(ctx, o->endpoint, tls, o->server_name, &lo, err);
    if (!cli) {
        gb_tls_destroy(&tls);
        return err ? err->code : GB_EIO;
    }
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    double end = gb_time_now() + timeout / 1000.0;
    bool sent = false;
    while (gb_time_now() < end) {
        gb_link_event_t ev;
        rc = gb_link_client_poll(cli, 100, &ev, err);
        if (rc != 0)
            break;
        rc = GB_ECLOSED;
        if (ev.kind == GB_LINK_EV_CONNECTED && !sent) {
            Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
            Glassbox__EnrollRequest req = GLASSBOX__ENROLL_REQUEST__INIT;
            req.token.data = (uint8_t *)o->token;
            req.token.len = o->token_len;
            req.csr.data = (uint8_t *)csr;
            req.csr.len = csr_len;
            req.client_name = (char *)o->name;
            env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
            env.sequence = 1;
            env.body_case = GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST;
            env.enroll_request = &req;
            uint8_t *buf = NULL;
            size_t len = 0;
            rc = gb_envelope_encode(&env, NULL, &buf, &len, err);
            if (rc == 0)
                rc = gb_link_client_send(cli, buf, len, err);
            if (buf)
                OPENSSL_cleanse(buf, len); /* it holds the token */
            gb_free(buf);
            if (rc != 0)
                break;
            sent = true;
            rc = GB_ECLOSED;
        } else if (ev.kind == GB_LINK_EV_MESSAGE && sent) {
            rc = gb_envelope_decode(ev.data, ev.len, NULL, answer, err);
            break;
        } else if (ev.kind == GB_LINK_EV_DISCONNECTED && sent) {
            gb_error_set(err, GB_ECLOSED, "coordinator closed the session without an answer");
            break;
        }
    }
    if (rc == GB_ECLOSED && (!err || !err->msg[0] || !sent))
        gb_error_set(err, GB_ECLOSED,
                     "no %s from %s within %d ms (is it running, and is its certificate "
                     "for '%s' signed by %s?)",
                     sent ? "answer" : "secure session", o->endpoint, timeout, o->server_name,
                     o->ca_file);
    gb_link_client_close(cli, 200);
    gb_link_client_destroy(&cli);
    gb_tls_destroy(&tls);
    return rc;
}

/* Checks the certificate against everything we know, then writes it. */
static int s_accept(const gb_enroll_options_t *o, EVP_PKEY *key,
                    const Glassbox__EnrollResponse *resp, const char *cert_path,
                    const char *ca_path, gb_error_t *err)
{
    int rc;
    X509 *cert = gb_pki_cert_from_der(resp->certificate.data, resp->certificate.len, err);
    X509 *ca = gb_pki_cert_load(o->ca_file, err);
    X509 *sent_ca = NULL;
    if (!cert || !ca) {
        rc = GB_EINTEGRITY;
        goto out;
    }
    sent_ca = gb_pki_cert_from_der(resp->ca_certificate.data, resp->ca_certificate.len, err);
    if (!sent_ca || X509_cmp(sent_ca, ca) != 0) {
        rc = gb_error_set(err, GB_EINTEGRITY,
                          "the coordinator sent a CA certificate other than %s", o->ca_file);
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
        rc = gb_error_set(err, GB_EINTEGRITY,
                          "the certificate received is not for this client's key");
        goto out;
    }
    char cn[GB_PKI_NAME_MAX + 1];
    if ((rc = gb_pki_cert_name(cert, cn, err)) != 0)
        goto out;
    if (strcmp(cn, o->name) != 0) {
        rc = gb_error_set(err, GB_EINTEGRITY, "the certificate received is for '%s', not '%s'",
                          cn, o->name);
        goto out;
    }
    if ((rc = gb_pki_verify_cert(o->ca_file, NULL, cert, o->name, err)) != 0)
        goto out;
    if ((rc = gb_pki_cert_save(ca_path, ca, err)) != 0 ||
        (rc = gb_pki_cert_save(cert_path, cert, err)) != 0)
        goto out;
out:
    X509_free(cert);
    X509_free(ca);
    X509_free(sent_ca);
    return rc;
}

int gb_enroll(const gb_enroll_options_t *o, gb_error_t *err)
{
    int rc = gb_pki_check_name(o->name, "client name", err);
    if (rc != 0)
        return rc;
    if (!o->token || o->token_len == 0 || o->token_len > S_TOKEN_MAX)
        return gb_error_set(err, GB_EINVAL, "enrollment token: 1..%d bytes expected",
                            S_TOKEN_MAX);
    if (mkdir(o->out_dir, 0700) != 0 && errno != EEXIST)
        return gb_error_set(err, GB_EIO, "cannot make %s: %s", o->out_dir, strerror(errno));
    char key_path[4096], cert_path[4096], ca_path[4096];
    snprintf(key_path, sizeof key_path, "%s/%s.key", o->out_dir, o->name);
    snprintf(cert_path, sizeof cert_path, "%s/%s.crt", o->out_dir, o->name);
    snprintf(ca_path, sizeof ca_path, "%s/ca.crt", o->out_dir);

    void *ctx = o->zmq_ctx ? o->zmq_ctx : zmq_ctx_new();
    EVP_PKEY *key = NULL;
    X509_REQ *csr = NULL;
    uint8_t *csr_der = NULL;
    size_t csr_len = 0;
    Glassbox__Envelope *answer = NULL;
    if (!ctx) {
        rc = gb_error_set(err, GB_EIO, "cannot make a ZeroMQ context");
        goto out;
    }
    if (!(key = s_key(key_path, err)) || !(csr = gb_pki_csr_new(key, o->name, err))) {
        rc = err ? err->code : GB_ECRYPTO;
        goto out;
    }
    if ((rc = gb_pki_csr_to_der(csr, &csr_der, &csr_len, err)) != 0)
        goto out;
    if ((rc = s_exchange(o, ctx, csr_der, csr_len, &answer, err)) != 0)
        goto out;
    if (answer->body_case == GLASSBOX__ENVELOPE__BODY_ERROR) {
        rc = gb_error_set(err, GB_EPROTO, "coordinator refused: %s: %s",
                          gb_envelope_error_name(answer->error->code), answer->error->message);
        goto out;
    }
    if (answer->body_case != GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE) {
        rc = gb_error_set(err, GB_EPROTO, "coordinator answered with %s, not a certificate",
                          gb_envelope_body_name(answer));
        goto out;
    }
    rc = s_accept(o, key, answer->enroll_response, cert_path, ca_path, err);
    if (rc == 0)
        gb_log_info("enroll: enrolled as '%s': %s", o->name, cert_path);
out:
    gb_envelope_free(&answer);
    gb_free(csr_der);
    X509_REQ_free(csr);
    EVP_PKEY_free(key);
    if (ctx && !o->zmq_ctx)
        zmq_ctx_term(ctx);
    return rc;
}
