/* The field checkers (see envelope_check.h): the pieces every body check
 * of envelope.c and the Publication check of publication.c are built from.
 *
 * They live apart from the codecs so that the Envelope and the Publication,
 * two messages decoded from two different places (a frame; a verified
 * signature's payload), refuse the same field in the same words and with
 * the same code. Each formats "<field path>: <what is wrong>" and picks the
 * gb_err code that gb_envelope_error_code turns into the right ErrorCode.
 * Bounded checks come before expensive ones (lengths before hashes, hashes
 * before scanning every float), so a hostile message costs little. The two
 * sub-message checks both codecs need, a nested model and an explanation,
 * are here too, with the class bitmap they share with ExplainConfig. */
#include "net/envelope_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/snapshot.h"
#include "net/wire.h"

/* ---- refusals ------------------------------------------------------------ */


int gb_check_fail(gb_error_t *err, int code, const char *field, const char *fmt, ...)
{
    char msg[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gb_error_set(err, code, "%s: %s", field, msg);
}

/* ---- field checkers ------------------------------------------------------ */

/* A count or id where proto3's 0 means "missing". */
int gb_check_count(gb_error_t *err, const char *field, uint64_t v)
{
    return v == 0 ? gb_check_fail(err, GB_EFORMAT, field,
                                  "is 0 (missing; counts and ids start at 1)")
                  : 0;
}

/* A string of min..max bytes, UTF-8 without control characters (tab and
 * newlines too unless allow_space). NULL reads as empty (a caller-built
 * message may leave it so). The content is never echoed: it is hostile. */
int gb_check_text(gb_error_t *err, const char *field, const char *s, size_t min, size_t max,
                  bool allow_space)
{
    size_t len = s ? strnlen(s, max + 1) : 0;
    if (len < min)
        return gb_check_fail(err, GB_EFORMAT, field, "is empty (missing)");
    if (len > max)
        return gb_check_fail(err, GB_ERANGE, field, "is longer than %zu bytes", max);
    size_t bad;
    if (!gb_wire_text_ok(s, len, allow_space, &bad))
        return gb_check_fail(err, GB_EINVAL, field,
                             "control character or bad UTF-8 at byte %zu", bad);
    return 0;
}

/* A name of 1..max bytes from a restricted alphabet: [a-z0-9_.-], plus A-Z
 * if `upper`, plus the characters in `extra`. */
int gb_check_name(gb_error_t *err, const char *field, const char *s, size_t max, bool upper,
                  const char *extra)
{
    size_t len = s ? strnlen(s, max + 1) : 0;
    if (len == 0)
        return gb_check_fail(err, GB_EFORMAT, field, "is empty (missing)");
    if (len > max)
        return gb_check_fail(err, GB_ERANGE, field, "is longer than %zu bytes", max);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-' || (upper && c >= 'A' && c <= 'Z') || strchr(extra, c) != NULL;
        if (!ok)
            return gb_check_fail(err, GB_EINVAL, field, "byte %zu is not one of [%sa-z0-9_.%s-]", i,
                                 upper ? "A-Z" : "", extra);
    }
    return 0;
}

/* A bytes field of min..max bytes. */
int gb_check_blob(gb_error_t *err, const char *field, ProtobufCBinaryData b, size_t min,
                  size_t max)
{
    if (b.len < min || (b.len > 0 && !b.data))
        return gb_check_fail(err, GB_EFORMAT, field, "is empty (missing)");
    if (b.len > max)
        return gb_check_fail(err, GB_ERANGE, field, "is %zu bytes, more than %zu", b.len, max);
    return 0;
}

/* A finite double in [lo, hi] (hi_open: [lo, hi)). */
int gb_check_real(gb_error_t *err, const char *field, double v, double lo, double hi,
                  bool hi_open)
{
    if (!isfinite(v))
        return gb_check_fail(err, GB_EINVAL, field, "is %s", isnan(v) ? "NaN" : "infinite");
    if (v < lo || v > hi || (hi_open && v == hi))
        return gb_check_fail(err, GB_EINVAL, field, "%g is outside [%g, %g%c", v, lo, hi,
                             hi_open ? ')' : ']');
    return 0;
}

/* An unsigned value at most max. */
int gb_check_max(gb_error_t *err, const char *field, uint64_t v, uint64_t max)
{
    if (v > max)
        return gb_check_fail(err, GB_EINVAL, field, "%llu is more than %llu", (unsigned long long)v,
                             (unsigned long long)max);
    return 0;
}

/* A repeated field's count. */
int gb_check_list(gb_error_t *err, const char *field, size_t n, const void *items, size_t max)
{
    if (n > max)
        return gb_check_fail(err, GB_ERANGE, field, "has %zu entries, more than %zu", n, max);
    if (n > 0 && !items)
        return gb_check_fail(err, GB_EFORMAT, field, "entries missing");
    return 0;
}

