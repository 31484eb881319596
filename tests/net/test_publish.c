/* Tests for net/publish (signed publications over PUB/SUB) and the
 * Publication codec of net/envelope: a CA made by gb_ca_init, the
 * coordinator's key signing, subscribers over TCP on loopback.
 *
 * Covered: a publication arrives verified and decoded; a replay of the same
 * round and an older round are refused; a gap in rounds is accepted; a
 * subscriber trusting another CA, or expecting another coordinator name,
 * accepts nothing; raw PUB peers sending a tampered signature, a wrong topic,
 * a three-frame message, garbage, and a correctly signed but invalid
 * Publication are all refused while the next good one still arrives; the
 * Publication checks (round, model, participants, aggregator, distances)
 * and its flagged clients with their bounds. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "engine/model.h"
#include "net/envelope.h"
#include "net/pki.h"
#include "net/publication.h"
#include "net/publish.h"
#include "net/snapshot.h"
#include "util/alloc.h"

#define COORD "coordinator.test"

typedef struct {
    char *base;                   /* temporary directory */
    char ca_file[700];            /* the federation CA */
    char other_ca_file[700];      /* another CA */
    gb_signer_t *signer;          /* the coordinator's key */
    gb_signer_t *other_signer;    /* the other CA's coordinator */
    void *ctx;                    /* ZeroMQ */
    Glassbox__ModelSnapshot *model; /* a valid model message */
    gb_publisher_t *pub;          /* the publisher under test */
    gb_subscriber_t *sub[2];      /* subscribers under test */
    void *raw;                    /* a raw PUB socket, or NULL */
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    gb_error_t err = {0};
    f->base = gb_test_mkdtemp();
    char dir[512], key[600], cert[600];
    const char *names[2] = {"fed", "other"};
    for (int i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s/%s", f->base, names[i]);
        assert_int_equal(gb_ca_init(dir, names[i], COORD, 30, &err), 0);
        snprintf(key, sizeof key, "%s/%s", dir, GB_CA_COORD_KEY_FILE);
        snprintf(cert, sizeof cert, "%s/%s", dir, GB_CA_COORD_CERT_FILE);
        gb_signer_t *s = gb_signer_load(key, cert, &err);
        assert_non_null(s);
        if (i == 0) {
            f->signer = s;
            snprintf(f->ca_file, sizeof f->ca_file, "%s/%s", dir, GB_CA_CERT_FILE);
        } else {
            f->other_signer = s;
            snprintf(f->other_ca_file, sizeof f->other_ca_file, "%s/%s", dir, GB_CA_CERT_FILE);
        }
    }
    gb_model_t *m = gb_model_new("mlp", &err);
    assert_non_null(m);
    gb_snapshot_t *snap = gb_snapshot_from_model(m, 1, &err);
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(gb_snapshot_encode(snap, &bytes, &len, &err), 0);
    f->model = glassbox__model_snapshot__unpack(NULL, len, bytes);
    assert_non_null(f->model);
    gb_free(bytes);
    gb_snapshot_destroy(&snap);
    gb_model_destroy(&m);
    f->ctx = zmq_ctx_new();
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    gb_publisher_destroy(&f->pub);
    gb_subscriber_destroy(&f->sub[0]);
    gb_subscriber_destroy(&f->sub[1]);
    if (f->raw)
        zmq_close(f->raw);
    zmq_ctx_term(f->ctx);
    glassbox__model_snapshot__free_unpacked(f->model, NULL);
    gb_signer_destroy(&f->signer);
    gb_signer_destroy(&f->other_signer);
    gb_test_rmtree(f->base);
    free(f->base);
    free(f);
    return 0;
}

