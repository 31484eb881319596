/* Tests for net/snapshot, the model file: bit-identical round trips through
 * memory, files and models; and refusal of everything a hostile or damaged
 * file can hold: every truncation point, flipped parameter or hash bytes,
 * wrong lengths and counts, NaN and Inf, bad or mismatched specs, wrong
 * versions, bad metadata, oversized input, allocation bombs; plus
 * allocation-failure injection through encode, decode, load and save.
 *
 * Hostile messages are built here with the generated protobuf-c code and a
 * correct SHA-256, so each one reaches the check it is meant to trip. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "glassbox.pb-c.h"
#include "net/snapshot.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

/* dense 4 -> 3: weight 3x4 then bias 3 = 15 parameters. */
#define SPEC "input 4\ndense 3\n"
#define N_PARAMS 15

static void s_fill_params(float *p)
{
    const float special[] = {-0.0f, 1e-45f /* denormal */, FLT_MIN, FLT_MAX, -FLT_MAX,
                             1.0f / 3.0f, -2.5f};
    for (size_t i = 0; i < N_PARAMS; i++)
        p[i] = i < sizeof special / sizeof special[0] ? special[i] : (float)i * 0.1f - 0.7f;
}

static gb_snapshot_t *s_make(void)
{
    float p[N_PARAMS];
    s_fill_params(p);
    gb_error_t err;
    gb_error_clear(&err);
    gb_snapshot_t *s = gb_snapshot_new(SPEC, p, N_PARAMS, 42, &err);
    assert_non_null(s);
    assert_int_equal(gb_snapshot_meta_set(s, "dataset", "fashion-mnist iid 3/10", &err), 0);
    assert_int_equal(gb_snapshot_meta_set(s, "trained_samples", "6000", &err), 0);
    assert_int_equal(gb_snapshot_meta_set(s, "note", "Größe ✓ \xf0\x9f\x99\x82", &err), 0);
    return s;
}

static void s_encode(const gb_snapshot_t *s, uint8_t **buf, size_t *len)
{
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_snapshot_encode(s, buf, len, &err);
    if (rc != 0)
        fail_msg("encode: %s", err.msg);
}

static void s_assert_same(const gb_snapshot_t *a, const gb_snapshot_t *b)
{
    assert_string_equal(a->spec, b->spec);
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float)); /* bits, -0 too */
    assert_int_equal(a->round, b->round);
    assert_int_equal(a->n_meta, b->n_meta);
    for (size_t i = 0; i < a->n_meta; i++) {
        assert_string_equal(a->meta[i].key, b->meta[i].key);
        assert_string_equal(a->meta[i].value, b->meta[i].value);
    }
}

/* Decodes and expects failure with `code`, no snapshot, and (if not NULL)
 * `needle` in the message. */
static void s_expect_refused(const uint8_t *buf, size_t len, int code, const char *needle)
{
    gb_snapshot_t *out = (gb_snapshot_t *)&out; /* must be reset to NULL */
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_snapshot_decode(buf, len, &out, &err);
    if (rc != code)
        fail_msg("expected %s, got %d (%s)", gb_strerror(code), rc, err.msg);
    assert_null(out);
    assert_int_equal(err.code, code);
    if (needle && !strstr(err.msg, needle))
        fail_msg("'%s' not in '%s'", needle, err.msg);
}

/* ---- hand-built messages ------------------------------------------------ */

typedef struct {
    uint32_t version;
    const char *spec;
    const void *params;
    size_t params_len;
    uint64_t count;
    int sha_len;           /* bytes of the correct SHA-256 to store; -1: 32 */
    const char *const *kv; /* key, value, key, value, ..., NULL */
} s_raw_t;

static void s_pack_raw(const s_raw_t *r, uint8_t **buf, size_t *len)
{
    uint8_t sha[32];
    unsigned sha_len = 0;
    assert_int_equal(EVP_Digest(r->params_len ? r->params : "", r->params_len, sha, &sha_len,
                                EVP_sha256(), NULL),
                     1);
    Glassbox__ModelSnapshot m = GLASSBOX__MODEL_SNAPSHOT__INIT;
    m.format_version = r->version;
    m.spec = (char *)r->spec;
    m.params.data = (uint8_t *)r->params;
    m.params.len = r->params_len;
    m.param_count = r->count;
    m.round = 7;
    m.params_sha256.data = sha;
    m.params_sha256.len = r->sha_len < 0 ? 32 : (size_t)r->sha_len;
    Glassbox__KeyValue kv[8], *kvp[8];
    size_t n = 0;
    for (; r->kv && r->kv[2 * n]; n++) {
        assert_true(n < 8);
        glassbox__key_value__init(&kv[n]);
        kv[n].key = (char *)r->kv[2 * n];
        kv[n].value = (char *)r->kv[2 * n + 1];
        kvp[n] = &kv[n];
    }
    m.n_metadata = n;
    m.metadata = kvp;
    *len = glassbox__model_snapshot__get_packed_size(&m);
    *buf = malloc(*len ? *len : 1);
    assert_non_null(*buf);
    assert_int_equal(glassbox__model_snapshot__pack(&m, *buf), *len);
}

