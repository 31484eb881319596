/* Signed publications (see signing.h): EVP_DigestSign / EVP_DigestVerify
 * with ECDSA P-256 and SHA-256 over the packed Publication bytes, wrapped in
 * a SignedPublication.
 *
 * Decoding follows snapshot.c: the size is checked before protobuf-c sees a
 * byte, and protobuf-c unpacks through a budget allocator that routes through
 * gb_malloc (so allocation-failure injection reaches it) and refuses to hand
 * out more than twice the input. The publication bytes are not copied again
 * after the checks: the unpacked field's buffer is handed to the caller. */
#include "net/signing.h"
#include "net/wire.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "glassbox.pb-c.h"
#include "net/pki.h"
#include "util/alloc.h"
#include "util/crash_point.h"
#include "util/file.h"
#include "util/log.h"

/* Largest DER ECDSA P-256 signature is 72 bytes; leave room, refuse junk. */
#define S_MAX_SIGNATURE 256
#define S_PATH_MAX 4096

struct gb_signer {
    EVP_PKEY *key;     /* coordinator's private key (P-256) */
    X509 *cert;        /* its certificate */
    uint8_t *cert_der; /* the certificate in DER, as it goes into every SignedPublication */
    size_t cert_len;   /* bytes of cert_der */
};

/* ---- signing ---------------------------------------------------------------- */

/* Key usage digitalSignature present (an absent extension does not count). */
static bool s_can_sign(X509 *cert)
{
    return (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) &&
           (X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE);
}

gb_signer_t *gb_signer_load(const char *key_file, const char *cert_file, gb_error_t *err)
{
    if (!key_file || !cert_file) {
        gb_error_set(err, GB_EINVAL, "gb_signer_load: NULL file name");
        return NULL;
    }
    gb_signer_t *s = gb_calloc(1, sizeof *s);
    if (!s) {
        gb_error_set(err, GB_ENOMEM, "out of memory loading the signer");
        return NULL;
    }
    if (!(s->key = gb_pki_key_load(key_file, err)) ||
        !(s->cert = gb_pki_cert_load(cert_file, err)))
        goto fail;
    const char *type = gb_pki_key_type(s->key);
    if (!type || strcmp(type, "P-256") != 0) {
        gb_error_set(err, GB_EINVAL, "'%s': publications are signed with a P-256 key, not %s",
                     key_file, type ? type : "this key type");
        goto fail;
    }
    if (X509_check_private_key(s->cert, s->key) != 1) {
        gb_wire_openssl_error(err, GB_EINVAL, "'%s' is not the certificate of the key in '%s'",
                              cert_file, key_file);
        goto fail;
    }
    if (!s_can_sign(s->cert)) {
        gb_error_set(err, GB_EINVAL, "'%s' lacks the digitalSignature key usage", cert_file);
        goto fail;
    }
    /* Subscribers accept only a certificate with the publication-signing
     * mark: say so now, once, rather than have them refuse every round. (It
     * still loads: a test or a tool may sign with a client's key, to see it
     * refused.) */
    if (!gb_pki_cert_signs_publications(s->cert))
        gb_log_warn("'%s' is not marked for signing publications (extended key usages "
                    "serverAuth and %s): subscribers will refuse what it signs; 'ca init' "
                    "of this version makes a coordinator certificate that has them",
                    cert_file, GB_PKI_PUBLICATION_OID);
    if (gb_pki_cert_to_der(s->cert, &s->cert_der, &s->cert_len, err))
        goto fail;
    return s;
fail:
    gb_signer_destroy(&s);
    return NULL;
}

void gb_signer_destroy(gb_signer_t **s)
{
    if (!s || !*s)
        return;
    EVP_PKEY_free((*s)->key);
    X509_free((*s)->cert);
    gb_free((*s)->cert_der);
    gb_free(*s);
    *s = NULL;
}

int gb_signer_sign(const gb_signer_t *s, const uint8_t *pub, size_t len, uint8_t **sig,
                   size_t *sig_len, gb_error_t *err)
{
    *sig = NULL;
    *sig_len = 0;
    if (!s || (!pub && len))
        return gb_error_set(err, GB_EINVAL, "gb_signer_sign: NULL argument");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t max = 0;
    uint8_t *buf = NULL;
    int rc = 0;
    const uint8_t *data = len ? pub : (const uint8_t *)"";
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->key) != 1 ||
        EVP_DigestSign(ctx, NULL, &max, data, len) != 1) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "signing %zu bytes", len);
        goto cleanup;
    }
    if (!(buf = gb_malloc(max))) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory signing");
        goto cleanup;
    }
    size_t n = max;
    if (EVP_DigestSign(ctx, buf, &n, data, len) != 1) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "signing %zu bytes", len);
        goto cleanup;
    }
    *sig = buf;
    *sig_len = n;
    buf = NULL;
