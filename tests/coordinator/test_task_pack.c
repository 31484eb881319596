/* Tests for coordinator/task_pack and gb_conversation_queue_parts
 * (net/conversation.h): a round's Task sent with its model packed once
 * gives the very frames the old way gave (gb_conversation_queue of the whole
 * Envelope), byte for byte, for a small model in one frame and for a 6 MB
 * one in chunks, over many clients' own fields (rounds, task ids, flags and
 * deadlines up to 2^64 - 1), and a receiving conversation decodes the same
 * Task; what prepare refuses (no model, a wrong hash, a NaN, a bad train
 * config) and what parts refuses (its own model, round or task id 0, a task
 * that neither trains nor evaluates, train without a train config); the
 * refusals of queue_parts (a chunk body, a missing part, over the transfer
 * limit, a full queue), each queueing nothing; allocation failures. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/envelope_fixture.h"
#include "net/conversation.h"
#include "net/envelope.h"
#include "task_pack.h"
#include "util/alloc.h"

/* Frames a conversation flushed, in order. */
typedef struct {
    uint8_t **frame;
    size_t *len;
    size_t n, cap;
} frames_t;

static int s_capture(void *arg, const uint8_t *frame, size_t len, gb_error_t *err)
{
    (void)err;
    frames_t *f = arg;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->frame = realloc(f->frame, f->cap * sizeof *f->frame);
        f->len = realloc(f->len, f->cap * sizeof *f->len);
        assert_non_null(f->frame);
        assert_non_null(f->len);
    }
    f->frame[f->n] = malloc(len ? len : 1);
    assert_non_null(f->frame[f->n]);
    memcpy(f->frame[f->n], frame, len);
    f->len[f->n++] = len;
    return 0;
}

static void s_frames_free(frames_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->frame[i]);
    free(f->frame);
    free(f->len);
    memset(f, 0, sizeof *f);
}

static void s_frames_equal(const frames_t *a, const frames_t *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->len[i], b->len[i]);
        assert_memory_equal(a->frame[i], b->frame[i], a->len[i]);
    }
}

/* The task's own fields, with the shared ones taken out. */
static Glassbox__Task s_own(const Glassbox__Task *t)
{
    Glassbox__Task own = GLASSBOX__TASK__INIT;
    own.round = t->round;
    own.task_id = t->task_id;
    own.train = t->train;
    own.evaluate = t->evaluate;
    own.deadline_unix_ms = t->deadline_unix_ms;
    return own;
}

/* Sends fix's Task the old way on `old` and the new way on `neu` (prepared
 * from the same fields) for several clients' own fields; every frame must
 * be the same, and `rx` must decode the Task the old way would give. */
