/* Tests of util/json.c: names repaired to valid UTF-8 the one way every
 * document does it, reals that round-trip and are never NaN or -0, keys in
 * the order they were set, and both writers' failures. Output is read back
 * with jansson, not compared as text. */
#include "testutil.h"

#include "util/alloc.h"
#include "util/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void t_string_is(const char *in, const char *want)
{
    json_t *j = gb_json_string(in);
    assert_non_null(j);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), strlen(want));
    assert_memory_equal(json_string_value(j), want, strlen(want));
    json_decref(j);
}

static void test_string(void **state)
{
    (void)state;
    t_string_is("plain", "plain");
    t_string_is("", "");
    t_string_is("a\"b\\c\nd\te\x01 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                "a\"b\\c\nd\te\x01 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* each bad byte becomes one U+FFFD: a stray continuation byte, a lone
     * lead byte, an overlong '/', a surrogate, beyond U+10FFFF, 0xff, and a
     * sequence cut by the end of the string */
    t_string_is("a\x80z", "a\xef\xbf\xbdz");
    t_string_is("\xc3z", "\xef\xbf\xbdz");
    t_string_is("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
    t_string_is("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    t_string_is("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    t_string_is("\xff", "\xef\xbf\xbd");
    t_string_is("ok\xe2\x82", "ok\xef\xbf\xbd\xef\xbf\xbd");
    json_t *n = gb_json_string(NULL);
    assert_true(json_is_null(n));
    json_decref(n);
}

static void test_real(void **state)
{
    (void)state;
    assert_null(gb_json_real(NAN));
    assert_null(gb_json_real(INFINITY));
    assert_null(gb_json_real(-INFINITY));
    json_t *z = gb_json_real(-0.0);
    assert_non_null(z);
    assert_false(signbit(json_real_value(z)));
    json_decref(z);
    json_t *nul = gb_json_real_or_null(NAN), *one = gb_json_real_or_null(1.5);
    assert_true(json_is_null(nul));
    assert_true(json_is_real(one) && json_real_value(one) == 1.5);
    json_decref(nul);
    json_decref(one);
    /* a NULL value makes the set fail: a NaN is never written */
    json_t *o = json_object();
    assert_int_equal(json_object_set_new(o, "x", gb_json_real(NAN)), -1);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
}

static void test_dump(void **state)
{
    (void)state;
    /* keys in insertion order, not sorted; every float32 round-trips */
    const float f[] = {0.1f, 1.0f / 3, 16777217.0f, 1e-38f, 3.4e38f, -2.5f};
    json_t *doc = json_object(), *arr = json_array();
    assert_int_equal(json_object_set_new(doc, "zeta", json_integer(1)), 0);
    assert_int_equal(json_object_set_new(doc, "alpha", gb_json_string("bad \xff name")), 0);
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        assert_int_equal(json_array_append_new(arr, gb_json_real(f[i])), 0);
    assert_int_equal(json_object_set_new(doc, "values", arr), 0);
    assert_int_equal(json_object_set_new(doc, "zero", gb_json_real(-0.0)), 0);
    char *text = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    assert_int_equal(gb_json_dump(doc, &text, &len, &err), 0);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    assert_ptr_equal(strchr(text, '\n'), text + len - 1); /* one line */
    assert_true(strstr(text, "\"zeta\"") < strstr(text, "\"alpha\""));
    assert_non_null(strstr(text, "\"zero\": 0.0"));
    json_error_t jerr;
    json_t *back = json_loads(text, 0, &jerr);
    if (!back)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    assert_string_equal(json_string_value(json_object_get(back, "alpha")),
                        "bad \xef\xbf\xbd name");
    json_t *vals = json_object_get(back, "values");
    assert_int_equal(json_array_size(vals), sizeof f / sizeof *f);
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        assert_true((float)json_real_value(json_array_get(vals, i)) == f[i]);
    json_decref(back);
    gb_free(text);

    /* out of memory: nothing handed out */
    gb_alloc_fail_after(1);
    text = (char *)"untouched";
    assert_int_equal(gb_json_dump(doc, &text, &len, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_null(text);
    assert_int_equal(gb_json_dump(NULL, &text, &len, &err), GB_ENOMEM);
    json_decref(doc);
}

static void test_print(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    json_t *doc = json_pack("{s:i, s:o}", "round", 3, "client", gb_json_string("c\x80"));
    assert_non_null(doc);
    gb_error_t err = {0};
    assert_int_equal(gb_json_print(f, doc, &err), 0);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "{\"round\": 3, \"client\": \"c\xef\xbf\xbd\"}\n");
    free(buf);
    /* a full disk is an error, not a silent short line */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        assert_int_equal(gb_json_print(full, doc, &err), GB_EIO);
        fclose(full);
    }
    assert_int_equal(gb_json_print(stdout, NULL, &err), GB_EIO);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_real),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
