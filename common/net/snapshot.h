/* The model file: a model's spec, flat parameters, round and metadata as one
 * ModelSnapshot protobuf message (proto/glassbox.proto), the same message
 * that carries models inside tasks and publications.
 *
 * Decoding treats every byte as hostile. gb_snapshot_decode checks, before it
 * hands anything out: the packed size against GB_SNAPSHOT_MAX_BYTES (and it
 * unpacks under an allocation budget, so a small message cannot make
 * protobuf-c allocate much more than its own size), the format version, the
 * spec text (present, bounded, UTF-8, parses, and builds a model), that the
 * parameter bytes are exactly 4 x the stated count x and that count is what
 * the spec implies, the SHA-256 of the parameter bytes (compared in constant
 * time), the metadata (bounded, well-formed, no duplicate keys) and that every
 * parameter is finite. Any failure returns an error naming what was wrong, a
 * gb_log_warn line, and no snapshot. Encoding checks the same things, so
 * Glassbox never writes a file it would refuse to read (a model that has gone
 * NaN is refused at save time, naming the first bad index).
 *
 * The parameters are one bytes field of little-endian float32; on a
 * little-endian host encoding and decoding them is a memcpy. The SHA-256
 * detects corruption, not forgery; publications are signed separately.
 *
 * Ownership: a gb_snapshot_t returned by gb_snapshot_new, _from_model,
 * _decode or _load belongs to the caller, who frees it with
 * gb_snapshot_destroy; all its fields were allocated here, and the caller may
 * change params values and round in place but must not free or reallocate
 * any field (use gb_snapshot_meta_set for metadata). A caller may also fill a
 * gb_snapshot_t of its own, pointing at memory it owns (for instance
 * gb_model_params of a live model), to pass to gb_snapshot_encode or
 * gb_snapshot_save, which only read it; such a struct must never be given to
 * gb_snapshot_destroy or gb_snapshot_meta_set. */
#ifndef GB_NET_SNAPSHOT_H
#define GB_NET_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "glassbox.pb-c.h"
#include "util/error.h"

/* ModelSnapshot.format_version this build writes and the only one it reads
 * (equals MODEL_FORMAT_VERSION in proto/glassbox.proto). */
#define GB_SNAPSHOT_FORMAT_VERSION 1u

/* Hard limits on what decode accepts and encode produces. */
#define GB_SNAPSHOT_MAX_BYTES ((size_t)256 << 20) /* packed message / file size */
#define GB_SNAPSHOT_MAX_SPEC ((size_t)64 << 10)   /* spec text bytes */
#define GB_SNAPSHOT_MAX_META 64                   /* metadata entries */
#define GB_SNAPSHOT_MAX_KEY 64                    /* metadata key bytes */
#define GB_SNAPSHOT_MAX_VALUE 1024                /* metadata value bytes */

/* Metadata keys Glassbox writes itself. */
#define GB_SNAPSHOT_META_CREATED_AT "created_at"             /* UTC, RFC 3339 */
#define GB_SNAPSHOT_META_VERSION "glassbox_version"          /* writer's version */
#define GB_SNAPSHOT_META_DATASET "dataset"                   /* data description */
#define GB_SNAPSHOT_META_TRAINED_SAMPLES "trained_samples"   /* decimal count */

/* File mode of model files written by gb_snapshot_save. */
#define GB_SNAPSHOT_FILE_MODE 0644

typedef struct {
    char *key;   /* [A-Za-z0-9_.:-]+, 1..GB_SNAPSHOT_MAX_KEY bytes, unique */
    char *value; /* UTF-8 without control characters, <= GB_SNAPSHOT_MAX_VALUE bytes */
} gb_snapshot_meta_t;

typedef struct {
    char *spec;               /* model spec text (engine/spec.h), NUL-terminated */
    float *params;            /* n_params floats in the engine's flat order */
    size_t n_params;          /* number of parameters */
    uint64_t round;           /* federated round (0: not from a round) */
    gb_snapshot_meta_t *meta; /* n_meta entries, in file order */
    size_t n_meta;            /* number of metadata entries */
} gb_snapshot_t;

/* A new snapshot holding copies of spec (a preset name is stored as the
 * preset's text) and of n_params floats from params (may be NULL when
 * n_params is 0), with no metadata. Nothing is validated here; encode does
 * that. Returns NULL and fills err (GB_EINVAL, GB_ENOMEM). */
gb_snapshot_t *gb_snapshot_new(const char *spec, const float *params, size_t n_params,
                               uint64_t round, gb_error_t *err);

/* A new snapshot of a model: its spec text (presets expanded) and a copy of
 * its current parameters; no metadata. The model is only read. */
gb_snapshot_t *gb_snapshot_from_model(const gb_model_t *model, uint64_t round, gb_error_t *err);

/* Frees a snapshot from this module and everything in it; sets *s to NULL;
 * NULL-safe. */
void gb_snapshot_destroy(gb_snapshot_t **s);

/* Sets metadata `key` to a copy of `value`, replacing an existing entry in
 * place or appending a new one. Refuses (GB_EINVAL) a malformed key or value
 * and a 65th entry. Only for snapshots from this module. */
int gb_snapshot_meta_set(gb_snapshot_t *s, const char *key, const char *value,
                         gb_error_t *err) GB_MUST_CHECK;

/* Value of metadata `key`, or NULL if absent. Borrowed: valid until the
 * snapshot is destroyed or that key is set again. */
const char *gb_snapshot_meta_get(const gb_snapshot_t *s, const char *key);

/* Sets created_at (now, UTC, "2025-01-31T12:00:00Z") and glassbox_version. */
int gb_snapshot_stamp(gb_snapshot_t *s, gb_error_t *err) GB_MUST_CHECK;