static void s_compare(gbfix_t *fix, size_t max_transfer)
{
    gb_error_t err = {0};
    gb_conversation_options_t co = {.max_transfer = max_transfer};
    gb_conversation_t *old = gb_conversation_new(&co, &err), *neu = gb_conversation_new(&co, &err);
    gb_conversation_t *rx = gb_conversation_new(&co, &err);
    assert_non_null(old);
    assert_non_null(neu);
    assert_non_null(rx);
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    assert_non_null(tp);
    assert_false(gb_task_pack_ready(tp));
    assert_int_equal(gb_task_pack_shared_bytes(tp), 0);
    assert_int_equal(gb_task_pack_prepare(tp, &fix->task, &err), 0);
    assert_true(gb_task_pack_ready(tp));
    Glassbox__Task shared = GLASSBOX__TASK__INIT;
    shared.model = fix->task.model;
    shared.train_config = fix->task.train_config;
    shared.explain = fix->task.explain;
    assert_int_equal(gb_task_pack_shared_bytes(tp), glassbox__task__get_packed_size(&shared));

    const struct {
        uint64_t round, task_id, deadline;
        bool train, evaluate;
    } own[] = {
        {5, 17, 1700000000000ull, true, true},
        {1, 1, 0, true, false},
        {2, 300, 0, false, true},
        {(uint64_t)1 << 40, 123456789, 1, true, true},
        {UINT64_MAX, UINT64_MAX, UINT64_MAX, true, false},
        {127, 128, 16383, false, true},
    };
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
        fix->task.round = own[k].round;
        fix->task.task_id = own[k].task_id;
        fix->task.deadline_unix_ms = own[k].deadline;
        fix->task.train = own[k].train;
        fix->task.evaluate = own[k].evaluate;
        uint64_t seq_old = 0, seq_new = 0;
        assert_int_equal(gb_conversation_queue(old, &fix->env, &seq_old, &err), 0);
        Glassbox__Task t = s_own(&fix->task);
        gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
        assert_int_equal(gb_task_pack_parts(tp, &t, parts, &err), 0);
        assert_int_equal(gb_conversation_queue_parts(neu, GLASSBOX__ENVELOPE__BODY_TASK, parts,
                                                     GB_TASK_PACK_PARTS, &seq_new, &err),
                         0);
        assert_int_equal(seq_old, seq_new);
        assert_int_equal(gb_conversation_queued_bytes(old), gb_conversation_queued_bytes(neu));
        frames_t a = {0}, b = {0};
        assert_int_equal(gb_conversation_flush(old, s_capture, &a, &err), 0);
        assert_int_equal(gb_conversation_flush(neu, s_capture, &b, &err), 0);
        assert_true(a.n >= 1);
        s_frames_equal(&a, &b);
        /* and what the client's side makes of them */
        Glassbox__Envelope *got = NULL;
        for (size_t i = 0; i < b.n; i++) {
            int rc = gb_conversation_receive(rx, b.frame[i], b.len[i], &got, &err);
            assert_int_equal(rc, i + 1 == b.n ? 1 : 0);
        }
        assert_non_null(got);
        assert_int_equal(got->body_case, GLASSBOX__ENVELOPE__BODY_TASK);
        assert_true(got->sequence == seq_new);
        assert_true(got->task->round == own[k].round);
        assert_true(got->task->task_id == own[k].task_id);
        assert_true(got->task->deadline_unix_ms == own[k].deadline);
        assert_int_equal(got->task->train, own[k].train);
        assert_int_equal(got->task->evaluate, own[k].evaluate);
        assert_true(got->task->model->param_count == fix->task.model->param_count);
        assert_memory_equal(got->task->model->params.data, fix->task.model->params.data,
                            fix->task.model->params.len);
        assert_string_equal(got->task->model->spec, fix->task.model->spec);
        assert_true(got->task->train_config->seed == fix->task.train_config->seed);
        assert_int_equal(got->task->explain->steps, fix->task.explain->steps);
        gb_envelope_free(&got);
        s_frames_free(&a);
        s_frames_free(&b);
    }
    gb_task_pack_destroy(&tp);
    assert_null(tp);
    gb_task_pack_destroy(&tp); /* NULL-safe */
    gb_conversation_destroy(&old);
    gb_conversation_destroy(&neu);
    gb_conversation_destroy(&rx);
}

static void test_same_bytes_one_frame(void **state)
{
    (void)state;
    gbfix_t fix;
    gbfix_init(&fix, GBFIX_TASK);
    size_t len;
    free(gbfix_pack(&fix, &len)); /* computes the model's hash */
    assert_true(len < GB_ENVELOPE_MAX_BYTES);
    s_compare(&fix, 0);
}

static void test_same_bytes_chunked(void **state)
{
    (void)state;
    /* a 6 MB model: over one frame, so both ways send it in chunks */
    enum { IN = 1000, OUT = 1500, N = IN * OUT + OUT };
    gbfix_t fix;
    gbfix_init(&fix, GBFIX_TASK);
    float *params = calloc(N, sizeof *params);
    assert_non_null(params);
    for (size_t i = 0; i < N; i++)
        params[i] = (float)(i % 97) * 1e-3f - 0.03f;
    fix.model.spec = "input 1000\ndense 1500\n";
    fix.model.params.data = (uint8_t *)params;
    fix.model.params.len = (size_t)N * sizeof *params;
    fix.model.param_count = N;
    size_t len;
    free(gbfix_pack(&fix, &len));
    assert_true(len > GB_ENVELOPE_MAX_BYTES);
    s_compare(&fix, 64u << 20);
    free(params);
}

