/* Tests of client/json.c: string literals escaped as JSON requires. */
#include "testutil.h"

#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_escapes(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    gb_json_write_string(f, "a\"b\\c\nd\te\x01 \xc3\xa9");
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\u0009e\\u0001 \xc3\xa9\"");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