cleanup:
    gb_free(buf);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int s_check_pub_len(size_t len, gb_error_t *err)
{
    if (len == 0 || len > GB_PUBLICATION_MAX_BYTES)
        return gb_error_set(err, GB_ERANGE, "publication of %zu bytes: expected 1..%zu", len,
                            GB_PUBLICATION_MAX_BYTES);
    return 0;
}

int gb_publication_sign(const gb_signer_t *s, const uint8_t *pub, size_t len, uint8_t **out,
                        size_t *out_len, gb_error_t *err)
{
    *out = NULL;
    *out_len = 0;
    int rc = s_check_pub_len(len, err);
    if (rc)
        return rc;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if ((rc = gb_signer_sign(s, pub, len, &sig, &sig_len, err)) != 0)
        return rc;
    Glassbox__SignedPublication msg = GLASSBOX__SIGNED_PUBLICATION__INIT;
    msg.publication.data = (uint8_t *)pub;
    msg.publication.len = len;
    msg.signature.data = sig;
    msg.signature.len = sig_len;
    msg.signature_algorithm = (char *)GB_SIGNING_ALGORITHM;
    msg.signer_certificate.data = s->cert_der;
    msg.signer_certificate.len = s->cert_len;
    size_t n = glassbox__signed_publication__get_packed_size(&msg);
    uint8_t *buf = gb_malloc(n);
    if (!buf) {
        gb_free(sig);
        return gb_error_set(err, GB_ENOMEM, "out of memory packing a signed publication "
                            "(%zu bytes)", n);
    }
    size_t packed = glassbox__signed_publication__pack(&msg, buf);
    gb_free(sig);
    if (packed != n) {
        gb_free(buf);
        return gb_error_set(err, GB_EFORMAT, "packing a signed publication gave %zu bytes, "
                            "expected %zu", packed, n);
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---- verification ---------------------------------------------------------- */

/* Checks the signature over pub with the certificate's key. */
static int s_check_signature(X509 *cert, const ProtobufCBinaryData *pub,
                             const ProtobufCBinaryData *sig, gb_error_t *err)
{
    EVP_PKEY *key = X509_get0_pubkey(cert);
    const char *type = key ? gb_pki_key_type(key) : NULL;
    if (!type || strcmp(type, "P-256") != 0) {
        ERR_clear_error();
        return gb_error_set(err, GB_EINTEGRITY,
                            "signed publication: signer key is %s, not P-256 as %s requires",
                            type ? type : "unusable", GB_SIGNING_ALGORITHM);
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = 0;
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) != 1) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "signed publication: setting up verification");
    } else if (EVP_DigestVerify(ctx, sig->data, sig->len, pub->data, pub->len) != 1) {
        rc = gb_wire_openssl_error(err, GB_EINTEGRITY,
                                   "signed publication: the signature over %zu publication bytes "
                                   "does not verify", pub->len);
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Everything but the logging. */
static int s_verify(const uint8_t *buf, size_t len, const gb_verify_opts_t *opts,
                    uint8_t **pub, size_t *pub_len, gb_error_t *err)
{
    if (len > GB_SIGNED_PUBLICATION_MAX_BYTES)
        return gb_error_set(err, GB_ERANGE,
                            "signed publication of %zu bytes is over the limit of %zu", len,
                            GB_SIGNED_PUBLICATION_MAX_BYTES);
    if (!opts || !opts->ca_file || !opts->expected_name || (!buf && len))
        return gb_error_set(err, GB_EINVAL, "gb_publication_verify: NULL argument");
    gb_wire_budget_t budget = gb_wire_budget(len);
    ProtobufCAllocator alloc = gb_wire_budget_allocator(&budget);
    Glassbox__SignedPublication *msg =
        glassbox__signed_publication__unpack(&alloc, len, len ? buf : (const uint8_t *)"");
    if (!msg) {
        if (budget.out_of_mem)
            return gb_error_set(err, GB_ENOMEM, "out of memory decoding a signed publication");
        return gb_error_set(err, GB_EFORMAT,
                            "not a signed publication, or truncated (%zu bytes do not unpack)",
                            len);
    }
    int rc = 0;
    X509 *cert = NULL;
    if (strcmp(msg->signature_algorithm, GB_SIGNING_ALGORITHM) != 0) {
        char shown[48];
        size_t n = strnlen(msg->signature_algorithm, 40);
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)msg->signature_algorithm[i];
            shown[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        shown[o] = '\0';
        rc = n == 0 ? gb_error_set(err, GB_EFORMAT, "signed publication has no algorithm")
                    : gb_error_set(err, GB_EPROTO,
                                   "signed publication: algorithm '%s' is not supported "
                                   "(this build accepts %s)", shown, GB_SIGNING_ALGORITHM);
        goto cleanup;
    }
    if (msg->publication.len == 0 || msg->publication.len > GB_PUBLICATION_MAX_BYTES) {
        rc = gb_error_set(err, GB_EFORMAT, "signed publication: publication of %zu bytes "
                          "(expected 1..%zu)", msg->publication.len, GB_PUBLICATION_MAX_BYTES);
        goto cleanup;
    }
    if (msg->signature.len == 0 || msg->signature.len > S_MAX_SIGNATURE) {
        rc = gb_error_set(err, GB_EFORMAT, "signed publication: signature of %zu bytes "
                          "(expected 1..%d)", msg->signature.len, S_MAX_SIGNATURE);
        goto cleanup;
    }
    if (msg->signer_certificate.len == 0) {
        rc = gb_error_set(err, GB_EFORMAT, "signed publication has no signer certificate");
        goto cleanup;
    }
    if (!(cert = gb_pki_cert_from_der(msg->signer_certificate.data, msg->signer_certificate.len,
                                      err))) {
        rc = gb_error_prefix(err, GB_EFORMAT, "signed publication: signer certificate: ");
        goto cleanup;
    }
    if ((rc = gb_pki_verify_cert_at(opts->ca_file, opts->crl_file, cert, opts->expected_name,
                                    opts->at, err)) != 0) {
        gb_error_prefix(err, rc, "signed publication: ");
        goto cleanup;
    }
    if (!gb_pki_cert_signs_publications(cert)) {
        rc = gb_error_set(err, GB_EINTEGRITY,
                          "signed publication: signer certificate is not a coordinator's "
                          "(needs digitalSignature, serverAuth and the publication-signing "
                          "mark %s)", GB_PKI_PUBLICATION_OID);
        goto cleanup;
    }
    if ((rc = s_check_signature(cert, &msg->publication, &msg->signature, err)) != 0)
        goto cleanup;
    /* Hand over the unpacked buffer (allocated by the budget allocator, i.e. gb_malloc). */
    *pub = msg->publication.data;
    *pub_len = msg->publication.len;
    msg->publication.data = NULL;
    msg->publication.len = 0;
cleanup:
    X509_free(cert);
    glassbox__signed_publication__free_unpacked(msg, &alloc);
    return rc;
}

int gb_publication_verify(const uint8_t *buf, size_t len, const gb_verify_opts_t *opts,
                          uint8_t **pub, size_t *pub_len, gb_error_t *err)
{
    gb_error_t local;
    if (!err)
        err = &local;
    *pub = NULL;
    *pub_len = 0;
    int rc = s_verify(buf, len, opts, pub, pub_len, err);
    if (rc && rc != GB_ENOMEM)
        gb_log_warn("publication refused: %s", err->msg);
    return rc;
}

/* ---- files for openssl ---------------------------------------------------------- */

int gb_publication_write_files(const gb_signer_t *s, const char *dir, uint64_t round,
                               const uint8_t *pub, size_t len, gb_error_t *err)
{
    if (!s || !dir)
        return gb_error_set(err, GB_EINVAL, "gb_publication_write_files: NULL argument");
    if (round == 0)
        return gb_error_set(err, GB_EINVAL, "publication files: round must be >= 1");
    int rc = s_check_pub_len(len, err);
    if (rc)
        return rc;
    char pub_path[S_PATH_MAX], sig_path[S_PATH_MAX], crt_path[S_PATH_MAX];
    int a = snprintf(pub_path, sizeof pub_path, "%s/round-%06" PRIu64 ".pub", dir, round);
    int b = snprintf(sig_path, sizeof sig_path, "%s/round-%06" PRIu64 ".sig", dir, round);
    int c = snprintf(crt_path, sizeof crt_path, "%s/coordinator.crt", dir);
    if (a < 0 || b < 0 || c < 0 || (size_t)a >= sizeof pub_path ||
        (size_t)b >= sizeof sig_path || (size_t)c >= sizeof crt_path)
        return gb_error_set(err, GB_EINVAL, "publication directory '%.60s...' is too long", dir);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if ((rc = gb_signer_sign(s, pub, len, &sig, &sig_len, err)) != 0)
        return rc;
    /* Certificate and signature first, publication last: a reader (or a
     * mirror) that finds the .pub finds the .sig that vouches for it, even
     * after a crash between the two. */
    if ((rc = gb_pki_cert_save(crt_path, s->cert, err)) == 0 &&
        (rc = gb_file_write_atomic(sig_path, sig, sig_len, 0644, err)) == 0) {
        gb_crash_point("sig");
        rc = gb_file_write_atomic(pub_path, pub, len, 0644, err);
    }
    if (rc == 0)
        gb_crash_point("pub");
    gb_free(sig);
    return rc;
}
