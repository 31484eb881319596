/* A round's Tasks with the shared fields packed once (task_pack.h).
 *
 * protobuf-c writes a message's fields in field-number order and leaves out
 * proto3 scalars that hold their default, so a Task's packed bytes are the
 * packed bytes of three Tasks that each hold some of its fields: 1-4
 * (round, task_id, train, evaluate), 5-7 (model, train_config, explain) and
 * 8 (deadline_unix_ms). The middle one is the large one and the same for
 * every client of a round; the outer two are at most a few dozen bytes and
 * are packed per client into buffers of this object. */
#include "task_pack.h"

#include <string.h>

#include "net/envelope.h"
#include "util/alloc.h"

/* Bytes of Task fields 1-4 at most: two uint64 varints and two bools, each
 * with a one-byte tag. */
#define S_HEAD_MAX (2 * (1 + 10) + 2 * (1 + 1))
/* Field 8: one uint64 varint. */
#define S_TAIL_MAX (1 + 10)

struct gb_task_pack {
    uint8_t *shared;          /* packed fields 5-7, NULL when unprepared */
    size_t shared_len;        /* their bytes */
    bool has_train_config;    /* field 6 is set: train may be asked */
    uint8_t head[S_HEAD_MAX]; /* the last parts call's fields 1-4 */
    uint8_t tail[S_TAIL_MAX]; /* and its field 8 */
};

gb_task_pack_t *gb_task_pack_new(gb_error_t *err)
{
    gb_task_pack_t *tp = gb_calloc(1, sizeof *tp);
    if (!tp)
        gb_error_set(err, GB_ENOMEM, "task pack: out of memory");
    return tp;
}

void gb_task_pack_destroy(gb_task_pack_t **ptp)
{
    if (!ptp || !*ptp)
        return;
    gb_free((*ptp)->shared);
    gb_free(*ptp);
    *ptp = NULL;
}

static void s_unprepare(gb_task_pack_t *tp)
{
    gb_free(tp->shared);
    tp->shared = NULL;
    tp->shared_len = 0;
    tp->has_train_config = false;
}

int gb_task_pack_prepare(gb_task_pack_t *tp, const Glassbox__Task *shared, gb_error_t *err)
{
    s_unprepare(tp);
    if (!shared)
        return gb_error_set(err, GB_EINVAL, "task pack: no task to prepare");
    Glassbox__Task t = GLASSBOX__TASK__INIT;
    t.model = shared->model;
    t.train_config = shared->train_config;
    t.explain = shared->explain;
    /* Every check the encoder makes of the shared fields: a Task of them
     * with the smallest valid fields of its own, in an Envelope. */
    Glassbox__Task probe = t;
    probe.round = 1;
    probe.task_id = 1;
    probe.train = t.train_config != NULL;
    probe.evaluate = t.train_config == NULL;
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 1;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = &probe;
    gb_envelope_limits_t limits = {.max_bytes = SIZE_MAX / 2}; /* sizes: the conversation's */
    int rc = gb_envelope_validate(&env, &limits, err);
    if (rc)
        return gb_error_prefix(err, rc, "task pack: ");
    size_t len = glassbox__task__get_packed_size(&t);
    uint8_t *buf = gb_malloc(len ? len : 1);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "task pack: out of memory for a %zu-byte model",
                            len);
    size_t written = glassbox__task__pack(&t, buf);
    if (written != len) {
        gb_free(buf);
        return gb_error_set(err, GB_EFORMAT, "task pack: protobuf-c packed %zu bytes, expected %zu",
                            written, len);
    }
    tp->shared = buf;
    tp->shared_len = len;
    tp->has_train_config = t.train_config != NULL;
    return 0;
}

bool gb_task_pack_ready(const gb_task_pack_t *tp)
{
    return tp->shared != NULL;
}

size_t gb_task_pack_shared_bytes(const gb_task_pack_t *tp)
{
    return tp->shared_len;
}

int gb_task_pack_parts(gb_task_pack_t *tp, const Glassbox__Task *task,
                       gb_conversation_part_t parts[GB_TASK_PACK_PARTS], gb_error_t *err)
{
    if (!tp->shared)
        return gb_error_set(err, GB_EINVAL, "task pack: not prepared");
    if (!task || task->model || task->train_config || task->explain)
        return gb_error_set(err, GB_EINVAL,
                            "task pack: the task's own fields only (model, train_config and "
                            "explain are the prepared ones)");
    /* What is left of the validator's rules for a Task (net/envelope.c). */
    if (task->round == 0)
        return gb_error_set(err, GB_EFORMAT, "task.round: is 0 (missing; counts and ids start "
                                             "at 1)");
    if (task->task_id == 0)
        return gb_error_set(err, GB_EFORMAT, "task.task_id: is 0 (missing; counts and ids "
                                             "start at 1)");
    if (!task->train && !task->evaluate)
        return gb_error_set(err, GB_EINVAL, "task: asks neither to train nor to evaluate");
    if (task->train && !tp->has_train_config)
        return gb_error_set(err, GB_EFORMAT, "task.train_config: is missing (train is set)");
    Glassbox__Task head = GLASSBOX__TASK__INIT, tail = GLASSBOX__TASK__INIT;
    head.round = task->round;
    head.task_id = task->task_id;
    head.train = task->train;
    head.evaluate = task->evaluate;
    tail.deadline_unix_ms = task->deadline_unix_ms;
    /* sizes bounded by S_HEAD_MAX and S_TAIL_MAX: varints and bools only */
    size_t hl = glassbox__task__pack(&head, tp->head);
    size_t tl = glassbox__task__pack(&tail, tp->tail);
    parts[0] = (gb_conversation_part_t){tp->head, hl};
    parts[1] = (gb_conversation_part_t){tp->shared, tp->shared_len};
    parts[2] = (gb_conversation_part_t){tp->tail, tl};
    return 0;
}
