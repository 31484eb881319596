/* File descriptors: the process's limit and how many are open. A process
 * that runs many links (a coordinator with thousands of clients, or
 * `glassbox-client run --virtual N`) needs a descriptor per connection and
 * per ZeroMQ socket mailbox, more than the usual soft limit of 1,024 allows;
 * these raise the soft limit towards the hard one when that is enough, and
 * say plainly when it is not. */
#ifndef GB_UTIL_FD_LIMIT_H
#define GB_UTIL_FD_LIMIT_H

#include <stdint.h>

#include "util/error.h"

/* The highest soft limit gb_fd_limit_raise sets when asked for the most it
 * can (need 0): enough for any federation on one machine, and small enough
 * that a library sizing tables by the limit does not allocate for millions. */
#define GB_FD_LIMIT_CAP 1048576u

/* Makes sure the soft RLIMIT_NOFILE is at least `need` (0: as high as the
 * hard limit allows, at most GB_FD_LIMIT_CAP), raising it when the hard
 * limit permits; *limit (may be NULL) gets the soft limit in force after.
 * `what` names who needs them in the message ("--virtual 2000"). Returns 0,
 * or GB_ERANGE when the hard limit is below need, with err naming both and
 * the ways to raise it (ulimit -n, LimitNOFILE=, docker --ulimit), or GB_EIO
 * when the limit cannot be read or set. */
int gb_fd_limit_raise(uint64_t need, const char *what, uint64_t *limit,
                      gb_error_t *err) GB_MUST_CHECK;

/* Descriptors open in this process now (from /proc/self/fd), or -1 when it
 * cannot be told. */
long gb_fd_count(void);

/* The soft RLIMIT_NOFILE now (UINT64_MAX: unlimited or unknown). */
uint64_t gb_fd_limit(void);

#endif
