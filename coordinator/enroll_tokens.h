/* Enrollment tokens: the shared secrets with which a client that has no
 * certificate yet may ask the coordinator to sign its CSR (DESIGN.md,
 * Security; kubelet TLS bootstrap tokens).
 *
 * A token is 32 random bytes (RAND_bytes), shown once, as 64 hex digits, to
 * the administrator who creates it. The store, DIR/tokens in the CA
 * directory, keeps only its SHA-256, its expiry and how many uses it has
 * left, so the file lets nobody enroll. Presented tokens are hashed and
 * compared against every stored hash with CRYPTO_memcmp, without stopping at
 * a match, so the time taken says nothing about which hash was close.
 *
 * The coordinator consumes tokens while an administrator may be creating
 * others with `glassbox-coordinator token create`; every change therefore
 * takes an exclusive lock on DIR/.tokens.lock, re-reads the file under it
 * and rewrites it atomically (gb_file_write_atomic, mode 0600) before it
 * reports success, so a use is never counted twice nor lost. Tokens that
 * expired more than GB_TOKENS_KEEP_EXPIRED_S ago are dropped on rewrite.
 *
 * Tokens are never logged, nor kept in memory after a call: lines name a
 * token by its id, the first 12 hex digits of its hash.
 *
 * Ownership: gb_tokens_load returns a store the caller owns
 * (gb_tokens_destroy). Not thread-safe: one thread uses a store at a time
 * (processes are serialised by the lock). */
#ifndef GB_COORDINATOR_ENROLL_TOKENS_H
#define GB_COORDINATOR_ENROLL_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

#define GB_TOKENS_FILE "tokens"            /* store file inside the CA directory */
#define GB_TOKEN_BYTES 32                  /* random bytes in a token */
#define GB_TOKEN_HEX_LEN 64                /* its text form */
#define GB_TOKENS_MAX 10000                /* tokens in the store */
#define GB_TOKENS_MAX_USES 1000000u        /* uses of one token */
#define GB_TOKENS_MAX_TTL_S ((int64_t)10 * 366 * 86400) /* longest lifetime */
#define GB_TOKENS_KEEP_EXPIRED_S ((int64_t)7 * 86400)   /* kept for `token list` */

/* One stored token. */
typedef struct {
    char id[13];         /* first 12 hex digits of sha256: names the token in logs */
    uint8_t sha256[32];  /* SHA-256 of the 32 token bytes */
    int64_t created;     /* Unix seconds */
    int64_t expires;     /* Unix seconds; refused from this second on */
    uint32_t uses;       /* uses it was created with */
    uint32_t uses_left;  /* uses remaining */
} gb_token_info_t;

typedef struct gb_tokens gb_tokens_t;

/* Loads DIR/tokens; a missing file is an empty store (DIR must exist). A
 * damaged file is refused (GB_EFORMAT naming the line). NULL and err on
 * failure. */
gb_tokens_t *gb_tokens_load(const char *dir, gb_error_t *err);

/* Frees the store; sets *store to NULL; NULL-safe. */
void gb_tokens_destroy(gb_tokens_t **store);

/* Number of tokens as last read, and token i (borrowed, valid until the next
 * create or consume on this store). */
size_t gb_tokens_count(const gb_tokens_t *store);
const gb_token_info_t *gb_tokens_get(const gb_tokens_t *store, size_t i);

/* "active", "expired" or "used up" as of now. */
const char *gb_token_status(const gb_token_info_t *t, time_t now);

/* Makes a new token with `uses` uses (1..GB_TOKENS_MAX_USES) valid for
 * ttl_s seconds (1..GB_TOKENS_MAX_TTL_S) from now, stores its hash, and
 * writes the token's 64 hex digits and a NUL into token_hex: the only copy,
 * for the caller to hand to the administrator and then wipe. If id is not
 * NULL it receives the token's id. */
int gb_tokens_create(gb_tokens_t *store, uint32_t uses, int64_t ttl_s, time_t now,
                     char token_hex[GB_TOKEN_HEX_LEN + 1], char id[13],
                     gb_error_t *err) GB_MUST_CHECK;

/* Spends one use of the token in token[0..len): its 64 hex digits (either
 * case; trailing whitespace such as the token file's newline is ignored).
 * Succeeds only after the decremented count is on disk. Refusals, each with
 * its own code, a message and a warning in the log (never the token):
 *   GB_EFORMAT     not 64 hex digits
 *   GB_EINTEGRITY  no such token (wrong, or long expired and dropped)
 *   GB_ERANGE      the token has expired
 *   GB_EPROTO      the token has no uses left
 * and GB_EIO / GB_ENOMEM when the store cannot be read or written (then the
 * use is not spent). */
int gb_tokens_consume(gb_tokens_t *store, const uint8_t *token, size_t len, time_t now,
                      gb_error_t *err) GB_MUST_CHECK;

/* The checks of gb_tokens_consume, with the same refusals (and warnings),
 * without spending a use or writing anything: 0 when consume would succeed
 * now. The enrollment service checks the token, then the CA's policy, and
 * only then consumes, so that neither a request the CA refuses nor one
 * without a good token costs a use or says anything about names. */
int gb_tokens_check(gb_tokens_t *store, const uint8_t *token, size_t len, time_t now,
                    gb_error_t *err) GB_MUST_CHECK;

#endif
