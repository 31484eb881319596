/* The federation's PKI, first half (see pki.h): thin, checked wrappers
 * around OpenSSL's key, X509, X509_REQ and X509_CRL objects: names, keys,
 * certificates, certificate requests, CRLs, and certificate verification.
 * The CA, which makes certificates and CRLs and keeps the registry, is the
 * other half, pki_ca.c; pki.h stays the one header of both (every caller of
 * the CA also loads keys and certificates, and the CA's declarations need
 * this half's types), and pki_internal.h declares the few helpers below
 * that the CA uses too.
 *
 * Shape of the code: files are read through gb_file_read_all (size limit
 * first) and parsed from memory, never by OpenSSL's own file readers, so a
 * huge or endless file costs nothing; they are written through
 * gb_file_write_atomic. DER from the wire is parsed to its exact length:
 * trailing bytes are refused, not ignored. Only P-256 and Ed25519 keys get
 * through any loader (gb_pki_check_key_kind), and no loader ever prompts
 * for a passphrase. */
#include "net/pki.h"
#include "net/pki_internal.h"
#include "net/wire.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util/alloc.h"
#include "util/file.h"

/* ---- names ---------------------------------------------------------------- */

static bool s_name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '.' || c == '_' || c == '-');
}

/* Copies up to 40 bytes of s into out, escaping what is not printable ASCII. */
static void s_quote(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < 40 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (len > 40 && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

int gb_pki_check_name(const char *name, const char *what, gb_error_t *err)
{
    if (!name)
        return gb_error_set(err, GB_EINVAL, "%s is missing", what);
    size_t len = strnlen(name, GB_PKI_NAME_MAX + 1);
    char shown[256];
    s_quote(name, len, shown, sizeof shown);
    if (len == 0)
        return gb_error_set(err, GB_EINVAL, "%s is empty", what);
    if (len > GB_PKI_NAME_MAX)
        return gb_error_set(err, GB_EINVAL, "%s '%s' is longer than %d bytes", what, shown,
                            GB_PKI_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (!s_name_char(name[i], i == 0))
            return gb_error_set(err, GB_EINVAL,
                                "%s '%s': byte %zu is not allowed (names are "
                                "[A-Za-z0-9][A-Za-z0-9._-]*, up to %d bytes)",
                                what, shown, i, GB_PKI_NAME_MAX);
    return 0;
}

/* ---- memory BIO helpers --------------------------------------------------- */

/* Bytes of a memory BIO into a new gb_malloc buffer (NUL-terminated).
 * Shared with pki_ca.c (pki_internal.h), which writes CRLs through it. */
int gb_pki_bio_take(BIO *bio, uint8_t **out, size_t *len, gb_error_t *err)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    if (n < 0 || (n > 0 && !p))
        return gb_wire_openssl_error(err, GB_ECRYPTO, "reading a memory BIO");
    uint8_t *buf = gb_malloc((size_t)n + 1);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "out of memory (%ld bytes)", n);
    if (n)
        memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    return 0;
}

/* Reads a whole file (limit max) into a read-only memory BIO. The file's
 * bytes are wiped on destroy when `secret`. */
typedef struct {
    uint8_t *data; /* file contents (gb_malloc) */
    size_t len;    /* bytes */
    BIO *bio;      /* read-only BIO over data */
    bool secret;   /* wipe data on close */
} s_file_bio_t;

static int s_file_bio_open(s_file_bio_t *f, const char *path, size_t max, bool secret,
                           gb_error_t *err)
{
    memset(f, 0, sizeof *f);
    f->secret = secret;
    int rc = gb_file_read_all(path, max, &f->data, &f->len, err);
    if (rc)
        return rc;
    f->bio = BIO_new_mem_buf(f->data, (int)f->len);
    if (!f->bio) {
        if (secret)
            OPENSSL_cleanse(f->data, f->len);
        gb_free(f->data);
        f->data = NULL;
        return gb_wire_openssl_error(err, GB_ECRYPTO, "reading '%s'", path);
    }
    return 0;
}

static void s_file_bio_close(s_file_bio_t *f)
{
    BIO_free(f->bio);
    if (f->data && f->secret)
        OPENSSL_cleanse(f->data, f->len);
    gb_free(f->data);
    memset(f, 0, sizeof *f);
}

/* ---- keys ----------------------------------------------------------------- */

const char *gb_pki_key_type(EVP_PKEY *key)
{
    if (!key)
        return NULL;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return "Ed25519";
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof group, &glen) &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
            return "P-256";
    }
    ERR_clear_error();
    return NULL;
}

