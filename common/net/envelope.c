/* The Envelope codec (see envelope.h): one frame <-> one validated
 * Glassbox__Envelope.
 *
 * Shape of the code: one s_check_<body> per body, built from the field
 * checkers of envelope_check.c (gb_check_count, _text, _blob, _real,
 * _metrics, _tensor, ...), which all format their refusal the same way,
 * "<field path>: <what is wrong>", and pick the gb_err code that
 * gb_envelope_error_code turns into the right ErrorCode. Bounded checks come
 * before expensive ones inside each body (lengths before hashes, hashes
 * before scanning every float), so a hostile frame costs little. s_validate
 * is shared by decode and encode; they differ only in what an Error body's
 * unknown code means (decode: the sender is newer, read it as
 * ERROR_INTERNAL; encode: our bug). protobuf-c unpacks through a budget
 * allocator over gb_malloc, as in net/snapshot.c, so allocation-failure
 * injection reaches it and a frame of tiny repeated fields cannot make it
 * allocate far more than the frame's own size. The Publication, which
 * travels inside a SignedPublication body as bytes, has its own codec
 * (publication.c). */
#include "net/envelope.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/model.h"
#include "net/envelope_check.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"

_Static_assert(GB_ENVELOPE_PROTOCOL_VERSION == GLASSBOX__VERSIONS__PROTOCOL_VERSION,
               "envelope.h and glassbox.proto disagree on the protocol version");

/* the newest ErrorCode this build knows; a newer peer's are read as ERROR_INTERNAL */
#define S_LAST_ERROR_CODE GLASSBOX__ERROR_CODE__ERROR_NORM

/* ---- bodies -------------------------------------------------------------- */

static int s_check_join(const Glassbox__Join *j, gb_error_t *err)
{
    int rc = gb_check_count(err, "join.min_protocol_version", j->min_protocol_version);
    if (rc == 0)
        rc = gb_check_count(err, "join.max_protocol_version", j->max_protocol_version);
    if (rc == 0 && j->max_protocol_version < j->min_protocol_version)
        rc = gb_check_fail(err, GB_EINVAL, "join.max_protocol_version",
                           "%u is less than min_protocol_version %u",
                           (unsigned)j->max_protocol_version, (unsigned)j->min_protocol_version);
    if (rc == 0 && (j->min_protocol_version > GB_ENVELOPE_PROTOCOL_VERSION ||
                    j->max_protocol_version < GB_ENVELOPE_PROTOCOL_VERSION))
        rc = gb_check_fail(err, GB_EPROTO, "join",
                           "protocol versions %u..%u do not include %u, the one this build speaks",
                           (unsigned)j->min_protocol_version, (unsigned)j->max_protocol_version,
                           GB_ENVELOPE_PROTOCOL_VERSION);
    if (rc == 0)
        rc = gb_check_text(err, "join.client_name", j->client_name, 1, GB_ENVELOPE_MAX_NAME, false);
    if (rc == 0)
        rc = gb_check_text(err, "join.software_version", j->software_version, 0,
                           GB_ENVELOPE_MAX_NAME, false);
    if (rc == 0)
        rc = gb_check_text(err, "join.dataset", j->dataset, 0, GB_ENVELOPE_MAX_NAME, false);
    if (rc == 0)
        rc = gb_check_capabilities(err, "join.capabilities", j->n_capabilities, j->capabilities);
    return rc;
}

static int s_check_shard(const Glassbox__DataShard *d, gb_error_t *err)
{
    int rc = gb_check_text(err, "welcome.shard.partition", d->partition, 1, GB_ENVELOPE_MAX_NAME,
                           false);
    if (rc == 0 && (d->clients < 1 || d->clients > GB_ENVELOPE_MAX_SHARDS))
        rc = gb_check_fail(err, GB_EINVAL, "welcome.shard.clients", "%u is outside 1..%u",
                           (unsigned)d->clients, (unsigned)GB_ENVELOPE_MAX_SHARDS);
    if (rc == 0 && d->index >= d->clients)
        rc = gb_check_fail(err, GB_EINVAL, "welcome.shard.index", "%u is not below clients %u",
                           (unsigned)d->index, (unsigned)d->clients);
    return rc;
}

