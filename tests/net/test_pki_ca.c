/* Tests for net/pki: names, keys (modes, encodings, refused types),
 * certificates, CSRs and CRLs in PEM and DER, verification verdicts (good,
 * expired, revoked, wrong CA, wrong name), and the CA directory: init, open,
 * issue, enrollment by CSR (bad signature, duplicate name with another key,
 * same key again, revoked names, CSR extensions ignored, every truncation),
 * revocation and CRL numbers, two processes' views kept consistent by the
 * lock, and allocation-failure injection in every constructor and mutation.
 * (Named test_pki_ca.c: the ctest name net/test_pki belongs to the channel
 * tests' certificate fixture in tests/net/net.cmake.) */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/pki.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define DAY 86400

/* A temporary directory with a fresh CA in tmp/ca, opened. */
typedef struct {
    char *tmp;    /* temporary directory */
    char *dir;    /* tmp/ca */
    char *ca_crt; /* tmp/ca/ca.crt */
    char *crl;    /* tmp/ca/crl.pem */
    gb_ca_t *ca;  /* opened CA */
} s_fix_t;

static void s_fix_init(s_fix_t *f)
{
    gb_error_t err = {0};
    f->tmp = gb_test_mkdtemp();
    f->dir = gb_test_path(f->tmp, "ca");
    f->ca_crt = gb_test_path(f->dir, GB_CA_CERT_FILE);
    f->crl = gb_test_path(f->dir, GB_CA_CRL_FILE);
    if (gb_ca_init(f->dir, "test", "coord", 30, &err))
        fail_msg("ca init: %s", err.msg);
    f->ca = gb_ca_open(f->dir, &err);
    if (!f->ca)
        fail_msg("ca open: %s", err.msg);
}

static void s_fix_free(s_fix_t *f)
{
    gb_ca_destroy(&f->ca);
    gb_test_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->ca_crt);
    free(f->crl);
}

/* Loads tmp/ca/clients/<name>.crt. */
static X509 *s_client_cert(const s_fix_t *f, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "clients/%s.crt", name);
    char *path = gb_test_path(f->dir, rel);
    gb_error_t err;
    X509 *c = gb_pki_cert_load(path, &err);
    if (!c)
        fail_msg("%s", err.msg);
    free(path);
    return c;
}

/* A DER CSR for key with the given CNs (any bytes), signed by sign_key, with
 * extra extensions when ext_san is not NULL. */
static uint8_t *s_raw_csr(EVP_PKEY *key, EVP_PKEY *sign_key, const char *cn1, const char *cn2,
                          const char *ext_san, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    assert_non_null(req);
    assert_non_null(name);
    if (cn1)
        assert_true(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                               (const unsigned char *)cn1, -1, -1, 0));
    if (cn2)
        assert_true(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                               (const unsigned char *)cn2, -1, -1, 0));
    if (!cn1 && !cn2)
        assert_true(X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                                               (const unsigned char *)"org", -1, -1, 0));
    assert_true(X509_REQ_set_subject_name(req, name));
    assert_true(X509_REQ_set_pubkey(req, key));
    if (ext_san) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *e1 = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, ext_san);
        X509_EXTENSION *e2 =
            X509V3_EXT_nconf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
        assert_non_null(e1);
        assert_non_null(e2);
        sk_X509_EXTENSION_push(exts, e1);
        sk_X509_EXTENSION_push(exts, e2);
        assert_true(X509_REQ_add_extensions(req, exts));
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    assert_true(X509_REQ_sign(req, sign_key, EVP_sha256()) > 0);
    uint8_t *der = NULL;
    gb_error_t err;
    assert_int_equal(gb_pki_csr_to_der(req, &der, len, &err), 0);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return der;
}

static uint8_t *s_csr(EVP_PKEY *key, const char *name, size_t *len)
{
    gb_error_t err;
    X509_REQ *req = gb_pki_csr_new(key, name, &err);
    if (!req)
        fail_msg("%s", err.msg);
    uint8_t *der = NULL;
    assert_int_equal(gb_pki_csr_to_der(req, &der, len, &err), 0);
    X509_REQ_free(req);
    return der;
}

/* True if the certificate carries extension nid. */
static bool s_has_ext(X509 *c, int nid)
{
    return X509_get_ext_by_NID(c, nid, -1) >= 0;
}

/* ---- names and errors ------------------------------------------------------- */