static void test_prepare_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gbfix_t fix;
    gbfix_init(&fix, GBFIX_TASK);
    size_t len;
    free(gbfix_pack(&fix, &len));
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    assert_non_null(tp);
    Glassbox__Task own = s_own(&fix.task);
    gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), GB_EINVAL); /* unprepared */
    assert_non_null(strstr(err.msg, "not prepared"));
    assert_int_equal(gb_task_pack_prepare(tp, NULL, &err), GB_EINVAL);

    Glassbox__Task t = fix.task;
    t.model = NULL;
    assert_int_equal(gb_task_pack_prepare(tp, &t, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "task.model"));
    assert_false(gb_task_pack_ready(tp));

    /* a model whose bytes do not match their hash */
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), 0);
    fix.model_sha[0] ^= 1;
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), GB_EINTEGRITY);
    assert_false(gb_task_pack_ready(tp)); /* a failed prepare leaves nothing to send */
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), GB_EINVAL);
    fix.model_sha[0] ^= 1;

    /* a NaN, with a hash that matches it */
    fix.model_params[3] = NAN;
    free(gbfix_pack(&fix, &len));
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "NaN"));
    fix.model_params[3] = 0.5f;
    free(gbfix_pack(&fix, &len));

    /* a bad train config */
    fix.train.batch_size = 0;
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "batch_size"));
    fix.train.batch_size = 32;
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), 0);
    gb_task_pack_destroy(&tp);
}

static void test_parts_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gbfix_t fix;
    gbfix_init(&fix, GBFIX_TASK);
    size_t len;
    free(gbfix_pack(&fix, &len));
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    assert_non_null(tp);
    assert_int_equal(gb_task_pack_prepare(tp, &fix.task, &err), 0);
    gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
    Glassbox__Task own = s_own(&fix.task);
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), 0);
    assert_int_equal(gb_task_pack_parts(tp, NULL, parts, &err), GB_EINVAL);
    Glassbox__Task bad = own;
    bad.model = &fix.model; /* its own model: refused, the prepared one goes */
    assert_int_equal(gb_task_pack_parts(tp, &bad, parts, &err), GB_EINVAL);
    bad = own;
    bad.round = 0;
    assert_int_equal(gb_task_pack_parts(tp, &bad, parts, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "task.round"));
    bad = own;
    bad.task_id = 0;
    assert_int_equal(gb_task_pack_parts(tp, &bad, parts, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "task.task_id"));
    bad = own;
    bad.train = bad.evaluate = false;
    assert_int_equal(gb_task_pack_parts(tp, &bad, parts, &err), GB_EINVAL);
    /* prepared without a train config: evaluation only */
    Glassbox__Task shared = fix.task;
    shared.train_config = NULL;
    assert_int_equal(gb_task_pack_prepare(tp, &shared, &err), 0);
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "train_config"));
    own.train = false;
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), 0);
    /* what the validator makes of the evaluation-only Task, packed whole */
    uint8_t *whole = malloc(parts[0].len + parts[1].len + parts[2].len);
    assert_non_null(whole);
    size_t at = 0;
    for (int i = 0; i < GB_TASK_PACK_PARTS; i++) {
        memcpy(whole + at, parts[i].data, parts[i].len);
        at += parts[i].len;
    }
    Glassbox__Task *t = glassbox__task__unpack(NULL, at, whole);
    assert_non_null(t);
    assert_false(t->train);
    assert_true(t->evaluate);
    assert_null(t->train_config);
    assert_non_null(t->model);
    glassbox__task__free_unpacked(t, NULL);
    free(whole);
    gb_task_pack_destroy(&tp);
}

