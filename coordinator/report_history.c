/* The report's history (report_history.h): an array of rounds, oldest
 * first, each owning its arrays, written to and read from one JSON
 * document through jansson (util/json.h's rules: names from the wire made
 * valid UTF-8, NaN written as null).
 *
 * Reading is strict because the file sits in a directory others may write:
 * a field of the wrong type, a number out of its range, a name too long, a
 * count past its bound or rounds out of order refuse the whole file with
 * the round and field named, before any of it is kept. */
#include "report_history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/file.h"
#include "util/json.h"

#define S_FORMAT "glassbox-report-history"
#define S_VERSION 1

struct gb_report_history {
    gb_report_round_t *rounds; /* oldest first [n] */
    size_t n, cap;
    uint64_t dropped;          /* rounds given up from the front */
    char (*classes)[GB_REPORT_HISTORY_NAME_MAX + 1]; /* class names [n_classes] */
    size_t n_classes;
};

static void s_round_free(gb_report_round_t *r)
{
    gb_free(r->class_accuracy);
    gb_free(r->heatmap_classes);
    gb_free(r->distances);
    gb_free(r->flags);
    memset(r, 0, sizeof *r);
}

/* A copy of n items of size sz (NULL for none; *bad when out of memory). */
static void *s_dup(const void *p, size_t n, size_t sz, bool *bad)
{
    if (n == 0)
        return NULL;
    void *q = gb_malloc(n * sz);
    if (!q) {
        *bad = true;
        return NULL;
    }
    memcpy(q, p, n * sz);
    return q;
}

static int s_by_distance_desc(const void *x, const void *y)
{
    double a = ((const gb_report_distance_t *)x)->distance;
    double b = ((const gb_report_distance_t *)y)->distance;
    return (a < b) - (a > b);
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 when it is not one
 * (a stray continuation, an overlong lead, a sequence cut short). */
static size_t s_utf8_len(const unsigned char *p)
{
    size_t n = p[0] < 0x80 ? 1 : (p[0] >> 5) == 0x6 ? 2 : (p[0] >> 4) == 0xe ? 3
                                 : (p[0] >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || (n == 2 && p[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] >> 6) != 0x2)
            return 0;
    return n;
}

/* Copies the name src into dst (GB_REPORT_HISTORY_NAME_MAX + 1 bytes):
 * valid UTF-8 kept, any other byte written '?', cut only between
 * characters, so the history file holds every name as written and reads
 * it back within the same length. */
static void s_copy_name(char *dst, const char *src)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)src;
    while (*p) {
        size_t n = s_utf8_len(p);
        if (o + (n ? n : 1) > GB_REPORT_HISTORY_NAME_MAX)
            break;
        if (n == 0) {
            dst[o++] = '?';
            p++;
            continue;
        }
        memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    dst[o] = '\0';
}

/* Copies r into *out with the caps applied. */
static int s_round_copy(gb_report_round_t *out, const gb_report_round_t *r, gb_error_t *err)
{
    bool bad = false;
    *out = *r;
    out->class_accuracy = s_dup(r->class_accuracy, r->n_classes, sizeof(double), &bad);
    out->heatmap_classes = s_dup(r->heatmap_classes, r->n_heatmaps, sizeof(uint32_t), &bad);
    out->distances = s_dup(r->distances, r->n_distances, sizeof *r->distances, &bad);
    out->n_flags = r->n_flags < GB_REPORT_HISTORY_MAX_FLAGS ? r->n_flags
                                                             : GB_REPORT_HISTORY_MAX_FLAGS;
    out->flags = s_dup(r->flags, out->n_flags, sizeof *r->flags, &bad);
    if (bad) {
        s_round_free(out);
        return gb_error_set(err, GB_ENOMEM, "report history: out of memory for round %llu",
                            (unsigned long long)r->round);
    }
    for (size_t i = 0; i < out->n_distances; i++)
        s_copy_name(out->distances[i].client, r->distances[i].client);
    for (size_t i = 0; i < out->n_flags; i++)
        s_copy_name(out->flags[i].client, r->flags[i].client);
    if (out->n_distances > 1)
        qsort(out->distances, out->n_distances, sizeof *out->distances, s_by_distance_desc);
    if (out->n_distances > GB_REPORT_HISTORY_MAX_DISTANCES)
        out->n_distances = GB_REPORT_HISTORY_MAX_DISTANCES;
    if (out->distances_total < r->n_distances)
        out->distances_total = r->n_distances;
    if (out->flags_total < r->n_flags)
        out->flags_total = r->n_flags;
    return 0;
}

