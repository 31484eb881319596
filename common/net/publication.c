/* The Publication codec (see publication.h): a round's outcome, checked
 * with the same field checkers as the Envelope (envelope_check.h) but
 * decoded on its own, because it never travels bare: its bytes come out of
 * a SignedPublication whose signature gb_publication_verify (net/signing.h)
 * has already checked, and it is stored the same way. Decode unpacks under
 * the same memory budget as the Envelope (net/wire.h) and refuses unknown
 * field 0 the same way, so a signed but hostile publication (a compromised
 * coordinator key) is held to every limit a frame is. */
#include "net/publication.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/envelope_check.h"
#include "net/signing.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No two of items[0..n) have the same client id (id(item)): pointers to
 * the ids sorted, neighbours compared. */
static int s_unique(gb_error_t *err, const char *field, size_t n, const void *const *items,
                    const char *(*id)(const void *))
{
    if (n < 2)
        return 0;
    const char **ids = gb_malloc(n * sizeof *ids);
    if (!ids)
        return gb_error_set(err, GB_ENOMEM, "out of memory checking %zu client ids", n);
    for (size_t i = 0; i < n; i++)
        ids[i] = id(items[i]);
    qsort(ids, n, sizeof *ids, s_cmp_str);
    int rc = 0;
    for (size_t i = 1; rc == 0 && i < n; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            rc = gb_check_fail(err, GB_EINVAL, field, "client '%s' appears twice", ids[i]);
    gb_free(ids);
    return rc;
}

static const char *s_distance_id(const void *kv)
{
    return ((const Glassbox__KeyValue *)kv)->key;
}

static const char *s_flag_id(const void *flag)
{
    return ((const Glassbox__ClientFlag *)flag)->client_id;
}

/* Per-client distances: client id -> a finite number >= 0, ids unique. */
static int s_distances(gb_error_t *err, size_t n, Glassbox__KeyValue *const *kv)
{
    const char *base = "publication.explanation_distance";
    char field[GB_CHECK_FIELD_MAX];
    int rc = gb_check_list(err, base, n, kv, GB_PUBLICATION_MAX_CLIENTS);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(field, sizeof field, "%s[%zu]", base, i);
        if (!kv[i])
            return gb_check_fail(err, GB_EFORMAT, field, "is missing");
        snprintf(field, sizeof field, "%s[%zu].key", base, i);
        rc = gb_check_name(err, field, kv[i]->key, GB_ENVELOPE_MAX_NAME, true, "");
        snprintf(field, sizeof field, "%s[%zu].value", base, i);
        char *end = NULL;
        double v = rc == 0 && kv[i]->value ? strtod(kv[i]->value, &end) : NAN;
        if (rc == 0 && (!end || end == kv[i]->value || *end != '\0'))
            rc = gb_check_fail(err, GB_EINVAL, field, "is not a decimal number");
        if (rc == 0)
            rc = gb_check_real(err, field, v, 0, HUGE_VAL, false);
    }
    return rc ? rc : s_unique(err, base, n, (const void *const *)kv, s_distance_id);
}

/* True when name is one of m[0..n)'s names. */
static bool s_has_metric(Glassbox__Metric *const *m, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (m[i]->name && name && strcmp(m[i]->name, name) == 0)
            return true;
    return false;
}

/* A metric list of a flag: gb_check_metrics, at most
 * GB_PUBLICATION_MAX_FLAG_SIGNALS, names unique, values >= 0 unless
 * `signed_ok` (a z-score below the median is negative). */
static int s_flag_metrics(gb_error_t *err, const char *base, size_t n,
                          Glassbox__Metric *const *m, bool signed_ok)
{
    char field[GB_CHECK_FIELD_MAX];
    int rc = gb_check_list(err, base, n, m, GB_PUBLICATION_MAX_FLAG_SIGNALS);
    if (rc == 0)
        rc = gb_check_metrics(err, base, n, m);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(field, sizeof field, "%s[%zu]", base, i);
        if (s_has_metric(m, i, m[i]->name))
            return gb_check_fail(err, GB_EINVAL, field, "names a signal twice");
        if (!signed_ok)
            rc = gb_check_real(err, field, m[i]->value, 0, HUGE_VAL, false);
    }
    return rc;
}

/* Cells of the explanation's maps (they all have one shape: the importance
 * map's, else the first class's), 0 without an explanation. Called after
 * the explanation's own check, which bounds the product. */
