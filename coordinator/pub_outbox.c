/* The publication outbox (pub_outbox.h). Waiting rounds live in an array
 * sorted by round; there are few (GB_PUB_OUTBOX_MAX_WAITING at most, and
 * normally none), so plain arrays and linear scans are the right size. */
#include "pub_outbox.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "explain_report.h"
#include "glassbox.pb-c.h"
#include "util/alloc.h"
#include "util/crash_point.h"
#include "util/file.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

#define S_STATE_PREFIX "unpublished-"
#define S_STATE_SUFFIX ".pb"
#define S_PATH_MAX 4096
#define S_MAX_PUB_BYTES ((size_t)1 << 31) /* as signing.h bounds a publication */

typedef struct {
    uint64_t round;
    uint8_t *bytes;    /* the packed Publication */
    size_t len;
    unsigned attempts; /* writes tried */
    double retry_at;   /* monotonic seconds */
} s_item_t;

struct gb_pub_outbox {
    char *out_dir, *state_dir;
    const gb_signer_t *signer;
    gb_explain_report_opts_t report; /* names (borrowed) and threshold of the reports */
    s_item_t *items; /* sorted by round */
    size_t n, cap;
    char last_error[GB_ERROR_MSG_MAX];
    uint8_t *recovered;      /* the newest round taken back in, to send again */
    size_t recovered_len;
    uint64_t recovered_round;
    bool recovered_taken;
};

static void s_gauge(const gb_pub_outbox_t *ob)
{
    gb_metrics_gauge_set("glassbox_publications_unwritten",
                         "Finished rounds whose publication files wait to be written", NULL,
                         NULL, (double)ob->n);
}

static int s_state_path(const gb_pub_outbox_t *ob, uint64_t round, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%s/" S_STATE_PREFIX "%06" PRIu64 S_STATE_SUFFIX, ob->state_dir,
                     round);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Writes every file of one round; 0 or the first failure. */
static int s_write(gb_pub_outbox_t *ob, const s_item_t *it, gb_error_t *err)
{
    if (!ob->out_dir)
        return 0;
    int rc = gb_publication_write_files(ob->signer, ob->out_dir, it->round, it->bytes, it->len,
                                        err);
    if (rc)
        return rc;
    Glassbox__Publication *p = glassbox__publication__unpack(NULL, it->len, it->bytes);
    if (!p)
        return gb_error_set(err, GB_EFORMAT, "round %" PRIu64 ": the publication does not "
                            "decode", it->round);
    gb_crash_point("signed-files");
    if (p->explanation)
        rc = gb_explain_report_write_named(ob->out_dir, it->round, p->explanation,
                                           p->explanation_distance, p->n_explanation_distance,
                                           &ob->report, err);
    glassbox__publication__free_unpacked(p, NULL);
    return rc;
}

static void s_forget_state(gb_pub_outbox_t *ob, uint64_t round)
{
    char path[S_PATH_MAX];
    if (!ob->state_dir || s_state_path(ob, round, path, sizeof path) != 0)
        return;
    if (unlink(path) != 0 && errno != ENOENT)
        gb_log_warn("publication outbox: cannot remove '%s': %s", path, strerror(errno));
}

static void s_remove(gb_pub_outbox_t *ob, size_t i)
{
    gb_free(ob->items[i].bytes);
    memmove(&ob->items[i], &ob->items[i + 1], (ob->n - i - 1) * sizeof *ob->items);
    ob->n--;
    s_gauge(ob);
}

/* Inserts a copy of bytes in round order (a round already waiting is
 * replaced). Gives up the oldest when full. */
