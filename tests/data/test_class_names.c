/* Tests for data/class_names: Fashion-MNIST's built-in names and when they
 * are chosen, the "class K" fallback, loading a names file (LF and CRLF,
 * byte-order mark, trimming, multi-byte UTF-8, a file cut without its final
 * newline or inside a character) and every refusal with its message naming
 * the file and line: too many names, an over-long name (64 bytes pass, 65
 * do not), an empty name, control characters, bytes that are not UTF-8, a
 * repeated name, an empty file, a file over the byte bound (exactly at it
 * passes), fewer names than classes (one short, and one name for many), labels
 * for indices beyond the list, and allocation-failure injection. Doubles as
 * the usage example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/class_names.h"
#include "util/alloc.h"
#include "util/log.h"

static char *s_dir;

static int s_setup(void **state)
{
    (void)state;
    s_dir = gb_test_mkdtemp();
    return s_dir ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    gb_test_rmtree(s_dir);
    free(s_dir);
    return 0;
}

/* Writes len bytes as the file "names.txt" (replacing it); the path is the
 * test's to free. */
static char *s_file(const void *data, size_t len)
{
    return gb_test_write_file(s_dir, "names.txt", data, len);
}

static gb_class_names_t *s_load_text(const char *text, int n)
{
    char *path = s_file(text, strlen(text));
    gb_error_t err = {0};
    gb_class_names_t *c = gb_class_names_load(path, n, &err);
    if (!c)
        fail_msg("unexpected error: %s", err.msg);
    free(path);
    return c;
}

/* Expects loading text for n classes to fail with code and a message that
 * is "<path>" followed by tail exactly. */
static void s_refuse(const void *text, size_t len, int n, int code, const char *tail)
{
    char *path = s_file(text, len);
    gb_error_t err = {0};
    gb_class_names_t *c = gb_class_names_load(path, n, &err);
    assert_null(c);
    assert_int_equal(err.code, code);
    char want[1024];
    snprintf(want, sizeof want, "%s%s", path, tail);
    assert_string_equal(err.msg, want);
    free(path);
}

static void s_refuse_text(const char *text, int n, int code, const char *tail)
{
    s_refuse(text, strlen(text), n, code, tail);
}

static void test_builtin(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_names_t *c = gb_class_names_builtin("fashion-mnist", 10, &err);
    assert_non_null(c);
    assert_int_equal(gb_class_names_count(c), 10);
    assert_int_equal(gb_class_names_named(c), 10);
    assert_string_equal(gb_class_names_source(c), "fashion-mnist");
    const char *want[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",   "Coat",
                            "Sandal",      "Shirt",   "Sneaker",  "Bag",     "Ankle boot"};
    for (int k = 0; k < 10; k++)
        assert_string_equal(gb_class_names_get(c, k), want[k]);
    assert_null(gb_class_names_get(c, -1));
    assert_null(gb_class_names_get(c, 10));
    gb_class_names_destroy(&c);
    assert_null(c);
    gb_class_names_destroy(&c); /* safe on NULL */
    gb_class_names_destroy(NULL);

    /* the long spelling of the same directory */
    c = gb_class_names_builtin("idx:/usr/share/datasets/fashion-mnist/", 10, &err);
    assert_string_equal(gb_class_names_get(c, 7), "Sneaker");
    gb_class_names_destroy(&c);
    assert_true(gb_class_names_is_fashion_mnist("fashion-mnist"));
    assert_true(gb_class_names_is_fashion_mnist("idx:/usr/share/datasets/fashion-mnist"));
    assert_false(gb_class_names_is_fashion_mnist("idx:/usr/share/datasets/fashion-mnist2"));
    assert_false(gb_class_names_is_fashion_mnist("idx:/data/mnist"));
    assert_false(gb_class_names_is_fashion_mnist("csv:fashion-mnist"));
    assert_false(gb_class_names_is_fashion_mnist(NULL));
}

