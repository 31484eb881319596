/* An exclusive lock between processes, held on a lock file: how the CA
 * directory's registry (DIR/.lock, net/pki_ca.c) and the enrollment token
 * store (DIR/.tokens.lock, coordinator/enroll_tokens.c) keep an
 * administrator's command and a running coordinator from losing each
 * other's changes.
 *
 * The lock is flock(2) on the file, not the file's existence: the kernel
 * drops it when the holder closes it or dies, so a process that crashed
 * leaves no stale lock behind, only a file that the next taker opens and
 * locks at once. The file is therefore never removed, and never read or
 * written. flock locks an open file description, not a process: a second
 * take of the same file in the same process waits forever, like any other
 * taker (not reentrant); and a child forked while the lock is held
 * inherits the descriptor and with it the lock, which is then released
 * only when both have closed it (the descriptor is close-on-exec, so a
 * child that execs lets go at once). Logs nothing. */
#ifndef GB_UTIL_LOCK_FILE_H
#define GB_UTIL_LOCK_FILE_H

#include "util/error.h"

/* Opens path (created with mode 0600 less the umask if missing, never
 * truncated; a symbolic link at path is refused, not followed; close-on-exec)
 * and takes an exclusive flock on it, waiting as long as another holder has
 * it (a signal's EINTR is retried, not returned). On success *fd is the
 * descriptor that holds the lock, the caller's to pass to
 * gb_lock_file_release. On failure *fd is -1 and GB_EIO with err naming the
 * file: "cannot open lock file '<path>': <why>" (missing or unwritable
 * directory, a symbolic link) or "cannot lock '<path>': <why>"; GB_EINVAL
 * for a NULL path. */
int gb_lock_file_take(const char *path, int *fd, gb_error_t *err) GB_MUST_CHECK;

/* Releases a lock from gb_lock_file_take by closing fd (which drops the
 * flock); fd < 0 (never taken, or taking failed) is ignored. */
void gb_lock_file_release(int fd);

#endif
