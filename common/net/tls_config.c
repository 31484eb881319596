/* The TLS configuration shared by channels (gb_tls_t, see net/channel.h):
 * one SSL_CTX pinned to TLS 1.3 with mutual verification, and a trust store
 * that holds the federation CA and its revocation list and nothing else.
 *
 * Why it is shaped so: every handshake must be a full mutual one (no
 * tickets, no session cache) checked against the federation CA alone, never
 * the system store. The store lives beside the SSL_CTX rather than in it, so
 * that gb_tls_reload_crl can replace it while channels on other threads are
 * mid-handshake (tls_config.h). Files are read here with explicit PEM calls,
 * not OpenSSL's *_file helpers, so that an encrypted key never prompts on a
 * terminal and every failure names the file and OpenSSL's reason. The own
 * certificate is checked to chain to ca_file at start-up, which catches a
 * swapped or foreign certificate early; its time, purpose and revocation are
 * the peer's to judge at each handshake. */
#include "net/tls_config.h"
#include "net/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util/alloc.h"
#include "util/log.h"

/* Peer chains are leaf + CA today; room for two intermediates later. */
#define S_VERIFY_DEPTH 4

/* ---- files -------------------------------------------------------------- */

/* Every certificate in the PEM file at path (at least one, all CAs). */
static STACK_OF(X509) *s_read_ca_certs(const char *path, gb_error_t *err)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio) {
        gb_wire_openssl_error(err, GB_EIO, "ca_file '%s'", path);
        return NULL;
    }
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!certs) {
        BIO_free(bio);
        gb_error_set(err, GB_ENOMEM, "ca_file '%s': out of memory", path);
        return NULL;
    }
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            gb_error_set(err, GB_ENOMEM, "ca_file '%s': out of memory", path);
            goto fail;
        }
        if (X509_check_ca(x) == 0) {
            char name[256];
            X509_NAME_oneline(X509_get_subject_name(x), name, sizeof name);
            gb_error_set(err, GB_ECRYPTO, "ca_file '%s': certificate %d (%s) is not a CA", path,
                         sk_X509_num(certs), name);
            goto fail;
        }
    }
    /* The loop ends at "no start line" once the file is used up; anything
     * else, or no certificate at all, is a bad file. */
    unsigned long last = ERR_peek_last_error();
    if (sk_X509_num(certs) == 0 || ERR_GET_LIB(last) != ERR_LIB_PEM ||
        ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
        gb_wire_openssl_error(err, GB_EFORMAT, "ca_file '%s': no PEM certificate read", path);
        goto fail;
    }
    ERR_clear_error();
    BIO_free(bio);
    return certs;
fail:
    ERR_clear_error();
    BIO_free(bio);
    sk_X509_pop_free(certs, X509_free);
    return NULL;
}

/* Refuses to prompt for a passphrase: Glassbox keys are stored unencrypted
 * and 0600, and a daemon has no terminal. */
static int s_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(bool *)u = true;
    return -1;
}

static EVP_PKEY *s_read_key(const char *path, gb_error_t *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        gb_log_warn("key_file '%s' is readable by group or others (mode %03o): chmod 600 it",
                    path, (unsigned)(st.st_mode & 0777));
    BIO *bio = BIO_new_file(path, "r");
    if (!bio) {
        gb_wire_openssl_error(err, GB_EIO, "key_file '%s'", path);
        return NULL;
    }
    bool asked = false;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, s_no_passphrase, &asked);
    BIO_free(bio);
    if (!key) {
        if (asked) {
            ERR_clear_error();
            gb_error_set(err, GB_EFORMAT,
                         "key_file '%s' is encrypted; Glassbox reads unencrypted keys (mode 0600)",
                         path);
        } else {
            gb_wire_openssl_error(err, GB_EFORMAT, "key_file '%s': no PEM private key read", path);
        }
    }
    return key;
}

