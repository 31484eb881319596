/* The federation's PKI, second half (see pki.h): the CA of
 * `glassbox-coordinator ca` and of enrollment: making certificates and CRLs,
 * the registry of every certificate issued, and issuing, enrolling,
 * revoking. Keys, certificates and verification are the first half, pki.c;
 * pki.h is the one header of both, and pki_internal.h what this file
 * borrows from pki.c (the key-kind check, the signing digest, a subject's
 * CN, memory BIO output).
 *
 * Shape of the code: every certificate is made by one function, s_make_cert,
 * from a profile (CA, coordinator, client), so an enrolled client gets
 * byte-for-byte the same kind of certificate as an issued one and nothing of
 * a CSR but its key and name can leak into a certificate. Extensions are
 * built with X509V3_EXT_nconf_nid from strings assembled only from validated
 * names, so no ',' or ':' can smuggle in another SAN. The registry is a small
 * text file (util/table_file), parsed strictly: a damaged registry stops the
 * CA rather than being guessed at. Mutations take DIR/.lock
 * (util/lock_file) and re-read the registry under it. */
#include "net/pki.h"
#include "net/pki_internal.h"
#include "net/wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "util/alloc.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/lock_file.h"
#include "util/log.h"
#include "util/table_file.h"
#include "util/time.h"

#define S_REGISTRY_HEADER "# glassbox CA registry, version 1"
#define S_REGISTRY_COLUMNS "# serial name not_before not_after revoked_at key_sha256"
#define S_REGISTRY_MAX ((size_t)32 << 20)
#define S_PATH_MAX 4096

struct gb_ca {
    char *dir;                  /* CA directory as given */
    EVP_PKEY *key;              /* CA private key */
    X509 *cert;                 /* CA certificate */
    char coord[GB_PKI_NAME_MAX + 1]; /* coordinator's name (CN of coordinator.crt) */
    gb_ca_entry_t *entries;     /* registry, in file order (oldest first) */
    size_t n, cap;              /* entries used and allocated */
    time_t clock;               /* 0: real clock; else the CA's "now" */
};

typedef enum { S_PROFILE_CA, S_PROFILE_COORDINATOR, S_PROFILE_CLIENT } s_profile_t;

/* ---- paths ---------------------------------------------------------------- */

/* dir + "/" + name into out; GB_EINVAL if it does not fit. */
static int s_path(char *out, size_t cap, const char *dir, const char *name, const char *ext,
                  gb_error_t *err)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, name, ext ? ext : "");
    if (n < 0 || (size_t)n >= cap)
        return gb_error_set(err, GB_EINVAL, "path '%s/%s%s' is too long", dir, name,
                            ext ? ext : "");
    return 0;
}

/* ---- making certificates and CRLs --------------------------------------- */

static int s_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value, gb_error_t *err)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (!ext)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "certificate extension %s '%s'",
                                     OBJ_nid2sn(nid), value);
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "adding extension %s", OBJ_nid2sn(nid));
    return 0;
}

/* A fresh positive 128-bit serial: 16 random bytes with the top bit clear
 * (and never zero), as hex and as an ASN1_INTEGER set on cert. */
static int s_set_random_serial(X509 *cert, char hex[33], gb_error_t *err)
{
    uint8_t raw[16];
    do {
        if (RAND_bytes(raw, sizeof raw) != 1)
            return gb_wire_openssl_error(err, GB_ECRYPTO, "drawing a serial number");
        raw[0] &= 0x7f;
    } while (raw[0] == 0 && raw[1] == 0); /* keep it 127+ bits long */
    int rc = gb_hex_encode(raw, sizeof raw, hex, 33, err);
    if (rc)
        return rc;
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = serial && X509_set_serialNumber(cert, serial);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    if (!ok)
        return gb_wire_openssl_error(err, GB_ECRYPTO, "setting a serial number");
    return 0;
}