static int s_check_welcome(const Glassbox__Welcome *w, gb_error_t *err)
{
    int rc = gb_check_count(err, "welcome.protocol_version", w->protocol_version);
    if (rc == 0 && w->protocol_version != GB_ENVELOPE_PROTOCOL_VERSION)
        rc = gb_check_fail(err, GB_EPROTO, "welcome.protocol_version",
                           "%u is not %u, the one this build speaks", (unsigned)w->protocol_version,
                           GB_ENVELOPE_PROTOCOL_VERSION);
    if (rc == 0)
        rc = gb_check_text(err, "welcome.client_id", w->client_id, 1, GB_ENVELOPE_MAX_NAME, false);
    if (rc == 0)
        rc = gb_check_text(err, "welcome.federation", w->federation, 0, GB_ENVELOPE_MAX_NAME,
                           false);
    if (rc == 0)
        rc = gb_check_text(err, "welcome.software_version", w->software_version, 0,
                           GB_ENVELOPE_MAX_NAME, false);
    if (rc == 0)
        rc = gb_check_count(err, "welcome.heartbeat_interval_ms", w->heartbeat_interval_ms);
    if (rc == 0)
        rc = gb_check_max(err, "welcome.heartbeat_interval_ms", w->heartbeat_interval_ms,
                          GB_ENVELOPE_MAX_INTERVAL_MS);
    if (rc == 0 && (w->heartbeat_timeout_ms <= w->heartbeat_interval_ms ||
                    w->heartbeat_timeout_ms > GB_ENVELOPE_MAX_INTERVAL_MS))
        rc = gb_check_fail(err, GB_EINVAL, "welcome.heartbeat_timeout_ms",
                           "%u must be more than heartbeat_interval_ms %u and at most %u",
                           (unsigned)w->heartbeat_timeout_ms, (unsigned)w->heartbeat_interval_ms,
                           GB_ENVELOPE_MAX_INTERVAL_MS);
    if (rc == 0 && w->shard)
        rc = s_check_shard(w->shard, err);
    return rc;
}

static int s_check_train_config(const Glassbox__TrainConfig *c, gb_error_t *err)
{
    int rc = gb_check_max(err, "task.train_config.epochs", c->epochs, GB_ENVELOPE_MAX_EPOCHS);
    if (rc == 0)
        rc = gb_check_max(err, "task.train_config.max_steps", c->max_steps, GB_ENVELOPE_MAX_STEPS);
    if (rc == 0 && c->epochs == 0 && c->max_steps == 0)
        rc = gb_check_fail(err, GB_EINVAL, "task.train_config",
                           "neither epochs nor max_steps is set (one must be >= 1)");
    if (rc == 0)
        rc = gb_check_count(err, "task.train_config.batch_size", c->batch_size);
    if (rc == 0)
        rc = gb_check_max(err, "task.train_config.batch_size", c->batch_size,
                          GB_ENVELOPE_MAX_BATCH);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.learning_rate", c->learning_rate, 0, 1e3, false);
    if (rc == 0 && c->learning_rate == 0)
        rc = gb_check_fail(err, GB_EINVAL, "task.train_config.learning_rate", "is 0 (must be > 0)");
    if (rc == 0)
        rc = gb_check_enum(err, "task.train_config.optimizer", (int)c->optimizer,
                           GLASSBOX__OPTIMIZER__OPTIMIZER_UNSPECIFIED,
                           GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.momentum", c->momentum, 0, 1, true);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.weight_decay", c->weight_decay, 0, 1, false);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.beta1", c->beta1, 0, 1, true);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.beta2", c->beta2, 0, 1, true);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.epsilon", c->epsilon, 0, 1, false);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.fedprox_mu", c->fedprox_mu, 0, 1e4, false);
    if (rc == 0)
        rc = gb_check_real(err, "task.train_config.clip_norm", c->clip_norm, 0, 1e30, false);
    return rc;
}