/* A valid raw message to start from. */
static s_raw_t s_raw_ok(const float *params)
{
    return (s_raw_t){.version = GB_SNAPSHOT_FORMAT_VERSION,
                     .spec = SPEC,
                     .params = params,
                     .params_len = N_PARAMS * sizeof(float),
                     .count = N_PARAMS,
                     .sha_len = -1};
}

static void s_expect_raw_refused(const s_raw_t *r, int code, const char *needle)
{
    uint8_t *buf;
    size_t len;
    s_pack_raw(r, &buf, &len);
    s_expect_refused(buf, len, code, needle);
    free(buf);
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_memory(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);

    gb_snapshot_t *d = NULL;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_decode(buf, len, &d, &err), 0);
    assert_non_null(d);
    s_assert_same(s, d);
    assert_string_equal(gb_snapshot_meta_get(d, "trained_samples"), "6000");
    assert_null(gb_snapshot_meta_get(d, "absent"));

    /* Re-encoding the decoded snapshot gives the same bytes. */
    uint8_t *again;
    size_t again_len;
    s_encode(d, &again, &again_len);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, buf, len);

    /* The parameters are stored as plain little-endian float32. */
    float p[N_PARAMS];
    s_fill_params(p);
    assert_non_null(memmem(buf, len, p, sizeof p));

    gb_free(again);
    gb_free(buf);
    gb_snapshot_destroy(&d);
    gb_snapshot_destroy(&s);
    assert_null(s);
    gb_snapshot_destroy(&s); /* NULL-safe */
    gb_snapshot_destroy(NULL);
}

/* A caller-owned struct pointing at borrowed memory encodes the same. */
static void test_encode_borrowed_struct(void **state)
{
    (void)state;
    float p[N_PARAMS];
    s_fill_params(p);
    char spec[] = SPEC;
    gb_snapshot_meta_t meta[] = {{.key = "dataset", .value = "x"}};
    gb_snapshot_t view = {.spec = spec, .params = p, .n_params = N_PARAMS, .round = 3,
                          .meta = meta, .n_meta = 1};
    uint8_t *buf;
    size_t len;
    s_encode(&view, &buf, &len);
    gb_snapshot_t *d = NULL;
    assert_int_equal(gb_snapshot_decode(buf, len, &d, NULL), 0);
    s_assert_same(&view, d);
    gb_snapshot_destroy(&d);
    gb_free(buf);
}

