/* Slice indices by client name, kept in STATE_DIR/shards (shard_map.h). */
#include "shard_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net/pki.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/table_file.h"

#define S_HEADER "# glassbox data shards, version 1"
#define S_COLUMNS "# name index"

typedef struct {
    char name[GB_PKI_NAME_MAX + 1];
    uint32_t index;
} s_entry_t;

struct gb_shard_map {
    char *path;          /* STATE_DIR/shards, or NULL: memory only */
    uint32_t slices;     /* indices 0..slices-1 */
    s_entry_t *entries;  /* sorted by name */
    size_t n;
    bool *taken;         /* taken[index] */
};

static int s_parse(char **f, int nfields, void *row, const char *path, size_t lineno, void *arg,
                   gb_error_t *err)
{
    (void)nfields;
    const gb_shard_map_t *m = arg;
    s_entry_t *e = row;
    gb_error_t why = {0};
    uint64_t index;
    if (gb_pki_check_name(f[0], "client name", &why) != 0)
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: %s", path, lineno, why.msg);
    if (!gb_table_parse_u64(f[1], UINT32_MAX, &index))
        return gb_error_set(err, GB_EFORMAT, "%s line %zu: index '%s' is not a number", path,
                            lineno, f[1]);
    if (index >= m->slices)
        return gb_error_set(err, GB_ERANGE,
                            "%s line %zu: '%s' has slice %llu, but the simulation has %u "
                            "(started with more clients? remove the file to deal them again)",
                            path, lineno, f[0], (unsigned long long)index, m->slices);
    snprintf(e->name, sizeof e->name, "%s", f[0]);
    e->index = (uint32_t)index;
    return 0;
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_entry_t *)a)->name, ((const s_entry_t *)b)->name);
}

static int s_read(gb_shard_map_t *m, gb_error_t *err)
{
    struct stat st;
    if (stat(m->path, &st) != 0 && errno == ENOENT)
        return 0;
    const gb_table_format_t format = {.header = S_HEADER,
                                      .what = "glassbox data shards",
                                      /* the row check names a slice past the
                                         count; the reader's bounds are the map's */
                                      .max_bytes = (size_t)GB_SHARD_MAP_MAX * 96 + 4096,
                                      .max_rows = GB_SHARD_MAP_MAX,
                                      .fields = 2,
                                      .row_size = sizeof(s_entry_t),
                                      .row = s_parse,
                                      .arg = m};
    void *rows = NULL;
    size_t n = 0;
    int rc = gb_table_file_read(m->path, &format, &rows, &n, err);
    if (rc)
        return rc;
    m->entries = rows;
    m->n = n;
    qsort(m->entries, m->n, sizeof *m->entries, s_by_name);
    for (size_t i = 0; i < m->n; i++) {
        if ((i > 0 && strcmp(m->entries[i - 1].name, m->entries[i].name) == 0) ||
            m->taken[m->entries[i].index])
            return gb_error_set(err, GB_EFORMAT, "%s: '%s' or its slice %u appears twice",
                                m->path, m->entries[i].name, m->entries[i].index);
        m->taken[m->entries[i].index] = true;
    }
    return 0;
}

gb_shard_map_t *gb_shard_map_new(const char *state_dir, uint32_t slices, gb_error_t *err)
{
    if (slices < 1 || slices > GB_SHARD_MAP_MAX) {
        gb_error_set(err, GB_EINVAL, "shards: %u slices is outside 1..%u", slices,
                     GB_SHARD_MAP_MAX);
        return NULL;
    }
    gb_shard_map_t *m = gb_calloc(1, sizeof *m);
    if (!m || !(m->taken = gb_calloc(slices, sizeof *m->taken)) ||
        (state_dir && !(m->path = gb_malloc(strlen(state_dir) + sizeof "/" GB_SHARD_MAP_FILE)))) {
        gb_error_set(err, GB_ENOMEM, "shards: out of memory");
        gb_shard_map_destroy(&m);
        return NULL;
    }
    m->slices = slices;
    if (state_dir) {
        sprintf(m->path, "%s/%s", state_dir, GB_SHARD_MAP_FILE);
        if (s_read(m, err) != 0) {
            gb_shard_map_destroy(&m);
            return NULL;
        }
    }
    return m;
}

void gb_shard_map_destroy(gb_shard_map_t **pm)
{
    if (!pm || !*pm)
        return;
    gb_shard_map_t *m = *pm;
    gb_free(m->path);
    gb_free(m->entries);
    gb_free(m->taken);
    gb_free(m);
    *pm = NULL;
}

static int s_write(const gb_shard_map_t *m, const s_entry_t *e, size_t n, gb_error_t *err)
{
    size_t cap = sizeof S_HEADER + sizeof S_COLUMNS + n * (GB_PKI_NAME_MAX + 16) + 1;
    char *buf = gb_malloc(cap);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "shards: out of memory writing %s", m->path);
    size_t used = (size_t)snprintf(buf, cap, "%s\n%s\n", S_HEADER, S_COLUMNS);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s %u\n", e[i].name, e[i].index);
    int rc = gb_file_write_atomic(m->path, buf, used, 0600, err);
    gb_free(buf);
    return rc;
}

int gb_shard_map_assign(gb_shard_map_t *m, const char *name, uint32_t *index, gb_error_t *err)
{
    if (gb_pki_check_name(name, "client name", err) != 0)
        return GB_EINVAL;
    s_entry_t key;
    snprintf(key.name, sizeof key.name, "%s", name);
    const s_entry_t *found = m->n ? bsearch(&key, m->entries, m->n, sizeof key, s_by_name)
                                  : NULL;
    if (found) {
        *index = found->index;
        return 0;
    }
    uint32_t free_index = 0;
    while (free_index < m->slices && m->taken[free_index])
        free_index++;
    if (free_index == m->slices)
        return gb_error_set(err, GB_ERANGE,
                            "shards: all %u slices are taken; '%s' is one client more than "
                            "the simulation was started for",
                            m->slices, name);
    s_entry_t *grown = gb_realloc(m->entries, (m->n + 1) * sizeof *grown);
    if (!grown)
        return gb_error_set(err, GB_ENOMEM, "shards: out of memory");
    m->entries = grown;
    size_t at = 0;
    while (at < m->n && strcmp(m->entries[at].name, name) < 0)
        at++;
    memmove(&m->entries[at + 1], &m->entries[at], (m->n - at) * sizeof *m->entries);
    key.index = free_index;
    m->entries[at] = key;
    int rc = m->path ? s_write(m, m->entries, m->n + 1, err) : 0;
    if (rc) { /* nothing assigned: put the table back */
        memmove(&m->entries[at], &m->entries[at + 1], (m->n - at) * sizeof *m->entries);
        return rc;
    }
    m->n++;
    m->taken[free_index] = true;
    *index = free_index;
    return 0;
}

size_t gb_shard_map_count(const gb_shard_map_t *m)
{
    return m->n;
}