static void test_check_name(void **state)
{
    (void)state;
    gb_error_t err;
    const char *good[] = {"a", "client-1", "Client_2.example", "0", "x.y-z_w",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(gb_pki_check_name(good[i], "client name", &err), 0);
    struct {
        const char *name, *msg;
    } bad[] = {
        {"", "client name is empty"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "longer than 64"},
        {".hidden", "byte 0 is not allowed"},
        {"-x", "byte 0 is not allowed"},
        {"a,IP:1.2.3.4", "'a,IP:1.2.3.4': byte 1"},
        {"a b", "byte 1"},
        {"../etc", "byte 0"},
        {"a/b", "byte 1"},
        {"caf\xc3\xa9", "'caf\\xc3\\xa9': byte 3"},
        {"x\ny", "'x\\x0ay'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gb_pki_check_name(bad[i].name, "client name", &err), GB_EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("'%s': got '%s', want '%s'", bad[i].name, err.msg, bad[i].msg);
    }
    assert_int_equal(gb_pki_check_name(NULL, "coordinator name", &err), GB_EINVAL);
    assert_string_equal(err.msg, "coordinator name is missing");
    assert_int_equal(gb_pki_check_name("ok", "x", NULL), 0);
}

/* ---- keys ------------------------------------------------------------------- */

static void test_keys(void **state)
{
    (void)state;
    gb_error_t err;
    char *tmp = gb_test_mkdtemp();
    char *path = gb_test_path(tmp, "k.key");
    EVP_PKEY *key = gb_pki_key_new(&err);
    assert_non_null(key);
    assert_string_equal(gb_pki_key_type(key), "P-256");

    /* 0600 whatever the umask, and the key reads back. */
    mode_t old = umask(0);
    assert_int_equal(gb_pki_key_save(path, key, &err), 0);
    umask(old);
    assert_int_equal(gb_test_mode(path), 0600);
    EVP_PKEY *back = gb_pki_key_load(path, &err);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(key, back), 1);
    uint8_t h1[32], h2[32];
    assert_int_equal(gb_pki_key_sha256(key, h1, &err), 0);
    assert_int_equal(gb_pki_key_sha256(back, h2, &err), 0);
    assert_memory_equal(h1, h2, 32);
    /* The fingerprint is SHA-256 of the SubjectPublicKeyInfo. */
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(key, &spki);
    unsigned char want[32];
    unsigned int wlen = 0;
    assert_true(EVP_Digest(spki, (size_t)n, want, &wlen, EVP_sha256(), NULL));
    assert_memory_equal(h1, want, 32);
    OPENSSL_free(spki);
    EVP_PKEY *other = gb_pki_key_new(&err);
    assert_int_equal(gb_pki_key_sha256(other, h2, &err), 0);
    assert_memory_not_equal(h1, h2, 32);

    /* DER round trip; trailing bytes, junk, empty and oversized refused. */
    unsigned char *der = NULL;
    int dlen = i2d_PrivateKey(key, &der);
    assert_true(dlen > 0);
    EVP_PKEY *from_der = gb_pki_key_from_der(der, (size_t)dlen, &err);
    assert_non_null(from_der);
    assert_int_equal(EVP_PKEY_eq(key, from_der), 1);
    EVP_PKEY_free(from_der);
    uint8_t *longer = malloc((size_t)dlen + 1);
    memcpy(longer, der, (size_t)dlen);
    longer[dlen] = 0;
    assert_null(gb_pki_key_from_der(longer, (size_t)dlen + 1, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_non_null(strstr(err.msg, "1 trailing bytes"));
    assert_null(gb_pki_key_from_der(der, (size_t)dlen / 2, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_null(gb_pki_key_from_der(der, 0, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_null(gb_pki_key_from_der(der, GB_PKI_MAX_DER + 1, &err));
    assert_int_equal(err.code, GB_ERANGE);
    free(longer);
    OPENSSL_free(der);

    /* Ed25519 is accepted; P-384 is not. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_string_equal(gb_pki_key_type(ed), "Ed25519");
    char *ed_path = gb_test_path(tmp, "ed.key");
    assert_int_equal(gb_pki_key_save(ed_path, ed, &err), 0);
    EVP_PKEY *ed_back = gb_pki_key_load(ed_path, &err);
    assert_non_null(ed_back);
    EVP_PKEY_free(ed_back);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_null(gb_pki_key_type(p384));
    assert_null(gb_pki_key_type(NULL));
    char *p384_path = gb_test_path(tmp, "p384.key");
    assert_int_equal(gb_pki_key_save(p384_path, p384, &err), 0);
    assert_null(gb_pki_key_load(p384_path, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "is not accepted"));

    /* An encrypted key fails without prompting. */
    char *enc_path = gb_test_path(tmp, "enc.key");
    FILE *fp = fopen(enc_path, "w");
    assert_non_null(fp);
    assert_true(PEM_write_PKCS8PrivateKey(fp, key, EVP_aes_256_cbc(), "pw", 2, NULL, NULL));
    fclose(fp);
    assert_null(gb_pki_key_load(enc_path, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_non_null(strstr(err.msg, "not an unencrypted PEM private key"));

    /* Not a key, missing, NULL. */
    char *junk = gb_test_write_file(tmp, "junk.key", "hello\n", 6);
    assert_null(gb_pki_key_load(junk, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_non_null(strstr(err.msg, junk));
    char *missing = gb_test_path(tmp, "missing.key");
    assert_null(gb_pki_key_load(missing, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_null(gb_pki_key_load(NULL, &err));
    assert_int_equal(gb_pki_key_save(NULL, key, &err), GB_EINVAL);
    /* Writing into a missing directory fails and leaves nothing. */
    char *nodir = gb_test_path(tmp, "no/such.key");
    assert_int_equal(gb_pki_key_save(nodir, key, &err), GB_EIO);

    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(other);
    EVP_PKEY_free(back);
    EVP_PKEY_free(key);
    free(nodir);
    free(missing);
    free(junk);
    free(enc_path);
    free(p384_path);
    free(ed_path);
    free(path);
    gb_test_rmtree(tmp);
    free(tmp);
}

/* ---- certificates, CSRs, CRLs -------------------------------------------- */

static void test_cert_encodings(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    X509 *ca = gb_pki_cert_load(f.ca_crt, &err);
    assert_non_null(ca);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(gb_pki_cert_to_der(ca, &der, &len, &err), 0);
    X509 *back = gb_pki_cert_from_der(der, len, &err);
    assert_non_null(back);
    assert_int_equal(X509_cmp(ca, back), 0);
    X509_free(back);

    /* Every truncation and a trailing byte are refused. */
    for (size_t cut = 1; cut < len; cut++) {
        assert_null(gb_pki_cert_from_der(der, cut, &err));
        assert_int_equal(err.code, GB_EFORMAT);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_null(gb_pki_cert_from_der(longer, len + 1, &err));
    assert_non_null(strstr(err.msg, "trailing"));
    assert_null(gb_pki_cert_from_der(der, GB_PKI_MAX_DER + 1, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_null(gb_pki_cert_from_der(NULL, 3, &err));
    assert_int_equal(err.code, GB_EINVAL);

    /* save -> load, mode 0644. */
    char *copy = gb_test_path(f.tmp, "copy.crt");
    assert_int_equal(gb_pki_cert_save(copy, ca, &err), 0);
    assert_int_equal(gb_test_mode(copy), 0644);
    back = gb_pki_cert_load(copy, &err);
    assert_non_null(back);
    assert_int_equal(X509_cmp(ca, back), 0);
    X509_free(back);
    assert_int_equal(gb_pki_cert_save(NULL, ca, &err), GB_EINVAL);

    /* Loading something else, or nothing. */
    char *key_path = gb_test_path(f.dir, GB_CA_COORD_KEY_FILE);
    assert_null(gb_pki_cert_load(key_path, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_non_null(strstr(err.msg, "is not a PEM certificate"));
    assert_null(gb_pki_cert_load(NULL, &err));
    char *missing = gb_test_path(f.tmp, "none.crt");
    assert_null(gb_pki_cert_load(missing, &err));
    assert_int_equal(err.code, GB_EIO);

    /* Names: the CA's CN has a space and is refused as a name. */
    char name[GB_PKI_NAME_MAX + 1];
    assert_int_equal(gb_pki_cert_name(ca, name, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "'test CA'"));
    char *coord_path = gb_test_path(f.dir, GB_CA_COORD_CERT_FILE);
    X509 *coord = gb_pki_cert_load(coord_path, &err);
    assert_int_equal(gb_pki_cert_name(coord, name, &err), 0);
    assert_string_equal(name, "coord");

    X509_free(coord);
    free(coord_path);
    free(missing);
    free(key_path);
    free(copy);
    free(longer);
    gb_free(der);
    X509_free(ca);
    s_fix_free(&f);
}

/* Self-signed certificate with the given subject CNs (for name refusals). */
static X509 *s_cert_with_cns(EVP_PKEY *key, const char *cn1, const char *cn2, int cn1_len)
{
    X509 *c = X509_new();
    X509_NAME *n = X509_NAME_new();
    if (cn1)
        assert_true(X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC,
                                               (const unsigned char *)cn1, cn1_len, -1, 0));
    if (cn2)
        assert_true(X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC,
                                               (const unsigned char *)cn2, -1, -1, 0));
    if (!cn1 && !cn2)
        assert_true(X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_ASC,
                                               (const unsigned char *)"o", -1, -1, 0));
    assert_true(X509_set_subject_name(c, n));
    assert_true(X509_set_issuer_name(c, n));
    assert_true(X509_set_pubkey(c, key));
    ASN1_TIME_set(X509_getm_notBefore(c), time(NULL));
    ASN1_TIME_set(X509_getm_notAfter(c), time(NULL) + DAY);
    assert_true(X509_sign(c, key, EVP_sha256()) > 0);
    X509_NAME_free(n);
    return c;
}

static void test_cert_name_refusals(void **state)
{
    (void)state;
    gb_error_t err;
    EVP_PKEY *key = gb_pki_key_new(&err);
    char name[GB_PKI_NAME_MAX + 1];
    X509 *none = s_cert_with_cns(key, NULL, NULL, -1);
    assert_int_equal(gb_pki_cert_name(none, name, &err), GB_EFORMAT);
    assert_string_equal(err.msg, "certificate has no common name (CN)");
    X509 *two = s_cert_with_cns(key, "a", "b", -1);
    assert_int_equal(gb_pki_cert_name(two, name, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "more than one common name"));
    X509 *nul = s_cert_with_cns(key, "ab\0cd", NULL, 5);
    assert_int_equal(gb_pki_cert_name(nul, name, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "embedded NUL"));
    X509 *bad = s_cert_with_cns(key, "a;b", NULL, -1);
    assert_int_equal(gb_pki_cert_name(bad, name, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "certificate: common name 'a;b'"));
    X509_free(bad);
    X509_free(nul);
    X509_free(two);
    X509_free(none);
    EVP_PKEY_free(key);
}

static void test_csr_encodings(void **state)
{
    (void)state;
    gb_error_t err;
    char *tmp = gb_test_mkdtemp();
    EVP_PKEY *key = gb_pki_key_new(&err);
    X509_REQ *req = gb_pki_csr_new(key, "client-7", &err);
    assert_non_null(req);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    assert_int_equal(EVP_PKEY_eq(pub, key), 1);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    uint8_t *der = NULL;
    size_t len = 0;
    assert_int_equal(gb_pki_csr_to_der(req, &der, &len, &err), 0);
    X509_REQ *back = gb_pki_csr_from_der(der, len, &err);
    assert_non_null(back);
    X509_REQ_free(back);
    for (size_t cut = 1; cut < len; cut++)
        assert_null(gb_pki_csr_from_der(der, cut, &err));
    assert_null(gb_pki_csr_from_der(der, GB_PKI_MAX_DER + 1, &err));
    assert_int_equal(err.code, GB_ERANGE);

    /* PEM file. */
    char *path = gb_test_path(tmp, "req.pem");
    FILE *fp = fopen(path, "w");
    assert_true(PEM_write_X509_REQ(fp, req));
    fclose(fp);
    back = gb_pki_csr_load(path, &err);
    assert_non_null(back);
    X509_REQ_free(back);
    char *junk = gb_test_write_file(tmp, "junk.pem", "x", 1);
    assert_null(gb_pki_csr_load(junk, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_null(gb_pki_csr_load(NULL, &err));

    /* Bad names and keys are refused before anything is signed. */
    assert_null(gb_pki_csr_new(key, "a b", &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_pki_csr_new(NULL, "a", &err));
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_null(gb_pki_csr_new(p384, "a", &err));
    assert_int_equal(err.code, GB_EINVAL);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509_REQ *edreq = gb_pki_csr_new(ed, "ed-client", &err);
    assert_non_null(edreq);
    assert_int_equal(X509_REQ_verify(edreq, ed), 1);
    X509_REQ_free(edreq);

    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
    free(junk);
    free(path);
    gb_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    gb_test_rmtree(tmp);
    free(tmp);
}

static void test_crl_encodings(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    X509_CRL *crl = gb_pki_crl_load(f.crl, &err);
    assert_non_null(crl);
    /* No revoked entries: OpenSSL keeps no stack at all. */
    assert_true(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0);
    assert_non_null(X509_CRL_get0_nextUpdate(crl));
    unsigned char *der = NULL;
    int n = i2d_X509_CRL(crl, &der);
    assert_true(n > 0);
    X509_CRL *back = gb_pki_crl_from_der(der, (size_t)n, &err);
    assert_non_null(back);
    X509_CRL_free(back);
    assert_null(gb_pki_crl_from_der(der, (size_t)n - 1, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_null(gb_pki_crl_from_der(der, 0, &err));
    assert_int_equal(err.code, GB_ERANGE);
    assert_null(gb_pki_crl_load(f.ca_crt, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_null(gb_pki_crl_load(NULL, &err));
    OPENSSL_free(der);
    X509_CRL_free(crl);
    s_fix_free(&f);
}

/* ---- the CA ------------------------------------------------------------------ */

static void test_ca_init_files(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    assert_int_equal(gb_test_mode(f.dir), 0700);
    const char *secret[] = {GB_CA_KEY_FILE, GB_CA_COORD_KEY_FILE, GB_CA_REGISTRY_FILE};
    for (int i = 0; i < 3; i++) {
        char *p = gb_test_path(f.dir, secret[i]);
        assert_int_equal(gb_test_mode(p), 0600);
        free(p);
    }
    const char *public_files[] = {GB_CA_CERT_FILE, GB_CA_COORD_CERT_FILE, GB_CA_CRL_FILE};
    for (int i = 0; i < 3; i++) {
        char *p = gb_test_path(f.dir, public_files[i]);
        assert_int_equal(gb_test_mode(p), 0644);
        free(p);
    }
    /* The CA: self-signed, CA:TRUE critical, keyCertSign + cRLSign, CN "<fed> CA". */
    X509 *ca = gb_pki_cert_load(f.ca_crt, &err);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(X509_get_extension_flags(ca) & EXFLAG_SS);
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "test CA");

    /* The coordinator: chains to the CA under its name; serverAuth and the
     * publication-signing mark, no clientAuth. */
    char *coord_path = gb_test_path(f.dir, GB_CA_COORD_CERT_FILE);
    X509 *coord = gb_pki_cert_load(coord_path, &err);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, coord, "coord", &err), 0);
    assert_int_equal(X509_get_extended_key_usage(coord) & (XKU_SSL_SERVER | XKU_SSL_CLIENT),
                     XKU_SSL_SERVER);
    assert_true(gb_pki_cert_signs_publications(coord));
    assert_false(gb_pki_cert_signs_publications(NULL));
    assert_int_equal(X509_get_key_usage(coord), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(coord), 0);
    /* Its key is the one in coordinator.key. */
    char *coord_key = gb_test_path(f.dir, GB_CA_COORD_KEY_FILE);
    EVP_PKEY *k = gb_pki_key_load(coord_key, &err);
    assert_int_equal(X509_check_private_key(coord, k), 1);
    EVP_PKEY_free(k);

    /* The registry holds the coordinator. */
    assert_int_equal(gb_ca_count(f.ca), 1);
    const gb_ca_entry_t *e = gb_ca_entry(f.ca, 0);
    assert_string_equal(e->name, "coord");
    assert_string_equal(gb_ca_entry_status(f.ca, e), "valid");
    assert_true(e->not_after - e->not_before == 30 * DAY + GB_PKI_BACKDATE_S);
    assert_null(gb_ca_entry(f.ca, 1));
    assert_string_equal(gb_ca_coordinator_name(f.ca), "coord");
    assert_string_equal(gb_ca_dir(f.ca), f.dir);

    /* A second init into the same directory is refused and changes nothing. */
    size_t before_len;
    uint8_t *before = gb_test_read(f.ca_crt, &before_len);
    assert_int_equal(gb_ca_init(f.dir, "test", "coord", 30, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "is not empty"));
    size_t after_len;
    uint8_t *after = gb_test_read(f.ca_crt, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    gb_free(before);
    gb_free(after);

    X509_free(coord);
    X509_free(ca);
    free(coord_key);
    free(coord_path);
    s_fix_free(&f);
}

static void test_ca_init_options_and_refusals(void **state)
{
    (void)state;
    gb_error_t err;
    char *tmp = gb_test_mkdtemp();
    /* An existing empty directory is used and made private. */
    char *empty = gb_test_path(tmp, "empty");
    assert_int_equal(mkdir(empty, 0755), 0);
    assert_int_equal(gb_ca_init(empty, "fed", "10.0.0.5", 2, &err), 0);
    assert_int_equal(gb_test_mode(empty), 0700);
    char *coord_path = gb_test_path(empty, GB_CA_COORD_CERT_FILE);
    X509 *coord = gb_pki_cert_load(coord_path, &err);
    /* An IP-named coordinator has an IP SAN too. */
    assert_int_equal(X509_check_ip_asc(coord, "10.0.0.5", 0), 1);
    assert_int_equal(X509_check_host(coord, "10.0.0.5", 0, 0, NULL), 1);
    X509_free(coord);
    free(coord_path);

    char *d = gb_test_path(tmp, "d");
    assert_int_equal(gb_ca_init(d, "has space", "c", 2, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "federation name 'has space'"));
    assert_int_equal(gb_ca_init(d, "f", "bad/name", 2, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "coordinator name 'bad/name'"));
    assert_int_equal(gb_ca_init(d, "f", "c", 0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "validity of 0 days"));
    assert_int_equal(gb_ca_init(d, "f", "c", GB_PKI_MAX_DAYS + 1, &err), GB_EINVAL);
    assert_int_equal(gb_ca_init(NULL, "f", "c", 1, &err), GB_EINVAL);
    assert_false(gb_test_exists(d));
    char *deep = gb_test_path(tmp, "no/such/dir");
    assert_int_equal(gb_ca_init(deep, "f", "c", 1, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "cannot create CA directory"));

    /* gb_ca_open refusals. */
    assert_null(gb_ca_open(d, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, "run 'ca init' first"));
    assert_null(gb_ca_open(NULL, &err));
    char *key = gb_test_path(empty, GB_CA_KEY_FILE);
    assert_int_equal(chmod(key, 0640), 0);
    assert_null(gb_ca_open(empty, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "mode 0640"));
    assert_int_equal(chmod(key, 0600), 0);

    /* A damaged registry stops the CA, naming the line. */
    char *reg = gb_test_path(empty, GB_CA_REGISTRY_FILE);
    size_t good_len;
    uint8_t *good = gb_test_read(reg, &good_len);
    struct {
        const char *text, *msg;
    } bad[] = {
        {"", "empty"},
        {"# something else\n", "not a glassbox CA registry"},
        {"# glassbox CA registry, version 1\nxyz\n", "line 2: expected 6 fields"},
        {"# glassbox CA registry, version 1\n00 a 1 2 0 "
         "0000000000000000000000000000000000000000000000000000000000000000\n",
         "line 2: serial is not 32 hex digits"},
        {"# glassbox CA registry, version 1\n0000000000000000000000000000000a a/b 1 2 0 "
         "0000000000000000000000000000000000000000000000000000000000000000\n",
         "line 2: name 'a/b'"},
        {"# glassbox CA registry, version 1\n0000000000000000000000000000000a a 5 2 0 "
         "0000000000000000000000000000000000000000000000000000000000000000\n",
         "line 2: bad times"},
        {"# glassbox CA registry, version 1\n0000000000000000000000000000000a a 1 2 -1 "
         "0000000000000000000000000000000000000000000000000000000000000000\n",
         "line 2: bad times"},
        {"# glassbox CA registry, version 1\n0000000000000000000000000000000a a 1 2 0 abc\n",
         "line 2: key hash"},
        {"# glassbox CA registry, version 1\n0000000000000000000000000000000a a 1 2 0 "
         "0000000000000000000000000000000000000000000000000000000000000000",
         "not terminated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gb_file_write_atomic(reg, bad[i].text, strlen(bad[i].text), 0600, &err),
                         0);
        assert_null(gb_ca_open(empty, &err));
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: got '%s', want '%s'", i, err.msg, bad[i].msg);
    }
    assert_int_equal(gb_file_write_atomic(reg, good, good_len, 0600, &err), 0);
    gb_ca_t *ca = gb_ca_open(empty, &err);
    assert_non_null(ca);
    gb_ca_destroy(&ca);
    gb_ca_destroy(&ca); /* NULL-safe */
    gb_ca_destroy(NULL);

    /* A ca.crt that is not the CA key's certificate. */
    char *crt = gb_test_path(empty, GB_CA_CERT_FILE);
    char *coord_crt = gb_test_path(empty, GB_CA_COORD_CERT_FILE);
    size_t clen;
    uint8_t *c = gb_test_read(coord_crt, &clen);
    assert_int_equal(gb_file_write_atomic(crt, c, clen, 0644, &err), 0);
    assert_null(gb_ca_open(empty, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    assert_non_null(strstr(err.msg, "is not a CA certificate"));

    gb_free(c);
    free(coord_crt);
    free(crt);
    gb_free(good);
    free(reg);
    free(key);
    free(deep);
    free(d);
    free(empty);
    gb_test_rmtree(tmp);
    free(tmp);
}

static void test_ca_issue(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    assert_int_equal(gb_ca_issue(f.ca, "client-1", 10, out, &err), 0);
    assert_int_equal(gb_test_mode(out), 0700);
    char *key_path = gb_test_path(out, "client-1.key");
    char *crt_path = gb_test_path(out, "client-1.crt");
    assert_int_equal(gb_test_mode(key_path), 0600);
    assert_int_equal(gb_test_mode(crt_path), 0644);
    X509 *c = s_client_cert(&f, "client-1");
    EVP_PKEY *k = gb_pki_key_load(key_path, &err);
    assert_int_equal(X509_check_private_key(c, k), 1);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, c, "client-1", &err), 0);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, NULL, c, NULL, &err), 0);
    assert_int_equal(X509_get_extended_key_usage(c), XKU_SSL_CLIENT);
    assert_false(gb_pki_cert_signs_publications(c)); /* clientAuth only: never a signer */
    assert_int_equal(X509_get_key_usage(c), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(c), 0);
    assert_true(s_has_ext(c, NID_authority_key_identifier));
    assert_true(s_has_ext(c, NID_subject_key_identifier));
    /* Serial: 128 bits, the registry's. */
    assert_int_equal(gb_ca_count(f.ca), 2);
    const gb_ca_entry_t *e = gb_ca_entry(f.ca, 1);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    char *hex = BN_bn2hex(bn);
    assert_int_equal(strtoull(e->serial + 16, NULL, 16),
                     strtoull(hex + strlen(hex) - 16, NULL, 16));
    assert_true(BN_num_bits(bn) >= 112 && BN_num_bits(bn) <= 127);
    OPENSSL_free(hex);
    BN_free(bn);
    uint8_t h[32];
    char hh[65];
    assert_int_equal(gb_pki_key_sha256(k, h, &err), 0);
    for (int i = 0; i < 32; i++)
        snprintf(hh + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(e->key_sha256, hh);
    assert_int_equal(e->revoked_at, 0);

    /* Refusals: name held, coordinator's name, bad name, bad days. */
    assert_int_equal(gb_ca_issue(f.ca, "client-1", 10, out, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "already holds a valid certificate"));
    assert_non_null(strstr(err.msg, "revoke it first"));
    /* Names reserved for servers: the coordinator's in any case and with a
     * trailing dot, localhost names, IPv4 addresses. */
    static const char *const reserved[] = {"coord", "COORD", "Coord.", "coord..", "localhost",
                                           "LocalHost", "a.localhost", "127.0.0.1",
                                           "10.0.0.1."};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        int rc = gb_ca_issue(f.ca, reserved[i], 10, out, &err);
        if (rc != GB_EPROTO || !strstr(err.msg, "reserved"))
            fail_msg("'%s': %d %s", reserved[i], rc, err.msg);
        assert_int_equal(gb_ca_check_client_name(f.ca, reserved[i], &err), GB_EPROTO);
    }
    assert_non_null(strstr(err.msg, "IP address"));
    assert_int_equal(gb_ca_check_client_name(f.ca, "COORD", &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "coordinator's name 'coord'"));
    /* Near misses are ordinary names. */
    assert_int_equal(gb_ca_check_client_name(f.ca, "coord-2", &err), 0);
    assert_int_equal(gb_ca_check_client_name(f.ca, "localhostx", &err), 0);
    assert_int_equal(gb_ca_check_client_name(f.ca, "1.2.3", &err), 0);
    assert_int_equal(gb_ca_check_client_name(f.ca, "x y", &err), GB_EINVAL);
    assert_int_equal(gb_ca_issue(f.ca, "x y", 10, out, &err), GB_EINVAL);
    assert_int_equal(gb_ca_issue(f.ca, "x", 0, out, &err), GB_EINVAL);
    assert_int_equal(gb_ca_issue(f.ca, "x", 1, NULL, &err), GB_EINVAL);
    char *nowhere = gb_test_path(f.tmp, "a/b/c");
    assert_int_equal(gb_ca_issue(f.ca, "x", 1, nowhere, &err), GB_EIO);
    assert_int_equal(gb_ca_count(f.ca), 2);
    assert_int_equal(gb_ca_reload(f.ca, &err), 0);
    assert_int_equal(gb_ca_count(f.ca), 2);

    /* Longer than the CA itself: cut at the CA's end. */
    assert_int_equal(gb_ca_issue(f.ca, "long", 400, out, &err), 0);
    X509 *lc = s_client_cert(&f, "long");
    X509 *ca = gb_pki_cert_load(f.ca_crt, &err);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(lc), X509_get0_notAfter(ca)), 0);
    X509_free(ca);
    X509_free(lc);

    /* A revoked name may be issued again by the administrator, and an
     * expired one too. */
    assert_int_equal(gb_ca_revoke(f.ca, "client-1", &err), 0);
    assert_int_equal(gb_ca_issue(f.ca, "client-1", 10, out, &err), 0);
    gb_ca_set_clock(f.ca, time(NULL) + 11 * DAY);
    assert_int_equal(gb_ca_issue(f.ca, "client-1", 1, out, &err), 0);
    /* Once the CA itself has expired nothing is issued. */
    gb_ca_set_clock(f.ca, time(NULL) + 31 * DAY);
    assert_int_equal(gb_ca_issue(f.ca, "late", 1, out, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "the CA certificate expired on"));
    gb_ca_set_clock(f.ca, 0);

    free(nowhere);
    EVP_PKEY_free(k);
    X509_free(c);
    free(crt_path);
    free(key_path);
    free(out);
    s_fix_free(&f);
}

static void test_verify_verdicts(void **state)
{
    (void)state;
    s_fix_t f, g;
    s_fix_init(&f);
    s_fix_init(&g);
    gb_error_t err;
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    assert_int_equal(gb_ca_issue(f.ca, "alice", 5, out, &err), 0);
    X509 *alice = s_client_cert(&f, "alice");
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, alice, "alice", &err), 0);

    /* Wrong name. */
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, alice, "bob", &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "hostname mismatch"));
    assert_non_null(strstr(err.msg, "CN=alice"));
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, alice, "bad name", &err), GB_EINVAL);

    /* Wrong CA, and a CRL from the wrong CA. */
    assert_int_equal(gb_pki_verify_cert(g.ca_crt, NULL, alice, "alice", &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "unable to get local issuer certificate"));
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, g.crl, alice, "alice", &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "unable to get certificate CRL"));

    /* Expired: later than its validity, or issued in the past. */
    time_t later = time(NULL) + 6 * DAY;
    assert_int_equal(gb_pki_verify_cert_at(f.ca_crt, NULL, alice, "alice", later, &err),
                     GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "certificate has expired"));
    assert_int_equal(gb_pki_verify_cert_at(f.ca_crt, NULL, alice, "alice", time(NULL) - DAY,
                                           &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "certificate is not yet valid"));
    gb_ca_set_clock(f.ca, time(NULL) - 3 * DAY);
    assert_int_equal(gb_ca_issue(f.ca, "old", 1, out, &err), 0);
    gb_ca_set_clock(f.ca, 0);
    X509 *old = s_client_cert(&f, "old");
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, NULL, old, "old", &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "certificate has expired"));
    /* The registry calls it expired too. */
    assert_string_equal(gb_ca_entry_status(f.ca, gb_ca_entry(f.ca, gb_ca_count(f.ca) - 1)),
                        "expired");

    /* Revoked: refused with the CRL, still fine without it. */
    assert_int_equal(gb_ca_revoke(f.ca, "alice", &err), 0);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, alice, "alice", &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "certificate revoked"));
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, NULL, alice, "alice", &err), 0);

    /* An expired CRL fails every check until `ca crl` re-signs it. */
    time_t crl_end = time(NULL) + (time_t)(GB_PKI_CRL_DAYS + 1) * DAY;
    assert_int_equal(gb_pki_verify_cert_at(f.ca_crt, f.crl, alice, NULL, crl_end, &err),
                     GB_EINTEGRITY);

    /* Missing files and arguments. */
    char *missing = gb_test_path(f.tmp, "none.pem");
    assert_int_equal(gb_pki_verify_cert(missing, NULL, alice, NULL, &err), GB_EIO);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, missing, alice, NULL, &err), GB_EIO);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, NULL, NULL, NULL, &err), GB_EINVAL);

    free(missing);
    X509_free(old);
    X509_free(alice);
    free(out);
    s_fix_free(&g);
    s_fix_free(&f);
}

