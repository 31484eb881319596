/* The coordinator's front door: the link server on its ROUTER socket and
 * what it says to every session before any round is involved.
 *
 *   - A session without a certificate (an enrolling client) may send one
 *     EnrollRequest; the enrollment service answers it (enroll_service.h)
 *     and the session is closed after the answer. Anything else from it is
 *     refused with ERROR_UNAUTHENTICATED.
 *   - A client with a certificate sends Join first; it gets a Welcome with
 *     its client id (the certificate's CN: the only identity there is), the
 *     federation's name and the heartbeat rules. Heartbeats are acknowledged.
 *     A message before Join, or one this coordinator does not expect now, is
 *     refused with ERROR_UNEXPECTED.
 *   - A message that does not decode gets an Error with the decoder's reason
 *     code and a log line, and changes nothing; the session stays up.
 *   - The CA's revocation list is reloaded when crl.pem changes (after
 *     `ca revoke`), so a revoked client's next handshake fails without a
 *     restart.
 * The round loop builds on this (it takes Join's clients and sends Tasks);
 * until then Update and EvalResult are refused as unexpected.
 *
 * Ownership: gb_front_door_new returns an object the caller owns
 * (gb_front_door_destroy); the ZeroMQ context is borrowed. Single-threaded:
 * one thread calls gb_front_door_step in a loop. */
#ifndef GB_COORDINATOR_FRONT_DOOR_H
#define GB_COORDINATOR_FRONT_DOOR_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct {
    const char *ca_dir;         /* the CA directory of `ca init` (required) */
    const char *listen;         /* endpoint for clients (default tcp://0.0.0.0:7700) */
    const char *federation;     /* name sent in Welcome (default "glassbox") */
    int cert_days;              /* validity of enrolled certificates (default 365) */
    int heartbeat_interval_ms;  /* told to clients (default 5000) */
    int heartbeat_timeout_ms;   /* silence that ends a session (default 30000) */
} gb_front_door_options_t;

typedef struct gb_front_door gb_front_door_t;

/* Opens the CA, its token store and its TLS configuration (the
 * coordinator's certificate, the CRL, anonymous peers allowed for
 * enrollment) and binds the link server. NULL and err on failure. */
gb_front_door_t *gb_front_door_new(void *zmq_ctx, const gb_front_door_options_t *opts,
                                   gb_error_t *err);
void gb_front_door_destroy(gb_front_door_t **door);

/* The endpoint actually bound. Borrowed. */
const char *gb_front_door_endpoint(const gb_front_door_t *door);

/* Handles what arrives within timeout_ms (-1: until something does): every
 * pending event is answered before it returns. Returns 0, or a negative
 * gb_err when the socket itself fails. */
int gb_front_door_step(gb_front_door_t *door, int timeout_ms, gb_error_t *err) GB_MUST_CHECK;

/* Clients that have joined and are connected now. */
size_t gb_front_door_joined(const gb_front_door_t *door);

#endif
