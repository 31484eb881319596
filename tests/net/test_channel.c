/* Tests for net/channel, the mutual TLS 1.3 channel: two channels driven back
 * to back by moving each one's outbox into the other, as the transport does
 * with ZeroMQ frames.
 *
 * Certificates come from tests/net/make_test_pki.sh, run by ctest as the
 * fixture net/test_pki into <build>/test-pki (see that script for what each
 * file is). Covered: a good handshake (ECDSA and Ed25519 clients) and
 * messages both ways, from empty to 4 MiB and a thousand in one frame; every
 * refusal (wrong CA either way, revoked, expired, wrong name, wrong purpose,
 * no certificate unless anonymous peers are allowed); tampered, replayed and
 * reordered records, every truncation point of a frame, garbage and empty
 * frames, oversized messages and frames; send before the handshake;
 * close_notify; reloading the CRL; a failed channel beside a good one from
 * the same configuration; bad configurations; allocation failures. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "net/channel.h"
#include "util/alloc.h"
#include "util/log.h"

#define COORD "coordinator.test"

static char *s_pki;
static char *s_tmp;

/* Path of a file in the test PKI; a few rotating buffers, enough for one
 * gb_tls_options_t. */
static const char *P(const char *name)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", s_pki, name);
    return b;
}

static int s_setup(void **state)
{
    (void)state;
    s_pki = gb_test_binary_path("test-pki");
    size_t cap = strlen(s_pki) + 16;
    char *probe = malloc(cap);
    snprintf(probe, cap, "%s/crl2.pem", s_pki);
    if (!gb_test_exists(probe)) {
        fprintf(stderr, "test PKI missing in %s: ctest runs net/test_pki first, or run "
                        "tests/net/make_test_pki.sh %s\n",
                s_pki, s_pki);
        free(probe);
        return -1;
    }
    free(probe);
    s_tmp = gb_test_mkdtemp();
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_ERROR); /* the refusals log warnings by design */
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    gb_test_rmtree(s_tmp);
    free(s_tmp);
    free(s_pki);
    return 0;
}

static gb_tls_t *s_tls_try(gb_tls_role_t role, const char *ca, const char *cert, const char *key,
                           const char *crl, bool anon, gb_error_t *err)
{
    gb_tls_options_t o = {
        .role = role,
        .ca_file = ca,
        .cert_file = cert,
        .key_file = key,
        .crl_file = crl,
        .allow_anonymous_peers = anon,
    };
    gb_error_clear(err);
    return gb_tls_new(&o, err);
}

/* A configuration from the PKI: name "alice" means alice.pem + alice.key. */
static gb_tls_t *s_tls(gb_tls_role_t role, const char *ca, const char *name, const char *crl,
                       bool anon)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.pem", name ? name : "");
    snprintf(key, sizeof key, "%s.key", name ? name : "");
    gb_error_t err;
    gb_tls_t *tls = s_tls_try(role, ca[0] == '/' ? ca : P(ca), name ? P(cert) : NULL,
                              name ? P(key) : NULL, crl ? P(crl) : NULL, anon, &err);
    if (!tls)
        fail_msg("gb_tls_new(%s): %s", name ? name : "anonymous", err.msg);
    return tls;
}

static gb_channel_t *s_chan(gb_tls_t *tls, const char *name, size_t max)
{
    gb_error_t err;
    gb_error_clear(&err);
    gb_channel_t *ch = gb_channel_new(tls, name, max, &err);
    if (!ch)
        fail_msg("gb_channel_new: %s", err.msg);
    return ch;
}

/* Moves from's whole outbox into `to` as one frame; returns feed's result
 * (0 when there was nothing to move). */
static int s_move(gb_channel_t *from, gb_channel_t *to, gb_error_t *err)
{
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(from, &bytes);
    if (n == 0)
        return 0;
    gb_error_clear(err);
    int rc = gb_channel_feed(to, bytes, n, err);
    gb_channel_outbox_consume(from, n);
    return rc;
}

/* Takes one frame out of ch's outbox into a malloc'd copy. */
static uint8_t *s_take(gb_channel_t *ch, size_t *len)
{
    const uint8_t *bytes;
    *len = gb_channel_outbox(ch, &bytes);
    assert_true(*len > 0);
    uint8_t *copy = malloc(*len);
    memcpy(copy, bytes, *len);
    gb_channel_outbox_consume(ch, *len);
    return copy;
}

typedef struct {
    int crc, src;          /* first failure of client and server, 0 if none */
    gb_error_t cerr, serr; /* their messages */
} s_result_t;

/* Runs the handshake to its end, both ways, failures included. */
static s_result_t s_run(gb_channel_t *c, gb_channel_t *s)
{
    s_result_t r;
    memset(&r, 0, sizeof r);
    for (int round = 0; round < 16; round++) {
        bool moved = false;
        gb_error_t e;
        if (gb_channel_outbox(c, NULL) > 0) {
            moved = true;
            int rc = gb_channel_failed(s) ? 0 : s_move(c, s, &e);
            if (gb_channel_failed(s))
                gb_channel_outbox_consume(c, (size_t)-1);
            if (rc && !r.src) {
                r.src = rc;
                r.serr = e;
            }
        }
        if (gb_channel_outbox(s, NULL) > 0) {
            moved = true;
            int rc = gb_channel_failed(c) ? 0 : s_move(s, c, &e);
            if (gb_channel_failed(c))
                gb_channel_outbox_consume(s, (size_t)-1);
            if (rc && !r.crc) {
                r.crc = rc;
                r.cerr = e;
            }
        }
        if (!moved)
            break;
    }
    return r;
}

