/* Tests for data/idx: good files plain, gzipped and in memory; every
 * truncation point (of the content and of the gzip stream); each bad header
 * field; trailing data; size cap; missing file; corrupt gzip; and
 * allocation-failure injection; each of them through the whole-file reader
 * and through the stream (read in pieces of several sizes), which must give
 * the same error codes and messages; the stream's misuse errors. Doubles as
 * the usage example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/idx.h"
#include "util/alloc.h"
#include "util/log.h"

/* Header + payload for an IDX file; payload byte i is (7i + 3) mod 256.
 * Returns a malloc'd buffer of *len bytes. */
static uint8_t *s_make(int type, int ndims, const uint32_t *dims, size_t payload, size_t *len)
{
    size_t head = 4 + 4 * (size_t)ndims;
    uint8_t *b = malloc(head + payload + 1);
    assert_non_null(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = (uint8_t)type;
    b[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < payload; i++)
        b[head + i] = (uint8_t)(7 * i + 3);
    *len = head + payload;
    return b;
}

static char *s_write_gz(const char *dir, const char *name, const void *data, size_t len)
{
    size_t cap = strlen(dir) + strlen(name) + 2;
    char *path = malloc(cap);
    assert_non_null(path);
    snprintf(path, cap, "%s/%s", dir, name);
    gzFile gz = gzopen(path, "wb9");
    assert_non_null(gz);
    if (len)
        assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
    return path;
}

static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void s_check_good(const gb_idx_t *idx)
{
    assert_int_equal(idx->ndims, 3);
    assert_int_equal(idx->dims[0], 2);
    assert_int_equal(idx->dims[1], 3);
    assert_int_equal(idx->dims[2], 4);
    assert_int_equal(idx->dims[3], 0);
    assert_int_equal(idx->len, 24);
    assert_non_null(idx->data);
    for (size_t i = 0; i < idx->len; i++)
        assert_int_equal(idx->data[i], (uint8_t)(7 * i + 3));
}

static const uint32_t s_dims[3] = {2, 3, 4};

/* Reads a whole IDX file (path) or buffer (buf, len; when path is NULL)
 * through a stream in pieces of `piece` bytes, the last one shorter, and
 * finishes it. On success *data (malloc'd) holds the payload and *head the
 * header; on failure *data is NULL and the code is returned. */
static int s_stream_all(const char *path, const uint8_t *buf, size_t len, const char *name,
                        size_t piece, gb_idx_t *head, uint8_t **data, gb_error_t *err)
{
    gb_idx_stream_t *st = (gb_idx_stream_t *)1;
    *data = NULL;
    int rc = path ? gb_idx_stream_open(path, head, &st, err)
                  : gb_idx_stream_open_mem(buf, len, name, head, &st, err);
    if (rc) {
        assert_null(st);
        assert_null(head->data);
        return rc;
    }
    assert_null(head->data);
    uint8_t *d = malloc(head->len);
    assert_non_null(d);
    for (size_t done = 0; done < head->len;) {
        size_t n = head->len - done < piece ? head->len - done : piece;
        if ((rc = gb_idx_stream_read(st, d + done, n, err)) != 0) {
            /* a failed stream takes nothing more */
            gb_error_t again = {0};
            assert_int_equal(gb_idx_stream_read(st, d, 1, &again), GB_EINVAL);
            assert_int_equal(gb_idx_stream_finish(st, &again), GB_EINVAL);
            goto out;
        }
        done += n;
    }
    rc = gb_idx_stream_finish(st, err);
out:
    gb_idx_stream_destroy(&st);
    assert_null(st);
    if (rc)
        free(d);
    else
        *data = d;
    return rc;
}

static void test_read_plain_and_gz(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    char *plain = gb_test_write_file(dir, "x-idx3-ubyte", buf, len);
    /* gzipped content under a name without .gz: detection is by content */
    char *gz = s_write_gz(dir, "x-idx3-ubyte-compressed", buf, len);

    gb_idx_t idx;
    gb_error_t err = {0};
    assert_int_equal(gb_idx_read(plain, &idx, &err), 0);
    s_check_good(&idx);
    gb_idx_free(&idx);
    assert_null(idx.data);
    assert_int_equal(idx.len, 0);

    assert_int_equal(gb_idx_read(gz, &idx, &err), 0);
    s_check_good(&idx);
    gb_idx_free(&idx);

    /* one-dimensional labels file, gzipped with the usual name */
    uint32_t n = 300;
    size_t llen;
    uint8_t *lbuf = s_make(GB_IDX_TYPE_UBYTE, 1, &n, 300, &llen);
    char *lgz = s_write_gz(dir, "labels-idx1-ubyte.gz", lbuf, llen);
    assert_int_equal(gb_idx_read(lgz, &idx, &err), 0);
    assert_int_equal(idx.ndims, 1);
    assert_int_equal(idx.dims[0], 300);
    assert_int_equal(idx.len, 300);
    assert_int_equal(idx.data[299], (uint8_t)(7 * 299 + 3));
    gb_idx_free(&idx);

    free(lbuf);
    free(lgz);
    free(buf);
    free(plain);
    free(gz);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_parse_memory(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    gb_idx_t idx;
    gb_error_t err = {0};
    assert_int_equal(gb_idx_parse(buf, len, "mem", &idx, &err), 0);
    s_check_good(&idx);
    gb_idx_free(&idx);
    free(buf);

    uint32_t d4[4] = {1, 2, 1, 3};
    buf = s_make(GB_IDX_TYPE_UBYTE, 4, d4, 6, &len);
    assert_int_equal(gb_idx_parse(buf, len, NULL, &idx, &err), 0);
    assert_int_equal(idx.ndims, 4);
    assert_int_equal(idx.dims[3], 3);
    assert_int_equal(idx.len, 6);
    gb_idx_free(&idx);
    free(buf);

    /* NULL buffer of length 0 is an empty file; NULL with a length is misuse */
    assert_int_equal(gb_idx_parse(NULL, 0, "none", &idx, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "none: empty file"));
    assert_int_equal(gb_idx_parse(NULL, 5, "none", &idx, &err), GB_EINVAL);
    uint8_t byte = 0;
    assert_int_equal(gb_idx_parse(&byte, 1, "none", NULL, &err), GB_EINVAL);
}

static void test_stream(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    char *plain = gb_test_write_file(dir, "s-idx3-ubyte", buf, len);
    char *gz = s_write_gz(dir, "s-idx3-ubyte.gz", buf, len);
    gb_error_t err = {0};
    const size_t pieces[4] = {1, 5, 12, 24};
    for (int src = 0; src < 3; src++)
        for (int k = 0; k < 4; k++) {
            gb_idx_t head;
            uint8_t *data;
            const char *path = src == 0 ? plain : src == 1 ? gz : NULL;
            assert_int_equal(s_stream_all(path, buf, len, "m", pieces[k], &head, &data, &err), 0);
            head.data = data; /* the same as gb_idx_read gives */
            s_check_good(&head);
            free(data);
        }

    /* one image at a time, the way the dataset loader reads */
    gb_idx_t head;
    gb_idx_stream_t *st = NULL;
    assert_int_equal(gb_idx_stream_open(gz, &head, &st, &err), 0);
    assert_int_equal(head.ndims, 3);
    assert_int_equal(head.dims[0], 2);
    assert_int_equal(head.len, 24);
    uint8_t img[12];
    assert_int_equal(gb_idx_stream_finish(st, &err), GB_EINVAL); /* too early */
    assert_non_null(strstr(err.msg, "finish with 0 of 24 payload bytes read"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gb_idx_stream_read(st, img, 12, &err), 0);
        for (int k = 0; k < 12; k++)
            assert_int_equal(img[k], (uint8_t)(7 * (12 * i + k) + 3));
    }
    assert_int_equal(gb_idx_stream_read(st, img, 1, &err), GB_EINVAL); /* past the payload */
    assert_non_null(strstr(err.msg, "1 bytes asked, 0 of the payload left"));
    assert_int_equal(gb_idx_stream_read(st, img, 0, &err), 0);
    assert_int_equal(gb_idx_stream_finish(st, &err), 0);
    gb_idx_stream_destroy(&st);
    assert_null(st);
    gb_idx_stream_destroy(&st); /* NULL-safe */
    gb_idx_stream_destroy(NULL);

    /* the file may go away once open: the stream has its own copy of the name */
    char *copy = strdup(plain);
    assert_int_equal(gb_idx_stream_open(copy, &head, &st, &err), 0);
    free(copy);
    assert_int_equal(gb_idx_stream_read(st, img, 12, &err), 0);
    assert_int_equal(gb_idx_stream_read(st, img, 13, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, plain));
    gb_idx_stream_destroy(&st); /* unfinished: fine */

    /* bad arguments */
    assert_int_equal(gb_idx_stream_open(NULL, &head, &st, &err), GB_EINVAL);
    assert_null(st);
    assert_int_equal(gb_idx_stream_open("", &head, &st, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open(plain, NULL, &st, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open(plain, &head, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open_mem(NULL, 3, "x", &head, &st, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open_mem(buf, len, "x", NULL, &st, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open_mem(NULL, 0, NULL, &head, &st, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "<memory>: empty file"));
    assert_int_equal(gb_idx_stream_open("/nonexistent/x", &head, &st, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x: cannot open"));
    assert_int_equal(gb_idx_stream_read(NULL, img, 1, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_finish(NULL, &err), GB_EINVAL);
    assert_int_equal(gb_idx_stream_open_mem(buf, len, "x", &head, &st, NULL), 0);
    assert_int_equal(gb_idx_stream_read(st, NULL, 1, &err), GB_EINVAL);
    gb_idx_stream_destroy(&st);

    free(buf);
    free(plain);
    free(gz);
    gb_test_rmtree(dir);
    free(dir);
}

/* The message expected for a file cut to `cut` bytes of the 40-byte good file
 * (16-byte header, 24-byte payload). */
static void s_check_cut_msg(const char *msg, const char *name, size_t cut)
{
    assert_non_null(strstr(msg, name));
    char want[128];
    if (cut == 0)
        snprintf(want, sizeof want, "empty file");
    else if (cut < 4)
        snprintf(want, sizeof want, "truncated header: %zu of 4", cut);
    else if (cut < 16)
        snprintf(want, sizeof want, "3 dimensions need 12 bytes, file has %zu", cut - 4);
    else
        snprintf(want, sizeof want, "truncated: header says 2x3x4 = 24 bytes, file has %zu",
                 cut - 16);
    if (!strstr(msg, want))
        fail_msg("cut %zu: message '%s' lacks '%s'", cut, msg, want);
}

static void test_every_truncation(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    assert_int_equal(len, 40);
    for (size_t cut = 0; cut < len; cut++) {
        gb_idx_t idx;
        gb_error_t err = {0};
        /* in memory */
        assert_int_equal(gb_idx_parse(buf, cut, "m", &idx, &err), GB_EFORMAT);
        assert_null(idx.data);
        s_check_cut_msg(err.msg, "m", cut);
        /* plain file */
        char *p = gb_test_write_file(dir, "cut", buf, cut);
        assert_int_equal(gb_idx_read(p, &idx, &err), GB_EFORMAT);
        assert_null(idx.data);
        s_check_cut_msg(err.msg, p, cut);
        /* the stream, read whole or image by image, says the same */
        uint8_t *data;
        for (size_t piece = 1; piece <= 24; piece += 11) {
            assert_int_equal(s_stream_all(NULL, buf, cut, "m", piece, &idx, &data, &err),
                             GB_EFORMAT);
            s_check_cut_msg(err.msg, "m", cut);
            assert_int_equal(s_stream_all(p, NULL, 0, NULL, piece, &idx, &data, &err), GB_EFORMAT);
            s_check_cut_msg(err.msg, p, cut);
        }
        free(p);
        /* a valid gzip stream of the cut content */
        p = s_write_gz(dir, "cut.gz", buf, cut);
        assert_int_equal(gb_idx_read(p, &idx, &err), GB_EFORMAT);
        assert_null(idx.data);
        s_check_cut_msg(err.msg, p, cut);
        assert_int_equal(s_stream_all(p, NULL, 0, NULL, 12, &idx, &data, &err), GB_EFORMAT);
        s_check_cut_msg(err.msg, p, cut);
        free(p);
    }

    /* every cut of the gzip stream of the whole good file */
    char *gzpath = s_write_gz(dir, "good.gz", buf, len);
    size_t gzlen;
    uint8_t *gz = s_slurp(gzpath, &gzlen);
    for (size_t cut = 0; cut < gzlen; cut++) {
        gb_idx_t idx;
        gb_error_t err = {0};
        char *p = gb_test_write_file(dir, "gzcut.gz", gz, cut);
        int rc = gb_idx_read(p, &idx, &err);
        if (rc != GB_EFORMAT)
            fail_msg("gzip cut %zu of %zu: rc %d (%s)", cut, gzlen, rc, err.msg);
        assert_null(idx.data);
        assert_non_null(strstr(err.msg, p));
        char want[GB_ERROR_MSG_MAX];
        memcpy(want, err.msg, sizeof want);
        uint8_t *data;
        rc = s_stream_all(p, NULL, 0, NULL, 12, &idx, &data, &err);
        if (rc != GB_EFORMAT || strcmp(err.msg, want) != 0)
            fail_msg("gzip cut %zu of %zu: stream rc %d (%s), reader said '%s'", cut, gzlen, rc,
                     err.msg, want);
        free(p);
    }
    gb_idx_t idx;
    assert_int_equal(gb_idx_read(gzpath, &idx, NULL), 0);
    gb_idx_free(&idx);

    free(gz);
    free(gzpath);
    free(buf);
    gb_test_rmtree(dir);
    free(dir);
}

/* Parses `buf` in memory and from a plain and a gzipped file; all three must
 * fail with `code` and a message containing `needle`. */
static void s_expect_bad(const uint8_t *buf, size_t len, int code, const char *needle)
{
    char *dir = gb_test_mkdtemp();
    char *plain = gb_test_write_file(dir, "bad-idx", buf, len);
    char *gz = s_write_gz(dir, "bad-idx.gz", buf, len);
    gb_idx_t idx;
    gb_error_t err = {0};
    assert_int_equal(gb_idx_parse(buf, len, "bad-mem", &idx, &err), code);
    assert_null(idx.data);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad-mem"))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    uint8_t *data;
    assert_int_equal(s_stream_all(NULL, buf, len, "bad-mem", 7, &idx, &data, &err), code);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad-mem"))
        fail_msg("stream message '%s' lacks '%s'", err.msg, needle);
    const char *paths[2] = {plain, gz};
    for (int i = 0; i < 2; i++) {
        gb_error_clear(&err);
        assert_int_equal(gb_idx_read(paths[i], &idx, &err), code);
        assert_null(idx.data);
        assert_int_equal(err.code, code);
        if (!strstr(err.msg, needle) || !strstr(err.msg, paths[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, needle);
        gb_error_clear(&err);
        assert_int_equal(s_stream_all(paths[i], NULL, 0, NULL, 6, &idx, &data, &err), code);
        if (!strstr(err.msg, needle) || !strstr(err.msg, paths[i]))
            fail_msg("stream message '%s' lacks '%s'", err.msg, needle);
    }
    free(plain);
    free(gz);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_bad_headers(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);

    buf[0] = 1; /* bad magic */
    s_expect_bad(buf, len, GB_EFORMAT, "bad magic 0x01000803");
    buf[0] = 0;
    buf[1] = 0x42;
    s_expect_bad(buf, len, GB_EFORMAT, "not an IDX file");
    buf[1] = 0;

    buf[2] = 0x0D; /* float32: known, refused */
    s_expect_bad(buf, len, GB_EFORMAT, "type 0x0D (float32) is not supported");
    buf[2] = 0x09;
    s_expect_bad(buf, len, GB_EFORMAT, "signed byte");
    buf[2] = 0x42;
    s_expect_bad(buf, len, GB_EFORMAT, "unknown IDX type byte 0x42");
    buf[2] = GB_IDX_TYPE_UBYTE;

    buf[3] = 0; /* dimension count */
    s_expect_bad(buf, len, GB_EFORMAT, "0 dimensions in header: expected 1 to 4");
    buf[3] = 5;
    s_expect_bad(buf, len, GB_EFORMAT, "5 dimensions in header");
    buf[3] = 3;

    buf[11] = 0; /* second dimension 3 -> 0 */
    s_expect_bad(buf, len, GB_EFORMAT, "dimension 2 of 3 is 0");
    buf[11] = 3;

    buf[15] = 5; /* lying header: 2x3x5 = 30 bytes, 24 present */
    s_expect_bad(buf, len, GB_EFORMAT, "truncated: header says 2x3x5 = 30 bytes, file has 24");
    buf[15] = 3; /* and the other way: 2x3x3 = 18, 6 bytes left over */
    s_expect_bad(buf, len, GB_EFORMAT, "6 bytes of trailing data after the 18 bytes");
    buf[15] = 4;
    free(buf);

    /* one trailing byte on a good file */
    buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 25, &len);
    s_expect_bad(buf, len, GB_EFORMAT, "1 byte of trailing data after the 24 bytes");
    free(buf);

    /* a lot of trailing data: counted up to a cap, not to the end */
    buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24 + (3u << 20), &len);
    s_expect_bad(buf, len, GB_EFORMAT, ": more than 10");
    free(buf);

    /* over the size cap, checked before any allocation or payload read */
    uint32_t big[2] = {65536, 32769};
    buf = s_make(GB_IDX_TYPE_UBYTE, 2, big, 0, &len);
    s_expect_bad(buf, len, GB_ERANGE, "header says 65536x32769 bytes, over the");
    free(buf);
    uint32_t huge[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    buf = s_make(GB_IDX_TYPE_UBYTE, 4, huge, 0, &len);
    s_expect_bad(buf, len, GB_ERANGE, "4294967295x4294967295x4294967295x4294967295");
    free(buf);
}

static void test_missing_and_bad_paths(void **state)
{
    (void)state;
    gb_idx_t idx;
    gb_error_t err = {0};
    assert_int_equal(gb_idx_read("/nonexistent/dir/train-images-idx3-ubyte", &idx, &err),
                     GB_EIO);
    assert_null(idx.data);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/train-images-idx3-ubyte: cannot open"));

    char *dir = gb_test_mkdtemp();
    assert_int_equal(gb_idx_read(dir, &idx, &err), GB_EIO); /* a directory */
    assert_non_null(strstr(err.msg, dir));
    gb_test_rmtree(dir);
    free(dir);

    assert_int_equal(gb_idx_read("", &idx, &err), GB_EINVAL);
    assert_int_equal(gb_idx_read(NULL, &idx, &err), GB_EINVAL);
    assert_int_equal(gb_idx_read("x", NULL, &err), GB_EINVAL);
    assert_int_equal(gb_idx_read("/nonexistent", &idx, NULL), GB_EIO); /* err may be NULL */

    gb_idx_free(NULL);
    gb_idx_free(&idx); /* empty: no-op */
}

static void test_corrupt_gzip(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    char *gzpath = s_write_gz(dir, "c.gz", buf, len);
    size_t gzlen;
    uint8_t *gz = s_slurp(gzpath, &gzlen);
    gb_idx_t idx;
    gb_error_t err = {0};

    /* CRC of the content (trailer bytes gzlen-8..gzlen-5) */
    gz[gzlen - 6] ^= 0xFF;
    char *p = gb_test_write_file(dir, "crc.gz", gz, gzlen);
    assert_int_equal(gb_idx_read(p, &idx, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, ": corrupt gzip data (incorrect data check)"));
    assert_null(idx.data);
    uint8_t *data;
    assert_int_equal(s_stream_all(p, NULL, 0, NULL, 12, &idx, &data, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, ": corrupt gzip data (incorrect data check)"));
    free(p);
    gz[gzlen - 6] ^= 0xFF;

    /* missing trailer: all content is there but the stream is cut */
    p = gb_test_write_file(dir, "notrailer.gz", gz, gzlen - 8);
    assert_int_equal(gb_idx_read(p, &idx, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, ": truncated gzip stream (unexpected end of file)"));
    assert_int_equal(s_stream_all(p, NULL, 0, NULL, 5, &idx, &data, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, ": truncated gzip stream (unexpected end of file)"));
    free(p);

    /* flipping any single byte after the 10-byte gzip header never crashes
     * and never yields data that differ from the original */
    for (size_t i = 10; i < gzlen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            gz[i] ^= (uint8_t)(1u << bit);
            p = gb_test_write_file(dir, "flip.gz", gz, gzlen);
            int rc = gb_idx_read(p, &idx, &err);
            if (rc == 0) {
                s_check_good(&idx);
                gb_idx_free(&idx);
            } else {
                assert_null(idx.data);
            }
            /* the stream accepts exactly what the reader accepts */
            assert_int_equal(s_stream_all(p, NULL, 0, NULL, 12, &idx, &data, &err), rc);
            if (rc == 0) {
                idx.data = data;
                s_check_good(&idx);
                free(data);
            }
            free(p);
            gz[i] ^= (uint8_t)(1u << bit);
        }
    }
    free(gz);
    free(gzpath);
    free(buf);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char *dir = gb_test_mkdtemp();
    size_t len;
    uint8_t *buf = s_make(GB_IDX_TYPE_UBYTE, 3, s_dims, 24, &len);
    char *gz = s_write_gz(dir, "a.gz", buf, len);
    int failures = 0;
    for (long k = 1; k < 100; k++) {
        gb_idx_t idx;
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        int rc = gb_idx_read(gz, &idx, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            s_check_good(&idx);
            gb_idx_free(&idx);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(idx.data);
        assert_non_null(strstr(err.msg, "cannot allocate"));
        failures++;
        gb_alloc_fail_after(k);
        rc = gb_idx_parse(buf, len, "m", &idx, &err);
        gb_alloc_fail_after(0);
        assert_int_equal(rc, GB_ENOMEM);
    }
    assert_true(failures >= 1);
    /* the stream allocates itself and nothing else */
    gb_idx_stream_t *st = (gb_idx_stream_t *)1;
    gb_error_t err = {0};
    gb_idx_t head;
    gb_alloc_fail_after(1);
    assert_int_equal(gb_idx_stream_open(gz, &head, &st, &err), GB_ENOMEM);
    assert_null(st);
    assert_non_null(strstr(err.msg, "cannot allocate a reader"));
    gb_alloc_fail_after(1);
    assert_int_equal(gb_idx_stream_open_mem(buf, len, "m", &head, &st, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_int_equal(gb_idx_stream_open(gz, &head, &st, &err), 0);
    uint8_t payload[24];
    gb_alloc_fail_after(1);
    assert_int_equal(gb_idx_stream_read(st, payload, 24, &err), 0);
    assert_int_equal(gb_idx_stream_finish(st, &err), 0);
    assert_int_equal(gb_alloc_fail_after(0), 0);
    gb_idx_stream_destroy(&st);
    free(gz);
    free(buf);
    gb_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_plain_and_gz),
        cmocka_unit_test(test_parse_memory),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_missing_and_bad_paths),
        cmocka_unit_test(test_corrupt_gzip),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
