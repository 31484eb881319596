/* Tests for coordinator/enroll_tokens: create (bounds, file mode, only the
 * hash on disk), consume (good, either case and a trailing newline, then
 * used up; expired; wrong; malformed; each refusal distinct and changing
 * nothing), persistence across stores and the lock keeping two stores
 * consistent, pruning of long-expired tokens, damaged files, the log never
 * holding the token, and allocation-failure injection. */
#include "testutil.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enroll_tokens.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define NOW ((time_t)1800000000)
#define DAY 86400

static gb_tokens_t *s_load(const char *dir)
{
    gb_error_t err;
    gb_tokens_t *s = gb_tokens_load(dir, &err);
    if (!s)
        fail_msg("%s", err.msg);
    return s;
}

static void test_load_and_create(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    gb_tokens_t *s = s_load(dir);
    assert_int_equal(gb_tokens_count(s), 0);
    assert_null(gb_tokens_get(s, 0));

    char tok[GB_TOKEN_HEX_LEN + 1], id[13];
    assert_int_equal(gb_tokens_create(s, 3, DAY, NOW, tok, id, &err), 0);
    assert_int_equal(strlen(tok), 64);
    for (int i = 0; i < 64; i++)
        assert_true(isxdigit((unsigned char)tok[i]) && !isupper((unsigned char)tok[i]));
    assert_int_equal(gb_tokens_count(s), 1);
    const gb_token_info_t *t = gb_tokens_get(s, 0);
    assert_string_equal(t->id, id);
    assert_int_equal(t->created, NOW);
    assert_int_equal(t->expires, NOW + DAY);
    assert_int_equal(t->uses, 3);
    assert_int_equal(t->uses_left, 3);
    assert_string_equal(gb_token_status(t, NOW), "active");

    /* On disk: mode 0600, the hash (whose prefix is the id), never the token. */
    char *path = gb_test_path(dir, GB_TOKENS_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    size_t len;
    char *text = (char *)gb_test_read(path, &len);
    assert_null(strstr(text, tok));
    assert_non_null(strstr(text, id));
    gb_free(text);

    /* Two tokens differ; a fresh store reads both. */
    char tok2[GB_TOKEN_HEX_LEN + 1];
    assert_int_equal(gb_tokens_create(s, 1, 60, NOW, tok2, NULL, &err), 0);
    assert_string_not_equal(tok, tok2);
    gb_tokens_t *again = s_load(dir);
    assert_int_equal(gb_tokens_count(again), 2);
    assert_memory_equal(gb_tokens_get(again, 0)->sha256, gb_tokens_get(s, 0)->sha256, 32);
    gb_tokens_destroy(&again);

    /* Bounds. */
    assert_int_equal(gb_tokens_create(s, 0, DAY, NOW, tok2, NULL, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "token uses 0"));
    assert_string_equal(tok2, "");
    assert_int_equal(gb_tokens_create(s, GB_TOKENS_MAX_USES + 1, DAY, NOW, tok2, NULL, &err),
                     GB_EINVAL);
    assert_int_equal(gb_tokens_create(s, 1, 0, NOW, tok2, NULL, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "token lifetime 0 s"));
    assert_int_equal(gb_tokens_create(s, 1, GB_TOKENS_MAX_TTL_S + 1, NOW, tok2, NULL, &err),
                     GB_EINVAL);
    assert_int_equal(gb_tokens_count(s), 2);

    /* Missing directory; NULL. */
    char *nodir = gb_test_path(dir, "nope");
    assert_null(gb_tokens_load(nodir, &err));
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_null(gb_tokens_load(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);

    free(nodir);
    free(path);
    gb_tokens_destroy(&s);
    assert_null(s);
    gb_tokens_destroy(&s);
    gb_tokens_destroy(NULL);
    gb_test_rmtree(dir);
    free(dir);
}

/* consume and expect code, with the store file unchanged on refusal. */
static void s_consume_refused(gb_tokens_t *s, const char *dir, const char *tok, size_t len,
                              time_t now, int code, const char *msg)
{
    char *path = gb_test_path(dir, GB_TOKENS_FILE);
    size_t blen, alen;
    uint8_t *before = gb_test_read(path, &blen);
    gb_error_t err;
    /* check refuses exactly what consume refuses */
    int rc = gb_tokens_check(s, (const uint8_t *)tok, len, now, &err);
    if (rc != code || !strstr(err.msg, msg))
        fail_msg("check: got %d '%s', want %d '%s'", rc, err.msg, code, msg);
    rc = gb_tokens_consume(s, (const uint8_t *)tok, len, now, &err);
    if (rc != code || !strstr(err.msg, msg))
        fail_msg("got %d '%s', want %d '%s'", rc, err.msg, code, msg);
    uint8_t *after = gb_test_read(path, &alen);
    assert_int_equal(alen, blen);
    assert_memory_equal(after, before, blen);
    gb_free(after);
    gb_free(before);
    free(path);
}

static void test_consume(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    gb_tokens_t *s = s_load(dir);
    char tok[GB_TOKEN_HEX_LEN + 1], other[GB_TOKEN_HEX_LEN + 1], id[13];
    assert_int_equal(gb_tokens_create(s, 2, DAY, NOW, tok, id, &err), 0);
    assert_int_equal(gb_tokens_create(s, 5, DAY, NOW, other, NULL, &err), 0);

    /* As read from a token file: trailing newline; and in upper case. */
    char line[80];
    snprintf(line, sizeof line, "%s\n", tok);
    /* A check accepts it and spends nothing, on disk or in memory. */
    char *file = gb_test_path(dir, GB_TOKENS_FILE);
    size_t clen, clen2;
    uint8_t *cbefore = gb_test_read(file, &clen);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gb_tokens_check(s, (uint8_t *)line, strlen(line), NOW + 1, &err), 0);
    assert_int_equal(gb_tokens_get(s, 0)->uses_left, 2);
    uint8_t *cafter = gb_test_read(file, &clen2);
    assert_int_equal(clen, clen2);
    assert_memory_equal(cbefore, cafter, clen);
    gb_free(cbefore);
    gb_free(cafter);
    free(file);
    assert_int_equal(gb_tokens_check(s, NULL, 5, NOW, &err), GB_EINVAL);
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)line, strlen(line), NOW + 1, &err), 0);
    assert_int_equal(gb_tokens_get(s, 0)->uses_left, 1);
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)toupper((unsigned char)tok[i]);
    /* Persisted: another store sees the spent use. */
    gb_tokens_t *view = s_load(dir);
    assert_int_equal(gb_tokens_get(view, 0)->uses_left, 1);
    assert_int_equal(gb_tokens_get(view, 1)->uses_left, 5);
    assert_int_equal(gb_tokens_consume(view, (uint8_t *)upper, 64, NOW + 2, &err), 0);
    gb_tokens_destroy(&view);

    /* Used up: refused, distinct from wrong. The first store's view is stale
     * but consume re-reads under the lock. */
    s_consume_refused(s, dir, tok, 64, NOW + 3, GB_EPROTO, "all 2 use(s) are spent");
    assert_string_equal(gb_token_status(gb_tokens_get(s, 0), NOW + 3), "used up");
    assert_non_null(strstr(id, gb_tokens_get(s, 0)->id));

    /* Expired: at and after the expiry second. */
    s_consume_refused(s, dir, other, 64, NOW + DAY, GB_ERANGE, "expired 0 s ago");
    s_consume_refused(s, dir, other, 64, NOW + DAY + 50, GB_ERANGE, "expired 50 s ago");
    assert_string_equal(gb_token_status(gb_tokens_get(s, 1), NOW + DAY), "expired");
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)other, 64, NOW + DAY - 1, &err), 0);

    /* Wrong: one digit changed. */
    char wrong[65];
    memcpy(wrong, other, 65);
    wrong[10] = wrong[10] == '0' ? '1' : '0';
    s_consume_refused(s, dir, wrong, 64, NOW, GB_EINTEGRITY, "no such token");
    /* Malformed: short, long, non-hex, empty. */
    s_consume_refused(s, dir, other, 63, NOW, GB_EFORMAT, "expected 64 hex digits, got 63");
    char longer[70];
    snprintf(longer, sizeof longer, "%sab", other);
    s_consume_refused(s, dir, longer, 66, NOW, GB_EFORMAT, "got 66 bytes");
    char nonhex[65];
    memcpy(nonhex, other, 65);
    nonhex[5] = 'g';
    s_consume_refused(s, dir, nonhex, 64, NOW, GB_EFORMAT, "non-hex digit");
    s_consume_refused(s, dir, "", 0, NOW, GB_EFORMAT, "got 0 bytes");
    assert_int_equal(gb_tokens_consume(s, NULL, 5, NOW, &err), GB_EINVAL);

    gb_tokens_destroy(&s);
    gb_test_rmtree(dir);
    free(dir);
}

