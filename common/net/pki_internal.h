/* What pki.c (keys, certificates, CSRs, CRLs, verification) and pki_ca.c
 * (the CA and its registry) share beyond the public API of pki.h: the
 * checks and encoders both halves apply, so that a certificate the CA makes
 * and one it loads are held to the same rules. Implemented in pki.c. Not
 * for other modules: include net/pki.h. */
#ifndef GB_NET_PKI_INTERNAL_H
#define GB_NET_PKI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "net/pki.h"
#include "util/error.h"

/* Copies the bytes of a memory BIO into a new buffer with a NUL after them
 * (not counted in *len); *out is the caller's, to free with gb_free. The BIO
 * is only read. GB_ECRYPTO, GB_ENOMEM. */
int gb_pki_bio_take(BIO *bio, uint8_t **out, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* 0 when key is a type this module accepts (gb_pki_key_type: P-256 or
 * Ed25519); else GB_EINVAL with err "<where>: key type ... is not
 * accepted". */
int gb_pki_check_key_kind(EVP_PKEY *key, const char *where, gb_error_t *err) GB_MUST_CHECK;

/* The digest to sign with key: SHA-256 for ECDSA, NULL for Ed25519 (which
 * hashes internally). Static OpenSSL object, never freed. */
const EVP_MD *gb_pki_sign_md(EVP_PKEY *key);

/* Copies the single CN of subject (a certificate's or a CSR's, named `what`
 * in errors) into out after gb_pki_check_name. GB_EFORMAT for no CN, two
 * CNs, a CN that is not a string or has an embedded NUL; GB_EINVAL (with
 * `what` prefixed) for a CN that is not a valid name. */
int gb_pki_subject_name(const X509_NAME *subject, const char *what,
                        char out[GB_PKI_NAME_MAX + 1], gb_error_t *err) GB_MUST_CHECK;

#endif
