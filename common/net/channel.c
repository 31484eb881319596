/* The secure channel (see channel.h): one OpenSSL TLS 1.3 session driven
 * through a BIO of our own instead of a socket.
 *
 * Why a custom BIO and not BIO_s_mem: the frame handed to gb_channel_feed is
 * read by OpenSSL straight from the caller's buffer (no copy into a memory
 * BIO first), and whatever OpenSSL writes lands directly in the outbox, a
 * plain buffer the caller reads and consumes without another copy. Records
 * are decrypted by SSL_read_ex straight into the receive buffer, where the
 * messages are then handed out in place; a message is sent as its 4-byte
 * length and first bytes in one record, then the rest straight from the
 * caller's buffer. So bytes are copied only where OpenSSL itself copies, and
 * in steady state nothing is allocated per message: the outbox and the
 * receive buffer grow to their high-water marks and stay there.
 *
 * Bounds: the receive buffer never exceeds 2 x (max_message + 4), the most a
 * well-behaved peer can put in one frame (gb_channel_send refuses to queue a
 * message while more than max_message bytes wait in the outbox). A message
 * length is checked against max_message as soon as its 4 bytes are
 * decrypted, before room is made for its body. Every frame must tile into
 * whole TLS records, which is checked before OpenSSL sees a byte of it, so a
 * truncated frame is refused exactly and OpenSSL is never left holding half
 * a record. */
#include "net/channel.h"
#include "net/wire.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/tls_config.h"
#include "util/alloc.h"
#include "util/log.h"

#define S_RECORD_HEADER 5          /* type, version(2), length(2) */
#define S_RECORD_PLAIN_MAX 16384   /* most plaintext one TLS record carries */
#define S_LEN_PREFIX 4             /* big-endian message length */
#define S_MAX_MESSAGE_LIMIT ((size_t)1 << 30)
#define S_RX_INITIAL ((size_t)32 << 10)
#define S_OUTBOX_INITIAL ((size_t)8 << 10)
#define S_NAME_MAX 256             /* a CN is at most 64 characters, 4 bytes each in UTF-8 */
#define S_HOST_MAX 253             /* longest DNS name */

typedef enum {
    S_HANDSHAKE = 0, /* handshake in progress */
    S_ESTABLISHED,   /* messages flow both ways */
    S_CLOSED,        /* close_notify sent or received: nothing more comes in */
    S_FAILED,        /* a check failed; final */
} s_state_t;

struct gb_channel {
    gb_tls_t *tls;            /* borrowed configuration */
    SSL *ssl;                 /* the session; owns the BIO below */
    s_state_t state;          /* see s_state_t */
    bool close_sent;          /* our close_notify is in the outbox already */
    size_t max_message;       /* largest message either way */
    const uint8_t *in;        /* unread rest of the frame being fed (borrowed) */
    size_t in_len;            /* its length */
    uint8_t *out;             /* outbox: bytes for the peer */
    size_t out_off;           /* first byte not yet consumed */
    size_t out_len;           /* end of the bytes held */
    size_t out_cap;           /* allocated size */
    bool out_oom;             /* an outbox append failed: OpenSSL saw a write error */
    uint8_t *rx;              /* decrypted plaintext: messages back to back */
    size_t rx_cap;            /* allocated size */
    size_t rx_limit;          /* most rx may grow to: 2 x (max_message + 4) */
    size_t rx_pos;            /* next message for gb_channel_next_message */
    size_t rx_scan;           /* start of the first incomplete message */
    size_t rx_len;            /* end of the decrypted bytes */
    bool has_peer_name;       /* peer_name holds the verified peer's CN */
    char peer_name[S_NAME_MAX]; /* CN of the verified peer certificate */
    char refused[S_NAME_MAX]; /* subject of the first certificate the verifier refused */
    uint8_t tx[S_RECORD_PLAIN_MAX]; /* length prefix + first bytes of a message: one record */
};

static const char *s_side(const gb_channel_t *ch)
{
    return ch->tls->role == GB_TLS_SERVER ? "server" : "client";
}

/* ---- the BIO: frames in, outbox out ------------------------------------- */