gb_report_history_t *gb_report_history_new(gb_error_t *err)
{
    gb_report_history_t *h = gb_calloc(1, sizeof *h);
    if (!h)
        gb_error_set(err, GB_ENOMEM, "report history: out of memory");
    return h;
}

void gb_report_history_destroy(gb_report_history_t **ph)
{
    if (!ph || !*ph)
        return;
    gb_report_history_t *h = *ph;
    for (size_t i = 0; i < h->n; i++)
        s_round_free(&h->rounds[i]);
    gb_free(h->rounds);
    gb_free(h->classes);
    gb_free(h);
    *ph = NULL;
}

size_t gb_report_history_count(const gb_report_history_t *h)
{
    return h->n;
}

const gb_report_round_t *gb_report_history_round(const gb_report_history_t *h, size_t i)
{
    return i < h->n ? &h->rounds[i] : NULL;
}

uint64_t gb_report_history_dropped(const gb_report_history_t *h)
{
    return h->dropped;
}

size_t gb_report_history_classes(const gb_report_history_t *h)
{
    return h->n_classes;
}

const char *gb_report_history_class_name(const gb_report_history_t *h, size_t k)
{
    return k < h->n_classes ? h->classes[k] : NULL;
}

/* A client name as the history keeps it: 1..64 bytes. */
static bool s_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= GB_REPORT_HISTORY_NAME_MAX;
}

/* Cells of the round's importance map, 0 without one or for a bad shape
 * (*ok false: a dimension 0, too many of them or too many cells). */
static uint64_t s_cells(const gb_report_round_t *r, bool *ok)
{
    *ok = r->importance_rank <= GB_REPORT_HISTORY_MAX_RANK;
    uint64_t cells = r->importance_rank && *ok ? 1 : 0;
    for (size_t i = 0; *ok && i < r->importance_rank; i++) {
        uint32_t d = r->importance_shape[i];
        *ok = d >= 1 && cells * d <= GB_REPORT_HISTORY_MAX_CELLS;
        cells *= d;
    }
    return *ok ? cells : 0;
}

/* NULL when g's moved cells fit a map of `cells` cells, else what is
 * wrong with them. */
static const char *s_moved_wrong(const gb_report_flag_t *g, uint64_t cells)
{
    if (g->n_classes_moved > GB_REPORT_HISTORY_MAX_MOVED)
        return "lists too many moved classes";
    for (size_t i = 0; i < g->n_classes_moved; i++) {
        if (g->classes_moved[i] >= GB_REPORT_HISTORY_MAX_CLASSES)
            return "has a moved class past the classes kept";
        if (!(g->class_ratio[i] >= 1 && isfinite(g->class_ratio[i])))
            return "has a moved class's ratio that is not finite and >= 1";
        for (size_t j = 0; j < i; j++)
            if (g->classes_moved[j] == g->classes_moved[i])
                return "repeats a moved class";
    }
    if (g->lesson_cells[0] &&
        !(g->lesson_class >= 0 && g->lesson_class < GB_REPORT_HISTORY_MAX_CLASSES))
        return "has a lesson of a class past the classes kept";
    if (g->n_moved > GB_REPORT_HISTORY_MAX_MOVED)
        return "lists too many moved cells";
    for (size_t i = 0; i < g->n_moved; i++) {
        if (g->moved[i] >= cells)
            return cells ? "has a moved cell outside the importance map"
                         : "has moved cells without an importance map";
        if (!(g->moved_share[i] > 0 && g->moved_share[i] <= 1))
            return "has a moved share outside (0, 1]";
        for (size_t j = 0; j < i; j++)
            if (g->moved[j] == g->moved[i])
                return "repeats a moved cell";
    }
    return NULL;
}