static bool s_is_ip(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int64_t s_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

/* Makes and signs a certificate for subject_key / cn with the given profile.
 * issuer NULL: self-signed (subject_key is signer_key). On success *out and
 * *serial_hex. not_after never goes beyond `limit` (0: no limit). */
static X509 *s_make_cert(EVP_PKEY *signer_key, X509 *issuer, EVP_PKEY *subject_key,
                         const char *cn, s_profile_t profile, time_t now, int days,
                         int64_t limit, char serial_hex[33], gb_error_t *err)
{
    X509 *cert = X509_new();
    X509_NAME *subject = X509_NAME_new();
    if (!cert || !subject || !X509_set_version(cert, X509_VERSION_3) ||
        !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(cert, subject) ||
        !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : subject) ||
        !X509_set_pubkey(cert, subject_key)) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "making a certificate for '%s'", cn);
        goto fail;
    }
    if (s_set_random_serial(cert, serial_hex, err))
        goto fail;
    int64_t not_after = (int64_t)now + (int64_t)days * 86400;
    if (limit && limit <= (int64_t)now) {
        char when[GB_TIME_UTC_MAX];
        gb_time_format_utc(limit, when);
        gb_error_set(err, GB_ERANGE, "cannot issue for '%s': the CA certificate expired on %s",
                     cn, when);
        goto fail;
    }
    if (limit && not_after > limit) {
        gb_log_info("certificate for '%s' ends with the CA certificate, before the %d days "
                    "asked for", cn, days);
        not_after = limit;
    }
    if (!ASN1_TIME_set(X509_getm_notBefore(cert), now - GB_PKI_BACKDATE_S) ||
        !ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after)) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "setting the validity of '%s'", cn);
        goto fail;
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    char san[2 * GB_PKI_NAME_MAX + 16];
    switch (profile) {
    case S_PROFILE_CA:
        if (s_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err) ||
            s_add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err) ||
            s_add_ext(cert, &ctx, NID_subject_key_identifier, "hash", err))
            goto fail;
        break;
    case S_PROFILE_COORDINATOR:
    case S_PROFILE_CLIENT:
        if (profile == S_PROFILE_COORDINATOR && s_is_ip(cn))
            snprintf(san, sizeof san, "DNS:%s,IP:%s", cn, cn);
        else
            snprintf(san, sizeof san, "DNS:%s", cn);
        if (s_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE", err) ||
            s_add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature", err) ||
            s_add_ext(cert, &ctx, NID_ext_key_usage,
                      profile == S_PROFILE_CLIENT ? "clientAuth"
                                                  : "serverAuth," GB_PKI_PUBLICATION_OID,
                      err) ||
            s_add_ext(cert, &ctx, NID_subject_alt_name, san, err) ||
            s_add_ext(cert, &ctx, NID_subject_key_identifier, "hash", err) ||
            s_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always", err))
            goto fail;
        break;
    }
    if (X509_sign(cert, signer_key, gb_pki_sign_md(signer_key)) <= 0) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "signing the certificate for '%s'", cn);
        goto fail;
    }
    X509_NAME_free(subject);
    return cert;
fail:
    X509_NAME_free(subject);
    X509_free(cert);
    return NULL;
}

static ASN1_INTEGER *s_serial_from_hex(const char *hex)
{
    BIGNUM *bn = NULL;
    if (!BN_hex2bn(&bn, hex))
        return NULL;
    ASN1_INTEGER *i = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return i;
}

/* A CRL listing every revoked entry, with CRL number `number`, signed. */
static X509_CRL *s_make_crl(EVP_PKEY *ca_key, X509 *ca_cert, const gb_ca_entry_t *entries,
                            size_t n, long number, time_t now, gb_error_t *err)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *last = ASN1_TIME_set(NULL, now);
    ASN1_TIME *next = ASN1_TIME_set(NULL, now + (time_t)GB_PKI_CRL_DAYS * 86400);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    if (!crl || !last || !next || !num || !ASN1_INTEGER_set(num, number) ||
        !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)) ||
        !X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next) ||
        !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0)) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "making a CRL");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!entries[i].revoked_at)
            continue;
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *serial = s_serial_from_hex(entries[i].serial);
        ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)entries[i].revoked_at);
        int ok = r && serial && when && X509_REVOKED_set_serialNumber(r, serial) &&
                 X509_REVOKED_set_revocationDate(r, when) && X509_CRL_add0_revoked(crl, r);
        ASN1_TIME_free(when);
        ASN1_INTEGER_free(serial);
        if (!ok) {
            X509_REVOKED_free(r);
            gb_wire_openssl_error(err, GB_ECRYPTO, "adding serial %s to the CRL",
                                  entries[i].serial);
            goto fail;
        }
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
    X509_EXTENSION *aki = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier,
                                               "keyid:always");
    int ok = aki && X509_CRL_add_ext(crl, aki, -1);
    X509_EXTENSION_free(aki);
    if (!ok || !X509_CRL_sort(crl) || X509_CRL_sign(crl, ca_key, gb_pki_sign_md(ca_key)) <= 0) {
        gb_wire_openssl_error(err, GB_ECRYPTO, "signing the CRL");
        goto fail;
    }
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(next);
    ASN1_TIME_free(last);
    return crl;
fail:
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(next);
    ASN1_TIME_free(last);
    X509_CRL_free(crl);
    return NULL;
}

static int s_crl_save(const char *path, X509_CRL *crl, gb_error_t *err)
{
    BIO *bio = BIO_new(BIO_s_mem());
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (!bio || !PEM_write_bio_X509_CRL(bio, crl))
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "encoding the CRL for '%s'", path);
    else if ((rc = gb_pki_bio_take(bio, &buf, &len, err)) == 0)
        rc = gb_file_write_atomic(path, buf, len, 0644, err);
    gb_free(buf);
    BIO_free(bio);
    return rc;
}

/* ---- the registry --------------------------------------------------------- */

/* Parses a non-negative time; the registry writes seconds since 1970. */
static bool s_parse_time(const char *s, int64_t *out)
{
    uint64_t v;
    if (!gb_table_parse_u64(s, INT64_MAX, &v))
        return false;
    *out = (int64_t)v;
    return true;
}

