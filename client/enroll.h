/* Enrollment: a client without a certificate gets one from the coordinator
 * with an enrollment token (DESIGN.md, Security; kubelet's TLS bootstrap).
 *
 * The client makes (or reuses) its own P-256 key in out_dir, writes it there
 * 0600 before anything is sent, and sends only a CSR and the token, over a
 * TLS 1.3 session in which it checks the coordinator's certificate against
 * the CA file it was given (the token is never sent to anyone else) while it
 * has no certificate of its own. The answer is checked before anything is
 * written: the certificate must chain to that same CA, carry the requested
 * name and hold the client's own public key, and the CA certificate sent
 * along must be the one the client already trusts.
 *
 * Files written to out_dir: <name>.key (0600), <name>.crt and ca.crt, the
 * same names `glassbox-coordinator ca issue` uses. */
#ifndef GB_CLIENT_ENROLL_H
#define GB_CLIENT_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct {
    void *zmq_ctx;           /* ZeroMQ context to use (NULL: a private one) */
    const char *endpoint;    /* the coordinator, "tcp://HOST:7700" */
    const char *server_name; /* name on the coordinator's certificate */
    const char *ca_file;     /* PEM: the federation CA, the only trust anchor */
    const uint8_t *token;    /* the enrollment token (secret) */
    size_t token_len;        /* its length, 1..1024 */
    const char *name;        /* the client's name: certificate CN and SAN */
    const char *out_dir;     /* where key and certificates go (made 0700) */
    int timeout_ms;          /* give up after this long (0: 30 s) */
} gb_enroll_options_t;

/* Reads an enrollment token file: at most 1024 bytes, surrounding white
 * space removed, printable ASCII only, not empty. *token is the caller's, to
 * wipe and free with gb_enroll_token_free. */
int gb_enroll_token_read(const char *path, uint8_t **token, size_t *len,
                         gb_error_t *err) GB_MUST_CHECK;
void gb_enroll_token_free(uint8_t **token, size_t len);

/* The host of a "tcp://HOST:PORT" endpoint ("[::1]" gives "::1"), copied to
 * out (cap bytes). GB_EINVAL for anything else. */
int gb_enroll_endpoint_host(const char *endpoint, char *out, size_t cap,
                            gb_error_t *err) GB_MUST_CHECK;

/* Enrolls (see the top of this file). Returns 0 with the certificate written,
 * or a negative gb_err with err saying why: GB_EPROTO with the coordinator's
 * refusal ("coordinator refused: ERROR_UNAUTHENTICATED: token expired"),
 * GB_ECLOSED when no session came up in time (wrong address, wrong
 * coordinator certificate, coordinator down), GB_EINTEGRITY when the answer
 * fails its checks, GB_EIO for files. */
int gb_enroll(const gb_enroll_options_t *opts, gb_error_t *err) GB_MUST_CHECK;

#endif