static int s_check_new(const gb_report_round_t *r, gb_error_t *err)
{
    if (r->round == 0)
        return gb_error_set(err, GB_EINVAL, "report history: round 0");
    if (r->n_classes > GB_REPORT_HISTORY_MAX_CLASSES || r->n_heatmaps > GB_REPORT_HISTORY_MAX_CLASSES)
        return gb_error_set(err, GB_EINVAL, "report history: round %llu has %zu classes, %zu "
                            "heatmaps; at most %d", (unsigned long long)r->round, r->n_classes,
                            r->n_heatmaps, GB_REPORT_HISTORY_MAX_CLASSES);
    for (size_t i = 0; i < r->n_distances; i++)
        if (!s_name_ok(r->distances[i].client) || !(r->distances[i].distance >= 0))
            return gb_error_set(err, GB_EINVAL, "report history: round %llu: distance %zu has "
                                "no client or no distance >= 0", (unsigned long long)r->round, i);
    bool shape_ok = true;
    uint64_t cells = s_cells(r, &shape_ok);
    if (!shape_ok)
        return gb_error_set(err, GB_EINVAL, "report history: round %llu: the importance map's "
                            "shape (%zu dimensions) has a 0, more than %d dimensions or more "
                            "than %llu cells", (unsigned long long)r->round, r->importance_rank,
                            GB_REPORT_HISTORY_MAX_RANK,
                            (unsigned long long)GB_REPORT_HISTORY_MAX_CELLS);
    for (size_t i = 0; i < r->n_flags; i++) {
        if (!s_name_ok(r->flags[i].client))
            return gb_error_set(err, GB_EINVAL, "report history: round %llu: flag %zu has no "
                                "client", (unsigned long long)r->round, i);
        const char *why = s_moved_wrong(&r->flags[i], cells);
        if (why)
            return gb_error_set(err, GB_EINVAL, "report history: round %llu: flag %zu %s",
                                (unsigned long long)r->round, i, why);
    }
    return 0;
}

int gb_report_history_add(gb_report_history_t *h, const gb_report_round_t *r, size_t n_names,
                          const char *const *class_names, gb_error_t *err)
{
    int rc = s_check_new(r, err);
    if (rc)
        return rc;
    if (n_names > GB_REPORT_HISTORY_MAX_CLASSES)
        return gb_error_set(err, GB_EINVAL, "report history: %zu class names; at most %d",
                            n_names, GB_REPORT_HISTORY_MAX_CLASSES);
    if (h->n == h->cap) { /* at most GB_REPORT_HISTORY_MAX_ROUNDS + 16 */
        gb_report_round_t *grown = gb_realloc(h->rounds, (h->cap + 16) * sizeof *grown);
        if (!grown)
            return gb_error_set(err, GB_ENOMEM, "report history: out of memory");
        h->rounds = grown;
        h->cap += 16;
    }
    char (*names)[GB_REPORT_HISTORY_NAME_MAX + 1] = NULL;
    if (n_names && !(names = gb_calloc(n_names, sizeof *names)))
        return gb_error_set(err, GB_ENOMEM, "report history: out of memory for class names");
    for (size_t k = 0; k < n_names; k++) {
        const char *name = class_names ? class_names[k] : NULL;
        if (name && *name)
            s_copy_name(names[k], name);
        else
            snprintf(names[k], sizeof names[k], "class %zu", k);
    }
    gb_report_round_t copy;
    if ((rc = s_round_copy(&copy, r, err)) != 0) {
        gb_free(names);
        return rc;
    }
    while (h->n && h->rounds[h->n - 1].round >= r->round)
        s_round_free(&h->rounds[--h->n]);
    if (h->n == GB_REPORT_HISTORY_MAX_ROUNDS) {
        s_round_free(&h->rounds[0]);
        memmove(&h->rounds[0], &h->rounds[1], (h->n - 1) * sizeof *h->rounds);
        h->n--;
        h->dropped++;
    }
    h->rounds[h->n++] = copy;
    if (n_names) {
        gb_free(h->classes);
        h->classes = names;
        h->n_classes = n_names;
    }
    return 0;
}

/* ---- writing ----------------------------------------------------------------- */

static void s_set(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *bad = true;
}

static void s_append(json_t *a, json_t *v, bool *bad)
{
    if (!v || json_array_append_new(a, v) != 0)
        *bad = true;
}