static size_t s_explanation_cells(const Glassbox__Explanation *x)
{
    const Glassbox__Tensor *t = !x ? NULL
                                : x->feature_importance ? x->feature_importance
                                : x->n_classes          ? x->classes[0]->mean_attribution
                                                        : NULL;
    if (!t)
        return 0;
    size_t n = 1;
    for (size_t i = 0; i < t->n_shape; i++)
        n *= t->shape[i];
    return n;
}

/* A flag's moved cells: at most GB_PUBLICATION_MAX_FLAG_MOVED, unique, each
 * below cells, with as many shares, each in (0, 1]. */
static int s_flag_moved(gb_error_t *err, const char *base, const Glassbox__ClientFlag *c,
                        size_t cells)
{
    char field[GB_CHECK_FIELD_MAX];
    snprintf(field, sizeof field, "%s.moved_cells", base);
    if (c->n_moved_cells > GB_PUBLICATION_MAX_FLAG_MOVED)
        return gb_check_fail(err, GB_ERANGE, field, "has %zu entries, more than %u",
                             c->n_moved_cells, GB_PUBLICATION_MAX_FLAG_MOVED);
    if (c->n_moved_share != c->n_moved_cells)
        return gb_check_fail(err, GB_EFORMAT, field, "has %zu entries but moved_share %zu",
                             c->n_moved_cells, c->n_moved_share);
    for (size_t k = 0; k < c->n_moved_cells; k++) {
        snprintf(field, sizeof field, "%s.moved_cells[%zu]", base, k);
        if (c->moved_cells[k] >= cells)
            return cells ? gb_check_fail(err, GB_ERANGE, field,
                                         "is %u, past the explanation's %zu cells",
                                         c->moved_cells[k], cells)
                         : gb_check_fail(err, GB_EINVAL, field,
                                         "names a cell, but the publication has no explanation");
        for (size_t j = 0; j < k; j++)
            if (c->moved_cells[j] == c->moved_cells[k])
                return gb_check_fail(err, GB_EINVAL, field, "repeats cell %u",
                                     c->moved_cells[k]);
        snprintf(field, sizeof field, "%s.moved_share[%zu]", base, k);
        float v = c->moved_share[k];
        if (!(v > 0.0f && v <= 1.0f))
            return gb_check_fail(err, GB_EINVAL, field, "is %g, not in (0, 1]", (double)v);
    }
    return 0;
}

/* Whether explanation x holds a map of class c. */
static bool s_has_class(const Glassbox__Explanation *x, uint32_t c)
{
    for (size_t i = 0; x && i < x->n_classes; i++)
        if (x->classes[i]->class_index == c)
            return true;
    return false;
}

/* A flag's moved classes: at most GB_PUBLICATION_MAX_FLAG_CLASSES, unique,
 * each a class of the explanation x, with as many ratios, each finite and
 * >= 1. */
static int s_flag_classes(gb_error_t *err, const char *base, const Glassbox__ClientFlag *c,
                          const Glassbox__Explanation *x)
{
    char field[GB_CHECK_FIELD_MAX];
    snprintf(field, sizeof field, "%s.moved_classes", base);
    if (c->n_moved_classes > GB_PUBLICATION_MAX_FLAG_CLASSES)
        return gb_check_fail(err, GB_ERANGE, field, "has %zu entries, more than %u",
                             c->n_moved_classes, GB_PUBLICATION_MAX_FLAG_CLASSES);
    if (c->n_moved_class_ratio != c->n_moved_classes)
        return gb_check_fail(err, GB_EFORMAT, field, "has %zu entries but moved_class_ratio %zu",
                             c->n_moved_classes, c->n_moved_class_ratio);
    for (size_t k = 0; k < c->n_moved_classes; k++) {
        snprintf(field, sizeof field, "%s.moved_classes[%zu]", base, k);
        if (!s_has_class(x, c->moved_classes[k]))
            return gb_check_fail(err, GB_EINVAL, field, "is class %u, which the explanation "
                                 "has no map of", c->moved_classes[k]);
        for (size_t j = 0; j < k; j++)
            if (c->moved_classes[j] == c->moved_classes[k])
                return gb_check_fail(err, GB_EINVAL, field, "repeats class %u",
                                     c->moved_classes[k]);
        snprintf(field, sizeof field, "%s.moved_class_ratio[%zu]", base, k);
        float v = c->moved_class_ratio[k];
        if (!(v >= 1.0f && isfinite(v)))
            return gb_check_fail(err, GB_EINVAL, field, "is %g, not finite and >= 1", (double)v);
    }
    return 0;
}

