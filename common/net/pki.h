/* The federation's PKI: keys, certificates, certificate requests, revocation
 * lists, and the small CA that `glassbox-coordinator ca` drives and that the
 * coordinator uses to sign enrollment requests.
 *
 * Everything cryptographic is OpenSSL 3 (EVP, X509); this module only decides
 * what goes into a certificate and keeps the CA's files consistent. Keys are
 * ECDSA P-256 (Ed25519 keys are accepted where a key is loaded or arrives in
 * a CSR). Private keys are written through gb_file_write_atomic with mode
 * 0600, so they are never readable by anyone else, not even for an instant,
 * and they are never logged; PEM buffers holding them are wiped.
 *
 * A CA directory holds:
 *   ca.key, ca.crt                the CA (self-signed, CA:TRUE, keyCertSign+cRLSign)
 *   coordinator.key, .crt         the coordinator (serverAuth and the publication-
 *                                 signing mark GB_PKI_PUBLICATION_OID: it signs
 *                                 publications with this key)
 *   crl.pem                       the revocation list, signed by the CA
 *   registry                      one line per certificate ever issued
 *   clients/                      default home of `ca issue` keys and certificates
 * The registry is the source of truth for names: who holds a valid certificate,
 * for which public key, and what was revoked. Every change to it (issue,
 * enrollment, revocation) takes an exclusive lock on DIR/.lock and re-reads
 * the file under the lock, so an administrator's `ca revoke` and a running
 * coordinator signing an enrollment never lose each other's entries.
 *
 * Names (client names, the coordinator's name, the federation's name) are
 * [A-Za-z0-9][A-Za-z0-9._-]{0,63}: safe in a file name, a DNS SAN and a log.
 * The CA's naming policy (gb_ca_check_client_name) keeps clients off every
 * name a peer could take for a server's: TLS and openssl compare host names
 * without case and ignore a trailing dot, so 'COORDINATOR.TEST' would pass
 * for 'coordinator.test' wherever only the name is checked.
 *
 * Two files implement this header: pki.c every section above "the CA"
 * (names, keys, certificates, CSRs, CRLs, verification), pki_ca.c that last
 * section (making certificates and CRLs, the registry, issue, enrollment,
 * revocation). It stays one header because the halves
 * do not split cleanly for callers: the CA's declarations use the first
 * half's limits and names, and nearly every user of the CA also loads keys
 * and certificates.
 *
 * Ownership: OpenSSL objects returned here (EVP_PKEY, X509, X509_REQ,
 * X509_CRL) belong to the caller, who frees them with OpenSSL's *_free.
 * Buffers returned through uint8_t ** are the caller's, to free with gb_free.
 * gb_ca_open returns a CA the caller owns (gb_ca_destroy). */
#ifndef GB_NET_PKI_H
#define GB_NET_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/error.h"

#define GB_PKI_NAME_MAX 64                    /* bytes of a name */
#define GB_PKI_MAX_PEM ((size_t)64 << 10)     /* key, cert, CSR file size limit */
#define GB_PKI_MAX_CRL_FILE ((size_t)16 << 20) /* crl.pem size limit */
#define GB_PKI_MAX_DER ((size_t)16 << 10)     /* cert or CSR in DER from the wire */
#define GB_PKI_MAX_DAYS 36500                 /* longest validity anyone may ask for */
#define GB_PKI_BACKDATE_S 300  /* notBefore = now - this: tolerates clock skew */
#define GB_PKI_CRL_DAYS 365    /* nextUpdate of every CRL written */
#define GB_CA_MAX_ENTRIES 100000 /* registry lines */

/* The extended key usage that marks the one certificate allowed to sign
 * publications: the coordinator's. An OID derived from a UUID (ITU-T X.667,
 * arc 2.25), so it needs no registration and collides with nobody's.
 * Subscribers require it beside serverAuth (gb_pki_cert_signs_publications);
 * a client certificate (clientAuth only) never carries it. */
#define GB_PKI_PUBLICATION_OID "2.25.61096395399426130411232771718032252530"

/* File names inside a CA directory. */
#define GB_CA_KEY_FILE "ca.key"
#define GB_CA_CERT_FILE "ca.crt"
#define GB_CA_COORD_KEY_FILE "coordinator.key"
#define GB_CA_COORD_CERT_FILE "coordinator.crt"
#define GB_CA_CRL_FILE "crl.pem"
#define GB_CA_REGISTRY_FILE "registry"
#define GB_CA_CLIENTS_DIR "clients"