/* A packed, valid Publication of `round`. */
static uint8_t *s_publication(fixture_t *f, uint64_t round, size_t *len)
{
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    Glassbox__Metric acc = GLASSBOX__METRIC__INIT;
    Glassbox__Metric *metrics[1] = {&acc};
    Glassbox__KeyValue d1 = GLASSBOX__KEY_VALUE__INIT, d2 = GLASSBOX__KEY_VALUE__INIT;
    Glassbox__KeyValue *dist[2] = {&d1, &d2};
    acc.name = "accuracy";
    acc.value = 0.81;
    d1.key = "alice";
    d1.value = "0.125";
    d2.key = "Bob-2";
    d2.value = "1e-3";
    p.round = round;
    p.model = f->model;
    p.n_metrics = 1;
    p.metrics = metrics;
    p.participants = 2;
    p.aggregator = "fedavg";
    p.n_explanation_distance = 2;
    p.explanation_distance = dist;
    Glassbox__ClientFlag flag = GLASSBOX__CLIENT_FLAG__INIT;
    Glassbox__ClientFlag *flags[1] = {&flag};
    Glassbox__Metric z[2] = {GLASSBOX__METRIC__INIT, GLASSBOX__METRIC__INIT};
    Glassbox__Metric *zp[2] = {&z[0], &z[1]};
    Glassbox__Metric ev = GLASSBOX__METRIC__INIT;
    Glassbox__Metric *evp[1] = {&ev};
    z[0].name = "update";
    z[0].value = 12.5;
    z[1].name = "explanation";
    z[1].value = -0.5;
    ev.name = "update_distance";
    ev.value = 3.25;
    flag.client_id = "Bob-2";
    flag.score = 8.75;
    flag.strongest = "update";
    flag.rounds_out = 2;
    flag.rounds_seen = 3;
    flag.n_z = 2;
    flag.z = zp;
    flag.n_evidence = 1;
    flag.evidence = evp;
    p.n_flags = 1;
    p.flags = flags;
    uint8_t *buf = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_publication_encode(&p, &buf, len, &err), 0);
    return buf;
}

static gb_subscriber_t *s_subscribe(fixture_t *f, const char *ca, const char *name)
{
    gb_verify_opts_t trust = {.ca_file = ca, .expected_name = name};
    gb_error_t err = {0};
    gb_subscriber_t *sub = gb_subscriber_new(f->ctx, gb_publisher_endpoint(f->pub), &trust,
                                             &err);
    assert_non_null(sub);
    return sub;
}

/* Publishes round after round until sub has one (PUB/SUB's slow joiner);
 * returns the round it accepted. */
static uint64_t s_first(fixture_t *f, gb_subscriber_t *sub, uint64_t *round)
{
    gb_error_t err = {0};
    for (int tries = 0; tries < 100; tries++) {
        size_t len;
        uint8_t *pub = s_publication(f, ++*round, &len);
        assert_int_equal(gb_publisher_send(f->pub, pub, len, &err), 0);
        gb_free(pub);
        Glassbox__Publication *p = NULL;
        int rc = gb_subscriber_poll(sub, 50, &p, NULL, &err);
        assert_true(rc >= 0);
        if (rc == 1) {
            uint64_t r = p->round;
            assert_int_equal(p->participants, 2);
            assert_string_equal(p->aggregator, "fedavg");
            assert_int_equal(p->model->param_count, f->model->param_count);
            gb_publication_free(&p);
            return r;
        }
    }
    fail_msg("no publication arrived");
    return 0;
}

static void test_publish_and_replay(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    f->pub = gb_publisher_new(f->ctx, "tcp://127.0.0.1:*", f->signer, &err);
    assert_non_null(f->pub);
    f->sub[0] = s_subscribe(f, f->ca_file, COORD);
    uint64_t round = 0;
    uint64_t got = s_first(f, f->sub[0], &round);
    assert_true(got >= 1 && got <= round);

    /* the same round again, and an older one: refused however well signed */
    size_t len;
    uint8_t *same = s_publication(f, got, &len);
    assert_int_equal(gb_publisher_send(f->pub, same, len, &err), 0);
    gb_free(same);
    if (got > 1) {
        uint8_t *old = s_publication(f, got - 1, &len);
        assert_int_equal(gb_publisher_send(f->pub, old, len, &err), 0);
        gb_free(old);
    }
    Glassbox__Publication *p = NULL;
    assert_int_equal(gb_subscriber_poll(f->sub[0], 200, &p, NULL, &err), 0);
    assert_null(p);
    /* a gap is fine */
    uint8_t *next = s_publication(f, got + 5, &len);
    assert_int_equal(gb_publisher_send(f->pub, next, len, &err), 0);
    gb_free(next);
    assert_int_equal(gb_subscriber_poll(f->sub[0], 2000, &p, NULL, &err), 1);
    assert_true(p->round == got + 5);
    assert_string_equal(p->explanation_distance[1]->key, "Bob-2");
    gb_publication_free(&p);

    /* poll_signed: the accepted publication with the message it came in,
     * whose bytes are exactly what was signed and sent; a replay still
     * yields neither */
    uint8_t *later = s_publication(f, got + 6, &len);
    assert_int_equal(gb_publisher_send(f->pub, later, len, &err), 0);
    Glassbox__SignedPublication *sp = NULL;
    assert_int_equal(gb_subscriber_poll(f->sub[0], 2000, &p, &sp, &err), 1);
    assert_true(p->round == got + 6);
    assert_non_null(sp);
    assert_int_equal(sp->publication.len, len);
    assert_memory_equal(sp->publication.data, later, len);
    assert_true(sp->signature.len > 0 && sp->signer_certificate.len > 0);
    gb_publication_free(&p);
    glassbox__signed_publication__free_unpacked(sp, NULL);
    assert_int_equal(gb_publisher_send(f->pub, later, len, &err), 0);
    sp = (Glassbox__SignedPublication *)1; /* must be reset */
    assert_int_equal(gb_subscriber_poll(f->sub[0], 200, &p, &sp, &err), 0);
    assert_null(p);
    assert_null(sp);
    gb_free(later);
}