/* A flag's lesson: its cells' name as text of at most
 * GB_PUBLICATION_MAX_LESSON_CELLS bytes, its class below
 * GB_PUBLICATION_MAX_LESSON_CLASS, and 0 when it has no cells (no lesson). */
static int s_flag_lesson(gb_error_t *err, const char *base, const Glassbox__ClientFlag *c)
{
    char field[GB_CHECK_FIELD_MAX];
    snprintf(field, sizeof field, "%s.lesson_cells", base);
    int rc = gb_check_text(err, field, c->lesson_cells, 0, GB_PUBLICATION_MAX_LESSON_CELLS, false);
    if (rc)
        return rc;
    snprintf(field, sizeof field, "%s.lesson_class", base);
    bool cells = c->lesson_cells && *c->lesson_cells;
    if (!cells && c->lesson_class != 0)
        return gb_check_fail(err, GB_EINVAL, field, "is %u, but the flag has no lesson_cells",
                             c->lesson_class);
    if (c->lesson_class >= GB_PUBLICATION_MAX_LESSON_CLASS)
        return gb_check_fail(err, GB_ERANGE, field, "is %u, not below %u", c->lesson_class,
                             GB_PUBLICATION_MAX_LESSON_CLASS);
    return 0;
}

/* One flagged client: its id, a finite score >= 0, 1 <= rounds_out <=
 * rounds_seen <= GB_PUBLICATION_MAX_FLAG_WINDOW, its z-scores with the
 * strongest among them (or none: flagged on its earlier rounds in a round
 * too small for z-scores), its evidence, its moved cells (of the
 * explanation's cells), its moved classes (of the explanation's x). */
static int s_flag(gb_error_t *err, size_t i, const Glassbox__ClientFlag *c, size_t cells,
                  const Glassbox__Explanation *x)
{
    /* "publication.flags[N]" is at most 38 bytes: room for every suffix */
    char base[48], field[GB_CHECK_FIELD_MAX];
    snprintf(base, sizeof base, "publication.flags[%zu]", i);
    if (!c)
        return gb_check_fail(err, GB_EFORMAT, base, "is missing");
    snprintf(field, sizeof field, "%s.client_id", base);
    int rc = gb_check_name(err, field, c->client_id, GB_ENVELOPE_MAX_NAME, true, "");
    snprintf(field, sizeof field, "%s.score", base);
    if (rc == 0)
        rc = gb_check_real(err, field, c->score, 0, HUGE_VAL, false);
    snprintf(field, sizeof field, "%s.rounds_seen", base);
    if (rc == 0 && (c->rounds_seen == 0 || c->rounds_seen > GB_PUBLICATION_MAX_FLAG_WINDOW))
        rc = gb_check_fail(err, GB_EINVAL, field, "is %u, not in 1..%u", c->rounds_seen,
                           GB_PUBLICATION_MAX_FLAG_WINDOW);
    snprintf(field, sizeof field, "%s.rounds_out", base);
    if (rc == 0 && (c->rounds_out == 0 || c->rounds_out > c->rounds_seen))
        rc = gb_check_fail(err, GB_EINVAL, field, "is %u, not in 1..rounds_seen (%u)",
                           c->rounds_out, c->rounds_seen);
    snprintf(field, sizeof field, "%s.z", base);
    if (rc == 0)
        rc = s_flag_metrics(err, field, c->n_z, c->z, true);
    snprintf(field, sizeof field, "%s.strongest", base);
    if (rc == 0 && c->strongest && *c->strongest && !s_has_metric(c->z, c->n_z, c->strongest))
        rc = gb_check_fail(err, GB_EINVAL, field, "names no signal of z");
    snprintf(field, sizeof field, "%s.evidence", base);
    if (rc == 0)
        rc = s_flag_metrics(err, field, c->n_evidence, c->evidence, false);
    if (rc == 0)
        rc = s_flag_moved(err, base, c, cells);
    if (rc == 0)
        rc = s_flag_classes(err, base, c, x);
    if (rc == 0)
        rc = s_flag_lesson(err, base, c);
    return rc;
}