/* Parses one registry record (gb_table_row_fn) into a gb_ca_entry_t. */
static int s_parse_entry(char **field, int nfields, void *row, const char *path, size_t lineno,
                         void *arg, gb_error_t *err)
{
    (void)nfields;
    (void)arg;
    gb_ca_entry_t *e = row;
    if (!gb_table_is_hex(field[0], 32))
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: serial is not 32 hex digits", path,
                            lineno);
    memcpy(e->serial, field[0], 33);
    int rc = gb_pki_check_name(field[1], "name", err);
    if (rc)
        return gb_error_prefix(err, GB_EFORMAT, "%s line %zu: ", path, lineno);
    memcpy(e->name, field[1], strlen(field[1]) + 1);
    if (!s_parse_time(field[2], &e->not_before) || !s_parse_time(field[3], &e->not_after) ||
        !s_parse_time(field[4], &e->revoked_at) || e->not_after < e->not_before)
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: bad times '%s %s %s'", path, lineno,
                            field[2], field[3], field[4]);
    if (!gb_table_is_hex(field[5], 64))
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: key hash is not 64 hex digits",
                            path, lineno);
    memcpy(e->key_sha256, field[5], 65);
    return 0;
}

/* Reads the registry of dir into a new array (*out, *n). */
static int s_registry_read(const char *dir, gb_ca_entry_t **out, size_t *n, gb_error_t *err)
{
    char path[S_PATH_MAX];
    int rc = s_path(path, sizeof path, dir, GB_CA_REGISTRY_FILE, NULL, err);
    if (rc)
        return rc;
    const gb_table_format_t format = {.header = S_REGISTRY_HEADER,
                                      .what = "glassbox CA registry",
                                      .max_bytes = S_REGISTRY_MAX,
                                      .max_rows = GB_CA_MAX_ENTRIES,
                                      .fields = 6,
                                      .row_size = sizeof(gb_ca_entry_t),
                                      .row = s_parse_entry};
    void *rows = NULL;
    rc = gb_table_file_read(path, &format, &rows, n, err);
    *out = rows;
    return rc;
}

static int s_registry_write(const char *dir, const gb_ca_entry_t *e, size_t n, gb_error_t *err)
{
    char path[S_PATH_MAX];
    int rc = s_path(path, sizeof path, dir, GB_CA_REGISTRY_FILE, NULL, err);
    if (rc)
        return rc;
    /* serial name before after revoked hash: at most 32+64+3*20+64+6 bytes. */
    size_t line_max = 32 + GB_PKI_NAME_MAX + 3 * 21 + 64 + 8;
    size_t cap = sizeof S_REGISTRY_HEADER + sizeof S_REGISTRY_COLUMNS + n * line_max + 1;
    char *buf = gb_malloc(cap);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "out of memory writing %s", path);
    size_t used = (size_t)snprintf(buf, cap, "%s\n%s\n", S_REGISTRY_HEADER, S_REGISTRY_COLUMNS);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s %s %" PRId64 " %" PRId64
                                 " %" PRId64 " %s\n", e[i].serial, e[i].name, e[i].not_before,
                                 e[i].not_after, e[i].revoked_at, e[i].key_sha256);
    rc = gb_file_write_atomic(path, buf, used, 0600, err);
    gb_free(buf);
    return rc;
}

/* ---- the CA object ---------------------------------------------------------- */

static time_t s_now(const gb_ca_t *ca)
{
    return ca->clock ? ca->clock : time(NULL);
}

/* Exclusive lock on DIR/.lock (util/lock_file) into *fd; -1 on failure. */
static int s_lock(const char *dir, int *fd, gb_error_t *err)
{
    *fd = -1;
    char path[S_PATH_MAX];
    int rc = s_path(path, sizeof path, dir, ".lock", NULL, err);
    if (rc)
        return rc;
    return gb_lock_file_take(path, fd, err);
}

/* Replaces ca's entries with the registry on disk. */
static int s_reload(gb_ca_t *ca, gb_error_t *err)
{
    gb_ca_entry_t *e = NULL;
    size_t n = 0;
    int rc = s_registry_read(ca->dir, &e, &n, err);
    if (rc)
        return rc;
    gb_free(ca->entries);
    ca->entries = e;
    ca->n = n;
    ca->cap = n;
    return 0;
}

/* Makes room for one more entry. */
static int s_reserve(gb_ca_t *ca, gb_error_t *err)
{
    if (ca->n >= GB_CA_MAX_ENTRIES)
        return gb_error_set(err, GB_ERANGE, "CA '%s': registry is full (%d entries)", ca->dir,
                            GB_CA_MAX_ENTRIES);
    if (ca->n < ca->cap)
        return 0;
    size_t grow = ca->cap ? ca->cap * 2 : 16;
    gb_ca_entry_t *g = gb_realloc(ca->entries, grow * sizeof *g);
    if (!g)
        return gb_error_set(err, GB_ENOMEM, "out of memory growing the CA registry");
    ca->entries = g;
    ca->cap = grow;
    return 0;
}