static void test_unknown_fields_accepted(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    /* A newer writer's field 100 (varint 5) after ours: skipped. */
    uint8_t *more = malloc(len + 3);
    assert_non_null(more);
    memcpy(more, buf, len);
    more[len] = 0xa0; /* (100 << 3 | 0) as varint: 0xa0 0x06 */
    more[len + 1] = 0x06;
    more[len + 2] = 0x05;
    gb_snapshot_t *d = NULL;
    assert_int_equal(gb_snapshot_decode(more, len + 3, &d, NULL), 0);
    s_assert_same(s, d);
    gb_snapshot_destroy(&d);
    free(more);
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

static void test_save_load_and_models(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t cap = strlen(dir) + 32;
    char *path = malloc(cap);
    assert_non_null(path);
    snprintf(path, cap, "%s/model.gbm", dir);
    gb_error_t err;
    gb_error_clear(&err);

    gb_snapshot_t *s = s_make();
    assert_int_equal(gb_snapshot_save(path, s, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, GB_SNAPSHOT_FILE_MODE);
    gb_snapshot_t *l = NULL;
    assert_int_equal(gb_snapshot_load(path, &l, &err), 0);
    s_assert_same(s, l);

    /* Into a model: the parameters are the snapshot's, bit for bit. */
    gb_model_t *m = gb_snapshot_to_model(l, &err);
    assert_non_null(m);
    assert_int_equal(gb_model_param_count(m), N_PARAMS);
    assert_memory_equal(gb_model_params(m), s->params, sizeof(float) * N_PARAMS);

    /* A model's snapshot is its spec and parameters. */
    gb_snapshot_t *fm = gb_snapshot_from_model(m, 9, &err);
    assert_non_null(fm);
    assert_string_equal(fm->spec, SPEC);
    assert_int_equal(fm->round, 9);
    assert_int_equal(fm->n_meta, 0);
    assert_memory_equal(fm->params, s->params, sizeof(float) * N_PARAMS);
    gb_snapshot_destroy(&fm);

    /* save_model stamps created_at and the version; caller metadata wins. */
    gb_model_init(m, 1234);
    gb_snapshot_meta_t meta[] = {{.key = "dataset", .value = "unit test"},
                                 {.key = GB_SNAPSHOT_META_VERSION, .value = "override"}};
    assert_int_equal(gb_snapshot_save_model(path, m, 5, meta, 2, &err), 0);
    uint64_t round = 0;
    gb_model_t *m2 = gb_snapshot_load_model(path, &round, &err);
    assert_non_null(m2);
    assert_int_equal(round, 5);
    assert_memory_equal(gb_model_params(m2), gb_model_params(m), sizeof(float) * N_PARAMS);
    gb_snapshot_t *l2 = NULL;
    assert_int_equal(gb_snapshot_load(path, &l2, &err), 0);
    const char *created = gb_snapshot_meta_get(l2, GB_SNAPSHOT_META_CREATED_AT);
    assert_non_null(created);
    assert_int_equal(strlen(created), 20); /* 2025-01-31T12:00:00Z */
    assert_int_equal(created[10], 'T');
    assert_int_equal(created[19], 'Z');
    assert_string_equal(gb_snapshot_meta_get(l2, GB_SNAPSHOT_META_VERSION), "override");
    assert_string_equal(gb_snapshot_meta_get(l2, "dataset"), "unit test");

    /* load_model without a round pointer works too. */
    gb_model_t *m3 = gb_snapshot_load_model(path, NULL, &err);
    assert_non_null(m3);

    gb_model_destroy(&m3);
    gb_snapshot_destroy(&l2);
    gb_model_destroy(&m2);
    gb_model_destroy(&m);
    gb_snapshot_destroy(&l);
    gb_snapshot_destroy(&s);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

/* Presets are stored as their text, so the file stands alone. */
static void test_preset_stored_expanded(void **state)
{
    (void)state;
    gb_error_t err;
    gb_error_clear(&err);
    gb_model_t *m = gb_model_new("mlp", &err);
    assert_non_null(m);
    gb_model_init(m, 1);
    gb_snapshot_t *s = gb_snapshot_from_model(m, 1, &err);
    assert_non_null(s);
    assert_string_equal(s->spec, gb_spec_preset("mlp"));
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    gb_snapshot_t *d = NULL;
    assert_int_equal(gb_snapshot_decode(buf, len, &d, &err), 0);
    s_assert_same(s, d);
    gb_snapshot_destroy(&d);
    gb_free(buf);
    gb_snapshot_destroy(&s);

    s = gb_snapshot_new("lenet", NULL, 0, 0, &err);
    assert_non_null(s);
    assert_string_equal(s->spec, gb_spec_preset("lenet"));
    gb_snapshot_destroy(&s);
    gb_model_destroy(&m);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_every_truncation_refused(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    for (size_t cut = 0; cut < len; cut++) {
        /* An exact-size copy, so reading past the cut is an ASan error. */
        uint8_t *part = malloc(cut ? cut : 1);
        assert_non_null(part);
        memcpy(part, buf, cut);
        gb_snapshot_t *out = NULL;
        gb_error_t err;
        gb_error_clear(&err);
        int rc = gb_snapshot_decode(part, cut, &out, &err);
        if (rc >= 0)
            fail_msg("truncation at %zu of %zu accepted", cut, len);
        assert_null(out);
        assert_true(err.msg[0] != '\0');
        free(part);
    }
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

static void test_flipped_bytes_refused(void **state)
{
    (void)state;
    float p[N_PARAMS];
    s_fill_params(p);
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    uint8_t *at = memmem(buf, len, p, sizeof p);
    assert_non_null(at);
    for (size_t i = 0; i < sizeof p; i++) {
        at[i] ^= 0x01;
        s_expect_refused(buf, len, GB_EINTEGRITY, "SHA-256");
        at[i] ^= 0x01;
    }
    /* The stored hash itself: the last 32 bytes. */
    for (size_t i = len - 32; i < len; i++) {
        buf[i] ^= 0x80;
        s_expect_refused(buf, len, GB_EINTEGRITY, "SHA-256");
        buf[i] ^= 0x80;
    }
    gb_snapshot_t *d = NULL;
    assert_int_equal(gb_snapshot_decode(buf, len, &d, NULL), 0); /* restored: fine again */
    gb_snapshot_destroy(&d);
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

static void test_wrong_lengths_refused(void **state)
{
    (void)state;
    float p[N_PARAMS + 1];
    s_fill_params(p);
    p[N_PARAMS] = 0.5f;

    s_raw_t r = s_raw_ok(p);
    r.params_len = N_PARAMS * 4 + 1; /* not a multiple of 4 */
    s_expect_raw_refused(&r, GB_EFORMAT, "multiple of 4");

    r = s_raw_ok(p);
    r.count = N_PARAMS + 1; /* stated count disagrees with the bytes */
    s_expect_raw_refused(&r, GB_EFORMAT, "16");

    r = s_raw_ok(p);
    r.params_len = (N_PARAMS + 1) * 4; /* consistent, but not what the spec implies */
    r.count = N_PARAMS + 1;
    s_expect_raw_refused(&r, GB_ESHAPE, "implies 15");

    r = s_raw_ok(p);
    r.params_len = 0;
    r.count = 0;
    s_expect_raw_refused(&r, GB_ESHAPE, "implies 15");

    r = s_raw_ok(p);
    r.sha_len = 31;
    s_expect_raw_refused(&r, GB_EFORMAT, "SHA-256");

    r = s_raw_ok(p);
    r.sha_len = 0; /* no hash at all */
    s_expect_raw_refused(&r, GB_EFORMAT, "SHA-256");
}

static void test_nan_and_inf_refused(void **state)
{
    (void)state;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < 3; k++) {
        float p[N_PARAMS];
        s_fill_params(p);
        p[7] = bad[k];
        s_raw_t r = s_raw_ok(p);
        s_expect_raw_refused(&r, GB_ERANGE, "parameter 7");

        /* The encoder refuses to write it in the first place. */
        gb_snapshot_t *s = gb_snapshot_new(SPEC, p, N_PARAMS, 1, NULL);
        assert_non_null(s);
        uint8_t *buf = (uint8_t *)"x";
        size_t len = 1;
        gb_error_t err;
        gb_error_clear(&err);
        assert_int_equal(gb_snapshot_encode(s, &buf, &len, &err), GB_ERANGE);
        assert_null(buf);
        assert_int_equal(len, 0);
        assert_non_null(strstr(err.msg, "parameter 7"));
        assert_non_null(strstr(err.msg, k == 0 ? "NaN" : "infinite"));
        gb_snapshot_destroy(&s);
    }
}

static void test_bad_specs_refused(void **state)
{
    (void)state;
    float p[N_PARAMS];
    s_fill_params(p);

    s_raw_t r = s_raw_ok(p);
    r.spec = "input 4\nfrobnicate 3\n";
    s_expect_raw_refused(&r, GB_ESPEC, "spec line 2");

    r.spec = "input 4\ndense 2\n"; /* parses, but 10 parameters */
    s_expect_raw_refused(&r, GB_ESHAPE, "implies 10");

    r.spec = "input 1 4 4\nconv 2 9\n"; /* parses, shapes do not fit */
    s_expect_raw_refused(&r, GB_ESHAPE, "kernel 9");

    /* A tiny message whose spec implies 256M parameters is refused without
     * allocating them: peak memory must not grow by anything like 1 GiB. */
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    r.spec = "input 16000\ndense 16000\n";
    s_expect_raw_refused(&r, GB_ESHAPE, "implies 256016000");
    r.spec = "input 100000\ndense 100000\ndense 100000\n"; /* over GB_MODEL_MAX_PARAMS */
    s_expect_raw_refused(&r, GB_ESHAPE, "too large");
    getrusage(RUSAGE_SELF, &after);
    assert_true(after.ru_maxrss - before.ru_maxrss < 256 * 1024);

    r.spec = "";
    s_expect_raw_refused(&r, GB_EFORMAT, "no spec");

    r.spec = "input 4\x1b[2J\ndense 3\n"; /* control characters */
    s_expect_raw_refused(&r, GB_EFORMAT, "control");

    r.spec = "input 4\n# \xc3\x28\ndense 3\n"; /* bad UTF-8 */
    s_expect_raw_refused(&r, GB_EFORMAT, "UTF-8");

    char *huge = malloc(GB_SNAPSHOT_MAX_SPEC + 2);
    assert_non_null(huge);
    memset(huge, '#', GB_SNAPSHOT_MAX_SPEC + 1);
    huge[GB_SNAPSHOT_MAX_SPEC + 1] = '\0';
    r.spec = huge;
    s_expect_raw_refused(&r, GB_ERANGE, "longer");
    free(huge);

    /* The encoder checks the same. */
    gb_error_t err;
    gb_error_clear(&err);
    uint8_t *buf;
    size_t len;
    gb_snapshot_t *s = gb_snapshot_new("input 4\nfrobnicate 3\n", p, N_PARAMS, 1, NULL);
    assert_int_equal(gb_snapshot_encode(s, &buf, &len, &err), GB_ESPEC);
    gb_snapshot_destroy(&s);
    s = gb_snapshot_new("input 4\ndense 2\n", p, N_PARAMS, 1, NULL);
    assert_int_equal(gb_snapshot_encode(s, &buf, &len, &err), GB_ESHAPE);
    /* ... and so does building a model from a mismatched snapshot. */
    gb_error_clear(&err);
    assert_null(gb_snapshot_to_model(s, &err));
    assert_int_equal(err.code, GB_ESHAPE);
    gb_snapshot_destroy(&s);
}

static void test_versions_refused(void **state)
{
    (void)state;
    float p[N_PARAMS];
    s_fill_params(p);
    s_raw_t r = s_raw_ok(p);
    r.version = GB_SNAPSHOT_FORMAT_VERSION + 1;
    s_expect_raw_refused(&r, GB_EPROTO, "version 2");
    r.version = 0;
    s_expect_raw_refused(&r, GB_EFORMAT, "no format version");
}

static void test_metadata_checks(void **state)
{
    (void)state;
    float p[N_PARAMS];
    s_fill_params(p);
    s_raw_t r = s_raw_ok(p);
    const char *dup[] = {"a", "1", "b", "2", "a", "3", NULL};
    r.kv = dup;
    s_expect_raw_refused(&r, GB_EFORMAT, "twice");
    const char *bad_key[] = {"bad key", "1", NULL};
    r.kv = bad_key;
    s_expect_raw_refused(&r, GB_EFORMAT, "bad key");
    const char *empty_key[] = {"", "1", NULL};
    r.kv = empty_key;
    s_expect_raw_refused(&r, GB_EFORMAT, "key");
    const char *ctrl[] = {"k", "line\nbreak", NULL};
    r.kv = ctrl;
    s_expect_raw_refused(&r, GB_EFORMAT, "control");
    const char *utf[] = {"k", "\xed\xa0\x80", NULL}; /* a UTF-16 surrogate */
    r.kv = utf;
    s_expect_raw_refused(&r, GB_EFORMAT, "UTF-8");
    const char *lead[] = {"k", "\xff", NULL}; /* never valid */
    r.kv = lead;
    s_expect_raw_refused(&r, GB_EFORMAT, "UTF-8");
    const char *cut[] = {"k", "ok \xf0\x9f\x99", NULL}; /* 4-byte sequence cut short */
    r.kv = cut;
    s_expect_raw_refused(&r, GB_EFORMAT, "UTF-8");
    const char *overlong[] = {"k", "\xc0\xaf", NULL}; /* '/' in two bytes */
    r.kv = overlong;
    s_expect_raw_refused(&r, GB_EFORMAT, "UTF-8");

    /* meta_set: validation, replacement in place, the entry limit. */
    gb_snapshot_t *s = gb_snapshot_new(SPEC, p, N_PARAMS, 0, NULL);
    assert_non_null(s);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_meta_set(s, "k/v", "x", &err), GB_EINVAL);
    assert_int_equal(gb_snapshot_meta_set(s, "k", "tab\there", &err), GB_EINVAL);
    assert_int_equal(gb_snapshot_meta_set(s, "k", NULL, &err), GB_EINVAL);
    char long_value[GB_SNAPSHOT_MAX_VALUE + 2];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    assert_int_equal(gb_snapshot_meta_set(s, "k", long_value, &err), GB_EINVAL);
    long_value[GB_SNAPSHOT_MAX_VALUE] = '\0';
    assert_int_equal(gb_snapshot_meta_set(s, "k", long_value, &err), 0);
    assert_int_equal(gb_snapshot_meta_set(s, "k", "second", &err), 0);
    assert_int_equal(s->n_meta, 1);
    assert_string_equal(gb_snapshot_meta_get(s, "k"), "second");
    for (int i = 1; i < GB_SNAPSHOT_MAX_META; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(gb_snapshot_meta_set(s, key, "v", &err), 0);
    }
    assert_int_equal(gb_snapshot_meta_set(s, "one-too-many", "v", &err), GB_EINVAL);
    assert_int_equal(gb_snapshot_meta_set(s, "k", "replacing still works", &err), 0);
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    gb_snapshot_t *d = NULL;
    assert_int_equal(gb_snapshot_decode(buf, len, &d, &err), 0);
    s_assert_same(s, d);
    gb_snapshot_destroy(&d);
    gb_free(buf);

    /* A caller-built struct with too many entries is refused by encode. */
    gb_snapshot_t view = *s;
    view.n_meta = GB_SNAPSHOT_MAX_META + 1;
    gb_snapshot_meta_t *many = calloc(view.n_meta, sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i < view.n_meta; i++)
        many[i] = s->meta[i % GB_SNAPSHOT_MAX_META];
    view.meta = many;
    assert_int_equal(gb_snapshot_encode(&view, &buf, &len, &err), GB_EINVAL);
    free(many);
    gb_snapshot_destroy(&s);
}

static void test_oversized_and_garbage_refused(void **state)
{
    (void)state;
    /* Refused on the length alone: the buffer is 1 byte, ASan would catch a read. */
    uint8_t one = 0;
    s_expect_refused(&one, GB_SNAPSHOT_MAX_BYTES + 1, GB_ERANGE, "limit");
    s_expect_refused(NULL, 0, GB_EFORMAT, "no format version");

    uint8_t garbage[257];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 151 + 17);
    gb_snapshot_t *out = NULL;
    assert_true(gb_snapshot_decode(garbage, sizeof garbage, &out, NULL) < 0);
    assert_null(out);

    /* An allocation bomb: 100000 empty metadata entries in 200 kB would make
     * protobuf-c allocate ~5 MB; the unpack budget stops it. */
    size_t n = 200000;
    uint8_t *bomb = malloc(n);
    assert_non_null(bomb);
    for (size_t i = 0; i < n; i += 2) {
        bomb[i] = 0x32; /* field 6, length-delimited */
        bomb[i + 1] = 0x00;
    }
    s_expect_refused(bomb, n, GB_EFORMAT, "too much memory");
    free(bomb);

    /* A file over the limit is refused before it is read (sparse: no disk used). */
    char *dir = gb_test_mkdtemp();
    char *big = gb_test_write_file(dir, "big.gbm", "", 0);
    assert_int_equal(truncate(big, (off_t)GB_SNAPSHOT_MAX_BYTES + 1), 0);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_load(big, &out, &err), GB_ERANGE);
    assert_null(out);
    assert_non_null(strstr(err.msg, big));
    char *junk = gb_test_write_file(dir, "junk.gbm", garbage, sizeof garbage);
    assert_true(gb_snapshot_load(junk, &out, &err) < 0);
    assert_non_null(strstr(err.msg, junk));
    assert_null(out);
    free(junk);
    free(big);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_missing_file_and_bad_paths(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t cap = strlen(dir) + 32;
    char *path = malloc(cap);
    assert_non_null(path);
    snprintf(path, cap, "%s/absent.gbm", dir);
    gb_snapshot_t *out = NULL;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_load(path, &out, &err), GB_EIO);
    assert_null(out);
    assert_non_null(strstr(err.msg, path));
    gb_error_clear(&err);
    assert_null(gb_snapshot_load_model(path, NULL, &err));
    assert_int_equal(err.code, GB_EIO);

    /* Saving onto a directory fails and leaves it alone; saving over an
     * existing model with a bad snapshot leaves the old file intact. */
    gb_snapshot_t *s = s_make();
    assert_int_equal(gb_snapshot_save(dir, s, &err), GB_EIO);
    assert_int_equal(gb_snapshot_save(path, s, &err), 0);
    gb_snapshot_t bad = *s;
    bad.n_params = 3;
    assert_int_equal(gb_snapshot_save(path, &bad, &err), GB_ESHAPE);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(gb_snapshot_load(path, &out, &err), 0);
    s_assert_same(s, out);
    gb_snapshot_destroy(&out);

    /* NULL arguments are errors, not crashes. */
    uint8_t *buf;
    size_t len;
    assert_int_equal(gb_snapshot_encode(NULL, &buf, &len, NULL), GB_EINVAL);
    assert_int_equal(gb_snapshot_decode((const uint8_t *)"x", 1, NULL, NULL), GB_EINVAL);
    assert_int_equal(gb_snapshot_load(NULL, &out, NULL), GB_EINVAL);
    assert_int_equal(gb_snapshot_save(NULL, s, NULL), GB_EINVAL);
    assert_null(gb_snapshot_new(NULL, NULL, 0, 0, NULL));
    assert_null(gb_snapshot_new(SPEC, NULL, 3, 0, NULL));
    assert_null(gb_snapshot_from_model(NULL, 0, NULL));
    assert_null(gb_snapshot_to_model(NULL, NULL));
    assert_int_equal(gb_snapshot_meta_set(NULL, "k", "v", NULL), GB_EINVAL);
    assert_null(gb_snapshot_meta_get(NULL, "k"));

    /* Counts beyond the size limit are refused before any copy or read. */
    size_t too_many = GB_SNAPSHOT_MAX_BYTES / sizeof(float) + 1;
    gb_error_clear(&err);
    assert_null(gb_snapshot_new(SPEC, s->params, too_many, 0, &err));
    assert_int_equal(err.code, GB_ERANGE);
    gb_snapshot_t huge = *s;
    huge.n_params = too_many;
    assert_int_equal(gb_snapshot_encode(&huge, &buf, &len, &err), GB_ERANGE);

    /* save_model reports its failures too. */
    gb_model_t *m = gb_snapshot_to_model(s, &err);
    assert_non_null(m);
    assert_int_equal(gb_snapshot_save_model(path, m, 1, NULL, 1, &err), GB_EINVAL);
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_save_model(dir, m, 1, NULL, 0, &err), GB_EIO);
    assert_non_null(strstr(err.msg, dir));
    gb_snapshot_meta_t bad_meta[] = {{.key = "no spaces", .value = "v"}};
    assert_int_equal(gb_snapshot_save_model(path, m, 1, bad_meta, 1, &err), GB_EINVAL);
    assert_int_equal(gb_snapshot_save_model(path, NULL, 1, NULL, 0, &err), GB_EINVAL);
    gb_model_destroy(&m);

    gb_snapshot_destroy(&s);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

/* ---- allocation failures ------------------------------------------------ */

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *good;
    size_t good_len;
    s_encode(s, &good, &good_len);
    gb_error_t err;

    /* decode: every allocation point fails cleanly. */
    int points = 0;
    for (long k = 1;; k++) {
        gb_snapshot_t *out = NULL;
        gb_error_clear(&err);
        gb_alloc_fail_after(k);
        int rc = gb_snapshot_decode(good, good_len, &out, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            s_assert_same(s, out);
            gb_snapshot_destroy(&out);
            break;
        }
        if (rc != GB_ENOMEM)
            fail_msg("decode, allocation %ld: %d %s", k, rc, err.msg);
        assert_null(out);
        points++;
    }
    assert_true(points >= 5);

    /* encode */
    points = 0;
    for (long k = 1;; k++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_snapshot_encode(s, &buf, &len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(len, good_len);
            assert_memory_equal(buf, good, len);
            gb_free(buf);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(buf);
        points++;
    }
    assert_true(points >= 2);

    /* new and meta_set */
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        gb_snapshot_t *t = gb_snapshot_new(SPEC, s->params, N_PARAMS, 1, &err);
        int rc = t ? gb_snapshot_meta_set(t, "a", "b", &err) : GB_ENOMEM;
        gb_alloc_fail_after(0);
        if (rc == 0 && t) {
            gb_snapshot_destroy(&t);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        if (t)
            assert_int_equal(t->n_meta, 0);
        gb_snapshot_destroy(&t);
    }

    /* save and load: the old file survives every failed save. */
    char *dir = gb_test_mkdtemp();
    char *path = gb_test_write_file(dir, "m.gbm", good, good_len);
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_snapshot_save(path, s, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        gb_snapshot_t *out = NULL;
        assert_int_equal(gb_snapshot_load(path, &out, &err), 0);
        s_assert_same(s, out);
        gb_snapshot_destroy(&out);
    }
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        uint64_t round = 0;
        gb_model_t *m = gb_snapshot_load_model(path, &round, &err);
        gb_alloc_fail_after(0);
        if (m) {
            assert_int_equal(round, s->round);
            gb_model_destroy(&m);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
    }

    free(path);
    gb_test_rmtree(dir);
    free(dir);
    gb_free(good);
    gb_snapshot_destroy(&s);
}

/* The validator for an unpacked message (models inside Task and
 * Publication) accepts what decode accepts and refuses with decode's codes. */
static void test_check_message(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    Glassbox__ModelSnapshot *m = glassbox__model_snapshot__unpack(NULL, len, buf);
    assert_non_null(m);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_check_message(m, &err), 0);

    float *p = (float *)m->params.data; /* protobuf-c's copy: malloc-aligned */
    float keep = p[4];
    p[4] = NAN;
    uint8_t sha[32];
    unsigned sha_len = 0;
    assert_int_equal(EVP_Digest(m->params.data, m->params.len, sha, &sha_len, EVP_sha256(), NULL), 1);
    uint8_t old_sha[32];
    memcpy(old_sha, m->params_sha256.data, 32);
    memcpy(m->params_sha256.data, sha, 32);
    assert_int_equal(gb_snapshot_check_message(m, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "parameter 4 of 15 is NaN"));
    p[4] = keep;
    assert_int_equal(gb_snapshot_check_message(m, &err), GB_EINTEGRITY);
    memcpy(m->params_sha256.data, old_sha, 32);
    assert_int_equal(gb_snapshot_check_message(m, &err), 0);
    m->format_version = 9;
    assert_int_equal(gb_snapshot_check_message(m, &err), GB_EPROTO);
    m->format_version = 1;
    m->param_count = 14;
    assert_int_equal(gb_snapshot_check_message(m, &err), GB_EFORMAT);
    assert_int_equal(gb_snapshot_check_message(NULL, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "missing"));

    glassbox__model_snapshot__free_unpacked(m, NULL);
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

/* A view packs to exactly the bytes gb_snapshot_encode makes, points at the
 * snapshot's parameters, and is refused for what encode refuses. */
static void test_view(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    gb_snapshot_view_t *v = malloc(sizeof *v);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_view(s, v, &err), 0);
    assert_ptr_equal(v->msg.params.data, (uint8_t *)s->params);
    size_t packed = glassbox__model_snapshot__get_packed_size(&v->msg);
    assert_int_equal(packed, len);
    uint8_t *again = malloc(packed);
    assert_int_equal(glassbox__model_snapshot__pack(&v->msg, again), packed);
    assert_memory_equal(again, buf, len);
    assert_int_equal(gb_snapshot_check_message(&v->msg, &err), 0);
    free(again);
    s->params[3] = INFINITY;
    assert_int_equal(gb_snapshot_view(s, v, &err), GB_ERANGE);
    s->params[3] = 0;
    s->n_params--;
    assert_int_equal(gb_snapshot_view(s, v, &err), GB_ESHAPE);
    assert_int_equal(gb_snapshot_view(NULL, v, &err), GB_EINVAL);
    s->n_params++;
    free(v);
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

/* A view over separate little-endian bytes (what a big-endian host passes)
 * carries exactly those bytes, packs to encode's bytes when they are the
 * snapshot's parameters, still checks the snapshot's own values, and refuses
 * missing bytes. */
static void test_view_le(void **state)
{
    (void)state;
    gb_snapshot_t *s = s_make();
    uint8_t *buf;
    size_t len;
    s_encode(s, &buf, &len);
    uint8_t *le = malloc(s->n_params * sizeof(float));
    gb_wire_floats_to_le(le, s->params, s->n_params);
    gb_snapshot_view_t *v = malloc(sizeof *v);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_snapshot_view_le(s, le, v, &err), 0);
    assert_ptr_equal(v->msg.params.data, le);
    size_t packed = glassbox__model_snapshot__get_packed_size(&v->msg);
    assert_int_equal(packed, len);
    uint8_t *again = malloc(packed);
    assert_int_equal(glassbox__model_snapshot__pack(&v->msg, again), packed);
    assert_memory_equal(again, buf, len);
    free(again);
    s->params[2] = NAN;
    assert_int_equal(gb_snapshot_view_le(s, le, v, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "parameter 2 of"));
    s->params[2] = 0;
    assert_int_equal(gb_snapshot_view_le(s, NULL, v, &err), GB_EINVAL);
    assert_int_equal(gb_snapshot_view_le(NULL, le, v, NULL), GB_EINVAL);
    assert_int_equal(gb_snapshot_view_le(s, le, NULL, NULL), GB_EINVAL);
    free(v);
    free(le);
    gb_free(buf);
    gb_snapshot_destroy(&s);
}

int main(void)
{
    /* Every refusal logs a warning; keep the test output readable. */
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_memory),
        cmocka_unit_test(test_encode_borrowed_struct),
        cmocka_unit_test(test_unknown_fields_accepted),
        cmocka_unit_test(test_save_load_and_models),
        cmocka_unit_test(test_preset_stored_expanded),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_flipped_bytes_refused),
        cmocka_unit_test(test_wrong_lengths_refused),
        cmocka_unit_test(test_nan_and_inf_refused),
        cmocka_unit_test(test_bad_specs_refused),
        cmocka_unit_test(test_versions_refused),
        cmocka_unit_test(test_metadata_checks),
        cmocka_unit_test(test_oversized_and_garbage_refused),
        cmocka_unit_test(test_missing_file_and_bad_paths),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_check_message),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_view_le),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