/* The round's flagged clients: at most GB_PUBLICATION_MAX_CLIENTS, each
 * checked, ids unique. */
static int s_flags(gb_error_t *err, size_t n, Glassbox__ClientFlag *const *flags,
                   const Glassbox__Explanation *x)
{
    int rc = gb_check_list(err, "publication.flags", n, flags, GB_PUBLICATION_MAX_CLIENTS);
    size_t cells = s_explanation_cells(x);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = s_flag(err, i, flags[i], cells, x);
    return rc ? rc : s_unique(err, "publication.flags", n, (const void *const *)flags, s_flag_id);
}

int gb_publication_check(const Glassbox__Publication *p, gb_error_t *err)
{
    if (!p || p->base.descriptor != &glassbox__publication__descriptor)
        return gb_error_set(err, GB_EINVAL, "gb_publication_check: not a Publication");
    int rc = gb_check_count(err, "publication.round", p->round);
    if (rc == 0)
        rc = gb_check_model("publication.model", p->model, err);
    if (rc == 0 && p->explanation)
        rc = gb_check_explanation(p->explanation, "publication.explanation",
                                  GB_PUBLICATION_MAX_CLIENTS, err);
    if (rc == 0)
        rc = gb_check_metrics(err, "publication.metrics", p->n_metrics, p->metrics);
    if (rc == 0)
        rc = gb_check_count(err, "publication.participants", p->participants);
    if (rc == 0)
        rc = gb_check_name(err, "publication.aggregator", p->aggregator, GB_ENVELOPE_MAX_NAME,
                           false, ":");
    if (rc == 0)
        rc = s_distances(err, p->n_explanation_distance, p->explanation_distance);
    if (rc == 0)
        rc = s_flags(err, p->n_flags, p->flags, p->explanation);
    return rc;
}

int gb_publication_decode(const uint8_t *buf, size_t len, Glassbox__Publication **out,
                          gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_publication_decode: NULL output");
    *out = NULL;
    if (len > GB_PUBLICATION_MAX_BYTES)
        return gb_error_warn(err, GB_ERANGE, "publication refused: %zu bytes, more than %zu",
                             len, (size_t)GB_PUBLICATION_MAX_BYTES);
    gb_wire_budget_t budget = gb_wire_budget(len);
    ProtobufCAllocator alloc = gb_wire_budget_allocator(&budget);
    Glassbox__Publication *p =
        glassbox__publication__unpack(&alloc, len, len ? buf : (const uint8_t *)"");
    if (!p) {
        if (budget.out_of_mem)
            return gb_error_set(err, GB_ENOMEM, "out of memory decoding a publication");
        return gb_error_warn(err, budget.over ? GB_ERANGE : GB_EFORMAT,
                             "publication refused: %zu bytes do not unpack%s", len,
                             budget.over ? " within the memory budget" : "");
    }
    gb_error_t local;
    gb_error_clear(&local);
    int rc = gb_check_unknown_fields(&p->base, &local);
    if (rc == 0)
        rc = gb_publication_check(p, &local);
    if (rc != 0) {
        glassbox__publication__free_unpacked(p, gb_wire_allocator());
        return gb_error_warn(err, rc, "publication refused: %s", local.msg);
    }
    *out = p;
    return 0;
}

int gb_publication_encode(const Glassbox__Publication *p, uint8_t **buf, size_t *len,
                          gb_error_t *err)
{
    *buf = NULL;
    *len = 0;
    int rc = gb_publication_check(p, err);
    if (rc != 0)
        return rc;
    size_t packed = glassbox__publication__get_packed_size(p);
    if (packed > GB_PUBLICATION_MAX_BYTES)
        return gb_check_fail(err, GB_ERANGE, "publication", "would be %zu bytes, more than %zu",
                             packed, (size_t)GB_PUBLICATION_MAX_BYTES);
    uint8_t *out = gb_malloc(packed ? packed : 1);
    if (!out)
        return gb_error_set(err, GB_ENOMEM, "out of memory for a %zu-byte publication", packed);
    glassbox__publication__pack(p, out);
    *buf = out;
    *len = packed;
    return 0;
}

void gb_publication_free(Glassbox__Publication **p)
{
    if (!p || !*p)
        return;
    glassbox__publication__free_unpacked(*p, gb_wire_allocator());
    *p = NULL;
}