/* ---- errors and names ---------------------------------------------------- */


/* 0 if name is 1..64 bytes of [A-Za-z0-9][A-Za-z0-9._-]*; else GB_EINVAL
 * with err naming `what` ("client name") and the value (cut and escaped if
 * it is long or not printable). Logs nothing. */
int gb_pki_check_name(const char *name, const char *what, gb_error_t *err) GB_MUST_CHECK;

/* ---- keys ----------------------------------------------------------------- */

/* A new ECDSA P-256 key pair. NULL and err on failure (GB_ECRYPTO, GB_ENOMEM). */
EVP_PKEY *gb_pki_key_new(gb_error_t *err);

/* Writes the private key as PKCS#8 PEM (unencrypted) to path atomically with
 * mode 0600 whatever the umask; an existing file is replaced. The PEM text
 * is wiped from memory afterwards. */
int gb_pki_key_save(const char *path, EVP_PKEY *key, gb_error_t *err) GB_MUST_CHECK;

/* Reads a PEM private key (at most GB_PKI_MAX_PEM bytes). An encrypted key
 * is refused (never prompts). Only P-256 and Ed25519 keys are accepted.
 * NULL and err naming the file on failure. */
EVP_PKEY *gb_pki_key_load(const char *path, gb_error_t *err);

/* Parses a DER private key (PKCS#8 or traditional) of exactly len bytes;
 * same key types as gb_pki_key_load. */
EVP_PKEY *gb_pki_key_from_der(const uint8_t *der, size_t len, gb_error_t *err);

/* "P-256" or "Ed25519" for the key types this module accepts, NULL for any
 * other key (RSA, other curves). A static string. */
const char *gb_pki_key_type(EVP_PKEY *key);

/* SHA-256 of the DER SubjectPublicKeyInfo of key: the key's fingerprint as
 * the registry records it. */
int gb_pki_key_sha256(EVP_PKEY *key, uint8_t out[32], gb_error_t *err) GB_MUST_CHECK;

/* ---- certificates ------------------------------------------------------- */

/* Reads the first certificate of a PEM file (at most GB_PKI_MAX_PEM bytes). */
X509 *gb_pki_cert_load(const char *path, gb_error_t *err);

/* Writes cert as PEM to path atomically, mode 0644. */
int gb_pki_cert_save(const char *path, X509 *cert, gb_error_t *err) GB_MUST_CHECK;

/* Parses a DER certificate of exactly len bytes (at most GB_PKI_MAX_DER):
 * trailing bytes are refused. */
X509 *gb_pki_cert_from_der(const uint8_t *der, size_t len, gb_error_t *err);