/* The CA in ca_certs that signed crl, or NULL. */
static X509 *s_crl_signer(STACK_OF(X509) *ca_certs, X509_CRL *crl)
{
    for (int i = 0; i < sk_X509_num(ca_certs); i++) {
        X509 *ca = sk_X509_value(ca_certs, i);
        if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
            X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
            return ca;
    }
    ERR_clear_error();
    return NULL;
}

/* Adds every CRL in the PEM file to store, each checked to be signed by a
 * CA in ca_certs and not past its nextUpdate (an expired list would make
 * OpenSSL refuse every peer: better said once, here). */
static int s_add_crls(X509_STORE *store, STACK_OF(X509) *ca_certs, const char *path,
                      int *n_revoked, gb_error_t *err)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio)
        return gb_wire_openssl_error(err, GB_EIO, "crl_file '%s'", path);
    int rc = 0, n_crls = 0;
    X509_CRL *crl;
    while (rc == 0 && (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        n_crls++;
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
        if (!s_crl_signer(ca_certs, crl)) {
            char name[256];
            X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof name);
            rc = gb_error_set(err, GB_ECRYPTO,
                              "crl_file '%s': CRL %d (issuer %s) is not signed by a CA in ca_file",
                              path, n_crls, name);
        } else if (next && X509_cmp_current_time(next) < 0) {
            struct tm tm;
            char when[32] = "?";
            if (ASN1_TIME_to_tm(next, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
            rc = gb_error_set(err, GB_ECRYPTO,
                              "crl_file '%s': CRL %d expired (its next update was due %s); "
                              "issue a fresh one",
                              path, n_crls, when);
        } else if (!X509_STORE_add_crl(store, crl)) {
            rc = gb_wire_openssl_error(err, GB_ECRYPTO, "crl_file '%s': adding CRL %d", path,
                                       n_crls);
        } else {
            STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
            *n_revoked += revoked ? sk_X509_REVOKED_num(revoked) : 0;
        }
        X509_CRL_free(crl);
    }
    if (rc == 0) {
        unsigned long last = ERR_peek_last_error();
        if (n_crls == 0 || ERR_GET_LIB(last) != ERR_LIB_PEM ||
            ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
            rc = gb_wire_openssl_error(err, GB_EFORMAT, "crl_file '%s': no PEM CRL read", path);
    }
    ERR_clear_error();
    BIO_free(bio);
    return rc;
}

/* A new store: the CA certificates, and the CRLs of crl_file (NULL: none)
 * with revocation checked for every certificate of every peer chain. */
static X509_STORE *s_store_new(STACK_OF(X509) *ca_certs, const char *crl_file, int *n_revoked,
                               gb_error_t *err)
{
    *n_revoked = 0;
    X509_STORE *store = X509_STORE_new();
    if (!store) {
        gb_wire_openssl_error(err, GB_ENOMEM, "trust store");
        return NULL;
    }
    for (int i = 0; i < sk_X509_num(ca_certs); i++) {
        if (!X509_STORE_add_cert(store, sk_X509_value(ca_certs, i))) {
            gb_wire_openssl_error(err, GB_ECRYPTO, "trust store: adding CA %d", i + 1);
            X509_STORE_free(store);
            return NULL;
        }
    }
    if (crl_file) {
        if (s_add_crls(store, ca_certs, crl_file, n_revoked, err) != 0 ||
            !X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL)) {
            if (err && err->code == 0)
                gb_wire_openssl_error(err, GB_ECRYPTO, "trust store: CRL flags");
            X509_STORE_free(store);
            return NULL;
        }
    }
    return store;
}

/* The own certificate must chain to ca_file (signatures only: see above). */
static int s_check_own_cert(gb_tls_t *tls, const char *cert_file, const char *ca_file,
                            gb_error_t *err)
{
    X509 *leaf = SSL_CTX_get0_certificate(tls->ctx);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(tls->ctx, &chain);
    X509_STORE *anchors = X509_STORE_new();
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    int rc = 0;
    if (!anchors || !vctx) {
        rc = gb_wire_openssl_error(err, GB_ENOMEM, "checking cert_file '%s'", cert_file);
        goto cleanup;
    }
    for (int i = 0; i < sk_X509_num(tls->ca_certs); i++)
        X509_STORE_add_cert(anchors, sk_X509_value(tls->ca_certs, i));
    if (!X509_STORE_CTX_init(vctx, anchors, leaf, chain)) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "checking cert_file '%s'", cert_file);
        goto cleanup;
    }
    X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(vctx) != 1) {
        char name[256];
        X509_NAME_oneline(X509_get_subject_name(leaf), name, sizeof name);
        ERR_clear_error();
        rc = gb_error_set(err, GB_ECRYPTO, "cert_file '%s' (%s) does not chain to ca_file '%s': %s",
                          cert_file, name, ca_file,
                          X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    }
cleanup:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(anchors);
    return rc;
}

