/* gb_channel_bench: the secure channel's speed (issue 5), next to the raw
 * AES-256-GCM speed of the same machine measured in the same run.
 *
 *   gb_channel_bench [--pki DIR] [--mb N] [--runs R] [--handshakes N] [--smoke]
 *
 * Both ends of the channel are driven back to back in ONE thread, so both
 * run on the same core: every payload byte is encrypted by the client and
 * decrypted by the server on that core (no sockets: the transport's cost is
 * not in here). Measured:
 *   - raw AES-256-GCM: `openssl speed -evp aes-256-gcm -seconds 1 -bytes 16384`
 *     run through popen, and EVP encrypt and decrypt of 16 KiB blocks here;
 *   - throughput: --mb (64) MiB of update data in 1 MiB messages from client
 *     to server, payload bytes / wall time for encrypt + decrypt, --runs (5)
 *     times after a warm-up (best and median; other processes on the
 *     machine only ever slow a run down); target 1 GB/s (10^9 bytes/s);
 *   - handshakes: --handshakes (1000) full mutual TLS 1.3 handshakes
 *     (new client and server channel each, ECDSA P-256 certificates, no
 *     resumption), per second; target 300.
 * Certificates come from --pki DIR (tests/net/make_test_pki.sh output), or
 * the script is run into a temporary directory. --smoke: tiny sizes and no
 * `openssl speed`, for the ctest smoke test (bench/channel_smoke): it checks
 * that every message arrives intact and every handshake completes, never a
 * speed. Exit status 0 unless something failed. Not a unit test; built by
 * tests/bench/channel.cmake. */
#include "net/channel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "util/log.h"

#ifndef GB_PKI_SCRIPT
#define GB_PKI_SCRIPT "tests/net/make_test_pki.sh"
#endif

#define S_MSG ((size_t)1 << 20)
#define S_BLOCK 16384
#define S_MAX_RUNS 50

static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char s_pki[1024];

static const char *P(const char *name)
{
    static char bufs[4][1200];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", s_pki, name);
    return b;
}

/* ---- raw AES-256-GCM ---------------------------------------------------- */

/* `openssl speed` in bytes/s, or 0 when it cannot be run or read. */
static double s_openssl_speed(void)
{
    FILE *p = popen("openssl speed -evp aes-256-gcm -seconds 1 -bytes 16384 2>/dev/null", "r");
    if (!p)
        return 0;
    char line[512];
    double kbs = 0;
    while (fgets(line, sizeof line, p)) {
        /* "AES-256-GCM    5001396.22k" (the name's case varies by version) */
        char name[64];
        double v;
        if (sscanf(line, "%63s %lfk", name, &v) == 2 && strncasecmp(name, "aes-256-gcm", 11) == 0)
            kbs = v;
    }
    pclose(p);
    return kbs * 1000.0;
}

/* EVP AES-256-GCM over 16 KiB blocks for about `seconds`: bytes/s. */
static double s_evp_gcm(bool decrypt, double seconds)
{
    unsigned char key[32] = {1}, iv[12] = {2}, tag[16];
    unsigned char *in = calloc(1, S_BLOCK), *out = malloc(S_BLOCK);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_CIPHER *gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (!in || !out || !ctx || !gcm) {
        fprintf(stderr, "EVP AES-256-GCM unavailable\n");
        exit(1);
    }
    int len = 0;
    if (!EVP_CipherInit_ex2(ctx, gcm, key, iv, 1, NULL)) /* a valid tag for the decrypt loop */
        exit(1);
    EVP_CipherUpdate(ctx, out, &len, in, S_BLOCK);
    EVP_CipherFinal_ex(ctx, out + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    memcpy(in, out, S_BLOCK);
    long blocks = 0;
    double t0 = s_wall(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 64; i++) {
            EVP_CipherInit_ex2(ctx, gcm, key, iv, decrypt ? 0 : 1, NULL);
            EVP_CipherUpdate(ctx, out, &len, in, S_BLOCK);
            if (decrypt)
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag);
            EVP_CipherFinal_ex(ctx, out + len, &len);
        }
        blocks += 64;
        t = s_wall();
    }
    EVP_CIPHER_free(gcm);
    EVP_CIPHER_CTX_free(ctx);
    free(out);
    free(in);
    return (double)blocks * S_BLOCK / (t - t0);
}

/* ---- the channel -------------------------------------------------------- */

