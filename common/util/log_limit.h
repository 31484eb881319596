/* A budget for log lines that peers cause: what a flood of junk frames or
 * handshakes writes to the log is bounded per source, and what was held back
 * is counted and reported instead of written.
 *
 * Sources are hashed into GB_LOG_LIMIT_BUCKETS token buckets (burst lines at
 * once, then rate a second); two sources may share a bucket, which only
 * makes the budget stricter for both. One flooding source cannot silence the
 * log about others beyond its bucket's share.
 *
 * Ownership: the caller owns the limiter (embed it or allocate it); nothing
 * inside is allocated. Not thread-safe. */
#ifndef GB_UTIL_LOG_LIMIT_H
#define GB_UTIL_LOG_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GB_LOG_LIMIT_BUCKETS 64

typedef struct {
    double tokens;       /* lines it may write now */
    double last;         /* when tokens were last topped up */
    uint64_t suppressed; /* lines held back since the last report */
} gb_log_bucket_t;

typedef struct {
    double rate;  /* lines a second per source, after the burst */
    double burst; /* lines at once */
    gb_log_bucket_t buckets[GB_LOG_LIMIT_BUCKETS];
} gb_log_limiter_t;

/* A limiter of `rate` lines a second after a burst of `burst` per source
 * (rate > 0, burst >= 1; others are raised to those). */
void gb_log_limit_init(gb_log_limiter_t *l, double rate, double burst);

/* True when a line about source key[0..len) may be written at time `now`
 * (seconds, monotonic); false counts it as suppressed. */
bool gb_log_limit_allow(gb_log_limiter_t *l, const void *key, size_t len, double now);

/* Lines suppressed since the last call, over all sources; resets them. */
uint64_t gb_log_limit_take_suppressed(gb_log_limiter_t *l);

#endif
