/* Tests for net/signing: loading the coordinator's signer (and refusing keys
 * and certificates that cannot sign publications), signing, the round trip
 * through a SignedPublication, every refusal of gb_publication_verify
 * (tampered signature, tampered publication byte, every truncation, a
 * swapped signature, wrong algorithm, missing or foreign certificate, wrong
 * CA, wrong name, expired, a client's certificate, oversize), the files for
 * stock openssl checked by running the very commands README shows, and
 * allocation-failure injection. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "glassbox.pb-c.h"
#include "net/pki.h"
#include "net/signing.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define DAY 86400

/* A CA in tmp/<sub> with a client "alice"; the coordinator is "coord". */
typedef struct {
    char *tmp;      /* temporary directory */
    char *dir;      /* the CA directory */
    char *ca_crt;   /* its ca.crt */
    char *crl;      /* its crl.pem */
    char *key;      /* coordinator.key */
    char *crt;      /* coordinator.crt */
    gb_signer_t *s; /* the coordinator's signer */
} s_fix_t;

static void s_fix_init(s_fix_t *f, const char *tmp, const char *sub)
{
    gb_error_t err;
    f->tmp = strdup(tmp);
    f->dir = gb_test_path(tmp, sub);
    f->ca_crt = gb_test_path(f->dir, GB_CA_CERT_FILE);
    f->crl = gb_test_path(f->dir, GB_CA_CRL_FILE);
    f->key = gb_test_path(f->dir, GB_CA_COORD_KEY_FILE);
    f->crt = gb_test_path(f->dir, GB_CA_COORD_CERT_FILE);
    if (gb_ca_init(f->dir, "test", "coord", 30, &err))
        fail_msg("%s", err.msg);
    gb_ca_t *ca = gb_ca_open(f->dir, &err);
    assert_non_null(ca);
    char *out = gb_test_path(f->dir, "clients");
    assert_int_equal(gb_ca_issue(ca, "alice", 30, out, &err), 0);
    free(out);
    gb_ca_destroy(&ca);
    f->s = gb_signer_load(f->key, f->crt, &err);
    if (!f->s)
        fail_msg("%s", err.msg);
}

static void s_fix_free(s_fix_t *f)
{
    gb_signer_destroy(&f->s);
    free(f->tmp);
    free(f->dir);
    free(f->ca_crt);
    free(f->crl);
    free(f->key);
    free(f->crt);
}

/* A small packed Publication. */
static uint8_t *s_publication(uint64_t round, size_t *len)
{
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    Glassbox__Metric m = GLASSBOX__METRIC__INIT;
    Glassbox__Metric *mp = &m;
    m.name = "accuracy";
    m.value = 0.875;
    p.round = round;
    p.participants = 3;
    p.aggregator = "fedavg";
    p.published_unix_ms = 1700000000000ull;
    p.n_metrics = 1;
    p.metrics = &mp;
    *len = glassbox__publication__get_packed_size(&p);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(glassbox__publication__pack(&p, buf), *len);
    return buf;
}

/* Repacks a SignedPublication after edit() changed it. */
static uint8_t *s_edit(const uint8_t *buf, size_t len, void (*edit)(Glassbox__SignedPublication *),
                       size_t *out_len)
{
    Glassbox__SignedPublication *m = glassbox__signed_publication__unpack(NULL, len, buf);
    assert_non_null(m);
    edit(m);
    *out_len = glassbox__signed_publication__get_packed_size(m);
    uint8_t *out = malloc(*out_len);
    glassbox__signed_publication__pack(m, out);
    glassbox__signed_publication__free_unpacked(m, NULL);
    return out;
}

static void s_flip_sig(Glassbox__SignedPublication *m)
{
    m->signature.data[m->signature.len / 2] ^= 0x10;
}

static void s_flip_pub(Glassbox__SignedPublication *m)
{
    m->publication.data[0] ^= 0x01;
}

static void s_drop_cert(Glassbox__SignedPublication *m)
{
    m->signer_certificate.len = 0;
}

static void s_drop_sig(Glassbox__SignedPublication *m)
{
    m->signature.len = 0;
}

static void s_drop_pub(Glassbox__SignedPublication *m)
{
    m->publication.len = 0;
}

static void s_long_sig(Glassbox__SignedPublication *m)
{
    /* free_unpacked frees the fields with free(). */
    free(m->signature.data);
    m->signature.data = calloc(1, 300);
    m->signature.len = 300;
}

