/* The enrollment token store (see enroll_tokens.h).
 *
 * The file is a few text lines, one per token:
 *   <sha256 hex> <created> <expires> <uses> <uses_left>
 * after a header line; parsed strictly (util/table_file), rewritten whole.
 * Every mutation is lock (util/lock_file), re-read, change, write, unlock,
 * so the in-memory copy is only a view of the last read and two processes
 * never undo each other's changes. Hashes and tokens go to and from text
 * through util/hex, the same code as the CA registry's. */
#include "enroll_tokens.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/alloc.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/lock_file.h"
#include "util/log.h"
#include "util/table_file.h"

#define S_HEADER "# glassbox enrollment tokens, version 1"
#define S_COLUMNS "# sha256 created expires uses uses_left"
#define S_FILE_MAX ((size_t)4 << 20)
#define S_PATH_MAX 4096

struct gb_tokens {
    char *dir;                /* directory holding the store */
    gb_token_info_t *tokens;  /* as last read */
    size_t n, cap;            /* used and allocated */
};

static int s_sha256(const uint8_t *in, size_t n, uint8_t out[32], gb_error_t *err)
{
    unsigned int olen = 0;
    if (!EVP_Digest(in, n, out, &olen, EVP_sha256(), NULL) || olen != 32) {
        char why[256] = "no OpenSSL reason";
        unsigned long e = ERR_get_error();
        if (e)
            ERR_error_string_n(e, why, sizeof why);
        ERR_clear_error();
        return gb_error_set(err, GB_ECRYPTO, "SHA-256 failed: %s", why);
    }
    return 0;
}

static int s_path(const char *dir, const char *name, char out[S_PATH_MAX], gb_error_t *err)
{
    int n = snprintf(out, S_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= S_PATH_MAX)
        return gb_error_set(err, GB_EINVAL, "token store path '%.60s...' is too long", dir);
    return 0;
}

/* Parses one token record (gb_table_row_fn) into a gb_token_info_t. */
static int s_parse_line(char **f, int nfields, void *row, const char *path, size_t lineno,
                        void *arg, gb_error_t *err)
{
    (void)nfields;
    (void)arg;
    gb_token_info_t *t = row;
    if (!gb_table_is_hex(f[0], 64) ||
        gb_hex_decode(f[0], 64, t->sha256, sizeof t->sha256, NULL) != 0)
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: hash is not 64 lowercase hex digits",
                            path, lineno);
    memcpy(t->id, f[0], 12);
    t->id[12] = '\0';
    uint64_t created, expires, uses, left;
    if (!gb_table_parse_u64(f[1], INT64_MAX, &created) ||
        !gb_table_parse_u64(f[2], INT64_MAX, &expires) ||
        !gb_table_parse_u64(f[3], GB_TOKENS_MAX_USES, &uses) ||
        !gb_table_parse_u64(f[4], uses, &left) || uses == 0)
        return gb_error_set(err, GB_EFORMAT,
                            "%s line %zu: bad numbers '%s %s %s %s' (uses 1..%u, left <= uses)",
                            path, lineno, f[1], f[2], f[3], f[4], GB_TOKENS_MAX_USES);
    t->created = (int64_t)created;
    t->expires = (int64_t)expires;
    t->uses = (uint32_t)uses;
    t->uses_left = (uint32_t)left;
    return 0;
}

/* Replaces the store's tokens with the file's (missing file: none). */
static int s_read(gb_tokens_t *s, gb_error_t *err)
{
    char path[S_PATH_MAX];
    int rc = s_path(s->dir, GB_TOKENS_FILE, path, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        struct stat dst;
        if (stat(s->dir, &dst) != 0 || !S_ISDIR(dst.st_mode))
            return gb_error_set(err, GB_EIO, "token store directory '%s' does not exist",
                                s->dir);
        s->n = 0;
        return 0;
    }
    const gb_table_format_t format = {.header = S_HEADER,
                                      .what = "glassbox token store",
                                      .max_bytes = S_FILE_MAX,
                                      .max_rows = GB_TOKENS_MAX,
                                      .fields = 5,
                                      .row_size = sizeof(gb_token_info_t),
                                      .row = s_parse_line};
    void *rows = NULL;
    size_t n = 0;
    if ((rc = gb_table_file_read(path, &format, &rows, &n, err)) != 0)
        return rc;
    gb_free(s->tokens);
    s->tokens = rows;
    s->n = n;
    s->cap = n;
    return 0;
}