/* DER encoding of cert into a new buffer (*der, *len; free with gb_free). */
int gb_pki_cert_to_der(X509 *cert, uint8_t **der, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Copies the certificate's single subject CN into out (NUL-terminated) after
 * checking it is a valid name (gb_pki_check_name). Refuses a subject with no
 * CN, two CNs, or a CN with an embedded NUL (GB_EFORMAT). */
int gb_pki_cert_name(X509 *cert, char out[GB_PKI_NAME_MAX + 1], gb_error_t *err) GB_MUST_CHECK;

/* True when cert may sign publications: key usage digitalSignature and
 * extended key usages serverAuth and GB_PKI_PUBLICATION_OID. Says nothing of
 * the chain, name or time: gb_pki_verify_cert does. */
bool gb_pki_cert_signs_publications(X509 *cert);

/* Checks cert against the CA certificate in ca_file (the only trust anchor:
 * no system store), the CRL in crl_file when not NULL (X509_V_FLAG_CRL_CHECK:
 * a revoked certificate, or a CRL that is expired or not signed by the CA,
 * fails), validity at the current time, and, when expected_name is not NULL,
 * that the certificate's DNS SAN (or CN if it has none) is that name.
 * Returns 0, or GB_EINTEGRITY with OpenSSL's verdict in err
 * ("certificate has expired", "certificate revoked", "unable to get local
 * issuer certificate", "hostname mismatch", ...) naming the subject; GB_EIO,
 * GB_EFORMAT for unreadable files. Logs nothing: callers decide. */
int gb_pki_verify_cert(const char *ca_file, const char *crl_file, X509 *cert,
                       const char *expected_name, gb_error_t *err) GB_MUST_CHECK;

/* Same as gb_pki_verify_cert, as of time `at` (0: now). For tests of expiry
 * and for checking what a certificate will look like later. */
int gb_pki_verify_cert_at(const char *ca_file, const char *crl_file, X509 *cert,
                          const char *expected_name, time_t at, gb_error_t *err) GB_MUST_CHECK;

/* ---- certificate requests and CRLs -------------------------------------- */

/* A CSR for subject CN=name, signed by key (which is only read: the private
 * key never leaves the caller). name must pass gb_pki_check_name. */
X509_REQ *gb_pki_csr_new(EVP_PKEY *key, const char *name, gb_error_t *err);

/* Reads a PEM CSR (at most GB_PKI_MAX_PEM bytes). */
X509_REQ *gb_pki_csr_load(const char *path, gb_error_t *err);

/* Parses a DER CSR of exactly len bytes (at most GB_PKI_MAX_DER). Does not
 * check its signature: gb_ca_sign_csr does. */
X509_REQ *gb_pki_csr_from_der(const uint8_t *der, size_t len, gb_error_t *err);

/* DER encoding of a CSR into a new buffer (free with gb_free). */
int gb_pki_csr_to_der(X509_REQ *csr, uint8_t **der, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Reads a PEM CRL (at most GB_PKI_MAX_CRL_FILE bytes). */
X509_CRL *gb_pki_crl_load(const char *path, gb_error_t *err);

/* Parses a DER CRL of exactly len bytes. */
X509_CRL *gb_pki_crl_from_der(const uint8_t *der, size_t len, gb_error_t *err);

/* ---- the CA (pki_ca.c) ------------------------------------------------------ */

/* One registry line: a certificate the CA issued. */
typedef struct {
    char serial[33];                 /* 32 lowercase hex digits (128-bit serial) */
    char name[GB_PKI_NAME_MAX + 1];  /* subject CN and DNS SAN */
    int64_t not_before;              /* Unix seconds */
    int64_t not_after;               /* Unix seconds */
    int64_t revoked_at;              /* Unix seconds; 0: not revoked */
    char key_sha256[65];             /* hex SHA-256 of the SubjectPublicKeyInfo */
} gb_ca_entry_t;

typedef struct gb_ca gb_ca_t;

/* Creates a new CA in dir: the directory (mode 0700; an existing EMPTY
 * directory is used and set to 0700, a non-empty one refused), ca.key and
 * coordinator.key (0600), ca.crt (CN "<federation_name> CA"), coordinator.crt
 * (CN and DNS SAN coordinator_name, plus an IP SAN when the name is an IPv4
 * or IPv6 address; serverAuth and GB_PKI_PUBLICATION_OID, no clientAuth;
 * digitalSignature), an empty
 * crl.pem (CRL number 1) and the registry holding the coordinator's
 * certificate. Both certificates are valid for `days` (1..GB_PKI_MAX_DAYS).
 * On failure every file written is removed again (and dir, if this call
 * created it). */
int gb_ca_init(const char *dir, const char *federation_name, const char *coordinator_name,
               int days, gb_error_t *err) GB_MUST_CHECK;

/* Loads the CA in dir: ca.key (refused if group or others may read it),
 * ca.crt (must be a CA certificate matching the key), the coordinator's name
 * from coordinator.crt, and the registry. NULL and err naming the file. */
gb_ca_t *gb_ca_open(const char *dir, gb_error_t *err);

/* Frees the CA (the key is wiped by OpenSSL); sets *ca to NULL; NULL-safe. */
void gb_ca_destroy(gb_ca_t **ca);

/* Test and maintenance hook: the CA's idea of "now" for everything it issues,
 * revokes and checks (0: the real clock). Lets tests make certificates that
 * are already expired without waiting. */
void gb_ca_set_clock(gb_ca_t *ca, time_t now);

/* The CA directory and the coordinator's name. Borrowed: valid until
 * gb_ca_destroy. */
const char *gb_ca_dir(const gb_ca_t *ca);
const char *gb_ca_coordinator_name(const gb_ca_t *ca);

/* Number of registry entries as last read, and entry i (< count; borrowed,
 * valid until the next call that changes or re-reads the registry). */
size_t gb_ca_count(const gb_ca_t *ca);
const gb_ca_entry_t *gb_ca_entry(const gb_ca_t *ca, size_t i);

/* Re-reads the registry from disk (after another process changed it). */
int gb_ca_reload(gb_ca_t *ca, gb_error_t *err) GB_MUST_CHECK;

/* The CA's policy for a client name, as both `ca issue` and enrollment apply
 * it: a valid name (gb_pki_check_name: GB_EINVAL) that is not reserved for a
 * server (GB_EPROTO): not the coordinator's name in any case and with or
 * without trailing dots, not "localhost" or a name under ".localhost", not
 * an IPv4 address. Reads only the CA's coordinator name; logs nothing. */
int gb_ca_check_client_name(const gb_ca_t *ca, const char *name, gb_error_t *err) GB_MUST_CHECK;

/* Issues a client certificate for `name`: a new P-256 key and a certificate
 * (CN and DNS SAN = name, clientAuth only, digitalSignature, CA:FALSE, random
 * 128-bit serial, valid `days` but never beyond the CA certificate), written
 * to out_dir/<name>.key (0600) and out_dir/<name>.crt (0644); out_dir is
 * created (0700) if missing, one level only. Refuses a name the policy
 * refuses (gb_ca_check_client_name: GB_EINVAL, GB_EPROTO for a reserved
 * one) and a name that still holds a valid (unexpired, unrevoked) certificate:
 * revoke it first. A revoked name may be issued again: that is the
 * administrator's decision. The registry gains the entry; on any failure no
 * file and no entry is left behind. */
int gb_ca_issue(gb_ca_t *ca, const char *name, int days, const char *out_dir,
                gb_error_t *err) GB_MUST_CHECK;

/* Enrollment: signs a DER CSR that came from a client. Checks, in order: the
 * size (GB_PKI_MAX_DER), that it parses exactly, its self-signature, its key
 * type (P-256 or Ed25519), its single CN (a name gb_ca_check_client_name
 * accepts), that the name's latest certificate is not revoked (a
 * revoked client cannot come back through enrollment), and that the name
 * holds no valid certificate for a DIFFERENT public key (the same key may be
 * re-issued: a client that lost its certificate but kept its key). The
 * certificate is made exactly as gb_ca_issue makes one; nothing of the CSR
 * but its key and CN is used (its extensions are ignored). On success
 * *cert_der (free with gb_free) and *cert_len hold the DER certificate and
 * the registry has the entry. Every refusal is logged (gb_error_warn) and
 * changes nothing. Errors: GB_ERANGE (size), GB_EFORMAT (does not parse,
 * no/two CNs), GB_EINTEGRITY (bad signature), GB_EINVAL (bad name, key type,
 * days), GB_EPROTO (name taken, coordinator's name, revoked). */
int gb_ca_sign_csr(gb_ca_t *ca, const uint8_t *csr_der, size_t len, int days,
                   uint8_t **cert_der, size_t *cert_len, gb_error_t *err) GB_MUST_CHECK;

/* Every check gb_ca_sign_csr makes, under the same lock and on a fresh
 * registry, without signing or changing anything: 0 when gb_ca_sign_csr
 * would issue now, else the code it would refuse with (a refusal is logged
 * the same way). The enrollment service asks this before it spends a
 * token's use, so that a request the policy refuses costs the token
 * nothing. */
int gb_ca_check_csr(gb_ca_t *ca, const uint8_t *csr_der, size_t len,
                    gb_error_t *err) GB_MUST_CHECK;

/* Revokes every unrevoked certificate issued to name (revocation time: now)
 * and rewrites crl.pem (every revoked serial, the next CRL number, signed by
 * the CA) and the registry, registry first. Calling it again for a name that
 * is already revoked only rewrites the CRL (so a CRL write that failed can be
 * retried). Refuses an unknown name and the coordinator's name
 * (GB_EINVAL). */
int gb_ca_revoke(gb_ca_t *ca, const char *name, gb_error_t *err) GB_MUST_CHECK;

/* Rewrites crl.pem from the registry with the next CRL number and a fresh
 * nextUpdate (GB_PKI_CRL_DAYS): run it before the CRL's nextUpdate passes,
 * or every peer check against it fails. */
int gb_ca_update_crl(gb_ca_t *ca, gb_error_t *err) GB_MUST_CHECK;

/* "valid", "expired" or "revoked" for entry e as of the CA's clock. */
const char *gb_ca_entry_status(const gb_ca_t *ca, const gb_ca_entry_t *e);

#endif