static int s_check_explain_config(const Glassbox__ExplainConfig *x, gb_error_t *err)
{
    int rc = gb_check_enum(err, "task.explain.method", (int)x->method,
                           GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE,
                           GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM);
    if (rc == 0)
        rc = gb_check_max(err, "task.explain.steps", x->steps, GB_ENVELOPE_MAX_EXPLAIN_STEPS);
    if (rc == 0)
        rc = gb_check_real(err, "task.explain.noise", x->noise, 0, 1, false);
    if (rc == 0)
        rc = gb_check_list(err, "task.explain.classes", x->n_classes, x->classes,
                           GB_ENVELOPE_MAX_CLASSES);
    gb_check_classes_t seen = {{0}};
    char field[GB_CHECK_FIELD_MAX];
    for (size_t i = 0; rc == 0 && i < x->n_classes; i++) {
        snprintf(field, sizeof field, "task.explain.classes[%zu]", i);
        rc = gb_check_class(err, field, &seen, x->classes[i]);
    }
    return rc;
}

static int s_check_task(const Glassbox__Task *t, gb_error_t *err)
{
    int rc = gb_check_count(err, "task.round", t->round);
    if (rc == 0)
        rc = gb_check_count(err, "task.task_id", t->task_id);
    if (rc == 0 && !t->train && !t->evaluate)
        rc = gb_check_fail(err, GB_EINVAL, "task", "asks neither to train nor to evaluate");
    if (rc == 0 && t->train && !t->train_config)
        rc = gb_check_fail(err, GB_EFORMAT, "task.train_config", "is missing (train is set)");
    if (rc == 0 && t->train_config)
        rc = s_check_train_config(t->train_config, err);
    if (rc == 0 && t->explain)
        rc = s_check_explain_config(t->explain, err);
    if (rc == 0)
        rc = gb_check_model("task.model", t->model, err);
    return rc;
}

static int s_check_update(const Glassbox__Update *u, gb_error_t *err)
{
    int rc = gb_check_count(err, "update.round", u->round);
    if (rc == 0)
        rc = gb_check_count(err, "update.task_id", u->task_id);
    if (rc == 0)
        rc = gb_check_count(err, "update.num_samples", u->num_samples);
    if (rc == 0)
        rc = gb_check_count(err, "update.param_count", u->param_count);
    if (rc == 0 && u->param_count > GB_MODEL_MAX_PARAMS)
        rc = gb_check_fail(err, GB_ERANGE, "update.param_count", "%llu is more than %zu",
                           (unsigned long long)u->param_count, GB_MODEL_MAX_PARAMS);
    if (rc == 0 && (u->delta.len % 4 != 0 || u->delta.len / 4 != u->param_count))
        rc = gb_check_fail(err, GB_ESHAPE, "update.delta",
                           "is %zu bytes, param_count %llu needs %llu", u->delta.len,
                           (unsigned long long)u->param_count,
                           (unsigned long long)u->param_count * 4);
    if (rc == 0 && !u->delta.data)
        rc = gb_check_fail(err, GB_EFORMAT, "update.delta", "is missing");
    if (rc == 0 && u->delta_sha256.len != GB_WIRE_SHA256_LEN)
        rc = gb_check_fail(err, GB_EFORMAT, "update.delta_sha256", "is %zu bytes, expected %d",
                           u->delta_sha256.len, GB_WIRE_SHA256_LEN);
    if (rc == 0)
        rc = gb_check_metrics(err, "update.metrics", u->n_metrics, u->metrics);
    if (rc != 0)
        return rc;
    /* Bounded checks passed: now the ones that cost a pass over the delta. */
    uint8_t digest[GB_WIRE_SHA256_LEN];
    rc = gb_wire_sha256(u->delta.data, u->delta.len, digest, err);
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(digest, u->delta_sha256.data, GB_WIRE_SHA256_LEN) != 0)
        return gb_check_fail(err, GB_EINTEGRITY, "update.delta",
                             "does not match delta_sha256 (corrupted)");
    size_t n = u->delta.len / 4;
    size_t bad = gb_wire_first_nonfinite(u->delta.data, n);
    if (bad < n)
        return gb_check_fail(err, GB_EINVAL, "update.delta", "value %zu of %zu is %s", bad, n,
                             isnan(gb_wire_float_le(u->delta.data + 4 * bad)) ? "NaN" : "infinite");
    if (u->explanation)
        rc = gb_check_explanation(u->explanation, "update.explanation", 0, err);
    return rc;
}