/* Two stores (coordinator and an administrator's command) on one directory:
 * neither undoes the other's changes. */
static void test_two_stores(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    gb_tokens_t *coord = s_load(dir), *admin = s_load(dir);
    char a[65], b[65];
    assert_int_equal(gb_tokens_create(admin, 2, DAY, NOW, a, NULL, &err), 0);
    assert_int_equal(gb_tokens_consume(coord, (uint8_t *)a, 64, NOW, &err), 0);
    assert_int_equal(gb_tokens_create(admin, 1, DAY, NOW, b, NULL, &err), 0);
    assert_int_equal(gb_tokens_consume(coord, (uint8_t *)b, 64, NOW, &err), 0);
    assert_int_equal(gb_tokens_consume(coord, (uint8_t *)a, 64, NOW, &err), 0);
    assert_int_equal(gb_tokens_consume(coord, (uint8_t *)a, 64, NOW, &err), GB_EPROTO);
    gb_tokens_t *view = s_load(dir);
    assert_int_equal(gb_tokens_count(view), 2);
    assert_int_equal(gb_tokens_get(view, 0)->uses_left, 0);
    assert_int_equal(gb_tokens_get(view, 1)->uses_left, 0);
    gb_tokens_destroy(&view);
    gb_tokens_destroy(&admin);
    gb_tokens_destroy(&coord);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_prune_and_damage(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    gb_tokens_t *s = s_load(dir);
    char old[65], fresh[65];
    assert_int_equal(gb_tokens_create(s, 1, 60, NOW, old, NULL, &err), 0);
    /* Eight days later the old token is dropped on the next rewrite and is
     * then simply unknown. */
    time_t later = NOW + 8 * DAY;
    assert_int_equal(gb_tokens_create(s, 1, 60, later, fresh, NULL, &err), 0);
    gb_tokens_t *view = s_load(dir);
    assert_int_equal(gb_tokens_count(view), 1);
    gb_tokens_destroy(&view);
    s_consume_refused(s, dir, old, 64, later, GB_EINTEGRITY, "no such token");

    char *path = gb_test_path(dir, GB_TOKENS_FILE);
    const char *hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char buf[512];
    struct {
        const char *fmt, *msg;
    } bad[] = {
        {"", "empty"},
        {"# other\n", "not a glassbox token store"},
        {"# glassbox enrollment tokens, version 1\n%s 1 2 3\n", "line 2: expected 5 fields"},
        {"# glassbox enrollment tokens, version 1\n%s 1 2 3 4\n", "line 2: bad numbers"},
        {"# glassbox enrollment tokens, version 1\n%s 1 2 0 0\n", "line 2: bad numbers"},
        {"# glassbox enrollment tokens, version 1\n%s x 2 3 1\n", "line 2: bad numbers"},
        {"# glassbox enrollment tokens, version 1\n%s 1 2 3 1", "not terminated"},
        {"# glassbox enrollment tokens, version 1\nABCD%s 1 2 3 1\n", "line 2: hash"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, bad[i].fmt, hash);
        assert_int_equal(gb_file_write_atomic(path, buf, strlen(buf), 0600, &err), 0);
        assert_null(gb_tokens_load(dir, &err));
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: got '%s', want '%s'", i, err.msg, bad[i].msg);
        /* A store opened before refuses to consume or create on it. */
        assert_int_equal(gb_tokens_consume(s, (uint8_t *)fresh, 64, later, &err), GB_EFORMAT);
    }
    free(path);
    gb_tokens_destroy(&s);
    gb_test_rmtree(dir);
    free(dir);
}

/* No log line ever holds the token, at any level. */
static void test_log_never_holds_token(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    char *log_path = gb_test_path(dir, "log.txt");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    gb_log_set_level(GB_LOG_DEBUG);

    gb_tokens_t *s = s_load(dir);
    char tok[65];
    assert_int_equal(gb_tokens_create(s, 1, 100, NOW, tok, NULL, &err), 0);
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)tok, 64, NOW, &err), 0);
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)tok, 64, NOW, &err), GB_EPROTO);
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)tok, 64, NOW + 200, &err), GB_ERANGE);
    char wrong[65];
    memcpy(wrong, tok, 65);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)wrong, 64, NOW, &err), GB_EINTEGRITY);
    assert_int_equal(gb_tokens_consume(s, (uint8_t *)wrong, 63, NOW, &err), GB_EFORMAT);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    gb_log_set_level(GB_LOG_ERROR);
    size_t len;
    char *log = (char *)gb_test_read(log_path, &len);
    assert_non_null(strstr(log, "created"));
    assert_non_null(strstr(log, "no such token"));
    assert_non_null(strstr(log, "spent"));
    assert_non_null(strstr(log, "expired"));
    /* Neither the token nor any 16-character piece of it. */
    for (int i = 0; i + 16 <= 64; i++) {
        char piece[17];
        memcpy(piece, tok + i, 16);
        piece[16] = '\0';
        assert_null(strstr(log, piece));
        memcpy(piece, wrong + i, 16);
        assert_null(strstr(log, piece));
    }
    gb_free(log);
    gb_tokens_destroy(&s);
    free(log_path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_error_t err;
    char *dir = gb_test_mkdtemp();
    gb_tokens_t *s = s_load(dir);
    char tok[65];
    assert_int_equal(gb_tokens_create(s, 2, DAY, NOW, tok, NULL, &err), 0);

    int points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        gb_tokens_t *t = gb_tokens_load(dir, &err);
        gb_alloc_fail_after(0);
        if (t) {
            gb_tokens_destroy(&t);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        points++;
    }
    assert_true(points >= 3);

    points = 0;
    for (long k = 1;; k++) {
        char t2[65];
        gb_alloc_fail_after(k);
        int rc = gb_tokens_create(s, 1, DAY, NOW, t2, NULL, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        gb_tokens_t *view = s_load(dir);
        assert_int_equal(gb_tokens_count(view), 1);
        gb_tokens_destroy(&view);
        points++;
    }
    assert_true(points >= 2);

    points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_tokens_consume(s, (uint8_t *)tok, 64, NOW, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        /* The use is not spent. */
        gb_tokens_t *view = s_load(dir);
        assert_int_equal(gb_tokens_get(view, 0)->uses_left, 2);
        gb_tokens_destroy(&view);
        points++;
    }
    assert_true(points >= 2);
    gb_tokens_t *view = s_load(dir);
    assert_int_equal(gb_tokens_get(view, 0)->uses_left, 1);
    gb_tokens_destroy(&view);

    gb_tokens_destroy(&s);
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    gb_log_set_level(GB_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_create),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_two_stores),
        cmocka_unit_test(test_prune_and_damage),
        cmocka_unit_test(test_log_never_holds_token),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