/* Client and server channels with a finished handshake. */
static void s_pair(gb_tls_t *st, gb_tls_t *ct, gb_channel_t **s, gb_channel_t **c, size_t max)
{
    *s = s_chan(st, NULL, max);
    *c = s_chan(ct, COORD, max);
    s_result_t r = s_run(*c, *s);
    if (r.crc || r.src)
        fail_msg("handshake: client %d '%s', server %d '%s'", r.crc, r.cerr.msg, r.src, r.serr.msg);
    assert_true(gb_channel_established(*c));
    assert_true(gb_channel_established(*s));
}

static void s_send(gb_channel_t *ch, const void *msg, size_t len)
{
    gb_error_t err;
    gb_error_clear(&err);
    if (gb_channel_send(ch, msg, len, &err) != 0)
        fail_msg("send %zu bytes: %s", len, err.msg);
}

static void s_expect(gb_channel_t *ch, const void *msg, size_t len)
{
    const uint8_t *got;
    size_t got_len;
    assert_int_equal(gb_channel_next_message(ch, &got, &got_len), 1);
    assert_int_equal(got_len, len);
    if (len)
        assert_memory_equal(got, msg, len);
}

static void s_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

/* ---- the good path ------------------------------------------------------ */

static void test_handshake_and_messages(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_channel_t *s, *c;
    s_pair(st, ct, &s, &c, 0);
    assert_string_equal(gb_channel_peer_name(s), "alice");
    assert_string_equal(gb_channel_peer_name(c), COORD);
    assert_false(gb_channel_failed(s));
    assert_false(gb_channel_failed(c));
    gb_error_t err;

    /* one each way, and an empty one */
    s_send(c, "update", 6);
    s_send(c, "", 0);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, "update", 6);
    s_expect(s, "", 0);
    const uint8_t *m;
    size_t ml;
    assert_int_equal(gb_channel_next_message(s, &m, &ml), 0);
    s_send(s, "ack", 3);
    assert_int_equal(s_move(s, c, &err), 0);
    s_expect(c, "ack", 3);
    assert_int_equal(gb_channel_next_message(c, &m, &ml), 0);

    /* the largest message: 4 MiB, both ways */
    size_t big = GB_CHANNEL_DEFAULT_MAX_MESSAGE;
    uint8_t *payload = malloc(big);
    s_fill(payload, big, 7);
    s_send(c, payload, big);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, payload, big);
    s_send(s, payload, big);
    assert_int_equal(s_move(s, c, &err), 0);
    s_expect(c, payload, big);

    /* a thousand small ones in one frame, in order */
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t msg[64];
        s_fill(msg, i % 64, i);
        s_send(c, msg, i % 64);
    }
    assert_int_equal(s_move(c, s, &err), 0);
    for (uint32_t i = 0; i < 1000; i++) {
        uint8_t msg[64];
        s_fill(msg, i % 64, i);
        s_expect(s, msg, i % 64);
    }
    assert_int_equal(gb_channel_next_message(s, &m, &ml), 0);

    /* a message split across frames arrives once its last record does */
    s_send(c, payload, 100000);
    size_t len;
    uint8_t *frame = s_take(c, &len);
    size_t cut = 5 + (size_t)(frame[3] << 8 | frame[4]); /* first record only */
    assert_true(cut < len);
    assert_int_equal(gb_channel_feed(s, frame, cut, &err), 0);
    assert_int_equal(gb_channel_next_message(s, &m, &ml), 0);
    assert_int_equal(gb_channel_feed(s, frame + cut, len - cut, &err), 0);
    s_expect(s, payload, 100000);
    free(frame);

    /* the outbox can be consumed in parts */
    s_send(c, "in two parts", 12);
    const uint8_t *ob;
    size_t n = gb_channel_outbox(c, &ob);
    uint8_t *copy = malloc(n);
    memcpy(copy, ob, n);
    gb_channel_outbox_consume(c, 10);
    assert_int_equal(gb_channel_outbox(c, &ob), n - 10);
    assert_memory_equal(ob, copy + 10, n - 10);
    gb_channel_outbox_consume(c, n - 10);
    assert_int_equal(gb_channel_outbox(c, &ob), 0);
    assert_int_equal(gb_channel_feed(s, copy, n, &err), 0);
    s_expect(s, "in two parts", 12);
    free(copy);

    free(payload);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    assert_null(s);
    gb_channel_destroy(&s);
    gb_channel_destroy(NULL);

    /* an Ed25519 client (bob), and a server that asks for a client by name */
    gb_tls_t *bt = s_tls(GB_TLS_CLIENT, "ca.pem", "bob", NULL, false);
    s_pair(st, bt, &s, &c, 0);
    assert_string_equal(gb_channel_peer_name(s), "bob");
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    s = s_chan(st, "bob", 0);
    c = s_chan(bt, COORD, 0);
    s_result_t r = s_run(c, s);
    assert_int_equal(r.src, 0);
    assert_true(gb_channel_established(s));
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    s = s_chan(st, "bob", 0);
    c = s_chan(ct, COORD, 0); /* alice is not bob */
    r = s_run(c, s);
    assert_int_equal(r.src, GB_ECRYPTO);
    assert_non_null(strstr(r.serr.msg, "mismatch"));
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    gb_tls_destroy(&bt);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
    assert_null(st);
    gb_tls_destroy(&st);
    gb_tls_destroy(NULL);
}