static json_t *s_flag_json(const gb_report_flag_t *g, bool *bad)
{
    json_t *o = json_object(), *z = json_object();
    if (!o || !z) {
        json_decref(o);
        json_decref(z);
        *bad = true;
        return NULL;
    }
    s_set(o, "client", gb_json_string(g->client), bad);
    s_set(o, "score", gb_json_real_or_null(g->score), bad);
    s_set(o, "strongest",
          g->strongest >= 0 && g->strongest < GB_FLAG_SIGNALS
              ? json_string(gb_flag_signal_name((gb_flag_signal_t)g->strongest))
              : json_null(),
          bad);
    s_set(o, "rounds_out", json_integer(g->rounds_out), bad);
    s_set(o, "rounds_seen", json_integer(g->rounds_seen), bad);
    for (int s = 0; s < GB_FLAG_SIGNALS; s++)
        s_set(z, gb_flag_signal_name((gb_flag_signal_t)s), gb_json_real_or_null(g->z[s]), bad);
    s_set(o, "z", z, bad);
    s_set(o, "update_distance", gb_json_real_or_null(g->update_distance), bad);
    s_set(o, "norm", gb_json_real_or_null(g->norm), bad);
    s_set(o, "explanation_distance", gb_json_real_or_null(g->explanation_distance), bad);
    json_t *moved = json_array();
    s_set(o, "moved", moved, bad);
    for (size_t i = 0; i < g->n_moved && !*bad; i++)
        s_append(moved,
                 json_pack("[I, o]", (json_int_t)g->moved[i], gb_json_real(g->moved_share[i])),
                 bad);
    json_t *classes = json_array();
    s_set(o, "classes_moved", classes, bad);
    for (size_t i = 0; i < g->n_classes_moved && !*bad; i++)
        s_append(classes,
                 json_pack("[I, o]", (json_int_t)g->classes_moved[i],
                           gb_json_real(g->class_ratio[i])),
                 bad);
    if (g->lesson_cells[0])
        s_set(o, "lesson",
              json_pack("{s:I, s:o}", "class", (json_int_t)g->lesson_class, "cells",
                        gb_json_string(g->lesson_cells)),
              bad);
    return o;
}

static json_t *s_round_json(const gb_report_round_t *r, bool *bad)
{
    json_t *o = json_object();
    if (!o) {
        *bad = true;
        return NULL;
    }
    s_set(o, "round", json_integer((json_int_t)r->round), bad);
    s_set(o, "seconds", gb_json_real_or_null(r->seconds), bad);
    s_set(o, "participants", json_integer((json_int_t)r->participants), bad);
    s_set(o, "samples", json_integer((json_int_t)r->samples), bad);
    s_set(o, "test_accuracy", gb_json_real_or_null(r->test_accuracy), bad);
    s_set(o, "test_loss", gb_json_real_or_null(r->test_loss), bad);
    s_set(o, "train_accuracy", gb_json_real_or_null(r->train_accuracy), bad);
    s_set(o, "train_loss", gb_json_real_or_null(r->train_loss), bad);
    s_set(o, "client_accuracy", gb_json_real_or_null(r->client_accuracy), bad);
    s_set(o, "client_loss", gb_json_real_or_null(r->client_loss), bad);
    s_set(o, "clients_evaluated", json_integer((json_int_t)r->clients_evaluated), bad);
    json_t *spread = json_array(), *classes = json_array(), *maps = json_array(),
           *dist = json_array(), *flags = json_array();
    s_set(o, "client_accuracy_spread", spread, bad);
    s_set(o, "class_accuracy", classes, bad);
    s_set(o, "heatmaps", maps, bad);
    s_set(o, "importance_heatmap", json_boolean(r->importance_heatmap), bad);
    json_t *shape = json_array();
    s_set(o, "importance_shape", shape, bad);
    for (size_t i = 0; i < r->importance_rank && !*bad; i++)
        s_append(shape, json_integer(r->importance_shape[i]), bad);
    s_set(o, "distances_total", json_integer((json_int_t)r->distances_total), bad);
    s_set(o, "distances", dist, bad);
    s_set(o, "flags_total", json_integer((json_int_t)r->flags_total), bad);
    s_set(o, "flags", flags, bad);
    if (*bad)
        return o;
    const double q[4] = {r->acc_min, r->acc_p10, r->acc_median, r->acc_max};
    for (int i = 0; i < 4; i++)
        s_append(spread, gb_json_real_or_null(q[i]), bad);
    for (size_t k = 0; k < r->n_classes; k++)
        s_append(classes, gb_json_real_or_null(r->class_accuracy[k]), bad);
    for (size_t k = 0; k < r->n_heatmaps; k++)
        s_append(maps, json_integer(r->heatmap_classes[k]), bad);
    for (size_t i = 0; i < r->n_distances && !*bad; i++)
        s_append(dist, json_pack("[o, o]", gb_json_string(r->distances[i].client),
                                 gb_json_real_or_null(r->distances[i].distance)),
                 bad);
    for (size_t i = 0; i < r->n_flags && !*bad; i++)
        s_append(flags, s_flag_json(&r->flags[i], bad), bad);
    return o;
}