static int s_keep(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *bytes, size_t len,
                  unsigned attempts, gb_error_t *err)
{
    uint8_t *copy = gb_malloc(len ? len : 1);
    if (!copy)
        return gb_error_set(err, GB_ENOMEM, "publication outbox: out of memory keeping round %"
                            PRIu64, round);
    memcpy(copy, bytes, len);
    size_t i = 0;
    while (i < ob->n && ob->items[i].round < round)
        i++;
    if (i < ob->n && ob->items[i].round == round) {
        gb_free(ob->items[i].bytes);
        ob->items[i].bytes = copy;
        ob->items[i].len = len;
        return 0;
    }
    if (ob->n == GB_PUB_OUTBOX_MAX_WAITING) {
        gb_log_error("publication outbox: %u rounds wait; giving up round %" PRIu64 " for good",
                     GB_PUB_OUTBOX_MAX_WAITING, ob->items[0].round);
        gb_metrics_counter_add("glassbox_publications_lost_total",
                               "Rounds whose publication files were given up", NULL, NULL, 1);
        s_forget_state(ob, ob->items[0].round);
        s_remove(ob, 0);
        if (i > 0)
            i--;
    }
    if (ob->n == ob->cap) {
        size_t cap = ob->cap ? 2 * ob->cap : 4;
        s_item_t *items = gb_realloc(ob->items, cap * sizeof *items);
        if (!items) {
            gb_free(copy);
            return gb_error_set(err, GB_ENOMEM, "publication outbox: out of memory");
        }
        ob->items = items;
        ob->cap = cap;
    }
    memmove(&ob->items[i + 1], &ob->items[i], (ob->n - i) * sizeof *ob->items);
    ob->items[i] = (s_item_t){.round = round, .bytes = copy, .len = len, .attempts = attempts};
    ob->n++;
    s_gauge(ob);
    return 0;
}

static double s_backoff_s(unsigned attempts)
{
    double ms = GB_PUB_OUTBOX_FIRST_RETRY_MS;
    for (unsigned i = 1; i < attempts && ms < GB_PUB_OUTBOX_MAX_RETRY_MS; i++)
        ms *= 2;
    return (ms < GB_PUB_OUTBOX_MAX_RETRY_MS ? ms : GB_PUB_OUTBOX_MAX_RETRY_MS) / 1000.0;
}

static void s_failed(gb_pub_outbox_t *ob, s_item_t *it, const gb_error_t *err)
{
    it->attempts++;
    it->retry_at = gb_time_now() + s_backoff_s(it->attempts);
    snprintf(ob->last_error, sizeof ob->last_error, "%s", err->msg);
    gb_log_error("federation: round %" PRIu64 ": the publication files were not written to '%s' "
                 "(attempt %u): %s; trying again in %.0f s", it->round, ob->out_dir,
                 it->attempts, err->msg, s_backoff_s(it->attempts));
    gb_metrics_counter_add("glassbox_publication_failures_total",
                           "Publications not written or not sent", NULL, NULL, 1);
}

/* ---- start-up --------------------------------------------------------------- */

/* ".NAME.tmp-XXXXXX" with NAME one of the files this outbox writes. */
static bool s_is_our_tmp(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 + 11 || name[0] != '.' || memcmp(name + len - 11, ".tmp-", 5) != 0)
        return false;
    /* index.html and history.json: the report (federation_report.c) */
    static const char *const ours[] = {"round-", "coordinator.crt", "explanation-",
                                       S_STATE_PREFIX, "index.html", "history.json"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (strncmp(name + 1, ours[i], strlen(ours[i])) == 0)
            return true;
    return false;
}

static void s_clean_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[S_PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!s_is_our_tmp(e->d_name))
            continue;
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof path && unlink(path) == 0)
            gb_log_info("publication outbox: removed '%s', left by an interrupted write", path);
    }
    closedir(d);
}

static bool s_parse_state_name(const char *name, uint64_t *round)
{
    size_t plen = strlen(S_STATE_PREFIX), slen = strlen(S_STATE_SUFFIX), len = strlen(name);
    if (len <= plen + slen || strncmp(name, S_STATE_PREFIX, plen) != 0 ||
        strcmp(name + len - slen, S_STATE_SUFFIX) != 0)
        return false;
    uint64_t r = 0;
    for (size_t i = plen; i < len - slen; i++) {
        if (name[i] < '0' || name[i] > '9' || r > (UINT64_MAX - 9) / 10)
            return false;
        r = r * 10 + (uint64_t)(name[i] - '0');
    }
    *round = r;
    return r > 0;
}