static BIO_METHOD *s_bio_method;
static pthread_once_t s_bio_once = PTHREAD_ONCE_INIT;

static int s_outbox_append(gb_channel_t *ch, const void *data, size_t n)
{
    if (ch->out_off > 0 && ch->out_len + n > ch->out_cap) {
        memmove(ch->out, ch->out + ch->out_off, ch->out_len - ch->out_off);
        ch->out_len -= ch->out_off;
        ch->out_off = 0;
    }
    if (n > ch->out_cap - ch->out_len) {
        size_t want = ch->out_len + n;
        size_t cap = ch->out_cap * 2 > want ? ch->out_cap * 2 : want;
        uint8_t *grown = gb_realloc(ch->out, cap);
        if (!grown)
            return GB_ENOMEM;
        ch->out = grown;
        ch->out_cap = cap;
    }
    memcpy(ch->out + ch->out_len, data, n);
    ch->out_len += n;
    return 0;
}

static int s_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    gb_channel_t *ch = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (s_outbox_append(ch, data, len) != 0) {
        ch->out_oom = true;
        *written = 0;
        return 0;
    }
    *written = len;
    return 1;
}

/* Hands OpenSSL the frame being fed; "retry" (WANT_READ) once it is used up. */
static int s_bio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    gb_channel_t *ch = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (ch->in_len == 0) {
        BIO_set_retry_read(b);
        *readbytes = 0;
        return 0;
    }
    size_t n = len < ch->in_len ? len : ch->in_len;
    memcpy(buf, ch->in, n);
    ch->in += n;
    ch->in_len -= n;
    *readbytes = n;
    return 1;
}

static long s_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    gb_channel_t *ch = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the outbox is the caller's to send */
    case BIO_CTRL_PENDING:
        return ch ? (long)ch->in_len : 0;
    case BIO_CTRL_WPENDING:
        return 0;
    default:
        return 0;
    }
}

static void s_bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "glassbox channel");
    if (!m)
        return;
    if (!BIO_meth_set_write_ex(m, s_bio_write) || !BIO_meth_set_read_ex(m, s_bio_read) ||
        !BIO_meth_set_ctrl(m, s_bio_ctrl)) {
        BIO_meth_free(m);
        return;
    }
    s_bio_method = m;
}

/* ---- failure ------------------------------------------------------------ */

/* Puts the channel in the failed state, logs the reason as a warning (the
 * peer's input or certificate is at fault) and returns code. */