static void test_untrusted_signers_refused(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    /* the other federation's coordinator publishes; our subscriber refuses */
    f->pub = gb_publisher_new(f->ctx, "tcp://127.0.0.1:*", f->other_signer, &err);
    assert_non_null(f->pub);
    f->sub[0] = s_subscribe(f, f->ca_file, COORD);
    f->sub[1] = s_subscribe(f, f->other_ca_file, "someone-else");
    gb_subscriber_t *trusting = s_subscribe(f, f->other_ca_file, COORD);
    uint64_t round = 0;
    s_first(f, trusting, &round); /* it does arrive, for those who trust it */
    gb_subscriber_destroy(&trusting);
    size_t len;
    uint8_t *pub = s_publication(f, round + 1, &len);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gb_publisher_send(f->pub, pub, len, &err), 0);
    gb_free(pub);
    Glassbox__Publication *p = NULL;
    assert_int_equal(gb_subscriber_poll(f->sub[0], 300, &p, NULL, &err), 0);
    assert_int_equal(gb_subscriber_poll(f->sub[1], 300, &p, NULL, &err), 0);
}

static void test_hostile_frames_refused(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    f->raw = zmq_socket(f->ctx, ZMQ_PUB);
    int zero = 0;
    zmq_setsockopt(f->raw, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(f->raw, "tcp://127.0.0.1:*"), 0);
    char endpoint[256];
    size_t elen = sizeof endpoint;
    zmq_getsockopt(f->raw, ZMQ_LAST_ENDPOINT, endpoint, &elen);
    gb_verify_opts_t trust = {.ca_file = f->ca_file, .expected_name = COORD};
    f->sub[0] = gb_subscriber_new(f->ctx, endpoint, &trust, &err);
    assert_non_null(f->sub[0]);
    const char *topic = GB_PUBLISH_TOPIC;

    /* wait until the subscription reaches the raw publisher */
    uint64_t round = 0;
    Glassbox__Publication *p = NULL;
    int rc = 0;
    for (int tries = 0; tries < 100 && rc == 0; tries++) {
        size_t len, slen;
        uint8_t *pub = s_publication(f, ++round, &len), *signed_pub = NULL;
        assert_int_equal(gb_publication_sign(f->signer, pub, len, &signed_pub, &slen, &err), 0);
        zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
        zmq_send(f->raw, signed_pub, slen, 0);
        gb_free(pub);
        gb_free(signed_pub);
        rc = gb_subscriber_poll(f->sub[0], 50, &p, NULL, &err);
    }
    assert_int_equal(rc, 1);
    gb_publication_free(&p);

    size_t len, slen;
    uint8_t *pub = s_publication(f, ++round, &len), *signed_pub = NULL;
    assert_int_equal(gb_publication_sign(f->signer, pub, len, &signed_pub, &slen, &err), 0);
    /* a flipped byte somewhere in the middle (the publication or signature) */
    uint8_t *bad = malloc(slen);
    memcpy(bad, signed_pub, slen);
    bad[slen / 2] ^= 0x40;
    zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->raw, bad, slen, 0);
    /* the right bytes under the wrong shapes */
    zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->raw, signed_pub, slen, ZMQ_SNDMORE);
    zmq_send(f->raw, "extra", 5, 0);
    zmq_send(f->raw, topic, strlen(topic), 0);
    zmq_send(f->raw, "glassbox.publicationX", 21, ZMQ_SNDMORE);
    zmq_send(f->raw, signed_pub, slen, 0);
    zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->raw, "garbage", 7, 0);
    /* well signed, but the Publication inside is invalid (participants 0) */
    Glassbox__Publication *inner = glassbox__publication__unpack(NULL, len, pub);
    inner->participants = 0;
    size_t ilen = glassbox__publication__get_packed_size(inner);
    uint8_t *ibuf = malloc(ilen), *isigned = NULL;
    glassbox__publication__pack(inner, ibuf);
    size_t islen;
    assert_int_equal(gb_publication_sign(f->signer, ibuf, ilen, &isigned, &islen, &err), 0);
    zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->raw, isigned, islen, 0);
    /* and finally the good one */
    zmq_send(f->raw, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(f->raw, signed_pub, slen, 0);

    assert_int_equal(gb_subscriber_poll(f->sub[0], 3000, &p, NULL, &err), 1);
    assert_true(p->round == round); /* only the good one came through */
    gb_publication_free(&p);
    assert_int_equal(gb_subscriber_poll(f->sub[0], 200, &p, NULL, &err), 0);

    glassbox__publication__free_unpacked(inner, NULL);
    free(ibuf);
    free(bad);
    gb_free(isigned);
    gb_free(pub);
    gb_free(signed_pub);
}

