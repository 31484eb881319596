/* Tests for coordinator/checkpoint: bit-identical round trips of parameters
 * and optimiser state through memory and through a checkpoint directory; a
 * restored server optimiser and round machine going on exactly where the
 * saved ones stopped; `latest`, the file modes, retention of the last K, the
 * model file beside each checkpoint; refusal of every truncation point and
 * every flipped byte, of hostile messages (built here with protobuf-c and a
 * correct SHA-256, so each reaches the check it is meant to trip), of NaN,
 * Inf and negative second moments on save and on load; fallback to the
 * newest intact checkpoint (with the warning) when `latest` is damaged,
 * names a missing file, holds garbage or is missing; a fresh directory; a
 * directory that does not exist or cannot be written, where a failed save
 * leaves the old state loadable; allocation-failure injection through
 * encode, decode, save and load (a load never takes an allocation failure
 * for damage); and the fuzz target's seeds still decoding. */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "checkpoint.h"
#include "engine/spec.h"
#include "glassbox.pb-c.h"
#include "net/snapshot.h"
#include "rounds.h"
#include "server_optim.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

/* dense 16 -> 8: weight 8x16 then bias 8 = 136 parameters; the checkpoint
 * is about 1.7 KB, so every-97th-byte truncation cuts it at 18 places. */
#define SPEC "input 16\ndense 8\n"
#define N 136
#define SAVED_MS UINT64_C(1735689600123) /* 2025-01-01T00:00:00.123Z */

typedef struct {
    float params[N];
    float state[2 * N];
    gb_snapshot_meta_t meta[2];
    gb_checkpoint_t c; /* caller-filled: points at the arrays above */
} fix_t;

static void s_fix(fix_t *f, uint64_t round)
{
    const float special[] = {-0.0f, 1e-45f /* denormal */, FLT_MIN, FLT_MAX, -FLT_MAX,
                             1.0f / 3.0f, -2.5f};
    for (size_t i = 0; i < N; i++) {
        f->params[i] = i < 7 ? special[i] : (float)i * 0.01f - 0.7f + (float)round;
        f->state[i] = i < 7 ? special[i] : (float)i * -1e-3f;                  /* m */
        f->state[N + i] = i < 7 ? fabsf(special[i]) : (float)i * 1e-6f + 1e-6f; /* v */
    }
    f->state[N] = -0.0f; /* a negative zero v is not negative */
    f->meta[0] = (gb_snapshot_meta_t){"rounds_seed", "42"};
    f->meta[1] = (gb_snapshot_meta_t){"note", "Größe ✓"};
    f->c = (gb_checkpoint_t){
        .spec = SPEC,
        .params = f->params,
        .n_params = N,
        .round = round,
        .aggregator = "trimmed_mean:0.1",
        .server_optimizer = "fedadam:lr=0.01",
        .optim_state = f->state,
        .n_optim_state = 2 * N,
        .optim_steps = round * 3,
        .next_task_id = round * 10 + 1,
        .federation = "demo-fed",
        .saved_unix_ms = SAVED_MS,
        .meta = f->meta,
        .n_meta = 2,
    };
}

static void s_encode(const gb_checkpoint_t *c, uint8_t **buf, size_t *len)
{
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_checkpoint_encode(c, buf, len, &err);
    if (rc != 0)
        fail_msg("encode: %s", err.msg);
}

/* The checkpoint equals the fixture bit for bit. */
static void s_assert_same(const gb_checkpoint_t *got, const gb_checkpoint_t *want)
{
    assert_non_null(got);
    assert_string_equal(got->spec, want->spec);
    assert_int_equal(got->n_params, want->n_params);
    assert_memory_equal(got->params, want->params, want->n_params * sizeof(float));
    assert_int_equal(got->round, want->round);
    assert_string_equal(got->aggregator, want->aggregator);
    assert_string_equal(got->server_optimizer, want->server_optimizer);
    assert_int_equal(got->n_optim_state, want->n_optim_state);
    if (want->n_optim_state)
        assert_memory_equal(got->optim_state, want->optim_state,
                            want->n_optim_state * sizeof(float));
    else
        assert_null(got->optim_state);
    assert_int_equal(got->optim_steps, want->optim_steps);
    assert_int_equal(got->next_task_id, want->next_task_id);
    assert_string_equal(got->federation, want->federation);
    assert_int_equal(got->saved_unix_ms, want->saved_unix_ms);
    assert_int_equal(got->n_meta, want->n_meta);
    for (size_t i = 0; i < want->n_meta; i++) {
        assert_string_equal(got->meta[i].key, want->meta[i].key);
        assert_string_equal(got->meta[i].value, want->meta[i].value);
    }
}

static void s_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

/* ---- hostile messages ---------------------------------------------------- */

typedef void (*mutate_fn)(Glassbox__Checkpoint *m);

/* Unpacks a valid checkpoint, lets mutate change it, fixes the model's
 * params_sha256 (unless keep_model_hash) and packs it again with a correct
 * trailing SHA-256, so the result passes the file-level hash and reaches
 * the check under test. Returns a malloc'd buffer. */
static uint8_t *s_hostile(mutate_fn mutate, bool keep_model_hash, size_t *len)
{
    fix_t f;
    s_fix(&f, 7);
    uint8_t *good;
    size_t glen;
    s_encode(&f.c, &good, &glen);
    Glassbox__Checkpoint *m = glassbox__checkpoint__unpack(NULL, glen, good);
    assert_non_null(m);
    mutate(m);
    if (m->model && !keep_model_hash && m->model->params_sha256.len == 32)
        s_sha256(m->model->params.data, m->model->params.len, m->model->params_sha256.data);
    size_t had = m->sha256.len;
    m->sha256.len = 0;
    size_t body = glassbox__checkpoint__get_packed_size(m);
    uint8_t *out = malloc(body + 34);
    assert_non_null(out);
    assert_int_equal(glassbox__checkpoint__pack(m, out), body);
    out[body] = 0x7a;
    out[body + 1] = 32;
    s_sha256(out, body, out + body + 2);
    m->sha256.len = had;
    glassbox__checkpoint__free_unpacked(m, NULL);
    gb_free(good);
    *len = body + 34;
    return out;
}

