/* The coordinator's answer to an enrollment request (DESIGN.md, Security):
 * a client that has no certificate yet opens an anonymous TLS session, sends
 * one EnrollRequest with its token and CSR, and gets back either an
 * EnrollResponse with its certificate or an Error saying why not.
 *
 * Order of checks, cheapest refusal first and the token's use spent only
 * when the request could otherwise succeed: the envelope (decoded and
 * validated), that its body is an EnrollRequest (an anonymous session may
 * send nothing else: ERROR_UNAUTHENTICATED), the CSR (parses, its
 * self-signature holds, its CN is a valid name equal to client_name:
 * ERROR_INVALID_VALUE), then the token without spending it (wrong,
 * expired or used up: ERROR_UNAUTHENTICATED; so without a good token nobody
 * learns which names are taken), then the CA's policy (gb_ca_check_csr: the
 * name is reserved for a server, such as the coordinator's in any case,
 * revoked, or held by another key: ERROR_FORBIDDEN), and only then is a use
 * spent and the certificate signed: a request the CA refuses costs the
 * token nothing. Every refusal is logged by gb_error_warn; the token itself
 * never is.
 *
 * Ownership: the service borrows the CA and the token store, which must
 * outlive it; replies are new buffers the caller frees with gb_free. */
#ifndef GB_COORDINATOR_ENROLL_SERVICE_H
#define GB_COORDINATOR_ENROLL_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "enroll_tokens.h"
#include "net/pki.h"
#include "util/error.h"

typedef struct {
    gb_ca_t *ca;         /* signs the certificates (borrowed) */
    gb_tokens_t *tokens; /* the token store (borrowed) */
    int days;            /* validity of the certificates issued (1..GB_PKI_MAX_DAYS) */
} gb_enroll_service_t;

/* Answers the packed Envelope msg[0..len) from an anonymous session with a
 * packed reply Envelope of sequence reply_seq: EnrollResponse on success,
 * Error otherwise. Returns 0 when the request was granted, a negative gb_err
 * when it was refused (err says why; *reply still holds the Error to send),
 * or GB_ENOMEM/GB_ECRYPTO with *reply NULL when not even an Error could be
 * made. now: the clock for token expiry (0: time(NULL)). */
int gb_enroll_service_answer(const gb_enroll_service_t *svc, const uint8_t *msg, size_t len,
                             uint64_t reply_seq, time_t now, uint8_t **reply,
                             size_t *reply_len, gb_error_t *err) GB_MUST_CHECK;

#endif
