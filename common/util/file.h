/* Whole-file reads with a hard size limit, and atomic whole-file writes.
 *
 * Every file Glassbox reads comes from outside (model files, configs, specs,
 * certificates), so reading takes the largest size the caller will accept and
 * refuses anything bigger before allocating it (curl's dynbuf "too big").
 * Every file Glassbox writes that someone depends on (checkpoints, models,
 * keys) is written atomically: to a temporary file in the same directory,
 * fsync'd, renamed over the target, then the directory fsync'd, so a crash
 * or a full disk leaves either the old file or the new one, never a mix. */
#ifndef GB_UTIL_FILE_H
#define GB_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Reads the whole file at `path` into a new buffer. At most max_len bytes are
 * accepted: a bigger file is refused (GB_ERANGE) without reading it (for
 * regular files the size is checked before the buffer is allocated; pipes and
 * character devices are read up to max_len + 1 bytes). On success *data is
 * the caller's, to free with gb_free; it holds *len bytes followed by one NUL
 * byte (not counted in *len), so text files can be used as C strings. On
 * failure *data is NULL, *len is 0 and err names the file: GB_EIO when it
 * cannot be opened or read (missing, no permission, a directory), GB_ERANGE
 * when too big, GB_ENOMEM. Logs nothing: the caller knows whether a missing
 * file is worth a log line. */
int gb_file_read_all(const char *path, size_t max_len, uint8_t **data, size_t *len,
                     gb_error_t *err) GB_MUST_CHECK;

/* Replaces the file at `path` with len bytes of data, atomically: the bytes
 * go to a new temporary file ".<name>.tmp-XXXXXX" in the same directory,
 * which is given exactly `mode` (e.g. 0644, or 0600 for secrets; the umask
 * does not apply, and the file is never readable by others before its mode is
 * set), written, fsync'd and renamed over `path`; then the directory is
 * fsync'd so the rename itself is durable. `data` may be NULL when len is 0.
 *
 * On failure before the rename (GB_EIO: directory missing or not writable,
 * `path` is a directory, disk full, ...; GB_ENOMEM) the old file, if any, is
 * untouched and the temporary file removed. A failure of the final directory
 * fsync is reported (GB_EIO) although the new content is already in place.
 * A symbolic link at `path` is replaced by the new file, not followed. */
int gb_file_write_atomic(const char *path, const void *data, size_t len, int mode,
                         gb_error_t *err) GB_MUST_CHECK;

#endif