int gb_report_history_write(const gb_report_history_t *h, const char *path, gb_error_t *err)
{
    bool bad = false;
    json_t *doc = json_object(), *classes = json_array(), *rounds = json_array();
    s_set(doc, "format", json_string(S_FORMAT), &bad);
    s_set(doc, "version", json_integer(S_VERSION), &bad);
    s_set(doc, "dropped", json_integer((json_int_t)h->dropped), &bad);
    s_set(doc, "classes", classes, &bad);
    s_set(doc, "rounds", rounds, &bad);
    for (size_t k = 0; k < h->n_classes && !bad; k++)
        s_append(classes, gb_json_string(h->classes[k]), &bad);
    for (size_t i = 0; i < h->n && !bad; i++)
        s_append(rounds, s_round_json(&h->rounds[i], &bad), &bad);
    char *text = NULL;
    size_t len = 0;
    int rc = bad ? gb_error_set(err, GB_ENOMEM, "report history: out of memory for the JSON")
                 : gb_json_dump(doc, &text, &len, err);
    json_decref(doc);
    if (rc == 0)
        rc = gb_file_write_atomic(path, text, len, 0644, err);
    gb_free(text);
    return rc;
}

/* ---- reading ----------------------------------------------------------------- */

/* Where a refusal points: "round 7 (item 3): test_accuracy". */
typedef struct {
    gb_error_t *err;
    size_t item;
    uint64_t round;
    int rc; /* the first refusal */
} s_reader_t;

static int s_refuse(s_reader_t *rd, const char *field, const char *why)
{
    if (rd->rc == 0)
        rd->rc = gb_error_set(rd->err, GB_EINVAL, "report history: rounds[%zu] (round %llu): "
                              "%s %s", rd->item, (unsigned long long)rd->round, field, why);
    return rd->rc;
}

/* A real in [lo, hi], or null (NaN) when nullable. */
static double s_real(s_reader_t *rd, json_t *o, const char *key, double lo, double hi)
{
    json_t *v = json_object_get(o, key);
    if (json_is_null(v))
        return NAN;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(x >= lo && x <= hi)) {
        s_refuse(rd, key, "is not a number in range, nor null");
        return NAN;
    }
    return x;
}

/* An integer in [0, max]. */
static uint64_t s_uint(s_reader_t *rd, json_t *o, const char *key, uint64_t max)
{
    json_t *v = json_object_get(o, key);
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
    if (x < 0 || (uint64_t)x > max) {
        s_refuse(rd, key, "is not an integer in range");
        return 0;
    }
    return (uint64_t)x;
}

/* An array of at most max items (NULL after a refusal). */
static json_t *s_array(s_reader_t *rd, json_t *o, const char *key, size_t max)
{
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) > max) {
        s_refuse(rd, key, "is not an array of the allowed length");
        return NULL;
    }
    return a;
}

/* A name string of 1..64 bytes without NUL into out. */
static void s_name(s_reader_t *rd, json_t *v, const char *field, char *out)
{
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (n == 0 || n > GB_REPORT_HISTORY_NAME_MAX || strlen(json_string_value(v)) != n) {
        s_refuse(rd, field, "is not a name of 1 to 64 bytes");
        out[0] = '\0';
        return;
    }
    memcpy(out, json_string_value(v), n + 1);
}

/* An optional array of at most GB_REPORT_HISTORY_MAX_MOVED [index, real]
 * pairs into *n, idx and val (absent: none; a history written before them). */
static void s_read_pairs(s_reader_t *rd, json_t *a, const char *field, size_t *n, uint32_t *idx,
                         double *val)
{
    *n = 0;
    if (!a)
        return;
    if (!json_is_array(a) || json_array_size(a) > GB_REPORT_HISTORY_MAX_MOVED) {
        s_refuse(rd, field, "is not an array of at most 8 items");
        return;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i), *c = json_array_get(v, 0), *d = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(c) ||
            json_integer_value(c) < 0 || json_integer_value(c) > UINT32_MAX ||
            !json_is_number(d)) {
            s_refuse(rd, field, "holds an item that is not [index, number]");
            *n = 0;
            return;
        }
        idx[i] = (uint32_t)json_integer_value(c);
        val[i] = json_number_value(d);
    }
    *n = json_array_size(a);
}

/* A flag's lesson {"class": K, "cells": "..."} into g; absent or null
 * (a history written before lessons were kept, or none this round): none. */