static int s_check_eval(const Glassbox__EvalResult *e, gb_error_t *err)
{
    int rc = gb_check_count(err, "eval_result.round", e->round);
    if (rc == 0)
        rc = gb_check_count(err, "eval_result.task_id", e->task_id);
    if (rc == 0)
        rc = gb_check_count(err, "eval_result.num_samples", e->num_samples);
    if (rc == 0)
        rc = gb_check_real(err, "eval_result.loss", e->loss, 0, HUGE_VAL, false);
    if (rc == 0)
        rc = gb_check_real(err, "eval_result.accuracy", e->accuracy, 0, 1, false);
    if (rc == 0)
        rc = gb_check_metrics(err, "eval_result.metrics", e->n_metrics, e->metrics);
    return rc;
}

static int s_check_error(const Glassbox__Error *e, bool decoding, gb_error_t *err)
{
    int rc = 0;
    /* Decoding: an unknown code came from a newer peer and is read as
     * ERROR_INTERNAL (glassbox.proto). Encoding: we send only codes we know. */
    if (!decoding)
        rc = gb_check_enum(err, "error.code", (int)e->code, GLASSBOX__ERROR_CODE__ERROR_VERSION,
                           S_LAST_ERROR_CODE);
    if (rc == 0)
        rc = gb_check_text(err, "error.message", e->message, 0, GB_ENVELOPE_MAX_ERROR_MESSAGE,
                           false);
    if (rc == 0)
        rc = gb_check_max(err, "error.retry_after_ms", e->retry_after_ms,
                          GB_ENVELOPE_MAX_INTERVAL_MS);
    return rc;
}

static int s_check_heartbeat(const Glassbox__Heartbeat *h, gb_error_t *err)
{
    int rc = gb_check_enum(err, "heartbeat.state", (int)h->state,
                           GLASSBOX__CLIENT_STATE__CLIENT_STATE_IDLE,
                           GLASSBOX__CLIENT_STATE__CLIENT_STATE_UPLOADING);
    if (rc == 0)
        rc = gb_check_real(err, "heartbeat.progress", h->progress, 0, 1, false);
    return rc;
}

static int s_check_publication(const Glassbox__SignedPublication *p, size_t max_bytes,
                               gb_error_t *err)
{
    int rc = gb_check_blob(err, "publication.publication", p->publication, 1, max_bytes);
    if (rc == 0)
        rc = gb_check_blob(err, "publication.signature", p->signature, 1,
                           GB_ENVELOPE_MAX_SIGNATURE);
    if (rc == 0)
        rc = gb_check_name(err, "publication.signature_algorithm", p->signature_algorithm,
                           GB_ENVELOPE_MAX_ALGORITHM, false, "");
    if (rc == 0)
        rc = gb_check_blob(err, "publication.signer_certificate", p->signer_certificate, 1,
                           GB_ENVELOPE_MAX_DER);
    return rc;
}

