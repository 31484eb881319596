/* Tests for util/file: bounded whole-file reads (regular files, pipes,
 * character devices, limits, missing files, directories) and atomic writes
 * (modes, replacement, and failures that must leave the old file and no
 * temporary behind), with allocation-failure injection. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/file.h"

/* Number of entries in dir other than . and .. */
static int s_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Asserts that path holds exactly len bytes equal to want. */
static void s_assert_content(const char *path, const void *want, size_t len)
{
    uint8_t *data = NULL;
    size_t got = 0;
    gb_error_t err;
    assert_int_equal(gb_file_read_all(path, 1 << 20, &data, &got, &err), 0);
    assert_int_equal(got, len);
    if (len)
        assert_memory_equal(data, want, len);
    gb_free(data);
}

static void test_read_all_regular(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    uint8_t bytes[3000];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 7); /* includes NUL bytes */
    char *path = gb_test_write_file(dir, "data.bin", bytes, sizeof bytes);

    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_read_all(path, sizeof bytes, &data, &len, &err), 0);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(data, bytes, sizeof bytes);
    assert_int_equal(data[len], 0); /* NUL after the data */
    gb_free(data);

    /* An empty file gives an empty, NUL-terminated buffer. */
    char *empty = gb_test_write_file(dir, "empty", "", 0);
    assert_int_equal(gb_file_read_all(empty, 10, &data, &len, &err), 0);
    assert_non_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(data[0], 0);
    gb_free(data);

    free(empty);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_read_all_limit(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char text[101];
    memset(text, 'x', 100);
    text[100] = '\0';
    char *path = gb_test_write_file(dir, "hundred.txt", text, 100);

    uint8_t *data = (uint8_t *)"sentinel";
    size_t len = 77;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_read_all(path, 99, &data, &len, &err), GB_ERANGE);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "99"));

    assert_int_equal(gb_file_read_all(path, 100, &data, &len, &err), 0);
    assert_string_equal((char *)data, text);
    gb_free(data);

    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_read_all_missing_and_directory(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *missing = gb_test_path(dir, "no-such-file");
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_read_all(missing, 100, &data, &len, &err), GB_EIO);
    assert_null(data);
    assert_non_null(strstr(err.msg, missing));

    gb_error_clear(&err);
    assert_int_equal(gb_file_read_all(dir, 100, &data, &len, &err), GB_EIO);
    assert_null(data);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "directory"));

    assert_int_equal(gb_file_read_all(NULL, 100, &data, &len, &err), GB_EINVAL);
    free(missing);
    gb_test_rmtree(dir);
    free(dir);
}

/* Character devices have no size: the limit is enforced while reading. */
static void test_read_all_endless_device(void **state)
{
    (void)state;
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_read_all("/dev/zero", 10000, &data, &len, &err), GB_ERANGE);
    assert_null(data);
    assert_non_null(strstr(err.msg, "/dev/zero"));
}