static void s_read_lesson(s_reader_t *rd, json_t *v, gb_report_flag_t *g)
{
    g->lesson_class = -1;
    g->lesson_cells[0] = '\0';
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        s_refuse(rd, "flags[].lesson", "is not an object, nor null");
        return;
    }
    g->lesson_class = (int)s_uint(rd, v, "class", GB_REPORT_HISTORY_MAX_CLASSES - 1);
    s_name(rd, json_object_get(v, "cells"), "flags[].lesson.cells", g->lesson_cells);
}

static void s_read_flag(s_reader_t *rd, json_t *o, gb_report_flag_t *g)
{
    if (!json_is_object(o)) {
        s_refuse(rd, "flags", "holds an item that is not an object");
        return;
    }
    s_name(rd, json_object_get(o, "client"), "flags[].client", g->client);
    g->score = s_real(rd, o, "score", 0, HUGE_VAL);
    json_t *s = json_object_get(o, "strongest");
    g->strongest = -1;
    for (int k = 0; json_is_string(s) && k < GB_FLAG_SIGNALS; k++)
        if (strcmp(json_string_value(s), gb_flag_signal_name((gb_flag_signal_t)k)) == 0)
            g->strongest = k;
    if (!json_is_null(s) && g->strongest < 0)
        s_refuse(rd, "flags[].strongest", "is not a signal's name, nor null");
    g->rounds_seen = (int)s_uint(rd, o, "rounds_seen", 64);
    g->rounds_out = (int)s_uint(rd, o, "rounds_out", (uint64_t)g->rounds_seen);
    json_t *z = json_object_get(o, "z");
    if (!json_is_object(z))
        s_refuse(rd, "flags[].z", "is not an object");
    /* a signal the history's writer did not have yet (lesson) is absent: NaN */
    for (int k = 0; k < GB_FLAG_SIGNALS; k++) {
        const char *name = gb_flag_signal_name((gb_flag_signal_t)k);
        g->z[k] = json_is_object(z) && json_object_get(z, name)
                      ? s_real(rd, z, name, -HUGE_VAL, HUGE_VAL)
                      : NAN;
    }
    g->update_distance = s_real(rd, o, "update_distance", 0, HUGE_VAL);
    g->norm = s_real(rd, o, "norm", 0, HUGE_VAL);
    g->explanation_distance = s_real(rd, o, "explanation_distance", 0, HUGE_VAL);
    s_read_pairs(rd, json_object_get(o, "classes_moved"), "flags[].classes_moved",
                 &g->n_classes_moved, g->classes_moved, g->class_ratio);
    /* absent in a history written before moved cells were kept */
    s_read_pairs(rd, json_object_get(o, "moved"), "flags[].moved", &g->n_moved, g->moved,
                 g->moved_share);
    s_read_lesson(rd, json_object_get(o, "lesson"), g);
}

/* Reads one round into r (its arrays allocated; r freed by the caller
 * whatever happens). */