static int s_check_chunk(const Glassbox__TensorChunk *c, gb_error_t *err)
{
    int rc = gb_check_count(err, "chunk.transfer_id", c->transfer_id);
    if (rc == 0)
        rc = gb_check_count(err, "chunk.count", c->count);
    if (rc == 0)
        rc = gb_check_count(err, "chunk.total_bytes", c->total_bytes);
    if (rc == 0 && c->index >= c->count)
        rc = gb_check_fail(err, GB_EINVAL, "chunk.index", "%u is not below count %u",
                           (unsigned)c->index, (unsigned)c->count);
    if (rc == 0 && c->count > c->total_bytes)
        rc = gb_check_fail(err, GB_EINVAL, "chunk.count", "%u chunks cannot carry %llu bytes",
                           (unsigned)c->count, (unsigned long long)c->total_bytes);
    if (rc == 0)
        rc = gb_check_blob(err, "chunk.data", c->data, 1, GB_ENVELOPE_MAX_BYTES);
    if (rc == 0 && (c->offset > c->total_bytes || c->data.len > c->total_bytes - c->offset))
        rc = gb_check_fail(err, GB_EINVAL, "chunk.offset",
                           "%llu + %zu data bytes runs past total_bytes %llu",
                           (unsigned long long)c->offset, c->data.len,
                           (unsigned long long)c->total_bytes);
    bool last = c->index + 1 == c->count;
    if (rc == 0 && c->sha256.len != (last ? GB_WIRE_SHA256_LEN : 0))
        rc = gb_check_fail(err, GB_EFORMAT, "chunk.sha256", "is %zu bytes in chunk %u of %u (%s)",
                           c->sha256.len, (unsigned)c->index, (unsigned)c->count,
                           last ? "the last chunk carries 32" : "only the last chunk carries it");
    if (rc == 0 && last && !c->sha256.data)
        rc = gb_check_fail(err, GB_EFORMAT, "chunk.sha256", "is missing");
    return rc;
}

static int s_check_enroll_request(const Glassbox__EnrollRequest *r, gb_error_t *err)
{
    int rc = gb_check_blob(err, "enroll_request.token", r->token, 1, GB_ENVELOPE_MAX_TOKEN);
    if (rc == 0)
        rc = gb_check_blob(err, "enroll_request.csr", r->csr, 1, GB_ENVELOPE_MAX_DER);
    /* It becomes a certificate's CN and DNS name: a host-name alphabet. */
    if (rc == 0)
        rc = gb_check_name(err, "enroll_request.client_name", r->client_name, 64, true, "");
    return rc;
}

static int s_check_enroll_response(const Glassbox__EnrollResponse *r, gb_error_t *err)
{
    int rc = gb_check_blob(err, "enroll_response.certificate", r->certificate, 1,
                           GB_ENVELOPE_MAX_DER);
    if (rc == 0)
        rc = gb_check_blob(err, "enroll_response.ca_certificate", r->ca_certificate, 1,
                           GB_ENVELOPE_MAX_DER);
    return rc;
}

/* ---- the envelope -------------------------------------------------------- */

static size_t s_max_bytes(const gb_envelope_limits_t *limits)
{
    return limits && limits->max_bytes ? limits->max_bytes : GB_ENVELOPE_MAX_BYTES;
}

static int s_validate(const Glassbox__Envelope *env, const gb_envelope_limits_t *limits,
                      bool decoding, gb_error_t *err)
{
    if (env->protocol_version == 0)
        return gb_check_fail(err, GB_EFORMAT, "envelope.protocol_version", "is 0 (missing)");
    if (env->protocol_version != GB_ENVELOPE_PROTOCOL_VERSION)
        return gb_check_fail(err, GB_EPROTO, "envelope.protocol_version",
                             "%u is not supported (this build speaks %u)",
                             (unsigned)env->protocol_version, GB_ENVELOPE_PROTOCOL_VERSION);
    int rc = gb_check_count(err, "envelope.sequence", env->sequence);
    if (rc != 0)
        return rc;
    const char *name = gb_envelope_body_name(env);
    /* Every member of the body union is a pointer: one test covers them. */
    if (env->body_case != GLASSBOX__ENVELOPE__BODY__NOT_SET && !env->join)
        return gb_check_fail(err, GB_EFORMAT, name, "is missing");
    switch (env->body_case) {
    case GLASSBOX__ENVELOPE__BODY_JOIN:
        return s_check_join(env->join, err);
    case GLASSBOX__ENVELOPE__BODY_WELCOME:
        return s_check_welcome(env->welcome, err);
    case GLASSBOX__ENVELOPE__BODY_TASK:
        return s_check_task(env->task, err);
    case GLASSBOX__ENVELOPE__BODY_UPDATE:
        return s_check_update(env->update, err);
    case GLASSBOX__ENVELOPE__BODY_EVAL_RESULT:
        return s_check_eval(env->eval_result, err);
    case GLASSBOX__ENVELOPE__BODY_ACK:
        return gb_check_count(err, "ack.acked_sequence", env->ack->acked_sequence);
    case GLASSBOX__ENVELOPE__BODY_ERROR:
        return s_check_error(env->error, decoding, err);
    case GLASSBOX__ENVELOPE__BODY_HEARTBEAT:
        return s_check_heartbeat(env->heartbeat, err);
    case GLASSBOX__ENVELOPE__BODY_PUBLICATION:
        return s_check_publication(env->publication, s_max_bytes(limits), err);
    case GLASSBOX__ENVELOPE__BODY_CHUNK:
        if (limits && limits->reassembled)
            return gb_check_fail(err, GB_EFORMAT, "chunk",
                                 "a reassembled transfer may not itself be a chunk");
        return s_check_chunk(env->chunk, err);
    case GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST:
        return s_check_enroll_request(env->enroll_request, err);
    case GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE:
        return s_check_enroll_response(env->enroll_response, err);
    default:
        /* NOT_SET, or a body number from a newer version (protobuf-c then
         * keeps it as an unknown field and sets no case). */
        return gb_check_fail(err, GB_EFORMAT, "envelope.body",
                             "is missing, or a kind this version does not know");
    }
}

