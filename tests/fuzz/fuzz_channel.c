/* libFuzzer target for the secure channel's input (net/channel): arbitrary
 * frames fed into a server channel and into a client channel, fresh or mid-
 * handshake or established, and a real handshake whose frames in flight are
 * garbled. No input may crash, leak, or leave a channel that is neither
 * failed nor consistent (a channel that reports established must name its
 * peer and send).
 *
 * Input: byte 0 picks the mode (mod 5); the rest is a list of frames, each
 * a 2-byte big-endian length then that many bytes (the last one cut to what
 * is left).
 *   0  frames into a fresh server channel (ClientHello parsing);
 *   1  frames into a fresh client channel that has sent its ClientHello;
 *   2  frames into a server channel that has answered a real ClientHello;
 *   3  frames into the server channel of an established session;
 *   4  a real handshake and one message each way, with the frames as XOR
 *      masks over the frames in flight, in order (zero masks: it succeeds).
 * TLS handshakes draw fresh randomness, so the bytes on the wire differ per
 * run; the masks and the record structure of the seeds still steer.
 *
 * The certificates (a P-256 CA, a server "coordinator.test" and a client
 * "alice") are made once in LLVMFuzzerInitialize with OpenSSL's X509 API and
 * written to a temporary directory only long enough for gb_tls_new, so the
 * target needs no files. Seeds in tests/fuzz/corpus/channel/ were captured
 * from real sessions between two channels: a ClientHello, a server flight,
 * a client's second flight, application records, and zero masks for mode 4. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/channel.h"
#include "util/log.h"

#define S_NAME "coordinator.test"
#define S_MAX_FRAMES 16

static gb_tls_t *s_server;
static gb_tls_t *s_client;
static volatile uint8_t s_sink; /* received bytes are read into this */

/* A finding: libFuzzer reports a crash, so a broken invariant crashes. */
static void s_finding(const char *what)
{
    fprintf(stderr, "fuzz_channel: %s\n", what);
    abort();
}

/* ---- certificates for the run ------------------------------------------- */

static void s_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1))
        s_finding("certificate extension");
    X509_EXTENSION_free(ext);
}

static X509 *s_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                    long serial, const char *eku, const char *san)
{
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650))
        s_finding("certificate fields");
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
        !X509_set_pubkey(x, key))
        s_finding("certificate names");
    X509 *signer = issuer ? issuer : x;
    if (!eku) {
        s_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
        s_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        s_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
        s_ext(x, signer, NID_key_usage, "critical,digitalSignature");
        s_ext(x, signer, NID_ext_key_usage, eku);
        if (san)
            s_ext(x, signer, NID_subject_alt_name, san);
    }
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
        s_finding("signing a certificate");
    return x;
}

static void s_write(const char *dir, const char *file, X509 *cert, EVP_PKEY *key, char *path,
                    size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f || (cert && !PEM_write_X509(f, cert)) ||
        (key && !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)) || fclose(f) != 0)
        s_finding("writing a PEM file");
}

