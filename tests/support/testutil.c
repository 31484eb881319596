/* Test helpers; see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/pki.h"
#include "util/file.h"
#include "util/rng.h"

char *gb_test_mkdtemp(void)
{
    char tmpl[] = "/tmp/gbtest-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void gb_test_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

char *gb_test_path(const char *dir, const char *name)
{
    size_t cap = strlen(dir) + strlen(name) + 2;
    char *path = malloc(cap);
    assert_non_null(path);
    snprintf(path, cap, "%s/%s", dir, name);
    return path;
}

unsigned gb_test_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

uint8_t *gb_test_read(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    gb_error_t err = {0};
    if (gb_file_read_all(path, (size_t)64 << 20, &data, len, &err) != 0)
        fail_msg("%s", err.msg);
    return data;
}

char *gb_test_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = gb_test_path(dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static char *s_join(const char *env, const char *rel)
{
    const char *base = getenv(env);
    if (!base)
        base = ".";
    size_t cap = strlen(base) + strlen(rel) + 2;
    char *path = malloc(cap);
    assert_non_null(path);
    snprintf(path, cap, "%s/%s", base, rel);
    return path;
}

char *gb_test_write_csv(const char *dir, const char *file, const char *text, char *name,
                        size_t cap)
{
    char *path = gb_test_write_file(dir, file, text, strlen(text));
    int n = snprintf(name, cap, "csv:%s", path);
    if (n < 0 || (size_t)n >= cap)
        fail_msg("csv:%s does not fit in %zu bytes", path, cap);
    return path;
}

char *gb_test_source_path(const char *rel)
{
    return s_join("GB_SOURCE_DIR", rel);
}

char *gb_test_binary_path(const char *rel)
{
    return s_join("GB_BINARY_DIR", rel);
}

double gb_test_max_rel_diff(const float *a, const float *b, size_t n, double floor)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        double scale = fmax(fmax(fabs(x), fabs(y)), floor);
        double d = fabs(x - y) / scale;
        if (!(d <= worst)) /* NaN counts as worst */
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

int gb_test_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

gb_dataset_t *gb_test_blobs(int64_t n, uint64_t seed)
{
    gb_shape_t shape = {3, {1, 4, 4}};
    gb_error_t err = {0};
    gb_dataset_t *ds = gb_dataset_new("blobs", n, &shape, GB_TEST_BLOB_CLASSES, true, &err);
    assert_non_null(ds);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 1);
    for (int64_t i = 0; i < n; i++) {
        ds->labels[i] = (int32_t)(i % GB_TEST_BLOB_CLASSES);
        for (int p = 0; p < 16; p++)
            ds->features[i * 16 + p] = (float)(gb_rng_uniform(&rng) - 0.5) +
                                       (p / 4 == ds->labels[i] ? 1.0f : 0.0f);
    }
    return ds;
}

uint64_t gb_test_xorshift(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

double gb_test_xorshift_unif(uint64_t *state)
{
    return (double)(gb_test_xorshift(state) >> 11) / 9007199254740992.0 * 2 - 1;
}

void gb_test_xorshift_shuffle(uint64_t *state, size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = gb_test_xorshift(state) % i, t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static float s_ulp(float x)
{
    x = fabsf(x);
    if (x < FLT_MIN)
        return ldexpf(1, -149);
    return nextafterf(x, INFINITY) - x;
}

void gb_test_assert_correctly_rounded(float got, double ref, size_t where)
{
    double diff = fabs((double)got - ref);
    double half = 0.5 * (double)s_ulp(got);
    if (!(diff <= half * (1 + 1e-6) + 1e-300))
        fail_msg("value %zu: got %.9g, reference %.17g, off by %.3g ulp", where, (double)got, ref,
                 diff / (2 * half));
}

void gb_test_explanation_one(gb_test_explanation_t *e, Glassbox__ExplainMethod method,
                             uint32_t cls, uint64_t count, const float *v,
                             const uint32_t *shape, size_t rank)
{
    assert_true(rank >= 1 && rank <= 3);
    size_t n = 1;
    for (size_t i = 0; i < rank; i++) {
        e->shape[i] = shape[i];
        n *= shape[i];
    }
    glassbox__tensor__init(&e->t);
    e->t.n_shape = rank;
    e->t.shape = e->shape;
    e->t.data.len = 4 * n;
    e->t.data.data = (uint8_t *)v;
    glassbox__class_attribution__init(&e->c);
    e->c.class_index = cls;
    e->c.count = count;
    e->c.mean_attribution = &e->t;
    e->cp = &e->c;
    glassbox__explanation__init(&e->x);
    e->x.method = method;
    e->x.n_classes = 1;
    e->x.classes = &e->cp;
}

static int s_poll_nothing(zmq_pollitem_t *items, int n, long timeout_ms, void *arg)
{
    (void)timeout_ms;
    (void)arg;
    for (int i = 0; i < n; i++)
        items[i].revents = 0;
    return 0;
}

long gb_test_loop_wait_ms(gb_event_loop_t *loop)
{
    gb_error_t err = {0};
    gb_event_loop_set_poll(loop, s_poll_nothing, NULL);
    int rc = gb_event_loop_run_once(loop, -1, &err);
    gb_event_loop_set_poll(loop, NULL, NULL);
    if (rc < 0)
        fail_msg("event loop turn: %s", err.msg);
    return gb_event_loop_last_timeout(loop);
}

gb_model_t *gb_test_model(const char *spec, int batch, int threads, uint64_t seed)
{
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(spec, &err);
    if (!m)
        fail_msg("gb_model_new(%s): %s", spec, err.msg);
    gb_model_init(m, seed);
    if (gb_model_plan(m, batch, threads, &err) != 0)
        fail_msg("gb_model_plan(%s, batch %d, %d threads): %s", spec, batch, threads, err.msg);
    return m;
}

size_t gb_test_model_in_size(const gb_model_t *m)
{
    gb_shape_t s = gb_model_input_shape(m);
    return gb_shape_size(&s);
}

size_t gb_test_model_out_size(const gb_model_t *m)
{
    gb_shape_t s = gb_model_output_shape(m);
    return gb_shape_size(&s);
}

void gb_test_ca_make(const char *ca_dir, const char *federation, const char *out_dir,
                     const char *prefix, int first, int n)
{
    gb_error_t err = {0};
    if (gb_ca_init(ca_dir, federation, "localhost", 30, &err) != 0)
        fail_msg("ca init %s: %s", ca_dir, err.msg);
    gb_ca_t *ca = gb_ca_open(ca_dir, &err);
    if (!ca)
        fail_msg("ca open %s: %s", ca_dir, err.msg);
    for (int i = first; i < first + n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        if (gb_ca_issue(ca, name, 30, out_dir, &err) != 0)
            fail_msg("ca issue %s: %s", name, err.msg);
    }
    gb_ca_destroy(&ca);
}

json_t *gb_test_json_read(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("%s is not JSON: %s (line %d)", path, jerr.text, jerr.line);
    return doc;
}

json_t *gb_test_json_class(json_t *doc, const char *name)
{
    json_t *classes = json_object_get(doc, "classes"), *c;
    size_t i;
    json_array_foreach(classes, i, c)
    {
        const char *n = json_string_value(json_object_get(c, "class_name"));
        if (n && strcmp(n, name) == 0)
            return c;
    }
    fail_msg("no class named '%s' in the document", name);
    return NULL;
}

long long gb_test_json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return (long long)json_integer_value(v);
}