static int s_make_entry(X509 *cert, const char *serial, const char *name, EVP_PKEY *key,
                        gb_ca_entry_t *e, gb_error_t *err)
{
    memset(e, 0, sizeof *e);
    memcpy(e->serial, serial, 33);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->not_before = s_asn1_time(X509_get0_notBefore(cert));
    e->not_after = s_asn1_time(X509_get0_notAfter(cert));
    uint8_t h[32];
    int rc = gb_pki_key_sha256(key, h, err);
    if (rc)
        return rc;
    return gb_hex_encode(h, 32, e->key_sha256, sizeof e->key_sha256, err);
}

gb_ca_t *gb_ca_open(const char *dir, gb_error_t *err)
{
    if (!dir) {
        gb_error_set(err, GB_EINVAL, "gb_ca_open: NULL directory");
        return NULL;
    }
    char path[S_PATH_MAX];
    gb_ca_t *ca = gb_calloc(1, sizeof *ca);
    if (!ca || !(ca->dir = gb_strdup(dir))) {
        gb_error_set(err, GB_ENOMEM, "out of memory opening CA '%s'", dir);
        goto fail;
    }
    if (s_path(path, sizeof path, dir, GB_CA_KEY_FILE, NULL, err))
        goto fail;
    struct stat st;
    if (stat(path, &st) != 0) {
        gb_error_set(err, GB_EIO, "CA key '%s': %s (run 'ca init' first?)", path,
                     strerror(errno));
        goto fail;
    }
    if (st.st_mode & 077) {
        gb_error_set(err, GB_EINVAL,
                     "CA key '%s' may be read by group or others (mode %04o): chmod 600 it",
                     path, (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    if (!(ca->key = gb_pki_key_load(path, err)))
        goto fail;
    if (s_path(path, sizeof path, dir, GB_CA_CERT_FILE, NULL, err) ||
        !(ca->cert = gb_pki_cert_load(path, err)))
        goto fail;
    if (X509_check_ca(ca->cert) != 1 || X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        gb_error_set(err, GB_EFORMAT, "'%s' is not a CA certificate for the key in %s", path,
                     GB_CA_KEY_FILE);
        goto fail;
    }
    if (s_path(path, sizeof path, dir, GB_CA_COORD_CERT_FILE, NULL, err))
        goto fail;
    X509 *coord = gb_pki_cert_load(path, err);
    if (!coord)
        goto fail;
    int rc = gb_pki_cert_name(coord, ca->coord, err);
    X509_free(coord);
    if (rc) {
        gb_error_prefix(err, rc, "'%s': ", path);
        goto fail;
    }
    if (s_reload(ca, err))
        goto fail;
    return ca;
fail:
    gb_ca_destroy(&ca);
    return NULL;
}

void gb_ca_destroy(gb_ca_t **ca)
{
    if (!ca || !*ca)
        return;
    EVP_PKEY_free((*ca)->key);
    X509_free((*ca)->cert);
    gb_free((*ca)->entries);
    gb_free((*ca)->dir);
    gb_free(*ca);
    *ca = NULL;
}

void gb_ca_set_clock(gb_ca_t *ca, time_t now)
{
    ca->clock = now;
}

const char *gb_ca_dir(const gb_ca_t *ca)
{
    return ca->dir;
}

const char *gb_ca_coordinator_name(const gb_ca_t *ca)
{
    return ca->coord;
}

size_t gb_ca_count(const gb_ca_t *ca)
{
    return ca->n;
}

const gb_ca_entry_t *gb_ca_entry(const gb_ca_t *ca, size_t i)
{
    return i < ca->n ? &ca->entries[i] : NULL;
}

int gb_ca_reload(gb_ca_t *ca, gb_error_t *err)
{
    return s_reload(ca, err);
}

const char *gb_ca_entry_status(const gb_ca_t *ca, const gb_ca_entry_t *e)
{
    if (e->revoked_at)
        return "revoked";
    return e->not_after <= (int64_t)s_now(ca) ? "expired" : "valid";
}

static int s_check_days(int days, gb_error_t *err)
{
    if (days < 1 || days > GB_PKI_MAX_DAYS)
        return gb_error_set(err, GB_EINVAL, "validity of %d days: expected 1..%d", days,
                            GB_PKI_MAX_DAYS);
    return 0;
}

/* The entry of name's valid certificate, or NULL. */
static const gb_ca_entry_t *s_valid_entry(const gb_ca_t *ca, const char *name)
{
    for (size_t i = ca->n; i-- > 0;)
        if (strcmp(ca->entries[i].name, name) == 0 &&
            strcmp(gb_ca_entry_status(ca, &ca->entries[i]), "valid") == 0)
            return &ca->entries[i];
    return NULL;
}

/* True when name's most recent certificate is revoked. */
static bool s_name_revoked(const gb_ca_t *ca, const char *name)
{
    for (size_t i = ca->n; i-- > 0;)
        if (strcmp(ca->entries[i].name, name) == 0)
            return ca->entries[i].revoked_at != 0;
    return false;
}

/* Reads the CRL number of DIR/crl.pem. */
static int s_crl_number(const gb_ca_t *ca, long *number, gb_error_t *err)
{
    char path[S_PATH_MAX];
    int rc = s_path(path, sizeof path, ca->dir, GB_CA_CRL_FILE, NULL, err);
    if (rc)
        return rc;
    X509_CRL *crl = gb_pki_crl_load(path, err);
    if (!crl)
        return err ? err->code : GB_EIO;
    int crit = 0;
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, &crit, NULL);
    long v = num ? ASN1_INTEGER_get(num) : -1;
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    ERR_clear_error();
    if (v < 1 || v >= 0x7fffffffL)
        return gb_error_set(err, GB_EFORMAT, "'%s' has no usable CRL number", path);
    *number = v;
    return 0;
}

/* Writes crl.pem from the current entries with the next CRL number. */
static int s_write_crl(gb_ca_t *ca, gb_error_t *err)
{
    long number = 0;
    int rc = s_crl_number(ca, &number, err);
    if (rc)
        return rc;
    char path[S_PATH_MAX];
    if ((rc = s_path(path, sizeof path, ca->dir, GB_CA_CRL_FILE, NULL, err)) != 0)
        return rc;
    X509_CRL *crl = s_make_crl(ca->key, ca->cert, ca->entries, ca->n, number + 1, s_now(ca), err);
    if (!crl)
        return err ? err->code : GB_ECRYPTO;
    rc = s_crl_save(path, crl, err);
    X509_CRL_free(crl);
    return rc;
}

/* Removes every file in paths[0..n) (best effort) after a failed init. */
static void s_unlink_all(char paths[][S_PATH_MAX], int n)
{
    for (int i = 0; i < n; i++)
        if (paths[i][0])
            unlink(paths[i]);
}

static int s_dir_is_empty(const char *dir, bool *empty, gb_error_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return gb_error_set(err, GB_EIO, "cannot read directory '%s': %s", dir, strerror(errno));
    struct dirent *e;
    *empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            *empty = false;
            break;
        }
    closedir(d);
    return 0;
}

int gb_ca_init(const char *dir, const char *federation_name, const char *coordinator_name,
               int days, gb_error_t *err)
{
    if (!dir || !*dir)
        return gb_error_set(err, GB_EINVAL, "CA directory is missing");
    int rc;
    if ((rc = gb_pki_check_name(federation_name, "federation name", err)) != 0 ||
        (rc = gb_pki_check_name(coordinator_name, "coordinator name", err)) != 0 ||
        (rc = s_check_days(days, err)) != 0)
        return rc;
    if (strlen(dir) > S_PATH_MAX - 64)
        return gb_error_set(err, GB_EINVAL, "CA directory '%.60s...' is too long", dir);

    bool created = false;
    if (mkdir(dir, 0700) == 0) {
        created = true;
    } else if (errno == EEXIST) {
        bool empty = false;
        if ((rc = s_dir_is_empty(dir, &empty, err)) != 0)
            return rc;
        if (!empty)
            return gb_error_set(err, GB_EINVAL,
                                "CA directory '%s' is not empty: refusing to overwrite a CA", dir);
        if (chmod(dir, 0700) != 0)
            return gb_error_set(err, GB_EIO, "cannot chmod 0700 '%s': %s", dir, strerror(errno));
    } else {
        return gb_error_set(err, GB_EIO, "cannot create CA directory '%s': %s", dir,
                            strerror(errno));
    }

    enum { F_CA_KEY, F_CA_CRT, F_CO_KEY, F_CO_CRT, F_CRL, F_REG, F_N };
    static const char *const names[F_N] = {GB_CA_KEY_FILE, GB_CA_CERT_FILE,
                                           GB_CA_COORD_KEY_FILE, GB_CA_COORD_CERT_FILE,
                                           GB_CA_CRL_FILE, GB_CA_REGISTRY_FILE};
    char written[F_N][S_PATH_MAX];
    char path[F_N][S_PATH_MAX];
    memset(written, 0, sizeof written);
    for (int i = 0; i < F_N; i++)
        snprintf(path[i], S_PATH_MAX, "%s/%s", dir, names[i]);

    EVP_PKEY *ca_key = NULL, *co_key = NULL;
    X509 *ca_cert = NULL, *co_cert = NULL;
    X509_CRL *crl = NULL;
    char ca_cn[GB_PKI_NAME_MAX + 8], serial[33], co_serial[33];
    snprintf(ca_cn, sizeof ca_cn, "%s CA", federation_name);
    time_t now = time(NULL);
    gb_ca_entry_t entry;

    rc = GB_ECRYPTO;
    if (!(ca_key = gb_pki_key_new(err)) || !(co_key = gb_pki_key_new(err)))
        goto fail;
    /* The CA's CN has a space, so it is not checked as a name: it is built here. */
    if (!(ca_cert = s_make_cert(ca_key, NULL, ca_key, ca_cn, S_PROFILE_CA, now, days, 0, serial,
                                err)) ||
        !(co_cert = s_make_cert(ca_key, ca_cert, co_key, coordinator_name,
                                S_PROFILE_COORDINATOR, now, days, 0, co_serial, err)) ||
        !(crl = s_make_crl(ca_key, ca_cert, NULL, 0, 1, now, err)))
        goto fail;
    if ((rc = s_make_entry(co_cert, co_serial, coordinator_name, co_key, &entry, err)) != 0)
        goto fail;

#define S_WRITE(idx, call)                                                                     \
    do {                                                                                       \
        if ((rc = (call)) != 0)                                                                \
            goto fail;                                                                         \
        memcpy(written[idx], path[idx], S_PATH_MAX);                                           \
    } while (0)
    S_WRITE(F_CA_KEY, gb_pki_key_save(path[F_CA_KEY], ca_key, err));
    S_WRITE(F_CA_CRT, gb_pki_cert_save(path[F_CA_CRT], ca_cert, err));
    S_WRITE(F_CO_KEY, gb_pki_key_save(path[F_CO_KEY], co_key, err));
    S_WRITE(F_CO_CRT, gb_pki_cert_save(path[F_CO_CRT], co_cert, err));
    S_WRITE(F_CRL, s_crl_save(path[F_CRL], crl, err));
    S_WRITE(F_REG, s_registry_write(dir, &entry, 1, err));
#undef S_WRITE
    gb_log_info("CA '%s' created in %s; coordinator certificate for '%s' (serial %s)", ca_cn,
                dir, coordinator_name, co_serial);
    rc = 0;
    goto cleanup;
fail:
    if (rc == 0)
        rc = err && err->code ? err->code : GB_ECRYPTO;
    s_unlink_all(written, F_N);
    if (created) {
        char lock[S_PATH_MAX];
        snprintf(lock, sizeof lock, "%s/.lock", dir);
        unlink(lock);
        rmdir(dir);
    }
cleanup:
    X509_CRL_free(crl);
    X509_free(co_cert);
    X509_free(ca_cert);
    EVP_PKEY_free(co_key);
    EVP_PKEY_free(ca_key);
    return rc;
}

/* not_after limit: the CA certificate's own end. */
static int64_t s_ca_limit(const gb_ca_t *ca)
{
    return s_asn1_time(X509_get0_notAfter(ca->cert));
}

/* Issues a client certificate for key/name, appends its entry and writes the
 * registry. Called with the lock held and the registry fresh. On failure the
 * in-memory entries are unchanged. */
static X509 *s_issue_locked(gb_ca_t *ca, const char *name, EVP_PKEY *key, int days,
                            gb_error_t *err)
{
    char serial[33];
    if (s_reserve(ca, err))
        return NULL;
    X509 *cert = s_make_cert(ca->key, ca->cert, key, name, S_PROFILE_CLIENT, s_now(ca), days,
                             s_ca_limit(ca), serial, err);
    if (!cert)
        return NULL;
    if (s_make_entry(cert, serial, name, key, &ca->entries[ca->n], err) ||
        s_registry_write(ca->dir, ca->entries, ca->n + 1, err)) {
        X509_free(cert);
        return NULL;
    }
    ca->n++;
    return cert;
}

/* Length of name without its trailing dots (a host name with a trailing dot
 * is the same name to a TLS peer). */
static size_t s_host_len(const char *name)
{
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '.')
        n--;
    return n;
}