static gb_tls_t *s_tls(gb_tls_role_t role, const char *name)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    char c[1200], k[1200], ca[1200];
    snprintf(c, sizeof c, "%s", P(cert));
    snprintf(k, sizeof k, "%s", P(key));
    snprintf(ca, sizeof ca, "%s", P("ca.pem"));
    gb_tls_options_t o = {.role = role, .ca_file = ca, .cert_file = c, .key_file = k};
    gb_error_t err;
    gb_error_clear(&err);
    gb_tls_t *tls = gb_tls_new(&o, &err);
    if (!tls) {
        fprintf(stderr, "gb_tls_new: %s\n", err.msg);
        exit(1);
    }
    return tls;
}

/* Moves from's outbox into `to` as one frame. */
static void s_move(gb_channel_t *from, gb_channel_t *to)
{
    const uint8_t *bytes;
    size_t n = gb_channel_outbox(from, &bytes);
    if (n == 0)
        return;
    gb_error_t err;
    if (gb_channel_feed(to, bytes, n, &err) != 0) {
        fprintf(stderr, "feed: %s\n", err.msg);
        exit(1);
    }
    gb_channel_outbox_consume(from, n);
}

static void s_handshake(gb_tls_t *st, gb_tls_t *ct, gb_channel_t **s, gb_channel_t **c)
{
    gb_error_t err;
    *s = gb_channel_new(st, NULL, 0, &err);
    *c = *s ? gb_channel_new(ct, "coordinator.test", 0, &err) : NULL;
    if (!*c) {
        fprintf(stderr, "gb_channel_new: %s\n", err.msg);
        exit(1);
    }
    for (int i = 0; i < 8 && (gb_channel_outbox(*c, NULL) || gb_channel_outbox(*s, NULL)); i++) {
        s_move(*c, *s);
        s_move(*s, *c);
    }
    const char *peer = gb_channel_peer_name(*s);
    if (!gb_channel_established(*s) || !gb_channel_established(*c) || !peer ||
        strcmp(peer, "alice") != 0) {
        fprintf(stderr, "handshake did not complete\n");
        exit(1);
    }
}

/* Sends total bytes in 1 MiB messages client -> server; returns wall seconds
 * and adds CPU seconds to *cpu. check: compare every byte received. */
static double s_stream(gb_channel_t *c, gb_channel_t *s, const uint8_t *payload, size_t total,
                       bool check, double *cpu)
{
    double c0 = s_cpu(), t0 = s_wall();
    for (size_t sent = 0; sent < total; sent += S_MSG) {
        gb_error_t err;
        if (gb_channel_send(c, payload, S_MSG, &err) != 0) {
            fprintf(stderr, "send: %s\n", err.msg);
            exit(1);
        }
        s_move(c, s);
        const uint8_t *msg;
        size_t len;
        if (gb_channel_next_message(s, &msg, &len) != 1 || len != S_MSG ||
            msg[0] != payload[0] || msg[S_MSG - 1] != payload[S_MSG - 1] ||
            (check && memcmp(msg, payload, S_MSG) != 0)) {
            fprintf(stderr, "message %zu arrived wrong\n", sent / S_MSG);
            exit(1);
        }
    }
    double t = s_wall() - t0;
    *cpu += s_cpu() - c0;
    return t;
}