static int s_fail(gb_channel_t *ch, gb_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(gb_channel_t *ch, gb_error_t *err, int code, const char *fmt, ...)
{
    char msg[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ch->state = S_FAILED;
    ch->in = NULL;
    ch->in_len = 0;
    return gb_error_warn(err, code, "%s channel: %s", s_side(ch), msg);
}

/* Alerts that say a certificate or a record failed a cryptographic check. */
static bool s_crypto_alert(int alert)
{
    switch (alert) {
    case SSL_AD_BAD_RECORD_MAC:
    case SSL_AD_HANDSHAKE_FAILURE:
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

/* GB_ECRYPTO for a certificate or record failure (ours or the peer's alert
 * saying so), GB_EPROTO for anything else the peer got wrong. */
static int s_classify(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return GB_EPROTO;
    int reason = ERR_GET_REASON(e);
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
        return s_crypto_alert(reason - SSL_AD_REASON_OFFSET) ? GB_ECRYPTO : GB_EPROTO;
    switch (reason) {
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_BAD_SIGNATURE:
    case SSL_R_NO_SHARED_CIPHER:
        return GB_ECRYPTO;
    default:
        return GB_EPROTO;
    }
}

/* Fails the channel after an OpenSSL call returned ssl_error; the reason
 * comes from the verify result and the drained error queue. */
static int s_fail_ssl(gb_channel_t *ch, int ssl_error, const char *what, gb_error_t *err)
{
    if (ch->out_oom) {
        ERR_clear_error();
        ch->state = S_FAILED;
        return gb_error_set(err, GB_ENOMEM, "%s channel: %s: out of memory for the outbox",
                            s_side(ch), what);
    }
    long verify = SSL_get_verify_result(ch->ssl);
    unsigned long first = ERR_peek_error();
    char why[GB_ERROR_MSG_MAX / 2];
    (void)gb_wire_openssl_reasons(why, sizeof why);
    if (ssl_error == SSL_ERROR_SSL && verify != X509_V_OK)
        return s_fail(ch, err, GB_ECRYPTO, "%s failed: peer certificate %s%s%srefused: %s (%s)",
                      what, ch->refused[0] ? "'" : "", ch->refused, ch->refused[0] ? "' " : "",
                      X509_verify_cert_error_string(verify), why);
    int code = ssl_error == SSL_ERROR_SSL ? s_classify(first) : GB_EPROTO;
    return s_fail(ch, err, code, "%s failed: %s", what, why);
}

/* Remembers which certificate the verifier refused, for the log line. */
static int s_verify_cb(int ok, X509_STORE_CTX *vctx)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(vctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    gb_channel_t *ch = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cur = X509_STORE_CTX_get_current_cert(vctx);
    if (ch && cur && !ch->refused[0])
        X509_NAME_oneline(X509_get_subject_name(cur), ch->refused, sizeof ch->refused);
    return ok;
}

/* ---- handshake ---------------------------------------------------------- */

/* The one CN of cert as printable UTF-8 in out; false if it has none, more
 * than one, or one with control characters. */
static bool s_cert_cn(X509 *cert, char *out, size_t cap)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
        return false;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    bool ok = len > 0 && (size_t)len < cap;
    for (int k = 0; ok && k < len; k++)
        ok = utf8[k] >= 0x20 && utf8[k] != 0x7f;
    if (ok) {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

static int s_established(gb_channel_t *ch, gb_error_t *err)
{
    long verify = SSL_get_verify_result(ch->ssl);
    if (verify != X509_V_OK)
        return s_fail(ch, err, GB_ECRYPTO, "handshake finished with peer certificate refused: %s",
                      X509_verify_cert_error_string(verify));
    X509 *peer = SSL_get0_peer_certificate(ch->ssl);
    if (peer) {
        if (!s_cert_cn(peer, ch->peer_name, sizeof ch->peer_name))
            return s_fail(ch, err, GB_ECRYPTO,
                          "peer certificate has no single printable common name");
        ch->has_peer_name = true;
    } else if (ch->tls->role == GB_TLS_CLIENT || !ch->tls->allow_anonymous_peers) {
        return s_fail(ch, err, GB_ECRYPTO, "peer sent no certificate");
    }
    ch->state = S_ESTABLISHED;
    if (ch->has_peer_name)
        gb_log_info("%s channel: TLS 1.3 session with '%s' established (%s)", s_side(ch),
                    ch->peer_name, SSL_get_cipher_name(ch->ssl));
    else
        gb_log_info("%s channel: TLS 1.3 session with an anonymous (enrolling) client "
                    "established (%s)",
                    s_side(ch), SSL_get_cipher_name(ch->ssl));
    return 0;
}

static int s_handshake(gb_channel_t *ch, gb_error_t *err)
{
    int r = SSL_do_handshake(ch->ssl);
    if (r == 1)
        return s_established(ch, err);
    int e = SSL_get_error(ch->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    return s_fail_ssl(ch, e, "handshake", err);
}

/* ---- receiving ---------------------------------------------------------- */

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* True when frame[0..len) is whole TLS records; else *bad is the offset of
 * the record that does not fit. */
static bool s_whole_records(const uint8_t *frame, size_t len, size_t *bad)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < S_RECORD_HEADER) {
            *bad = off;
            return false;
        }
        size_t body = (size_t)frame[off + 3] << 8 | frame[off + 4];
        if (len - off - S_RECORD_HEADER < body) {
            *bad = off;
            return false;
        }
        off += S_RECORD_HEADER + body;
    }
    return true;
}

/* Advances rx_scan over the messages now complete, checking each length
 * as soon as it is known. */
static int s_scan(gb_channel_t *ch, gb_error_t *err)
{
    while (ch->rx_len - ch->rx_scan >= S_LEN_PREFIX) {
        size_t len = s_be32(ch->rx + ch->rx_scan);
        if (len > ch->max_message)
            return s_fail(ch, err, GB_ERANGE,
                          "peer sent a message of %zu bytes, max_message is %zu", len,
                          ch->max_message);
        if (ch->rx_scan + S_LEN_PREFIX + len > ch->rx_limit)
            return s_fail(ch, err, GB_ERANGE,
                          "peer put more than %zu bytes of messages in one frame (the most is "
                          "2 x max_message)",
                          ch->rx_limit);
        if (ch->rx_len - ch->rx_scan - S_LEN_PREFIX < len)
            break;
        ch->rx_scan += S_LEN_PREFIX + len;
    }
    return 0;
}

/* Makes room in rx for the next SSL_read: the whole current message when its
 * length is known, else a record's worth; growth is bounded by rx_limit.
 * Returns 0 with *room > 0, 0 with *room == 0 when rx is full, or GB_ENOMEM. */
static int s_rx_room(gb_channel_t *ch, size_t *room)
{
    size_t want = ch->rx_len + S_RECORD_PLAIN_MAX;
    if (ch->rx_len - ch->rx_scan >= S_LEN_PREFIX)
        want = ch->rx_scan + S_LEN_PREFIX + s_be32(ch->rx + ch->rx_scan); /* s_scan bounded it */
    if (want > ch->rx_limit)
        want = ch->rx_limit;
    if (want > ch->rx_cap) {
        size_t cap = ch->rx_cap * 2 > want ? ch->rx_cap * 2 : want;
        if (cap > ch->rx_limit)
            cap = ch->rx_limit;
        uint8_t *grown = gb_realloc(ch->rx, cap);
        if (!grown)
            return GB_ENOMEM;
        ch->rx = grown;
        ch->rx_cap = cap;
    }
    *room = ch->rx_cap - ch->rx_len;
    return 0;
}

/* Decrypts everything the frame holds into rx. */
static int s_read_all(gb_channel_t *ch, gb_error_t *err)
{
    for (;;) {
        size_t room = 0, n = 0;
        if (s_rx_room(ch, &room) != 0) {
            ch->state = S_FAILED;
            return gb_error_set(err, GB_ENOMEM, "%s channel: out of memory for received messages",
                                s_side(ch));
        }
        if (room == 0) {
            if (ch->in_len == 0 && !SSL_has_pending(ch->ssl))
                return 0;
            return s_fail(ch, err, GB_ERANGE,
                          "peer put more than %zu bytes of messages in one frame (the most is "
                          "2 x max_message)",
                          ch->rx_limit);
        }
        if (SSL_read_ex(ch->ssl, ch->rx + ch->rx_len, room, &n) == 1) {
            ch->rx_len += n;
            int rc = s_scan(ch, err);
            if (rc != 0)
                return rc;
            continue;
        }
        int e = SSL_get_error(ch->ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            ch->state = S_CLOSED;
            ch->in = NULL;
            ch->in_len = 0;
            gb_log_info("%s channel: peer%s%s%s closed the session", s_side(ch),
                        ch->has_peer_name ? " '" : "", ch->has_peer_name ? ch->peer_name : "",
                        ch->has_peer_name ? "'" : "");
            return 0;
        }
        return s_fail_ssl(ch, e, "reading a record", err);
    }
}

int gb_channel_feed(gb_channel_t *ch, const void *frame, size_t len, gb_error_t *err)
{
    if (!ch)
        return gb_error_set(err, GB_EINVAL, "gb_channel_feed: NULL channel");
    if (ch->state == S_FAILED || ch->state == S_CLOSED)
        return gb_error_set(err, GB_EPROTO, "%s channel is %s: it takes no more frames",
                            s_side(ch), ch->state == S_FAILED ? "failed" : "closed");
    if (!frame && len > 0)
        return gb_error_set(err, GB_EINVAL, "gb_channel_feed: NULL frame of %zu bytes", len);
    if (len == 0)
        return s_fail(ch, err, GB_EPROTO, "peer sent an empty frame");
    size_t bad = 0;
    if (!s_whole_records(frame, len, &bad))
        return s_fail(ch, err, GB_EPROTO,
                      "truncated frame: %zu bytes, the TLS record at offset %zu does not end "
                      "inside it",
                      len, bad);
    /* Messages handed out before this call are no longer borrowed. */
    if (ch->rx_pos > 0) {
        memmove(ch->rx, ch->rx + ch->rx_pos, ch->rx_len - ch->rx_pos);
        ch->rx_len -= ch->rx_pos;
        ch->rx_scan -= ch->rx_pos;
        ch->rx_pos = 0;
    }
    ch->in = frame;
    ch->in_len = len;
    ERR_clear_error();
    int rc = 0;
    if (ch->state == S_HANDSHAKE)
        rc = s_handshake(ch, err);
    if (rc == 0 && ch->state == S_ESTABLISHED)
        rc = s_read_all(ch, err);
    ch->in = NULL;
    ch->in_len = 0;
    return rc;
}

int gb_channel_next_message(gb_channel_t *ch, const uint8_t **msg, size_t *len)
{
    if (!ch || !msg || !len || ch->state == S_FAILED || ch->rx_pos >= ch->rx_scan)
        return 0;
    size_t n = s_be32(ch->rx + ch->rx_pos);
    *msg = ch->rx + ch->rx_pos + S_LEN_PREFIX;
    *len = n;
    ch->rx_pos += S_LEN_PREFIX + n;
    return 1;
}

/* ---- sending ------------------------------------------------------------ */

int gb_channel_send(gb_channel_t *ch, const void *msg, size_t len, gb_error_t *err)
{
    if (!ch)
        return gb_error_set(err, GB_EINVAL, "gb_channel_send: NULL channel");
    if (ch->state != S_ESTABLISHED)
        return gb_error_set(err, GB_EPROTO, "%s channel: cannot send, the channel is %s",
                            s_side(ch),
                            ch->state == S_HANDSHAKE ? "still in its handshake"
                            : ch->state == S_CLOSED  ? "closed"
                                                     : "failed");
    if (!msg && len > 0)
        return gb_error_set(err, GB_EINVAL, "gb_channel_send: NULL message of %zu bytes", len);
    if (len > ch->max_message)
        return gb_error_set(err, GB_ERANGE,
                            "%s channel: message of %zu bytes exceeds max_message %zu", s_side(ch),
                            len, ch->max_message);
    if (ch->out_len - ch->out_off > ch->max_message)
        return gb_error_set(err, GB_EAGAIN,
                            "%s channel: %zu bytes wait in the outbox; send them before "
                            "queueing more (a frame carries at most 2 x max_message)",
                            s_side(ch), ch->out_len - ch->out_off);
    ERR_clear_error();
    const uint8_t *body = msg;
    size_t first = len < sizeof ch->tx - S_LEN_PREFIX ? len : sizeof ch->tx - S_LEN_PREFIX;
    ch->tx[0] = (uint8_t)(len >> 24);
    ch->tx[1] = (uint8_t)(len >> 16);
    ch->tx[2] = (uint8_t)(len >> 8);
    ch->tx[3] = (uint8_t)len;
    if (first)
        memcpy(ch->tx + S_LEN_PREFIX, body, first);
    size_t written = 0;
    int r = SSL_write_ex(ch->ssl, ch->tx, S_LEN_PREFIX + first, &written);
    if (r == 1 && len > first)
        r = SSL_write_ex(ch->ssl, body + first, len - first, &written);
    if (r != 1)
        return s_fail_ssl(ch, SSL_get_error(ch->ssl, r), "sending a message", err);
    return 0;
}

size_t gb_channel_outbox(gb_channel_t *ch, const uint8_t **bytes)
{
    if (!ch) {
        if (bytes)
            *bytes = NULL;
        return 0;
    }
    if (bytes)
        *bytes = ch->out + ch->out_off;
    return ch->out_len - ch->out_off;
}

void gb_channel_outbox_consume(gb_channel_t *ch, size_t n)
{
    if (!ch)
        return;
    size_t held = ch->out_len - ch->out_off;
    if (n > held)
        n = held; /* API misuse; consuming what is there is the safe reading */
    ch->out_off += n;
    if (ch->out_off == ch->out_len)
        ch->out_off = ch->out_len = 0;
}

void gb_channel_close(gb_channel_t *ch)
{
    if (!ch || ch->state == S_FAILED || ch->close_sent)
        return;
    if (ch->state == S_HANDSHAKE) {
        /* OpenSSL sends no close_notify before the handshake is done: the
         * peer sees the session go quiet and the transport drops it. */
        ch->state = S_CLOSED;
        ch->close_sent = true;
        return;
    }
    ERR_clear_error();
    if (SSL_shutdown(ch->ssl) < 0)
        ERR_clear_error();
    ch->state = S_CLOSED;
    ch->close_sent = true;
}

/* ---- queries ------------------------------------------------------------ */

bool gb_channel_established(const gb_channel_t *ch)
{
    return ch && ch->state == S_ESTABLISHED;
}

bool gb_channel_failed(const gb_channel_t *ch)
{
    return !ch || ch->state == S_FAILED || ch->state == S_CLOSED;
}

const char *gb_channel_peer_name(const gb_channel_t *ch)
{
    return ch && ch->has_peer_name ? ch->peer_name : NULL;
}

int gb_channel_recheck_peer(gb_channel_t *ch, gb_error_t *err)
{
    if (!ch || ch->state != S_ESTABLISHED)
        return 0;
    X509 *peer = SSL_get0_peer_certificate(ch->ssl);
    if (!peer)
        return 0;
    /* The server side's peer chain holds no leaf; the client's starts with it. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ch->ssl);
    X509_STORE *store = gb_tls_store_ref(ch->tls);
    X509_STORE_CTX *vctx = store ? X509_STORE_CTX_new() : NULL;
    int rc = 0;
    if (!vctx || !X509_STORE_CTX_init(vctx, store, peer, chain) ||
        !X509_STORE_CTX_set_default(vctx, ch->tls->role == GB_TLS_SERVER ? "ssl_client"
                                                                          : "ssl_server")) {
        rc = gb_wire_openssl_error(err, GB_ENOMEM, "%s channel: checking '%s' again",
                                   s_side(ch), ch->peer_name);
        goto out;
    }
    X509_VERIFY_PARAM_set_depth(X509_STORE_CTX_get0_param(vctx), SSL_get_verify_depth(ch->ssl));
    if (X509_verify_cert(vctx) != 1) {
        int e = X509_STORE_CTX_get_error(vctx);
        ERR_clear_error();
        rc = gb_error_set(err, GB_EINTEGRITY, "%s channel: peer '%s' no longer passes: %s",
                          s_side(ch), ch->has_peer_name ? ch->peer_name : "?",
                          X509_verify_cert_error_string(e));
    }
out:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    return rc;
}

/* ---- life cycle --------------------------------------------------------- */

/* A name a certificate can carry and SNI can send: 1..253 printable ASCII
 * characters without spaces. */
static bool s_host_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > S_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= 0x20 || name[i] >= 0x7f)
            return false;
    return true;
}

gb_channel_t *gb_channel_new(gb_tls_t *tls, const char *expected_peer_name, size_t max_message,
                             gb_error_t *err)
{
    if (!tls) {
        gb_error_set(err, GB_EINVAL, "gb_channel_new: NULL TLS configuration");
        return NULL;
    }
    if (max_message == 0)
        max_message = GB_CHANNEL_DEFAULT_MAX_MESSAGE;
    if (max_message > S_MAX_MESSAGE_LIMIT) {
        gb_error_set(err, GB_ERANGE, "gb_channel_new: max_message %zu exceeds %zu", max_message,
                     S_MAX_MESSAGE_LIMIT);
        return NULL;
    }
    if (tls->role == GB_TLS_CLIENT && !expected_peer_name) {
        gb_error_set(err, GB_EINVAL, "gb_channel_new: a client channel needs the coordinator's "
                                     "certificate name (expected_peer_name)");
        return NULL;
    }
    if (expected_peer_name && !s_host_ok(expected_peer_name)) {
        gb_error_set(err, GB_EINVAL,
                     "gb_channel_new: expected_peer_name '%.64s' is not a certificate name "
                     "(1 to 253 printable characters, no spaces)",
                     expected_peer_name);
        return NULL;
    }
    pthread_once(&s_bio_once, s_bio_method_init);
    if (!s_bio_method) {
        gb_error_set(err, GB_ENOMEM, "gb_channel_new: no BIO method (out of memory)");
        return NULL;
    }
    gb_channel_t *ch = gb_calloc(1, sizeof *ch);
    if (!ch) {
        gb_error_set(err, GB_ENOMEM, "gb_channel_new: out of memory");
        return NULL;
    }
    ch->tls = tls;
    ch->max_message = max_message;
    ch->rx_limit = 2 * (max_message + S_LEN_PREFIX);
    ch->rx_cap = S_RX_INITIAL < ch->rx_limit ? S_RX_INITIAL : ch->rx_limit;
    ch->out_cap = S_OUTBOX_INITIAL;
    ch->rx = gb_malloc(ch->rx_cap);
    ch->out = gb_malloc(ch->out_cap);
    if (!ch->rx || !ch->out) {
        gb_error_set(err, GB_ENOMEM, "gb_channel_new: out of memory");
        goto fail;
    }
    ERR_clear_error();
    ch->ssl = SSL_new(tls->ctx);
    BIO *bio = ch->ssl ? BIO_new(s_bio_method) : NULL;
    if (!bio) {
        gb_wire_openssl_error(err, GB_ENOMEM, "gb_channel_new: SSL session");
        goto fail;
    }
    BIO_set_data(bio, ch);
    BIO_set_init(bio, 1);
    SSL_set_bio(ch->ssl, bio, bio); /* the SSL owns the BIO now */
    SSL_set_app_data(ch->ssl, ch);
    SSL_set_verify(ch->ssl, SSL_CTX_get_verify_mode(tls->ctx), s_verify_cb);
    if (gb_tls_attach_store(tls, ch->ssl) != 0) {
        gb_wire_openssl_error(err, GB_ENOMEM, "gb_channel_new: trust store");
        goto fail;
    }
    if (expected_peer_name) {
        SSL_set_hostflags(ch->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ch->ssl, expected_peer_name) != 1) {
            gb_wire_openssl_error(err, GB_ENOMEM, "gb_channel_new: expected name '%s'",
                                  expected_peer_name);
            goto fail;
        }
    }
    if (tls->role == GB_TLS_SERVER) {
        SSL_set_accept_state(ch->ssl);
        return ch;
    }
    SSL_set_connect_state(ch->ssl);
    if (SSL_set_tlsext_host_name(ch->ssl, expected_peer_name) != 1) {
        gb_wire_openssl_error(err, GB_EINVAL, "gb_channel_new: server name '%s'",
                              expected_peer_name);
        goto fail;
    }
    int r = SSL_do_handshake(ch->ssl); /* the ClientHello goes to the outbox */
    if (r != 1 && SSL_get_error(ch->ssl, r) == SSL_ERROR_WANT_READ && !ch->out_oom)
        return ch;
    if (ch->out_oom) {
        ERR_clear_error();
        gb_error_set(err, GB_ENOMEM, "gb_channel_new: out of memory for the ClientHello");
    } else {
        gb_wire_openssl_error(err, GB_ECRYPTO, "gb_channel_new: starting the handshake");
    }
fail:
    gb_channel_destroy(&ch);
    return NULL;
}

void gb_channel_destroy(gb_channel_t **ch)
{
    if (!ch || !*ch)
        return;
    gb_channel_t *c = *ch;
    SSL_free(c->ssl); /* frees the BIO too */
    /* Plaintext of received and sent messages: wiped, they may be updates. */
    if (c->rx)
        OPENSSL_cleanse(c->rx, c->rx_cap);
    OPENSSL_cleanse(c->tx, sizeof c->tx);
    gb_free(c->rx);
    gb_free(c->out);
    gb_free(c);
    *ch = NULL;
}
