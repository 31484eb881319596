/* A round's Tasks packed with their model packed once.
 *
 * Every client of a round gets the same model, training and explanation
 * settings; only the round, task id, train / evaluate flags and deadline
 * differ. Packing and validating a Task per client re-hashed (SHA-256),
 * re-scanned (NaN / Inf) and re-copied the whole model each time, so a
 * round's tasks to N clients cost N model validations (issue 11). Here the
 * shared fields (model, train_config, explain: Task fields 5, 6, 7) are
 * validated and packed once by gb_task_pack_prepare; gb_task_pack_parts
 * packs one client's own fields (1-4 before them, 8 after) around them. The
 * three parts concatenated are byte for byte what protobuf-c packs for the
 * whole Task (it writes fields in number order), and
 * gb_conversation_queue_parts wraps them in the session's Envelope.
 *
 * Validation: prepare runs the Envelope validator (net/envelope.h) on a
 * Task made of the shared fields, so the model, train_config and explain
 * get every check gb_envelope_encode would make; parts checks what is left
 * of a Task's rules (round and task id >= 1, train or evaluate, train only
 * with a train_config).
 *
 * Ownership: gb_task_pack_new returns an object the caller owns
 * (gb_task_pack_destroy). prepare copies what it needs (the packed bytes);
 * the Task given is only read. The parts filled by gb_task_pack_parts point
 * into the object and are valid until its next prepare, parts or destroy.
 * Not thread-safe. */
#ifndef GB_COORDINATOR_TASK_PACK_H
#define GB_COORDINATOR_TASK_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/conversation.h"
#include "util/error.h"

typedef struct gb_task_pack gb_task_pack_t;

/* Parts of one Task body: its fields before the model, the shared fields,
 * its fields after them. */
#define GB_TASK_PACK_PARTS 3

/* A new, unprepared packer. NULL and err on GB_ENOMEM. */
gb_task_pack_t *gb_task_pack_new(gb_error_t *err);

/* Frees the packer; sets *tp to NULL; NULL-safe. */
void gb_task_pack_destroy(gb_task_pack_t **tp);

/* Validates and packs the shared fields of `shared` (model required,
 * train_config, explain; its other fields are ignored). On failure (the
 * validator's codes, with err naming the field; GB_ENOMEM) the packer is
 * unprepared. */
int gb_task_pack_prepare(gb_task_pack_t *tp, const Glassbox__Task *shared, gb_error_t *err)
    GB_MUST_CHECK;

/* True once prepare succeeded (and until a failed one). */
bool gb_task_pack_ready(const gb_task_pack_t *tp);

/* Packed bytes of the shared fields (0 when unprepared). */
size_t gb_task_pack_shared_bytes(const gb_task_pack_t *tp);

/* Fills parts[0..GB_TASK_PACK_PARTS) with the body of the Task made of
 * task's own fields (round, task_id, train, evaluate, deadline_unix_ms)
 * and the prepared shared ones; task's model, train_config and explain
 * must be NULL (GB_EINVAL otherwise: the shared ones are what goes out).
 * Errors: GB_EINVAL unprepared, GB_EINVAL / GB_EFORMAT for a Task the
 * validator would refuse (round or task_id 0, neither train nor evaluate,
 * train without a prepared train_config). */
int gb_task_pack_parts(gb_task_pack_t *tp, const Glassbox__Task *task,
                       gb_conversation_part_t parts[GB_TASK_PACK_PARTS], gb_error_t *err)
    GB_MUST_CHECK;

#endif