/* Metric names: what Glassbox writes ("loss", "accuracy/class_3"). */
int gb_check_metrics(gb_error_t *err, const char *base, size_t n, Glassbox__Metric *const *m)
{
    char field[GB_CHECK_FIELD_MAX];
    int rc = gb_check_list(err, base, n, m, GB_ENVELOPE_MAX_METRICS);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(field, sizeof field, "%s[%zu]", base, i);
        if (!m[i])
            return gb_check_fail(err, GB_EFORMAT, field, "is missing");
        snprintf(field, sizeof field, "%s[%zu].name", base, i);
        rc = gb_check_name(err, field, m[i]->name, GB_ENVELOPE_MAX_METRIC_NAME, true, ":/");
        if (rc == 0) {
            snprintf(field, sizeof field, "%s[%zu].value", base, i);
            rc = gb_check_real(err, field, m[i]->value, -HUGE_VAL, HUGE_VAL, false);
        }
    }
    return rc;
}

/* Capabilities: unique keys [a-z0-9_.-]+, text values. */
int gb_check_capabilities(gb_error_t *err, const char *base, size_t n,
                          Glassbox__KeyValue *const *kv)
{
    char field[GB_CHECK_FIELD_MAX];
    int rc = gb_check_list(err, base, n, kv, GB_ENVELOPE_MAX_KV);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(field, sizeof field, "%s[%zu]", base, i);
        if (!kv[i])
            return gb_check_fail(err, GB_EFORMAT, field, "is missing");
        snprintf(field, sizeof field, "%s[%zu].key", base, i);
        rc = gb_check_name(err, field, kv[i]->key, GB_ENVELOPE_MAX_KEY, false, "");
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(kv[j]->key, kv[i]->key) == 0)
                rc = gb_check_fail(err, GB_EINVAL, field, "'%s' appears twice", kv[i]->key);
        if (rc == 0) {
            snprintf(field, sizeof field, "%s[%zu].value", base, i);
            rc = gb_check_text(err, field, kv[i]->value, 0, GB_ENVELOPE_MAX_VALUE, false);
        }
    }
    return rc;
}

/* Enum values: open on the wire, so a number this version does not know is
 * refused here by name. */
int gb_check_enum(gb_error_t *err, const char *field, int v, int lo, int hi)
{
    if (v < lo || v > hi)
        return gb_check_fail(err, GB_EINVAL, field,
                             "value %d is not one this version knows (%d..%d)", v, lo, hi);
    return 0;
}

/* A float32 tensor: 1..GB_ENVELOPE_MAX_DIMS dims, each >= 1, product x 4 ==
 * len(data), every value finite. If like_shape / like_n are given (not
 * NULL), the shape must equal them. */
int gb_check_tensor(gb_error_t *err, const char *base, const Glassbox__Tensor *t,
                    const uint32_t *like_shape, size_t like_n)
{
    char field[GB_CHECK_FIELD_MAX];
    if (!t)
        return gb_check_fail(err, GB_EFORMAT, base, "is missing");
    snprintf(field, sizeof field, "%s.shape", base);
    if (t->n_shape == 0)
        return gb_check_fail(err, GB_EFORMAT, field, "is empty (missing)");
    int rc = gb_check_list(err, field, t->n_shape, t->shape, GB_ENVELOPE_MAX_DIMS);
    if (rc != 0)
        return rc;
    /* The product stops growing past 2^62 floats, so it never wraps (each
     * factor is below 2^32); no tensor that large matches its data. */
    const uint64_t cap = (uint64_t)1 << 62;
    size_t have = t->data.len / 4;
    uint64_t elems = 1;
    bool over = false;
    for (size_t i = 0; i < t->n_shape; i++) {
        if (t->shape[i] == 0)
            return gb_check_fail(err, GB_ESHAPE, field, "dimension %zu is 0", i);
        if (elems > cap / t->shape[i])
            over = true;
        else
            elems *= t->shape[i];
    }
    snprintf(field, sizeof field, "%s.data", base);
    if (t->data.len > 0 && !t->data.data)
        return gb_check_fail(err, GB_EFORMAT, field, "is missing");
    if (over)
        return gb_check_fail(err, GB_ESHAPE, field,
                             "is %zu bytes, the shape needs more than 2^62 floats", t->data.len);
    if (t->data.len % 4 != 0 || elems != have)
        return gb_check_fail(err, GB_ESHAPE, field, "is %zu bytes, the shape needs %llu floats",
                             t->data.len, (unsigned long long)elems);
    if (like_shape) {
        bool same = like_n == t->n_shape;
        for (size_t i = 0; same && i < like_n; i++)
            same = like_shape[i] == t->shape[i];
        if (!same) {
            snprintf(field, sizeof field, "%s.shape", base);
            return gb_check_fail(err, GB_ESHAPE, field,
                                 "differs from the explanation's first tensor");
        }
    }
    size_t n = t->data.len / 4;
    size_t bad = gb_wire_first_nonfinite(t->data.data, n);
    if (bad < n)
        return gb_check_fail(err, GB_EINVAL, field, "value %zu of %zu is %s", bad, n,
                             isnan(gb_wire_float_le(t->data.data + 4 * bad)) ? "NaN" : "infinite");
    return 0;
}