static void s_refused(mutate_fn mutate, bool keep_model_hash, int code, const char *needle)
{
    size_t len;
    uint8_t *buf = s_hostile(mutate, keep_model_hash, &len);
    gb_checkpoint_t *c = (gb_checkpoint_t *)0x1;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_checkpoint_decode(buf, len, &c, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("expected %d '%s', got %d '%s'", code, needle, rc, err.msg);
    assert_null(c);
    free(buf);
}

/* Replaces a string the unpacked message owns (freed by free_unpacked). */
static void s_set(char **field, const char *value)
{
    char *copy = strdup(value);
    assert_non_null(copy);
    free(*field);
    *field = copy;
}

static void m_version0(Glassbox__Checkpoint *m) { m->format_version = 0; }
static void m_version2(Glassbox__Checkpoint *m) { m->format_version = 2; }
static void m_no_model(Glassbox__Checkpoint *m)
{
    glassbox__model_snapshot__free_unpacked(m->model, NULL);
    m->model = NULL;
}
static void m_round(Glassbox__Checkpoint *m) { m->round = 8; }
static void m_nan_param(Glassbox__Checkpoint *m)
{
    float nan = NAN;
    memcpy(m->model->params.data + 4 * 9, &nan, 4);
}
static void m_flip_param(Glassbox__Checkpoint *m) { m->model->params.data[5] ^= 1; }
static void m_inf_m(Glassbox__Checkpoint *m)
{
    float inf = -INFINITY;
    memcpy(m->server_optimizer_state.data + 4 * 3, &inf, 4);
}
static void m_nan_v(Glassbox__Checkpoint *m)
{
    float nan = NAN;
    memcpy(m->server_optimizer_state.data + 4 * (N + 11), &nan, 4);
}
static void m_negative_v(Glassbox__Checkpoint *m)
{
    float neg = -1e-3f;
    memcpy(m->server_optimizer_state.data + 4 * (N + 12), &neg, 4);
}
static void m_short_state(Glassbox__Checkpoint *m) { m->server_optimizer_state.len -= 4; }
static void m_odd_state(Glassbox__Checkpoint *m) { m->server_optimizer_state.len -= 1; }
static void m_no_state(Glassbox__Checkpoint *m) { m->server_optimizer_state.len = 0; }
static void m_sgd_with_state(Glassbox__Checkpoint *m) { s_set(&m->server_optimizer, "sgd"); }
static void m_bad_agg(Glassbox__Checkpoint *m) { s_set(&m->aggregator, "trimmed_mean:0.7"); }
static void m_no_agg(Glassbox__Checkpoint *m) { s_set(&m->aggregator, ""); }
static void m_bad_opt(Glassbox__Checkpoint *m) { s_set(&m->server_optimizer, "fedadam:beta2=2"); }
static void m_bad_fed(Glassbox__Checkpoint *m) { s_set(&m->federation, "../etc"); }
static void m_no_task(Glassbox__Checkpoint *m) { m->next_task_id = 0; }
static void m_big_task(Glassbox__Checkpoint *m) { m->next_task_id = UINT64_MAX; }
static void m_far_time(Glassbox__Checkpoint *m) { m->saved_unix_ms = UINT64_MAX; }
static void m_dup_meta(Glassbox__Checkpoint *m)
{
    s_set(&m->metadata[1]->key, m->metadata[0]->key);
}
static void m_bad_meta(Glassbox__Checkpoint *m) { s_set(&m->metadata[0]->value, "tab\there"); }
static void m_bad_spec(Glassbox__Checkpoint *m) { s_set(&m->model->spec, "input 16\nwarp 8\n"); }
static void m_spec_count(Glassbox__Checkpoint *m) { s_set(&m->model->spec, "input 16\ndense 9\n"); }

static void test_decode_refuses_hostile(void **state)
{
    (void)state;
    s_refused(m_version0, false, GB_EFORMAT, "no format version");
    s_refused(m_version2, false, GB_EPROTO, "format version 2 is not supported");
    s_refused(m_no_model, false, GB_EFORMAT, "has no model");
    s_refused(m_round, false, GB_EFORMAT, "round 8 but its model says round 7");
    s_refused(m_nan_param, false, GB_ERANGE, "parameter 9 of 136 is NaN");
    s_refused(m_flip_param, true, GB_EINTEGRITY, "do not match their SHA-256");
    s_refused(m_inf_m, false, GB_ERANGE, "fedadam state m[3] is infinite");
    s_refused(m_nan_v, false, GB_ERANGE, "fedadam state v[11] is NaN");
    s_refused(m_negative_v, false, GB_ERANGE, "fedadam state v[12] is negative");
    s_refused(m_short_state, false, GB_ESHAPE, "state is 1084 bytes, expected 1088");
    s_refused(m_odd_state, false, GB_ESHAPE, "state is 1087 bytes");
    s_refused(m_no_state, false, GB_ESHAPE, "state is 0 bytes, expected 1088");
    s_refused(m_sgd_with_state, false, GB_ESHAPE, "sgd state is 1088 bytes, expected 0");
    s_refused(m_bad_agg, false, GB_EFORMAT, "beta 0.7");
    s_refused(m_no_agg, false, GB_EFORMAT, "aggregator: empty spec");
    s_refused(m_bad_opt, false, GB_EFORMAT, "beta2");
    s_refused(m_bad_fed, false, GB_EFORMAT, "federation name '../etc'");
    s_refused(m_no_task, false, GB_EFORMAT, "next_task_id 0 must be 1 to");
    s_refused(m_big_task, false, GB_EFORMAT, "next_task_id 18446744073709551615");
    s_refused(m_far_time, false, GB_EFORMAT, "after the year 9999");
    s_refused(m_dup_meta, false, GB_EFORMAT, "'rounds_seed' appears twice");
    s_refused(m_bad_meta, false, GB_EFORMAT, "'rounds_seed': control character");
    s_refused(m_bad_spec, false, GB_ESPEC, "checkpoint model:");
    s_refused(m_spec_count, false, GB_ESHAPE, "implies 153");
}

/* ---- memory round trips ------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    fix_t f;
    s_fix(&f, 12);
    uint8_t *buf, *again;
    size_t len, alen;
    s_encode(&f.c, &buf, &len);
    s_encode(&f.c, &again, &alen); /* the same struct packs to the same bytes */
    assert_int_equal(len, alen);
    assert_memory_equal(buf, again, len);
    gb_free(again);

    /* The trailer is the sha256 field over every byte before it. */
    uint8_t digest[32];
    s_sha256(buf, len - 34, digest);
    assert_int_equal(buf[len - 34], 0x7a);
    assert_int_equal(buf[len - 33], 32);
    assert_memory_equal(buf + len - 32, digest, 32);
    Glassbox__Checkpoint *m = glassbox__checkpoint__unpack(NULL, len, buf);
    assert_non_null(m);
    assert_int_equal(m->format_version, GB_CHECKPOINT_FORMAT_VERSION);
    assert_memory_equal(m->sha256.data, digest, 32);
    assert_int_equal(m->model->round, 12);
    assert_int_equal(m->model->n_metadata, 2);
    assert_string_equal(m->model->metadata[0]->key, "created_at");
    assert_string_equal(m->model->metadata[0]->value, "2025-01-01T00:00:00Z");
    assert_string_equal(m->model->metadata[1]->key, "glassbox_version");
    glassbox__checkpoint__free_unpacked(m, NULL);

    gb_checkpoint_t *c = NULL;
    gb_error_t err;
    assert_int_equal(gb_checkpoint_decode(buf, len, &c, &err), 0);
    s_assert_same(c, &f.c);
    assert_true(signbit(c->params[0]) && signbit(c->optim_state[N])); /* -0 kept */
    uint8_t *re;
    size_t relen;
    s_encode(c, &re, &relen); /* a loaded checkpoint saves to the same bytes */
    assert_int_equal(relen, len);
    assert_memory_equal(re, buf, len);
    gb_free(re);
    gb_checkpoint_destroy(&c);
    assert_null(c);
    gb_checkpoint_destroy(&c); /* NULL-safe */
    gb_checkpoint_destroy(NULL);
    gb_free(buf);

    /* sgd: no state; no metadata; round 0 (the initial model). */
    f.c.server_optimizer = "sgd";
    f.c.optim_state = NULL;
    f.c.n_optim_state = 0;
    f.c.meta = NULL;
    f.c.n_meta = 0;
    f.c.round = 0;
    f.c.next_task_id = 1;
    f.c.aggregator = "fedavg";
    s_encode(&f.c, &buf, &len);
    assert_int_equal(gb_checkpoint_decode(buf, len, &c, &err), 0);
    s_assert_same(c, &f.c);
    gb_checkpoint_destroy(&c);
    gb_free(buf);
}