/* ---- refusals ----------------------------------------------------------- */

/* Runs a handshake that must fail on the side that checks (`checker`: 's'
 * or 'c') with GB_ECRYPTO and a message holding `why`; the other side must
 * fail too, from the alert. */
static void s_refused(gb_tls_t *st, gb_tls_t *ct, const char *name, char checker, const char *why)
{
    gb_channel_t *s = s_chan(st, NULL, 0);
    gb_channel_t *c = s_chan(ct, name, 0);
    s_result_t r = s_run(c, s);
    int rc = checker == 's' ? r.src : r.crc;
    const char *msg = checker == 's' ? r.serr.msg : r.cerr.msg;
    if (rc != GB_ECRYPTO || !strstr(msg, why))
        fail_msg("expected %c to refuse with '%s'; client %d '%s', server %d '%s'", checker, why,
                 r.crc, r.cerr.msg, r.src, r.serr.msg);
    assert_true(gb_channel_failed(s));
    assert_true(gb_channel_failed(c));
    assert_false(gb_channel_established(s));
    assert_false(gb_channel_established(c));
    assert_null(gb_channel_peer_name(s));
    /* the other side learnt it from the alert */
    assert_int_equal(checker == 's' ? r.crc : r.src, GB_ECRYPTO);
    gb_error_t err;
    assert_int_equal(gb_channel_feed(s, "\x16\x03\x03\x00\x00", 5, &err), GB_EPROTO);
    assert_int_equal(gb_channel_send(c, "x", 1, &err), GB_EPROTO);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
}

static void test_wrong_ca(void **state)
{
    (void)state;
    /* both CAs in one file, so that each impostor trusts the real side */
    size_t a, b;
    char *ca = s_read(P("ca.pem"), &a);
    char *other = s_read(P("other-ca.pem"), &b);
    char *both = malloc(a + b);
    memcpy(both, ca, a);
    memcpy(both + a, other, b);
    char *bundle = gb_test_write_file(s_tmp, "both-cas.pem", both, a + b);

    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_tls_t *rogue_c = s_tls(GB_TLS_CLIENT, bundle, "rogue", NULL, false);
    gb_tls_t *rogue_s = s_tls(GB_TLS_SERVER, bundle, "rogue", NULL, false);
    s_refused(st, rogue_c, COORD, 's', "unable to get local issuer certificate");
    s_refused(rogue_s, ct, COORD, 'c', "unable to get local issuer certificate");
    gb_tls_destroy(&rogue_s);
    gb_tls_destroy(&rogue_c);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
    free(bundle);
    free(both);
    free(other);
    free(ca);
}

static void test_revoked_expired_purpose(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *mallory = s_tls(GB_TLS_CLIENT, "ca.pem", "mallory", NULL, false);
    gb_tls_t *expired = s_tls(GB_TLS_CLIENT, "ca.pem", "expired", NULL, false);
    gb_tls_t *serveronly = s_tls(GB_TLS_CLIENT, "ca.pem", "wrongname", NULL, false);
    s_refused(st, mallory, COORD, 's', "certificate revoked");
    s_refused(st, expired, COORD, 's', "certificate has expired");
    s_refused(st, serveronly, COORD, 's', "unsuitable certificate purpose");
    /* without a CRL the server cannot know about mallory */
    gb_tls_t *nocrl = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_channel_t *s, *c;
    s_pair(nocrl, mallory, &s, &c, 0);
    assert_string_equal(gb_channel_peer_name(s), "mallory");
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    /* a client's certificate (clientAuth only) cannot serve */
    gb_tls_t *alice_s = s_tls(GB_TLS_SERVER, "ca.pem", "alice", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "bob", NULL, false);
    s_refused(alice_s, ct, "alice", 'c', "unsuitable certificate purpose");
    gb_tls_destroy(&ct);
    gb_tls_destroy(&alice_s);
    gb_tls_destroy(&nocrl);
    gb_tls_destroy(&serveronly);
    gb_tls_destroy(&expired);
    gb_tls_destroy(&mallory);
    gb_tls_destroy(&st);
}

static void test_wrong_name(void **state)
{
    (void)state;
    gb_tls_t *wrong = s_tls(GB_TLS_SERVER, "ca.pem", "wrongname", NULL, false);
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    s_refused(wrong, ct, COORD, 'c', "hostname mismatch");
    s_refused(st, ct, "other.test", 'c', "hostname mismatch");
    s_refused(st, ct, "test", 'c', "hostname mismatch");
    /* the name wrong.test does match its own certificate */
    gb_channel_t *s = s_chan(wrong, NULL, 0);
    gb_channel_t *c = s_chan(ct, "wrong.test", 0);
    s_result_t r = s_run(c, s);
    assert_int_equal(r.crc, 0);
    assert_int_equal(r.src, 0);
    assert_string_equal(gb_channel_peer_name(c), "wrong.test");
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
    gb_tls_destroy(&wrong);
}

