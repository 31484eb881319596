/* Signed publications: the coordinator signs each round's packed Publication
 * with its own key (the one in coordinator.key, certified by the federation
 * CA), and subscribers check the signature before they trust a byte of it.
 *
 * The signature is ECDSA P-256 over SHA-256 of exactly the packed
 * Publication bytes, DER-encoded, as `openssl dgst -sha256 -sign` makes it;
 * it travels in a SignedPublication (proto/glassbox.proto) with the algorithm
 * name GB_SIGNING_ALGORITHM and the signer's DER certificate. Because the
 * signature is over the bytes as carried, no canonical re-encoding is needed
 * and stock openssl can check a publication written to files:
 *
 *   openssl verify -CAfile ca.crt coordinator.crt
 *   openssl x509 -in coordinator.crt -pubkey -noout > coordinator.pub.pem
 *   openssl dgst -sha256 -verify coordinator.pub.pem \
 *       -signature round-000001.sig round-000001.pub
 *
 * Verification order is the point of this module: size limit before
 * unpacking, then the signer certificate (chain to the federation CA,
 * validity, the CRL when given, the coordinator's expected name, serverAuth,
 * the publication-signing mark GB_PKI_PUBLICATION_OID and digitalSignature:
 * a client's certificate, whatever its name, never passes), then the signature over the publication bytes, and
 * only then are the bytes handed back. Nothing here decodes the Publication
 * itself: the caller does that with its own validating decoder.
 *
 * Ownership: gb_signer_load returns a signer the caller owns
 * (gb_signer_destroy); byte buffers returned through uint8_t ** are the
 * caller's, to free with gb_free. A signer may be used from several threads
 * (signing only reads it). */
#ifndef GB_NET_SIGNING_H
#define GB_NET_SIGNING_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* SignedPublication.signature_algorithm this build writes and accepts. */
#define GB_SIGNING_ALGORITHM "ecdsa-p256-sha256"
/* Largest packed Publication signed or accepted: a model snapshot
 * (GB_SNAPSHOT_MAX_BYTES) plus room for the explanation and metrics. */
#define GB_PUBLICATION_MAX_BYTES (((size_t)256 << 20) + ((size_t)64 << 20))
/* Largest packed SignedPublication accepted: the publication plus the
 * signature, algorithm name and certificate. */
#define GB_SIGNED_PUBLICATION_MAX_BYTES (GB_PUBLICATION_MAX_BYTES + ((size_t)64 << 10))

typedef struct gb_signer gb_signer_t;

/* Loads the coordinator's key and certificate (PEM files). Refuses a key
 * that is not P-256, a certificate that does not match the key, or one
 * without digitalSignature key usage; a certificate without the
 * publication-signing mark (gb_pki_cert_signs_publications) loads with a
 * warning, since every subscriber refuses what it signs. NULL and err naming the file. */
gb_signer_t *gb_signer_load(const char *key_file, const char *cert_file, gb_error_t *err);

/* Frees the signer; sets *s to NULL; NULL-safe. */
void gb_signer_destroy(gb_signer_t **s);

/* DER ECDSA signature over SHA-256 of pub[0..len) into a new buffer. */
int gb_signer_sign(const gb_signer_t *s, const uint8_t *pub, size_t len, uint8_t **sig,
                   size_t *sig_len, gb_error_t *err) GB_MUST_CHECK;

/* Signs the packed Publication pub[0..len) (1..GB_PUBLICATION_MAX_BYTES) and
 * packs it into a SignedPublication (*out, *out_len: a new buffer). */
int gb_publication_sign(const gb_signer_t *s, const uint8_t *pub, size_t len, uint8_t **out,
                        size_t *out_len, gb_error_t *err) GB_MUST_CHECK;

/* What a subscriber trusts. */
typedef struct {
    const char *ca_file;       /* PEM: the federation CA certificate (required) */
    const char *crl_file;      /* PEM CRL of the CA, or NULL */
    const char *expected_name; /* the coordinator's name (required) */
    time_t at;                 /* verify as of this time; 0: now (tests use it) */
} gb_verify_opts_t;

/* Checks a packed SignedPublication (see the top of this file for the order
 * of checks) and on success hands back a new copy of the publication bytes
 * (*pub, *pub_len). On failure *pub is NULL, err says why and a warning is
 * logged. Errors: GB_ERANGE (over GB_SIGNED_PUBLICATION_MAX_BYTES), GB_EFORMAT
 * (does not unpack, a field missing or malformed, truncated), GB_EPROTO
 * (unknown signature algorithm), GB_EINTEGRITY (certificate refused or
 * signature mismatch), GB_EIO (CA or CRL file unreadable), GB_ENOMEM. */
int gb_publication_verify(const uint8_t *buf, size_t len, const gb_verify_opts_t *opts,
                          uint8_t **pub, size_t *pub_len, gb_error_t *err) GB_MUST_CHECK;

/* Signs pub[0..len) and writes, atomically and mode 0644 (the certificate
 * and the .sig before the .pub, so a .pub never stands without its .sig),
 * what a person
 * needs to check it with stock openssl: DIR/round-NNNNNN.pub (the packed
 * Publication bytes), DIR/round-NNNNNN.sig (the DER signature), and
 * DIR/coordinator.crt (the signer's certificate, PEM). round >= 1; NNNNNN is
 * the round with at least six digits. */
int gb_publication_write_files(const gb_signer_t *s, const char *dir, uint64_t round,
                               const uint8_t *pub, size_t len, gb_error_t *err) GB_MUST_CHECK;

#endif