int gb_ca_check_client_name(const gb_ca_t *ca, const char *name, gb_error_t *err)
{
    int rc = gb_pki_check_name(name, "client name", err);
    if (rc)
        return rc;
    size_t n = s_host_len(name), c = s_host_len(ca->coord);
    static const char local[] = "localhost";
    const size_t ll = sizeof local - 1;
    if (n == c && strncasecmp(name, ca->coord, n) == 0)
        return gb_error_set(err, GB_EPROTO,
                            "client name '%s' is the coordinator's name '%s' (names are the "
                            "same whatever their case): reserved for the coordinator",
                            name, ca->coord);
    if ((n == ll && strncasecmp(name, local, ll) == 0) ||
        (n > ll && name[n - ll - 1] == '.' && strncasecmp(name + n - ll, local, ll) == 0))
        return gb_error_set(err, GB_EPROTO,
                            "client name '%s' is a localhost name: reserved for servers", name);
    char host[GB_PKI_NAME_MAX + 1];
    memcpy(host, name, n);
    host[n] = '\0';
    if (s_is_ip(host))
        return gb_error_set(err, GB_EPROTO,
                            "client name '%s' is an IP address: reserved for servers", name);
    return 0;
}

int gb_ca_issue(gb_ca_t *ca, const char *name, int days, const char *out_dir, gb_error_t *err)
{
    int rc;
    if ((rc = gb_ca_check_client_name(ca, name, err)) != 0 ||
        (rc = s_check_days(days, err)) != 0)
        return rc;
    if (!out_dir)
        return gb_error_set(err, GB_EINVAL, "gb_ca_issue: NULL output directory");
    char key_path[S_PATH_MAX], crt_path[S_PATH_MAX];
    if ((rc = s_path(key_path, sizeof key_path, out_dir, name, ".key", err)) != 0 ||
        (rc = s_path(crt_path, sizeof crt_path, out_dir, name, ".crt", err)) != 0)
        return rc;
    if (mkdir(out_dir, 0700) != 0 && errno != EEXIST)
        return gb_error_set(err, GB_EIO, "cannot create '%s': %s", out_dir, strerror(errno));

    int lock;
    if ((rc = s_lock(ca->dir, &lock, err)) != 0)
        return rc;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    size_t n_before = ca->n;
    if ((rc = s_reload(ca, err)) != 0)
        goto out;
    n_before = ca->n;
    const gb_ca_entry_t *held = s_valid_entry(ca, name);
    if (held) {
        char until[GB_TIME_UTC_MAX];
        gb_time_format_utc(held->not_after, until);
        rc = gb_error_set(err, GB_EINVAL,
                          "'%s' already holds a valid certificate (serial %s, until %s): "
                          "revoke it first", name, held->serial, until);
        goto out;
    }
    if (!(key = gb_pki_key_new(err)) || !(cert = s_issue_locked(ca, name, key, days, err))) {
        rc = err && err->code ? err->code : GB_ECRYPTO;
        goto out;
    }
    if ((rc = gb_pki_key_save(key_path, key, err)) != 0 ||
        (rc = gb_pki_cert_save(crt_path, cert, err)) != 0) {
        /* Take the entry back: nobody holds this certificate. */
        unlink(key_path);
        unlink(crt_path);
        gb_error_t ignored;
        ca->n = n_before;
        if (s_registry_write(ca->dir, ca->entries, ca->n, &ignored))
            gb_log_error("%s: could not take back the entry of '%s': %s", ca->dir, name,
                         ignored.msg);
        goto out;
    }
    gb_log_info("issued a certificate for '%s' (serial %s) in %s", name,
                ca->entries[ca->n - 1].serial, out_dir);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    gb_lock_file_release(lock);
    return rc;
}