/* Writes t[0..n) except tokens long expired as of now. */
static int s_write(const gb_tokens_t *s, const gb_token_info_t *t, size_t n, time_t now,
                   gb_error_t *err)
{
    char path[S_PATH_MAX];
    int rc = s_path(s->dir, GB_TOKENS_FILE, path, err);
    if (rc)
        return rc;
    size_t line_max = 64 + 3 * 21 + 2 * 11 + 8;
    size_t cap = sizeof S_HEADER + sizeof S_COLUMNS + n * line_max + 1;
    char *buf = gb_malloc(cap);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "out of memory writing %s", path);
    size_t used = (size_t)snprintf(buf, cap, "%s\n%s\n", S_HEADER, S_COLUMNS);
    for (size_t i = 0; i < n; i++) {
        if (t[i].expires + GB_TOKENS_KEEP_EXPIRED_S < (int64_t)now)
            continue;
        char hex[65];
        if ((rc = gb_hex_encode(t[i].sha256, 32, hex, sizeof hex, err)) != 0) {
            gb_free(buf);
            return rc;
        }
        used += (size_t)snprintf(buf + used, cap - used,
                                 "%s %" PRId64 " %" PRId64 " %" PRIu32 " %" PRIu32 "\n", hex,
                                 t[i].created, t[i].expires, t[i].uses, t[i].uses_left);
    }
    rc = gb_file_write_atomic(path, buf, used, 0600, err);
    gb_free(buf);
    return rc;
}

/* Exclusive lock on DIR/.tokens.lock (util/lock_file) into *fd. */
static int s_lock(const gb_tokens_t *s, int *fd, gb_error_t *err)
{
    *fd = -1;
    char path[S_PATH_MAX];
    int rc = s_path(s->dir, ".tokens.lock", path, err);
    if (rc)
        return rc;
    return gb_lock_file_take(path, fd, err);
}

gb_tokens_t *gb_tokens_load(const char *dir, gb_error_t *err)
{
    if (!dir || !*dir) {
        gb_error_set(err, GB_EINVAL, "token store directory is missing");
        return NULL;
    }
    gb_tokens_t *s = gb_calloc(1, sizeof *s);
    if (!s || !(s->dir = gb_strdup(dir))) {
        gb_free(s);
        gb_error_set(err, GB_ENOMEM, "out of memory loading tokens of '%s'", dir);
        return NULL;
    }
    if (s_read(s, err)) {
        gb_tokens_destroy(&s);
        return NULL;
    }
    return s;
}

void gb_tokens_destroy(gb_tokens_t **store)
{
    if (!store || !*store)
        return;
    gb_free((*store)->tokens);
    gb_free((*store)->dir);
    gb_free(*store);
    *store = NULL;
}

size_t gb_tokens_count(const gb_tokens_t *store)
{
    return store->n;
}

const gb_token_info_t *gb_tokens_get(const gb_tokens_t *store, size_t i)
{
    return i < store->n ? &store->tokens[i] : NULL;
}

const char *gb_token_status(const gb_token_info_t *t, time_t now)
{
    if ((int64_t)now >= t->expires)
        return "expired";
    return t->uses_left == 0 ? "used up" : "active";
}

int gb_tokens_create(gb_tokens_t *store, uint32_t uses, int64_t ttl_s, time_t now,
                     char token_hex[GB_TOKEN_HEX_LEN + 1], char id[13], gb_error_t *err)
{
    token_hex[0] = '\0';
    if (uses < 1 || uses > GB_TOKENS_MAX_USES)
        return gb_error_set(err, GB_EINVAL, "token uses %" PRIu32 ": expected 1..%u", uses,
                            GB_TOKENS_MAX_USES);
    if (ttl_s < 1 || ttl_s > GB_TOKENS_MAX_TTL_S)
        return gb_error_set(err, GB_EINVAL, "token lifetime %" PRId64 " s: expected 1..%" PRId64,
                            ttl_s, GB_TOKENS_MAX_TTL_S);
    int lock;
    int rc = s_lock(store, &lock, err);
    if (rc)
        return rc;
    uint8_t raw[GB_TOKEN_BYTES];
    if ((rc = s_read(store, err)) != 0)
        goto out;
    size_t live = 0;
    for (size_t i = 0; i < store->n; i++)
        live += store->tokens[i].expires + GB_TOKENS_KEEP_EXPIRED_S >= (int64_t)now;
    if (live >= GB_TOKENS_MAX) {
        rc = gb_error_set(err, GB_ERANGE, "token store '%s' already holds %d tokens",
                          store->dir, GB_TOKENS_MAX);
        goto out;
    }
    if (store->n == store->cap) {
        size_t grow = store->cap ? store->cap * 2 : 8;
        gb_token_info_t *g = gb_realloc(store->tokens, grow * sizeof *g);
        if (!g) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory creating a token");
            goto out;
        }
        store->tokens = g;
        store->cap = grow;
    }
    if (RAND_bytes(raw, sizeof raw) != 1) {
        char why[256] = "no OpenSSL reason";
        unsigned long e = ERR_get_error();
        if (e)
            ERR_error_string_n(e, why, sizeof why);
        ERR_clear_error();
        rc = gb_error_set(err, GB_ECRYPTO, "drawing a token: %s", why);
        goto out;
    }
    gb_token_info_t *t = &store->tokens[store->n];
    memset(t, 0, sizeof *t);
    if ((rc = s_sha256(raw, sizeof raw, t->sha256, err)) != 0)
        goto out;
    char hex[65];
    if ((rc = gb_hex_encode(t->sha256, 32, hex, sizeof hex, err)) != 0)
        goto out;
    memcpy(t->id, hex, 12);
    t->id[12] = '\0';
    t->created = (int64_t)now;
    t->expires = (int64_t)now + ttl_s;
    t->uses = t->uses_left = uses;
    /* The text form before the write: once the file holds the token nothing
     * may fail, or a token would exist that nobody was shown. A failed
     * write wipes the caller's copy again. */
    if ((rc = gb_hex_encode(raw, sizeof raw, token_hex, GB_TOKEN_HEX_LEN + 1, err)) != 0)
        goto out;
    if ((rc = s_write(store, store->tokens, store->n + 1, now, err)) != 0) {
        OPENSSL_cleanse(token_hex, GB_TOKEN_HEX_LEN + 1);
        goto out;
    }
    store->n++;
    if (id)
        memcpy(id, t->id, 13);
    gb_log_info("enrollment token %s created: %" PRIu32 " use(s), expires in %" PRId64 " s",
                t->id, uses, ttl_s);