static void test_anonymous_client(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *anon_ok = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", true);
    gb_tls_t *enrolling = s_tls(GB_TLS_CLIENT, "ca.pem", NULL, NULL, false);
    s_refused(st, enrolling, COORD, 's', "did not return a certificate");

    gb_channel_t *s, *c;
    s_pair(anon_ok, enrolling, &s, &c, 0);
    assert_null(gb_channel_peer_name(s));
    assert_string_equal(gb_channel_peer_name(c), COORD);
    gb_error_t err;
    s_send(c, "csr", 3);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, "csr", 3);
    s_send(s, "certificate", 11);
    assert_int_equal(s_move(s, c, &err), 0);
    s_expect(c, "certificate", 11);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* anonymous allowed does not mean a bad certificate is: still refused */
    gb_tls_t *mallory = s_tls(GB_TLS_CLIENT, "ca.pem", "mallory", NULL, false);
    s_refused(anon_ok, mallory, COORD, 's', "certificate revoked");
    /* and a client with a good one is still named */
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    s_pair(anon_ok, ct, &s, &c, 0);
    assert_string_equal(gb_channel_peer_name(s), "alice");
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&mallory);
    gb_tls_destroy(&enrolling);
    gb_tls_destroy(&anon_ok);
    gb_tls_destroy(&st);
}

/* ---- bad records and frames --------------------------------------------- */

typedef struct {
    gb_tls_t *st, *ct;
    gb_channel_t *s, *c;
} s_fix_t;

static s_fix_t s_fix(void)
{
    s_fix_t f;
    f.st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    f.ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    s_pair(f.st, f.ct, &f.s, &f.c, 0);
    return f;
}

static void s_fix_free(s_fix_t *f)
{
    gb_channel_destroy(&f->c);
    gb_channel_destroy(&f->s);
    gb_tls_destroy(&f->ct);
    gb_tls_destroy(&f->st);
}

/* ch failed with code, refuses further frames and hands out nothing. */
static void s_assert_dead(gb_channel_t *ch, int rc, int code, const gb_error_t *err)
{
    if (rc != code)
        fail_msg("expected %d, got %d: %s", code, rc, err->msg);
    assert_true(gb_channel_failed(ch));
    assert_false(gb_channel_established(ch));
    const uint8_t *m;
    size_t ml;
    assert_int_equal(gb_channel_next_message(ch, &m, &ml), 0);
    gb_error_t e2;
    assert_int_equal(gb_channel_feed(ch, "\x17\x03\x03\x00\x01x", 6, &e2), GB_EPROTO);
    assert_int_equal(gb_channel_send(ch, "x", 1, &e2), GB_EPROTO);
}

static void test_tampered_record(void **state)
{
    (void)state;
    s_fix_t f = s_fix();
    s_send(f.c, "a model update", 14);
    size_t len;
    uint8_t *frame = s_take(f.c, &len);
    frame[len / 2 + 3] ^= 0x01; /* inside the ciphertext, past the header */
    gb_error_t err;
    int rc = gb_channel_feed(f.s, frame, len, &err);
    s_assert_dead(f.s, rc, GB_ECRYPTO, &err);
    assert_non_null(strstr(err.msg, "bad record mac"));
    /* the alert is in the outbox, and kills the client too */
    assert_true(gb_channel_outbox(f.s, NULL) > 0);
    rc = s_move(f.s, f.c, &err);
    s_assert_dead(f.c, rc, GB_ECRYPTO, &err);
    free(frame);
    s_fix_free(&f);

    /* a flipped authentication tag (the last byte) too */
    f = s_fix();
    s_send(f.s, "global model", 12);
    frame = s_take(f.s, &len);
    frame[len - 1] ^= 0x80;
    rc = gb_channel_feed(f.c, frame, len, &err);
    s_assert_dead(f.c, rc, GB_ECRYPTO, &err);
    free(frame);
    s_fix_free(&f);
}

static void test_replayed_and_reordered(void **state)
{
    (void)state;
    s_fix_t f = s_fix();
    gb_error_t err;
    s_send(f.c, "one", 3);
    size_t len1, len2;
    uint8_t *one = s_take(f.c, &len1);
    assert_int_equal(gb_channel_feed(f.s, one, len1, &err), 0);
    s_expect(f.s, "one", 3);
    int rc = gb_channel_feed(f.s, one, len1, &err);
    s_assert_dead(f.s, rc, GB_ECRYPTO, &err);
    free(one);
    s_fix_free(&f);

    f = s_fix();
    s_send(f.c, "first", 5);
    one = s_take(f.c, &len1);
    s_send(f.c, "second", 6);
    uint8_t *two = s_take(f.c, &len2);
    rc = gb_channel_feed(f.s, two, len2, &err);
    s_assert_dead(f.s, rc, GB_ECRYPTO, &err);
    free(two);
    free(one);
    s_fix_free(&f);
}

