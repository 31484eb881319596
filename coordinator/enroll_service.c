/* Enrollment requests in, certificates or refusals out. See the header for
 * the order of checks and why the token is spent last. */
#include "enroll_service.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "net/envelope.h"
#include "util/alloc.h"
#include "util/log.h"

/* The CSR's checks that need no token: it parses, its signature holds, and
 * its one CN is a valid name equal to the requested one. */
static int s_check_csr(const Glassbox__EnrollRequest *req, gb_error_t *err)
{
    X509_REQ *csr = gb_pki_csr_from_der(req->csr.data, req->csr.len, err);
    if (!csr)
        return GB_EINVAL;
    int rc = 0;
    EVP_PKEY *key = X509_REQ_get0_pubkey(csr);
    if (!key || X509_REQ_verify(csr, key) != 1) {
        rc = gb_error_set(err, GB_EINVAL, "the CSR's signature does not verify");
        goto out;
    }
    X509_NAME *subject = X509_REQ_get_subject_name(csr);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) {
        rc = gb_error_set(err, GB_EINVAL, "the CSR must have exactly one CN");
        goto out;
    }
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    const char *name = req->client_name;
    if ((size_t)ASN1_STRING_length(cn) != strlen(name) ||
        memcmp(ASN1_STRING_get0_data(cn), name, strlen(name)) != 0) {
        rc = gb_error_set(err, GB_EINVAL, "the CSR's CN is not the requested name '%s'", name);
        goto out;
    }
    rc = gb_pki_check_name(name, "client name", err);
    if (rc != 0)
        rc = GB_EINVAL;
out:
    X509_REQ_free(csr);
    return rc;
}

static int s_pack(Glassbox__Envelope *env, uint8_t **reply, size_t *reply_len)
{
    gb_error_t pack_err = {0};
    int rc = gb_envelope_encode(env, NULL, reply, reply_len, &pack_err);
    if (rc != 0)
        gb_log_error("enroll: cannot pack the reply: %s", pack_err.msg);
    return rc;
}

static int s_refuse(int rc, Glassbox__ErrorCode code, uint64_t seq, uint64_t in_reply_to,
                    uint8_t **reply, size_t *reply_len, gb_error_t *err)
{
    /* Our own failures stay in our log: the peer learns only that it was not
     * its fault. */
    const char *text = code == GLASSBOX__ERROR_CODE__ERROR_INTERNAL
                           ? "the coordinator could not answer; try again later"
                           : err ? err->msg : "refused";
    gb_error_t make_err = {0};
    Glassbox__Envelope *env = gb_envelope_make_error(seq, code, in_reply_to, text, &make_err);
    if (!env || s_pack(env, reply, reply_len) != 0) {
        gb_envelope_free(&env);
        return GB_ENOMEM;
    }
    gb_envelope_free(&env);
    return rc;
}

static Glassbox__ErrorCode s_ca_code(int rc)
{
    switch (rc) {
    case GB_EPROTO: return GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN;
    case GB_EINVAL:
    case GB_EFORMAT:
    case GB_EINTEGRITY:
    case GB_ERANGE: return GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;
    default: return GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
    }
}

static Glassbox__ErrorCode s_token_code(int rc)
{
    return rc == GB_EIO || rc == GB_ENOMEM ? GLASSBOX__ERROR_CODE__ERROR_INTERNAL
                                           : GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED;
}