static void s_cut_cert(Glassbox__SignedPublication *m)
{
    m->signer_certificate.len -= 10;
}

static char s_alg[64];
static void s_set_alg(Glassbox__SignedPublication *m)
{
    free(m->signature_algorithm);
    m->signature_algorithm = strdup(s_alg);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_signer_load(void **state)
{
    (void)state;
    char *tmp = gb_test_mkdtemp();
    s_fix_t f;
    s_fix_init(&f, tmp, "ca");
    gb_error_t err;
    char *ca_key = gb_test_path(f.dir, GB_CA_KEY_FILE);
    char *alice_crt = gb_test_path(f.dir, "clients/alice.crt");
    char *alice_key = gb_test_path(f.dir, "clients/alice.key");

    /* A certificate that is not the key's. */
    assert_null(gb_signer_load(f.key, alice_crt, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "is not the certificate of the key"));
    /* The CA's certificate has no digitalSignature usage. */
    assert_null(gb_signer_load(ca_key, f.ca_crt, &err));
    assert_non_null(strstr(err.msg, "lacks the digitalSignature key usage"));
    /* Ed25519 keys are not this build's signing algorithm. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char *ed_key = gb_test_path(tmp, "ed.key");
    assert_int_equal(gb_pki_key_save(ed_key, ed, &err), 0);
    assert_null(gb_signer_load(ed_key, f.crt, &err));
    assert_non_null(strstr(err.msg, "P-256 key, not Ed25519"));
    /* Missing files, NULL. */
    char *missing = gb_test_path(tmp, "missing");
    assert_null(gb_signer_load(missing, f.crt, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_null(gb_signer_load(f.key, missing, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_null(gb_signer_load(NULL, f.crt, &err));
    assert_int_equal(err.code, GB_EINVAL);
    /* A client's key and certificate load (verify refuses what they sign). */
    gb_signer_t *s = gb_signer_load(alice_key, alice_crt, &err);
    assert_non_null(s);
    gb_signer_destroy(&s);
    assert_null(s);
    gb_signer_destroy(&s);
    gb_signer_destroy(NULL);

    free(missing);
    free(ed_key);
    EVP_PKEY_free(ed);
    free(alice_key);
    free(alice_crt);
    free(ca_key);
    s_fix_free(&f);
    gb_test_rmtree(tmp);
    free(tmp);
}

static void test_sign_and_verify(void **state)
{
    (void)state;
    char *tmp = gb_test_mkdtemp();
    s_fix_t f;
    s_fix_init(&f, tmp, "ca");
    gb_error_t err;
    size_t plen;
    uint8_t *pub = s_publication(7, &plen);

    /* The raw signature verifies with the certificate's key over SHA-256. */
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    assert_int_equal(gb_signer_sign(f.s, pub, plen, &sig, &sig_len, &err), 0);
    assert_true(sig_len >= 8 && sig_len <= 72);
    X509 *crt = gb_pki_cert_load(f.crt, &err);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(crt)),
                     1);
    assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, pub, plen), 1);
    EVP_MD_CTX_free(ctx);
    X509_free(crt);
    gb_free(sig);
    assert_int_equal(gb_signer_sign(f.s, NULL, 0, &sig, &sig_len, &err), 0);
    gb_free(sig);
    assert_int_equal(gb_signer_sign(NULL, pub, plen, &sig, &sig_len, &err), GB_EINVAL);

    /* Round trip: exactly the publication bytes come back. */
    uint8_t *signed_buf = NULL;
    size_t signed_len = 0;
    assert_int_equal(gb_publication_sign(f.s, pub, plen, &signed_buf, &signed_len, &err), 0);
    gb_verify_opts_t opts = {.ca_file = f.ca_crt, .crl_file = f.crl, .expected_name = "coord"};
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(gb_publication_verify(signed_buf, signed_len, &opts, &out, &out_len, &err),
                     0);
    assert_int_equal(out_len, plen);
    assert_memory_equal(out, pub, plen);
    gb_free(out);
    opts.crl_file = NULL;
    assert_int_equal(gb_publication_verify(signed_buf, signed_len, &opts, &out, &out_len, NULL),
                     0);
    gb_free(out);
    /* What travels: the algorithm name and the signer's DER certificate. */
    Glassbox__SignedPublication *m =
        glassbox__signed_publication__unpack(NULL, signed_len, signed_buf);
    assert_string_equal(m->signature_algorithm, GB_SIGNING_ALGORITHM);
    X509 *signer = gb_pki_cert_from_der(m->signer_certificate.data, m->signer_certificate.len,
                                        &err);
    char name[GB_PKI_NAME_MAX + 1];
    assert_int_equal(gb_pki_cert_name(signer, name, &err), 0);
    assert_string_equal(name, "coord");
    X509_free(signer);
    glassbox__signed_publication__free_unpacked(m, NULL);

    /* Signing refuses an empty or oversized publication. */
    uint8_t *none = NULL;
    size_t none_len = 0;
    assert_int_equal(gb_publication_sign(f.s, pub, 0, &none, &none_len, &err), GB_ERANGE);
    assert_int_equal(gb_publication_sign(f.s, pub, GB_PUBLICATION_MAX_BYTES + 1, &none,
                                         &none_len, &err), GB_ERANGE);
    assert_null(none);

    gb_free(signed_buf);
    free(pub);
    s_fix_free(&f);
    gb_test_rmtree(tmp);
    free(tmp);
}

/* Verifies and expects refusal with code and a message fragment. */
static void s_refused(const uint8_t *buf, size_t len, const gb_verify_opts_t *opts, int code,
                      const char *msg)
{
    gb_error_t err;
    uint8_t *out = (uint8_t *)1;
    size_t out_len = 99;
    int rc = gb_publication_verify(buf, len, opts, &out, &out_len, &err);
    if (rc != code || !strstr(err.msg, msg))
        fail_msg("got %d '%s', want %d '%s'", rc, err.msg, code, msg);
    assert_null(out);
    assert_int_equal(out_len, 0);
}

static void test_verify_refusals(void **state)
{
    (void)state;
    char *tmp = gb_test_mkdtemp();
    s_fix_t f, g;
    s_fix_init(&f, tmp, "ca");
    s_fix_init(&g, tmp, "other");
    gb_error_t err;
    size_t plen, plen2;
    uint8_t *pub = s_publication(7, &plen), *pub2 = s_publication(8, &plen2);
    uint8_t *sb, *sb2;
    size_t sl, sl2;
    assert_int_equal(gb_publication_sign(f.s, pub, plen, &sb, &sl, &err), 0);
    assert_int_equal(gb_publication_sign(f.s, pub2, plen2, &sb2, &sl2, &err), 0);
    gb_verify_opts_t opts = {.ca_file = f.ca_crt, .crl_file = f.crl, .expected_name = "coord"};

    struct {
        void (*edit)(Glassbox__SignedPublication *);
        int code;
        const char *msg;
    } edits[] = {
        {s_flip_sig, GB_EINTEGRITY, "does not verify"},
        {s_flip_pub, GB_EINTEGRITY, "does not verify"},
        {s_drop_cert, GB_EFORMAT, "no signer certificate"},
        {s_drop_sig, GB_EFORMAT, "signature of 0 bytes"},
        {s_drop_pub, GB_EFORMAT, "publication of 0 bytes"},
        {s_long_sig, GB_EFORMAT, "signature of 300 bytes"},
        {s_cut_cert, GB_EFORMAT, "signer certificate: DER certificate"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        size_t el;
        uint8_t *e = s_edit(sb, sl, edits[i].edit, &el);
        s_refused(e, el, &opts, edits[i].code, edits[i].msg);
        free(e);
    }
    /* Algorithms other than ours, and none. */
    snprintf(s_alg, sizeof s_alg, "ed25519");
    size_t el;
    uint8_t *e = s_edit(sb, sl, s_set_alg, &el);
    s_refused(e, el, &opts, GB_EPROTO, "algorithm 'ed25519' is not supported");
    free(e);
    snprintf(s_alg, sizeof s_alg, "x\x01y");
    e = s_edit(sb, sl, s_set_alg, &el);
    s_refused(e, el, &opts, GB_EPROTO, "algorithm 'x?y'");
    free(e);
    s_alg[0] = '\0';
    e = s_edit(sb, sl, s_set_alg, &el);
    s_refused(e, el, &opts, GB_EFORMAT, "has no algorithm");
    free(e);

    /* The signature of another publication. */
    Glassbox__SignedPublication *a = glassbox__signed_publication__unpack(NULL, sl, sb);
    Glassbox__SignedPublication *b = glassbox__signed_publication__unpack(NULL, sl2, sb2);
    ProtobufCBinaryData keep = a->signature;
    a->signature = b->signature;
    size_t swl = glassbox__signed_publication__get_packed_size(a);
    uint8_t *sw = malloc(swl);
    glassbox__signed_publication__pack(a, sw);
    a->signature = keep;
    s_refused(sw, swl, &opts, GB_EINTEGRITY, "does not verify");
    free(sw);
    glassbox__signed_publication__free_unpacked(b, NULL);
    glassbox__signed_publication__free_unpacked(a, NULL);

    /* Every truncation. */
    for (size_t cut = 0; cut < sl; cut++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        int rc = gb_publication_verify(sb, cut, &opts, &out, &out_len, &err);
        if (rc == 0)
            fail_msg("truncation at %zu accepted", cut);
        assert_null(out);
    }

    /* Garbage, oversize (refused before a byte is read), NULL options. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    s_refused(junk, sizeof junk, &opts, GB_EFORMAT, "not a signed publication");
    s_refused(sb, GB_SIGNED_PUBLICATION_MAX_BYTES + 1, &opts, GB_ERANGE, "over the limit");
    s_refused(sb, sl, NULL, GB_EINVAL, "NULL argument");
    gb_verify_opts_t no_name = {.ca_file = f.ca_crt};
    s_refused(sb, sl, &no_name, GB_EINVAL, "NULL argument");

    /* Trust: wrong CA, wrong name, expired signer, a client's certificate. */
    gb_verify_opts_t wrong_ca = {.ca_file = g.ca_crt, .expected_name = "coord"};
    s_refused(sb, sl, &wrong_ca, GB_EINTEGRITY, "unable to get local issuer certificate");
    gb_verify_opts_t wrong_name = {.ca_file = f.ca_crt, .expected_name = "other-coord"};
    s_refused(sb, sl, &wrong_name, GB_EINTEGRITY, "hostname mismatch");
    gb_verify_opts_t later = {.ca_file = f.ca_crt, .expected_name = "coord",
                              .at = time(NULL) + 31 * DAY};
    s_refused(sb, sl, &later, GB_EINTEGRITY, "certificate has expired");
    gb_verify_opts_t wrong_crl = {.ca_file = f.ca_crt, .crl_file = g.crl,
                                  .expected_name = "coord"};
    s_refused(sb, sl, &wrong_crl, GB_EINTEGRITY, "unable to get certificate CRL");
    char *alice_key = gb_test_path(f.dir, "clients/alice.key");
    char *alice_crt = gb_test_path(f.dir, "clients/alice.crt");
    gb_signer_t *alice = gb_signer_load(alice_key, alice_crt, &err);
    uint8_t *ab;
    size_t al;
    assert_int_equal(gb_publication_sign(alice, pub, plen, &ab, &al, &err), 0);
    gb_verify_opts_t as_alice = {.ca_file = f.ca_crt, .expected_name = "alice"};
    s_refused(ab, al, &as_alice, GB_EINTEGRITY, "not a coordinator's");
    /* The other CA's coordinator, trusted only by its own CA. */
    uint8_t *gb;
    size_t gl;
    assert_int_equal(gb_publication_sign(g.s, pub, plen, &gb, &gl, &err), 0);
    s_refused(gb, gl, &opts, GB_EINTEGRITY, "unable to get local issuer certificate");
    char *missing = gb_test_path(tmp, "missing.crt");
    gb_verify_opts_t no_ca = {.ca_file = missing, .expected_name = "coord"};
    s_refused(sb, sl, &no_ca, GB_EIO, "missing.crt");

    free(missing);
    gb_free(gb);
    gb_free(ab);
    gb_signer_destroy(&alice);
    free(alice_crt);
    free(alice_key);
    gb_free(sb2);
    gb_free(sb);
    free(pub2);
    free(pub);
    s_fix_free(&g);
    s_fix_free(&f);
    gb_test_rmtree(tmp);
    free(tmp);
}

/* Runs a shell command in dir and returns its combined output (malloc'd)
 * and exit status. */
static char *s_run(const char *dir, const char *cmd, int *status)
{
    char line[4096];
    snprintf(line, sizeof line, "cd '%s' && %s 2>&1", dir, cmd);
    FILE *p = popen(line, "r");
    assert_non_null(p);
    size_t cap = 4096, used = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + used, 1, cap - used - 1, p)) > 0) {
        used += n;
        if (cap - used < 2) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    out[used] = '\0';
    *status = pclose(p);
    return out;
}