/* ---- the configuration ------------------------------------------------- */

static int s_check_options(const gb_tls_options_t *o, gb_error_t *err)
{
    if (!o)
        return gb_error_set(err, GB_EINVAL, "gb_tls_new: NULL options");
    if (o->role != GB_TLS_SERVER && o->role != GB_TLS_CLIENT)
        return gb_error_set(err, GB_EINVAL, "gb_tls_new: role %d is neither server nor client",
                            (int)o->role);
    if (!o->ca_file || !o->ca_file[0])
        return gb_error_set(err, GB_EINVAL, "gb_tls_new: no ca_file (the federation CA)");
    if (!o->cert_file != !o->key_file)
        return gb_error_set(err, GB_EINVAL, "gb_tls_new: cert_file and key_file go together "
                                            "(cert_file %s, key_file %s)",
                            o->cert_file ? "set" : "NULL", o->key_file ? "set" : "NULL");
    if (o->role == GB_TLS_SERVER && !o->cert_file)
        return gb_error_set(err, GB_EINVAL, "gb_tls_new: a server needs cert_file and key_file");
    if (o->role == GB_TLS_CLIENT && o->allow_anonymous_peers)
        return gb_error_set(err, GB_EINVAL,
                            "gb_tls_new: allow_anonymous_peers is a server option; "
                            "a client always verifies the coordinator");
    return 0;
}

static int s_ctx_setup(gb_tls_t *tls, const gb_tls_options_t *o, gb_error_t *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx)
        return gb_wire_openssl_error(err, GB_ENOMEM, "SSL_CTX_new");
    tls->ctx = ctx;
    int verify = SSL_VERIFY_PEER;
    if (o->role == GB_TLS_SERVER && !o->allow_anonymous_peers)
        verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    /* No middlebox compatibility: the records travel inside ZeroMQ frames,
     * where no middlebox looks, so the dummy ChangeCipherSpec is waste. */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_num_tickets(ctx, 0) ||
        !SSL_CTX_set_purpose(ctx, o->role == GB_TLS_SERVER ? X509_PURPOSE_SSL_CLIENT
                                                            : X509_PURPOSE_SSL_SERVER))
        return gb_wire_openssl_error(err, GB_ECRYPTO, "configuring TLS 1.3");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
    SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, verify, NULL);
    SSL_CTX_set_verify_depth(ctx, S_VERIFY_DEPTH);
    if (!o->cert_file)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
        return gb_wire_openssl_error(err, GB_EFORMAT, "cert_file '%s'", o->cert_file);
    EVP_PKEY *key = s_read_key(o->key_file, err);
    if (!key)
        return err ? err->code : GB_EFORMAT;
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "key_file '%s' does not fit cert_file '%s'",
                                     o->key_file, o->cert_file);
    tls->has_cert = true;
    return s_check_own_cert(tls, o->cert_file, o->ca_file, err);
}