static gb_tls_t *s_tls(gb_tls_role_t role, const char *dir, X509 *ca, X509 *cert, EVP_PKEY *key)
{
    char ca_path[512], cert_path[512], key_path[512];
    s_write(dir, "ca.pem", ca, NULL, ca_path, sizeof ca_path);
    s_write(dir, "cert.pem", cert, NULL, cert_path, sizeof cert_path);
    s_write(dir, "key.pem", NULL, key, key_path, sizeof key_path);
    gb_tls_options_t o = {
        .role = role, .ca_file = ca_path, .cert_file = cert_path, .key_file = key_path};
    gb_error_t err;
    gb_error_clear(&err);
    gb_tls_t *tls = gb_tls_new(&o, &err);
    unlink(key_path);
    unlink(cert_path);
    unlink(ca_path);
    if (!tls) {
        fprintf(stderr, "fuzz_channel: gb_tls_new: %s\n", err.msg);
        s_finding("no TLS configuration");
    }
    return tls;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gb_log_set_level(GB_LOG_OFF);
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *srv_key = EVP_EC_gen("P-256");
    EVP_PKEY *cli_key = EVP_EC_gen("P-256");
    if (!ca_key || !srv_key || !cli_key)
        s_finding("key generation");
    X509 *ca = s_cert("Fuzz CA", ca_key, NULL, NULL, 1, NULL, NULL);
    X509 *srv = s_cert(S_NAME, srv_key, ca, ca_key, 2, "serverAuth,clientAuth", "DNS:" S_NAME);
    X509 *cli = s_cert("alice", cli_key, ca, ca_key, 3, "clientAuth", NULL);
    char tmpl[] = "/tmp/gb-fuzz-channel-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        s_finding("mkdtemp");
    s_server = s_tls(GB_TLS_SERVER, dir, ca, srv, srv_key);
    s_client = s_tls(GB_TLS_CLIENT, dir, ca, cli, cli_key);
    rmdir(dir);
    X509_free(cli);
    X509_free(srv);
    X509_free(ca);
    EVP_PKEY_free(cli_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* ---- driving channels --------------------------------------------------- */

typedef struct {
    const uint8_t *p[S_MAX_FRAMES]; /* frames of the input */
    size_t len[S_MAX_FRAMES];
    int n;
} s_frames_t;

static void s_split(const uint8_t *data, size_t size, s_frames_t *f)
{
    f->n = 0;
    while (size >= 2 && f->n < S_MAX_FRAMES) {
        size_t len = (size_t)data[0] << 8 | data[1];
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        f->p[f->n] = data;
        f->len[f->n++] = len;
        data += len;
        size -= len;
    }
}

/* Takes every message and drops the outbox, checking the channel's state is
 * coherent. */
static void s_drain(gb_channel_t *ch)
{
    const uint8_t *msg;
    size_t len;
    while (gb_channel_next_message(ch, &msg, &len) == 1)
        if (len)
            s_sink ^= msg[0] ^ msg[len - 1]; /* both ends must be readable (ASan) */
    gb_channel_outbox_consume(ch, gb_channel_outbox(ch, NULL));
    if (gb_channel_established(ch) && gb_channel_failed(ch))
        s_finding("established and failed at once");
}

/* Feeds the frames into ch until it fails. */
static void s_feed_all(gb_channel_t *ch, const s_frames_t *f)
{
    for (int i = 0; i < f->n && !gb_channel_failed(ch); i++) {
        gb_error_t err;
        int rc = gb_channel_feed(ch, f->p[i], f->len[i], &err);
        if (rc != 0 && !gb_channel_failed(ch))
            s_finding("feed failed but the channel did not");
        s_drain(ch);
        if (gb_channel_established(ch) && gb_channel_send(ch, "pong", 4, &err) != 0)
            s_finding("an established channel cannot send");
    }
}

/* Moves from's outbox into `to`, XORed with the next mask; returns feed's rc. */
static int s_move_masked(gb_channel_t *from, gb_channel_t *to, const s_frames_t *masks, int *next)
{
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(from, &bytes);
    if (n == 0)
        return 0;
    uint8_t *frame = malloc(n);
    if (!frame)
        s_finding("out of memory");
    memcpy(frame, bytes, n);
    gb_channel_outbox_consume(from, n);
    if (*next < masks->n) {
        const uint8_t *m = masks->p[*next];
        size_t ml = masks->len[*next];
        for (size_t i = 0; i < n && i < ml; i++)
            frame[i] ^= m[i];
        (*next)++;
    }
    gb_error_t err;
    int rc = gb_channel_feed(to, frame, n, &err);
    free(frame);
    return rc;
}

static void s_garbled_session(const s_frames_t *masks)
{
    gb_error_t err;
    gb_channel_t *s = gb_channel_new(s_server, NULL, 0, &err);
    gb_channel_t *c = gb_channel_new(s_client, S_NAME, 0, &err);
    if (!s || !c)
        s_finding("gb_channel_new");
    int next = 0;
    bool sent = false;
    for (int round = 0; round < 8 && !gb_channel_failed(s) && !gb_channel_failed(c); round++) {
        if (gb_channel_established(c) && gb_channel_established(s) && !sent) {
            if (gb_channel_send(c, "update", 6, &err) != 0 ||
                gb_channel_send(s, "model", 5, &err) != 0)
                s_finding("an established channel cannot send");
            sent = true;
        }
        if (s_move_masked(c, s, masks, &next) != 0 || s_move_masked(s, c, masks, &next) != 0)
            break;
        s_drain(s);
        s_drain(c);
    }
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!s_server)
        LLVMFuzzerInitialize(NULL, NULL);
    int mode = data[0] % 5;
    s_frames_t f;
    s_split(data + 1, size - 1, &f);
    gb_error_t err;
    gb_channel_t *s = NULL, *c = NULL;
    const uint8_t *bytes;
    size_t n;
    switch (mode) {
    case 0:
        s = gb_channel_new(s_server, NULL, 0, &err);
        if (!s)
            s_finding("gb_channel_new");
        s_feed_all(s, &f);
        break;
    case 1:
        c = gb_channel_new(s_client, S_NAME, 0, &err);
        if (!c)
            s_finding("gb_channel_new");
        gb_channel_outbox_consume(c, gb_channel_outbox(c, NULL));
        s_feed_all(c, &f);
        break;
    case 2:
    case 3:
        s = gb_channel_new(s_server, NULL, 0, &err);
        c = gb_channel_new(s_client, S_NAME, 0, &err);
        if (!s || !c)
            s_finding("gb_channel_new");
        for (int i = 0; i < (mode == 2 ? 1 : 4); i++) {
            if ((n = gb_channel_outbox(c, &bytes)) > 0) {
                if (gb_channel_feed(s, bytes, n, &err) != 0)
                    s_finding("a real handshake failed");
                gb_channel_outbox_consume(c, n);
            }
            if (mode == 3 && (n = gb_channel_outbox(s, &bytes)) > 0) {
                if (gb_channel_feed(c, bytes, n, &err) != 0)
                    s_finding("a real handshake failed");
                gb_channel_outbox_consume(s, n);
            }
        }
        if (mode == 3 && !gb_channel_established(s))
            s_finding("a real handshake did not finish");
        gb_channel_outbox_consume(s, gb_channel_outbox(s, NULL));
        s_feed_all(s, &f);
        break;
    default:
        s_garbled_session(&f);
        break;
    }
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    return 0;
}