static void s_read_round(s_reader_t *rd, json_t *o, size_t n_classes, gb_report_round_t *r)
{
    if (!json_is_object(o)) {
        s_refuse(rd, "the item", "is not an object");
        return;
    }
    r->round = s_uint(rd, o, "round", UINT64_MAX >> 1);
    rd->round = r->round;
    if (rd->rc == 0 && r->round == 0)
        s_refuse(rd, "round", "is 0");
    r->seconds = s_real(rd, o, "seconds", 0, HUGE_VAL);
    r->participants = s_uint(rd, o, "participants", UINT64_MAX >> 1);
    r->samples = s_uint(rd, o, "samples", UINT64_MAX >> 1);
    r->test_accuracy = s_real(rd, o, "test_accuracy", 0, 1);
    r->test_loss = s_real(rd, o, "test_loss", 0, HUGE_VAL);
    r->train_accuracy = s_real(rd, o, "train_accuracy", 0, 1);
    r->train_loss = s_real(rd, o, "train_loss", 0, HUGE_VAL);
    r->client_accuracy = s_real(rd, o, "client_accuracy", 0, 1);
    r->client_loss = s_real(rd, o, "client_loss", 0, HUGE_VAL);
    r->clients_evaluated = s_uint(rd, o, "clients_evaluated", UINT64_MAX >> 1);
    json_t *spread = s_array(rd, o, "client_accuracy_spread", 4);
    double *q[4] = {&r->acc_min, &r->acc_p10, &r->acc_median, &r->acc_max};
    if (spread && json_array_size(spread) != 4)
        s_refuse(rd, "client_accuracy_spread", "does not hold 4 items");
    for (int i = 0; i < 4; i++) {
        json_t *v = spread ? json_array_get(spread, (size_t)i) : NULL;
        *q[i] = json_is_number(v) ? json_number_value(v) : NAN;
        if (!json_is_null(v) && !(*q[i] >= 0 && *q[i] <= 1))
            s_refuse(rd, "client_accuracy_spread", "holds a value outside [0, 1]");
    }
    json_t *classes = s_array(rd, o, "class_accuracy", n_classes);
    json_t *maps = s_array(rd, o, "heatmaps", GB_REPORT_HISTORY_MAX_CLASSES);
    json_t *dist = s_array(rd, o, "distances", GB_REPORT_HISTORY_MAX_DISTANCES);
    json_t *flags = s_array(rd, o, "flags", GB_REPORT_HISTORY_MAX_FLAGS);
    json_t *imp = json_object_get(o, "importance_heatmap");
    if (!json_is_boolean(imp))
        s_refuse(rd, "importance_heatmap", "is not true or false");
    r->importance_heatmap = json_is_true(imp);
    json_t *shape = json_object_get(o, "importance_shape"); /* absent before it was kept */
    if (shape && (!json_is_array(shape) || json_array_size(shape) > GB_REPORT_HISTORY_MAX_RANK))
        s_refuse(rd, "importance_shape", "is not an array of at most 8 dimensions");
    r->importance_rank = shape && rd->rc == 0 ? json_array_size(shape) : 0;
    for (size_t i = 0; i < r->importance_rank; i++) {
        json_t *v = json_array_get(shape, i);
        json_int_t d = json_is_integer(v) ? json_integer_value(v) : 0;
        if (d < 1 || d > UINT32_MAX) {
            s_refuse(rd, "importance_shape", "holds a dimension that is not 1 or more");
            break;
        }
        r->importance_shape[i] = (uint32_t)d;
    }
    bool shape_ok = true;
    if (rd->rc == 0) {
        s_cells(r, &shape_ok);
        if (!shape_ok)
            s_refuse(rd, "importance_shape", "has too many cells");
    }
    if (rd->rc)
        return;
    r->n_classes = json_array_size(classes);
    r->n_heatmaps = json_array_size(maps);
    r->n_distances = json_array_size(dist);
    r->n_flags = json_array_size(flags);
    r->distances_total = s_uint(rd, o, "distances_total", UINT64_MAX >> 1);
    r->flags_total = s_uint(rd, o, "flags_total", UINT64_MAX >> 1);
    if (rd->rc == 0 && (r->distances_total < r->n_distances || r->flags_total < r->n_flags))
        s_refuse(rd, "distances_total or flags_total", "is less than the items listed");
    r->class_accuracy = r->n_classes ? gb_calloc(r->n_classes, sizeof(double)) : NULL;
    r->heatmap_classes = r->n_heatmaps ? gb_calloc(r->n_heatmaps, sizeof(uint32_t)) : NULL;
    r->distances = r->n_distances ? gb_calloc(r->n_distances, sizeof *r->distances) : NULL;
    r->flags = r->n_flags ? gb_calloc(r->n_flags, sizeof *r->flags) : NULL;
    if ((r->n_classes && !r->class_accuracy) || (r->n_heatmaps && !r->heatmap_classes) ||
        (r->n_distances && !r->distances) || (r->n_flags && !r->flags)) {
        rd->rc = gb_error_set(rd->err, GB_ENOMEM, "report history: out of memory");
        return;
    }
    for (size_t k = 0; k < r->n_classes; k++) {
        json_t *v = json_array_get(classes, k);
        r->class_accuracy[k] = json_is_number(v) ? json_number_value(v) : NAN;
        if (!json_is_null(v) && !(r->class_accuracy[k] >= 0 && r->class_accuracy[k] <= 1))
            s_refuse(rd, "class_accuracy", "holds a value outside [0, 1]");
    }
    for (size_t k = 0; k < r->n_heatmaps; k++) {
        json_t *v = json_array_get(maps, k);
        json_int_t c = json_is_integer(v) ? json_integer_value(v) : -1;
        if (c < 0 || c >= GB_REPORT_HISTORY_MAX_CLASSES)
            s_refuse(rd, "heatmaps", "holds an item that is not a class index");
        else
            r->heatmap_classes[k] = (uint32_t)c;
    }
    for (size_t i = 0; i < r->n_distances && rd->rc == 0; i++) {
        json_t *v = json_array_get(dist, i);
        json_t *d = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_number(d) ||
            !(json_number_value(d) >= 0)) {
            s_refuse(rd, "distances", "holds an item that is not [client, distance >= 0]");
            break;
        }
        s_name(rd, json_array_get(v, 0), "distances[].client", r->distances[i].client);
        r->distances[i].distance = json_number_value(d);
    }
    uint64_t cells = s_cells(r, &shape_ok);
    for (size_t i = 0; i < r->n_flags && rd->rc == 0; i++) {
        s_read_flag(rd, json_array_get(flags, i), &r->flags[i]);
        const char *why = rd->rc ? NULL : s_moved_wrong(&r->flags[i], cells);
        if (why)
            s_refuse(rd, "flags[].moved: the flag", why);
    }
}