/* Shared with pki_ca.c (pki_internal.h): a CSR's key passes the same test. */
int gb_pki_check_key_kind(EVP_PKEY *key, const char *where, gb_error_t *err)
{
    if (gb_pki_key_type(key))
        return 0;
    return gb_error_set(err, GB_EINVAL, "%s: key type %s is not accepted (P-256 or Ed25519)",
                        where, EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
                                                            : "unknown");
}

/* Digest to sign with: SHA-256 for ECDSA, none for Ed25519. Shared with
 * pki_ca.c (pki_internal.h), which signs certificates and CRLs. */
const EVP_MD *gb_pki_sign_md(EVP_PKEY *key)
{
    return EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
}

EVP_PKEY *gb_pki_key_new(gb_error_t *err)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key)
        gb_wire_openssl_error(err, GB_ECRYPTO, "generating a P-256 key");
    return key;
}

int gb_pki_key_save(const char *path, EVP_PKEY *key, gb_error_t *err)
{
    if (!path || !key)
        return gb_error_set(err, GB_EINVAL, "gb_pki_key_save: NULL argument");
    /* A secure-memory BIO is wiped when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "writing key '%s'", path);
    int rc = 0;
    if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "encoding key for '%s'", path);
    } else {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        if (n <= 0 || !p)
            rc = gb_wire_openssl_error(err, GB_ECRYPTO, "encoding key for '%s'", path);
        else
            rc = gb_file_write_atomic(path, p, (size_t)n, 0600, err);
    }
    BIO_free(bio);
    return rc;
}

/* Never prompts for a passphrase: an encrypted key simply fails to load. */
static int s_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

EVP_PKEY *gb_pki_key_load(const char *path, gb_error_t *err)
{
    if (!path) {
        gb_error_set(err, GB_EINVAL, "gb_pki_key_load: NULL path");
        return NULL;
    }
    s_file_bio_t f;
    if (s_file_bio_open(&f, path, GB_PKI_MAX_PEM, true, err))
        return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(f.bio, NULL, s_no_password, NULL);
    s_file_bio_close(&f);
    if (!key) {
        gb_wire_openssl_error(err, GB_EFORMAT,
                              "'%s' is not an unencrypted PEM private key", path);
        return NULL;
    }
    if (gb_pki_check_key_kind(key, path, err)) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

EVP_PKEY *gb_pki_key_from_der(const uint8_t *der, size_t len, gb_error_t *err)
{
    if (!der || len == 0 || len > GB_PKI_MAX_DER) {
        gb_error_set(err, der ? GB_ERANGE : GB_EINVAL,
                     "DER private key of %zu bytes: expected 1..%zu", len, GB_PKI_MAX_DER);
        return NULL;
    }
    const unsigned char *p = der;
    EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, (long)len);
    if (!key) {
        gb_wire_openssl_error(err, GB_EFORMAT, "DER private key of %zu bytes does not parse", len);
        return NULL;
    }
    if (p != der + len) {
        EVP_PKEY_free(key);
        gb_error_set(err, GB_EFORMAT, "DER private key has %zu trailing bytes",
                     (size_t)(der + len - p));
        return NULL;
    }
    if (gb_pki_check_key_kind(key, "DER private key", err)) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

int gb_pki_key_sha256(EVP_PKEY *key, uint8_t out[32], gb_error_t *err)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "encoding a public key");
    unsigned int olen = 0;
    int ok = EVP_Digest(der, (size_t)n, out, &olen, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (!ok || olen != 32)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "hashing a public key");
    return 0;
}

