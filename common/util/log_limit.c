/* Per-source token buckets for peer-caused log lines (log_limit.h). */
#include "util/log_limit.h"

#include <string.h>

void gb_log_limit_init(gb_log_limiter_t *l, double rate, double burst)
{
    memset(l, 0, sizeof *l);
    l->rate = rate > 0 ? rate : 1;
    l->burst = burst >= 1 ? burst : 1;
    for (size_t i = 0; i < GB_LOG_LIMIT_BUCKETS; i++) {
        l->buckets[i].tokens = l->burst;
        l->buckets[i].last = -1;
    }
}

/* FNV-1a: sources are addresses or routing ids, not chosen to collide in a
 * bucket the attacker wants; a collision only shares a budget. */
static size_t s_bucket(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h % GB_LOG_LIMIT_BUCKETS);
}

bool gb_log_limit_allow(gb_log_limiter_t *l, const void *key, size_t len, double now)
{
    gb_log_bucket_t *b = &l->buckets[s_bucket(key, len)];
    if (b->last >= 0 && now > b->last) {
        b->tokens += (now - b->last) * l->rate;
        if (b->tokens > l->burst)
            b->tokens = l->burst;
    }
    b->last = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return true;
    }
    b->suppressed++;
    return false;
}

uint64_t gb_log_limit_take_suppressed(gb_log_limiter_t *l)
{
    uint64_t n = 0;
    for (size_t i = 0; i < GB_LOG_LIMIT_BUCKETS; i++) {
        n += l->buckets[i].suppressed;
        l->buckets[i].suppressed = 0;
    }
    return n;
}
