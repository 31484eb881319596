/* Tests for util/lock_file: a lock that excludes other processes (and
 * another descriptor of this one), waits for its holder, survives a
 * signal while it waits, is free again once its holder releases it or dies
 * (a lock file left behind is not a stale lock), never truncates or
 * follows what is at its path, and fails cleanly where the file cannot be
 * made: a missing directory, a path under a regular file, a directory the
 * caller may not write (skipped as root, who may), and /proc, which not
 * even root may write. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/lock_file.h"

/* True when path is locked by someone else: a fresh descriptor cannot take
 * the flock without waiting. */
static bool s_is_locked(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0;
    if (locked)
        assert_int_equal(errno, EWOULDBLOCK);
    close(fd);
    return locked;
}

/* Waits (up to 10 s, polling /proc/locks) until process pid is blocked
 * waiting for a flock, so a test knows its child really waits rather than
 * merely about to. Best effort: where /proc/locks cannot be read, returns
 * at once; the tests stay correct, only weaker. */
static void s_wait_until_blocked(pid_t pid)
{
    char want[32];
    snprintf(want, sizeof want, " %ld ", (long)pid);
    for (int tries = 0; tries < 10000; tries++) {
        FILE *f = fopen("/proc/locks", "r");
        if (!f)
            return;
        char line[256];
        bool seen = false;
        while (!seen && fgets(line, sizeof line, f))
            seen = strstr(line, "->") && strstr(line, "FLOCK") && strstr(line, want);
        fclose(f);
        if (seen)
            return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static int s_setup(void **state)
{
    *state = gb_test_mkdtemp();
    return *state ? 0 : -1;
}

static int s_teardown(void **state)
{
    gb_test_rmtree(*state);
    free(*state);
    return 0;
}

static void test_take_and_release(void **state)
{
    char *path = gb_test_path(*state, ".lock");
    mode_t old_mask = umask(0);
    int fd = -2;
    gb_error_t err;
    assert_int_equal(gb_lock_file_take(path, &fd, &err), 0);
    umask(old_mask);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    /* Held against another descriptor, even of this process. */
    assert_true(s_is_locked(path));
    gb_lock_file_release(fd);
    assert_false(s_is_locked(path));
    /* The file stays: the lock is the flock, not the file. */
    assert_int_equal(stat(path, &st), 0);

    /* Taken again at once; then released for good. */
    assert_int_equal(gb_lock_file_take(path, &fd, &err), 0);
    gb_lock_file_release(fd);
    gb_lock_file_release(-1); /* never taken: ignored */
    free(path);
}

static void test_existing_file_untouched(void **state)
{
    char *path = gb_test_write_file(*state, ".lock", "keep", 4);
    assert_int_equal(chmod(path, 0640), 0);
    int fd;
    assert_int_equal(gb_lock_file_take(path, &fd, NULL), 0);
    gb_lock_file_release(fd);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4); /* never truncated */
    assert_int_equal(st.st_mode & 07777, 0640);
    free(path);
}

/* A child holds the lock: the parent sees it held; the child dies without
 * releasing it; the file stays and the parent takes the lock at once. */
static void test_held_by_another_process_then_stale(void **state)
{
    char *path = gb_test_path(*state, ".lock");
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd;
        if (gb_lock_file_take(path, &fd, NULL) != 0)
            _exit(2);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        _exit(0); /* dies holding it */
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_true(s_is_locked(path));
    assert_int_equal(write(go[1], "g", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* What the dead holder left is a file, not a lock. */
    assert_int_equal(access(path, F_OK), 0);
    assert_false(s_is_locked(path));
    int fd;
    gb_error_t err;
    assert_int_equal(gb_lock_file_take(path, &fd, &err), 0);
    gb_lock_file_release(fd);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    free(path);
}

static void s_on_signal(int sig)
{
    (void)sig;
}

/* The parent holds the lock; a child waits for it, is interrupted by a
 * signal (no SA_RESTART, so flock sees EINTR) and must keep waiting: it may
 * only get the lock after the parent has marked the release. */
static void test_waits_for_holder_through_signals(void **state)
{
    char *path = gb_test_path(*state, ".lock");
    char *mark = gb_test_path(*state, "released");
    int fd;
    gb_error_t err;
    assert_int_equal(gb_lock_file_take(path, &fd, &err), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = s_on_signal; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0 || write(ready[1], "r", 1) != 1)
            _exit(3);
        /* The parent's descriptor came with the fork and shares its lock:
         * drop it, or the lock could never be released to us. */
        close(fd);
        int mine;
        if (gb_lock_file_take(path, &mine, NULL) != 0)
            _exit(2);
        /* Got it: only allowed once the parent let go. */
        _exit(access(mark, F_OK) == 0 ? 0 : 1);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    s_wait_until_blocked(pid);
    assert_int_equal(kill(pid, SIGUSR1), 0);
    s_wait_until_blocked(pid);
    FILE *f = fopen(mark, "w");
    assert_non_null(f);
    fclose(f);
    gb_lock_file_release(fd);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ready[0]);
    close(ready[1]);
    free(mark);
    free(path);
}

/* Every failure: GB_EIO naming the file, *fd -1, nothing created. */
static void s_assert_cannot_open(const char *path)
{
    int fd = 7;
    gb_error_t err;
    gb_error_clear(&err);
    assert_int_equal(gb_lock_file_take(path, &fd, &err), GB_EIO);
    assert_int_equal(fd, -1);
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, "cannot open lock file"));
    assert_non_null(strstr(err.msg, path));
}

static void test_cannot_make_the_file(void **state)
{
    const char *dir = *state;
    char *missing = gb_test_path(dir, "no-such-dir/.lock");
    s_assert_cannot_open(missing);
    free(missing);

    char *file = gb_test_write_file(dir, "plain", "x", 1);
    char *under_file = gb_test_path(file, ".lock");
    s_assert_cannot_open(under_file);
    free(under_file);
    free(file);

    if (geteuid() != 0) { /* root writes anywhere */
        char *ro = gb_test_path(dir, "ro");
        assert_int_equal(mkdir(ro, 0500), 0);
        char *in_ro = gb_test_path(ro, ".lock");
        s_assert_cannot_open(in_ro);
        assert_int_equal(access(in_ro, F_OK), -1);
        assert_int_equal(chmod(ro, 0700), 0);
        free(in_ro);
        free(ro);
    }
    if (access("/proc/self", F_OK) == 0) /* read-only even for root */
        s_assert_cannot_open("/proc/self/glassbox-test.lock");

    int fd = 7;
    assert_int_equal(gb_lock_file_take(NULL, &fd, NULL), GB_EINVAL);
    assert_int_equal(fd, -1);
}

/* A symbolic link at the lock's path is refused, not followed: the lock
 * never creates or locks a file somewhere else. */
static void test_symlink_refused(void **state)
{
    const char *dir = *state;
    char *target = gb_test_path(dir, "elsewhere");
    char *link = gb_test_path(dir, ".lock");
    assert_int_equal(symlink(target, link), 0);
    s_assert_cannot_open(link);
    assert_int_equal(access(target, F_OK), -1);
    free(link);
    free(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_and_release, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_existing_file_untouched, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_held_by_another_process_then_stale, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_holder_through_signals, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cannot_make_the_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
