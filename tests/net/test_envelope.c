/* Tests for net/envelope, the wire's message codec: a round trip of every
 * body; every truncation point of every body refused; one case per
 * validation rule, each checking the gb_err, the ErrorCode to reply with and
 * the field named in the message, on decode and (the same validation) on
 * encode; size limits and the unpack budget; the reply helpers; allocation
 * failure injection.
 *
 * Hostile messages are built with the generated protobuf-c code from the
 * valid fixtures in envelope_fixture.h, with correct hashes unless a case
 * asks for a stale one, so each case reaches the check it is meant to trip. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "envelope_fixture.h"
#include "net/envelope.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define E(x) GLASSBOX__ERROR_CODE__ERROR_##x

static int s_case_id; /* rule case being run, for failure messages */

static void s_expect_refused(const uint8_t *buf, size_t len, const gb_envelope_limits_t *lim,
                             int code, Glassbox__ErrorCode wire, const char *needle)
{
    Glassbox__Envelope *out = (Glassbox__Envelope *)&out; /* must be reset to NULL */
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_envelope_decode(buf, len, lim, &out, &err);
    if (rc != code)
        fail_msg("case %d: expected %s, got %d (%s)", s_case_id, gb_strerror(code), rc, err.msg);
    assert_null(out);
    assert_int_equal(err.code, code);
    assert_int_equal(gb_envelope_error_code(rc), wire);
    if (needle && !strstr(err.msg, needle))
        fail_msg("case %d: '%s' not in '%s'", s_case_id, needle, err.msg);
}

/* Decodes buf, which must be valid; returns the envelope. */
static Glassbox__Envelope *s_decode_ok(const uint8_t *buf, size_t len,
                                       const gb_envelope_limits_t *lim)
{
    Glassbox__Envelope *out = NULL;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_envelope_decode(buf, len, lim, &out, &err);
    if (rc != 0)
        fail_msg("decode: %s", err.msg);
    assert_non_null(out);
    return out;
}

/* ---- round trips ---------------------------------------------------------- */

static void test_round_trip_every_body(void **state)
{
    (void)state;
    for (int kind = 0; kind < GBFIX_KINDS; kind++) {
        gbfix_t f;
        gbfix_init(&f, kind);
        size_t raw_len;
        uint8_t *raw = gbfix_pack(&f, &raw_len);

        /* encode validates and produces exactly protobuf-c's bytes */
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        gb_error_t err;
        gb_error_clear(&err);
        if (gb_envelope_encode(&f.env, NULL, &enc, &enc_len, &err) != 0)
            fail_msg("kind %d: encode: %s", kind, err.msg);
        assert_int_equal(enc_len, raw_len);
        assert_memory_equal(enc, raw, raw_len);
        assert_int_equal(gb_envelope_validate(&f.env, NULL, &err), 0);

        /* decode gives back every field: re-packing it gives the same bytes */
        Glassbox__Envelope *out = s_decode_ok(enc, enc_len, NULL);
        assert_int_equal(out->body_case, f.env.body_case);
        assert_int_equal(out->sequence, 7);
        size_t again = glassbox__envelope__get_packed_size(out);
        assert_int_equal(again, raw_len);
        uint8_t *rep = malloc(again);
        glassbox__envelope__pack(out, rep);
        assert_memory_equal(rep, raw, raw_len);
        free(rep);
        gb_envelope_free(&out);
        assert_null(out);
        gb_envelope_free(&out); /* NULL-safe */
        gb_envelope_free(NULL);
        gb_free(enc);
        free(raw);
    }
}

/* A few fields spot-checked after decoding, beyond the byte comparison. */
static void test_decoded_fields(void **state)
{
    (void)state;
    gbfix_t f;
    gbfix_init(&f, GBFIX_UPDATE);
    size_t len;
    uint8_t *buf = gbfix_pack(&f, &len);
    Glassbox__Envelope *out = s_decode_ok(buf, len, NULL);
    assert_string_equal(gb_envelope_body_name(out), "update");
    assert_int_equal(out->update->param_count, GBFIX_DELTA);
    assert_memory_equal(out->update->delta.data, f.delta, sizeof f.delta);
    assert_string_equal(out->update->metrics[1]->name, "accuracy/class_3");
    assert_int_equal(out->update->explanation->classes[1]->class_index, 3);
    gb_envelope_free(&out);
    free(buf);

    /* Optional parts may be absent: a Task that only evaluates, an Update
     * without an explanation, an explanation with only per-class maps. */
    gbfix_init(&f, GBFIX_TASK);
    f.task.train = 0;
    f.task.train_config = NULL;
    f.task.explain = NULL;
    buf = gbfix_pack(&f, &len);
    out = s_decode_ok(buf, len, NULL);
    assert_null(out->task->train_config);
    gb_envelope_free(&out);
    free(buf);
    gbfix_init(&f, GBFIX_TASK);
    f.train.epochs = 0;
    f.train.max_steps = 10; /* steps instead of epochs */
    buf = gbfix_pack(&f, &len);
    out = s_decode_ok(buf, len, NULL);
    gb_envelope_free(&out);
    free(buf);
    gbfix_init(&f, GBFIX_UPDATE);
    f.update.explanation = NULL;
    buf = gbfix_pack(&f, &len);
    out = s_decode_ok(buf, len, NULL);
    gb_envelope_free(&out);
    free(buf);
    gbfix_init(&f, GBFIX_UPDATE);
    f.expl.feature_importance = NULL;
    buf = gbfix_pack(&f, &len);
    out = s_decode_ok(buf, len, NULL);
    gb_envelope_free(&out);
    free(buf);
}

/* An unknown Error code from a newer peer reads as ERROR_INTERNAL, and
 * ERROR_UNSPECIFIED too; encode refuses both (we send only codes we know). */
static void test_error_codes_from_newer_peers(void **state)
{
    (void)state;
    const int codes[] = {0, 16, 99, -3};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        gbfix_t f;
        gbfix_init(&f, GBFIX_ERROR);
        f.error.code = (Glassbox__ErrorCode)codes[i];
        size_t len;
        uint8_t *buf = gbfix_pack(&f, &len);
        Glassbox__Envelope *out = s_decode_ok(buf, len, NULL);
        assert_int_equal(out->error->code, E(INTERNAL));
        gb_envelope_free(&out);
        free(buf);
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        gb_error_t err;
        assert_int_equal(gb_envelope_encode(&f.env, NULL, &enc, &enc_len, &err), GB_EINVAL);
        assert_null(enc);
        assert_non_null(strstr(err.msg, "error.code"));
    }
}

