/* Coordinator checkpoints: everything a restarted coordinator needs to go on
 * after the last finished round exactly as if it had never stopped
 * (DESIGN.md, Coordinator: "Checkpoints are atomic (write, fsync, rename); a
 * restarted coordinator resumes at the last finished round").
 *
 * A checkpoint is one packed Checkpoint message (proto/glassbox.proto): the
 * global model as a ModelSnapshot, the round it finished, the aggregator and
 * server optimiser specs, the optimiser's state (m then v, as
 * gb_server_optim_get_state gives it) and step count, the next task id, the
 * federation name, the time it was saved and free-form metadata, followed by
 * a SHA-256 of every byte before it.
 *
 * On disk, a checkpoint directory DIR holds:
 *   checkpoint-ROUND.gbc   one checkpoint per finished round (ROUND decimal,
 *                          no leading zeros), mode GB_CHECKPOINT_FILE_MODE;
 *   model-ROUND.gbm        the same global model as a plain model file
 *                          (net/snapshot.h, mode 0644), for
 *                          `glassbox-client eval --model-file`;
 *   latest                 the name of the newest checkpoint file and a
 *                          newline: the commit point. A checkpoint counts as
 *                          saved once `latest` names it.
 * Every one of them is written with gb_file_write_atomic (temporary file,
 * fsync, rename, directory fsync), so a crash at any instant leaves the old
 * `latest` pointing at an intact file, or the new one.
 *
 * Checkpoint files are 0600: they are the coordinator's private state, read
 * by nobody but the coordinator that wrote them; the model itself is
 * published anyway (signed) and written beside them as a world-readable
 * model file, so nothing is lost by keeping the checkpoint (optimiser state,
 * task ids, operator metadata) to its owner.
 *
 * Validation is the same in both directions: gb_checkpoint_encode refuses
 * exactly what gb_checkpoint_decode refuses, so Glassbox never writes a
 * checkpoint it would not read back (a model or optimiser state that has
 * gone NaN is refused at save time, naming the index).
 *
 * Ownership: a gb_checkpoint_t returned by gb_checkpoint_decode, _load or
 * _load_latest belongs to the caller, who frees it with
 * gb_checkpoint_destroy; every pointer in it was allocated here. A caller may
 * also fill a gb_checkpoint_t of its own, pointing at memory it owns (the
 * live model's parameters, a buffer filled by gb_server_optim_get_state), to
 * pass to gb_checkpoint_encode or gb_checkpoint_save, which only read it;
 * such a struct must never be given to gb_checkpoint_destroy.
 *
 * One coordinator writes a directory at a time; nothing here locks it. */
#ifndef GB_COORDINATOR_CHECKPOINT_H
#define GB_COORDINATOR_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "net/snapshot.h"
#include "util/error.h"

/* Checkpoint.format_version this build writes and the only one it reads. */
#define GB_CHECKPOINT_FORMAT_VERSION 1u

/* Largest checkpoint file accepted (checked before reading): a model file at
 * its limit, an optimiser state twice that, and room for the rest. */
#define GB_CHECKPOINT_MAX_BYTES (3 * GB_SNAPSHOT_MAX_BYTES + ((size_t)1 << 20))

/* Mode of checkpoint files and of `latest` (see above for why). */
#define GB_CHECKPOINT_FILE_MODE 0600

/* Name of the pointer file inside a checkpoint directory. */
#define GB_CHECKPOINT_LATEST "latest"

typedef struct {
    char *spec;                /* model spec text (a preset name is saved expanded) */
    float *params;             /* n_params floats, the global model after `round` */
    size_t n_params;           /* number of parameters */
    uint64_t round;            /* last finished round (0: the initial model) */
    char *aggregator;          /* aggregator spec (aggregate.h), e.g. "fedavg" */
    char *server_optimizer;    /* server optimiser spec (server_optim.h), e.g. "fedadam" */
    float *optim_state;        /* n_optim_state floats: m then v; NULL when 0 */
    size_t n_optim_state;      /* 2 * n_params for an adaptive optimiser, 0 for sgd */
    uint64_t optim_steps;      /* server optimiser steps taken */
    uint64_t next_task_id;     /* first task id the resumed run may give (>= 1); pass
                                  at least next_task_id - 1 as rounds' task_id_base */
    char *federation;          /* federation name (net/pki.h name rules) */
    uint64_t saved_unix_ms;    /* when it was saved; save fills in the clock when 0 */
    gb_snapshot_meta_t *meta;  /* n_meta provenance entries (snapshot.h rules) */
    size_t n_meta;             /* number of metadata entries */
} gb_checkpoint_t;

/* Frees a checkpoint from this module and everything in it; sets *c to NULL;
 * NULL-safe. Never for a caller-filled struct. */
void gb_checkpoint_destroy(gb_checkpoint_t **c);