static void test_truncated_frames(void **state)
{
    (void)state;
    /* every cut of a one-record frame */
    s_fix_t f = s_fix();
    s_send(f.c, "a short message", 15);
    size_t len;
    uint8_t *frame = s_take(f.c, &len);
    s_fix_free(&f);
    for (size_t cut = 1; cut < len; cut++) {
        f = s_fix();
        s_send(f.c, "a short message", 15);
        size_t l2;
        uint8_t *fr = s_take(f.c, &l2);
        assert_int_equal(l2, len);
        gb_error_t err;
        int rc = gb_channel_feed(f.s, fr, cut, &err);
        s_assert_dead(f.s, rc, GB_EPROTO, &err);
        assert_non_null(strstr(err.msg, "truncated frame"));
        free(fr);
        s_fix_free(&f);
    }
    free(frame);

    /* the server's handshake flight, cut short */
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_channel_t *s = s_chan(st, NULL, 0);
    gb_channel_t *c = s_chan(ct, COORD, 0);
    gb_error_t err;
    assert_int_equal(s_move(c, s, &err), 0);
    frame = s_take(s, &len);
    int rc = gb_channel_feed(c, frame, len - 7, &err);
    s_assert_dead(c, rc, GB_EPROTO, &err);
    free(frame);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

static void test_garbage_frames(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_error_t err;
    struct {
        const char *bytes;
        size_t len;
    } garbage[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27},        /* does not tile into records */
        {"\x17\x03\x03\x00\x05hello", 10},                /* application data first */
        {"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10}, /* a broken ClientHello */
        {"\x15\x03\x03\x00\x02\x02\x28", 7},              /* a fatal alert */
        {"\x99\x03\x03\x00\x01x", 6},                     /* no such record type */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        gb_channel_t *s = s_chan(st, NULL, 0);
        int rc = gb_channel_feed(s, garbage[i].bytes, garbage[i].len, &err);
        if (rc != GB_EPROTO && rc != GB_ECRYPTO)
            fail_msg("garbage %zu: %d %s", i, rc, err.msg);
        assert_true(gb_channel_failed(s));
        gb_channel_destroy(&s);
        /* and into a client waiting for the server's flight */
        gb_channel_t *c = s_chan(ct, COORD, 0);
        rc = gb_channel_feed(c, garbage[i].bytes, garbage[i].len, &err);
        if (rc != GB_EPROTO && rc != GB_ECRYPTO)
            fail_msg("garbage %zu to client: %d %s", i, rc, err.msg);
        assert_true(gb_channel_failed(c));
        gb_channel_destroy(&c);
    }
    /* garbage is a protocol violation, not a crypto one */
    gb_channel_t *s = s_chan(st, NULL, 0);
    int rc = gb_channel_feed(s, garbage[1].bytes, garbage[1].len, &err);
    s_assert_dead(s, rc, GB_EPROTO, &err);
    gb_channel_destroy(&s);
    /* an empty frame */
    s = s_chan(st, NULL, 0);
    rc = gb_channel_feed(s, "", 0, &err);
    s_assert_dead(s, rc, GB_EPROTO, &err);
    assert_non_null(strstr(err.msg, "empty frame"));
    gb_channel_destroy(&s);
    /* a NULL frame is the caller's bug, not the peer's: nothing changes */
    s = s_chan(st, NULL, 0);
    assert_int_equal(gb_channel_feed(s, NULL, 5, &err), GB_EINVAL);
    assert_false(gb_channel_failed(s));
    assert_int_equal(gb_channel_feed(NULL, "x", 1, &err), GB_EINVAL);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

static void test_oversized(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_error_t err;
    uint8_t buf[4096];
    s_fill(buf, sizeof buf, 3);

    /* the sender refuses what the receiver would, and stays usable */
    gb_channel_t *s, *c;
    s_pair(st, ct, &s, &c, 1000);
    assert_int_equal(gb_channel_send(c, buf, 1001, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "1001"));
    assert_true(gb_channel_established(c));
    assert_int_equal(gb_channel_outbox(c, NULL), 0);
    s_send(c, buf, 1000);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, buf, 1000);
    /* back-pressure: more than max_message waiting in the outbox */
    s_send(c, buf, 1000);
    assert_int_equal(gb_channel_send(c, buf, 10, &err), GB_EAGAIN);
    assert_non_null(strstr(err.msg, "outbox"));
    assert_true(gb_channel_established(c));
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, buf, 1000);
    s_send(c, buf, 10);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, buf, 10);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* a peer with a larger limit: its length prefix is refused */
    s = s_chan(st, NULL, 1000);
    c = s_chan(ct, COORD, 100000);
    s_result_t r = s_run(c, s);
    assert_int_equal(r.src, 0);
    s_send(c, buf, 1001);
    int rc = s_move(c, s, &err);
    s_assert_dead(s, rc, GB_ERANGE, &err);
    assert_non_null(strstr(err.msg, "1001"));
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* a frame with more than 2 x max_message of messages */
    s = s_chan(st, NULL, 1000);
    c = s_chan(ct, COORD, 100000);
    r = s_run(c, s);
    assert_int_equal(r.src, 0);
    for (int i = 0; i < 3; i++)
        s_send(c, buf, 900);
    rc = s_move(c, s, &err);
    s_assert_dead(s, rc, GB_ERANGE, &err);
    assert_non_null(strstr(err.msg, "one frame"));
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* two such messages do fit */
    s = s_chan(st, NULL, 1000);
    c = s_chan(ct, COORD, 100000);
    r = s_run(c, s);
    s_send(c, buf, 1000);
    s_send(c, buf + 1, 1000);
    assert_int_equal(s_move(c, s, &err), 0);
    s_expect(s, buf, 1000);
    s_expect(s, buf + 1, 1000);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