static void test_sign_csr(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    EVP_PKEY *key = gb_pki_key_new(&err), *other = gb_pki_key_new(&err);
    size_t len;
    uint8_t *csr = s_csr(key, "edge-1", &len);
    uint8_t *der = NULL;
    size_t der_len = 0;
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 7, &der, &der_len, &err), 0);
    X509 *c = gb_pki_cert_from_der(der, der_len, &err);
    assert_non_null(c);
    assert_int_equal(X509_check_private_key(c, key), 1);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, c, "edge-1", &err), 0);
    assert_int_equal(X509_get_extended_key_usage(c), XKU_SSL_CLIENT);
    assert_int_equal(gb_ca_count(f.ca), 2);
    X509_free(c);
    gb_free(der);

    /* The same key again: re-issued. */
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 7, &der, &der_len, &err), 0);
    gb_free(der);
    assert_int_equal(gb_ca_count(f.ca), 3);

    /* The same name with another key: refused, nothing recorded. */
    size_t olen;
    uint8_t *ocsr = s_csr(other, "edge-1", &olen);
    assert_int_equal(gb_ca_sign_csr(f.ca, ocsr, olen, 7, &der, &der_len, &err), GB_EPROTO);
    assert_null(der);
    assert_non_null(strstr(err.msg, "enrollment refused: 'edge-1' already holds a valid "
                                    "certificate"));
    assert_non_null(strstr(err.msg, "different key"));
    assert_int_equal(gb_ca_count(f.ca), 3);
    /* ... but accepted once the old certificates have expired. */
    gb_ca_set_clock(f.ca, time(NULL) + 8 * DAY);
    assert_int_equal(gb_ca_sign_csr(f.ca, ocsr, olen, 7, &der, &der_len, &err), 0);
    gb_free(der);
    gb_ca_set_clock(f.ca, 0);

    /* CSR extensions are ignored: no CA:TRUE, no extra SAN. */
    size_t xlen;
    uint8_t *xcsr = s_raw_csr(key, key, "edge-2", NULL, "DNS:evil.example,IP:1.2.3.4", &xlen);
    assert_int_equal(gb_ca_sign_csr(f.ca, xcsr, xlen, 7, &der, &der_len, &err), 0);
    c = gb_pki_cert_from_der(der, der_len, &err);
    assert_int_equal(X509_check_ca(c), 0);
    assert_int_equal(X509_check_host(c, "evil.example", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(c, "1.2.3.4", 0), 0);
    assert_int_equal(X509_check_host(c, "edge-2", 0, 0, NULL), 1);
    X509_free(c);
    gb_free(der);
    gb_free(xcsr);
    size_t n_before = gb_ca_count(f.ca);

    /* Refusals, each changing nothing. */
    struct {
        uint8_t *der;
        size_t len;
        int code;
        const char *msg;
    } bad[10];
    int nb = 0;
    bad[nb].der = s_raw_csr(key, other, "edge-3", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EINTEGRITY, bad[nb++].msg = "signature does not verify";
    bad[nb].der = s_raw_csr(key, key, NULL, NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EFORMAT, bad[nb++].msg = "CSR has no common name";
    bad[nb].der = s_raw_csr(key, key, "a", "b", NULL, &bad[nb].len);
    bad[nb].code = GB_EFORMAT, bad[nb++].msg = "more than one common name";
    bad[nb].der = s_raw_csr(key, key, "../../etc/passwd", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EINVAL, bad[nb++].msg = "common name '../../etc/passwd'";
    bad[nb].der = s_raw_csr(key, key, "coord", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EPROTO, bad[nb++].msg = "'coord' is the coordinator's name";
    bad[nb].der = s_raw_csr(key, key, "COORD", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EPROTO, bad[nb++].msg = "'COORD' is the coordinator's name";
    bad[nb].der = s_raw_csr(key, key, "localhost", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EPROTO, bad[nb++].msg = "reserved for servers";
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    bad[nb].der = s_raw_csr(p384, p384, "edge-4", NULL, NULL, &bad[nb].len);
    bad[nb].code = GB_EINVAL, bad[nb++].msg = "is not accepted";
    /* A flipped byte in the signature. */
    bad[nb].der = s_csr(key, "edge-5", &bad[nb].len);
    bad[nb].der[bad[nb].len - 5] ^= 0x01;
    bad[nb].code = GB_EINTEGRITY, bad[nb++].msg = "signature does not verify";
    for (int i = 0; i < nb; i++) {
        /* gb_ca_check_csr refuses exactly what signing refuses, signing nothing */
        int crc = gb_ca_check_csr(f.ca, bad[i].der, bad[i].len, &err);
        if (crc != bad[i].code || !strstr(err.msg, bad[i].msg))
            fail_msg("check case %d: %d '%s', want %d '%s'", i, crc, err.msg, bad[i].code,
                     bad[i].msg);
        der = (uint8_t *)1;
        int rc = gb_ca_sign_csr(f.ca, bad[i].der, bad[i].len, 7, &der, &der_len, &err);
        if (rc != bad[i].code || !strstr(err.msg, bad[i].msg) ||
            !strstr(err.msg, "enrollment refused"))
            fail_msg("case %d: %d '%s', want %d '%s'", i, rc, err.msg, bad[i].code, bad[i].msg);
        assert_null(der);
        assert_int_equal(der_len, 0);
        gb_free(bad[i].der);
    }
    /* Every truncation and garbage. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = gb_ca_sign_csr(f.ca, csr, cut, 7, &der, &der_len, &err);
        assert_true(rc == GB_EFORMAT || rc == GB_ERANGE);
        assert_null(der);
    }
    static const uint8_t garbage[64] = {0x30, 0x82, 0xff, 0xff};
    assert_int_equal(gb_ca_sign_csr(f.ca, garbage, sizeof garbage, 7, &der, &der_len, &err),
                     GB_EFORMAT);
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, GB_PKI_MAX_DER + 1, 7, &der, &der_len, &err),
                     GB_ERANGE);
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 0, &der, &der_len, &err), GB_EINVAL);
    /* err may be NULL. */
    size_t nlen;
    uint8_t *ncsr = s_csr(key, "edge-6", &nlen);
    assert_int_equal(gb_ca_sign_csr(f.ca, ncsr, nlen, 7, &der, &der_len, NULL), 0);
    gb_free(der);
    gb_free(ncsr);
    n_before++;
    assert_int_equal(gb_ca_reload(f.ca, &err), 0);
    assert_int_equal(gb_ca_count(f.ca), n_before);

    /* A good CSR passes the check, which records nothing. */
    size_t glen;
    uint8_t *gcsr = s_csr(key, "edge-7", &glen);
    assert_int_equal(gb_ca_check_csr(f.ca, gcsr, glen, &err), 0);
    assert_int_equal(gb_ca_check_csr(f.ca, gcsr, glen, NULL), 0);
    gb_free(gcsr);
    assert_int_equal(gb_ca_reload(f.ca, &err), 0);
    assert_int_equal(gb_ca_count(f.ca), n_before);
    assert_int_equal(gb_ca_check_csr(f.ca, ocsr, olen, &err), 0); /* edge-1, its holder's key */
    assert_int_equal(gb_ca_check_csr(f.ca, csr, len, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "different key"));
    assert_int_equal(gb_ca_check_csr(f.ca, garbage, sizeof garbage, &err), GB_EFORMAT);

    /* A revoked client cannot come back through enrollment, with any key. */
    assert_int_equal(gb_ca_revoke(f.ca, "edge-1", &err), 0);
    assert_int_equal(gb_ca_check_csr(f.ca, csr, len, &err), GB_EPROTO);
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 7, &der, &der_len, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "'edge-1' was revoked"));
    assert_int_equal(gb_ca_sign_csr(f.ca, ocsr, olen, 7, &der, &der_len, &err), GB_EPROTO);
    /* Until the administrator issues it again. */
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    assert_int_equal(gb_ca_issue(f.ca, "edge-1", 3, out, &err), 0);
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 7, &der, &der_len, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "different key"));

    free(out);
    EVP_PKEY_free(p384);
    gb_free(ocsr);
    gb_free(csr);
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
    s_fix_free(&f);
}

static long s_crl_number(const char *path)
{
    gb_error_t err;
    X509_CRL *crl = gb_pki_crl_load(path, &err);
    assert_non_null(crl);
    ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    long v = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    X509_CRL_free(crl);
    return v;
}

static int s_crl_revoked_count(const char *path)
{
    gb_error_t err;
    X509_CRL *crl = gb_pki_crl_load(path, &err);
    int n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
    X509_CRL_free(crl);
    return n < 0 ? 0 : n;
}

static void test_revoke_and_crl(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    assert_int_equal(s_crl_number(f.crl), 1);
    assert_int_equal(gb_ca_issue(f.ca, "a", 5, out, &err), 0);
    assert_int_equal(gb_ca_issue(f.ca, "b", 5, out, &err), 0);
    assert_int_equal(gb_ca_revoke(f.ca, "a", &err), 0);
    assert_int_equal(s_crl_number(f.crl), 2);
    assert_int_equal(s_crl_revoked_count(f.crl), 1);
    assert_string_equal(gb_ca_entry_status(f.ca, gb_ca_entry(f.ca, 1)), "revoked");
    assert_true(gb_ca_entry(f.ca, 1)->revoked_at > 0);
    X509 *b = s_client_cert(&f, "b");
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, b, "b", &err), 0);

    /* Again: idempotent, the CRL is rewritten with the next number. */
    assert_int_equal(gb_ca_revoke(f.ca, "a", &err), 0);
    assert_int_equal(s_crl_number(f.crl), 3);
    assert_int_equal(s_crl_revoked_count(f.crl), 1);

    /* Re-issued and revoked again: both serials listed. */
    assert_int_equal(gb_ca_issue(f.ca, "a", 5, out, &err), 0);
    assert_int_equal(gb_ca_revoke(f.ca, "a", &err), 0);
    assert_int_equal(s_crl_revoked_count(f.crl), 2);

    assert_int_equal(gb_ca_revoke(f.ca, "nobody", &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "no certificate was ever issued to 'nobody'"));
    assert_int_equal(gb_ca_revoke(f.ca, "coord", &err), GB_EINVAL);
    assert_int_equal(gb_ca_revoke(f.ca, "no way", &err), GB_EINVAL);

    /* update_crl: next number, nextUpdate a year out, still verifies. */
    assert_int_equal(gb_ca_update_crl(f.ca, &err), 0);
    assert_int_equal(s_crl_number(f.crl), 5);
    X509_CRL *crl = gb_pki_crl_load(f.crl, &err);
    int day = 0, sec = 0;
    assert_true(ASN1_TIME_diff(&day, &sec, X509_CRL_get0_lastUpdate(crl),
                               X509_CRL_get0_nextUpdate(crl)));
    assert_int_equal(day, GB_PKI_CRL_DAYS);
    X509_CRL_free(crl);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, b, "b", &err), 0);

    /* A damaged crl.pem: revoke records the revocation, says the CRL failed,
     * and a later revoke (after the CRL is fixed) completes it. */
    size_t crl_len;
    uint8_t *crl_bytes = gb_test_read(f.crl, &crl_len);
    assert_int_equal(gb_file_write_atomic(f.crl, "junk", 4, 0644, &err), 0);
    assert_int_equal(gb_ca_revoke(f.ca, "b", &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "run 'ca revoke' again"));
    assert_int_equal(gb_ca_update_crl(f.ca, &err), GB_EFORMAT);
    assert_int_equal(gb_file_write_atomic(f.crl, crl_bytes, crl_len, 0644, &err), 0);
    assert_int_equal(gb_ca_revoke(f.ca, "b", &err), 0);
    assert_int_equal(gb_pki_verify_cert(f.ca_crt, f.crl, b, "b", &err), GB_EINTEGRITY);

    gb_free(crl_bytes);
    X509_free(b);
    free(out);
    s_fix_free(&f);
}