/* Validates s as decode would (builds a throw-away model from the spec to
 * count its parameters) and packs it. On success *buf is a new buffer of *len
 * bytes, the caller's to free with gb_free; on failure *buf is NULL, *len 0.
 * Errors: GB_EINVAL (missing/oversized spec, bad metadata), GB_ESPEC (spec
 * does not parse or build), GB_ESHAPE (n_params differs from the spec's
 * count), GB_ERANGE (a NaN or Inf, naming its index; too big), GB_ENOMEM,
 * GB_ECRYPTO. */
int gb_snapshot_encode(const gb_snapshot_t *s, uint8_t **buf, size_t *len, gb_error_t *err)
    GB_MUST_CHECK;

/* Decodes and validates len bytes (see the top of this file for the checks).
 * On success *out is a new snapshot the caller owns; on any failure *out is
 * NULL, err says what was wrong and a warning is logged. Errors: GB_ERANGE
 * (over GB_SNAPSHOT_MAX_BYTES, a NaN or Inf), GB_EFORMAT (not a ModelSnapshot,
 * truncated, bad field sizes or metadata), GB_EPROTO (format version),
 * GB_ESPEC, GB_ESHAPE (parameter count), GB_EINTEGRITY (SHA-256 mismatch),
 * GB_ENOMEM. The input buffer is only read, never kept. */
int gb_snapshot_decode(const uint8_t *buf, size_t len, gb_snapshot_t **out, gb_error_t *err)
    GB_MUST_CHECK;

/* Validates a ModelSnapshot message that is already unpacked (the model
 * inside a Task or a Publication, net/envelope.c) with every check
 * gb_snapshot_decode makes after unpacking: version, spec text, lengths and
 * count, SHA-256, metadata, finite values, and the spec's parameter count.
 * The message is only read and nothing is copied. Returns 0 or the error
 * codes of gb_snapshot_decode (a NULL msg is GB_EFORMAT, "missing"); it does
 * not log, since the caller knows whether the message came from outside. */
int gb_snapshot_check_message(const Glassbox__ModelSnapshot *msg, gb_error_t *err) GB_MUST_CHECK;

/* A ModelSnapshot message that points into a snapshot, for embedding it in
 * another message (Task.model, Publication.model) without copying the
 * parameters: msg's fields point into s and into the view itself (metadata
 * entries and the SHA-256). */
typedef struct {
    Glassbox__ModelSnapshot msg;                   /* the message */
    Glassbox__KeyValue kv[GB_SNAPSHOT_MAX_META];   /* its metadata entries */
    Glassbox__KeyValue *kvp[GB_SNAPSHOT_MAX_META]; /* pointers to them */
    uint8_t sha256[32];                            /* SHA-256 of the parameter bytes */
} gb_snapshot_view_t;

/* Fills view from s after the checks gb_snapshot_encode makes (the same
 * errors). The view is valid while s lives and is not changed; it owns
 * nothing and needs no freeing. Only on little-endian hosts, where the
 * parameters already are the wire's bytes (GB_EINVAL elsewhere). */
int gb_snapshot_view(const gb_snapshot_t *s, gb_snapshot_view_t *view, gb_error_t *err)
    GB_MUST_CHECK;

/* gb_snapshot_view on any host: the message's parameter bytes are params_le,
 * which must hold s's n_params floats as little-endian float32 (on a
 * little-endian host s->params itself; elsewhere gb_wire_floats_to_le's
 * copy). The checks still read s->params. The view is valid while s and
 * params_le live and are not changed; for embedding a model in a message
 * of the caller's own (a coordinator checkpoint). */
int gb_snapshot_view_le(const gb_snapshot_t *s, const uint8_t *params_le,
                        gb_snapshot_view_t *view, gb_error_t *err) GB_MUST_CHECK;

/* Encodes s and writes it to `path` atomically with mode 0644
 * (gb_file_write_atomic): on failure the old file is untouched. */
int gb_snapshot_save(const char *path, const gb_snapshot_t *s, gb_error_t *err) GB_MUST_CHECK;

/* Reads `path` (at most GB_SNAPSHOT_MAX_BYTES, checked before reading) and
 * decodes it. *out as for gb_snapshot_decode; err names the file. */
int gb_snapshot_load(const char *path, gb_snapshot_t **out, gb_error_t *err) GB_MUST_CHECK;

/* A new model (gb_model_new on the snapshot's spec) whose parameters are a
 * copy of the snapshot's; the caller owns it (gb_model_destroy). Returns NULL
 * and fills err when the spec does not build or its parameter count differs
 * (GB_ESHAPE). Not planned: call gb_model_plan before forward passes. */
gb_model_t *gb_snapshot_to_model(const gb_snapshot_t *s, gb_error_t *err);

/* Saves a model in one call: gb_snapshot_from_model, gb_snapshot_stamp, then
 * the n_meta entries of meta (may be NULL when n_meta is 0; they override the
 * stamped keys), then gb_snapshot_save. The model is only read. */
int gb_snapshot_save_model(const char *path, const gb_model_t *model, uint64_t round,
                           const gb_snapshot_meta_t *meta, size_t n_meta,
                           gb_error_t *err) GB_MUST_CHECK;

/* Loads a model file in one call: gb_snapshot_load then gb_snapshot_to_model.
 * If round is not NULL it receives the snapshot's round. Returns a new model
 * the caller owns, or NULL with err filled (naming the file). */
gb_model_t *gb_snapshot_load_model(const char *path, uint64_t *round, gb_error_t *err);

#endif