static gb_report_history_t *s_from_json(json_t *doc, gb_error_t *err)
{
    json_t *format = json_object_get(doc, "format");
    json_t *version = json_object_get(doc, "version");
    if (!json_is_object(doc) || !json_is_string(format) ||
        strcmp(json_string_value(format), S_FORMAT) != 0 || !json_is_integer(version) ||
        json_integer_value(version) != S_VERSION) {
        gb_error_set(err, GB_EFORMAT, "report history: not a %s version %d document", S_FORMAT,
                     S_VERSION);
        return NULL;
    }
    gb_report_history_t *h = gb_report_history_new(err);
    if (!h)
        return NULL;
    s_reader_t rd = {.err = err};
    h->dropped = s_uint(&rd, doc, "dropped", UINT64_MAX >> 1);
    json_t *classes = s_array(&rd, doc, "classes", GB_REPORT_HISTORY_MAX_CLASSES);
    json_t *rounds = s_array(&rd, doc, "rounds", GB_REPORT_HISTORY_MAX_ROUNDS);
    size_t nc = rd.rc ? 0 : json_array_size(classes), nr = rd.rc ? 0 : json_array_size(rounds);
    if (nc && !(h->classes = gb_calloc(nc, sizeof *h->classes)))
        rd.rc = gb_error_set(err, GB_ENOMEM, "report history: out of memory");
    h->n_classes = h->classes ? nc : 0;
    for (size_t k = 0; k < h->n_classes && rd.rc == 0; k++)
        s_name(&rd, json_array_get(classes, k), "classes[]", h->classes[k]);
    if (rd.rc == 0 && nr && !(h->rounds = gb_calloc(nr, sizeof *h->rounds)))
        rd.rc = gb_error_set(err, GB_ENOMEM, "report history: out of memory");
    h->cap = h->rounds ? nr : 0;
    for (size_t i = 0; i < nr && rd.rc == 0; i++) {
        rd.item = i;
        rd.round = 0;
        s_read_round(&rd, json_array_get(rounds, i), h->n_classes, &h->rounds[i]);
        h->n = i + 1; /* owned from here, freed with h */
        if (rd.rc == 0 && i > 0 && h->rounds[i].round <= h->rounds[i - 1].round)
            s_refuse(&rd, "round", "is not after the round before");
    }
    if (rd.rc) {
        gb_report_history_destroy(&h);
        return NULL;
    }
    return h;
}

gb_report_history_t *gb_report_history_parse(const char *text, size_t len, gb_error_t *err)
{
    if (len > GB_REPORT_HISTORY_MAX_BYTES) {
        gb_error_set(err, GB_ERANGE, "report history: %zu bytes, more than %zu", len,
                     GB_REPORT_HISTORY_MAX_BYTES);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(len ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        gb_error_set(err, GB_EFORMAT, "report history: not JSON (line %d: %s)", jerr.line,
                     jerr.text);
        return NULL;
    }
    gb_report_history_t *h = s_from_json(doc, err);
    json_decref(doc);
    return h;
}

gb_report_history_t *gb_report_history_read(const char *path, gb_error_t *err)
{
    uint8_t *text = NULL;
    size_t len = 0;
    if (gb_file_read_all(path, GB_REPORT_HISTORY_MAX_BYTES, &text, &len, err) != 0)
        return NULL;
    gb_report_history_t *h = gb_report_history_parse((const char *)text, len, err);
    gb_free(text);
    if (!h && err)
        gb_error_prefix(err, err->code, "%s: ", path);
    return h;
}
