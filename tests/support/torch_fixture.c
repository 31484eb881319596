/* GBTORCH1 fixture reader; see torch_fixture.h for the format. The file is
 * read record by record into one fixed table of records, each owning one
 * malloc'd array of floats; every defect is reported through gb_error_t and
 * unwinds what was read so far, so a test that fails on a bad fixture leaks
 * nothing. Only gb_test_fixture_load and gb_test_fixture_get fail the test. */
#include "torch_fixture.h"

#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAGIC "GBTORCH1"
#define S_MAGIC_LEN 8

typedef struct {
    char name[GB_TEST_FIXTURE_MAX_NAME + 1]; /* record name, NUL-terminated */
    size_t n;                                /* number of floats */
    float *v;                                /* owned values; non-NULL even when n is 0 */
} s_record_t;

struct gb_test_fixture {
    int n;                                       /* records in use */
    s_record_t rec[GB_TEST_FIXTURE_MAX_RECORDS]; /* in file order */
};

static uint32_t s_le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads a little-endian u32. Returns 1 on success, 0 at a clean end of file
 * (no byte left), and a negative gb_err after a partial or failed read. */
static int s_read_u32(FILE *f, uint32_t *out)
{
    unsigned char b[4];
    size_t got = fread(b, 1, sizeof b, f);
    if (got == sizeof b) {
        *out = s_le32(b);
        return 1;
    }
    if (got == 0 && feof(f) && !ferror(f))
        return 0;
    return ferror(f) ? GB_EIO : GB_EFORMAT;
}

void gb_test_fixture_destroy(gb_test_fixture_t **fx)
{
    if (!fx || !*fx)
        return;
    for (int i = 0; i < (*fx)->n; i++)
        free((*fx)->rec[i].v);
    free(*fx);
    *fx = NULL;
}

/* Reads record number fx->n (its name length already read as len) into
 * fx->rec[fx->n]; on success the caller counts it. On failure r->v is NULL or
 * freed, so fx->n records remain exactly the ones to free. */
static int s_read_record(FILE *f, const char *path, gb_test_fixture_t *fx, uint32_t len,
                         gb_error_t *err)
{
    s_record_t *r = &fx->rec[fx->n];
    if (len == 0 || len > GB_TEST_FIXTURE_MAX_NAME || fread(r->name, 1, len, f) != len)
        return gb_error_set(err, GB_EFORMAT, "%s: record %d: bad name (length %u)", path, fx->n,
                            (unsigned)len);
    r->name[len] = '\0';
    if (strlen(r->name) != len)
        return gb_error_set(err, GB_EFORMAT, "%s: record %d: name contains a NUL byte", path,
                            fx->n);
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->rec[i].name, r->name) == 0)
            return gb_error_set(err, GB_EFORMAT, "%s: record '%s' appears twice", path, r->name);

    uint32_t count = 0;
    if (s_read_u32(f, &count) != 1 || count > GB_TEST_FIXTURE_MAX_COUNT)
        return gb_error_set(err, GB_EFORMAT, "%s: record '%s': bad count", path, r->name);
    /* count <= 2^26, so count * 4 cannot overflow size_t. */
    size_t bytes = (size_t)count * sizeof(float);
    r->v = malloc(bytes ? bytes : 1);
    if (!r->v)
        return gb_error_set(err, GB_ENOMEM, "%s: record '%s': no memory for %u values", path,
                            r->name, (unsigned)count);
    r->n = count;
    size_t got = fread(r->v, 1, bytes, f);
    if (got != bytes) {
        free(r->v);
        r->v = NULL;
        return gb_error_set(err, GB_EFORMAT, "%s: record '%s' truncated at value %zu of %u", path,
                            r->name, got / sizeof(float), (unsigned)count);
    }
    /* The bytes are little-endian float32; decode in place so that the
     * reader is right on any host byte order. */
    unsigned char *raw = (unsigned char *)r->v;
    for (size_t i = 0; i < r->n; i++) {
        uint32_t bits = s_le32(raw + 4 * i);
        memcpy(&r->v[i], &bits, sizeof bits);
    }
    return 0;
}

gb_test_fixture_t *gb_test_fixture_read(const char *path, gb_error_t *err)
{
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        gb_error_set(err, GB_EIO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    gb_test_fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx) {
        rc = gb_error_set(err, GB_ENOMEM, "%s: no memory for the record table", path);
        goto cleanup;
    }
    char magic[S_MAGIC_LEN];
    if (fread(magic, 1, S_MAGIC_LEN, f) != S_MAGIC_LEN ||
        memcmp(magic, S_MAGIC, S_MAGIC_LEN) != 0) {
        rc = gb_error_set(err, GB_EFORMAT, "%s: not a GBTORCH1 fixture", path);
        goto cleanup;
    }
    for (;;) {
        uint32_t len = 0;
        int got = s_read_u32(f, &len);
        if (got == 0)
            break; /* clean end of file after the last record */
        if (got < 0) {
            rc = gb_error_set(err, got, "%s: %s after record %d", path,
                              got == GB_EIO ? "read error" : "stray bytes", fx->n);
            goto cleanup;
        }
        if (fx->n == GB_TEST_FIXTURE_MAX_RECORDS) {
            rc = gb_error_set(err, GB_EFORMAT, "%s: more than %d records", path,
                              GB_TEST_FIXTURE_MAX_RECORDS);
            goto cleanup;
        }
        rc = s_read_record(f, path, fx, len, err);
        if (rc != 0)
            goto cleanup;
        fx->n++;
    }
cleanup:
    fclose(f);
    if (rc != 0)
        gb_test_fixture_destroy(&fx);
    return fx;
}

gb_test_fixture_t *gb_test_fixture_load(const char *rel, const char *how)
{
    char *path = gb_test_binary_path(rel);
    gb_error_t err = {0};
    int missing = !gb_test_exists(path);
    gb_test_fixture_t *fx = gb_test_fixture_read(path, &err);
    free(path);
    if (!fx) {
        if (missing)
            fail_msg("%s: %s", err.msg, how);
        else
            fail_msg("%s", err.msg);
    }
    return fx;
}

const float *gb_test_fixture_find(const gb_test_fixture_t *fx, const char *name, size_t *n)
{
    for (int i = 0; i < fx->n; i++) {
        if (strcmp(fx->rec[i].name, name) == 0) {
            *n = fx->rec[i].n;
            return fx->rec[i].v;
        }
    }
    return NULL;
}

const float *gb_test_fixture_get(const gb_test_fixture_t *fx, const char *name, size_t n)
{
    size_t have = 0;
    const float *v = gb_test_fixture_find(fx, name, &have);
    if (!v)
        fail_msg("fixture has no record '%s'", name);
    if (n && have != n)
        fail_msg("fixture record '%s' has %zu values, expected %zu", name, have, n);
    return v;
}
