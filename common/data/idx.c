/* IDX reader. One parser runs over a small byte source that is either a zlib
 * gzFile (which reads gzipped and plain files alike, deciding by content) or
 * a buffer in memory, so the file path and the fuzzable in-memory path share
 * every check. The parser is three steps, shared by the whole-file reader
 * and the stream: the header is validated completely and the payload size
 * computed in 128-bit arithmetic before anything is allocated (s_head); the
 * payload is read into the caller's buffer, in one piece or many, a short
 * read being the truncation error with the whole file's byte count
 * (s_payload); and one more read proves the file ends where the header says
 * (s_end). */
#include "data/idx.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "util/alloc.h"
#include "util/log.h"

#define S_GZ_BUFFER (256u << 10) /* zlib input buffer: fewer read(2) calls */
#define S_GZ_CHUNK (64u << 20)   /* gzread takes an unsigned length: read in chunks */
#define S_TRAILING_COUNT_MAX (1u << 20) /* stop counting trailing bytes here */

typedef struct {
    const char *name;   /* for messages */
    gzFile gz;          /* file source, or NULL */
    const uint8_t *mem; /* memory source when gz is NULL */
    size_t mem_len;     /* bytes in mem */
    size_t mem_pos;     /* bytes of mem consumed */
} s_src_t;

/* Turns a zlib error state into an error return; returns 0 when there is no
 * error, or when it is only a premature end of input and `eof_ok` (the caller
 * reports the truncation with byte counts). */
static int s_gz_check(s_src_t *src, int eof_ok, gb_error_t *err)
{
    int zerr = Z_OK;
    const char *zmsg = gzerror(src->gz, &zerr);
    if (zerr == Z_OK || (zerr == Z_BUF_ERROR && eof_ok))
        return 0;
    /* zlib prefixes its message with the path we already print */
    size_t nlen = strlen(src->name);
    if (zmsg && strncmp(zmsg, src->name, nlen) == 0 && strncmp(zmsg + nlen, ": ", 2) == 0)
        zmsg += nlen + 2;
    if (zerr == Z_ERRNO)
        return gb_error_warn(err, GB_EIO, "%s: read error: %s", src->name, strerror(errno));
    if (zerr == Z_MEM_ERROR)
        return gb_error_warn(err, GB_ENOMEM, "%s: out of memory in zlib", src->name);
    if (zerr == Z_BUF_ERROR)
        return gb_error_warn(err, GB_EFORMAT, "%s: truncated gzip stream (%s)", src->name, zmsg);
    return gb_error_warn(err, GB_EFORMAT, "%s: corrupt gzip data (%s)", src->name, zmsg);
}

/* Reads up to `want` bytes into buf; *got receives how many arrived (short
 * only at end of input, including a truncated gzip stream). Returns 0 or an
 * error for a read failure or corrupt compressed data. */
static int s_read(s_src_t *src, void *buf, size_t want, size_t *got, gb_error_t *err)
{
    uint8_t *p = buf;
    size_t total = 0;
    if (!src->gz) {
        size_t left = src->mem_len - src->mem_pos;
        total = want < left ? want : left;
        if (total)
            memcpy(p, src->mem + src->mem_pos, total);
        src->mem_pos += total;
        *got = total;
        return 0;
    }
    while (total < want) {
        size_t chunk = want - total;
        if (chunk > S_GZ_CHUNK)
            chunk = S_GZ_CHUNK;
        int r = gzread(src->gz, p + total, (unsigned)chunk);
        if (r < 0) {
            *got = total;
            int rc = s_gz_check(src, 0, err);
            return rc ? rc : gb_error_warn(err, GB_EIO, "%s: read error", src->name);
        }
        if (r == 0)
            break;
        total += (size_t)r;
    }
    *got = total;
    return s_gz_check(src, 1, err);
}

static uint32_t s_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static const char *s_type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

