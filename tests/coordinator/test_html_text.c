/* Tests for coordinator/html_text: formatted appends long and short,
 * escaping of every character that could end an element or an attribute
 * (and control bytes), the sticky failure past the limit and when memory
 * runs out, and handing the text over. */
#include "testutil.h"

#include <string.h>

#include "html_text.h"
#include "util/alloc.h"

static void test_printf_and_take(void **state)
{
    (void)state;
    gb_html_text_t t = {0};
    gb_error_t err = {0};
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(gb_html_text_take(&t, &s, &len, &err), 0);
    assert_string_equal(s, ""); /* nothing appended is an empty page, not NULL */
    assert_int_equal(len, 0);
    gb_free(s);
    gb_html_text_printf(&t, "<p>%d %s</p>", 42, "ok");
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    gb_html_text_printf(&t, "%s", big); /* past the small buffer and the first block */
    assert_int_equal(gb_html_text_take(&t, &s, &len, &err), 0);
    assert_int_equal(len, strlen("<p>42 ok</p>") + sizeof big - 1);
    assert_memory_equal(s, "<p>42 ok</p>xxx", 15);
    assert_int_equal(s[len], '\0');
    assert_null(t.s); /* taken: the buffer is empty again */
    assert_int_equal(t.len, 0);
    gb_free(s);
}

static void test_escape(void **state)
{
    (void)state;
    gb_html_text_t t = {0};
    gb_error_t err = {0};
    gb_html_text_esc(&t, "<script>alert(\"x\")</script> & 'q'\x01\tT\nZ");
    gb_html_text_esc(&t, NULL); /* nothing */
    gb_html_text_esc(&t, "caf\xc3\xa9");
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(gb_html_text_take(&t, &s, &len, &err), 0);
    assert_string_equal(s, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; "
                           "&#39;q&#39;\tT\nZcaf\xc3\xa9");
    assert_null(strchr(s, '<'));
    gb_free(s);
}

static void test_limit_and_memory(void **state)
{
    (void)state;
    gb_html_text_t t = {.max = 10};
    gb_error_t err = {0};
    char *s = NULL;
    size_t len = 0;
    gb_html_text_printf(&t, "0123456789"); /* exactly the limit */
    assert_int_equal(t.fail, 0);
    gb_html_text_printf(&t, "a");          /* one past it */
    assert_int_equal(t.fail, GB_ERANGE);
    gb_html_text_esc(&t, "b");             /* sticky: nothing more is appended */
    assert_int_equal(t.len, 10);
    assert_int_equal(gb_html_text_take(&t, &s, &len, &err), GB_ERANGE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(t.max, 10); /* the limit stays for the next page */

    gb_html_text_t m = {0};
    gb_alloc_fail_after(1);
    gb_html_text_printf(&m, "x");
    gb_alloc_fail_after(0);
    assert_int_equal(m.fail, GB_ENOMEM);
    assert_int_equal(gb_html_text_take(&m, &s, &len, &err), GB_ENOMEM);
    assert_null(s);

    gb_html_text_t f = {0};
    gb_html_text_printf(&f, "kept");
    gb_html_text_free(&f);
    assert_null(f.s);
    gb_html_text_free(&f); /* twice is safe */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printf_and_take),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_limit_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