/* The files and the openssl commands README shows. */
static void test_files_for_openssl(void **state)
{
    (void)state;
    char *tmp = gb_test_mkdtemp();
    s_fix_t f;
    s_fix_init(&f, tmp, "ca");
    gb_error_t err;
    char *pubdir = gb_test_path(tmp, "pub");
    assert_int_equal(mkdir(pubdir, 0755), 0);
    size_t plen;
    uint8_t *pub = s_publication(1, &plen);
    assert_int_equal(gb_publication_write_files(f.s, pubdir, 1, pub, plen, &err), 0);
    char *pub_path = gb_test_path(pubdir, "round-000001.pub");
    uint8_t *disk = NULL;
    size_t disk_len = 0;
    assert_int_equal(gb_file_read_all(pub_path, 1 << 20, &disk, &disk_len, &err), 0);
    assert_int_equal(disk_len, plen);
    assert_memory_equal(disk, pub, plen);
    gb_free(disk);
    char *ca_copy = gb_test_path(pubdir, "ca.crt");
    uint8_t *ca_bytes;
    size_t ca_len;
    assert_int_equal(gb_file_read_all(f.ca_crt, 1 << 20, &ca_bytes, &ca_len, &err), 0);
    assert_int_equal(gb_file_write_atomic(ca_copy, ca_bytes, ca_len, 0644, &err), 0);
    gb_free(ca_bytes);

    int st;
    char *o = s_run(pubdir, "openssl verify -CAfile ca.crt coordinator.crt", &st);
    if (st != 0 || !strstr(o, "coordinator.crt: OK"))
        fail_msg("openssl verify: %d %s", st, o);
    free(o);
    o = s_run(pubdir, "openssl x509 -in coordinator.crt -pubkey -noout > coordinator.pub.pem", &st);
    assert_int_equal(st, 0);
    free(o);
    const char *dgst = "openssl dgst -sha256 -verify coordinator.pub.pem "
                       "-signature round-000001.sig round-000001.pub";
    o = s_run(pubdir, dgst, &st);
    if (st != 0 || !strstr(o, "Verified OK"))
        fail_msg("openssl dgst: %d %s", st, o);
    free(o);

    /* One flipped byte and openssl says so. */
    uint8_t *bad = malloc(plen);
    memcpy(bad, pub, plen);
    bad[plen / 2] ^= 0x01;
    assert_int_equal(gb_file_write_atomic(pub_path, bad, plen, 0644, &err), 0);
    o = s_run(pubdir, dgst, &st);
    if (st == 0 || !strstr(o, "Verification failure"))
        fail_msg("openssl dgst on a flipped byte: %d %s", st, o);
    free(o);
    free(bad);

    /* The signer's name and purpose, as README's recipe checks them. */
    const char *named = "openssl verify -CAfile ca.crt -purpose sslserver "
                        "-verify_hostname coord coordinator.crt";
    o = s_run(pubdir, named, &st);
    if (st != 0 || !strstr(o, "coordinator.crt: OK"))
        fail_msg("%s: %d %s", named, st, o);
    free(o);
    o = s_run(pubdir, "openssl x509 -in coordinator.crt -noout -ext extendedKeyUsage", &st);
    if (st != 0 || !strstr(o, GB_PKI_PUBLICATION_OID))
        fail_msg("the publication-signing mark: %d %s", st, o);
    free(o);
    o = s_run(pubdir, "openssl verify -CAfile ca.crt -purpose sslserver "
                      "-verify_hostname other coordinator.crt", &st);
    assert_int_not_equal(st, 0);
    free(o);
    /* A client certificate under a case variant of the coordinator's name,
     * as a CA without the naming policy signed one: the recipe refuses it
     * (no serverAuth), and so does gb_publication_verify, even for a
     * publication its key really signed. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out evil.key && "
             "printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=clientAuth\nsubjectAltName=DNS:COORD\n' > evil.ext && "
             "openssl req -new -key evil.key -subj /CN=COORD -out evil.csr && "
             "openssl x509 -req -in evil.csr -CA ca.crt -CAkey '%s/ca.key' -CAcreateserial "
             "-days 2 -extfile evil.ext -out evil.crt",
             f.dir);
    o = s_run(pubdir, cmd, &st);
    if (st != 0)
        fail_msg("making the evil certificate: %s", o);
    free(o);
    o = s_run(pubdir, "openssl verify -CAfile ca.crt evil.crt", &st);
    assert_int_equal(st, 0); /* chain and signature alone: it passes */
    free(o);
    o = s_run(pubdir, "openssl verify -CAfile ca.crt -purpose sslserver "
                      "-verify_hostname coord evil.crt", &st);
    if (st == 0)
        fail_msg("the recipe accepted a client certificate: %s", o);
    free(o);
    char *evil_key = gb_test_path(pubdir, "evil.key"), *evil_crt = gb_test_path(pubdir, "evil.crt");
    gb_signer_t *evil = gb_signer_load(evil_key, evil_crt, &err);
    assert_non_null(evil);
    uint8_t *eb;
    size_t el;
    assert_int_equal(gb_publication_sign(evil, pub, plen, &eb, &el, &err), 0);
    gb_verify_opts_t trust = {.ca_file = f.ca_crt, .crl_file = f.crl, .expected_name = "coord"};
    uint8_t *got = NULL;
    size_t got_len = 0;
    assert_int_equal(gb_publication_verify(eb, el, &trust, &got, &got_len, &err),
                     GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "not a coordinator's"));
    assert_null(got);
    /* The same files written with its key: the signature itself is good. */
    assert_int_equal(gb_publication_write_files(evil, pubdir, 9, pub, plen, &err), 0);
    o = s_run(pubdir, "openssl x509 -in evil.crt -pubkey -noout > evil.pub.pem && "
                      "openssl dgst -sha256 -verify evil.pub.pem -signature round-000009.sig "
                      "round-000009.pub", &st);
    assert_int_equal(st, 0);
    free(o);
    gb_free(eb);
    gb_signer_destroy(&evil);
    free(evil_key);
    free(evil_crt);

    /* Six digits at least; more when needed. */
    assert_int_equal(gb_publication_write_files(f.s, pubdir, 1234567, pub, plen, &err), 0);
    char *big = gb_test_path(pubdir, "round-1234567.sig");
    assert_true(gb_test_exists(big));
    free(big);
    /* Refusals. */
    assert_int_equal(gb_publication_write_files(f.s, pubdir, 0, pub, plen, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "round must be >= 1"));
    assert_int_equal(gb_publication_write_files(f.s, pubdir, 2, pub, 0, &err), GB_ERANGE);
    char *nodir = gb_test_path(tmp, "no/such");
    assert_int_equal(gb_publication_write_files(f.s, nodir, 2, pub, plen, &err), GB_EIO);
    assert_int_equal(gb_publication_write_files(NULL, pubdir, 2, pub, plen, &err), GB_EINVAL);

    free(nodir);
    free(ca_copy);
    free(pub_path);
    free(pub);
    free(pubdir);
    s_fix_free(&f);
    gb_test_rmtree(tmp);
    free(tmp);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    char *tmp = gb_test_mkdtemp();
    s_fix_t f;
    s_fix_init(&f, tmp, "ca");
    gb_error_t err;
    int points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        gb_signer_t *s = gb_signer_load(f.key, f.crt, &err);
        gb_alloc_fail_after(0);
        if (s) {
            gb_signer_destroy(&s);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        points++;
    }
    assert_true(points >= 3);

    size_t plen;
    uint8_t *pub = s_publication(3, &plen);
    uint8_t *sb = NULL;
    size_t sl = 0;
    points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_publication_sign(f.s, pub, plen, &sb, &sl, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(sb);
        points++;
    }
    assert_true(points >= 2);

    gb_verify_opts_t opts = {.ca_file = f.ca_crt, .crl_file = f.crl, .expected_name = "coord"};
    points = 0;
    for (long k = 1;; k++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_publication_verify(sb, sl, &opts, &out, &out_len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_memory_equal(out, pub, plen);
            gb_free(out);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(out);
        points++;
    }
    assert_true(points >= 4);

    char *pubdir = gb_test_path(tmp, "pub");
    assert_int_equal(mkdir(pubdir, 0755), 0);
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_publication_write_files(f.s, pubdir, 5, pub, plen, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
    }
    free(pubdir);
    gb_free(sb);
    free(pub);
    s_fix_free(&f);
    gb_test_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signer_load),
        cmocka_unit_test(test_sign_and_verify),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_files_for_openssl),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