int gb_envelope_validate(const Glassbox__Envelope *env, const gb_envelope_limits_t *limits,
                         gb_error_t *err)
{
    if (!env || env->base.descriptor != &glassbox__envelope__descriptor)
        return gb_error_set(err, GB_EINVAL, "gb_envelope_validate: not an Envelope");
    size_t max = s_max_bytes(limits);
    int rc = s_validate(env, limits, false, err);
    if (rc != 0)
        return rc;
    /* After the fields: packing sizes walk every repeated field, which the
     * list bounds above have capped. */
    size_t packed = glassbox__envelope__get_packed_size(env);
    if (packed > max)
        return gb_check_fail(err, GB_ERANGE, "envelope",
                             "would be %zu bytes, more than the limit of %zu", packed, max);
    return 0;
}

int gb_envelope_encode(const Glassbox__Envelope *env, const gb_envelope_limits_t *limits,
                       uint8_t **buf, size_t *len, gb_error_t *err)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!buf || !len)
        return gb_error_set(err, GB_EINVAL, "gb_envelope_encode: NULL output");
    int rc = gb_envelope_validate(env, limits, err);
    if (rc != 0)
        return rc;
    size_t packed = glassbox__envelope__get_packed_size(env);
    uint8_t *out = gb_malloc(packed ? packed : 1);
    if (!out)
        return gb_error_set(err, GB_ENOMEM, "out of memory for a %zu-byte %s envelope", packed,
                            gb_envelope_body_name(env));
    size_t written = glassbox__envelope__pack(env, out);
    if (written != packed) {
        gb_free(out);
        return gb_error_set(err, GB_EFORMAT, "protobuf-c packed %zu bytes, expected %zu",
                            written, packed);
    }
    *buf = out;
    *len = packed;
    return 0;
}

static int s_decode(const uint8_t *buf, size_t len, const gb_envelope_limits_t *limits,
                    Glassbox__Envelope **out, gb_error_t *err)
{
    size_t max = s_max_bytes(limits);
    if (len > max)
        return gb_check_fail(err, GB_ERANGE, "envelope", "is %zu bytes, more than the limit of %zu",
                             len, max);
    if (!buf && len > 0)
        return gb_error_set(err, GB_EINVAL, "gb_envelope_decode: NULL buffer");
    /* Twice the frame plus slack: protobuf-c copies every bytes and string
     * field and adds a struct per message; more than that means a frame of
     * many tiny repeated entries built to make us allocate. */
    gb_wire_budget_t budget = gb_wire_budget(len);
    ProtobufCAllocator alloc = gb_wire_budget_allocator(&budget);
    Glassbox__Envelope *env =
        glassbox__envelope__unpack(&alloc, len, len ? buf : (const uint8_t *)"");
    if (!env) {
        if (budget.out_of_mem)
            return gb_error_set(err, GB_ENOMEM, "out of memory decoding a %zu-byte envelope",
                                len);
        if (budget.over)
            return gb_check_fail(err, GB_ERANGE, "envelope",
                                 "%zu bytes need more than %zu bytes of memory to unpack", len,
                                 budget.limit);
        return gb_check_fail(err, GB_EFORMAT, "envelope",
                             "%zu bytes do not unpack (not an Envelope, or truncated)", len);
    }
    int rc = gb_check_unknown_fields(&env->base, err);
    if (rc == 0)
        rc = s_validate(env, limits, true, err);
    if (rc != 0) {
        glassbox__envelope__free_unpacked(env, gb_wire_allocator());
        return rc;
    }
    if (env->body_case == GLASSBOX__ENVELOPE__BODY_ERROR &&
        (env->error->code < GLASSBOX__ERROR_CODE__ERROR_VERSION ||
         env->error->code > S_LAST_ERROR_CODE))
        env->error->code = GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
    *out = env;
    return 0;
}