/* A preset name is saved as the preset's text. */
static void test_preset_saved_expanded(void **state)
{
    (void)state;
    size_t n = 0;
    gb_error_t err;
    assert_int_equal(gb_model_count_params("mlp", &n, &err), 0);
    float *p = calloc(n, sizeof *p);
    assert_non_null(p);
    gb_checkpoint_t in = {.spec = "mlp", .params = p, .n_params = n, .round = 2,
                          .aggregator = "median", .server_optimizer = "sgd:lr=0.5",
                          .next_task_id = 5, .federation = "f"};
    uint8_t *buf;
    size_t len;
    s_encode(&in, &buf, &len);
    gb_checkpoint_t *c = NULL;
    assert_int_equal(gb_checkpoint_decode(buf, len, &c, &err), 0);
    assert_string_equal(c->spec, gb_spec_preset("mlp"));
    assert_int_equal(c->n_params, n);
    gb_checkpoint_destroy(&c);
    gb_free(buf);
    free(p);
}

static void s_encode_fails(const gb_checkpoint_t *c, int code, const char *needle)
{
    uint8_t *buf = (uint8_t *)0x1;
    size_t len = 99;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_checkpoint_encode(c, &buf, &len, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("expected %d '%s', got %d '%s'", code, needle, rc, err.msg);
    assert_null(buf);
    assert_int_equal(len, 0);
}

static void test_encode_refusals(void **state)
{
    (void)state;
    fix_t f;
    uint8_t *buf;
    size_t len;
    gb_error_t err;
    assert_int_equal(gb_checkpoint_encode(NULL, &buf, &len, &err), GB_EINVAL);
    s_fix(&f, 3);
    assert_int_equal(gb_checkpoint_encode(&f.c, NULL, &len, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_encode(&f.c, &buf, NULL, &err), GB_EINVAL);
    f.c.spec = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "NULL argument");
    s_fix(&f, 3);
    f.c.params = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "NULL argument");
    s_fix(&f, 3);
    f.c.optim_state = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "NULL argument");

    s_fix(&f, 3);
    f.params[17] = NAN;
    s_encode_fails(&f.c, GB_ERANGE, "parameter 17 of 136 is NaN");
    s_fix(&f, 3);
    f.params[0] = INFINITY;
    s_encode_fails(&f.c, GB_ERANGE, "parameter 0 of 136 is infinite");
    s_fix(&f, 3);
    f.state[20] = NAN;
    s_encode_fails(&f.c, GB_ERANGE, "state m[20] is NaN");
    s_fix(&f, 3);
    f.state[N + 5] = INFINITY;
    s_encode_fails(&f.c, GB_ERANGE, "state v[5] is infinite");
    s_fix(&f, 3);
    f.state[N + 6] = -1.0f;
    s_encode_fails(&f.c, GB_ERANGE, "state v[6] is negative");
    s_fix(&f, 3);
    f.c.n_optim_state = N;
    s_encode_fails(&f.c, GB_ESHAPE, "expected 1088");
    s_fix(&f, 3);
    f.c.server_optimizer = "sgd";
    s_encode_fails(&f.c, GB_ESHAPE, "sgd state is 1088 bytes, expected 0");
    s_fix(&f, 3);
    f.c.n_params = N - 1;
    s_encode_fails(&f.c, GB_ESHAPE, "implies 136");
    s_fix(&f, 3);
    f.c.spec = "input 16\ndense\n";
    s_encode_fails(&f.c, GB_ESPEC, "checkpoint model:");
    s_fix(&f, 3);
    f.c.aggregator = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "aggregator: empty spec");
    s_fix(&f, 3);
    f.c.aggregator = "krum";
    s_encode_fails(&f.c, GB_EINVAL, "krum");
    s_fix(&f, 3);
    f.c.server_optimizer = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "server optimiser: empty spec");
    s_fix(&f, 3);
    f.c.server_optimizer = "adam";
    s_encode_fails(&f.c, GB_EINVAL, "adam");
    s_fix(&f, 3);
    f.c.federation = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "federation name is missing");
    s_fix(&f, 3);
    f.c.federation = "two words";
    s_encode_fails(&f.c, GB_EINVAL, "federation name 'two words'");
    s_fix(&f, 3);
    f.c.next_task_id = 0;
    s_encode_fails(&f.c, GB_EINVAL, "next_task_id 0");
    s_fix(&f, 3);
    f.c.saved_unix_ms = UINT64_C(253402300800000);
    s_encode_fails(&f.c, GB_EINVAL, "after the year 9999");
    s_fix(&f, 3);
    f.meta[1].key = "rounds_seed";
    s_encode_fails(&f.c, GB_EINVAL, "appears twice");
    s_fix(&f, 3);
    f.meta[0].key = "bad key";
    s_encode_fails(&f.c, GB_EINVAL, "byte 3 is not one of");
    s_fix(&f, 3);
    f.meta[0].value = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "value is missing");
    s_fix(&f, 3);
    f.c.meta = NULL;
    s_encode_fails(&f.c, GB_EINVAL, "NULL argument");
}