int main(int argc, char **argv)
{
    const char *pki = NULL;
    long mb = 64, runs = 5, handshakes = 1000;
    bool smoke = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pki") == 0 && i + 1 < argc)
            pki = argv[++i];
        else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
            mb = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--handshakes") == 0 && i + 1 < argc)
            handshakes = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--smoke") == 0)
            smoke = true;
        else {
            fprintf(stderr, "usage: gb_channel_bench [--pki DIR] [--mb N] [--runs R] "
                            "[--handshakes N] [--smoke]\n");
            return 2;
        }
    }
    if (smoke) {
        mb = 4;
        runs = 1;
        handshakes = 10;
    }
    if (mb < 1 || mb > 4096 || runs < 1 || runs > S_MAX_RUNS || handshakes < 1) {
        fprintf(stderr, "gb_channel_bench: --mb 1..4096, --runs 1..%d, --handshakes >= 1\n",
                S_MAX_RUNS);
        return 2;
    }
    gb_log_set_level(GB_LOG_WARN); /* no info line per handshake */

    char tmpdir[] = "/tmp/gb-channel-bench-XXXXXX";
    if (pki) {
        snprintf(s_pki, sizeof s_pki, "%s", pki);
    } else {
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(s_pki, sizeof s_pki, "%s/pki", tmpdir);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "sh '%s' '%s' > /dev/null", GB_PKI_SCRIPT, s_pki);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not make the test PKI with %s\n", GB_PKI_SCRIPT);
            return 1;
        }
    }

    printf("gb_channel_bench: %s; client and server channel driven back to back in one "
           "thread, so both ends run on the same core\n",
           OpenSSL_version(OPENSSL_VERSION));

    /* raw AES-256-GCM, the ceiling */
    double speed = smoke ? 0 : s_openssl_speed();
    double enc = s_evp_gcm(false, smoke ? 0.05 : 1.0);
    double dec = s_evp_gcm(true, smoke ? 0.05 : 1.0);
    double both = 1.0 / (1.0 / enc + 1.0 / dec); /* each byte encrypted and decrypted */
    if (speed > 0)
        printf("raw AES-256-GCM (openssl speed -evp aes-256-gcm -seconds 1 -bytes 16384): "
               "%.2f GB/s\n",
               speed / 1e9);
    else if (!smoke)
        printf("raw AES-256-GCM (openssl speed): could not run the openssl command\n");
    printf("raw AES-256-GCM (EVP, 16 KiB blocks): encrypt %.2f GB/s, decrypt %.2f GB/s; "
           "encrypt+decrypt of each byte on one core %.2f GB/s\n",
           enc / 1e9, dec / 1e9, both / 1e9);

    gb_tls_t *st = s_tls(GB_TLS_SERVER, "coordinator");
    gb_tls_t *ct = s_tls(GB_TLS_CLIENT, "alice");

    /* throughput */
    uint8_t *payload = malloc(S_MSG);
    if (!payload)
        return 1;
    for (size_t i = 0; i < S_MSG; i++)
        payload[i] = (uint8_t)(i * 2654435761u >> 13);
    gb_channel_t *s, *c;
    s_handshake(st, ct, &s, &c);
    size_t total = (size_t)mb * S_MSG;
    double cpu = 0, walls[S_MAX_RUNS];
    s_stream(c, s, payload, total < 8 * S_MSG ? total : 8 * S_MSG, true, &cpu); /* warm-up */
    cpu = 0;
    for (long r = 0; r < runs; r++)
        walls[r] = s_stream(c, s, payload, total, smoke, &cpu);
    qsort(walls, (size_t)runs, sizeof walls[0], s_cmp_double);
    double best = (double)total / walls[0], median = (double)total / walls[runs / 2];
    double by_cpu = (double)total * (double)runs / cpu;
    printf("throughput: %ld MiB of update data in 1 MiB messages, client -> server, encrypt + "
           "decrypt, %ld run%s: best %.2f GB/s, median %.2f GB/s (by CPU time %.2f GB/s)\n",
           mb, runs, runs == 1 ? "" : "s", best / 1e9, median / 1e9, by_cpu / 1e9);
    printf("  best = %.2fx the 1 GB/s target; %.2fx raw AES-256-GCM encrypt (EVP); %.2fx the "
           "encrypt+decrypt ceiling\n",
           best / 1e9, best / enc, best / both);
    if (speed > 0)
        printf("  best = %.2fx raw AES-256-GCM as `openssl speed` measured it\n", best / speed);
    gb_channel_destroy(&c);
    gb_channel_destroy(&s);

    /* handshakes */
    double c0 = s_cpu(), t0 = s_wall();
    for (long i = 0; i < handshakes; i++) {
        s_handshake(st, ct, &s, &c);
        gb_channel_destroy(&c);
        gb_channel_destroy(&s);
    }
    double t = s_wall() - t0, tc = s_cpu() - c0;
    double rate = (double)handshakes / t;
    printf("handshakes: %ld full mutual TLS 1.3 handshakes (ECDSA P-256 certificates, X25519, "
           "no resumption, new channels each): %.0f/s (by CPU time %.0f/s), %.2fx the 300/s "
           "target\n",
           handshakes, rate, (double)handshakes / tc, rate / 300.0);
    if (speed > 0)
        printf("  beside raw AES-256-GCM at %.2f GB/s (openssl speed), same run\n", speed / 1e9);

    free(payload);
    gb_tls_destroy(&ct);
    gb_tls_destroy(&st);
    if (!pki) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return 0;
}