gb_tls_t *gb_tls_new(const gb_tls_options_t *opts, gb_error_t *err)
{
    if (s_check_options(opts, err) != 0)
        return NULL;
    gb_tls_t *tls = gb_calloc(1, sizeof *tls);
    if (!tls) {
        gb_error_set(err, GB_ENOMEM, "gb_tls_new: out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&tls->lock, NULL) != 0) {
        gb_free(tls);
        gb_error_set(err, GB_ENOMEM, "gb_tls_new: mutex");
        return NULL;
    }
    tls->role = opts->role;
    tls->allow_anonymous_peers = opts->allow_anonymous_peers;
    ERR_clear_error();
    int n_revoked = 0;
    int rc = 0;
    tls->ca_certs = s_read_ca_certs(opts->ca_file, err);
    if (!tls->ca_certs)
        rc = err ? err->code : GB_EFORMAT;
    if (rc == 0) {
        tls->store = s_store_new(tls->ca_certs, opts->crl_file, &n_revoked, err);
        if (!tls->store)
            rc = err ? err->code : GB_ECRYPTO;
    }
    if (rc == 0)
        rc = s_ctx_setup(tls, opts, err);
    if (rc != 0) {
        gb_log_warn("TLS configuration refused: %s", err ? err->msg : gb_strerror(rc));
        gb_tls_destroy(&tls);
        return NULL;
    }
    gb_log_debug("TLS %s configuration: CA '%s', %s, %s%d revoked",
                 opts->role == GB_TLS_SERVER ? "server" : "client", opts->ca_file,
                 opts->cert_file ? opts->cert_file : "no certificate (enrolling)",
                 opts->crl_file ? "CRL checked, " : "no CRL, ", n_revoked);
    return tls;
}

int gb_tls_reload_crl(gb_tls_t *tls, const char *crl_file, gb_error_t *err)
{
    if (!tls)
        return gb_error_set(err, GB_EINVAL, "gb_tls_reload_crl: NULL configuration");
    if (!crl_file || !crl_file[0])
        return gb_error_set(err, GB_EINVAL, "gb_tls_reload_crl: no crl_file");
    ERR_clear_error();
    int n_revoked = 0;
    X509_STORE *fresh = s_store_new(tls->ca_certs, crl_file, &n_revoked, err);
    if (!fresh) {
        int rc = err && err->code ? err->code : GB_ECRYPTO;
        gb_log_warn("revocation list not reloaded, the old one stays: %s",
                    err ? err->msg : gb_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&tls->lock);
    X509_STORE *old = tls->store;
    tls->store = fresh;
    pthread_mutex_unlock(&tls->lock);
    X509_STORE_free(old); /* channels hold their own references */
    gb_log_info("revocation list reloaded from '%s': %d certificate%s revoked", crl_file,
                n_revoked, n_revoked == 1 ? "" : "s");
    return 0;
}

int gb_tls_attach_store(gb_tls_t *tls, SSL *ssl)
{
    pthread_mutex_lock(&tls->lock);
    int ok = SSL_set1_verify_cert_store(ssl, tls->store) == 1;
    pthread_mutex_unlock(&tls->lock);
    return ok ? 0 : GB_ENOMEM;
}

X509_STORE *gb_tls_store_ref(gb_tls_t *tls)
{
    pthread_mutex_lock(&tls->lock);
    X509_STORE *store = X509_STORE_up_ref(tls->store) == 1 ? tls->store : NULL;
    pthread_mutex_unlock(&tls->lock);
    return store;
}

void gb_tls_destroy(gb_tls_t **tls)
{
    if (!tls || !*tls)
        return;
    gb_tls_t *t = *tls;
    SSL_CTX_free(t->ctx);
    X509_STORE_free(t->store);
    sk_X509_pop_free(t->ca_certs, X509_free);
    pthread_mutex_destroy(&t->lock);
    gb_free(t);
    *tls = NULL;
}