/* Every prefix of a checkpoint, and every single flipped byte, is refused. */
static void test_truncated_and_flipped(void **state)
{
    (void)state;
    fix_t f;
    s_fix(&f, 4);
    uint8_t *buf;
    size_t len;
    s_encode(&f.c, &buf, &len);
    gb_checkpoint_t *c = NULL;
    gb_error_t err;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = gb_checkpoint_decode(buf, cut, &c, &err);
        if (rc != GB_EFORMAT && rc != GB_EINTEGRITY)
            fail_msg("cut at %zu of %zu: %d %s", cut, len, rc, err.msg);
        assert_null(c);
    }
    assert_int_equal(gb_checkpoint_decode(buf, len - 1, &c, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "does not end with its SHA-256"));
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        int rc = gb_checkpoint_decode(copy, len, &c, &err);
        if (rc != GB_EFORMAT && rc != GB_EINTEGRITY)
            fail_msg("flip at %zu of %zu: %d %s", i, len, rc, err.msg);
        assert_null(c);
    }
    memcpy(copy, buf, len);
    copy[len / 2] ^= 0x40;
    assert_int_equal(gb_checkpoint_decode(copy, len, &c, &err), GB_EINTEGRITY);
    assert_non_null(strstr(err.msg, "does not match its SHA-256"));
    free(copy);
    assert_int_equal(gb_checkpoint_decode(NULL, 0, &c, &err), GB_EFORMAT);
    assert_int_equal(gb_checkpoint_decode(NULL, 5, &c, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_decode(buf, len, NULL, &err), GB_EINVAL);
    gb_free(buf);
}

/* ---- directories --------------------------------------------------------- */

static int s_exists(const char *dir, const char *name)
{
    char *p = gb_test_path(dir, name);
    int e = gb_test_exists(p);
    free(p);
    return e;
}

static unsigned s_mode(const char *dir, const char *name)
{
    char *p = gb_test_path(dir, name);
    unsigned mode = gb_test_mode(p);
    free(p);
    return mode;
}

static void s_save(const char *dir, uint64_t round, size_t keep)
{
    fix_t f;
    s_fix(&f, round);
    gb_error_t err;
    gb_error_clear(&err);
    if (gb_checkpoint_save(dir, &f.c, keep, &err) != 0)
        fail_msg("save round %llu: %s", (unsigned long long)round, err.msg);
}

/* load_latest must give the fixture of `round`. */
static void s_latest_is(const char *dir, uint64_t round)
{
    gb_checkpoint_t *c = NULL;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_checkpoint_load_latest(dir, &c, &err);
    if (rc != 0)
        fail_msg("load_latest: %s", err.msg);
    fix_t f;
    s_fix(&f, round);
    s_assert_same(c, &f.c);
    gb_checkpoint_destroy(&c);
}

static void s_write_text(const char *dir, const char *name, const char *text)
{
    free(gb_test_write_file(dir, name, text, strlen(text)));
}

static uint8_t *s_read(const char *dir, const char *name, size_t *len)
{
    char *p = gb_test_path(dir, name);
    uint8_t *data = gb_test_read(p, len);
    free(p);
    return data;
}