int gb_envelope_decode(const uint8_t *buf, size_t len, const gb_envelope_limits_t *limits,
                       Glassbox__Envelope **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_envelope_decode: NULL output");
    *out = NULL;
    gb_error_t local;
    gb_error_clear(&local);
    int rc = s_decode(buf, len, limits, out, &local);
    if (rc != 0)
        return gb_error_warn(err, rc, "envelope refused (%s): %s",
                             gb_envelope_error_name(gb_envelope_error_code(rc)), local.msg);
    return 0;
}

void gb_envelope_free(Glassbox__Envelope **env)
{
    if (!env || !*env)
        return;
    glassbox__envelope__free_unpacked(*env, gb_wire_allocator());
    *env = NULL;
}

Glassbox__ErrorCode gb_envelope_error_code(int gb_err)
{
    switch (gb_err) {
    case GB_OK:
        return GLASSBOX__ERROR_CODE__ERROR_UNSPECIFIED;
    case GB_EPROTO:
        return GLASSBOX__ERROR_CODE__ERROR_VERSION;
    case GB_EFORMAT:
        return GLASSBOX__ERROR_CODE__ERROR_MALFORMED;
    case GB_ERANGE:
        return GLASSBOX__ERROR_CODE__ERROR_TOO_LARGE;
    case GB_EINVAL:
        return GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;
    case GB_ESHAPE:
    case GB_ESPEC:
        return GLASSBOX__ERROR_CODE__ERROR_SHAPE;
    case GB_EINTEGRITY:
        return GLASSBOX__ERROR_CODE__ERROR_INTEGRITY;
    default:
        return GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
    }
}

const char *gb_envelope_error_name(Glassbox__ErrorCode code)
{
    static const char *const names[] = {
        "ERROR_UNSPECIFIED",   "ERROR_VERSION",   "ERROR_MALFORMED",       "ERROR_TOO_LARGE",
        "ERROR_INVALID_VALUE", "ERROR_SHAPE",     "ERROR_INTEGRITY",       "ERROR_UNAUTHENTICATED",
        "ERROR_FORBIDDEN",     "ERROR_UNEXPECTED", "ERROR_STALE",          "ERROR_DUPLICATE",
        "ERROR_BUSY",          "ERROR_SHUTTING_DOWN", "ERROR_INTERNAL",  "ERROR_NORM",
    };
    _Static_assert(sizeof names / sizeof names[0] == S_LAST_ERROR_CODE + 1,
                   "one name per ErrorCode");
    if ((int)code < 0 || (size_t)code >= sizeof names / sizeof names[0])
        return "ERROR_UNKNOWN";
    return names[code];
}