static int s_grant(const gb_enroll_service_t *svc, const Glassbox__Envelope *in, uint64_t seq,
                   uint8_t **reply, size_t *reply_len, gb_error_t *err)
{
    const Glassbox__EnrollRequest *req = in->enroll_request;
    uint8_t *cert = NULL, *ca_der = NULL;
    size_t cert_len = 0, ca_len = 0;
    int rc = gb_ca_sign_csr(svc->ca, req->csr.data, req->csr.len, svc->days, &cert, &cert_len,
                            err);
    if (rc != 0)
        return s_refuse(rc, s_ca_code(rc), seq, in->sequence, reply, reply_len, err);
    char ca_path[4096];
    snprintf(ca_path, sizeof ca_path, "%s/%s", gb_ca_dir(svc->ca), GB_CA_CERT_FILE);
    X509 *ca = gb_pki_cert_load(ca_path, err);
    rc = ca ? gb_pki_cert_to_der(ca, &ca_der, &ca_len, err) : GB_EIO;
    X509_free(ca);
    if (rc != 0) {
        gb_log_error("enroll: %s", err ? err->msg : "cannot read the CA certificate");
        gb_free(cert);
        return s_refuse(rc, GLASSBOX__ERROR_CODE__ERROR_INTERNAL, seq, in->sequence, reply,
                        reply_len, err);
    }
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    Glassbox__EnrollResponse resp = GLASSBOX__ENROLL_RESPONSE__INIT;
    resp.certificate.data = cert;
    resp.certificate.len = cert_len;
    resp.ca_certificate.data = ca_der;
    resp.ca_certificate.len = ca_len;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = seq;
    env.body_case = GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE;
    env.enroll_response = &resp;
    rc = s_pack(&env, reply, reply_len);
    gb_free(cert);
    gb_free(ca_der);
    if (rc == 0)
        gb_log_info("enroll: issued a certificate to '%s'", req->client_name);
    return rc;
}

int gb_enroll_service_answer(const gb_enroll_service_t *svc, const uint8_t *msg, size_t len,
                             uint64_t reply_seq, time_t now, uint8_t **reply,
                             size_t *reply_len, gb_error_t *err)
{
    *reply = NULL;
    *reply_len = 0;
    Glassbox__Envelope *in = NULL;
    int rc = gb_envelope_decode(msg, len, NULL, &in, err);
    if (rc != 0)
        return s_refuse(rc, gb_envelope_error_code(rc), reply_seq, 0, reply, reply_len, err);
    if (in->body_case != GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST) {
        rc = gb_error_warn(err, GB_EPROTO,
                           "enroll: a session without a certificate sent %s; only an "
                           "enrollment request is allowed",
                           gb_envelope_body_name(in));
        rc = s_refuse(rc, GLASSBOX__ERROR_CODE__ERROR_UNAUTHENTICATED, reply_seq, in->sequence,
                      reply, reply_len, err);
        goto out;
    }
    if ((rc = s_check_csr(in->enroll_request, err)) != 0) {
        gb_error_warn(err, rc, "enroll: request for '%s' refused: %s",
                      in->enroll_request->client_name, err ? err->msg : "bad CSR");
        rc = s_refuse(rc, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, reply_seq, in->sequence,
                      reply, reply_len, err);
        goto out;
    }
    /* The token is checked first (an outsider learns nothing about names),
     * then the CA's policy, and a use is spent only for a request the CA
     * accepts: a reserved, revoked or held name costs the token nothing.
     * gb_ca_sign_csr checks again under its lock, for a name taken in
     * between. */
    time_t t = now ? now : time(NULL);
    const Glassbox__EnrollRequest *req = in->enroll_request;
    if ((rc = gb_tokens_check(svc->tokens, req->token.data, req->token.len, t, err)) != 0) {
        rc = s_refuse(rc, s_token_code(rc), reply_seq, in->sequence, reply, reply_len, err);
        goto out;
    }
    if ((rc = gb_ca_check_csr(svc->ca, in->enroll_request->csr.data,
                              in->enroll_request->csr.len, err)) != 0) {
        rc = s_refuse(rc, s_ca_code(rc), reply_seq, in->sequence, reply, reply_len, err);
        goto out;
    }
    if ((rc = gb_tokens_consume(svc->tokens, req->token.data, req->token.len, t, err)) != 0) {
        rc = s_refuse(rc, s_token_code(rc), reply_seq, in->sequence, reply, reply_len, err);
        goto out;
    }
    rc = s_grant(svc, in, reply_seq, reply, reply_len, err);
out:
    gb_envelope_free(&in);
    return rc;
}