static void test_save_load_and_retention(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    for (uint64_t r = 1; r <= 5; r++)
        s_save(dir, r, 3);
    size_t len;
    uint8_t *latest = s_read(dir, "latest", &len);
    assert_string_equal((char *)latest, "checkpoint-5.gbc\n");
    gb_free(latest);
    for (int r = 1; r <= 5; r++) {
        char c[32], m[32];
        snprintf(c, sizeof c, "checkpoint-%d.gbc", r);
        snprintf(m, sizeof m, "model-%d.gbm", r);
        assert_int_equal(s_exists(dir, c), r >= 3);
        assert_int_equal(s_exists(dir, m), r >= 3);
    }
    assert_int_equal(s_mode(dir, "checkpoint-5.gbc"), GB_CHECKPOINT_FILE_MODE);
    assert_int_equal(s_mode(dir, "latest"), GB_CHECKPOINT_FILE_MODE);
    assert_int_equal(s_mode(dir, "model-5.gbm"), 0644);
    s_latest_is(dir, 5);

    /* The file loads on its own too, bit-identically. */
    char *p = gb_test_path(dir, "checkpoint-4.gbc");
    gb_checkpoint_t *c = NULL;
    gb_error_t err;
    assert_int_equal(gb_checkpoint_load(p, &c, &err), 0);
    fix_t f;
    s_fix(&f, 4);
    s_assert_same(c, &f.c);
    gb_checkpoint_destroy(&c);
    free(p);

    /* keep 1: only the new one stays. */
    s_save(dir, 6, 1);
    assert_false(s_exists(dir, "checkpoint-5.gbc"));
    assert_false(s_exists(dir, "model-5.gbm"));
    assert_true(s_exists(dir, "checkpoint-6.gbc"));
    assert_true(s_exists(dir, "model-6.gbm"));

    /* A later round of a rolled-back run is left alone, and so are files
     * that are not ours; temporary files of an interrupted save go. */
    s_save(dir, 9, 5);
    s_write_text(dir, "latest", "checkpoint-6.gbc\n");
    s_write_text(dir, ".checkpoint-7.gbc.tmp-Ab3dE9", "half");
    s_write_text(dir, ".model-7.gbm.tmp-zzzzzz", "half");
    s_write_text(dir, ".latest.tmp-123456", "half");
    s_write_text(dir, ".notes.tmp-123456", "mine");
    s_write_text(dir, "checkpoint-01.gbc", "not a canonical name");
    s_save(dir, 7, 1);
    assert_false(s_exists(dir, "checkpoint-6.gbc"));
    assert_true(s_exists(dir, "checkpoint-7.gbc"));
    assert_true(s_exists(dir, "checkpoint-9.gbc"));
    assert_true(s_exists(dir, "model-9.gbm"));
    assert_false(s_exists(dir, ".checkpoint-7.gbc.tmp-Ab3dE9"));
    assert_false(s_exists(dir, ".model-7.gbm.tmp-zzzzzz"));
    assert_false(s_exists(dir, ".latest.tmp-123456"));
    assert_true(s_exists(dir, ".notes.tmp-123456"));
    assert_true(s_exists(dir, "checkpoint-01.gbc"));
    s_latest_is(dir, 7); /* latest, not the highest number */

    /* Saving a round again replaces it. */
    s_save(dir, 7, 2);
    s_latest_is(dir, 7);
    gb_test_rmtree(dir);
    free(dir);
}

/* The model written beside a checkpoint is a model file. */
static void test_model_file(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    s_save(dir, 3, 2);
    char *p = gb_test_path(dir, "model-3.gbm");
    gb_snapshot_t *s = NULL;
    gb_error_t err;
    assert_int_equal(gb_snapshot_load(p, &s, &err), 0);
    fix_t f;
    s_fix(&f, 3);
    assert_string_equal(s->spec, SPEC);
    assert_int_equal(s->n_params, N);
    assert_memory_equal(s->params, f.params, sizeof f.params);
    assert_int_equal(s->round, 3);
    assert_string_equal(gb_snapshot_meta_get(s, "created_at"), "2025-01-01T00:00:00Z");
    assert_non_null(gb_snapshot_meta_get(s, "glassbox_version"));
    gb_snapshot_destroy(&s);
    uint64_t round = 0;
    gb_model_t *model = gb_snapshot_load_model(p, &round, &err);
    assert_non_null(model);
    assert_int_equal(round, 3);
    gb_model_destroy(&model);
    free(p);
    gb_test_rmtree(dir);
    free(dir);
}

/* A server optimiser and a round machine restored from a checkpoint go on
 * exactly as the saved ones would have. */
static void test_resume_exactly(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_error_t err;
    gb_server_optim_cfg_t cfg;
    assert_int_equal(gb_server_optim_parse("fedyogi:lr=0.05", &cfg, &err), 0);
    gb_server_optim_t *live = gb_server_optim_new(&cfg, N, &err);
    assert_non_null(live);
    float params[N], delta[N], state_buf[2 * N];
    for (size_t i = 0; i < N; i++)
        params[i] = (float)i * 0.003f - 0.2f;
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < N; i++)
            delta[i] = (float)((i * 7 + (size_t)step * 13) % 17) * 1e-3f - 8e-3f;
        assert_int_equal(gb_server_optim_step(live, params, delta, N, &err), 0);
    }
    uint64_t steps;
    assert_int_equal(gb_server_optim_get_state(live, state_buf, 2 * N, &steps, &err), 0);
    gb_checkpoint_t c = {.spec = SPEC, .params = params, .n_params = N, .round = 3,
                         .aggregator = "fedavg", .server_optimizer = "fedyogi:lr=0.05",
                         .optim_state = state_buf, .n_optim_state = 2 * N,
                         .optim_steps = steps, .next_task_id = 31, .federation = "demo"};
    assert_int_equal(gb_checkpoint_save(dir, &c, 2, &err), 0);

    gb_checkpoint_t *back = NULL;
    assert_int_equal(gb_checkpoint_load_latest(dir, &back, &err), 0);
    assert_non_null(back);
    assert_true(back->saved_unix_ms > 0); /* 0 is saved as the clock */
    gb_server_optim_cfg_t cfg2;
    assert_int_equal(gb_server_optim_parse(back->server_optimizer, &cfg2, &err), 0);
    gb_server_optim_t *resumed = gb_server_optim_new(&cfg2, back->n_params, &err);
    assert_non_null(resumed);
    assert_int_equal(gb_server_optim_set_state(resumed, back->optim_state, back->n_optim_state,
                                               back->optim_steps, &err),
                     0);
    assert_int_equal(gb_server_optim_steps(resumed), 3);
    for (size_t i = 0; i < N; i++)
        delta[i] = (float)(i % 5) * 2e-3f - 4e-3f;
    assert_int_equal(gb_server_optim_step(live, params, delta, N, &err), 0);
    assert_int_equal(gb_server_optim_step(resumed, back->params, delta, N, &err), 0);
    assert_memory_equal(back->params, params, sizeof params);

    /* The round machine starts at the next round with fresh task ids. */
    gb_rounds_config_t rc;
    gb_rounds_config_default(&rc);
    rc.min_clients = 1, rc.min_per_round = 1;
    rc.task_id_base = back->next_task_id - 1;
    gb_rounds_t *r = gb_rounds_new(&rc, back->round, &err);
    assert_non_null(r);
    assert_int_equal(gb_rounds_join(r, "alpha", 10, 0, 1000, &err), 0);
    gb_rounds_action_t a;
    assert_true(gb_rounds_next_action(r, &a));
    assert_int_equal(a.kind, GB_ROUNDS_ACT_SEND_TASK);
    assert_int_equal(a.round, 4);
    assert_int_equal(a.task_id, 31);
    gb_rounds_destroy(&r);
    gb_server_optim_destroy(&resumed);
    gb_server_optim_destroy(&live);
    gb_checkpoint_destroy(&back);
    gb_test_rmtree(dir);
    free(dir);
}