/* ---- certificates, CSRs, CRLs: load and encode --------------------------- */

X509 *gb_pki_cert_load(const char *path, gb_error_t *err)
{
    if (!path) {
        gb_error_set(err, GB_EINVAL, "gb_pki_cert_load: NULL path");
        return NULL;
    }
    s_file_bio_t f;
    if (s_file_bio_open(&f, path, GB_PKI_MAX_PEM, false, err))
        return NULL;
    X509 *cert = PEM_read_bio_X509(f.bio, NULL, s_no_password, NULL);
    s_file_bio_close(&f);
    if (!cert)
        gb_wire_openssl_error(err, GB_EFORMAT, "'%s' is not a PEM certificate", path);
    return cert;
}

int gb_pki_cert_save(const char *path, X509 *cert, gb_error_t *err)
{
    if (!path || !cert)
        return gb_error_set(err, GB_EINVAL, "gb_pki_cert_save: NULL argument");
    BIO *bio = BIO_new(BIO_s_mem());
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (!bio || !PEM_write_bio_X509(bio, cert))
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "encoding certificate for '%s'", path);
    else if ((rc = gb_pki_bio_take(bio, &buf, &len, err)) == 0)
        rc = gb_file_write_atomic(path, buf, len, 0644, err);
    gb_free(buf);
    BIO_free(bio);
    return rc;
}

X509 *gb_pki_cert_from_der(const uint8_t *der, size_t len, gb_error_t *err)
{
    if (!der || len == 0 || len > GB_PKI_MAX_DER) {
        gb_error_set(err, der ? GB_ERANGE : GB_EINVAL,
                     "DER certificate of %zu bytes: expected 1..%zu", len, GB_PKI_MAX_DER);
        return NULL;
    }
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    if (!cert) {
        gb_wire_openssl_error(err, GB_EFORMAT, "DER certificate of %zu bytes does not parse", len);
        return NULL;
    }
    if (p != der + len) {
        X509_free(cert);
        gb_error_set(err, GB_EFORMAT, "DER certificate has %zu trailing bytes",
                     (size_t)(der + len - p));
        return NULL;
    }
    return cert;
}

/* i2d output of n bytes (OpenSSL memory) copied into a gb_malloc buffer. */
static int s_take_der(unsigned char *tmp, int n, uint8_t **der, size_t *len, const char *what,
                      gb_error_t *err)
{
    if (n <= 0)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "encoding %s", what);
    uint8_t *buf = gb_malloc((size_t)n);
    if (!buf) {
        OPENSSL_free(tmp);
        return gb_error_set(err, GB_ENOMEM, "out of memory encoding %s", what);
    }
    memcpy(buf, tmp, (size_t)n);
    OPENSSL_free(tmp);
    *der = buf;
    *len = (size_t)n;
    return 0;
}

int gb_pki_cert_to_der(X509 *cert, uint8_t **der, size_t *len, gb_error_t *err)
{
    *der = NULL;
    *len = 0;
    unsigned char *tmp = NULL;
    int n = i2d_X509(cert, &tmp);
    return s_take_der(tmp, n, der, len, "a certificate", err);
}

/* The one CN of a subject name, validated, into out. Shared with pki_ca.c
 * (pki_internal.h), which reads a CSR's name with it. */
int gb_pki_subject_name(const X509_NAME *subject, const char *what,
                          char out[GB_PKI_NAME_MAX + 1], gb_error_t *err)
{
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0)
        return gb_error_set(err, GB_EFORMAT, "%s has no common name (CN)", what);
    if (X509_NAME_get_index_by_NID(subject, NID_commonName, idx) >= 0)
        return gb_error_set(err, GB_EFORMAT, "%s has more than one common name (CN)", what);
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, cn);
    if (n < 0)
        return gb_wire_openssl_error(err, GB_EFORMAT, "%s: common name is not a string", what);
    int rc = 0;
    if ((size_t)n != strlen((char *)utf8))
        rc = gb_error_set(err, GB_EFORMAT, "%s: common name has an embedded NUL", what);
    else if ((rc = gb_pki_check_name((char *)utf8, "common name", err)) != 0)
        gb_error_prefix(err, rc, "%s: ", what);
    else
        memcpy(out, utf8, (size_t)n + 1);
    OPENSSL_free(utf8);
    return rc;
}