/* ---- truncation ----------------------------------------------------------- */

static void test_every_truncation_refused(void **state)
{
    (void)state;
    for (int kind = 0; kind < GBFIX_KINDS; kind++) {
        gbfix_t f;
        gbfix_init(&f, kind);
        size_t len;
        uint8_t *buf = gbfix_pack(&f, &len);
        /* The body is the last field written, so any cut loses or damages
         * it; the copy makes ASan catch a read past the cut. */
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *part = malloc(cut ? cut : 1);
            memcpy(part, buf, cut);
            s_expect_refused(part, cut, NULL, GB_EFORMAT, E(MALFORMED), NULL);
            free(part);
        }
        free(buf);
    }
}

/* ---- one case per rule ---------------------------------------------------- */

typedef struct {
    int kind;       /* fixture to start from */
    int which;      /* mutation (s_mutate) */
    int code;       /* gb_err expected */
    Glassbox__ErrorCode wire; /* reply code expected */
    const char *needle; /* must appear in the message */
} s_case_t;

static char s_long[GB_ENVELOPE_MAX_DER + 2];
static Glassbox__KeyValue s_many_kv[GB_ENVELOPE_MAX_KV + 1];
static Glassbox__KeyValue *s_many_kvp[GB_ENVELOPE_MAX_KV + 1];
static Glassbox__Metric s_many_m[GB_ENVELOPE_MAX_METRICS + 1];
static Glassbox__Metric *s_many_mp[GB_ENVELOPE_MAX_METRICS + 1];
static uint32_t s_shape[GB_ENVELOPE_MAX_DIMS + 1];

static void s_set_nan(float *p, int i)
{
    p[i] = NAN;
}

/* A data shard for the Welcome cases (static: the fixture only points at it). */
static Glassbox__DataShard s_shard;

