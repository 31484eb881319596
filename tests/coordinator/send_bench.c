/* gb_send_bench: what sending one round's Tasks to N sessions costs the
 * coordinator, the old way beside the new (issue 11).
 *
 *   gb_send_bench [--sessions N] [--params P] [--rounds R]
 *
 * N sessions (default 500), each with its name and a conversation as the
 * front door keeps them; one Task per session carrying a model of P
 * parameters (default 80202, LeNet's count; spec "input P / dense 1" minus
 * the bias, so any P works). Old: the session found by scanning every
 * session's name (front_door.c before the session index), then
 * gb_conversation_queue of the whole Envelope (validation, SHA-256 of the
 * model, packing) per session. New: the session found through
 * gb_session_index, the shared fields packed once per round
 * (gb_task_pack_prepare, timed with the round) and gb_conversation_queue_parts
 * per session. Both then flush into a sink that keeps nothing (the link's
 * encryption and the socket are the same either way and are not timed).
 * The first frames of both are compared byte for byte. The best of R (5)
 * rounds of each, in wall time, is printed as one JSON line. Not a test;
 * built by tests/coordinator/scale.cmake into the top of the build tree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/conversation.h"
#include "net/envelope.h"
#include "net/snapshot.h"
#include "session_index.h"
#include "task_pack.h"
#include "util/alloc.h"
#include "util/log.h"

typedef struct {
    char name[GB_SESSION_INDEX_NAME_MAX + 1]; /* as front_door.c's s_session_t */
    int joined;
    gb_conversation_t *conv;
} s_sess_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t s_sink_bytes;
static uint8_t s_first[2][64];

static int s_sink(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    (void)err;
    int which = *(int *)arg;
    if (which >= 0 && s_first[which][0] == 0)
        memcpy(s_first[which], frame, len < 64 ? len : 64);
    s_sink_bytes += len;
    return 0;
}