static void test_publication_checks(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    size_t len;
    uint8_t *buf = s_publication(f, 3, &len);
    Glassbox__Publication *p = NULL;
    assert_int_equal(gb_publication_decode(buf, len, &p, &err), 0);
    assert_true(p->round == 3);

    Glassbox__Publication q = *p;
    q.round = 0;
    assert_int_equal(gb_publication_check(&q, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "publication.round"));
    q = *p;
    q.model = NULL;
    assert_int_equal(gb_publication_check(&q, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "publication.model"));
    q = *p;
    q.participants = 0;
    assert_int_equal(gb_publication_check(&q, &err), GB_EFORMAT);
    q = *p;
    q.aggregator = "fed avg";
    assert_int_equal(gb_publication_check(&q, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "aggregator"));

    char *saved = p->explanation_distance[0]->value;
    const char *bad_values[] = {"nan", "-1", "1x", "", "inf"};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        p->explanation_distance[0]->value = (char *)bad_values[i];
        assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "explanation_distance[0].value"));
    }
    p->explanation_distance[0]->value = saved;
    char *saved_key = p->explanation_distance[1]->key;
    p->explanation_distance[1]->key = p->explanation_distance[0]->key;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "appears twice"));
    p->explanation_distance[1]->key = saved_key;
    /* a changed model is caught by the model's own checks (its hash) */
    float *params = (float *)p->model->params.data;
    float keep = params[0];
    params[0] = NAN;
    assert_int_equal(gb_publication_check(p, &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "publication.model"));
    params[0] = keep;
    assert_int_equal(gb_publication_check(p, &err), 0);
    gb_publication_free(&p);
    gb_publication_free(&p); /* NULL-safe */

    /* bytes that are not a Publication, and truncations up to the trailing
     * distances and flag (a cut between two distance entries, or before the
     * flag, still parses: protobuf has no end marker, which is why the
     * signature covers the bytes) */
    assert_int_equal(gb_publication_decode((const uint8_t *)"\xff\xff", 2, &p, &err),
                     GB_EFORMAT);
    for (size_t cut = 0; cut + 160 < len; cut += 97) {
        int rc = gb_publication_decode(buf, cut, &p, &err);
        assert_true(rc < 0);
        assert_null(p);
    }
    gb_free(buf);
}

/* The round's flagged clients travel with their evidence, and every count
 * and value of theirs is bounded: the window, the signals per client, the
 * clients, and names that must be unique or refer to each other. */