/* Takes back the checkpointed rounds a previous run did not finish
 * publishing; removes those whose checkpoint it never committed. */
static int s_load_state(gb_pub_outbox_t *ob, uint64_t checkpointed, gb_error_t *err)
{
    DIR *d = opendir(ob->state_dir);
    if (!d)
        return 0; /* the federation creates it; nothing waits in a new one */
    struct dirent *e;
    char path[S_PATH_MAX];
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        uint64_t round;
        if (!s_parse_state_name(e->d_name, &round))
            continue;
        int n = snprintf(path, sizeof path, "%s/%s", ob->state_dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        if (round > checkpointed) {
            gb_log_info("publication outbox: round %" PRIu64 " was staged but never "
                        "checkpointed (the last run stopped first); it runs again", round);
            if (unlink(path) != 0)
                gb_log_warn("publication outbox: cannot remove '%s': %s", path,
                            strerror(errno));
            continue;
        }
        uint8_t *bytes = NULL;
        size_t len = 0;
        gb_error_t rerr = {0};
        Glassbox__Publication *p = NULL;
        if (gb_file_read_all(path, S_MAX_PUB_BYTES, &bytes, &len, &rerr) != 0 ||
            !(p = glassbox__publication__unpack(NULL, len, bytes)) || p->round != round) {
            gb_log_error("publication outbox: '%s' is damaged (%s); removed", path,
                         rerr.code ? rerr.msg : "not the publication of its round");
            if (unlink(path) != 0)
                gb_log_warn("publication outbox: cannot remove '%s': %s", path,
                            strerror(errno));
        } else {
            gb_log_info("publication outbox: round %" PRIu64 " was checkpointed but its "
                        "publication not finished by the last run; publishing it now", round);
            rc = s_keep(ob, round, bytes, len, 0, err);
            if (rc == 0 && round > ob->recovered_round) {
                gb_free(ob->recovered);
                ob->recovered = bytes;
                ob->recovered_len = len;
                ob->recovered_round = round;
                bytes = NULL;
            }
        }
        if (p)
            glassbox__publication__free_unpacked(p, NULL);
        gb_free(bytes);
    }
    closedir(d);
    return rc;
}

gb_pub_outbox_t *gb_pub_outbox_new(const char *out_dir, const char *state_dir,
                                   const gb_signer_t *signer, uint64_t checkpointed_round,
                                   gb_error_t *err)
{
    if ((!out_dir && !state_dir) || (out_dir && !signer)) {
        gb_error_set(err, GB_EINVAL, "publication outbox: no directory, or files without a "
                                     "signer");
        return NULL;
    }
    gb_pub_outbox_t *ob = gb_calloc(1, sizeof *ob);
    if (!ob || (out_dir && !(ob->out_dir = gb_strdup(out_dir))) ||
        (state_dir && !(ob->state_dir = gb_strdup(state_dir)))) {
        gb_pub_outbox_destroy(&ob);
        gb_error_set(err, GB_ENOMEM, "publication outbox: out of memory");
        return NULL;
    }
    ob->signer = signer;
    if (out_dir)
        s_clean_tmp(out_dir);
    if (state_dir) {
        s_clean_tmp(state_dir);
        if (s_load_state(ob, checkpointed_round, err) != 0) {
            gb_pub_outbox_destroy(&ob);
            return NULL;
        }
    }
    s_gauge(ob);
    return ob;
}

void gb_pub_outbox_set_report(gb_pub_outbox_t *ob, const gb_explain_report_opts_t *opts)
{
    ob->report = *opts;
}

