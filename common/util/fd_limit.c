/* File descriptor limits (fd_limit.h). */
#include "fd_limit.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/resource.h>

static uint64_t s_u64(rlim_t r)
{
    return r == RLIM_INFINITY ? UINT64_MAX : (uint64_t)r;
}

int gb_fd_limit_raise(uint64_t need, const char *what, uint64_t *limit, gb_error_t *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return gb_error_set(err, GB_EIO, "cannot read the file descriptor limit: %s",
                            strerror(errno));
    uint64_t soft = s_u64(rl.rlim_cur), hard = s_u64(rl.rlim_max);
    uint64_t want = need ? need : (hard < GB_FD_LIMIT_CAP ? hard : GB_FD_LIMIT_CAP);
    if (need && hard < need)
        return gb_error_set(err, GB_ERANGE, "%s needs about %" PRIu64 " file descriptors and "
                            "the hard limit is %" PRIu64 ": raise it (ulimit -n %" PRIu64
                            " as root, LimitNOFILE=%" PRIu64 " in a systemd unit, docker run "
                            "--ulimit nofile=%" PRIu64 ") or run fewer", what ? what : "this run",
                            need, hard, need, need, need);
    if (soft < want) {
        rl.rlim_cur = (rlim_t)want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return gb_error_set(err, GB_EIO, "cannot raise the file descriptor limit from %"
                                PRIu64 " to %" PRIu64 ": %s", soft, want, strerror(errno));
        soft = want;
    }
    if (limit)
        *limit = soft;
    return 0;
}

long gb_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

uint64_t gb_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return UINT64_MAX;
    return s_u64(rl.rlim_cur);
}