/* ---- damage and fallback ------------------------------------------------- */

static char s_log_path[512];
static int s_saved_stderr = -1;

static void s_capture_begin(const char *dir)
{
    snprintf(s_log_path, sizeof s_log_path, "%s/log.txt", dir);
    fflush(stderr);
    s_saved_stderr = dup(2);
    int fd = open(s_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    gb_log_set_level(GB_LOG_INFO);
}

/* The captured log, malloc'd; removes the log file. */
static char *s_capture_end(void)
{
    fflush(stderr);
    dup2(s_saved_stderr, 2);
    close(s_saved_stderr);
    gb_log_set_level(GB_LOG_OFF);
    uint8_t *data;
    size_t len;
    assert_int_equal(gb_file_read_all(s_log_path, (size_t)1 << 20, &data, &len, NULL), 0);
    char *text = strdup((char *)data);
    gb_free(data);
    unlink(s_log_path);
    return text;
}

static void s_logged(const char *log, const char *level, const char *needle)
{
    const char *at = strstr(log, needle);
    if (!at)
        fail_msg("not logged: %s\nlog:\n%s", needle, log);
    const char *line = at;
    while (line > log && line[-1] != '\n')
        line--;
    char want[16];
    snprintf(want, sizeof want, "Z %-5s ", level);
    const char *lv = strstr(line, want);
    if (!lv || lv > at)
        fail_msg("not at %s: %.*s", level, (int)(at - line) + (int)strlen(needle), line);
}

static void s_flip_file(const char *dir, const char *name, size_t at)
{
    size_t len;
    uint8_t *data = s_read(dir, name, &len);
    assert_true(at < len);
    data[at] ^= 0x10;
    free(gb_test_write_file(dir, name, data, len));
    gb_free(data);
}

static void test_fallback_when_latest_damaged(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    s_save(dir, 1, 5);
    s_save(dir, 2, 5);
    s_save(dir, 3, 5);
    s_flip_file(dir, "checkpoint-3.gbc", 200);
    s_capture_begin(dir);
    s_latest_is(dir, 2);
    char *log = s_capture_end();
    s_logged(log, "error", "checkpoint-3.gbc': checkpoint does not match its SHA-256 (damaged)");
    s_logged(log, "warn", "checkpoint-2.gbc' (round 2), the newest intact checkpoint, because");
    free(log);

    /* Two damaged: the next older one. */
    s_flip_file(dir, "checkpoint-2.gbc", 10);
    s_latest_is(dir, 1);

    /* A later checkpoint than `latest` names was never committed: unused. */
    s_save(dir, 4, 5);
    s_write_text(dir, "latest", "checkpoint-1.gbc\n");
    s_latest_is(dir, 1);
    s_write_text(dir, "latest", "checkpoint-4.gbc\n");

    /* latest names a missing file. */
    s_write_text(dir, "latest", "checkpoint-8.gbc\n");
    s_capture_begin(dir);
    s_latest_is(dir, 4);
    log = s_capture_end();
    s_logged(log, "error", "checkpoint-8.gbc");
    s_logged(log, "warn", "resuming from");
    free(log);

    /* latest holds garbage, a path, too much, or nothing: the newest intact. */
    const char *garbage[] = {"\x01\x02garbage", "../checkpoint-1.gbc", "checkpoint-4.gbc\n\n",
                             "checkpoint-04.gbc", "checkpoint-4.gbc ", "",
                             "checkpoint-99999999999999999999.gbc",
                             /* longer than a name can be */
                             "checkpoint-4.gbc checkpoint-4.gbc checkpoint-4.gbc checkpoint-4.gbc"};
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
        s_write_text(dir, "latest", garbage[i]);
        s_latest_is(dir, 4);
    }
    /* latest missing while checkpoints exist. */
    char *lp = gb_test_path(dir, "latest");
    assert_int_equal(unlink(lp), 0);
    s_capture_begin(dir);
    s_latest_is(dir, 4);
    log = s_capture_end();
    s_logged(log, "error", "holds checkpoint files but no 'latest'");
    free(log);

    /* A file renamed to another round is refused. */
    char *p3 = gb_test_path(dir, "checkpoint-3.gbc"), *p4 = gb_test_path(dir, "checkpoint-4.gbc");
    assert_int_equal(rename(p4, p3), 0);
    s_write_text(dir, "latest", "checkpoint-3.gbc\n");
    s_latest_is(dir, 1);
    free(p3);
    free(p4);
    free(lp);
    gb_test_rmtree(dir);
    free(dir);
}