void gb_pub_outbox_destroy(gb_pub_outbox_t **pob)
{
    if (!pob || !*pob)
        return;
    gb_pub_outbox_t *ob = *pob;
    for (size_t i = 0; i < ob->n; i++)
        gb_free(ob->items[i].bytes);
    gb_free(ob->items);
    gb_free(ob->recovered);
    gb_free(ob->out_dir);
    gb_free(ob->state_dir);
    gb_free(ob);
    *pob = NULL;
}

/* ---- writing ---------------------------------------------------------------- */

int gb_pub_outbox_stage(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *pub, size_t len,
                        gb_error_t *err)
{
    char path[S_PATH_MAX];
    if (!ob->state_dir)
        return 0;
    if (s_state_path(ob, round, path, sizeof path) != 0)
        return gb_error_set(err, GB_EINVAL, "publication outbox: state directory name too long");
    return gb_file_write_atomic(path, pub, len, 0600, err);
}

bool gb_pub_outbox_recovered(gb_pub_outbox_t *ob, uint64_t *round, const uint8_t **pub,
                             size_t *len)
{
    if (!ob->recovered || ob->recovered_taken)
        return false;
    ob->recovered_taken = true;
    *round = ob->recovered_round;
    *pub = ob->recovered;
    *len = ob->recovered_len;
    return true;
}

int gb_pub_outbox_put(gb_pub_outbox_t *ob, uint64_t round, const uint8_t *pub, size_t len,
                      gb_error_t *err)
{
    gb_error_t scratch = {0};
    if (!err)
        err = &scratch; /* a failed write's message is logged and kept for the status */
    s_item_t now = {.round = round, .bytes = (uint8_t *)pub, .len = len};
    int rc = s_write(ob, &now, err);
    if (rc == 0) {
        gb_crash_point("published");
        s_forget_state(ob, round);
        return 0;
    }
    gb_error_t kerr = {0};
    if (s_keep(ob, round, pub, len, 0, &kerr) != 0) {
        gb_log_error("federation: round %" PRIu64 ": the publication files were not written "
                     "(%s) and cannot be kept for a retry: %s", round, err->msg, kerr.msg);
        return kerr.code;
    }
    size_t i = 0;
    while (ob->items[i].round != round)
        i++;
    s_failed(ob, &ob->items[i], err);
    /* staged before the checkpoint; staged again in case that copy is gone */
    gb_error_t serr = {0};
    if (gb_pub_outbox_stage(ob, round, pub, len, &serr) != 0)
        gb_log_warn("publication outbox: round %" PRIu64 " is kept in memory only (%s): a "
                    "restart before it is written loses its files", round, serr.msg);
    return rc;
}

size_t gb_pub_outbox_retry(gb_pub_outbox_t *ob, double now)
{
    size_t written = 0;
    while (ob->n && ob->items[0].retry_at <= now) {
        s_item_t *it = &ob->items[0];
        gb_error_t err = {0};
        if (s_write(ob, it, &err) != 0) {
            s_failed(ob, it, &err);
            break;
        }
        gb_log_info("federation: round %" PRIu64 " published to '%s' after %u failed "
                    "attempt(s)", it->round, ob->out_dir, it->attempts);
        gb_metrics_counter_add("glassbox_publications_total", "Rounds published (signed)", NULL,
                               NULL, 1);
        s_forget_state(ob, it->round);
        s_remove(ob, 0);
        written++;
    }
    if (ob->n == 0)
        ob->last_error[0] = '\0';
    return written;
}

double gb_pub_outbox_next_retry(const gb_pub_outbox_t *ob)
{
    return ob->n ? ob->items[0].retry_at : HUGE_VAL;
}

size_t gb_pub_outbox_waiting(const gb_pub_outbox_t *ob, uint64_t *first, const char **last_error)
{
    if (first)
        *first = ob->n ? ob->items[0].round : 0;
    if (last_error)
        *last_error = ob->last_error;
    return ob->n;
}
