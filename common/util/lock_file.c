/* Lock files (see lock_file.h): flock(2) on a file opened for the purpose.
 * One copy of what the CA (net/pki_ca.c) and the enrollment token store
 * (coordinator/enroll_tokens.c) each did for themselves.
 *
 * flock rather than fcntl record locks: an fcntl lock belongs to the
 * process and is dropped when ANY descriptor of the file is closed, so a
 * library that opened the file again for another reason would release the
 * lock behind its holder's back; a flock belongs to this one descriptor. */
#include "util/lock_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int gb_lock_file_take(const char *path, int *fd, gb_error_t *err)
{
    *fd = -1;
    if (!path)
        return gb_error_set(err, GB_EINVAL, "gb_lock_file_take: NULL path");
    int d = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d < 0)
        return gb_error_set(err, GB_EIO, "cannot open lock file '%s': %s", path, strerror(errno));
    while (flock(d, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(d);
            return gb_error_set(err, GB_EIO, "cannot lock '%s': %s", path, strerror(e));
        }
    }
    *fd = d;
    return 0;
}

void gb_lock_file_release(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}