const char *gb_envelope_body_name(const Glassbox__Envelope *env)
{
    switch (env ? env->body_case : GLASSBOX__ENVELOPE__BODY__NOT_SET) {
    case GLASSBOX__ENVELOPE__BODY_JOIN: return "join";
    case GLASSBOX__ENVELOPE__BODY_WELCOME: return "welcome";
    case GLASSBOX__ENVELOPE__BODY_TASK: return "task";
    case GLASSBOX__ENVELOPE__BODY_UPDATE: return "update";
    case GLASSBOX__ENVELOPE__BODY_EVAL_RESULT: return "eval_result";
    case GLASSBOX__ENVELOPE__BODY_ACK: return "ack";
    case GLASSBOX__ENVELOPE__BODY_ERROR: return "error";
    case GLASSBOX__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case GLASSBOX__ENVELOPE__BODY_PUBLICATION: return "publication";
    case GLASSBOX__ENVELOPE__BODY_CHUNK: return "chunk";
    case GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST: return "enroll_request";
    case GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE: return "enroll_response";
    default: return "none";
    }
}

/* ---- replies ------------------------------------------------------------- */

/* A new envelope shell of sequence seq; NULL on ENOMEM. */
static Glassbox__Envelope *s_shell(uint64_t seq)
{
    Glassbox__Envelope *env = gb_malloc(sizeof *env);
    if (env) {
        glassbox__envelope__init(env);
        env->protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
        env->sequence = seq;
    }
    return env;
}

/* A copy of message that passes s_text: at most GB_ENVELOPE_MAX_ERROR_MESSAGE
 * bytes, cut before a partial character, anything not valid replaced. */
static char *s_clean_message(const char *message)
{
    size_t len = message ? strnlen(message, GB_ENVELOPE_MAX_ERROR_MESSAGE) : 0;
    char *copy = gb_malloc(len + 1);
    if (!copy)
        return NULL;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t bad;
        if (gb_wire_text_ok(message + i, len - i, false, &bad)) {
            memcpy(copy + o, message + i, len - i);
            o += len - i;
            break;
        }
        memcpy(copy + o, message + i, bad);
        o += bad;
        copy[o++] = '?';
        i += bad + 1;
        /* Skip the continuation bytes of the refused sequence. */
        while (i < len && ((unsigned char)message[i] & 0xc0) == 0x80)
            copy[o++] = '?', i++;
    }
    copy[o] = '\0';
    return copy;
}

Glassbox__Envelope *gb_envelope_make_error(uint64_t seq, Glassbox__ErrorCode code,
                                           uint64_t in_reply_to, const char *message,
                                           gb_error_t *err)
{
    if (seq == 0) {
        gb_error_set(err, GB_EINVAL, "gb_envelope_make_error: sequence 0");
        return NULL;
    }
    Glassbox__Envelope *env = s_shell(seq);
    Glassbox__Error *e = env ? gb_malloc(sizeof *e) : NULL;
    char *text = e ? s_clean_message(message) : NULL;
    if (!text) {
        gb_free(e);
        gb_free(env);
        gb_error_set(err, GB_ENOMEM, "out of memory for an error reply");
        return NULL;
    }
    glassbox__error__init(e);
    e->code = code >= GLASSBOX__ERROR_CODE__ERROR_VERSION &&
                      code <= S_LAST_ERROR_CODE
        ? code : GLASSBOX__ERROR_CODE__ERROR_INTERNAL;
    e->message = text;
    e->in_reply_to = in_reply_to;
    env->body_case = GLASSBOX__ENVELOPE__BODY_ERROR;
    env->error = e;
    return env;
}

Glassbox__Envelope *gb_envelope_make_ack(uint64_t seq, uint64_t acked_sequence, uint64_t round,
                                         uint64_t task_id, gb_error_t *err)
{
    if (seq == 0 || acked_sequence == 0) {
        gb_error_set(err, GB_EINVAL, "gb_envelope_make_ack: %s is 0",
                     seq == 0 ? "sequence" : "the sequence to acknowledge");
        return NULL;
    }
    Glassbox__Envelope *env = s_shell(seq);
    Glassbox__Ack *a = env ? gb_malloc(sizeof *a) : NULL;
    if (!a) {
        gb_free(env);
        gb_error_set(err, GB_ENOMEM, "out of memory for an ack");
        return NULL;
    }
    glassbox__ack__init(a);
    a->acked_sequence = acked_sequence;
    a->round = round;
    a->task_id = task_id;
    env->body_case = GLASSBOX__ENVELOPE__BODY_ACK;
    env->ack = a;
    return env;
}
