/* The secure channel: one mutual TLS 1.3 session between a client and the
 * coordinator, run over ZeroMQ frames through OpenSSL memory BIOs.
 *
 * The channel knows no sockets. The caller moves bytes: every frame that
 * arrives from the peer goes into gb_channel_feed; whatever the channel has
 * to send (handshake flights, encrypted messages, alerts) waits in its
 * outbox, which the caller sends as ONE frame and then consumes. That keeps
 * ZeroMQ, back-pressure and session tables in the transport (net/link.h) and
 * lets the tests and the fuzz target drive two channels back to back.
 *
 * Messages: the plaintext inside TLS is a stream of messages, each a 4-byte
 * big-endian length then that many bytes. The length is checked against the
 * channel's max_message as soon as its 4 bytes are decrypted, before any room
 * is made for the body; both ends must use the same max_message. Each frame
 * must hold whole TLS records (the outbox always does): a frame that ends in
 * the middle of a record is a truncated frame and fails the channel. A frame
 * may carry several messages, but at most 2 x (max_message + 4) bytes of them
 * (the receive buffer's hard bound): send the outbox after each large message;
 * gb_channel_send says GB_EAGAIN while over max_message bytes wait in it.
 *
 * Failure is final: a bad record (tampered, replayed, reordered, truncated),
 * a failed certificate check, an oversized message or garbage before the
 * handshake puts the channel in the failed state, with the TLS alert (if
 * any) in the outbox and the reason in err and the log. The caller sends the
 * outbox, destroys the channel and, on the client side, starts a new one: a
 * broken session is re-established by a new full handshake, never patched.
 *
 * Ownership: gb_tls_new returns a configuration the caller owns
 * (gb_tls_destroy); channels made from it borrow it, so it must outlive them.
 * gb_channel_new returns a channel the caller owns (gb_channel_destroy).
 * Pointers returned by gb_channel_outbox, gb_channel_next_message and
 * gb_channel_peer_name are borrowed: valid until the next call on the same
 * channel that is not a query (feed, send, consume, next_message, close,
 * destroy). Not thread-safe: one thread drives a channel at a time; a
 * gb_tls_t may be shared by channels on several threads. */
#ifndef GB_NET_CHANNEL_H
#define GB_NET_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Largest message a channel accepts by default: one Envelope frame. Larger
 * payloads (models, updates) travel as TensorChunk envelopes (net/chunk.h). */
#define GB_CHANNEL_DEFAULT_MAX_MESSAGE ((size_t)4 << 20)

typedef enum {
    GB_TLS_SERVER = 1, /* the coordinator: accepts handshakes */
    GB_TLS_CLIENT = 2, /* a client: starts handshakes */
} gb_tls_role_t;

typedef struct {
    gb_tls_role_t role;         /* which side of every channel made from this */
    const char *ca_file;        /* PEM: the federation CA, the only trust anchor */
    const char *cert_file;      /* PEM: own certificate; NULL only for a client
                                   that is enrolling (no certificate yet) */
    const char *key_file;       /* PEM: own private key; NULL with cert_file */
    const char *crl_file;       /* PEM CRL of the CA; NULL: no revocations yet.
                                   When set, every peer chain is checked against it */
    bool allow_anonymous_peers; /* server: a client without a certificate may
                                   finish the handshake (enrollment only; the
                                   transport lets such a session send nothing
                                   but an enrollment request) */
} gb_tls_options_t;

typedef struct gb_tls gb_tls_t;
typedef struct gb_channel gb_channel_t;

/* Builds the TLS configuration: TLS 1.3 only, peer verification against
 * ca_file alone (no system trust store), the CRL if given, own certificate
 * and key checked to match. Returns NULL and fills err on any failure, with
 * OpenSSL's reason. */
gb_tls_t *gb_tls_new(const gb_tls_options_t *opts, gb_error_t *err);

/* Replaces the revocation list (after `ca revoke`); channels created from
 * now on check against the new list. Returns 0 or a negative gb_err. */
int gb_tls_reload_crl(gb_tls_t *tls, const char *crl_file, gb_error_t *err) GB_MUST_CHECK;

/* Frees the configuration; safe on NULL; sets *tls to NULL. */
void gb_tls_destroy(gb_tls_t **tls);

