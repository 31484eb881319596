/* Bounded whole-file reads and atomic whole-file writes (see file.h).
 *
 * Reads loop on read(2) into a buffer that grows up to the caller's limit;
 * for a regular file fstat gives the size up front, so an oversized file is
 * refused before any allocation, yet a file that grows between fstat and read
 * is still cut off at the limit. Writes follow the classic recipe (write a
 * temporary file beside the target, fsync, rename, fsync the directory);
 * the temporary is created with mkostemp (O_EXCL, mode 0600) and only then
 * chmod'ed to the requested mode, so a secret is never readable in between. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"

/* First buffer size for files whose size fstat does not tell (pipes). */
#define S_READ_CHUNK 4096
/* Longest part of the target's name copied into the temporary's name, so
 * ".<name>.tmp-XXXXXX" stays within NAME_MAX (255). */
#define S_TMP_BASE_MAX 200

static int s_io_error(gb_error_t *err, int e, const char *what, const char *path)
{
    return gb_error_set(err, GB_EIO, "%s '%s': %s", what, path, strerror(e));
}

/* Reads one byte after the buffer is full: returns 1 and stores it in *byte
 * if the file has more, 0 at end of file, a gb_err on failure. */
static int s_read_probe(int fd, uint8_t *byte, const char *path, gb_error_t *err)
{
    for (;;) {
        ssize_t n = read(fd, byte, 1);
        if (n >= 0)
            return n > 0;
        if (errno != EINTR)
            return s_io_error(err, errno, "cannot read", path);
    }
}

int gb_file_read_all(const char *path, size_t max_len, uint8_t **data, size_t *len,
                     gb_error_t *err)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!path || !data || !len)
        return gb_error_set(err, GB_EINVAL, "gb_file_read_all: NULL argument");
    if (max_len > SIZE_MAX - 1)
        max_len = SIZE_MAX - 1; /* room for the NUL */

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return s_io_error(err, errno, "cannot open", path);

    int rc = 0;
    uint8_t *buf = NULL;
    size_t used = 0, cap;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = s_io_error(err, errno, "cannot stat", path);
        goto cleanup;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = gb_error_set(err, GB_EIO, "cannot read '%s': it is a directory", path);
        goto cleanup;
    }
    if (S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > (uint64_t)max_len) {
            rc = gb_error_set(err, GB_ERANGE, "'%s' is %llu bytes, more than the limit of %zu",
                              path, (unsigned long long)st.st_size, max_len);
            goto cleanup;
        }
        cap = (size_t)st.st_size;
    } else {
        cap = max_len < S_READ_CHUNK ? max_len : S_READ_CHUNK;
    }
    buf = gb_malloc(cap + 1);
    if (!buf) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, cap);
        goto cleanup;
    }

    for (;;) {
        if (used == cap) {
            /* Full: at end of file, or the file is bigger than expected. */
            uint8_t probe;
            int more = s_read_probe(fd, &probe, path, err);
            if (more < 0) {
                rc = more;
                goto cleanup;
            }
            if (!more)
                break;
            if (cap == max_len) {
                rc = gb_error_set(err, GB_ERANGE, "'%s' is more than the limit of %zu bytes",
                                  path, max_len);
                goto cleanup;
            }
            size_t next = cap > max_len / 2 ? max_len : cap * 2;
            if (next < S_READ_CHUNK)
                next = S_READ_CHUNK;
            if (next > max_len)
                next = max_len;
            uint8_t *grown = gb_realloc(buf, next + 1);
            if (!grown) {
                rc = gb_error_set(err, GB_ENOMEM, "out of memory reading '%s' (%zu bytes)",
                                  path, next);
                goto cleanup;
            }
            buf = grown;
            cap = next;
            buf[used++] = probe;
            continue;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = s_io_error(err, errno, "cannot read", path);
            goto cleanup;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }

    buf[used] = '\0';
    *data = buf;
    *len = used;
    buf = NULL;

cleanup:
    gb_free(buf);
    close(fd);
    return rc;
}

/* Writes all of data, retrying short writes and EINTR. */
static int s_write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int gb_file_write_atomic(const char *path, const void *data, size_t len, int mode,
                         gb_error_t *err)
{
    if (!path || (!data && len > 0))
        return gb_error_set(err, GB_EINVAL, "gb_file_write_atomic: NULL argument");
    if (mode < 0 || (mode & ~07777) != 0)
        return gb_error_set(err, GB_EINVAL, "writing '%s': bad file mode %#o", path,
                            (unsigned)mode);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t base_len = strlen(base);
    if (base_len == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return gb_error_set(err, GB_EINVAL, "writing '%s': not a file name", path);

    /* Directory part: "" + "." for "name", "/" for "/name", "a/b" for "a/b/name". */
    size_t prefix_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t dir_len = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    size_t shown = base_len < S_TMP_BASE_MAX ? base_len : S_TMP_BASE_MAX;
    size_t tmp_cap = prefix_len + 1 + shown + sizeof ".tmp-XXXXXX";
    int rc = 0, fd = -1;
    char *dir = gb_malloc(dir_len + 1);
    char *tmp = gb_malloc(tmp_cap);
    if (tmp)
        tmp[0] = '\0'; /* no temporary file yet: cleanup must not remove one */
    if (!dir || !tmp) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory writing '%s'", path);
        goto cleanup;
    }
    if (slash)
        memcpy(dir, path, dir_len);
    else
        dir[0] = '.';
    dir[dir_len] = '\0';
    snprintf(tmp, tmp_cap, "%.*s.%.*s.tmp-XXXXXX", (int)prefix_len, path, (int)shown, base);

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = s_io_error(err, errno, "cannot create a temporary file in", dir);
        tmp[0] = '\0'; /* nothing to remove */
        goto cleanup;
    }
    if (fchmod(fd, (mode_t)mode) != 0) {
        rc = s_io_error(err, errno, "cannot set the mode of", tmp);
        goto cleanup;
    }
    if (s_write_all(fd, data, len) != 0) {
        rc = s_io_error(err, errno, "cannot write", tmp);
        goto cleanup;
    }
    if (fsync(fd) != 0) {
        rc = s_io_error(err, errno, "cannot fsync", tmp);
        goto cleanup;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        rc = s_io_error(err, errno, "cannot close", tmp);
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        rc = gb_error_set(err, GB_EIO, "cannot replace '%s': %s", path, strerror(e));
        goto cleanup;
    }
    tmp[0] = '\0'; /* renamed: nothing to remove any more */

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = s_io_error(err, errno, "cannot open directory", dir);
        goto cleanup;
    }
    /* Some file systems cannot fsync a directory (EINVAL); nothing to do then. */
    if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
        rc = s_io_error(err, errno, "cannot fsync directory", dir);
    close(dfd);

cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp && tmp[0] != '\0')
        unlink(tmp);
    gb_free(tmp);
    gb_free(dir);
    return rc;
}