static void test_publication_flags(void **state)
{
    fixture_t *f = *state;
    gb_error_t err = {0};
    size_t len;
    uint8_t *buf = s_publication(f, 4, &len);
    Glassbox__Publication *p = NULL;
    assert_int_equal(gb_publication_decode(buf, len, &p, &err), 0);
    assert_int_equal(p->n_flags, 1);
    Glassbox__ClientFlag *c = p->flags[0];
    assert_string_equal(c->client_id, "Bob-2");
    assert_true(c->score == 8.75);
    assert_string_equal(c->strongest, "update");
    assert_int_equal(c->rounds_out, 2);
    assert_int_equal(c->rounds_seen, 3);
    assert_int_equal(c->n_z, 2);
    assert_string_equal(c->z[1]->name, "explanation");
    assert_true(c->z[1]->value == -0.5);
    assert_int_equal(c->n_evidence, 1);
    assert_true(c->evidence[0]->value == 3.25);

    /* the window: rounds_seen 64 is the most, rounds_out 1..rounds_seen */
    c->rounds_seen = GB_PUBLICATION_MAX_FLAG_WINDOW;
    assert_int_equal(gb_publication_check(p, &err), 0);
    c->rounds_seen = GB_PUBLICATION_MAX_FLAG_WINDOW + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "publication.flags[0].rounds_seen"));
    c->rounds_seen = 3;
    c->rounds_out = 4;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "rounds_out"));
    c->rounds_out = 0;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    c->rounds_out = 2;
    /* the score */
    const double bad_scores[] = {NAN, INFINITY, -1};
    for (size_t i = 0; i < sizeof bad_scores / sizeof *bad_scores; i++) {
        c->score = bad_scores[i];
        assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "flags[0].score"));
    }
    c->score = 8.75;
    /* the strongest signal must be one of the z's */
    char *strongest = c->strongest;
    c->strongest = "norm";
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "strongest"));
    c->strongest = "";
    assert_int_equal(gb_publication_check(p, &err), 0); /* no z this round */
    c->strongest = strongest;
    /* a signal named twice, a z that is not a number, evidence below 0 */
    char *zname = c->z[1]->name;
    c->z[1]->name = "update";
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    c->z[1]->name = zname;
    c->z[1]->value = NAN;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    c->z[1]->value = -0.5;
    c->evidence[0]->value = -1;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].evidence[0]"));
    c->evidence[0]->value = 3.25;
    /* a bad client id */
    char *id = c->client_id;
    c->client_id = "bob two";
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "client_id"));
    c->client_id = id;
    assert_int_equal(gb_publication_check(p, &err), 0);

    /* signals per client: GB_PUBLICATION_MAX_FLAG_SIGNALS, not one more */
    Glassbox__Metric many[GB_PUBLICATION_MAX_FLAG_SIGNALS + 1];
    Glassbox__Metric *manyp[GB_PUBLICATION_MAX_FLAG_SIGNALS + 1];
    char names[GB_PUBLICATION_MAX_FLAG_SIGNALS + 1][16];
    for (size_t i = 0; i <= GB_PUBLICATION_MAX_FLAG_SIGNALS; i++) {
        glassbox__metric__init(&many[i]);
        snprintf(names[i], sizeof names[i], "s%zu", i);
        many[i].name = names[i];
        many[i].value = (double)i;
        manyp[i] = &many[i];
    }
    many[0].name = "update";
    Glassbox__ClientFlag saved = *c;
    c->z = manyp;
    c->n_z = GB_PUBLICATION_MAX_FLAG_SIGNALS;
    c->evidence = manyp;
    c->n_evidence = GB_PUBLICATION_MAX_FLAG_SIGNALS;
    assert_int_equal(gb_publication_check(p, &err), 0);
    c->n_z = GB_PUBLICATION_MAX_FLAG_SIGNALS + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "flags[0].z"));
    c->n_z = GB_PUBLICATION_MAX_FLAG_SIGNALS;
    c->n_evidence = GB_PUBLICATION_MAX_FLAG_SIGNALS + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "flags[0].evidence"));
    *c = saved;

    /* clients: unique, at most GB_PUBLICATION_MAX_CLIENTS, none missing */
    Glassbox__ClientFlag other = *c;
    Glassbox__ClientFlag *two[2] = {c, &other};
    Glassbox__ClientFlag **keep = p->flags;
    p->flags = two;
    p->n_flags = 2;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "appears twice"));
    other.client_id = "alice";
    assert_int_equal(gb_publication_check(p, &err), 0);
    two[1] = NULL;
    assert_int_equal(gb_publication_check(p, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "flags[1]"));
    p->n_flags = GB_PUBLICATION_MAX_CLIENTS + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "publication.flags"));
    p->flags = keep;
    p->n_flags = 1;
    assert_int_equal(gb_publication_check(p, &err), 0);

    /* moved cells: none without an explanation ... */
    uint32_t moved[GB_PUBLICATION_MAX_FLAG_MOVED + 1];
    float share[GB_PUBLICATION_MAX_FLAG_MOVED + 1];
    for (size_t k = 0; k <= GB_PUBLICATION_MAX_FLAG_MOVED; k++) {
        moved[k] = (uint32_t)k;
        share[k] = 0.5f / (float)(k + 1);
    }
    c->moved_cells = moved;
    c->moved_share = share;
    c->n_moved_cells = c->n_moved_share = 2;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].moved_cells[0]: names a cell, but the publication "
                                    "has no explanation"));
    /* ... and inside the explanation's 4 x 4 map, with a share each */
    float map[16] = {0};
    const uint32_t shape[2] = {4, 4};
    gb_test_explanation_t x;
    gb_test_explanation_one(&x, GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS, 0, 5,
                            map, shape, 2);
    p->explanation = &x.x;
    assert_int_equal(gb_publication_check(p, &err), 0);
    moved[1] = 15;
    assert_int_equal(gb_publication_check(p, &err), 0);
    moved[1] = 16;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "flags[0].moved_cells[1]: is 16, past the explanation's 16"));
    moved[1] = 0;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "repeats cell 0"));
    moved[1] = 1;
    c->n_moved_share = 1;
    assert_int_equal(gb_publication_check(p, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "moved_share 1"));
    c->n_moved_share = 2;
    const float bad_shares[] = {0.0f, -0.25f, 1.5f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof bad_shares / sizeof *bad_shares; k++) {
        share[1] = bad_shares[k];
        assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "flags[0].moved_share[1]"));
    }
    share[1] = 1.0f;
    assert_int_equal(gb_publication_check(p, &err), 0);
    c->n_moved_cells = c->n_moved_share = GB_PUBLICATION_MAX_FLAG_MOVED;
    assert_int_equal(gb_publication_check(p, &err), 0);
    c->n_moved_cells = c->n_moved_share = GB_PUBLICATION_MAX_FLAG_MOVED + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "moved_cells: has 9 entries, more than 8"));
    c->n_moved_cells = c->n_moved_share = 2;
    /* moved classes: each one the explanation has a map of (class 0 only),
     * unique, a ratio >= 1 each, at most 8 */
    uint32_t classes[GB_PUBLICATION_MAX_FLAG_CLASSES + 1] = {0};
    float ratio[GB_PUBLICATION_MAX_FLAG_CLASSES + 1];
    for (size_t k = 0; k <= GB_PUBLICATION_MAX_FLAG_CLASSES; k++)
        ratio[k] = 2.5f;
    c->moved_classes = classes;
    c->moved_class_ratio = ratio;
    c->n_moved_classes = c->n_moved_class_ratio = 1;
    assert_int_equal(gb_publication_check(p, &err), 0);
    classes[0] = 1;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].moved_classes[0]: is class 1, which the "
                                    "explanation has no map of"));
    classes[0] = 0;
    c->n_moved_classes = c->n_moved_class_ratio = 2; /* class 0 twice */
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "repeats class 0"));
    c->n_moved_class_ratio = 1;
    assert_int_equal(gb_publication_check(p, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "moved_class_ratio 1"));
    c->n_moved_classes = c->n_moved_class_ratio = GB_PUBLICATION_MAX_FLAG_CLASSES + 1;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "moved_classes: has 9 entries, more than 8"));
    c->n_moved_classes = c->n_moved_class_ratio = 1;
    const float bad_ratios[] = {0.5f, 0.0f, -2.0f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof bad_ratios / sizeof *bad_ratios; k++) {
        ratio[0] = bad_ratios[k];
        assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "flags[0].moved_class_ratio[0]"));
    }
    ratio[0] = 1.0f;
    assert_int_equal(gb_publication_check(p, &err), 0);
    p->explanation = NULL; /* without an explanation, no class */
    c->n_moved_cells = c->n_moved_share = 0;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "moved_classes[0]"));
    p->explanation = &x.x;
    ratio[0] = 2.5f;
    /* the lesson: a class below 65,536 with its cells' name (at most 63
     * bytes of text), nothing without cells */
    c->lesson_class = 3;
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].lesson_class: is 3, but the flag has no "
                                    "lesson_cells"));
    char cells[GB_PUBLICATION_MAX_LESSON_CELLS + 2];
    memset(cells, 'r', sizeof cells - 1);
    cells[sizeof cells - 1] = '\0';
    c->lesson_cells = cells; /* 64 bytes */
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "flags[0].lesson_cells"));
    c->lesson_cells = "rows 24-27,\x01cols 24-27";
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].lesson_cells"));
    c->lesson_cells = "rows 24-27,\ncols 24-27"; /* a line break, for a log line to show */
    assert_int_equal(gb_publication_check(p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "flags[0].lesson_cells"));
    c->lesson_cells = "rows 24-27, cols 24-27";
    c->lesson_class = GB_PUBLICATION_MAX_LESSON_CLASS;
    assert_int_equal(gb_publication_check(p, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "flags[0].lesson_class: is 65536, not below 65536"));
    c->lesson_class = GB_PUBLICATION_MAX_LESSON_CLASS - 1;
    assert_int_equal(gb_publication_check(p, &err), 0);
    c->lesson_class = 3;
    /* they go over the wire and back */
    c->n_moved_cells = c->n_moved_share = 2;
    uint8_t *with = NULL;
    size_t with_len = 0;
    assert_int_equal(gb_publication_encode(p, &with, &with_len, &err), 0);
    Glassbox__Publication *w = NULL;
    assert_int_equal(gb_publication_decode(with, with_len, &w, &err), 0);
    assert_int_equal(w->flags[0]->n_moved_cells, 2);
    assert_int_equal(w->flags[0]->moved_cells[1], 1);
    assert_true(w->flags[0]->moved_share[1] == 1.0f);
    assert_int_equal(w->flags[0]->n_moved_classes, 1);
    assert_int_equal(w->flags[0]->moved_classes[0], 0);
    assert_true(w->flags[0]->moved_class_ratio[0] == 2.5f);
    assert_int_equal(w->flags[0]->lesson_class, 3);
    assert_string_equal(w->flags[0]->lesson_cells, "rows 24-27, cols 24-27");
    gb_publication_free(&w);
    gb_free(with);
    c->n_moved_cells = c->n_moved_share = 0;
    c->moved_cells = NULL; /* the stack's: not for free_unpacked */
    c->moved_share = NULL;
    c->n_moved_classes = c->n_moved_class_ratio = 0;
    c->moved_classes = NULL;
    c->moved_class_ratio = NULL;
    c->lesson_class = 0;
    c->lesson_cells = NULL; /* the stack's too */
    p->explanation = NULL;

    /* a publication without flags (an older coordinator's) is still good */
    p->n_flags = 0;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(gb_publication_encode(p, &plain, &plain_len, &err), 0);
    assert_true(plain_len < len);
    Glassbox__Publication *q = NULL;
    assert_int_equal(gb_publication_decode(plain, plain_len, &q, &err), 0);
    assert_int_equal(q->n_flags, 0);
    gb_publication_free(&q);
    gb_free(plain);
    p->n_flags = 1;
    gb_publication_free(&p);

    /* and a field this version does not know (as flags are to an older
     * reader) is skipped: field 20, a varint, after the rest */
    uint8_t *later = gb_malloc(len + 3);
    assert_non_null(later);
    memcpy(later, buf, len);
    memcpy(later + len, "\xa0\x01\x05", 3);
    assert_int_equal(gb_publication_decode(later, len + 3, &p, &err), 0);
    assert_int_equal(p->n_flags, 1);
    gb_publication_free(&p);
    gb_free(later);
    gb_free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_and_replay, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_signers_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_frames_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_publication_checks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_publication_flags, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