/* A new channel. expected_peer_name: on a client, the name the coordinator's
 * certificate must carry (checked against its SAN DNS names, then CN; also
 * sent as SNI); required. On a server NULL (any client the CA vouches for;
 * its name is then gb_channel_peer_name), or a name the client's certificate
 * must carry. max_message: 0 for GB_CHANNEL_DEFAULT_MAX_MESSAGE, at most
 * 1 GiB. A client channel puts its first handshake flight in the outbox at
 * once. The trust store (CA and CRL) is the one current at this call. */
gb_channel_t *gb_channel_new(gb_tls_t *tls, const char *expected_peer_name,
                             size_t max_message, gb_error_t *err);

/* Frees the channel; safe on NULL; sets *ch to NULL. Sends nothing: call
 * gb_channel_close first for a clean close_notify. */
void gb_channel_destroy(gb_channel_t **ch);

/* Feeds one frame received from the peer. Advances the handshake, decrypts
 * records and queues complete messages for gb_channel_next_message; replies
 * (handshake flights, alerts) go to the outbox. Returns 0, or a negative
 * gb_err when the channel has failed (GB_EPROTO for a protocol violation:
 * garbage, an empty or truncated frame; GB_ECRYPTO for a certificate or
 * record failure, or the peer's alert saying so; GB_ERANGE for an oversized
 * message or frame), with the reason in err and a log line. A close_notify
 * from the peer returns 0 and leaves the channel closed, with the messages
 * before it still to take. Feeding a failed or closed channel returns
 * GB_EPROTO. The frame is only read during the call. */
int gb_channel_feed(gb_channel_t *ch, const void *frame, size_t len, gb_error_t *err) GB_MUST_CHECK;

/* Encrypts one message (length prefix added here) into the outbox. Only once
 * established (GB_EPROTO before, and after close or failure); len at most
 * max_message (GB_ERANGE). GB_EAGAIN while more than max_message bytes wait
 * in the outbox: send them, then retry (back-pressure; the channel is
 * unchanged). msg is only read during the call. Returns 0 or a negative
 * gb_err; any other failure fails the channel. */
int gb_channel_send(gb_channel_t *ch, const void *msg, size_t len, gb_error_t *err) GB_MUST_CHECK;

/* Takes the next complete received message: returns 1 and sets *msg, *len
 * (borrowed, see above), or 0 when there is none. A failed channel hands out
 * nothing more; a closed one still hands out what arrived before the close. */
int gb_channel_next_message(gb_channel_t *ch, const uint8_t **msg, size_t *len);

/* Bytes waiting to be sent to the peer, as one frame: returns their count
 * (0: nothing) and sets *bytes. The caller sends them and then calls
 * gb_channel_outbox_consume with the same count (a larger count consumes
 * what is there). A failed channel's outbox may hold its alert: send it. */
size_t gb_channel_outbox(gb_channel_t *ch, const uint8_t **bytes);
void gb_channel_outbox_consume(gb_channel_t *ch, size_t n);

/* Queues a TLS close_notify in the outbox; the channel accepts nothing more.
 * Before the handshake finished there is no close_notify to send: the channel
 * is just closed. Nothing happens on a failed channel or a second call. */
void gb_channel_close(gb_channel_t *ch);

/* The handshake finished and the peer's certificate (if any) was verified,
 * and the channel has neither failed nor closed since: messages can flow. */
bool gb_channel_established(const gb_channel_t *ch);

/* The channel failed or was closed by either side. */
bool gb_channel_failed(const gb_channel_t *ch);

/* Checks the established peer's certificate chain again, against the
 * trust store current now (after gb_tls_reload_crl: the new CRL) and the
 * current time, with the same purpose as the handshake: a session outlives
 * neither its peer's revocation nor its expiry when the transport asks
 * (net/link.h, gb_link_server_recheck). Returns 0 while the peer still
 * passes, or when there is nothing to check (an anonymous peer, a channel
 * not established); GB_EINTEGRITY with OpenSSL's verdict in err
 * ("certificate revoked", "certificate has expired") naming the peer; GB_ENOMEM.
 * Changes nothing in the channel: the caller ends the session. */
int gb_channel_recheck_peer(gb_channel_t *ch, gb_error_t *err) GB_MUST_CHECK;

/* CN of the verified peer certificate (a verified certificate without
 * exactly one printable CN fails the handshake), or NULL before the handshake
 * finished or for an anonymous (enrolling) client. Stays valid after a close
 * or failure, until gb_channel_destroy. */
const char *gb_channel_peer_name(const gb_channel_t *ch);

#endif