static void test_queue_parts_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    uint8_t body[100];
    memset(body, 0, sizeof body);
    gb_conversation_part_t part = {body, sizeof body};
    gb_conversation_options_t co = {.max_transfer = 1000, .max_queued_bytes = 100};
    gb_conversation_t *c = gb_conversation_new(&co, &err);
    assert_non_null(c);
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_CHUNK, &part, 1,
                                                 NULL, &err),
                     GB_EINVAL);
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY__NOT_SET, &part, 1,
                                                 NULL, &err),
                     GB_EINVAL);
    gb_conversation_part_t missing = {NULL, 5};
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_TASK, &missing, 1,
                                                 NULL, &err),
                     GB_EINVAL);
    uint8_t big[2000] = {0};
    gb_conversation_part_t over = {big, sizeof big};
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_TASK, &over, 1, NULL,
                                                 &err),
                     GB_ERANGE);
    assert_int_equal(gb_conversation_queued_bytes(c), 0);
    /* an empty body is an Envelope too; the first frame is sequence 1 */
    uint64_t seq = 0;
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_HEARTBEAT, NULL, 0,
                                                 &seq, &err),
                     0);
    assert_true(seq == 1);
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_HEARTBEAT, &part, 1,
                                                 &seq, &err),
                     0);
    assert_true(seq == 2);
    /* over 100 bytes wait now: the next is refused, and takes no number */
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_HEARTBEAT, &part, 1,
                                                 &seq, &err),
                     GB_EAGAIN);
    frames_t f = {0};
    assert_int_equal(gb_conversation_flush(c, s_capture, &f, &err), 0);
    assert_int_equal(f.n, 2);
    /* what was queued decodes as the Envelope it claims to be */
    Glassbox__Envelope *env = glassbox__envelope__unpack(NULL, f.len[0], f.frame[0]);
    assert_non_null(env);
    assert_int_equal(env->protocol_version, GB_ENVELOPE_PROTOCOL_VERSION);
    assert_true(env->sequence == 1);
    assert_int_equal(env->body_case, GLASSBOX__ENVELOPE__BODY_HEARTBEAT);
    glassbox__envelope__free_unpacked(env, NULL);
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_HEARTBEAT, NULL, 0,
                                                 &seq, &err),
                     0);
    assert_true(seq == 3);
    s_frames_free(&f);
    gb_conversation_destroy(&c);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_alloc_fail_after(1);
    assert_null(gb_task_pack_new(&err));
    gb_alloc_fail_after(0);
    assert_int_equal(err.code, GB_ENOMEM);
    gbfix_t fix;
    gbfix_init(&fix, GBFIX_TASK);
    size_t len;
    free(gbfix_pack(&fix, &len));
    gb_task_pack_t *tp = gb_task_pack_new(&err);
    assert_non_null(tp);
    int failed = 0;
    for (long k = 1; k < 50; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_task_pack_prepare(tp, &fix.task, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_false(gb_task_pack_ready(tp));
        failed++;
    }
    assert_true(failed >= 1);
    assert_true(gb_task_pack_ready(tp));
    /* and queue_parts: the item, then its bytes */
    gb_conversation_t *c = gb_conversation_new(NULL, &err);
    assert_non_null(c);
    gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
    Glassbox__Task own = s_own(&fix.task);
    assert_int_equal(gb_task_pack_parts(tp, &own, parts, &err), 0);
    for (long k = 1; k <= 2; k++) {
        gb_alloc_fail_after(k);
        assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_TASK, parts,
                                                     GB_TASK_PACK_PARTS, NULL, &err),
                         GB_ENOMEM);
        gb_alloc_fail_after(0);
        assert_int_equal(gb_conversation_queued_bytes(c), 0);
    }
    uint64_t seq = 0;
    assert_int_equal(gb_conversation_queue_parts(c, GLASSBOX__ENVELOPE__BODY_TASK, parts,
                                                 GB_TASK_PACK_PARTS, &seq, &err),
                     0);
    assert_true(seq == 1);
    gb_conversation_destroy(&c);
    gb_task_pack_destroy(&tp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_one_frame),
        cmocka_unit_test(test_same_bytes_chunked),
        cmocka_unit_test(test_prepare_refusals),
        cmocka_unit_test(test_parts_refusals),
        cmocka_unit_test(test_queue_parts_refusals),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