/* Prefixes err with "enrollment refused: ", logs it as a warning (outside
 * input) and returns its code. */
static int s_refuse(gb_error_t *err, int rc)
{
    gb_error_prefix(err, rc, "enrollment refused: ");
    if (err->code != GB_ENOMEM)
        gb_log_warn("%s", err->msg);
    return err->code;
}

/* What gb_ca_sign_csr and gb_ca_check_csr share: a CSR that passed every
 * check, its key and name, and the CA lock, held. */
typedef struct {
    X509_REQ *csr;                  /* the parsed request */
    EVP_PKEY *key;                  /* its public key */
    char name[GB_PKI_NAME_MAX + 1]; /* its CN */
    bool same_key;                  /* the name holds a valid certificate for this key */
    int lock;                       /* the CA lock (-1: not taken) */
} s_enrollment_t;

static void s_enrollment_done(s_enrollment_t *e)
{
    gb_lock_file_release(e->lock);
    EVP_PKEY_free(e->key);
    X509_REQ_free(e->csr);
    memset(e, 0, sizeof *e);
    e->lock = -1;
}

/* Every check of an enrollment, in the order the header gives. On success
 * the lock is held (the registry fresh); on failure everything is released
 * and the refusal logged. */
static int s_enrollment_check(gb_ca_t *ca, const uint8_t *csr_der, size_t len,
                              s_enrollment_t *e, gb_error_t *err)
{
    memset(e, 0, sizeof *e);
    e->lock = -1;
    int rc;
    if (!(e->csr = gb_pki_csr_from_der(csr_der, len, err)))
        return s_refuse(err, err->code);
    if (!(e->key = X509_REQ_get_pubkey(e->csr))) {
        rc = s_refuse(err, gb_wire_openssl_error(err, GB_EFORMAT, "the CSR has no usable key"));
        goto fail;
    }
    if (X509_REQ_verify(e->csr, e->key) != 1) {
        rc = s_refuse(err, gb_wire_openssl_error(err, GB_EINTEGRITY,
                                                 "the CSR's signature does not verify"));
        goto fail;
    }
    if ((rc = gb_pki_check_key_kind(e->key, "CSR", err)) != 0 ||
        (rc = gb_pki_subject_name(X509_REQ_get_subject_name(e->csr), "CSR", e->name, err)) != 0 ||
        (rc = gb_ca_check_client_name(ca, e->name, err)) != 0) {
        rc = s_refuse(err, rc);
        goto fail;
    }
    if ((rc = s_lock(ca->dir, &e->lock, err)) != 0)
        goto fail;
    if ((rc = s_reload(ca, err)) != 0)
        goto fail;
    if (s_name_revoked(ca, e->name)) {
        rc = s_refuse(err, gb_error_set(err, GB_EPROTO,
                                        "'%s' was revoked (an administrator may issue it "
                                        "again with 'ca issue')", e->name));
        goto fail;
    }
    const gb_ca_entry_t *held = s_valid_entry(ca, e->name);
    if (held) {
        uint8_t h[32];
        char hex[65];
        if ((rc = gb_pki_key_sha256(e->key, h, err)) != 0 ||
            (rc = gb_hex_encode(h, 32, hex, sizeof hex, err)) != 0)
            goto fail;
        if (CRYPTO_memcmp(hex, held->key_sha256, 64) != 0) {
            rc = s_refuse(err, gb_error_set(err, GB_EPROTO,
                                            "'%s' already holds a valid certificate (serial "
                                            "%s) for a different key", e->name, held->serial));
            goto fail;
        }
        e->same_key = true;
    }
    return 0;
fail:
    s_enrollment_done(e);
    return rc;
}