/* A pipe is read to its end through the growing buffer. */
static void test_read_all_fifo(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *fifo = gb_test_path(dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    enum { N = 50000 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = fopen(fifo, "wb");
        if (!f)
            _exit(1);
        for (int i = 0; i < N; i++)
            fputc(i % 251, f);
        fclose(f);
        _exit(0);
    }
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err;
    gb_error_clear(&err);
    int rc = gb_file_read_all(fifo, 1 << 20, &data, &len, &err);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rc, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(len, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(data[i], i % 251);
    assert_int_equal(data[len], 0);
    gb_free(data);
    free(fifo);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_write_atomic_modes_and_replace(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *path = gb_test_path(dir, "key.pem");
    gb_error_t err;
    gb_error_clear(&err);

    assert_int_equal(gb_file_write_atomic(path, "secret", 6, 0600, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    s_assert_content(path, "secret", 6);

    /* Replacing gives the new mode and content, and leaves no temporary. */
    assert_int_equal(gb_file_write_atomic(path, "public data", 11, 0644, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    s_assert_content(path, "public data", 11);
    assert_int_equal(s_count_entries(dir), 1);

    /* The umask does not apply: 0666 is 0666. */
    mode_t old_mask = umask(022);
    char *shared = gb_test_path(dir, "shared");
    assert_int_equal(gb_file_write_atomic(shared, NULL, 0, 0666, &err), 0);
    umask(old_mask);
    assert_int_equal(stat(shared, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0666);
    assert_int_equal(st.st_size, 0);

    /* A relative path (no directory part) works too. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(gb_file_write_atomic("relative.txt", "rel", 3, 0644, &err), 0);
    assert_int_equal(chdir(cwd), 0);
    char *rel = gb_test_path(dir, "relative.txt");
    s_assert_content(rel, "rel", 3);
    assert_int_equal(s_count_entries(dir), 3);

    free(rel);
    free(shared);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_write_atomic_bad_arguments(void **state)
{
    (void)state;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_write_atomic(NULL, "x", 1, 0644, &err), GB_EINVAL);
    assert_int_equal(gb_file_write_atomic("/tmp/x", NULL, 1, 0644, &err), GB_EINVAL);
    assert_int_equal(gb_file_write_atomic("/tmp/x", "x", 1, 010000, &err), GB_EINVAL);
    assert_int_equal(gb_file_write_atomic("/tmp/dir/", "x", 1, 0644, &err), GB_EINVAL);
    assert_int_equal(gb_file_write_atomic("/tmp/..", "x", 1, 0644, &err), GB_EINVAL);
}

/* Target is a directory: refused at the rename, directory untouched, no
 * temporary left. */
static void test_write_atomic_path_is_directory(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *sub = gb_test_path(dir, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_write_atomic(sub, "data", 4, 0644, &err), GB_EIO);
    assert_non_null(strstr(err.msg, sub));
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(s_count_entries(dir), 1);
    free(sub);
    gb_test_rmtree(dir);
    free(dir);
}

/* The directory does not exist or cannot be written: refused before anything
 * is created; the old file stays. */
static void test_write_atomic_unwritable_directory(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    gb_error_t err;
    gb_error_clear(&err);
    char *nodir = gb_test_path(dir, "missing/file");
    assert_int_equal(gb_file_write_atomic(nodir, "x", 1, 0644, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "missing"));
    free(nodir);

    char *path = gb_test_path(dir, "model.gbm");
    assert_int_equal(gb_file_write_atomic(path, "old", 3, 0644, &err), 0);
    if (geteuid() != 0) { /* root writes anywhere */
        assert_int_equal(chmod(dir, 0500), 0);
        assert_int_equal(gb_file_write_atomic(path, "new", 3, 0644, &err), GB_EIO);
        assert_int_equal(chmod(dir, 0700), 0);
        s_assert_content(path, "old", 3);
        assert_int_equal(s_count_entries(dir), 1);
    }
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

/* A write that fails half-way (here: over the file size limit, which works
 * for root too) removes the temporary and keeps the old file. */
static void test_write_atomic_fails_midway(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *path = gb_test_path(dir, "checkpoint");
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_write_atomic(path, "old content", 11, 0600, &err), 0);

    size_t big_len = 64 * 1024;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'n', big_len);

    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = gb_file_write_atomic(path, big, big_len, 0644, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, GB_EIO);
    s_assert_content(path, "old content", 11);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(s_count_entries(dir), 1);

    free(big);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    char *path = gb_test_path(dir, "f");
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_file_write_atomic(path, "old", 3, 0644, &err), 0);

    /* Every allocation of a write, failed in turn: old file kept, nothing left. */
    int failures = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_file_write_atomic(path, "new", 3, 0644, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        s_assert_content(path, "old", 3);
        assert_int_equal(s_count_entries(dir), 1);
        failures++;
    }
    assert_true(failures >= 1);
    s_assert_content(path, "new", 3);

    /* Reads: a failed allocation returns no buffer. */
    failures = 0;
    for (long k = 1;; k++) {
        uint8_t *data = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_file_read_all(path, 100, &data, &len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            gb_free(data);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(data);
        failures++;
    }
    assert_true(failures >= 1);

    /* The growing path (a device with no size) fails cleanly too. */
    for (long k = 1; k <= 3; k++) {
        uint8_t *data = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_file_read_all("/dev/zero", 20000, &data, &len, &err);
        gb_alloc_fail_after(0);
        assert_true(rc == GB_ENOMEM || rc == GB_ERANGE);
        assert_null(data);
    }

    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_all_regular),
        cmocka_unit_test(test_read_all_limit),
        cmocka_unit_test(test_read_all_missing_and_directory),
        cmocka_unit_test(test_read_all_endless_device),
        cmocka_unit_test(test_read_all_fifo),
        cmocka_unit_test(test_write_atomic_modes_and_replace),
        cmocka_unit_test(test_write_atomic_bad_arguments),
        cmocka_unit_test(test_write_atomic_path_is_directory),
        cmocka_unit_test(test_write_atomic_unwritable_directory),
        cmocka_unit_test(test_write_atomic_fails_midway),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