/* ---- class lists and sub-messages -------------------------------------- */

/* One bit per class index (gb_check_classes_t): a repeat is one AND away. */
int gb_check_class(gb_error_t *err, const char *field, gb_check_classes_t *seen, uint32_t c)
{
    if (c >= GB_ENVELOPE_MAX_CLASSES)
        return gb_check_fail(err, GB_EINVAL, field, "class %u is not below %d", (unsigned)c,
                             GB_ENVELOPE_MAX_CLASSES);
    uint64_t bit = (uint64_t)1 << (c % 64);
    if (seen->bits[c / 64] & bit)
        return gb_check_fail(err, GB_EINVAL, field, "class %u appears twice", (unsigned)c);
    seen->bits[c / 64] |= bit;
    return 0;
}

/* A nested model: the model file's own checks, under the field's name. Its
 * GB_ERANGE (a NaN, or a spec over its length limit) is an invalid value
 * here, not a frame over the size limit (see envelope.h). */
int gb_check_model(const char *field, const Glassbox__ModelSnapshot *m, gb_error_t *err)
{
    if (!m)
        return gb_check_fail(err, GB_EFORMAT, field, "is missing");
    gb_error_t local;
    gb_error_clear(&local);
    int rc = gb_snapshot_check_message(m, &local);
    if (rc == 0)
        return 0;
    return gb_check_fail(err, rc == GB_ERANGE ? GB_EINVAL : rc, field, "%s", local.msg);
}

int gb_check_explanation(const Glassbox__Explanation *x, const char *base,
                         uint32_t max_clients, gb_error_t *err)
{
    char field[GB_CHECK_FIELD_MAX];
    snprintf(field, sizeof field, "%s.method", base);
    int rc = gb_check_enum(err, field, (int)x->method,
                           GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS,
                           GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM);
    snprintf(field, sizeof field, "%s.classes", base);
    if (rc == 0)
        rc = gb_check_list(err, field, x->n_classes, x->classes, GB_ENVELOPE_MAX_CLASSES);
    if (rc == 0 && x->n_classes == 0 && !x->feature_importance)
        rc = gb_check_fail(err, GB_EFORMAT, base, "has neither classes nor feature_importance");
    /* Every map is input-shaped: all must have the first one's shape. */
    const Glassbox__Tensor *first = x->feature_importance;
    if (rc == 0 && first) {
        snprintf(field, sizeof field, "%s.feature_importance", base);
        rc = gb_check_tensor(err, field, first, NULL, 0);
    }
    gb_check_classes_t seen = {{0}};
    for (size_t i = 0; rc == 0 && i < x->n_classes; i++) {
        const Glassbox__ClassAttribution *c = x->classes[i];
        snprintf(field, sizeof field, "%s.classes[%zu]", base, i);
        if (!c)
            return gb_check_fail(err, GB_EFORMAT, field, "is missing");
        rc = gb_check_class(err, field, &seen, c->class_index);
        if (rc == 0) {
            snprintf(field, sizeof field, "%s.classes[%zu].count", base, i);
            rc = gb_check_count(err, field, c->count);
        }
        if (rc == 0 && (c->clients > max_clients || c->clients > c->count)) {
            snprintf(field, sizeof field, "%s.classes[%zu].clients", base, i);
            rc = gb_check_fail(err, GB_EINVAL, field, "is %u, more than %s (%llu)",
                               (unsigned)c->clients,
                               c->clients > max_clients ? "allowed here" : "the class's count",
                               c->clients > max_clients ? (unsigned long long)max_clients
                                                        : (unsigned long long)c->count);
        }
        if (rc == 0) {
            snprintf(field, sizeof field, "%s.classes[%zu].mean_attribution", base, i);
            rc = gb_check_tensor(err, field, c->mean_attribution, first ? first->shape : NULL,
                                 first ? first->n_shape : 0);
            if (!first)
                first = c->mean_attribution;
        }
    }
    snprintf(field, sizeof field, "%s.quality", base);
    if (rc == 0)
        rc = gb_check_metrics(err, field, x->n_quality, x->quality);
    return rc;
}


/* protobuf-c keeps fields it does not know, to pack them again; but it also
 * keeps one numbered 0, which no protobuf writer may produce and which its
 * own parser then refuses: an envelope that would not survive being packed
 * again. Refuse such a message, nested ones included, walking the
 * descriptors (depth is bounded by the schema: no message type recurses). */
int gb_check_unknown_fields(const ProtobufCMessage *m, gb_error_t *err)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return gb_check_fail(err, GB_EFORMAT, m->descriptor->name, "has a field numbered 0");
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + fd->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + fd->offset);
            for (size_t k = 0; k < n; k++) {
                int rc = items && items[k] ? gb_check_unknown_fields(items[k], err) : 0;
                if (rc != 0)
                    return rc;
            }
            continue;
        }
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
            continue;
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + fd->offset);
        int rc = sub ? gb_check_unknown_fields(sub, err) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}