int gb_pki_cert_name(X509 *cert, char out[GB_PKI_NAME_MAX + 1], gb_error_t *err)
{
    return gb_pki_subject_name(X509_get_subject_name(cert), "certificate", out, err);
}

bool gb_pki_cert_signs_publications(X509 *cert)
{
    if (!cert)
        return false;
    uint32_t flags = X509_get_extension_flags(cert);
    if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) ||
        !(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER))
        return false;
    ASN1_OBJECT *mark = OBJ_txt2obj(GB_PKI_PUBLICATION_OID, 1);
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; mark && eku && i < sk_ASN1_OBJECT_num(eku) && !found; i++)
        found = OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), mark) == 0;
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    ASN1_OBJECT_free(mark);
    ERR_clear_error();
    return found;
}

X509_REQ *gb_pki_csr_load(const char *path, gb_error_t *err)
{
    if (!path) {
        gb_error_set(err, GB_EINVAL, "gb_pki_csr_load: NULL path");
        return NULL;
    }
    s_file_bio_t f;
    if (s_file_bio_open(&f, path, GB_PKI_MAX_PEM, false, err))
        return NULL;
    X509_REQ *csr = PEM_read_bio_X509_REQ(f.bio, NULL, s_no_password, NULL);
    s_file_bio_close(&f);
    if (!csr)
        gb_wire_openssl_error(err, GB_EFORMAT, "'%s' is not a PEM certificate request", path);
    return csr;
}

X509_REQ *gb_pki_csr_from_der(const uint8_t *der, size_t len, gb_error_t *err)
{
    if (!der || len == 0 || len > GB_PKI_MAX_DER) {
        gb_error_set(err, der ? GB_ERANGE : GB_EINVAL,
                     "DER certificate request of %zu bytes: expected 1..%zu", len,
                     GB_PKI_MAX_DER);
        return NULL;
    }
    const unsigned char *p = der;
    X509_REQ *csr = d2i_X509_REQ(NULL, &p, (long)len);
    if (!csr) {
        gb_wire_openssl_error(err, GB_EFORMAT,
                              "DER certificate request of %zu bytes does not parse",
                              len);
        return NULL;
    }
    if (p != der + len) {
        X509_REQ_free(csr);
        gb_error_set(err, GB_EFORMAT, "DER certificate request has %zu trailing bytes",
                     (size_t)(der + len - p));
        return NULL;
    }
    return csr;
}

int gb_pki_csr_to_der(X509_REQ *csr, uint8_t **der, size_t *len, gb_error_t *err)
{
    *der = NULL;
    *len = 0;
    unsigned char *tmp = NULL;
    int n = i2d_X509_REQ(csr, &tmp);
    return s_take_der(tmp, n, der, len, "a certificate request", err);
}

X509_REQ *gb_pki_csr_new(EVP_PKEY *key, const char *name, gb_error_t *err)
{
    if (!key) {
        gb_error_set(err, GB_EINVAL, "gb_pki_csr_new: NULL key");
        return NULL;
    }
    if (gb_pki_check_name(name, "client name", err) || gb_pki_check_key_kind(key, "CSR key", err))
        return NULL;
    X509_REQ *csr = X509_REQ_new();
    X509_NAME *subject = X509_NAME_new();
    if (!csr || !subject || !X509_REQ_set_version(csr, X509_REQ_VERSION_1) ||
        !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0) ||
        !X509_REQ_set_subject_name(csr, subject) || !X509_REQ_set_pubkey(csr, key) ||
        X509_REQ_sign(csr, key, gb_pki_sign_md(key)) <= 0) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "making a certificate request for '%s'", name);
        X509_REQ_free(csr);
        csr = NULL;
    }
    X509_NAME_free(subject);
    return csr;
}