/* ---- states ------------------------------------------------------------- */

static void test_send_before_established(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_channel_t *s = s_chan(st, NULL, 0);
    gb_channel_t *c = s_chan(ct, COORD, 0);
    gb_error_t err;
    assert_true(gb_channel_outbox(c, NULL) > 0); /* the ClientHello */
    assert_int_equal(gb_channel_outbox(s, NULL), 0);
    assert_int_equal(gb_channel_send(c, "early", 5, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "handshake"));
    assert_int_equal(gb_channel_send(s, "early", 5, &err), GB_EPROTO);
    assert_false(gb_channel_failed(c));
    assert_false(gb_channel_established(c));
    assert_null(gb_channel_peer_name(c));
    assert_int_equal(gb_channel_send(NULL, "x", 1, &err), GB_EINVAL);
    s_result_t r = s_run(c, s);
    assert_int_equal(r.crc, 0);
    assert_int_equal(r.src, 0);
    assert_int_equal(gb_channel_send(c, NULL, 3, &err), GB_EINVAL);
    assert_true(gb_channel_established(c));
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

static void test_close_notify(void **state)
{
    (void)state;
    s_fix_t f = s_fix();
    gb_error_t err;
    s_send(f.c, "last words", 10);
    gb_channel_close(f.c);
    assert_true(gb_channel_failed(f.c));
    assert_false(gb_channel_established(f.c));
    assert_string_equal(gb_channel_peer_name(f.c), COORD);
    assert_int_equal(gb_channel_send(f.c, "more", 4, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "closed"));
    size_t before = gb_channel_outbox(f.c, NULL);
    gb_channel_close(f.c); /* a second close adds nothing */
    assert_int_equal(gb_channel_outbox(f.c, NULL), before);
    assert_int_equal(s_move(f.c, f.s, &err), 0);
    assert_true(gb_channel_failed(f.s));
    assert_false(gb_channel_established(f.s));
    s_expect(f.s, "last words", 10); /* what came before the close is kept */
    assert_int_equal(gb_channel_feed(f.s, "\x17\x03\x03\x00\x01x", 6, &err), GB_EPROTO);
    assert_non_null(strstr(err.msg, "closed"));
    /* the server answers with its own close_notify */
    gb_channel_close(f.s);
    assert_true(gb_channel_outbox(f.s, NULL) > 0);
    assert_int_equal(gb_channel_feed(f.c, "x", 1, &err), GB_EPROTO);
    s_fix_free(&f);

    /* closing during the handshake: closed, nothing to send */
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_channel_t *c = s_chan(ct, COORD, 0);
    gb_channel_outbox_consume(c, gb_channel_outbox(c, NULL));
    gb_channel_close(c);
    assert_true(gb_channel_failed(c));
    assert_int_equal(gb_channel_outbox(c, NULL), 0);
    gb_channel_destroy(&c);
    gb_tls_destroy(&ct);
    gb_channel_close(NULL);
    assert_true(gb_channel_failed(NULL));
    assert_false(gb_channel_established(NULL));
    assert_null(gb_channel_peer_name(NULL));
    const uint8_t *b;
    assert_int_equal(gb_channel_outbox(NULL, &b), 0);
    gb_channel_outbox_consume(NULL, 1);
}

static void test_reload_crl(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *bob = s_tls(GB_TLS_CLIENT, "ca.pem", "bob", NULL, false);
    gb_tls_t *alice = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_channel_t *s, *c;
    s_pair(st, bob, &s, &c, 0);
    gb_error_t err;
    gb_error_clear(&err);
    /* an established session, rechecked: it passes until bob is revoked */
    assert_int_equal(gb_channel_recheck_peer(s, &err), 0);
    assert_int_equal(gb_channel_recheck_peer(c, &err), 0); /* the client's view of the server */
    gb_channel_t *held_s = s, *held_c = c;

    gb_channel_t *early = s_chan(st, NULL, 0); /* made before the reload */
    assert_int_equal(gb_channel_recheck_peer(early, &err), 0); /* no peer yet: nothing */
    assert_int_equal(gb_channel_recheck_peer(NULL, &err), 0);
    assert_int_equal(gb_tls_reload_crl(st, P("crl2.pem"), &err), 0);
    assert_int_equal(gb_channel_recheck_peer(held_s, &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "certificate revoked"));
    assert_non_null(strstr(err.msg, "'bob'"));
    assert_true(gb_channel_established(held_s)); /* the caller ends it */
    gb_channel_destroy(&held_c);
    gb_channel_destroy(&held_s);
    s_refused(st, bob, COORD, 's', "certificate revoked");
    gb_tls_t *mallory = s_tls(GB_TLS_CLIENT, "ca.pem", "mallory", NULL, false);
    s_refused(st, mallory, COORD, 's', "certificate revoked");
    gb_tls_destroy(&mallory);
    c = s_chan(bob, COORD, 0);
    s_result_t r = s_run(c, early);
    assert_int_equal(r.src, 0); /* checked against the list it was made with */
    gb_channel_destroy(&c);
    gb_channel_destroy(&early);

    /* bad lists are refused and the current one stays */
    assert_int_equal(gb_tls_reload_crl(st, P("missing.pem"), &err), GB_EIO);
    assert_non_null(strstr(err.msg, "missing.pem"));
    assert_int_equal(gb_tls_reload_crl(st, P("other-crl.pem"), &err), GB_ECRYPTO);
    assert_non_null(strstr(err.msg, "not signed"));
    assert_int_equal(gb_tls_reload_crl(st, P("crl-expired.pem"), &err), GB_ECRYPTO);
    assert_non_null(strstr(err.msg, "expired"));
    assert_int_equal(gb_tls_reload_crl(st, P("alice.key"), &err), GB_EFORMAT);
    assert_int_equal(gb_tls_reload_crl(st, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_tls_reload_crl(NULL, P("crl.pem"), &err), GB_EINVAL);
    s_refused(st, bob, COORD, 's', "certificate revoked");
    s_pair(st, alice, &s, &c, 0);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* back to the shorter list: bob is in again */
    assert_int_equal(gb_tls_reload_crl(st, P("crl.pem"), &err), 0);
    s_pair(st, bob, &s, &c, 0);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);
    /* a server started without a list gains one */
    gb_tls_t *nocrl = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    assert_int_equal(gb_tls_reload_crl(nocrl, P("crl2.pem"), &err), 0);
    s_refused(nocrl, bob, COORD, 's', "certificate revoked");
    gb_tls_destroy(&nocrl);
    gb_tls_destroy(&alice);
    gb_tls_destroy(&bob);
    gb_tls_destroy(&st);
}

static void test_failure_isolated(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", "crl.pem", false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_tls_t *mallory = s_tls(GB_TLS_CLIENT, "ca.pem", "mallory", NULL, false);
    gb_error_t err;
    /* three sessions from one configuration, interleaved: one gets garbage,
     * one a revoked client, one goes on working */
    gb_channel_t *good_s = s_chan(st, NULL, 0);
    gb_channel_t *bad_s = s_chan(st, NULL, 0);
    gb_channel_t *rev_s = s_chan(st, NULL, 0);
    gb_channel_t *good_c = s_chan(ct, COORD, 0);
    gb_channel_t *rev_c = s_chan(mallory, COORD, 0);
    assert_int_equal(s_move(good_c, good_s, &err), 0);
    assert_int_equal(gb_channel_feed(bad_s, "\x17\x03\x03\x00\x03" "abc", 8, &err), GB_EPROTO);
    s_result_t r = s_run(rev_c, rev_s);
    assert_int_equal(r.src, GB_ECRYPTO);
    r = s_run(good_c, good_s);
    assert_int_equal(r.src, 0);
    assert_int_equal(r.crc, 0);
    assert_true(gb_channel_failed(bad_s));
    assert_true(gb_channel_failed(rev_s));
    s_send(good_c, "still here", 10);
    assert_int_equal(s_move(good_c, good_s, &err), 0);
    s_expect(good_s, "still here", 10);
    gb_channel_destroy(&bad_s);
    gb_channel_destroy(&rev_s);
    gb_channel_destroy(&rev_c);
    s_send(good_s, "and here", 8);
    assert_int_equal(s_move(good_s, good_c, &err), 0);
    s_expect(good_c, "and here", 8);
    gb_channel_destroy(&good_c);
    gb_channel_destroy(&good_s);
    gb_tls_destroy(&mallory);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

/* ---- constructors ------------------------------------------------------- */

static void s_tls_fails(gb_tls_role_t role, const char *ca, const char *cert, const char *key,
                        const char *crl, bool anon, int code, const char *why)
{
    gb_error_t err;
    gb_tls_t *tls = s_tls_try(role, ca, cert, key, crl, anon, &err);
    if (tls || err.code != code || !strstr(err.msg, why))
        fail_msg("expected %d '%s', got %s %d '%s'", code, why, tls ? "a configuration" : "NULL",
                 err.code, err.msg);
}

static void test_tls_new_failures(void **state)
{
    (void)state;
    const gb_tls_role_t S = GB_TLS_SERVER, C = GB_TLS_CLIENT;
    char ca[1024], cert[1024], key[1024], crl[1024];
    snprintf(ca, sizeof ca, "%s", P("ca.pem"));
    snprintf(cert, sizeof cert, "%s", P("coordinator.pem"));
    snprintf(key, sizeof key, "%s", P("coordinator.key"));
    snprintf(crl, sizeof crl, "%s", P("crl.pem"));
    gb_error_t err;
    assert_null(gb_tls_new(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);
    s_tls_fails((gb_tls_role_t)7, ca, cert, key, NULL, false, GB_EINVAL, "role 7");
    s_tls_fails(S, NULL, cert, key, NULL, false, GB_EINVAL, "ca_file");
    s_tls_fails(S, ca, NULL, NULL, NULL, false, GB_EINVAL, "server needs cert_file");
    s_tls_fails(S, ca, cert, NULL, NULL, false, GB_EINVAL, "go together");
    s_tls_fails(C, ca, NULL, NULL, NULL, true, GB_EINVAL, "server option");

    char *missing = gb_test_write_file(s_tmp, "x", "", 0);
    remove(missing);
    s_tls_fails(S, missing, cert, key, NULL, false, GB_EIO, missing);
    s_tls_fails(S, ca, missing, key, NULL, false, GB_EFORMAT, missing);
    s_tls_fails(S, ca, cert, missing, NULL, false, GB_EIO, missing);
    s_tls_fails(S, ca, cert, key, missing, false, GB_EIO, missing);

    char *garbage = gb_test_write_file(s_tmp, "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot "
                                                             "base64 at all!\n-----END "
                                                             "CERTIFICATE-----\n",
                                       67);
    char *empty = gb_test_write_file(s_tmp, "empty.pem", "", 0);
    s_tls_fails(S, garbage, cert, key, NULL, false, GB_EFORMAT, "garbage.pem");
    s_tls_fails(S, empty, cert, key, NULL, false, GB_EFORMAT, "no PEM certificate");
    s_tls_fails(S, ca, garbage, key, NULL, false, GB_EFORMAT, "cert_file");
    s_tls_fails(S, ca, cert, garbage, NULL, false, GB_EFORMAT, "no PEM private key");
    s_tls_fails(S, ca, cert, key, garbage, false, GB_EFORMAT, "no PEM CRL");
    s_tls_fails(S, ca, cert, key, empty, false, GB_EFORMAT, "no PEM CRL");

    /* key and certificate of different owners */
    s_tls_fails(S, ca, cert, P("alice.key"), NULL, false, GB_ECRYPTO, "does not fit");
    s_tls_fails(C, ca, P("bob.pem"), P("alice.key"), NULL, false, GB_ECRYPTO, "does not fit");
    /* a certificate of another CA, a client certificate as the CA */
    s_tls_fails(S, ca, P("rogue.pem"), P("rogue.key"), NULL, false, GB_ECRYPTO,
                "does not chain");
    s_tls_fails(S, P("alice.pem"), cert, key, NULL, false, GB_ECRYPTO, "not a CA");
    /* CRLs: another CA's, an expired one */
    s_tls_fails(S, ca, cert, key, P("other-crl.pem"), false, GB_ECRYPTO, "not signed");
    s_tls_fails(S, ca, cert, key, P("crl-expired.pem"), false, GB_ECRYPTO, "expired");

    /* an encrypted key is refused without prompting */
    FILE *kf = fopen(key, "r");
    assert_non_null(kf);
    EVP_PKEY *pkey = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    assert_non_null(pkey);
    char *enc = gb_test_write_file(s_tmp, "enc.key", "", 0);
    FILE *ef = fopen(enc, "w");
    assert_int_equal(PEM_write_PrivateKey(ef, pkey, EVP_aes_256_cbc(), (unsigned char *)"pw", 2,
                                          NULL, NULL),
                     1);
    fclose(ef);
    EVP_PKEY_free(pkey);
    s_tls_fails(S, ca, cert, enc, NULL, false, GB_EFORMAT, "encrypted");

    /* and the good one, with every option */
    gb_tls_t *tls = s_tls_try(S, ca, cert, key, crl, true, &err);
    assert_non_null(tls);
    gb_tls_destroy(&tls);
    free(enc);
    free(empty);
    free(garbage);
    free(missing);
}

static void test_channel_new_failures(void **state)
{
    (void)state;
    gb_tls_t *st = s_tls(GB_TLS_SERVER, "ca.pem", "coordinator", NULL, false);
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "ca.pem", "alice", NULL, false);
    gb_error_t err;
    gb_error_clear(&err);
    assert_null(gb_channel_new(NULL, COORD, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_channel_new(ct, NULL, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "expected_peer_name"));
    assert_null(gb_channel_new(ct, "coordinator test", 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_channel_new(ct, "", 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_channel_new(ct, COORD, ((size_t)1 << 30) + 1, &err));
    assert_int_equal(err.code, GB_ERANGE);

    /* every allocation point, on both sides */
    gb_tls_t *tlss[2] = {st, ct};
    for (int side = 0; side < 2; side++) {
        int points = 0;
        for (long k = 1;; k++) {
            gb_error_clear(&err);
            gb_alloc_fail_after(k);
            gb_channel_t *ch = gb_channel_new(tlss[side], side ? COORD : NULL, 0, &err);
            gb_alloc_fail_after(0);
            if (ch) {
                gb_channel_destroy(&ch);
                break;
            }
            if (err.code != GB_ENOMEM)
                fail_msg("side %d, allocation %ld: %d %s", side, k, err.code, err.msg);
            points++;
        }
        assert_true(points >= 3);
    }
    /* gb_tls_new too */
    int points = 0;
    for (long k = 1;; k++) {
        gb_error_clear(&err);
        gb_alloc_fail_after(k);
        gb_tls_t *tls = s_tls_try(GB_TLS_SERVER, P("ca.pem"), P("coordinator.pem"),
                                  P("coordinator.key"), NULL, false, &err);
        gb_alloc_fail_after(0);
        if (tls) {
            gb_tls_destroy(&tls);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        points++;
    }
    assert_true(points >= 1);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_messages),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_revoked_expired_purpose),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_anonymous_client),
        cmocka_unit_test(test_tampered_record),
        cmocka_unit_test(test_replayed_and_reordered),
        cmocka_unit_test(test_truncated_frames),
        cmocka_unit_test(test_garbage_frames),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_send_before_established),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_reload_crl),
        cmocka_unit_test(test_failure_isolated),
        cmocka_unit_test(test_tls_new_failures),
        cmocka_unit_test(test_channel_new_failures),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
