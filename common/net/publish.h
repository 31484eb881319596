/* Publications: each round's outcome (global model, aggregate explanation,
 * metrics) goes out on the coordinator's PUB socket, signed with its key
 * (net/signing.h); any subscriber, inside the federation or not, checks the
 * signature before it trusts a byte (DESIGN.md, Wire and Security). The PUB
 * socket authenticates no subscriber: what it sends is public, which is why
 * `serve` opens it only when --publish names an endpoint, and says so.
 *
 * A publication is one ZeroMQ message of two frames: the topic
 * GB_PUBLISH_TOPIC and a packed SignedPublication. The subscriber refuses,
 * and logs, anything else: a frame of the wrong shape or size, a signature
 * or certificate that does not verify, a Publication that does not validate
 * (its model is checked like a model file), and a round not newer than the
 * last one it accepted (a replayed old publication, however well signed,
 * never replaces a newer model). PUB sockets drop messages for subscribers
 * that fall behind (ZeroMQ's PUB/SUB contract); the subscriber notices the
 * gap in round numbers and logs it, and a client that needs every round's
 * model gets it in its Task anyway.
 *
 * Ownership: _new returns an object the caller owns (_destroy: NULL-safe,
 * sets the pointer to NULL); the ZeroMQ context and the signer are borrowed
 * and must outlive it. A Publication returned by gb_subscriber_poll is the
 * caller's, freed with gb_publication_free (net/publication.h). */
#ifndef GB_NET_PUBLISH_H
#define GB_NET_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/signing.h"
#include "util/error.h"

#define GB_PUBLISH_TOPIC "glassbox.publication"

typedef struct gb_publisher gb_publisher_t;
typedef struct gb_subscriber gb_subscriber_t;

/* Binds a PUB socket on endpoint ("tcp://0.0.0.0:7701"). NULL and err on
 * failure. */
gb_publisher_t *gb_publisher_new(void *zmq_ctx, const char *endpoint, const gb_signer_t *signer,
                                 gb_error_t *err);
void gb_publisher_destroy(gb_publisher_t **pub);

/* The endpoint actually bound (a "*" port resolved). Borrowed. */
const char *gb_publisher_endpoint(const gb_publisher_t *pub);

/* Signs the packed Publication pub[0..len) and sends it to every
 * subscriber. The caller packs the Publication (and validates it: see
 * gb_publication_encode); the signature covers exactly these bytes. Returns
 * 0 or a negative gb_err. */
int gb_publisher_send(gb_publisher_t *pub, const uint8_t *publication, size_t len,
                      gb_error_t *err) GB_MUST_CHECK;

/* Connects a SUB socket to endpoint and subscribes to publications. trust
 * says which CA, CRL and coordinator name to believe (copied). NULL and err
 * on failure. */
gb_subscriber_t *gb_subscriber_new(void *zmq_ctx, const char *endpoint,
                                   const gb_verify_opts_t *trust, gb_error_t *err);
void gb_subscriber_destroy(gb_subscriber_t **sub);

/* Waits up to timeout_ms (-1: forever) for the next publication that passes
 * every check. Returns 1 with *out set, 0 on timeout (refused messages are
 * logged and skipped, not returned), or a negative gb_err when the socket
 * itself fails. With signed_out (may be NULL) it also hands back the
 * SignedPublication the publication came in (the caller's, freed with
 * glassbox__signed_publication__free_unpacked(*signed_out, NULL)): the
 * packed Publication, signature and signer certificate a subscriber saves
 * (glassbox-client subscribe --pub); NULL on timeout or error. */
int gb_subscriber_poll(gb_subscriber_t *sub, int timeout_ms, Glassbox__Publication **out,
                       Glassbox__SignedPublication **signed_out, gb_error_t *err) GB_MUST_CHECK;

#endif