/* Two handles on one CA (the coordinator and an administrator's command):
 * each mutation re-reads the registry under the lock, so none is lost. */
static void test_two_handles(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    gb_ca_t *admin = gb_ca_open(f.dir, &err);
    assert_non_null(admin);
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    EVP_PKEY *key = gb_pki_key_new(&err);
    size_t len;
    uint8_t *csr = s_csr(key, "fleet-1", &len);
    uint8_t *der;
    size_t der_len;
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 5, &der, &der_len, &err), 0);
    gb_free(der);
    assert_int_equal(gb_ca_revoke(admin, "fleet-1", &err), 0);
    assert_int_equal(gb_ca_issue(admin, "manual", 5, out, &err), 0);
    /* The coordinator's stale view does not undo the revocation. */
    assert_int_equal(gb_ca_sign_csr(f.ca, csr, len, 5, &der, &der_len, &err), GB_EPROTO);
    uint8_t *csr2 = s_csr(key, "fleet-2", &len);
    assert_int_equal(gb_ca_sign_csr(f.ca, csr2, len, 5, &der, &der_len, &err), 0);
    gb_free(der);
    assert_int_equal(gb_ca_reload(admin, &err), 0);
    assert_int_equal(gb_ca_count(admin), 4);
    assert_string_equal(gb_ca_entry(admin, 1)->name, "fleet-1");
    assert_string_equal(gb_ca_entry_status(admin, gb_ca_entry(admin, 1)), "revoked");
    assert_string_equal(gb_ca_entry(admin, 2)->name, "manual");
    assert_string_equal(gb_ca_entry(admin, 3)->name, "fleet-2");
    gb_free(csr2);
    gb_free(csr);
    EVP_PKEY_free(key);
    free(out);
    gb_ca_destroy(&admin);
    s_fix_free(&f);
}