static void s_mutate(gbfix_t *f, int which)
{
    if (which >= 36 && which <= 38) {
        glassbox__data_shard__init(&s_shard);
        s_shard.partition = "dirichlet:0.5";
        s_shard.clients = 3;
        s_shard.index = 2;
        f->welcome.shard = &s_shard;
    }
    switch (which) {
    /* envelope */
    case 1: f->env.protocol_version = 0; break;
    case 2: f->env.protocol_version = 2; break;
    case 3: f->env.sequence = 0; break;
    case 4: f->env.body_case = GLASSBOX__ENVELOPE__BODY__NOT_SET; break;
    /* join */
    case 10: f->join.min_protocol_version = 0; break;
    case 11: f->join.min_protocol_version = 3, f->join.max_protocol_version = 2; break;
    case 12: f->join.min_protocol_version = 2, f->join.max_protocol_version = 3; break;
    case 13: f->join.client_name = ""; break;
    case 14: f->join.client_name = "client\n3"; break;
    case 15: f->join.client_name = "client\xc0\xaf"; break; /* overlong '/' */
    case 16: memset(s_long, 'a', 257), s_long[257] = 0, f->join.client_name = s_long; break;
    case 17: f->caps[0].key = "Threads"; break;
    case 18: f->caps[1].key = "threads"; break;
    case 19:
        for (int i = 0; i <= GB_ENVELOPE_MAX_KV; i++) {
            glassbox__key_value__init(&s_many_kv[i]);
            s_many_kv[i].key = "k";
            s_many_kvp[i] = &s_many_kv[i];
        }
        f->join.n_capabilities = GB_ENVELOPE_MAX_KV + 1;
        f->join.capabilities = s_many_kvp;
        break;
    case 20: f->caps[1].value = "a\x7f"; break;
    case 21: f->join.dataset = "\xed\xa0\x80"; break; /* a surrogate */
    /* welcome */
    case 30: f->welcome.protocol_version = 2; break;
    case 31: f->welcome.client_id = ""; break;
    case 32: f->welcome.heartbeat_interval_ms = 0; break;
    case 33: f->welcome.heartbeat_timeout_ms = 5000; break;
    case 34: f->welcome.heartbeat_interval_ms = GB_ENVELOPE_MAX_INTERVAL_MS + 1; break;
    case 35: f->welcome.protocol_version = 0; break;
    case 36: s_shard.index = 3; break;
    case 37: s_shard.clients = GB_ENVELOPE_MAX_SHARDS + 1, s_shard.index = 0; break;
    case 38: s_shard.partition = ""; break;
    /* task */
    case 40: f->task.round = 0; break;
    case 41: f->task.task_id = 0; break;
    case 42: f->task.train = 0, f->task.evaluate = 0; break;
    case 43: f->task.model = NULL; break;
    case 44: s_set_nan(f->model_params, 2); break;
    case 45: f->keep_model_sha = true, f->model_params[3] = 1.0f; break;
    case 46: f->model.format_version = 2; break;
    case 47: f->model.spec = "input 4\ndense 2\n"; break;
    case 48: f->task.train_config = NULL; break;
    case 49: f->train.epochs = 1001; break;
    case 50: f->train.epochs = 0, f->train.max_steps = 0; break;
    case 51: f->train.batch_size = 0; break;
    case 52: f->train.batch_size = 65537; break;
    case 53: f->train.learning_rate = 0; break;
    case 54: f->train.learning_rate = NAN; break;
    case 55: f->train.learning_rate = -1; break;
    case 56: f->train.optimizer = (Glassbox__Optimizer)7; break;
    case 57: f->train.momentum = 1.0; break;
    case 58: f->train.beta1 = 1.0; break;
    case 59: f->train.beta2 = -0.1; break;
    case 60: f->train.clip_norm = -1; break;
    case 61: f->train.clip_norm = INFINITY; break;
    case 62: f->train.weight_decay = 2; break;
    case 63: f->train.epsilon = -1e-8; break;
    case 64: f->train.fedprox_mu = NAN; break;
    case 65: f->train.max_steps = GB_ENVELOPE_MAX_STEPS + 1; break;
    case 66: f->explain.method = (Glassbox__ExplainMethod)9; break;
    case 67: f->explain_classes[2] = 3; break;
    case 68: f->explain_classes[1] = GB_ENVELOPE_MAX_CLASSES; break;
    case 69: f->explain.steps = GB_ENVELOPE_MAX_EXPLAIN_STEPS + 1; break;
    case 70: f->explain.noise = NAN; break;
    case 71: f->model.params.len -= 4; break;
    case 72: f->model.params_sha256.len = 31, f->keep_model_sha = true; break;
    case 73: f->model.spec = "input 4\nwobble 3\n"; break;
    /* update */
    case 80: f->update.round = 0; break;
    case 81: f->update.task_id = 0; break;
    case 82: f->update.num_samples = 0; break;
    case 83: f->update.param_count = 0; break;
    case 84: f->update.param_count = (uint64_t)GB_MODEL_MAX_PARAMS + 1; break;
    case 85: f->update.param_count = GBFIX_DELTA + 1; break;
    case 86: f->update.delta_sha256.len = 31; break;
    case 87: f->keep_delta_sha = true, f->delta[5] = 1.0f; break;
    case 88: s_set_nan(f->delta, 17); break;
    case 89: f->delta[39] = -INFINITY; break;
    case 90: f->metrics[0].name = "lo ss"; break;
    case 91: f->metrics[1].value = NAN; break;
    case 92:
        for (int i = 0; i <= GB_ENVELOPE_MAX_METRICS; i++) {
            glassbox__metric__init(&s_many_m[i]);
            s_many_m[i].name = "m";
            s_many_mp[i] = &s_many_m[i];
        }
        f->update.n_metrics = GB_ENVELOPE_MAX_METRICS + 1;
        f->update.metrics = s_many_mp;
        break;
    case 93: f->expl.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE; break;
    case 94: f->fi.data.len -= 4; break;
    case 95: f->fi_shape[1] = 0; break;
    case 96:
        for (int i = 0; i <= GB_ENVELOPE_MAX_DIMS; i++)
            s_shape[i] = 1;
        f->fi.n_shape = GB_ENVELOPE_MAX_DIMS + 1;
        f->fi.shape = s_shape;
        break;
    case 97: f->fi.n_shape = 0; break;
    case 98: s_set_nan(f->map_data[1], 4); break;
    case 99: f->map_shape[1][0] = 3, f->map_shape[1][1] = 2; break;
    case 100: f->cls[1].class_index = 0; break;
    case 101: f->cls[0].count = 0; break;
    case 102: f->expl.n_classes = 0, f->expl.feature_importance = NULL; break;
    case 103:
        s_shape[0] = s_shape[1] = s_shape[2] = s_shape[3] = 65536; /* 2^64 */
        f->fi.n_shape = 4;
        f->fi.shape = s_shape;
        break;
    case 104: f->cls[1].mean_attribution = NULL; break;
    case 105: f->quality.name = ""; break;
    /* eval */
    case 110: f->eval.accuracy = 1.5; break;
    case 111: f->eval.loss = NAN; break;
    case 112: f->eval.loss = -1; break;
    case 113: f->eval.num_samples = 0; break;
    case 114: f->eval_metric.value = INFINITY; break;
    /* ack */
    case 120: f->ack.acked_sequence = 0; break;
    /* error */
    case 130: f->error.message = "bad\x01thing"; break;
    case 131:
        memset(s_long, 'e', GB_ENVELOPE_MAX_ERROR_MESSAGE + 1);
        s_long[GB_ENVELOPE_MAX_ERROR_MESSAGE + 1] = 0;
        f->error.message = s_long;
        break;
    case 132: f->error.retry_after_ms = GB_ENVELOPE_MAX_INTERVAL_MS + 1; break;
    /* heartbeat */
    case 140: f->heartbeat.progress = 1.5; break;
    case 141: f->heartbeat.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_UNSPECIFIED; break;
    case 142: f->heartbeat.state = (Glassbox__ClientState)9; break;
    case 143: f->heartbeat.progress = NAN; break;
    /* publication */
    case 150: f->pub.publication.len = 0; break;
    case 151: f->pub.signature.data = (uint8_t *)s_long, f->pub.signature.len = 1025; break;
    case 152: f->pub.signature_algorithm = "ECDSA"; break;
    case 153: f->pub.signer_certificate.len = 0; break;
    case 154: f->pub.signature_algorithm = ""; break;
    /* chunk */
    case 160: f->chunk.transfer_id = 0; break;
    case 161: f->chunk.count = 0; break;
    case 162: f->chunk.total_bytes = 0; break;
    case 163: f->chunk.index = 1; break;
    case 164: f->chunk.offset = 1; break;
    case 165: f->chunk.sha256.len = 0; break;
    case 166: f->chunk.count = 2, f->chunk.total_bytes = 200; break; /* sha in chunk 0 of 2 */
    case 167: f->chunk.data.len = 0; break;
    case 168: f->chunk.count = 101, f->chunk.index = 100; break;
    /* enrollment */
    case 170: f->enroll_req.token.len = 0; break;
    case 171: f->enroll_req.token.data = (uint8_t *)s_long, f->enroll_req.token.len = 1025; break;
    case 172: f->enroll_req.csr.len = 0; break;
    case 173: f->enroll_req.client_name = "edge 17"; break;
    case 174:
        memset(s_long, 'n', 65), s_long[65] = 0, f->enroll_req.client_name = s_long;
        break;
    case 175: f->enroll_req.client_name = ""; break;
    case 176: f->enroll_req.csr.data = (uint8_t *)s_long;
              f->enroll_req.csr.len = GB_ENVELOPE_MAX_DER + 1; break;
    case 180: f->enroll_resp.certificate.len = 0; break;
    case 181: f->enroll_resp.ca_certificate.data = (uint8_t *)s_long;
              f->enroll_resp.ca_certificate.len = GB_ENVELOPE_MAX_DER + 1; break;
    default: fail_msg("no mutation %d", which);
    }
}