static void test_fallback(void **state)
{
    (void)state;
    gb_error_t err = {0};
    /* other data, or Fashion-MNIST's name with another class count */
    const char *data[] = {"idx:/data/mnist", NULL, "fashion-mnist"};
    int n[] = {10, 3, 4};
    for (int i = 0; i < 3; i++) {
        gb_class_names_t *c = gb_class_names_builtin(data[i], n[i], &err);
        assert_non_null(c);
        assert_int_equal(gb_class_names_count(c), n[i]);
        assert_int_equal(gb_class_names_named(c), 0);
        assert_string_equal(gb_class_names_source(c), "none");
        assert_string_equal(gb_class_names_get(c, 0), "class 0");
        assert_string_equal(gb_class_names_get(c, n[i] - 1), n[i] == 3 ? "class 2" : n[i] == 4
                                                                ? "class 3" : "class 9");
        gb_class_names_destroy(&c);
    }
    /* class counts: 1 and the largest pass, 0 and one more do not */
    gb_class_names_t *c = gb_class_names_builtin(NULL, 1, &err);
    assert_non_null(c);
    gb_class_names_destroy(&c);
    c = gb_class_names_builtin(NULL, GB_CLASS_NAMES_MAX_CLASSES, &err);
    assert_non_null(c);
    assert_string_equal(gb_class_names_get(c, GB_CLASS_NAMES_MAX_CLASSES - 1), "class 9999");
    gb_class_names_destroy(&c);
    assert_null(gb_class_names_builtin(NULL, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_string_equal(err.msg, "class names: class count 0 outside 1..10000");
    assert_null(gb_class_names_builtin(NULL, GB_CLASS_NAMES_MAX_CLASSES + 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    /* accessors on no list */
    assert_int_equal(gb_class_names_count(NULL), 0);
    assert_int_equal(gb_class_names_named(NULL), 0);
    assert_string_equal(gb_class_names_source(NULL), "none");
    assert_null(gb_class_names_get(NULL, 0));
}

static void test_label(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_class_names_t *c = gb_class_names_builtin("fashion-mnist", 10, &err);
    char buf[GB_CLASS_NAMES_LABEL_CAP];
    assert_string_equal(gb_class_names_label(c, 9, buf, sizeof buf), "Ankle boot");
    /* beyond the list, or no list: "class K" in buf */
    assert_ptr_equal(gb_class_names_label(c, 12, buf, sizeof buf), buf);
    assert_string_equal(buf, "class 12");
    assert_string_equal(gb_class_names_label(NULL, 3, buf, sizeof buf), "class 3");
    assert_string_equal(gb_class_names_label(c, -1, buf, sizeof buf), "class -1");
    char small[4] = "xyz";
    assert_string_equal(gb_class_names_label(NULL, 3, small, sizeof small), "cla");
    gb_class_names_destroy(&c);
}

static void test_load(void **state)
{
    (void)state;
    gb_class_names_t *c = s_load_text("cat\ndog\nbird\n", 3);
    assert_int_equal(gb_class_names_count(c), 3);
    assert_int_equal(gb_class_names_named(c), 3);
    assert_string_equal(gb_class_names_get(c, 0), "cat");
    assert_string_equal(gb_class_names_get(c, 2), "bird");
    const char *src = gb_class_names_source(c);
    assert_non_null(strstr(src, "/names.txt"));
    gb_class_names_destroy(&c);

    /* CRLF, a byte-order mark, spaces trimmed but inner ones kept,
     * multi-byte UTF-8 (2, 3 and 4 bytes), blank lines at the end ignored */
    c = s_load_text("\xef\xbb\xbf  Ankle boot \r\nCaf\xc3\xa9\r\n\xe2\x82\xac uro\r\n"
                    "\xf0\x9f\x91\x9f\r\n\r\n  \n", 4);
    assert_string_equal(gb_class_names_get(c, 0), "Ankle boot");
    assert_string_equal(gb_class_names_get(c, 1), "Caf\xc3\xa9");
    assert_string_equal(gb_class_names_get(c, 2), "\xe2\x82\xac uro");
    assert_string_equal(gb_class_names_get(c, 3), "\xf0\x9f\x91\x9f");
    gb_class_names_destroy(&c);

    /* a file cut without its final newline: the last line is a name */
    c = s_load_text("cat\ndo", 2);
    assert_string_equal(gb_class_names_get(c, 1), "do");
    gb_class_names_destroy(&c);
}

static void test_fewer_names(void **state)
{
    (void)state;
    /* refused, naming both counts: the count must equal the model's classes */
    s_refuse_text("cat\ndog\n", 5, GB_EFORMAT,
                  ": 2 names for the model's 5 classes (line K+1 names class K; every class "
                  "needs one)");
    /* one short, the file cut or not */
    s_refuse_text("a\nb\nc\n", 4, GB_EFORMAT,
                  ": 3 names for the model's 4 classes (line K+1 names class K; every class "
                  "needs one)");
    s_refuse_text("a\nb\nc", 4, GB_EFORMAT,
                  ": 3 names for the model's 4 classes (line K+1 names class K; every class "
                  "needs one)");
    /* exactly as many: accepted */
    gb_class_names_t *c = s_load_text("a\nb\nc\nd\n", 4);
    assert_int_equal(gb_class_names_named(c), 4);
    gb_class_names_destroy(&c);
}

static void test_refusals(void **state)
{
    (void)state;
    /* too many lines: the first extra one is named */
    s_refuse_text("a\nb\nc\nd\n", 3, GB_EFORMAT, ":4: more names than the model's 3 classes");
    /* an empty name between names; a line of spaces is empty too */
    s_refuse_text("a\n\nc\n", 3, GB_EFORMAT, ":2: empty name for class 1");
    s_refuse_text("a\n   \r\nc\n", 3, GB_EFORMAT, ":2: empty name for class 1");
    s_refuse_text("\na\n", 3, GB_EFORMAT, ":1: empty name for class 0");
    /* nothing at all */
    s_refuse_text("", 3, GB_EFORMAT, ": no class names in it");
    s_refuse_text("\n \n\r\n", 3, GB_EFORMAT, ": no class names in it");
    s_refuse_text("\xef\xbb\xbf", 3, GB_EFORMAT, ": no class names in it");
    /* control characters: tab, a lone CR, DEL, NUL, ESC, C1 (U+0085) */
    s_refuse_text("a\nb\tc\n", 3, GB_EFORMAT,
                  ":2: the name of class 1 holds control character U+0009 at byte 2");
    s_refuse_text("a\rb\n", 3, GB_EFORMAT,
                  ":1: the name of class 0 holds control character U+000D at byte 2");
    s_refuse_text("  x\x7f\n", 3, GB_EFORMAT,
                  ":1: the name of class 0 holds control character U+007F at byte 4");
    s_refuse("ab\0c\n", 5, 3, GB_EFORMAT,
             ":1: the name of class 0 holds control character U+0000 at byte 3");
    s_refuse_text("a\nb\nc\x1b[31m\n", 3, GB_EFORMAT,
                  ":3: the name of class 2 holds control character U+001B at byte 2");
    s_refuse_text("\xc2\x85x\n", 3, GB_EFORMAT,
                  ":1: the name of class 0 holds control character U+0085 at byte 1");
    /* not UTF-8: Latin-1, a stray continuation, overlong, a surrogate,
     * beyond U+10FFFF, and a file cut inside a character */
    const char *bad[] = {"caf\xe9\n",     "\x80\n",         "\xc0\xaf\n",    "\xe0\x80\xaf\n",
                         "\xed\xa0\x80\n", "\xf4\x90\x80\x80\n", "ok\nx\xe2\x82"};
    const char *tails[] = {
        ":1: the name of class 0 is not valid UTF-8 at byte 4",
        ":1: the name of class 0 is not valid UTF-8 at byte 1",
        ":1: the name of class 0 is not valid UTF-8 at byte 1",
        ":1: the name of class 0 is not valid UTF-8 at byte 1",
        ":1: the name of class 0 is not valid UTF-8 at byte 1",
        ":1: the name of class 0 is not valid UTF-8 at byte 1",
        ":2: the name of class 1 is not valid UTF-8 at byte 2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        s_refuse_text(bad[i], 3, GB_EFORMAT, tails[i]);
    /* the same name twice */
    s_refuse_text("cat\ndog\ncat\n", 3, GB_EFORMAT,
                  ":3: class 2's name 'cat' is class 0's too (line 1)");
    /* no such file */
    gb_error_t err = {0};
    char *missing = gb_test_write_file(s_dir, "x", "", 0);
    remove(missing);
    assert_null(gb_class_names_load(missing, 3, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
    assert_null(gb_class_names_load(NULL, 3, &err));
    assert_int_equal(err.code, GB_EINVAL);
    char *path = s_file("a\n", 2);
    assert_null(gb_class_names_load(path, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    free(path);
}

static void test_name_length(void **state)
{
    (void)state;
    char text[256];
    /* 64 bytes pass, also with padding around them */
    memset(text, 'n', GB_CLASS_NAMES_MAX_LEN);
    snprintf(text + GB_CLASS_NAMES_MAX_LEN, sizeof text - GB_CLASS_NAMES_MAX_LEN, "\n");
    gb_class_names_t *c = s_load_text(text, 1);
    assert_int_equal(strlen(gb_class_names_get(c, 0)), GB_CLASS_NAMES_MAX_LEN);
    gb_class_names_destroy(&c);
    /* 65 do not */
    memset(text, 'n', GB_CLASS_NAMES_MAX_LEN + 1);
    snprintf(text + GB_CLASS_NAMES_MAX_LEN + 1, sizeof text - GB_CLASS_NAMES_MAX_LEN - 1, "\n");
    s_refuse_text(text, 2, GB_EFORMAT, ":1: the name of class 0 is 65 bytes, at most 64");
    /* bytes, not characters: 32 two-byte characters pass, 33 do not */
    for (int i = 0; i < 33; i++)
        memcpy(text + 2 * i, "\xc3\xa9", 2);
    text[64] = '\0';
    c = s_load_text(text, 1);
    gb_class_names_destroy(&c);
    text[64] = '\xc3';
    text[66] = '\0';
    s_refuse_text(text, 1, GB_EFORMAT, ":1: the name of class 0 is 66 bytes, at most 64");
}

static void test_file_bound(void **state)
{
    (void)state;
    /* exactly GB_CLASS_NAMES_FILE_MAX(2) bytes: a BOM, then two lines of a
     * 64-byte name, a space each side and CRLF */
    size_t max = GB_CLASS_NAMES_FILE_MAX(2);
    char *text = malloc(max + 2);
    assert_non_null(text);
    size_t n = 0;
    memcpy(text, "\xef\xbb\xbf", 3);
    n = 3;
    for (int line = 0; line < 2; line++) {
        text[n++] = ' ';
        memset(text + n, line ? 'b' : 'a', GB_CLASS_NAMES_MAX_LEN);
        n += GB_CLASS_NAMES_MAX_LEN;
        memcpy(text + n, " \r\n", 3);
        n += 3;
    }
    assert_int_equal(n, max);
    char *path = s_file(text, n);
    gb_error_t err = {0};
    gb_class_names_t *c = gb_class_names_load(path, 2, &err);
    assert_non_null(c);
    assert_int_equal(gb_class_names_named(c), 2);
    gb_class_names_destroy(&c);
    free(path);
    /* one byte more is refused unread */
    text[n++] = '\n';
    char tail[128];
    snprintf(tail, sizeof tail, ": over %zu bytes, more than 2 names of at most 64 bytes need",
             max);
    s_refuse(text, n, 2, GB_ERANGE, tail);
    free(text);
}

static void test_choose(void **state)
{
    (void)state;
    gb_error_t err = {0};
    /* no file: the built-in names for the data */
    gb_class_names_t *c = gb_class_names_choose(NULL, "fashion-mnist", 10, &err);
    assert_string_equal(gb_class_names_get(c, 7), "Sneaker");
    gb_class_names_destroy(&c);
    c = gb_class_names_choose(NULL, "idx:/elsewhere", 10, &err);
    assert_string_equal(gb_class_names_get(c, 7), "class 7");
    gb_class_names_destroy(&c);
    /* a file wins, even for Fashion-MNIST */
    static const char ten[] = "top\ntrousers\n2\n3\n4\n5\n6\nrunner\n8\n9\n";
    char *path = s_file(ten, strlen(ten));
    c = gb_class_names_choose(path, "fashion-mnist", 10, &err);
    assert_string_equal(gb_class_names_get(c, 1), "trousers");
    assert_string_equal(gb_class_names_get(c, 7), "runner");
    gb_class_names_destroy(&c);
    /* its errors say which flag */
    free(path);
    path = s_file("a\n\nb\n", 5);
    assert_null(gb_class_names_choose(path, "fashion-mnist", 10, &err));
    assert_int_equal(err.code, GB_EFORMAT);
    char want[1024];
    snprintf(want, sizeof want, "--class-names: %s:2: empty name for class 1", path);
    assert_string_equal(err.msg, want);
    free(path);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char *path = s_file("cat\ndog\n", 8);
    int failures = 0;
    for (long k = 1; k < 20; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_class_names_t *c = gb_class_names_load(path, 2, &err);
        gb_alloc_fail_after(0);
        if (c) {
            assert_string_equal(gb_class_names_get(c, 1), "dog");
            gb_class_names_destroy(&c);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        failures++;
    }
    assert_true(failures >= 1); /* the list; the file's buffer may come from gb_malloc too */
    gb_error_t err = {0};
    gb_alloc_fail_after(1);
    gb_class_names_t *c = gb_class_names_builtin("fashion-mnist", 10, &err);
    gb_alloc_fail_after(0);
    assert_null(c);
    assert_int_equal(err.code, GB_ENOMEM);
    free(path);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin),       cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_label),         cmocka_unit_test(test_load),
        cmocka_unit_test(test_fewer_names),   cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_name_length),   cmocka_unit_test(test_file_bound),
        cmocka_unit_test(test_choose),        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