/* A saved checkpoint cut at every 97th byte: the previous one is used. */
static void test_truncated_file_falls_back(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    s_save(dir, 1, 3);
    s_save(dir, 2, 3);
    size_t len;
    uint8_t *data = s_read(dir, "checkpoint-2.gbc", &len);
    size_t cuts = 0;
    for (size_t cut = 0; cut < len; cut += 97, cuts++) {
        free(gb_test_write_file(dir, "checkpoint-2.gbc", data, cut));
        s_latest_is(dir, 1);
    }
    assert_true(cuts >= 15);
    free(gb_test_write_file(dir, "checkpoint-2.gbc", data, len));
    s_latest_is(dir, 2);
    gb_free(data);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_nothing_usable(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_checkpoint_t *c = (gb_checkpoint_t *)0x1;
    gb_error_t err;
    gb_error_clear(&err);

    /* Empty, or only files that are not checkpoints: start afresh. */
    assert_int_equal(gb_checkpoint_load_latest(dir, &c, &err), 0);
    assert_null(c);
    s_write_text(dir, "model-3.gbm", "x");
    s_write_text(dir, "checkpoint-x.gbc", "x");
    s_write_text(dir, "checkpoint-3.gbc.old", "x");
    assert_int_equal(gb_checkpoint_load_latest(dir, &c, &err), 0);
    assert_null(c);

    /* Garbage latest and no checkpoint: an error, not a fresh start. */
    s_write_text(dir, "latest", "nonsense");
    assert_int_equal(gb_checkpoint_load_latest(dir, &c, &err), GB_EFORMAT);
    assert_null(c);
    assert_non_null(strstr(err.msg, "does not hold a checkpoint file name"));

    /* Every checkpoint damaged: the latest one's problem, naming it. */
    s_save(dir, 1, 3);
    s_save(dir, 2, 3);
    s_flip_file(dir, "checkpoint-1.gbc", 30);
    s_flip_file(dir, "checkpoint-2.gbc", 30);
    assert_int_equal(gb_checkpoint_load_latest(dir, &c, &err), GB_EINTEGRITY);
    assert_null(c);
    assert_non_null(strstr(err.msg, "checkpoint-2.gbc': checkpoint does not match its SHA-256"));
    assert_non_null(strstr(err.msg, "1 other checkpoint file tried"));

    /* A newer format is reported, not skipped for an older round. */
    gb_test_rmtree(dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    s_save(dir, 1, 3);
    size_t len;
    uint8_t *v2 = s_hostile(m_version2, false, &len);
    free(gb_test_write_file(dir, "checkpoint-7.gbc", v2, len));
    free(v2);
    s_write_text(dir, "latest", "checkpoint-7.gbc\n");
    assert_int_equal(gb_checkpoint_load_latest(dir, &c, &err), GB_EPROTO);
    assert_null(c);

    /* Missing directory, or not a directory. */
    char *missing = gb_test_path(dir, "nope");
    assert_int_equal(gb_checkpoint_load_latest(missing, &c, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "does not exist"));
    char *file = gb_test_path(dir, "checkpoint-1.gbc");
    assert_int_equal(gb_checkpoint_load_latest(file, &c, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "is not a directory"));
    assert_int_equal(gb_checkpoint_load(missing, &c, &err), GB_EIO);
    assert_null(c);

    assert_int_equal(gb_checkpoint_load_latest(NULL, &c, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_load_latest(dir, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_load(NULL, &c, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_load(file, NULL, &err), GB_EINVAL);
    free(file);
    free(missing);
    gb_test_rmtree(dir);
    free(dir);
}

/* A file over the size limit is refused before it is read. */
static void test_too_big(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *p = gb_test_path(dir, "checkpoint-1.gbc");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)GB_CHECKPOINT_MAX_BYTES + 1), 0); /* sparse */
    close(fd);
    gb_checkpoint_t *c = NULL;
    gb_error_t err;
    assert_int_equal(gb_checkpoint_load(p, &c, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "more than the limit"));
    free(p);
    gb_test_rmtree(dir);
    free(dir);
}

/* A failed save changes nothing `latest` leads to. */
static void test_save_failures_keep_old_state(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    fix_t f;
    s_fix(&f, 2);
    gb_error_t err;

    char *missing = gb_test_path(dir, "nope");
    assert_int_equal(gb_checkpoint_save(missing, &f.c, 2, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_false(gb_test_exists(missing));
    free(missing);

    s_save(dir, 1, 2);
    char *file = gb_test_path(dir, "checkpoint-1.gbc");
    assert_int_equal(gb_checkpoint_save(file, &f.c, 2, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "is not a directory"));
    free(file);

    /* NaN on save: refused before anything is written. */
    f.params[3] = NAN;
    assert_int_equal(gb_checkpoint_save(dir, &f.c, 2, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "parameter 3 of 136 is NaN"));
    assert_false(s_exists(dir, "checkpoint-2.gbc"));
    s_fix(&f, 2);
    f.state[N + 2] = NAN;
    assert_int_equal(gb_checkpoint_save(dir, &f.c, 2, &err), GB_ERANGE);
    assert_false(s_exists(dir, "checkpoint-2.gbc"));
    s_fix(&f, 2);

    /* The model file cannot be written (a directory is in its place): the
     * checkpoint is written but not committed. */
    char *blocker = gb_test_path(dir, "model-2.gbm");
    assert_int_equal(mkdir(blocker, 0700), 0);
    assert_int_equal(gb_checkpoint_save(dir, &f.c, 1, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "model-2.gbm"));
    s_latest_is(dir, 1);
    assert_true(s_exists(dir, "checkpoint-1.gbc"));
    assert_int_equal(rmdir(blocker), 0);
    free(blocker);

    /* `latest` cannot be replaced. */
    char *lp = gb_test_path(dir, "latest"), *moved = gb_test_path(dir, "latest-saved");
    assert_int_equal(rename(lp, moved), 0);
    assert_int_equal(mkdir(lp, 0700), 0);
    assert_int_equal(gb_checkpoint_save(dir, &f.c, 1, &err), GB_EIO);
    assert_int_equal(rmdir(lp), 0);
    assert_int_equal(rename(moved, lp), 0);
    s_latest_is(dir, 1);
    assert_true(s_exists(dir, "checkpoint-1.gbc")); /* nothing pruned */
    free(lp);
    free(moved);

    /* A directory that cannot be written (root writes anywhere). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(dir, 0500), 0);
        assert_int_equal(gb_checkpoint_save(dir, &f.c, 1, &err), GB_EIO);
        assert_int_equal(chmod(dir, 0700), 0);
        s_latest_is(dir, 1);
    }

    assert_int_equal(gb_checkpoint_save(dir, &f.c, 0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "keep must be at least 1"));
    assert_int_equal(gb_checkpoint_save(NULL, &f.c, 1, &err), GB_EINVAL);
    assert_int_equal(gb_checkpoint_save(dir, NULL, 1, &err), GB_EINVAL);
    s_latest_is(dir, 1);
    s_save(dir, 2, 1);
    s_latest_is(dir, 2);
    gb_test_rmtree(dir);
    free(dir);
}

/* The fuzz target's seeds still decode (a codec change that breaks them
 * shows here, not as a silently different seed). */
static void test_fuzz_seeds_decode(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint64_t round;
        const char *optimizer;
    } seeds[] = {{"dense_fedadam.gbc", 3, "fedadam:lr=0.01"},
                 {"sgd_round0.gbc", 0, "sgd"},
                 {"conv_fedyogi.gbc", 9, "fedyogi"}};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/checkpoint/%s", seeds[i].name);
        char *p = gb_test_source_path(rel);
        gb_checkpoint_t *c = NULL;
        gb_error_t err;
        gb_error_clear(&err);
        if (gb_checkpoint_load(p, &c, &err) != 0)
            fail_msg("%s: %s", seeds[i].name, err.msg);
        assert_int_equal(c->round, seeds[i].round);
        assert_string_equal(c->server_optimizer, seeds[i].optimizer);
        gb_checkpoint_destroy(&c);
        free(p);
    }
}

/* The writer's bytes do not drift: the fixture encodes to exactly the bytes
 * (by SHA-256) the encoder wrote before the embedded model was built by
 * net/snapshot.c, and each committed seed, decoded and encoded again, gives
 * back its file byte for byte. So files written by older builds and by this
 * one are the same format. */
static void test_bytes_unchanged(void **state)
{
    (void)state;
    static const char want_hex[] = "a8fbd3a35acbe17b7796c0733bef377aa9257555c843d3d47683efd8aea5bf99";
    fix_t f;
    s_fix(&f, 5);
    uint8_t *buf = NULL;
    size_t len = 0;
    s_encode(&f.c, &buf, &len);
    uint8_t digest[32];
    s_sha256(buf, len, digest);
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(hex, want_hex);
    gb_free(buf);

    static const char *const seeds[] = {"dense_fedadam.gbc", "sgd_round0.gbc",
                                        "conv_fedyogi.gbc"};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/checkpoint/%s", seeds[i]);
        char *p = gb_test_source_path(rel);
        uint8_t *file = NULL;
        size_t file_len = 0;
        gb_error_t err;
        gb_error_clear(&err);
        if (gb_file_read_all(p, GB_CHECKPOINT_MAX_BYTES, &file, &file_len, &err) != 0)
            fail_msg("%s: %s", seeds[i], err.msg);
        gb_checkpoint_t *c = NULL;
        if (gb_checkpoint_decode(file, file_len, &c, &err) != 0)
            fail_msg("%s: %s", seeds[i], err.msg);
        s_encode(c, &buf, &len);
        assert_int_equal(len, file_len);
        assert_memory_equal(buf, file, len);
        gb_free(buf);
        gb_free(file);
        gb_checkpoint_destroy(&c);
        free(p);
    }
}

/* ---- allocation failures ------------------------------------------------- */

static void test_alloc_failures(void **state)
{
    (void)state;
    fix_t f;
    s_fix(&f, 5);
    gb_error_t err;
    uint8_t *buf = NULL;
    size_t len = 0;
    long i;
    for (i = 1; i < 1000; i++) {
        gb_alloc_fail_after(i);
        int rc = gb_checkpoint_encode(&f.c, &buf, &len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(buf);
    }
    assert_true(i > 1 && i < 1000);

    gb_checkpoint_t *c = NULL;
    for (i = 1; i < 1000; i++) {
        gb_alloc_fail_after(i);
        int rc = gb_checkpoint_decode(buf, len, &c, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(c);
    }
    assert_true(i > 1 && i < 1000);
    s_assert_same(c, &f.c);
    gb_checkpoint_destroy(&c);
    gb_free(buf);

    /* Save: every failure is reported and leaves round 4 loadable. */
    char *dir = gb_test_mkdtemp();
    s_save(dir, 3, 2);
    s_save(dir, 4, 2);
    for (i = 1; i < 2000; i++) {
        gb_alloc_fail_after(i);
        int rc = gb_checkpoint_save(dir, &f.c, 2, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        s_latest_is(dir, 4);
    }
    assert_true(i > 1 && i < 2000);
    s_latest_is(dir, 5);

    /* Load: an allocation failure is reported, never taken for damage (no
     * fallback to round 4). */
    for (i = 1; i < 2000; i++) {
        gb_alloc_fail_after(i);
        int rc = gb_checkpoint_load_latest(dir, &c, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(c);
    }
    assert_true(i > 1 && i < 2000);
    assert_int_equal(c->round, 5);
    gb_checkpoint_destroy(&c);
    gb_test_rmtree(dir);
    free(dir);
}

/* The room check: what the file system has free plus what our checkpoint
 * and model files hold (pruning frees it) against keep + 1 checkpoints. */
static void test_check_room(void **state)
{
    (void)state;
    gb_error_t err = {0};
    char *dir = gb_test_mkdtemp();
    assert_int_equal(gb_checkpoint_check_room(dir, 4096, 3, &err), 0);
    /* more than any disk: refused, naming the directory, the need and --keep */
    uint64_t huge = UINT64_C(1) << 50;
    assert_int_equal(gb_checkpoint_check_room(dir, huge, 3, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "cannot hold 3 checkpoints"));
    assert_non_null(strstr(err.msg, "lower --keep"));
    char need[64];
    snprintf(need, sizeof need, "%" PRIu64 " KiB (3 kept", (huge * 4) >> 10);
    assert_non_null(strstr(err.msg, need));
    /* files already held count as room: a directory whose checkpoint files
     * hold what is needed passes even if the disk had nothing free (here
     * the held bytes alone cover need for keep 1 of 3000 bytes) */
    char big[4000];
    memset(big, 'x', sizeof big);
    free(gb_test_write_file(dir, "checkpoint-1.gbc", big, sizeof big));
    free(gb_test_write_file(dir, "model-1.gbm", big, sizeof big));
    free(gb_test_write_file(dir, "not-ours.bin", big, sizeof big));
    assert_int_equal(gb_checkpoint_check_room(dir, 3000, 1, &err), 0);
    /* a directory that is not there cannot be asked */
    char gone[600];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    assert_int_equal(gb_checkpoint_check_room(gone, 1, 1, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "gone"));
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_preset_saved_expanded),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_decode_refuses_hostile),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_save_load_and_retention),
        cmocka_unit_test(test_model_file),
        cmocka_unit_test(test_resume_exactly),
        cmocka_unit_test(test_fallback_when_latest_damaged),
        cmocka_unit_test(test_truncated_file_falls_back),
        cmocka_unit_test(test_nothing_usable),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_save_failures_keep_old_state),
        cmocka_unit_test(test_fuzz_seeds_decode),
        cmocka_unit_test(test_bytes_unchanged),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_check_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
