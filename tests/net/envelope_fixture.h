/* A valid Envelope of every body kind, built field by field with the
 * generated protobuf-c structs, for the envelope and chunk tests and the fuzz
 * corpus generator (tests/fuzz/make_corpus.c). Test-only code, header-only so
 * that both a cmocka test and the generator can include it without a
 * library of their own.
 *
 * Every field a validator looks at holds a plausible value, so a test can
 * break exactly one of them and see exactly that refusal. Hashes (the
 * model's params_sha256, the update's delta_sha256, the chunk's sha256) are
 * recomputed by gbfix_pack unless the test says to keep a stale one.
 * Assumes a little-endian host (float arrays are used as wire bytes). */
#ifndef GB_TEST_ENVELOPE_FIXTURE_H
#define GB_TEST_ENVELOPE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "glassbox.pb-c.h"

#define GBFIX_MODEL_SPEC "input 4\ndense 3\n" /* 15 parameters */
#define GBFIX_MODEL_PARAMS 15
#define GBFIX_DELTA 40     /* update parameters */
#define GBFIX_MAP 6        /* floats per attribution map (shape 2 x 3) */
#define GBFIX_CHUNK 100    /* chunk data bytes */

/* Body kinds, in Envelope field order. */
enum {
    GBFIX_JOIN,
    GBFIX_WELCOME,
    GBFIX_TASK,
    GBFIX_UPDATE,
    GBFIX_EVAL,
    GBFIX_ACK,
    GBFIX_ERROR,
    GBFIX_HEARTBEAT,
    GBFIX_PUBLICATION,
    GBFIX_CHUNK_KIND,
    GBFIX_ENROLL_REQUEST,
    GBFIX_ENROLL_RESPONSE,
    GBFIX_KINDS
};

typedef struct {
    Glassbox__Envelope env;
    /* join */
    Glassbox__Join join;
    Glassbox__KeyValue caps[2];
    Glassbox__KeyValue *capp[2];
    /* welcome */
    Glassbox__Welcome welcome;
    /* task */
    Glassbox__Task task;
    Glassbox__ModelSnapshot model;
    Glassbox__KeyValue model_meta;
    Glassbox__KeyValue *model_metap[1];
    float model_params[GBFIX_MODEL_PARAMS];
    uint8_t model_sha[32];
    Glassbox__TrainConfig train;
    Glassbox__ExplainConfig explain;
    uint32_t explain_classes[3];
    /* update */
    Glassbox__Update update;
    float delta[GBFIX_DELTA];
    uint8_t delta_sha[32];
    Glassbox__Metric metrics[2];
    Glassbox__Metric *metricp[2];
    Glassbox__Explanation expl;
    Glassbox__ClassAttribution cls[2];
    Glassbox__ClassAttribution *clsp[2];
    Glassbox__Tensor fi, maps[2];
    uint32_t fi_shape[2], map_shape[2][2];
    float fi_data[GBFIX_MAP], map_data[2][GBFIX_MAP];
    Glassbox__Metric quality;
    Glassbox__Metric *qualityp[1];
    /* the rest */
    Glassbox__EvalResult eval;
    Glassbox__Metric eval_metric;
    Glassbox__Metric *eval_metricp[1];
    Glassbox__Ack ack;
    Glassbox__Error error;
    Glassbox__Heartbeat heartbeat;
    Glassbox__SignedPublication pub;
    uint8_t pub_bytes[200], pub_sig[64], pub_cert[300];
    Glassbox__TensorChunk chunk;
    uint8_t chunk_data[GBFIX_CHUNK], chunk_sha[32];
    Glassbox__EnrollRequest enroll_req;
    uint8_t token[32], csr[250];
    Glassbox__EnrollResponse enroll_resp;
    uint8_t cert[400], ca_cert[380];
    /* test controls */
    bool keep_model_sha; /* gbfix_pack leaves model_sha as it is */
    bool keep_delta_sha; /* ... delta_sha */
    bool keep_chunk_sha; /* ... chunk_sha */
} gbfix_t;