static const s_case_t s_cases[] = {
    {GBFIX_ACK, 1, GB_EFORMAT, E(MALFORMED), "envelope.protocol_version: is 0"},
    {GBFIX_ACK, 2, GB_EPROTO, E(VERSION), "envelope.protocol_version: 2 is not supported"},
    {GBFIX_ACK, 3, GB_EFORMAT, E(MALFORMED), "envelope.sequence: is 0"},
    {GBFIX_ACK, 4, GB_EFORMAT, E(MALFORMED), "envelope.body: is missing"},
    {GBFIX_JOIN, 10, GB_EFORMAT, E(MALFORMED), "join.min_protocol_version: is 0"},
    {GBFIX_JOIN, 11, GB_EINVAL, E(INVALID_VALUE), "join.max_protocol_version: 2 is less"},
    {GBFIX_JOIN, 12, GB_EPROTO, E(VERSION), "join: protocol versions 2..3 do not include 1"},
    {GBFIX_JOIN, 13, GB_EFORMAT, E(MALFORMED), "join.client_name: is empty"},
    {GBFIX_JOIN, 14, GB_EINVAL, E(INVALID_VALUE), "join.client_name: control character"},
    {GBFIX_JOIN, 15, GB_EINVAL, E(INVALID_VALUE),
     "join.client_name: control character or bad UTF-8 at byte 6"},
    {GBFIX_JOIN, 16, GB_ERANGE, E(TOO_LARGE), "join.client_name: is longer than 256"},
    {GBFIX_JOIN, 17, GB_EINVAL, E(INVALID_VALUE), "join.capabilities[0].key: byte 0"},
    {GBFIX_JOIN, 18, GB_EINVAL, E(INVALID_VALUE),
     "join.capabilities[1].key: 'threads' appears twice"},
    {GBFIX_JOIN, 19, GB_ERANGE, E(TOO_LARGE), "join.capabilities: has 65 entries"},
    {GBFIX_JOIN, 20, GB_EINVAL, E(INVALID_VALUE), "join.capabilities[1].value: control"},
    {GBFIX_JOIN, 21, GB_EINVAL, E(INVALID_VALUE),
     "join.dataset: control character or bad UTF-8 at byte 0"},
    {GBFIX_WELCOME, 30, GB_EPROTO, E(VERSION), "welcome.protocol_version: 2 is not 1"},
    {GBFIX_WELCOME, 35, GB_EFORMAT, E(MALFORMED), "welcome.protocol_version: is 0"},
    {GBFIX_WELCOME, 31, GB_EFORMAT, E(MALFORMED), "welcome.client_id: is empty"},
    {GBFIX_WELCOME, 32, GB_EFORMAT, E(MALFORMED), "welcome.heartbeat_interval_ms: is 0"},
    {GBFIX_WELCOME, 33, GB_EINVAL, E(INVALID_VALUE),
     "welcome.heartbeat_timeout_ms: 5000 must be more"},
    {GBFIX_WELCOME, 34, GB_EINVAL, E(INVALID_VALUE),
     "welcome.heartbeat_interval_ms: 86400001 is more than"},
    {GBFIX_WELCOME, 36, GB_EINVAL, E(INVALID_VALUE), "welcome.shard.index: 3 is not below"},
    {GBFIX_WELCOME, 37, GB_EINVAL, E(INVALID_VALUE), "welcome.shard.clients: 100001 is outside"},
    {GBFIX_WELCOME, 38, GB_EFORMAT, E(MALFORMED), "welcome.shard.partition: is empty"},
    {GBFIX_TASK, 40, GB_EFORMAT, E(MALFORMED), "task.round: is 0"},
    {GBFIX_TASK, 41, GB_EFORMAT, E(MALFORMED), "task.task_id: is 0"},
    {GBFIX_TASK, 42, GB_EINVAL, E(INVALID_VALUE), "task: asks neither to train nor to evaluate"},
    {GBFIX_TASK, 43, GB_EFORMAT, E(MALFORMED), "task.model: is missing"},
    {GBFIX_TASK, 44, GB_EINVAL, E(INVALID_VALUE),
     "task.model: model snapshot parameter 2 of 15 is NaN"},
    {GBFIX_TASK, 45, GB_EINTEGRITY, E(INTEGRITY),
     "task.model: model snapshot parameters do not match"},
    {GBFIX_TASK, 46, GB_EPROTO, E(VERSION), "task.model: model snapshot format version 2"},
    {GBFIX_TASK, 47, GB_ESHAPE, E(SHAPE),
     "task.model: model snapshot holds 15 parameters but its spec implies 10"},
    {GBFIX_TASK, 48, GB_EFORMAT, E(MALFORMED), "task.train_config: is missing (train is set)"},
    {GBFIX_TASK, 49, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.epochs: 1001 is more than 1000"},
    {GBFIX_TASK, 50, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config: neither epochs nor max_steps"},
    {GBFIX_TASK, 51, GB_EFORMAT, E(MALFORMED), "task.train_config.batch_size: is 0"},
    {GBFIX_TASK, 52, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.batch_size: 65537 is more than 65536"},
    {GBFIX_TASK, 53, GB_EINVAL, E(INVALID_VALUE), "task.train_config.learning_rate: is 0"},
    {GBFIX_TASK, 54, GB_EINVAL, E(INVALID_VALUE), "task.train_config.learning_rate: is NaN"},
    {GBFIX_TASK, 55, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.learning_rate: -1 is outside [0, 1000]"},
    {GBFIX_TASK, 56, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.optimizer: value 7 is not one"},
    {GBFIX_TASK, 57, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.momentum: 1 is outside [0, 1)"},
    {GBFIX_TASK, 58, GB_EINVAL, E(INVALID_VALUE), "task.train_config.beta1: 1 is outside [0, 1)"},
    {GBFIX_TASK, 59, GB_EINVAL, E(INVALID_VALUE), "task.train_config.beta2: -0.1 is outside"},
    {GBFIX_TASK, 60, GB_EINVAL, E(INVALID_VALUE), "task.train_config.clip_norm: -1 is outside"},
    {GBFIX_TASK, 61, GB_EINVAL, E(INVALID_VALUE), "task.train_config.clip_norm: is infinite"},
    {GBFIX_TASK, 62, GB_EINVAL, E(INVALID_VALUE),
     "task.train_config.weight_decay: 2 is outside [0, 1]"},
    {GBFIX_TASK, 63, GB_EINVAL, E(INVALID_VALUE), "task.train_config.epsilon: -1e-08 is outside"},
    {GBFIX_TASK, 64, GB_EINVAL, E(INVALID_VALUE), "task.train_config.fedprox_mu: is NaN"},
    {GBFIX_TASK, 65, GB_EINVAL, E(INVALID_VALUE), "task.train_config.max_steps: 100000001 is more"},
    {GBFIX_TASK, 66, GB_EINVAL, E(INVALID_VALUE), "task.explain.method: value 9 is not one"},
    {GBFIX_TASK, 67, GB_EINVAL, E(INVALID_VALUE), "task.explain.classes[2]: class 3 appears twice"},
    {GBFIX_TASK, 68, GB_EINVAL, E(INVALID_VALUE),
     "task.explain.classes[1]: class 4096 is not below 4096"},
    {GBFIX_TASK, 69, GB_EINVAL, E(INVALID_VALUE), "task.explain.steps: 4097 is more than 4096"},
    {GBFIX_TASK, 70, GB_EINVAL, E(INVALID_VALUE), "task.explain.noise: is NaN"},
    {GBFIX_TASK, 71, GB_EFORMAT, E(MALFORMED),
     "task.model: model snapshot states 15 parameters but holds 56 bytes"},
    {GBFIX_TASK, 72, GB_EFORMAT, E(MALFORMED), "task.model: model snapshot SHA-256 is 31 bytes"},
    {GBFIX_TASK, 73, GB_ESPEC, E(SHAPE), "task.model: model snapshot: "},
    {GBFIX_UPDATE, 80, GB_EFORMAT, E(MALFORMED), "update.round: is 0"},
    {GBFIX_UPDATE, 81, GB_EFORMAT, E(MALFORMED), "update.task_id: is 0"},
    {GBFIX_UPDATE, 82, GB_EFORMAT, E(MALFORMED), "update.num_samples: is 0"},
    {GBFIX_UPDATE, 83, GB_EFORMAT, E(MALFORMED), "update.param_count: is 0"},
    {GBFIX_UPDATE, 84, GB_ERANGE, E(TOO_LARGE),
     "update.param_count: 1073741825 is more than 1073741824"},
    {GBFIX_UPDATE, 85, GB_ESHAPE, E(SHAPE), "update.delta: is 160 bytes, param_count 41 needs 164"},
    {GBFIX_UPDATE, 86, GB_EFORMAT, E(MALFORMED), "update.delta_sha256: is 31 bytes, expected 32"},
    {GBFIX_UPDATE, 87, GB_EINTEGRITY, E(INTEGRITY), "update.delta: does not match delta_sha256"},
    {GBFIX_UPDATE, 88, GB_EINVAL, E(INVALID_VALUE), "update.delta: value 17 of 40 is NaN"},
    {GBFIX_UPDATE, 89, GB_EINVAL, E(INVALID_VALUE), "update.delta: value 39 of 40 is infinite"},
    {GBFIX_UPDATE, 90, GB_EINVAL, E(INVALID_VALUE), "update.metrics[0].name: byte 2 is not one of"},
    {GBFIX_UPDATE, 91, GB_EINVAL, E(INVALID_VALUE), "update.metrics[1].value: is NaN"},
    {GBFIX_UPDATE, 92, GB_ERANGE, E(TOO_LARGE), "update.metrics: has 257 entries, more than 256"},
    {GBFIX_UPDATE, 93, GB_EINVAL, E(INVALID_VALUE),
     "update.explanation.method: value 0 is not one"},
    {GBFIX_UPDATE, 94, GB_ESHAPE, E(SHAPE),
     "update.explanation.feature_importance.data: is 20 bytes, the shape needs 6 floats"},
    {GBFIX_UPDATE, 95, GB_ESHAPE, E(SHAPE),
     "update.explanation.feature_importance.shape: dimension 1 is 0"},
    {GBFIX_UPDATE, 96, GB_ERANGE, E(TOO_LARGE),
     "update.explanation.feature_importance.shape: has 9 entries"},
    {GBFIX_UPDATE, 97, GB_EFORMAT, E(MALFORMED),
     "update.explanation.feature_importance.shape: is empty"},
    {GBFIX_UPDATE, 98, GB_EINVAL, E(INVALID_VALUE),
     "update.explanation.classes[1].mean_attribution.data: value 4 of 6 is NaN"},
    {GBFIX_UPDATE, 99, GB_ESHAPE, E(SHAPE),
     "update.explanation.classes[1].mean_attribution.shape: differs"},
    {GBFIX_UPDATE, 100, GB_EINVAL, E(INVALID_VALUE),
     "update.explanation.classes[1]: class 0 appears twice"},
    {GBFIX_UPDATE, 101, GB_EFORMAT, E(MALFORMED), "update.explanation.classes[0].count: is 0"},
    {GBFIX_UPDATE, 102, GB_EFORMAT, E(MALFORMED),
     "update.explanation: has neither classes nor feature_importance"},
    {GBFIX_UPDATE, 103, GB_ESHAPE, E(SHAPE),
     "update.explanation.feature_importance.data: is 24 bytes, the shape needs more "
     "than 2^62 floats"},
    {GBFIX_UPDATE, 104, GB_EFORMAT, E(MALFORMED),
     "update.explanation.classes[1].mean_attribution: is missing"},
    {GBFIX_UPDATE, 105, GB_EFORMAT, E(MALFORMED), "update.explanation.quality[0].name: is empty"},
    {GBFIX_EVAL, 110, GB_EINVAL, E(INVALID_VALUE), "eval_result.accuracy: 1.5 is outside [0, 1]"},
    {GBFIX_EVAL, 111, GB_EINVAL, E(INVALID_VALUE), "eval_result.loss: is NaN"},
    {GBFIX_EVAL, 112, GB_EINVAL, E(INVALID_VALUE), "eval_result.loss: -1 is outside"},
    {GBFIX_EVAL, 113, GB_EFORMAT, E(MALFORMED), "eval_result.num_samples: is 0"},
    {GBFIX_EVAL, 114, GB_EINVAL, E(INVALID_VALUE), "eval_result.metrics[0].value: is infinite"},
    {GBFIX_ACK, 120, GB_EFORMAT, E(MALFORMED), "ack.acked_sequence: is 0"},
    {GBFIX_ERROR, 130, GB_EINVAL, E(INVALID_VALUE),
     "error.message: control character or bad UTF-8 at byte 3"},
    {GBFIX_ERROR, 131, GB_ERANGE, E(TOO_LARGE), "error.message: is longer than 1024 bytes"},
    {GBFIX_ERROR, 132, GB_EINVAL, E(INVALID_VALUE), "error.retry_after_ms: 86400001 is more"},
    {GBFIX_HEARTBEAT, 140, GB_EINVAL, E(INVALID_VALUE),
     "heartbeat.progress: 1.5 is outside [0, 1]"},
    {GBFIX_HEARTBEAT, 141, GB_EINVAL, E(INVALID_VALUE), "heartbeat.state: value 0 is not one"},
    {GBFIX_HEARTBEAT, 142, GB_EINVAL, E(INVALID_VALUE), "heartbeat.state: value 9 is not one"},
    {GBFIX_HEARTBEAT, 143, GB_EINVAL, E(INVALID_VALUE), "heartbeat.progress: is NaN"},
    {GBFIX_PUBLICATION, 150, GB_EFORMAT, E(MALFORMED), "publication.publication: is empty"},
    {GBFIX_PUBLICATION, 151, GB_ERANGE, E(TOO_LARGE),
     "publication.signature: is 1025 bytes, more than 1024"},
    {GBFIX_PUBLICATION, 152, GB_EINVAL, E(INVALID_VALUE),
     "publication.signature_algorithm: byte 0"},
    {GBFIX_PUBLICATION, 153, GB_EFORMAT, E(MALFORMED), "publication.signer_certificate: is empty"},
    {GBFIX_PUBLICATION, 154, GB_EFORMAT, E(MALFORMED), "publication.signature_algorithm: is empty"},
    {GBFIX_CHUNK_KIND, 160, GB_EFORMAT, E(MALFORMED), "chunk.transfer_id: is 0"},
    {GBFIX_CHUNK_KIND, 161, GB_EFORMAT, E(MALFORMED), "chunk.count: is 0"},
    {GBFIX_CHUNK_KIND, 162, GB_EFORMAT, E(MALFORMED), "chunk.total_bytes: is 0"},
    {GBFIX_CHUNK_KIND, 163, GB_EINVAL, E(INVALID_VALUE), "chunk.index: 1 is not below count 1"},
    {GBFIX_CHUNK_KIND, 164, GB_EINVAL, E(INVALID_VALUE),
     "chunk.offset: 1 + 100 data bytes runs past total_bytes 100"},
    {GBFIX_CHUNK_KIND, 165, GB_EFORMAT, E(MALFORMED),
     "chunk.sha256: is 0 bytes in chunk 0 of 1 (the last chunk carries 32)"},
    {GBFIX_CHUNK_KIND, 166, GB_EFORMAT, E(MALFORMED),
     "chunk.sha256: is 32 bytes in chunk 0 of 2 (only the last"},
    {GBFIX_CHUNK_KIND, 167, GB_EFORMAT, E(MALFORMED), "chunk.data: is empty"},
    {GBFIX_CHUNK_KIND, 168, GB_EINVAL, E(INVALID_VALUE),
     "chunk.count: 101 chunks cannot carry 100 bytes"},
    {GBFIX_ENROLL_REQUEST, 170, GB_EFORMAT, E(MALFORMED), "enroll_request.token: is empty"},
    {GBFIX_ENROLL_REQUEST, 171, GB_ERANGE, E(TOO_LARGE), "enroll_request.token: is 1025 bytes"},
    {GBFIX_ENROLL_REQUEST, 172, GB_EFORMAT, E(MALFORMED), "enroll_request.csr: is empty"},
    {GBFIX_ENROLL_REQUEST, 173, GB_EINVAL, E(INVALID_VALUE),
     "enroll_request.client_name: byte 4 is not one of"},
    {GBFIX_ENROLL_REQUEST, 174, GB_ERANGE, E(TOO_LARGE),
     "enroll_request.client_name: is longer than 64"},
    {GBFIX_ENROLL_REQUEST, 175, GB_EFORMAT, E(MALFORMED), "enroll_request.client_name: is empty"},
    {GBFIX_ENROLL_REQUEST, 176, GB_ERANGE, E(TOO_LARGE),
     "enroll_request.csr: is 16385 bytes, more than 16384"},
    {GBFIX_ENROLL_RESPONSE, 180, GB_EFORMAT, E(MALFORMED), "enroll_response.certificate: is empty"},
    {GBFIX_ENROLL_RESPONSE, 181, GB_ERANGE, E(TOO_LARGE),
     "enroll_response.ca_certificate: is 16385 bytes"},
};

static void test_every_rule_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        gbfix_t f;
        gbfix_init(&f, c->kind);
        s_mutate(&f, c->which);
        size_t len;
        uint8_t *buf = gbfix_pack(&f, &len);
        s_case_id = c->which;
        s_expect_refused(buf, len, NULL, c->code, c->wire, c->needle);
        free(buf);

        /* Encode runs the same validation: Glassbox never sends it. */
        uint8_t *enc = (uint8_t *)&enc;
        size_t enc_len = 1;
        gb_error_t err;
        gb_error_clear(&err);
        int rc = gb_envelope_encode(&f.env, NULL, &enc, &enc_len, &err);
        if (rc != c->code || !strstr(err.msg, c->needle))
            fail_msg("case %d: encode gave %d '%s'", c->which, rc, err.msg);
        assert_null(enc);
        assert_int_equal(enc_len, 0);
        assert_int_equal(gb_envelope_validate(&f.env, NULL, &err), c->code);
    }
}

/* ---- limits --------------------------------------------------------------- */

static void test_size_limits(void **state)
{
    (void)state;
    gbfix_t f;
    gbfix_init(&f, GBFIX_PUBLICATION);
    size_t len;
    uint8_t *buf = gbfix_pack(&f, &len);

    /* a frame over the limit is refused before it is unpacked */
    gb_envelope_limits_t small = {.max_bytes = len - 1};
    s_expect_refused(buf, len, &small, GB_ERANGE, E(TOO_LARGE), "more than the limit of");
    gb_envelope_limits_t exact = {.max_bytes = len};
    Glassbox__Envelope *out = s_decode_ok(buf, len, &exact);
    gb_envelope_free(&out);
    uint8_t *big = calloc(GB_ENVELOPE_MAX_BYTES + 1, 1);
    s_expect_refused(big, GB_ENVELOPE_MAX_BYTES + 1, NULL, GB_ERANGE, E(TOO_LARGE),
                     "is 4194305 bytes, more than the limit of 4194304");

    /* encode refuses what would not fit */
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    gb_error_t err;
    assert_int_equal(gb_envelope_encode(&f.env, &small, &enc, &enc_len, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "envelope: would be"));
    assert_null(enc);

    /* a publication may be as large as the frame allows, with a raised limit */
    f.pub.publication.data = big;
    f.pub.publication.len = GB_ENVELOPE_MAX_BYTES;
    assert_int_equal(gb_envelope_encode(&f.env, NULL, &enc, &enc_len, &err), GB_ERANGE);
    gb_envelope_limits_t large = {.max_bytes = 2 * GB_ENVELOPE_MAX_BYTES};
    assert_int_equal(gb_envelope_encode(&f.env, &large, &enc, &enc_len, &err), 0);
    s_expect_refused(enc, enc_len, NULL, GB_ERANGE, E(TOO_LARGE), "more than the limit");
    out = s_decode_ok(enc, enc_len, &large);
    assert_int_equal(out->publication->publication.len, GB_ENVELOPE_MAX_BYTES);
    gb_envelope_free(&out);
    gb_free(enc);
    free(big);
    free(buf);

    /* A reassembled transfer may not be a chunk again. */
    gbfix_init(&f, GBFIX_CHUNK_KIND);
    buf = gbfix_pack(&f, &len);
    gb_envelope_limits_t re = {.reassembled = true};
    s_expect_refused(buf, len, &re, GB_EFORMAT, E(MALFORMED),
                     "chunk: a reassembled transfer may not itself be a chunk");
    free(buf);
}

/* Repeated varints unpack to four bytes each: a frame of nothing but class
 * numbers would make protobuf-c allocate four times its size. The budget
 * stops it. */
static void test_unpack_budget(void **state)
{
    (void)state;
    gbfix_t f;
    gbfix_init(&f, GBFIX_TASK);
    size_t n = 1 << 20;
    uint32_t *classes = calloc(n, sizeof *classes);
    f.explain.classes = classes;
    f.explain.n_classes = n;
    size_t len;
    uint8_t *buf = gbfix_pack(&f, &len);
    assert_true(len < GB_ENVELOPE_MAX_BYTES);
    s_expect_refused(buf, len, NULL, GB_ERANGE, E(TOO_LARGE), "of memory to unpack");
    free(buf);
    free(classes);
}

/* Garbage of every kind is refused and nothing leaks (ASan). */
static void test_garbage_refused(void **state)
{
    (void)state;
    s_expect_refused(NULL, 0, NULL, GB_EFORMAT, E(MALFORMED), "envelope.protocol_version");
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    s_expect_refused(junk, sizeof junk, NULL, GB_EFORMAT, E(MALFORMED), "do not unpack");
    /* a body field number from the future: version and sequence fine */
    const uint8_t future[] = {0x08, 0x01, 0x10, 0x05, 0xb2, 0x01, 0x00}; /* field 22, empty */
    s_expect_refused(future, sizeof future, NULL, GB_EFORMAT, E(MALFORMED),
                     "envelope.body: is missing, or a kind this version does not know");
    /* a wrong wire type for the body */
    const uint8_t wrong[] = {0x08, 0x01, 0x10, 0x05, 0x98, 0x01, 0x05}; /* field 19 varint */
    s_expect_refused(wrong, sizeof wrong, NULL, GB_EFORMAT, E(MALFORMED), NULL);
    Glassbox__Envelope *out = NULL;
    gb_error_t err;
    assert_int_equal(gb_envelope_decode(NULL, 5, NULL, &out, &err), GB_EINVAL);
    assert_int_equal(gb_envelope_decode(junk, 1, NULL, NULL, &err), GB_EINVAL);
}

/* ---- helpers -------------------------------------------------------------- */

static void test_error_code_mapping(void **state)
{
    (void)state;
    assert_int_equal(gb_envelope_error_code(0), E(UNSPECIFIED));
    assert_int_equal(gb_envelope_error_code(GB_EPROTO), E(VERSION));
    assert_int_equal(gb_envelope_error_code(GB_EFORMAT), E(MALFORMED));
    assert_int_equal(gb_envelope_error_code(GB_ERANGE), E(TOO_LARGE));
    assert_int_equal(gb_envelope_error_code(GB_EINVAL), E(INVALID_VALUE));
    assert_int_equal(gb_envelope_error_code(GB_ESHAPE), E(SHAPE));
    assert_int_equal(gb_envelope_error_code(GB_ESPEC), E(SHAPE));
    assert_int_equal(gb_envelope_error_code(GB_EINTEGRITY), E(INTEGRITY));
    assert_int_equal(gb_envelope_error_code(GB_ENOMEM), E(INTERNAL));
    assert_int_equal(gb_envelope_error_code(GB_ECRYPTO), E(INTERNAL));
    assert_int_equal(gb_envelope_error_code(-1000), E(INTERNAL));
    assert_string_equal(gb_envelope_error_name(E(TOO_LARGE)), "ERROR_TOO_LARGE");
    assert_string_equal(gb_envelope_error_name(E(INTERNAL)), "ERROR_INTERNAL");
    assert_string_equal(gb_envelope_error_name(E(UNSPECIFIED)), "ERROR_UNSPECIFIED");
    assert_string_equal(gb_envelope_error_name((Glassbox__ErrorCode)16), "ERROR_UNKNOWN");
    assert_string_equal(gb_envelope_error_name(E(NORM)), "ERROR_NORM");
    assert_string_equal(gb_envelope_error_name((Glassbox__ErrorCode)-1), "ERROR_UNKNOWN");

    const char *names[GBFIX_KINDS] = {"join", "welcome", "task", "update", "eval_result", "ack",
                                      "error", "heartbeat", "publication", "chunk",
                                      "enroll_request", "enroll_response"};
    for (int kind = 0; kind < GBFIX_KINDS; kind++) {
        gbfix_t f;
        gbfix_init(&f, kind);
        assert_string_equal(gb_envelope_body_name(&f.env), names[kind]);
    }
    assert_string_equal(gb_envelope_body_name(NULL), "none");
}

static void test_make_error_and_ack(void **state)
{
    (void)state;
    gb_error_t err;
    /* A reply quoting hostile input still passes validation. */
    char hostile[2 * GB_ENVELOPE_MAX_ERROR_MESSAGE];
    memset(hostile, 'x', sizeof hostile - 1);
    hostile[sizeof hostile - 1] = 0;
    memcpy(hostile, "bad\x01\xc0\xaf\x7f ok \xe2\x9c\x93", 14);
    memcpy(hostile + GB_ENVELOPE_MAX_ERROR_MESSAGE - 1, "\xe2\x9c\x93", 3); /* cut in two */
    Glassbox__Envelope *e = gb_envelope_make_error(9, E(TOO_LARGE), 4, hostile, &err);
    assert_non_null(e);
    assert_int_equal(e->error->code, E(TOO_LARGE));
    assert_int_equal(e->error->in_reply_to, 4);
    assert_int_equal(strlen(e->error->message), GB_ENVELOPE_MAX_ERROR_MESSAGE);
    assert_memory_equal(e->error->message, "bad??\?? ok \xe2\x9c\x93", 14);
    assert_int_equal(e->error->message[GB_ENVELOPE_MAX_ERROR_MESSAGE - 1], '?');
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(gb_envelope_encode(e, NULL, &buf, &len, &err), 0);
    Glassbox__Envelope *back = s_decode_ok(buf, len, NULL);
    assert_string_equal(back->error->message, e->error->message);
    assert_int_equal(back->sequence, 9);
    gb_envelope_free(&back);
    gb_free(buf);
    gb_envelope_free(&e);

    /* unknown codes become ERROR_INTERNAL, NULL message is empty */
    e = gb_envelope_make_error(1, (Glassbox__ErrorCode)77, 0, NULL, &err);
    assert_int_equal(e->error->code, E(INTERNAL));
    assert_string_equal(e->error->message, "");
    assert_int_equal(gb_envelope_validate(e, NULL, &err), 0);
    gb_envelope_free(&e);
    e = gb_envelope_make_error(1, E(UNSPECIFIED), 0, "x", &err);
    assert_int_equal(e->error->code, E(INTERNAL));
    gb_envelope_free(&e);
    assert_null(gb_envelope_make_error(0, E(BUSY), 0, "x", &err));
    assert_int_equal(err.code, GB_EINVAL);

    Glassbox__Envelope *a = gb_envelope_make_ack(3, 2, 5, 17, &err);
    assert_non_null(a);
    assert_int_equal(gb_envelope_encode(a, NULL, &buf, &len, &err), 0);
    back = s_decode_ok(buf, len, NULL);
    assert_int_equal(back->ack->acked_sequence, 2);
    assert_int_equal(back->ack->round, 5);
    assert_int_equal(back->ack->task_id, 17);
    gb_envelope_free(&back);
    gb_free(buf);
    gb_envelope_free(&a);
    assert_null(gb_envelope_make_ack(0, 2, 0, 0, &err));
    assert_non_null(strstr(err.msg, "sequence is 0"));
    assert_null(gb_envelope_make_ack(1, 0, 0, 0, &err));
    assert_non_null(strstr(err.msg, "acknowledge"));

    /* misuse */
    Glassbox__Ack not_env = GLASSBOX__ACK__INIT;
    assert_int_equal(gb_envelope_validate((Glassbox__Envelope *)&not_env, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_envelope_validate(NULL, NULL, &err), GB_EINVAL);
    gbfix_t f;
    gbfix_init(&f, GBFIX_ACK);
    assert_int_equal(gb_envelope_encode(&f.env, NULL, NULL, &len, &err), GB_EINVAL);
    f.env.ack = NULL;
    assert_int_equal(gb_envelope_validate(&f.env, NULL, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "ack: is missing"));
}

static void test_alloc_failures(void **state)
{
    (void)state;
    for (int kind = 0; kind < GBFIX_KINDS; kind++) {
        gbfix_t f;
        gbfix_init(&f, kind);
        size_t len;
        uint8_t *buf = gbfix_pack(&f, &len);
        int points = 0;
        for (long k = 1;; k++) {
            Glassbox__Envelope *out = NULL;
            gb_error_t err;
            gb_error_clear(&err);
            gb_alloc_fail_after(k);
            int rc = gb_envelope_decode(buf, len, NULL, &out, &err);
            gb_alloc_fail_after(0);
            if (rc == 0) {
                gb_envelope_free(&out);
                break;
            }
            if (rc != GB_ENOMEM)
                fail_msg("kind %d, allocation %ld: %d %s", kind, k, rc, err.msg);
            assert_int_equal(gb_envelope_error_code(rc), E(INTERNAL));
            assert_null(out);
            points++;
        }
        assert_true(points >= 2);
        for (long k = 1;; k++) {
            uint8_t *enc = NULL;
            size_t enc_len = 0;
            gb_error_t err;
            gb_alloc_fail_after(k);
            int rc = gb_envelope_encode(&f.env, NULL, &enc, &enc_len, &err);
            gb_alloc_fail_after(0);
            if (rc == 0) {
                assert_memory_equal(enc, buf, len);
                gb_free(enc);
                break;
            }
            assert_int_equal(rc, GB_ENOMEM);
            assert_null(enc);
        }
        free(buf);
    }
    for (long k = 1;; k++) {
        gb_error_t err;
        gb_alloc_fail_after(k);
        Glassbox__Envelope *e = gb_envelope_make_error(1, E(BUSY), 0, "busy", &err);
        Glassbox__Envelope *a = e ? gb_envelope_make_ack(2, 1, 0, 0, &err) : NULL;
        gb_alloc_fail_after(0);
        bool done = e && a;
        if (!done)
            assert_int_equal(err.code, GB_ENOMEM);
        gb_envelope_free(&e);
        gb_envelope_free(&a);
        if (done)
            break;
    }
}

/* Fields this version does not know are skipped (an older reader of a newer
 * message), but one numbered 0 is refused: protobuf-c keeps it and would pack
 * it again into bytes its own parser refuses (found by fuzz_envelope). */
static void test_unknown_fields(void **state)
{
    (void)state;
    gb_error_t err = {0};
    Glassbox__Envelope *ack = gb_envelope_make_ack(3, 2, 0, 0, &err);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(gb_envelope_encode(ack, NULL, &buf, &len, &err), 0);
    uint8_t more[64];
    memcpy(more, buf, len);
    /* field 99, varint 7: unknown, kept, and packed again intact */
    const uint8_t f99[] = {0x98, 0x06, 0x07};
    memcpy(more + len, f99, sizeof f99);
    Glassbox__Envelope *env = NULL;
    assert_int_equal(gb_envelope_decode(more, len + sizeof f99, NULL, &env, &err), 0);
    assert_int_equal(env->base.n_unknown_fields, 1);
    uint8_t *again = NULL;
    size_t again_len = 0;
    assert_int_equal(gb_envelope_encode(env, NULL, &again, &again_len, &err), 0);
    gb_envelope_free(&env);
    assert_int_equal(gb_envelope_decode(again, again_len, NULL, &env, &err), 0);
    gb_envelope_free(&env);
    gb_free(again);
    /* field 0, fixed32: refused, at the top (protobuf-c itself refuses it
     * there) and inside the Ack (where it keeps it and we refuse it) */
    const uint8_t f0[] = {0x05, 1, 2, 3, 4};
    memcpy(more + len, f0, sizeof f0);
    assert_int_equal(gb_envelope_decode(more, len + sizeof f0, NULL, &env, &err), GB_EFORMAT);
    assert_null(env);
    /* the fuzzer's find: a tag that protobuf-c reads as field 0 and keeps */
    char *path = gb_test_source_path("tests/fuzz/corpus/envelope/regression-field-0");
    uint8_t *found = NULL;
    size_t found_len = 0;
    assert_int_equal(gb_file_read_all(path, 1 << 16, &found, &found_len, &err), 0);
    assert_int_equal(gb_envelope_decode(found, found_len, NULL, &env, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "field numbered 0"));
    assert_null(env);
    gb_free(found);
    free(path);
    gb_free(buf);
    gb_envelope_free(&ack);
}

int main(void)
{
    /* Every refusal logs a warning; keep the test output readable. */
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_body),
        cmocka_unit_test(test_decoded_fields),
        cmocka_unit_test(test_error_codes_from_newer_peers),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_every_rule_refused),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_unpack_budget),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_error_code_mapping),
        cmocka_unit_test(test_make_error_and_ack),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_unknown_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