/* "60000x28x28" into buf. */
static void s_dims_text(const uint32_t *dims, int ndims, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndims && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%u", i ? "x" : "", (unsigned)dims[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

/* Counts bytes left in the source (up to just past S_TRAILING_COUNT_MAX), for
 * the trailing-data message. */
static size_t s_count_rest(s_src_t *src, int *more)
{
    uint8_t scratch[16384];
    size_t total = 0, got = 0;
    *more = 0;
    while (s_read(src, scratch, sizeof scratch, &got, NULL) == 0 && got > 0) {
        total += got;
        if (total > S_TRAILING_COUNT_MAX) {
            *more = 1;
            break;
        }
    }
    return total;
}

/* The header, checked: shape and payload length, and the texts messages use. */
typedef struct {
    int ndims;                      /* 1..GB_IDX_MAX_DIMS */
    uint32_t dims[GB_IDX_MAX_DIMS]; /* each > 0; unused entries 0 */
    size_t len;                     /* payload bytes, <= GB_IDX_MAX_BYTES */
    size_t head_len;                /* header bytes */
    char dtext[64];                 /* "60000x28x28" */
} s_head_t;

/* Reads and checks the header: magic, type, dimension count, every
 * dimension > 0, payload within GB_IDX_MAX_BYTES. Nothing is allocated. */
static int s_head(s_src_t *src, s_head_t *h, gb_error_t *err)
{
    uint8_t head[4 + 4 * GB_IDX_MAX_DIMS];
    size_t got = 0;
    int rc = s_read(src, head, 4, &got, err);
    if (rc)
        return rc;
    if (got == 0)
        return gb_error_warn(err, GB_EFORMAT, "%s: empty file, expected an IDX header", src->name);
    if (got < 4)
        return gb_error_warn(err, GB_EFORMAT, "%s: truncated header: %zu of 4 magic bytes", src->name,
                      got);
    if (head[0] != 0 || head[1] != 0)
        return gb_error_warn(err, GB_EFORMAT,
                      "%s: bad magic 0x%02x%02x%02x%02x: not an IDX file (expected 0x0000, a "
                      "type byte and a dimension count)",
                      src->name, head[0], head[1], head[2], head[3]);
    int type = head[2];
    if (type != GB_IDX_TYPE_UBYTE) {
        const char *tn = s_type_name(type);
        if (tn)
            return gb_error_warn(err, GB_EFORMAT,
                          "%s: IDX type 0x%02X (%s) is not supported: only 0x08 (unsigned byte)",
                          src->name, type, tn);
        return gb_error_warn(err, GB_EFORMAT, "%s: unknown IDX type byte 0x%02X", src->name, type);
    }
    int ndims = head[3];
    if (ndims < 1 || ndims > GB_IDX_MAX_DIMS)
        return gb_error_warn(err, GB_EFORMAT, "%s: %d dimensions in header: expected 1 to %d",
                      src->name, ndims, GB_IDX_MAX_DIMS);
    size_t dims_len = 4 * (size_t)ndims;
    rc = s_read(src, head + 4, dims_len, &got, err);
    if (rc)
        return rc;
    if (got < dims_len)
        return gb_error_warn(err, GB_EFORMAT,
                      "%s: truncated header: %d dimensions need %zu bytes, file has %zu",
                      src->name, ndims, dims_len, got);
    memset(h, 0, sizeof *h);
    h->ndims = ndims;
    unsigned __int128 product = 1; /* 4 factors below 2^32 cannot overflow */
    for (int i = 0; i < ndims; i++) {
        h->dims[i] = s_be32(head + 4 + 4 * i);
        if (h->dims[i] == 0)
            return gb_error_warn(err, GB_EFORMAT, "%s: dimension %d of %d is 0", src->name, i + 1,
                          ndims);
        product *= h->dims[i];
    }
    s_dims_text(h->dims, ndims, h->dtext, sizeof h->dtext);
    if (product > GB_IDX_MAX_BYTES)
        return gb_error_warn(err, GB_ERANGE, "%s: header says %s bytes, over the %zu-byte limit",
                             src->name, h->dtext, GB_IDX_MAX_BYTES);
    h->len = (size_t)product;
    h->head_len = 4 + dims_len;
    return 0;
}

/* Reads the next `want` payload bytes into buf, `done` of h->len already
 * read: a short read is the truncation error, with the whole file's count. */
static int s_payload(s_src_t *src, const s_head_t *h, size_t done, uint8_t *buf, size_t want,
                     gb_error_t *err)
{
    size_t got = 0;
    int rc = s_read(src, buf, want, &got, err);
    if (rc)
        return rc;
    if (got < want)
        return gb_error_warn(err, GB_EFORMAT,
                             "%s: truncated: header says %s = %zu bytes, file has %zu after the "
                             "%zu-byte header",
                             src->name, h->dtext, h->len, done + got, h->head_len);
    return 0;
}

/* After the whole payload: the file must end here (trailing data is an
 * error), and a gzip stream must end cleanly (its CRC and length check). */
static int s_end(s_src_t *src, const s_head_t *h, gb_error_t *err)
{
    uint8_t probe;
    size_t got = 0;
    int rc = s_read(src, &probe, 1, &got, err);
    if (rc)
        return rc;
    if (got) {
        int more = 0;
        size_t extra = 1 + s_count_rest(src, &more);
        return gb_error_warn(err, GB_EFORMAT,
                             "%s: %s%zu byte%s of trailing data after the %zu bytes that header "
                             "%s describes",
                             src->name, more ? "more than " : "", extra, extra == 1 ? "" : "s",
                             h->len, h->dtext);
    }
    return src->gz ? s_gz_check(src, 0, err) : 0;
}

/* Fills out from the header h. */
static void s_fill_head(const s_head_t *h, gb_idx_t *out)
{
    memset(out, 0, sizeof *out);
    out->ndims = h->ndims;
    for (int i = 0; i < h->ndims; i++)
        out->dims[i] = (int)h->dims[i];
    out->len = h->len;
}

static int s_parse(s_src_t *src, gb_idx_t *out, gb_error_t *err)
{
    s_head_t h;
    int rc = s_head(src, &h, err);
    if (rc)
        return rc;
    /* A buffer that cannot hold the payload is refused before the payload is
     * allocated: a short input claiming a 1 GiB image costs nothing. */
    if (!src->gz && h.len > src->mem_len - src->mem_pos)
        return gb_error_warn(err, GB_EFORMAT,
                             "%s: truncated: header says %s = %zu bytes, file has %zu after the "
                             "%zu-byte header",
                             src->name, h.dtext, h.len, src->mem_len - src->mem_pos, h.head_len);
    uint8_t *data = gb_malloc(h.len);
    if (!data)
        return gb_error_warn(err, GB_ENOMEM, "%s: cannot allocate %zu bytes for %s", src->name,
                             h.len, h.dtext);
    if ((rc = s_payload(src, &h, 0, data, h.len, err)) != 0 || (rc = s_end(src, &h, err)) != 0) {
        gb_free(data);
        return rc;
    }
    s_fill_head(&h, out);
    out->data = data;
    return 0;
}

/* gzopen into *gz, with the reader's messages for a file that cannot be
 * opened. */
static int s_open(const char *path, gzFile *gz, gb_error_t *err)
{
    errno = 0;
    *gz = gzopen(path, "rb");
    if (!*gz) {
        if (errno == 0)
            return gb_error_warn(err, GB_ENOMEM, "%s: cannot open: out of memory", path);
        return gb_error_warn(err, GB_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    gzbuffer(*gz, S_GZ_BUFFER);
    return 0;
}

int gb_idx_read(const char *path, gb_idx_t *out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_idx_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return gb_error_set(err, GB_EINVAL, "gb_idx_read: empty path");
    gzFile gz;
    int rc = s_open(path, &gz, err);
    if (rc)
        return rc;
    s_src_t src = {.name = path, .gz = gz};
    rc = s_parse(&src, out, err);
    gzclose_r(gz);
    return rc;
}

int gb_idx_parse(const uint8_t *buf, size_t len, const char *name, gb_idx_t *out,
                 gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_idx_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!buf && len)
        return gb_error_set(err, GB_EINVAL, "gb_idx_parse: NULL buffer of %zu bytes", len);
    s_src_t src = {.name = name ? name : "<memory>", .mem = buf, .mem_len = buf ? len : 0};
    return s_parse(&src, out, err);
}

void gb_idx_free(gb_idx_t *idx)
{
    if (!idx)
        return;
    gb_free(idx->data);
    memset(idx, 0, sizeof *idx);
}

struct gb_idx_stream {
    s_src_t src;   /* the file or the caller's buffer; src.name points at name */
    s_head_t head; /* the checked header */
    size_t done;   /* payload bytes read so far, <= head.len */
    bool failed;   /* a read failed: only gb_idx_stream_destroy is left */
    char name[];   /* copy of the path or name, for messages */
};

/* Allocates a stream for `name` over src, reads and checks its header. On
 * failure the gzFile in src (if any) is closed. */
static int s_stream_open(s_src_t src, const char *name, gb_idx_t *head, gb_idx_stream_t **out,
                         gb_error_t *err)
{
    size_t nlen = strlen(name);
    gb_idx_stream_t *s = gb_malloc(sizeof *s + nlen + 1);
    if (!s) {
        if (src.gz)
            gzclose_r(src.gz);
        return gb_error_warn(err, GB_ENOMEM, "%s: cannot allocate a reader", name);
    }
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, nlen + 1);
    s->src = src;
    s->src.name = s->name;
    int rc = s_head(&s->src, &s->head, err);
    if (rc) {
        gb_idx_stream_destroy(&s);
        return rc;
    }
    s_fill_head(&s->head, head);
    *out = s;
    return 0;
}

int gb_idx_stream_open(const char *path, gb_idx_t *head, gb_idx_stream_t **out, gb_error_t *err)
{
    if (!out || !head)
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_open: NULL out or head");
    *out = NULL;
    memset(head, 0, sizeof *head);
    if (!path || !*path)
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_open: empty path");
    gzFile gz;
    int rc = s_open(path, &gz, err);
    if (rc)
        return rc;
    return s_stream_open((s_src_t){.gz = gz}, path, head, out, err);
}

int gb_idx_stream_open_mem(const uint8_t *buf, size_t len, const char *name, gb_idx_t *head,
                           gb_idx_stream_t **out, gb_error_t *err)
{
    if (!out || !head)
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_open_mem: NULL out or head");
    *out = NULL;
    memset(head, 0, sizeof *head);
    if (!buf && len)
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_open_mem: NULL buffer of %zu bytes",
                            len);
    s_src_t src = {.mem = buf, .mem_len = buf ? len : 0};
    return s_stream_open(src, name ? name : "<memory>", head, out, err);
}