static inline void gbfix_sha(const void *data, size_t len, uint8_t out[32])
{
    unsigned n = 0;
    if (!EVP_Digest(len ? data : "", len, out, &n, EVP_sha256(), NULL) || n != 32)
        abort(); /* test code: OpenSSL broken */
}

static inline void gbfix_bytes(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31u + i * 7u);
}

static inline void gbfix_tensor(Glassbox__Tensor *t, uint32_t *shape, float *data, float base)
{
    glassbox__tensor__init(t);
    shape[0] = 2;
    shape[1] = 3;
    t->n_shape = 2;
    t->shape = shape;
    for (int i = 0; i < GBFIX_MAP; i++)
        data[i] = base + 0.125f * (float)i;
    t->data.data = (uint8_t *)data;
    t->data.len = GBFIX_MAP * sizeof(float);
}

/* Fills f with a valid envelope of body `kind`, sequence 7. */
static inline void gbfix_init(gbfix_t *f, int kind)
{
    memset(f, 0, sizeof *f);
    glassbox__envelope__init(&f->env);
    f->env.protocol_version = 1;
    f->env.sequence = 7;

    glassbox__join__init(&f->join);
    f->join.min_protocol_version = 1;
    f->join.max_protocol_version = 2;
    f->join.client_name = "client-3";
    f->join.software_version = "glassbox 0.1.0";
    f->join.train_samples = 6000;
    f->join.test_samples = 1000;
    f->join.dataset = "fashion-mnist iid 3/10 \xe2\x9c\x93";
    f->join.last_round = 4;
    for (int i = 0; i < 2; i++) {
        glassbox__key_value__init(&f->caps[i]);
        f->capp[i] = &f->caps[i];
    }
    f->caps[0].key = "threads";
    f->caps[0].value = "2";
    f->caps[1].key = "explain.methods";
    f->caps[1].value = "ig,saliency";
    f->join.n_capabilities = 2;
    f->join.capabilities = f->capp;

    glassbox__welcome__init(&f->welcome);
    f->welcome.protocol_version = 1;
    f->welcome.client_id = "c-0003";
    f->welcome.federation = "demo";
    f->welcome.current_round = 5;
    f->welcome.heartbeat_interval_ms = 5000;
    f->welcome.heartbeat_timeout_ms = 20000;
    f->welcome.software_version = "glassbox 0.1.0";

    glassbox__task__init(&f->task);
    glassbox__model_snapshot__init(&f->model);
    f->model.format_version = 1;
    f->model.spec = GBFIX_MODEL_SPEC;
    for (int i = 0; i < GBFIX_MODEL_PARAMS; i++)
        f->model_params[i] = 0.05f * (float)i - 0.3f;
    f->model.params.data = (uint8_t *)f->model_params;
    f->model.params.len = sizeof f->model_params;
    f->model.param_count = GBFIX_MODEL_PARAMS;
    f->model.round = 4;
    glassbox__key_value__init(&f->model_meta);
    f->model_meta.key = "dataset";
    f->model_meta.value = "fashion-mnist";
    f->model_metap[0] = &f->model_meta;
    f->model.n_metadata = 1;
    f->model.metadata = f->model_metap;
    f->model.params_sha256.data = f->model_sha;
    f->model.params_sha256.len = 32;
    glassbox__train_config__init(&f->train);
    f->train.epochs = 2;
    f->train.batch_size = 32;
    f->train.learning_rate = 0.01;
    f->train.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM;
    f->train.momentum = 0.9;
    f->train.weight_decay = 5e-4;
    f->train.beta1 = 0.9;
    f->train.beta2 = 0.999;
    f->train.epsilon = 1e-8;
    f->train.fedprox_mu = 0.01;
    f->train.clip_norm = 10;
    f->train.seed = 12345;
    glassbox__explain_config__init(&f->explain);
    f->explain.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    f->explain.max_samples = 256;
    f->explain.steps = 32;
    f->explain.noise = 0.1;
    f->explain_classes[0] = 0;
    f->explain_classes[1] = 3;
    f->explain_classes[2] = 9;
    f->explain.n_classes = 3;
    f->explain.classes = f->explain_classes;
    f->task.round = 5;
    f->task.task_id = 17;
    f->task.train = 1;
    f->task.evaluate = 1;
    f->task.model = &f->model;
    f->task.train_config = &f->train;
    f->task.explain = &f->explain;
    f->task.deadline_unix_ms = 1700000000000ull;

    glassbox__update__init(&f->update);
    f->update.round = 5;
    f->update.task_id = 17;
    f->update.num_samples = 6000;
    for (int i = 0; i < GBFIX_DELTA; i++)
        f->delta[i] = (i % 2 ? -1e-3f : 2e-3f) * (float)(i + 1);
    f->update.delta.data = (uint8_t *)f->delta;
    f->update.delta.len = sizeof f->delta;
    f->update.param_count = GBFIX_DELTA;
    f->update.delta_sha256.data = f->delta_sha;
    f->update.delta_sha256.len = 32;
    for (int i = 0; i < 2; i++) {
        glassbox__metric__init(&f->metrics[i]);
        f->metricp[i] = &f->metrics[i];
    }
    f->metrics[0].name = "loss";
    f->metrics[0].value = 0.42;
    f->metrics[1].name = "accuracy/class_3";
    f->metrics[1].value = 0.875;
    f->update.n_metrics = 2;
    f->update.metrics = f->metricp;
    glassbox__explanation__init(&f->expl);
    f->expl.method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    f->expl.round = 5;
    for (int i = 0; i < 2; i++) {
        glassbox__class_attribution__init(&f->cls[i]);
        gbfix_tensor(&f->maps[i], f->map_shape[i], f->map_data[i], (float)i);
        f->cls[i].class_index = (uint32_t)(i * 3);
        f->cls[i].count = 100 + (uint64_t)i;
        f->cls[i].mean_attribution = &f->maps[i];
        f->clsp[i] = &f->cls[i];
    }
    f->expl.n_classes = 2;
    f->expl.classes = f->clsp;
    gbfix_tensor(&f->fi, f->fi_shape, f->fi_data, 0.5f);
    f->expl.feature_importance = &f->fi;
    f->expl.count = 201;
    glassbox__metric__init(&f->quality);
    f->quality.name = "completeness_error";
    f->quality.value = 1e-4;
    f->qualityp[0] = &f->quality;
    f->expl.n_quality = 1;
    f->expl.quality = f->qualityp;
    f->update.explanation = &f->expl;

    glassbox__eval_result__init(&f->eval);
    f->eval.round = 5;
    f->eval.task_id = 18;
    f->eval.num_samples = 1000;
    f->eval.loss = 0.51;
    f->eval.accuracy = 0.82;
    glassbox__metric__init(&f->eval_metric);
    f->eval_metric.name = "accuracy/class_0";
    f->eval_metric.value = 0.9;
    f->eval_metricp[0] = &f->eval_metric;
    f->eval.n_metrics = 1;
    f->eval.metrics = f->eval_metricp;

    glassbox__ack__init(&f->ack);
    f->ack.acked_sequence = 6;
    f->ack.round = 5;
    f->ack.task_id = 17;

    glassbox__error__init(&f->error);
    f->error.code = GLASSBOX__ERROR_CODE__ERROR_BUSY;
    f->error.message = "coordinator busy: 64 handshakes in progress";
    f->error.in_reply_to = 3;
    f->error.retry_after_ms = 500;

    glassbox__heartbeat__init(&f->heartbeat);
    f->heartbeat.sent_unix_ms = 1700000000123ull;
    f->heartbeat.state = GLASSBOX__CLIENT_STATE__CLIENT_STATE_TRAINING;
    f->heartbeat.round = 5;
    f->heartbeat.progress = 0.25;

    glassbox__signed_publication__init(&f->pub);
    gbfix_bytes(f->pub_bytes, sizeof f->pub_bytes, 1);
    gbfix_bytes(f->pub_sig, sizeof f->pub_sig, 2);
    gbfix_bytes(f->pub_cert, sizeof f->pub_cert, 3);
    f->pub.publication.data = f->pub_bytes;
    f->pub.publication.len = sizeof f->pub_bytes;
    f->pub.signature.data = f->pub_sig;
    f->pub.signature.len = sizeof f->pub_sig;
    f->pub.signature_algorithm = "ed25519";
    f->pub.signer_certificate.data = f->pub_cert;
    f->pub.signer_certificate.len = sizeof f->pub_cert;

    glassbox__tensor_chunk__init(&f->chunk);
    gbfix_bytes(f->chunk_data, sizeof f->chunk_data, 4);
    f->chunk.transfer_id = 1;
    f->chunk.index = 0;
    f->chunk.count = 1;
    f->chunk.offset = 0;
    f->chunk.total_bytes = GBFIX_CHUNK;
    f->chunk.data.data = f->chunk_data;
    f->chunk.data.len = GBFIX_CHUNK;
    f->chunk.sha256.data = f->chunk_sha;
    f->chunk.sha256.len = 32;

    glassbox__enroll_request__init(&f->enroll_req);
    gbfix_bytes(f->token, sizeof f->token, 5);
    gbfix_bytes(f->csr, sizeof f->csr, 6);
    f->enroll_req.token.data = f->token;
    f->enroll_req.token.len = sizeof f->token;
    f->enroll_req.csr.data = f->csr;
    f->enroll_req.csr.len = sizeof f->csr;
    f->enroll_req.client_name = "edge-17.example";

    glassbox__enroll_response__init(&f->enroll_resp);
    gbfix_bytes(f->cert, sizeof f->cert, 7);
    gbfix_bytes(f->ca_cert, sizeof f->ca_cert, 8);
    f->enroll_resp.certificate.data = f->cert;
    f->enroll_resp.certificate.len = sizeof f->cert;
    f->enroll_resp.ca_certificate.data = f->ca_cert;
    f->enroll_resp.ca_certificate.len = sizeof f->ca_cert;

    switch (kind) {
    case GBFIX_JOIN:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_JOIN, f->env.join = &f->join;
        break;
    case GBFIX_WELCOME:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_WELCOME, f->env.welcome = &f->welcome;
        break;
    case GBFIX_TASK:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_TASK, f->env.task = &f->task;
        break;
    case GBFIX_UPDATE:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_UPDATE, f->env.update = &f->update;
        break;
    case GBFIX_EVAL:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_EVAL_RESULT, f->env.eval_result = &f->eval;
        break;
    case GBFIX_ACK:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_ACK, f->env.ack = &f->ack;
        break;
    case GBFIX_ERROR:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_ERROR, f->env.error = &f->error;
        break;
    case GBFIX_HEARTBEAT:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_HEARTBEAT, f->env.heartbeat = &f->heartbeat;
        break;
    case GBFIX_PUBLICATION:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_PUBLICATION, f->env.publication = &f->pub;
        break;
    case GBFIX_CHUNK_KIND:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_CHUNK, f->env.chunk = &f->chunk;
        break;
    case GBFIX_ENROLL_REQUEST:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_ENROLL_REQUEST;
        f->env.enroll_request = &f->enroll_req;
        break;
    case GBFIX_ENROLL_RESPONSE:
        f->env.body_case = GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE;
        f->env.enroll_response = &f->enroll_resp;
        break;
    default:
        abort(); /* test code: no such kind */
    }
}

/* Recomputes the hashes (unless told to keep them) and packs f->env without
 * any validation into a malloc'd buffer (*len bytes). */
static inline uint8_t *gbfix_pack(gbfix_t *f, size_t *len)
{
    if (!f->keep_model_sha)
        gbfix_sha(f->model.params.data, f->model.params.len, f->model_sha);
    if (!f->keep_delta_sha)
        gbfix_sha(f->update.delta.data, f->update.delta.len, f->delta_sha);
    if (!f->keep_chunk_sha)
        gbfix_sha(f->chunk.data.data, f->chunk.data.len, f->chunk_sha);
    *len = glassbox__envelope__get_packed_size(&f->env);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf || glassbox__envelope__pack(&f->env, buf) != *len)
        abort(); /* test code */
    return buf;
}

#endif