out:
    OPENSSL_cleanse(raw, sizeof raw);
    gb_lock_file_release(lock);
    return rc;
}

/* gb_tokens_check (spend false) and gb_tokens_consume (spend true): the
 * same checks under the same lock, so what check accepts consume accepts
 * unless another use came in between. */
static int s_use(gb_tokens_t *store, const uint8_t *token, size_t len, time_t now, bool spend,
                 gb_error_t *err)
{
    if (!token && len)
        return gb_error_set(err, GB_EINVAL, "gb_tokens_%s: NULL token",
                            spend ? "consume" : "check");
    while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
                       token[len - 1] == ' ' || token[len - 1] == '\t'))
        len--;
    uint8_t raw[GB_TOKEN_BYTES], hash[32];
    if (len != GB_TOKEN_HEX_LEN ||
        gb_hex_decode((const char *)token, len, raw, sizeof raw, NULL) != 0) {
        OPENSSL_cleanse(raw, sizeof raw);
        return gb_error_warn(err, GB_EFORMAT,
                             "enrollment token refused: expected %d hex digits, got %zu bytes%s",
                             GB_TOKEN_HEX_LEN, len,
                             len == GB_TOKEN_HEX_LEN ? " with a non-hex digit" : "");
    }
    int rc = s_sha256(raw, sizeof raw, hash, err);
    OPENSSL_cleanse(raw, sizeof raw);
    if (rc)
        return rc;
    int lock;
    if ((rc = s_lock(store, &lock, err)) != 0)
        return rc;
    if ((rc = s_read(store, err)) != 0)
        goto out;
    /* Compare against every hash; remember the match without branching on it. */
    size_t match = SIZE_MAX;
    for (size_t i = 0; i < store->n; i++) {
        size_t hit = (size_t)0 - (size_t)(CRYPTO_memcmp(store->tokens[i].sha256, hash, 32) == 0);
        match = (match & ~hit) | (i & hit);
    }
    if (match == SIZE_MAX) {
        rc = gb_error_warn(err, GB_EINTEGRITY, "enrollment token refused: no such token");
        goto out;
    }
    gb_token_info_t *t = &store->tokens[match];
    if ((int64_t)now >= t->expires) {
        rc = gb_error_warn(err, GB_ERANGE,
                           "enrollment token %s refused: it expired %" PRId64 " s ago", t->id,
                           (int64_t)now - t->expires);
        goto out;
    }
    if (t->uses_left == 0) {
        rc = gb_error_warn(err, GB_EPROTO,
                           "enrollment token %s refused: all %" PRIu32 " use(s) are spent",
                           t->id, t->uses);
        goto out;
    }
    if (!spend)
        goto out;
    t->uses_left--;
    if ((rc = s_write(store, store->tokens, store->n, now, err)) != 0) {
        t->uses_left++;
        goto out;
    }
    gb_log_info("enrollment token %s used: %" PRIu32 " use(s) left", t->id, t->uses_left);
out:
    OPENSSL_cleanse(hash, sizeof hash);
    gb_lock_file_release(lock);
    return rc;
}

int gb_tokens_check(gb_tokens_t *store, const uint8_t *token, size_t len, time_t now,
                    gb_error_t *err)
{
    return s_use(store, token, len, now, false, err);
}

int gb_tokens_consume(gb_tokens_t *store, const uint8_t *token, size_t len, time_t now,
                      gb_error_t *err)
{
    return s_use(store, token, len, now, true, err);
}