int gb_idx_stream_read(gb_idx_stream_t *s, uint8_t *buf, size_t len, gb_error_t *err)
{
    if (!s || (!buf && len))
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_read: bad arguments");
    if (s->failed)
        return gb_error_set(err, GB_EINVAL, "%s: read after a failed read", s->name);
    if (len > s->head.len - s->done)
        return gb_error_set(err, GB_EINVAL, "%s: %zu bytes asked, %zu of the payload left", s->name,
                            len, s->head.len - s->done);
    int rc = s_payload(&s->src, &s->head, s->done, buf, len, err);
    if (rc) {
        s->failed = true;
        return rc;
    }
    s->done += len;
    return 0;
}

int gb_idx_stream_finish(gb_idx_stream_t *s, gb_error_t *err)
{
    if (!s)
        return gb_error_set(err, GB_EINVAL, "gb_idx_stream_finish: NULL stream");
    if (s->failed)
        return gb_error_set(err, GB_EINVAL, "%s: finish after a failed read", s->name);
    if (s->done != s->head.len)
        return gb_error_set(err, GB_EINVAL, "%s: finish with %zu of %zu payload bytes read",
                            s->name, s->done, s->head.len);
    int rc = s_end(&s->src, &s->head, err);
    s->failed = rc != 0;
    return rc;
}

void gb_idx_stream_destroy(gb_idx_stream_t **s)
{
    if (!s || !*s)
        return;
    if ((*s)->src.gz)
        gzclose_r((*s)->src.gz);
    gb_free(*s);
    *s = NULL;
}
