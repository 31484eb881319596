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
    if (rc != 0 || n < 2)
        return rc;
    /* Unique ids: sort pointers to the keys, compare neighbours. */
    const char **keys = gb_malloc(n * sizeof *keys);
    if (!keys)
        return gb_error_set(err, GB_ENOMEM, "out of memory checking %zu client ids", n);
    for (size_t i = 0; i < n; i++)
        keys[i] = kv[i]->key;
    qsort(keys, n, sizeof *keys, s_cmp_str);
    for (size_t i = 1; rc == 0 && i < n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            rc = gb_check_fail(err, GB_EINVAL, base, "client '%s' appears twice", keys[i]);
    gb_free(keys);
    return rc;
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