X509_CRL *gb_pki_crl_load(const char *path, gb_error_t *err)
{
    if (!path) {
        gb_error_set(err, GB_EINVAL, "gb_pki_crl_load: NULL path");
        return NULL;
    }
    s_file_bio_t f;
    if (s_file_bio_open(&f, path, GB_PKI_MAX_CRL_FILE, false, err))
        return NULL;
    X509_CRL *crl = PEM_read_bio_X509_CRL(f.bio, NULL, s_no_password, NULL);
    s_file_bio_close(&f);
    if (!crl)
        gb_wire_openssl_error(err, GB_EFORMAT, "'%s' is not a PEM CRL", path);
    return crl;
}

X509_CRL *gb_pki_crl_from_der(const uint8_t *der, size_t len, gb_error_t *err)
{
    if (!der || len == 0 || len > GB_PKI_MAX_CRL_FILE) {
        gb_error_set(err, der ? GB_ERANGE : GB_EINVAL, "DER CRL of %zu bytes: expected 1..%zu",
                     len, GB_PKI_MAX_CRL_FILE);
        return NULL;
    }
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    if (!crl) {
        gb_wire_openssl_error(err, GB_EFORMAT, "DER CRL of %zu bytes does not parse", len);
        return NULL;
    }
    if (p != der + len) {
        X509_CRL_free(crl);
        gb_error_set(err, GB_EFORMAT, "DER CRL has %zu trailing bytes", (size_t)(der + len - p));
        return NULL;
    }
    return crl;
}

/* ---- verification -------------------------------------------------------- */

int gb_pki_verify_cert_at(const char *ca_file, const char *crl_file, X509 *cert,
                          const char *expected_name, time_t at, gb_error_t *err)
{
    if (!ca_file || !cert)
        return gb_error_set(err, GB_EINVAL, "gb_pki_verify_cert: NULL argument");
    X509 *ca = gb_pki_cert_load(ca_file, err);
    if (!ca)
        return err ? err->code : GB_EIO;
    X509_CRL *crl = NULL;
    if (crl_file && !(crl = gb_pki_crl_load(crl_file, err))) {
        X509_free(ca);
        return err ? err->code : GB_EIO;
    }
    int rc = 0;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx || !X509_STORE_add_cert(store, ca) ||
        (crl && !X509_STORE_add_crl(store, crl)) ||
        !X509_STORE_set_flags(store, X509_V_FLAG_X509_STRICT |
                                         (crl ? X509_V_FLAG_CRL_CHECK : 0)) ||
        !X509_STORE_CTX_init(ctx, store, cert, NULL)) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "setting up certificate verification");
        goto cleanup;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    if (at)
        X509_VERIFY_PARAM_set_time(param, at);
    if (expected_name) {
        if ((rc = gb_pki_check_name(expected_name, "expected peer name", err)) != 0)
            goto cleanup;
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!X509_VERIFY_PARAM_set1_host(param, expected_name, 0)) {
            rc = gb_wire_openssl_error(err, GB_ECRYPTO, "setting the expected name");
            goto cleanup;
        }
    }
    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        char subject[256] = "?";
        X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
        ERR_clear_error();
        rc = gb_error_set(err, GB_EINTEGRITY,
                          "certificate '%s' refused%s%s: %s (depth %d, CA file '%s'%s%s)",
                          subject, expected_name ? " for name " : "",
                          expected_name ? expected_name : "", X509_verify_cert_error_string(e),
                          depth, ca_file, crl ? ", CRL " : "", crl ? crl_file : "");
    }
cleanup:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_CRL_free(crl);
    X509_free(ca);
    return rc;
}

int gb_pki_verify_cert(const char *ca_file, const char *crl_file, X509 *cert,
                       const char *expected_name, gb_error_t *err)
{
    return gb_pki_verify_cert_at(ca_file, crl_file, cert, expected_name, 0, err);
}
