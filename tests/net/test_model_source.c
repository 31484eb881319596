/* Tests of client/model_source.c: a model from a preset, a spec file or a
 * model file, and the errors for everything else. */
#include "testutil.h"

#include "net/model_source.h"
#include "net/snapshot.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_preset(void **state)
{
    (void)state;
    bool from_file = true;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_source_open("mlp", &from_file, &err);
    assert_non_null(m);
    assert_false(from_file);
    assert_int_equal(gb_model_param_count(m), 784 * 128 + 128 + 128 * 10 + 10);
    gb_model_destroy(&m);
}

static void test_spec_file(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    const char spec[] = "# tiny\ninput 4\ndense 3\n";
    char *path = gb_test_write_file(dir, "tiny.spec", spec, strlen(spec));
    bool from_file = true;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_source_open(path, &from_file, &err);
    assert_non_null(m);
    assert_false(from_file);
    assert_int_equal(gb_model_param_count(m), 15);
    gb_model_destroy(&m);

    const char bad[] = "input 4\ndense\n";
    free(path);
    path = gb_test_write_file(dir, "bad.spec", bad, strlen(bad));
    assert_null(gb_model_source_open(path, &from_file, &err));
    assert_int_equal(err.code, GB_ESPEC);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "spec line 2: dense expects units"));
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_model_file(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t cap = strlen(dir) + 16;
    char *path = malloc(cap);
    snprintf(path, cap, "%s/m.gbm", dir);
    gb_error_t err = {0};
    gb_model_t *src = gb_model_new("input 4\ndense 3\n", &err);
    assert_non_null(src);
    gb_model_init(src, 5);
    assert_int_equal(gb_snapshot_save_model(path, src, 3, NULL, 0, &err), 0);

    bool from_file = false;
    gb_model_t *m = gb_model_source_open(path, &from_file, &err);
    assert_non_null(m);
    assert_true(from_file);
    assert_memory_equal(gb_model_params(m), gb_model_params(src), 15 * sizeof(float));
    gb_model_destroy(&m);

    /* A damaged model file is reported as a model file, naming it. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -40, SEEK_END), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -40, SEEK_END), 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
    assert_null(gb_model_source_open(path, &from_file, &err));
    assert_non_null(strstr(err.msg, "model file"));
    assert_non_null(strstr(err.msg, path));
    gb_model_destroy(&src);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_missing(void **state)
{
    (void)state;
    bool from_file = false;
    gb_error_t err = {0};
    assert_null(gb_model_source_open("/nonexistent/lenet2", &from_file, &err));
    assert_non_null(strstr(err.msg, "neither a preset"));
    assert_non_null(strstr(err.msg, "/nonexistent/lenet2"));
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preset),
        cmocka_unit_test(test_spec_file),
        cmocka_unit_test(test_model_file),
        cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
