/* Logging: format the whole line into a stack buffer, then one write(2), so
 * lines from different threads never interleave. */
#include "util/log.h"
#include "util/error.h"
#include "util/log_limit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = -1;

static const char *s_names[] = {"debug", "info", "warn", "error", "off"};

#define S_BLAME_RATE 2.0
#define S_BLAME_BURST 20.0
#define S_BLAME_REPORT_S 5.0

static _Thread_local const char *s_blamed; /* the peer this thread's lines are about */
static pthread_mutex_t s_blame_lock = PTHREAD_MUTEX_INITIALIZER;
static gb_log_limiter_t s_blame_budget;
static bool s_blame_ready;
static double s_blame_report_at;

void gb_log_blame(const char *peer)
{
    s_blamed = peer;
}

static double s_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void s_report_held(uint64_t held)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%llu more log lines caused by peers held back in the last %.0f s",
             (unsigned long long)held, S_BLAME_REPORT_S);
    gb_log(GB_LOG_WARN, "%s", msg);
}

/* Whether a line about the blamed peer may be written now; reports what was
 * held back when it is time. */
static bool s_blame_allows(enum gb_log_level level)
{
    const char *peer = level < GB_LOG_ERROR ? s_blamed : NULL;
    double now = s_monotonic();
    uint64_t held = 0;
    bool ok = true;
    pthread_mutex_lock(&s_blame_lock);
    if (!s_blame_ready) {
        gb_log_limit_init(&s_blame_budget, S_BLAME_RATE, S_BLAME_BURST);
        s_blame_ready = true;
        s_blame_report_at = now + S_BLAME_REPORT_S;
    }
    if (peer)
        ok = gb_log_limit_allow(&s_blame_budget, peer, strlen(peer), now);
    if (now >= s_blame_report_at) {
        held = gb_log_limit_take_suppressed(&s_blame_budget);
        s_blame_report_at = now + S_BLAME_REPORT_S;
    }
    pthread_mutex_unlock(&s_blame_lock);
    if (held) {
        const char *blamed = s_blamed;
        s_blamed = NULL; /* the report is nobody's line */
        s_report_held(held);
        s_blamed = blamed;
    }
    return ok;
}

void gb_log_report_held(void)
{
    uint64_t held = 0;
    pthread_mutex_lock(&s_blame_lock);
    if (s_blame_ready)
        held = gb_log_limit_take_suppressed(&s_blame_budget);
    pthread_mutex_unlock(&s_blame_lock);
    if (held) {
        const char *blamed = s_blamed;
        s_blamed = NULL;
        s_report_held(held);
        s_blamed = blamed;
    }
}

int gb_log_parse_level(const char *name, enum gb_log_level *out)
{
    for (int i = 0; i <= GB_LOG_OFF; i++) {
        if (name && strcmp(name, s_names[i]) == 0) {
            *out = (enum gb_log_level)i;
            return 0;
        }
    }
    return GB_EINVAL;
}

void gb_log_set_level(enum gb_log_level level)
{
    atomic_store(&s_level, (int)level);
}

enum gb_log_level gb_log_get_level(void)
{
    int level = atomic_load(&s_level);
    if (level < 0) {
        enum gb_log_level parsed = GB_LOG_INFO;
        const char *env = getenv("GLASSBOX_LOG");
        if (env && gb_log_parse_level(env, &parsed) != 0)
            parsed = GB_LOG_INFO;
        level = (int)parsed;
        atomic_store(&s_level, level);
    }
    return (enum gb_log_level)level;
}

void gb_log(enum gb_log_level level, const char *fmt, ...)
{
    if (level < gb_log_get_level() || level >= GB_LOG_OFF)
        return;
    if (!s_blame_allows(level))
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, s_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t written = write(STDERR_FILENO, line, len);
    (void)written;
}

int gb_error_warn(gb_error_t *err, int code, const char *fmt, ...)
{
    char msg[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (code != GB_ENOMEM)
        gb_log_warn("%s", msg);
    return gb_error_set(err, code, "%s", msg);
}