int gb_ca_check_csr(gb_ca_t *ca, const uint8_t *csr_der, size_t len, gb_error_t *err)
{
    gb_error_t local;
    if (!err)
        err = &local;
    gb_error_clear(err);
    s_enrollment_t e;
    int rc = s_enrollment_check(ca, csr_der, len, &e, err);
    if (rc == 0)
        s_enrollment_done(&e);
    return rc;
}

int gb_ca_sign_csr(gb_ca_t *ca, const uint8_t *csr_der, size_t len, int days,
                   uint8_t **cert_der, size_t *cert_len, gb_error_t *err)
{
    gb_error_t local;
    if (!err)
        err = &local;
    gb_error_clear(err);
    *cert_der = NULL;
    *cert_len = 0;
    int rc;
    if ((rc = s_check_days(days, err)) != 0)
        return rc;
    s_enrollment_t e;
    if ((rc = s_enrollment_check(ca, csr_der, len, &e, err)) != 0)
        return rc;
    X509 *cert = s_issue_locked(ca, e.name, e.key, days, err);
    if (!cert) {
        rc = err->code ? err->code : GB_ECRYPTO;
        goto out;
    }
    /* On failure the entry stays: the certificate exists and can be revoked by name. */
    if ((rc = gb_pki_cert_to_der(cert, cert_der, cert_len, err)) != 0)
        goto out;
    gb_log_info("enrolled '%s': certificate serial %s%s", e.name,
                ca->entries[ca->n - 1].serial, e.same_key ? " (same key as before)" : "");
out:
    X509_free(cert);
    s_enrollment_done(&e);
    return rc;
}