static s_sess_t *s_linear(s_sess_t *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].joined && strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = 500, p = 80202;
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sessions") == 0)
            n = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--params") == 0)
            p = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
    }
    if (n < 1 || p < 2 || rounds < 1) {
        fprintf(stderr, "usage: gb_send_bench [--sessions N] [--params P] [--rounds R]\n");
        return 2;
    }
    gb_log_set_level(GB_LOG_WARN);
    gb_error_t err = {0};
    /* a model of p parameters: dense (p - 1) -> 1 has p - 1 weights + 1 bias */
    char spec[64];
    snprintf(spec, sizeof spec, "input %zu\ndense 1\n", p - 1);
    float *params = malloc(p * sizeof *params);
    for (size_t j = 0; j < p; j++)
        params[j] = (float)((j * 2654435761u) % 1000) * 1e-4f - 0.05f;
    gb_snapshot_t *snap = gb_snapshot_new(spec, params, p, 3, &err);
    gb_snapshot_view_t *view = malloc(sizeof *view);
    if (!snap || !view || gb_snapshot_view(snap, view, &err) != 0) {
        fprintf(stderr, "gb_send_bench: %s\n", err.msg);
        return 1;
    }
    Glassbox__TrainConfig train = GLASSBOX__TRAIN_CONFIG__INIT;
    train.epochs = 1;
    train.batch_size = 32;
    train.learning_rate = 0.05;
    train.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_SGD;
    train.seed = 7;
    Glassbox__ExplainConfig explain = GLASSBOX__EXPLAIN_CONFIG__INIT;
    explain.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    explain.max_samples = 16;
    explain.steps = 32;

    s_sess_t *t = calloc(n, sizeof *t);
    gb_session_index_t *ix = gb_session_index_new(n, &err);
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    gb_conversation_options_t co = {.max_transfer = 64u << 20};
    for (size_t i = 0; i < n; i++) {
        snprintf(t[i].name, sizeof t[i].name, "client-%05zu", i);
        t[i].joined = 1;
        if (!(t[i].conv = gb_conversation_new(&co, &err)) ||
            gb_session_index_put_name(ix, t[i].name, i, &err) != 0) {
            fprintf(stderr, "gb_send_bench: %s\n", err.msg);
            return 1;
        }
    }
    double best_old = 1e30, best_new = 1e30;
    for (int r = 0; r < rounds; r++) {
        /* old: scan, then validate and pack the whole Task per session */
        int which = r == 0 ? 0 : -1;
        double t0 = s_now();
        for (size_t i = 0; i < n; i++) {
            Glassbox__Task task = GLASSBOX__TASK__INIT;
            task.round = 3;
            task.task_id = 1 + i;
            task.train = true;
            task.model = &view->msg;
            task.train_config = &train;
            task.explain = &explain;
            task.deadline_unix_ms = 1700000000000ull;
            Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
            env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
            env.task = &task;
            s_sess_t *s = s_linear(t, n, t[n - 1 - i].name);
            if (gb_conversation_queue(s->conv, &env, NULL, &err) != 0 ||
                gb_conversation_flush(s->conv, s_sink, &which, &err) != 0) {
                fprintf(stderr, "gb_send_bench: %s\n", err.msg);
                return 1;
            }
            which = -1;
        }
        double t1 = s_now();
        for (size_t i = 0; i < n; i++)
            gb_conversation_reset(t[i].conv);
        /* new: the shared fields packed once, a lookup, the parts queued */
        which = r == 0 ? 1 : -1;
        double t2 = s_now();
        Glassbox__Task shared = GLASSBOX__TASK__INIT;
        shared.model = &view->msg;
        shared.train_config = &train;
        shared.explain = &explain;
        if (gb_task_pack_prepare(tp, &shared, &err) != 0) {
            fprintf(stderr, "gb_send_bench: %s\n", err.msg);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            Glassbox__Task own = GLASSBOX__TASK__INIT;
            own.round = 3;
            own.task_id = 1 + i;
            own.train = true;
            own.deadline_unix_ms = 1700000000000ull;
            gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
            size_t slot = 0;
            if (!gb_session_index_find_name(ix, t[n - 1 - i].name, &slot) ||
                gb_task_pack_parts(tp, &own, parts, &err) != 0 ||
                gb_conversation_queue_parts(t[slot].conv, GLASSBOX__ENVELOPE__BODY_TASK, parts,
                                            GB_TASK_PACK_PARTS, NULL, &err) != 0 ||
                gb_conversation_flush(t[slot].conv, s_sink, &which, &err) != 0) {
                fprintf(stderr, "gb_send_bench: %s\n", err.msg);
                return 1;
            }
            which = -1;
        }
        double t3 = s_now();
        for (size_t i = 0; i < n; i++)
            gb_conversation_reset(t[i].conv);
        if (t1 - t0 < best_old)
            best_old = t1 - t0;
        if (t3 - t2 < best_new)
            best_new = t3 - t2;
    }
    if (memcmp(s_first[0], s_first[1], sizeof s_first[0]) != 0) {
        fprintf(stderr, "gb_send_bench: the two ways sent different bytes\n");
        return 1;
    }
    printf("{\"sessions\": %zu, \"params\": %zu, \"old_ms\": %.3f, \"new_ms\": %.3f, "
           "\"speedup\": %.2f, \"old_us_per_session\": %.2f, \"new_us_per_session\": %.2f}\n",
           n, p, 1e3 * best_old, 1e3 * best_new, best_old / best_new, 1e6 * best_old / (double)n,
           1e6 * best_new / (double)n);
    for (size_t i = 0; i < n; i++)
        gb_conversation_destroy(&t[i].conv);
    free(t);
    gb_session_index_destroy(&ix);
    gb_task_pack_destroy(&tp);
    gb_snapshot_destroy(&snap);
    free(view);
    free(params);
    return 0;
}