/* Every gb_malloc in the CA's constructors and mutations can fail: each
 * failure is reported as GB_ENOMEM and leaves the registry and files as
 * they were. */
static void test_alloc_failures(void **state)
{
    (void)state;
    s_fix_t f;
    s_fix_init(&f);
    gb_error_t err;
    char *out = gb_test_path(f.dir, GB_CA_CLIENTS_DIR);
    char *reg = gb_test_path(f.dir, GB_CA_REGISTRY_FILE);

    int points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        gb_ca_t *ca = gb_ca_open(f.dir, &err);
        gb_alloc_fail_after(0);
        if (ca) {
            gb_ca_destroy(&ca);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        points++;
    }
    assert_true(points >= 5);

    size_t reg_len;
    uint8_t *reg_before = gb_test_read(reg, &reg_len);
    points = 0;
    for (long k = 1;; k++) {
        gb_error_clear(&err);
        gb_alloc_fail_after(k);
        int rc = gb_ca_issue(f.ca, "alloc", 3, out, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        size_t now_len;
        uint8_t *now = gb_test_read(reg, &now_len);
        assert_int_equal(now_len, reg_len);
        assert_memory_equal(now, reg_before, reg_len);
        gb_free(now);
        char *k_path = gb_test_path(out, "alloc.key");
        assert_false(gb_test_exists(k_path));
        free(k_path);
        points++;
    }
    assert_true(points >= 4);
    gb_free(reg_before);

    EVP_PKEY *key = gb_pki_key_new(&err);
    size_t len;
    uint8_t *csr = s_csr(key, "alloc-csr", &len);
    reg_before = gb_test_read(reg, &reg_len);
    for (long k = 1;; k++) {
        uint8_t *der = NULL;
        size_t der_len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_ca_sign_csr(f.ca, csr, len, 3, &der, &der_len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            gb_free(der);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(der);
        size_t now_len;
        uint8_t *now = gb_test_read(reg, &now_len);
        /* The DER copy is the last allocation: its failure keeps the entry. */
        if (now_len != reg_len) {
            gb_free(now);
            assert_int_equal(gb_ca_revoke(f.ca, "alloc-csr", &err), 0);
            break;
        }
        assert_memory_equal(now, reg_before, reg_len);
        gb_free(now);
    }
    gb_free(reg_before);

    assert_int_equal(gb_ca_issue(f.ca, "victim", 3, out, &err), 0);
    long crl_before = s_crl_number(f.crl);
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_ca_revoke(f.ca, "victim", &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        /* Either nothing changed or only the CRL is missing (retry fixes it). */
        assert_int_equal(s_crl_number(f.crl), crl_before);
    }
    assert_true(s_crl_number(f.crl) == crl_before + 1);

    /* init: a failed init leaves no directory behind. */
    char *fresh = gb_test_path(f.tmp, "fresh");
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_ca_init(fresh, "f", "c", 1, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_false(gb_test_exists(fresh));
    }
    assert_true(gb_test_exists(fresh));

    free(fresh);
    gb_free(csr);
    EVP_PKEY_free(key);
    free(reg);
    free(out);
    s_fix_free(&f);
}

int main(void)
{
    /* Every refusal logs a warning; keep the test output readable. */
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_name),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_cert_encodings),
        cmocka_unit_test(test_cert_name_refusals),
        cmocka_unit_test(test_csr_encodings),
        cmocka_unit_test(test_crl_encodings),
        cmocka_unit_test(test_ca_init_files),
        cmocka_unit_test(test_ca_init_options_and_refusals),
        cmocka_unit_test(test_ca_issue),
        cmocka_unit_test(test_verify_verdicts),
        cmocka_unit_test(test_sign_csr),
        cmocka_unit_test(test_revoke_and_crl),
        cmocka_unit_test(test_two_handles),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