/* Validates c and packs it as a Checkpoint, SHA-256 last. The embedded
 * model's metadata is created_at (from saved_unix_ms, RFC 3339 UTC) and
 * glassbox_version, so the same struct always packs to the same bytes; a
 * decoded checkpoint does not keep the model's metadata. On success *buf is
 * a new buffer of *len bytes, the caller's (gb_free); on failure *buf is
 * NULL, *len 0, and err says what is wrong:
 *   GB_EINVAL   a NULL argument or field; an aggregator or server optimiser
 *               spec that does not parse; a bad federation name or
 *               metadata; next_task_id 0 or past GB_ROUNDS_MAX_TASK_ID_BASE
 *               + 1; saved_unix_ms after the year 9999;
 *   GB_ESHAPE   n_params not what the spec implies; a state that is not
 *               2 * n_params floats (adaptive optimisers) or empty (sgd);
 *   GB_ERANGE   a NaN or Inf in params or state, or a negative v, naming
 *               which and the index; a checkpoint too big;
 *   GB_ESPEC, GB_EFORMAT  the spec does not build, or is not clean text;
 *   GB_ENOMEM, GB_ECRYPTO.
 * c is only read. */
int gb_checkpoint_encode(const gb_checkpoint_t *c, uint8_t **buf, size_t *len,
                         gb_error_t *err) GB_MUST_CHECK;

/* Decodes and validates len bytes: the size, then the trailing SHA-256
 * (constant-time compare) before protobuf-c sees a byte, then an unpack
 * under a memory budget, then every check encode makes. On success *out is
 * a new checkpoint the caller owns; on failure *out is NULL and err says
 * what is wrong: GB_ERANGE (over GB_CHECKPOINT_MAX_BYTES, NaN or Inf, a
 * negative v), GB_EFORMAT (truncated, not a checkpoint, bad fields),
 * GB_EINTEGRITY (hash mismatch), GB_EPROTO (format version), GB_ESPEC,
 * GB_ESHAPE, GB_ENOMEM. Logs nothing (the file-level calls do). The input
 * is only read. */
int gb_checkpoint_decode(const uint8_t *buf, size_t len, gb_checkpoint_t **out,
                         gb_error_t *err) GB_MUST_CHECK;

/* Saves c into the existing directory dir: DIR/checkpoint-ROUND.gbc, then
 * DIR/model-ROUND.gbm (gb_snapshot_save), then DIR/latest naming the
 * former, each atomically. Only when all three are durable does it prune:
 * of the checkpoint and model files of rounds below c->round, it keeps the
 * newest keep - 1 of each kind (so keep, counting this one) and removes the
 * rest, with any temporary files a crashed save left behind; files of later
 * rounds (from a run that was rolled back) are left alone. keep >= 1.
 * saved_unix_ms 0 is saved as the current time.
 *
 * On failure nothing `latest` names has changed, so gb_checkpoint_load_latest
 * returns what it did before: GB_EINVAL (arguments, or what encode refuses),
 * GB_EIO (dir missing, not a directory, not writable, disk full; err names
 * the file), GB_ERANGE, GB_ESHAPE, GB_ESPEC, GB_ENOMEM. A new checkpoint or
 * model file of this round may be left beside the old ones; the next save
 * of the round replaces it. Failing to prune is only logged. */
int gb_checkpoint_save(const char *dir, const gb_checkpoint_t *c, size_t keep,
                       gb_error_t *err) GB_MUST_CHECK;

/* 0 when dir's file system can hold keep checkpoints of per_checkpoint
 * bytes (checkpoint and model file together) and the next one written
 * beside them, counting the space its checkpoint and model files hold now
 * (pruning frees it); else GB_ERANGE with err naming the room needed, what
 * is free, and the way out (free space, or lower --keep), or GB_EIO when
 * dir's file system cannot be asked (dir missing). */
int gb_checkpoint_check_room(const char *dir, uint64_t per_checkpoint, size_t keep,
                             gb_error_t *err) GB_MUST_CHECK;

/* Reads one checkpoint file (at most GB_CHECKPOINT_MAX_BYTES, checked before
 * reading) and decodes it; *out and errors as for gb_checkpoint_decode, plus
 * GB_EIO when it cannot be read. err names the file; a refusal is logged as
 * a warning. */
int gb_checkpoint_load(const char *path, gb_checkpoint_t **out, gb_error_t *err) GB_MUST_CHECK;

/* Loads the checkpoint DIR/latest names and checks that it holds the round
 * its name says. Returns:
 *   0 with *out set     the latest checkpoint, or, when it is missing or
 *                       damaged, the newest intact older one: then a warning
 *                       names the damaged file, what is wrong with it and
 *                       the one used instead (likewise when `latest` itself
 *                       is missing, unreadable or garbage while checkpoint
 *                       files exist: the newest intact one is used);
 *   0 with *out NULL    dir holds no `latest` and no checkpoint file: start
 *                       a new federation;
 *   < 0, *out NULL      dir does not exist or is not a directory (GB_EIO:
 *                       a mistyped path must not silently start afresh);
 *                       no intact checkpoint at all (the code and message
 *                       of the latest one's failure, naming the file);
 *                       GB_EPROTO, a latest checkpoint from a newer
 *                       Glassbox, is not skipped for an older round;
 *                       GB_ENOMEM is not either (nothing is damaged). */
int gb_checkpoint_load_latest(const char *dir, gb_checkpoint_t **out,
                              gb_error_t *err) GB_MUST_CHECK;

#endif