int gb_ca_revoke(gb_ca_t *ca, const char *name, gb_error_t *err)
{
    int rc = gb_pki_check_name(name, "client name", err);
    if (rc)
        return rc;
    if (strcmp(name, ca->coord) == 0)
        return gb_error_set(err, GB_EINVAL,
                            "'%s' is the coordinator: its certificate cannot be revoked here "
                            "(make a new CA)", name);
    int lock;
    if ((rc = s_lock(ca->dir, &lock, err)) != 0)
        return rc;
    gb_ca_entry_t *saved = NULL;
    if ((rc = s_reload(ca, err)) != 0)
        goto out;
    size_t found = 0, revoked = 0;
    time_t now = s_now(ca);
    for (size_t i = 0; i < ca->n; i++) {
        if (strcmp(ca->entries[i].name, name) != 0)
            continue;
        found++;
        if (!ca->entries[i].revoked_at)
            revoked++;
    }
    if (!found) {
        rc = gb_error_set(err, GB_EINVAL, "no certificate was ever issued to '%s'", name);
        goto out;
    }
    if (revoked) {
        saved = gb_malloc(ca->n * sizeof *saved);
        if (!saved) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory revoking '%s'", name);
            goto out;
        }
        memcpy(saved, ca->entries, ca->n * sizeof *saved);
        for (size_t i = 0; i < ca->n; i++)
            if (strcmp(ca->entries[i].name, name) == 0 && !ca->entries[i].revoked_at)
                ca->entries[i].revoked_at = (int64_t)now;
        if ((rc = s_registry_write(ca->dir, ca->entries, ca->n, err)) != 0) {
            memcpy(ca->entries, saved, ca->n * sizeof *saved);
            goto out;
        }
    }
    if ((rc = s_write_crl(ca, err)) != 0) {
        gb_error_prefix(err, rc, "'%s' is revoked in the registry but the CRL was not written "
                        "(run 'ca revoke' again): ", name);
        goto out;
    }
    gb_log_info("revoked %zu certificate(s) of '%s'; CRL rewritten", revoked, name);
out:
    gb_free(saved);
    gb_lock_file_release(lock);
    return rc;
}

int gb_ca_update_crl(gb_ca_t *ca, gb_error_t *err)
{
    int lock;
    int rc = s_lock(ca->dir, &lock, err);
    if (rc)
        return rc;
    rc = s_reload(ca, err);
    if (rc == 0)
        rc = s_write_crl(ca, err);
    gb_lock_file_release(lock);
    return rc;
}
