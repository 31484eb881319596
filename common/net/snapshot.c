/* The model file codec (see snapshot.h): gb_snapshot_t <-> packed
 * ModelSnapshot, with every check done before any field is trusted.
 *
 * Shape of the code: small s_check_* validators that both directions share,
 * so encode refuses exactly what decode would; s_decode does the work without
 * logging and the public entry points log once, with the file name when there
 * is one. s_check_message validates an unpacked ModelSnapshot in place (no
 * copy), so a model inside a Task or Publication (net/envelope.c) is checked
 * by exactly the code that checks a model file. protobuf-c unpacks through
 * gb_wire_budget_allocator, which routes through gb_malloc (so allocation-failure
 * injection reaches protobuf-c too) and stops at a budget proportional to
 * the input: tiny repeated fields cannot make a 256 MiB message allocate
 * gigabytes. SHA-256 is OpenSSL's EVP
 * (net/wire.h). */
#include "net/snapshot.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "net/wire.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

_Static_assert(GB_SNAPSHOT_FORMAT_VERSION == GLASSBOX__VERSIONS__MODEL_FORMAT_VERSION,
               "snapshot.h and glassbox.proto disagree on the model format version");
_Static_assert(sizeof(float) == 4, "parameters are stored as 4-byte IEEE-754 floats");

#ifndef GLASSBOX_VERSION
#define GLASSBOX_VERSION "unknown"
#endif

/* ---- validators shared by encode and decode ----------------------------- */

static int s_check_spec_text(const char *spec, gb_error_t *err)
{
    if (!spec || spec[0] == '\0')
        return gb_error_set(err, GB_EFORMAT, "model snapshot has no spec");
    size_t len = strnlen(spec, GB_SNAPSHOT_MAX_SPEC + 1);
    if (len > GB_SNAPSHOT_MAX_SPEC)
        return gb_error_set(err, GB_ERANGE, "model snapshot spec is longer than %zu bytes",
                            GB_SNAPSHOT_MAX_SPEC);
    size_t bad;
    if (!gb_wire_text_ok(spec, len, true, &bad))
        return gb_error_set(err, GB_EFORMAT,
                            "model snapshot spec has a control character or bad UTF-8 "
                            "at byte %zu", bad);
    return 0;
}

static int s_check_key(const char *key, int code, gb_error_t *err)
{
    if (!key)
        return gb_error_set(err, code, "metadata key is missing");
    size_t len = strnlen(key, GB_SNAPSHOT_MAX_KEY + 1);
    if (len == 0 || len > GB_SNAPSHOT_MAX_KEY)
        return gb_error_set(err, code, "metadata key must be 1 to %d bytes, got %s%zu",
                            GB_SNAPSHOT_MAX_KEY, len > GB_SNAPSHOT_MAX_KEY ? "more than " : "",
                            len > GB_SNAPSHOT_MAX_KEY ? (size_t)GB_SNAPSHOT_MAX_KEY : len);
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok)
            return gb_error_set(err, code,
                                "metadata key '%.*s': byte %zu is not one of [A-Za-z0-9_.:-]",
                                (int)len, key, i);
    }
    return 0;
}

static int s_check_value(const char *key, const char *value, int code, gb_error_t *err)
{
    if (!value)
        return gb_error_set(err, code, "metadata '%s': value is missing", key);
    size_t len = strnlen(value, GB_SNAPSHOT_MAX_VALUE + 1);
    if (len > GB_SNAPSHOT_MAX_VALUE)
        return gb_error_set(err, code, "metadata '%s': value longer than %d bytes", key,
                            GB_SNAPSHOT_MAX_VALUE);
    size_t bad;
    if (!gb_wire_text_ok(value, len, false, &bad))
        return gb_error_set(err, code,
                            "metadata '%s': control character or bad UTF-8 at byte %zu", key,
                            bad);
    return 0;
}

/* Checks n metadata entries, given as parallel accessors over either a
 * gb_snapshot_meta_t array or the unpacked message's KeyValue array. */
typedef struct {
    const gb_snapshot_meta_t *own;    /* caller's entries, or NULL */
    Glassbox__KeyValue *const *wire; /* unpacked entries, or NULL */
} s_meta_view_t;

static const char *s_meta_key(s_meta_view_t v, size_t i)
{
    return v.own ? v.own[i].key : v.wire[i]->key;
}

static const char *s_meta_value(s_meta_view_t v, size_t i)
{
    return v.own ? v.own[i].value : v.wire[i]->value;
}

static int s_check_meta(s_meta_view_t v, size_t n, int code, gb_error_t *err)
{
    if (n > GB_SNAPSHOT_MAX_META)
        return gb_error_set(err, code, "model snapshot has %zu metadata entries, more than %d",
                            n, GB_SNAPSHOT_MAX_META);
    for (size_t i = 0; i < n; i++) {
        const char *key = s_meta_key(v, i);
        int rc = s_check_key(key, code, err);
        if (rc == 0)
            rc = s_check_value(key, s_meta_value(v, i), code, err);
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(s_meta_key(v, j), key) == 0)
                rc = gb_error_set(err, code, "metadata key '%s' appears twice", key);
        if (rc != 0)
            return gb_error_prefix(err, code, "model snapshot metadata entry %zu: ", i);
    }
    return 0;
}

static int s_check_finite(const float *params, size_t n, gb_error_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(params[i]))
            return gb_error_set(err, GB_ERANGE, "model snapshot parameter %zu of %zu is %s", i,
                                n, isnan(params[i]) ? "NaN" : "infinite");
    return 0;
}

/* Parses the spec and counts the parameters it implies without allocating
 * them (a hostile spec must not cost gigabytes); refuses a different
 * n_params. */
static int s_check_spec_count(const char *spec_text, size_t n_params, gb_error_t *err)
{
    gb_error_t local;
    gb_error_clear(&local);
    size_t want = 0;
    if (gb_model_count_params(spec_text, &want, &local))
        return gb_error_set(err, local.code ? local.code : GB_ESPEC, "model snapshot: %s",
                            local.msg);
    if (want != n_params)
        return gb_error_set(err, GB_ESHAPE,
                            "model snapshot holds %zu parameters but its spec implies %zu",
                            n_params, want);
    return 0;
}

/* ---- construction ------------------------------------------------------- */

gb_snapshot_t *gb_snapshot_new(const char *spec, const float *params, size_t n_params,
                               uint64_t round, gb_error_t *err)
{
    if (!spec || (!params && n_params > 0)) {
        gb_error_set(err, GB_EINVAL, "gb_snapshot_new: NULL argument");
        return NULL;
    }
    if (n_params > GB_SNAPSHOT_MAX_BYTES / sizeof(float)) {
        gb_error_set(err, GB_ERANGE, "model snapshot of %zu parameters is too big", n_params);
        return NULL;
    }
    const char *preset = gb_spec_preset(spec);
    gb_snapshot_t *s = gb_calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->spec = gb_strdup(preset ? preset : spec);
    s->params = gb_malloc(n_params * sizeof(float));
    if (!s->spec || !s->params)
        goto nomem;
    if (n_params)
        memcpy(s->params, params, n_params * sizeof(float));
    s->n_params = n_params;
    s->round = round;
    return s;
nomem:
    gb_snapshot_destroy(&s);
    gb_error_set(err, GB_ENOMEM, "out of memory for a model snapshot of %zu parameters",
                 n_params);
    return NULL;
}

gb_snapshot_t *gb_snapshot_from_model(const gb_model_t *model, uint64_t round, gb_error_t *err)
{
    if (!model) {
        gb_error_set(err, GB_EINVAL, "gb_snapshot_from_model: NULL model");
        return NULL;
    }
    const gb_spec_t *spec = gb_model_spec(model);
    if (!spec || !spec->text) {
        gb_error_set(err, GB_EINVAL, "gb_snapshot_from_model: model has no spec text");
        return NULL;
    }
    /* gb_model_params only reads here; the model API has no const accessor. */
    const float *params = gb_model_params((gb_model_t *)model);
    return gb_snapshot_new(spec->text, params, gb_model_param_count(model), round, err);
}

void gb_snapshot_destroy(gb_snapshot_t **s)
{
    if (!s || !*s)
        return;
    gb_snapshot_t *p = *s;
    for (size_t i = 0; i < p->n_meta; i++) {
        gb_free(p->meta[i].key);
        gb_free(p->meta[i].value);
    }
    gb_free(p->meta);
    gb_free(p->params);
    gb_free(p->spec);
    gb_free(p);
    *s = NULL;
}

int gb_snapshot_meta_set(gb_snapshot_t *s, const char *key, const char *value, gb_error_t *err)
{
    if (!s)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_meta_set: NULL snapshot");
    int rc = s_check_key(key, GB_EINVAL, err);
    if (rc == 0)
        rc = s_check_value(key, value, GB_EINVAL, err);
    if (rc != 0)
        return rc;
    char *copy = gb_strdup(value);
    if (!copy)
        return gb_error_set(err, GB_ENOMEM, "out of memory for metadata '%s'", key);
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0) {
            gb_free(s->meta[i].value);
            s->meta[i].value = copy;
            return 0;
        }
    if (s->n_meta >= GB_SNAPSHOT_MAX_META) {
        gb_free(copy);
        return gb_error_set(err, GB_EINVAL, "metadata '%s': already %d entries, the most allowed",
                            key, GB_SNAPSHOT_MAX_META);
    }
    char *key_copy = gb_strdup(key);
    gb_snapshot_meta_t *grown = key_copy
        ? gb_realloc(s->meta, (s->n_meta + 1) * sizeof *s->meta) : NULL;
    if (!grown) {
        gb_free(key_copy);
        gb_free(copy);
        return gb_error_set(err, GB_ENOMEM, "out of memory for metadata '%s'", key);
    }
    s->meta = grown;
    s->meta[s->n_meta].key = key_copy;
    s->meta[s->n_meta].value = copy;
    s->n_meta++;
    return 0;
}

const char *gb_snapshot_meta_get(const gb_snapshot_t *s, const char *key)
{
    if (!s || !key)
        return NULL;
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            return s->meta[i].value;
    return NULL;
}

int gb_snapshot_stamp(gb_snapshot_t *s, gb_error_t *err)
{
    char when[32];
    time_t now = time(NULL);
    struct tm utc;
    if (now == (time_t)-1 || !gmtime_r(&now, &utc) ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        return gb_error_set(err, GB_EIO, "cannot read the clock for created_at");
    int rc = gb_snapshot_meta_set(s, GB_SNAPSHOT_META_CREATED_AT, when, err);
    if (rc == 0)
        rc = gb_snapshot_meta_set(s, GB_SNAPSHOT_META_VERSION, GLASSBOX_VERSION, err);
    return rc;
}

/* ---- encode ------------------------------------------------------------- */

/* Checks s as encode must and fills view with a message whose parameter
 * bytes are params_le (s's parameters as little-endian float32). */
static int s_fill_view(const gb_snapshot_t *s, const uint8_t *params_le,
                       gb_snapshot_view_t *view, gb_error_t *err)
{
    if (s->n_params > GB_SNAPSHOT_MAX_BYTES / sizeof(float))
        return gb_error_set(err, GB_ERANGE, "model snapshot of %zu parameters is too big",
                            s->n_params);
    int rc = s_check_spec_text(s->spec, err);
    if (rc == 0)
        rc = s_check_meta((s_meta_view_t){.own = s->meta}, s->n_meta, GB_EINVAL, err);
    if (rc == 0)
        rc = s_check_finite(s->params, s->n_params, err);
    if (rc == 0)
        rc = s_check_spec_count(s->spec, s->n_params, err);
    if (rc == 0)
        rc = gb_wire_sha256(params_le, s->n_params * sizeof(float), view->sha256, err);
    if (rc != 0)
        return rc;
    Glassbox__ModelSnapshot *m = &view->msg;
    glassbox__model_snapshot__init(m);
    m->format_version = GB_SNAPSHOT_FORMAT_VERSION;
    m->spec = s->spec;
    m->param_count = s->n_params;
    m->round = s->round;
    m->params.data = (uint8_t *)params_le; /* only read, by packing */
    m->params.len = s->n_params * sizeof(float);
    m->params_sha256.data = view->sha256;
    m->params_sha256.len = sizeof view->sha256;
    for (size_t i = 0; i < s->n_meta; i++) {
        glassbox__key_value__init(&view->kv[i]);
        view->kv[i].key = s->meta[i].key;
        view->kv[i].value = s->meta[i].value;
        view->kvp[i] = &view->kv[i];
    }
    m->n_metadata = s->n_meta;
    m->metadata = s->n_meta ? view->kvp : NULL;
    return 0;
}

int gb_snapshot_encode(const gb_snapshot_t *s, uint8_t **buf, size_t *len, gb_error_t *err)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!s || !buf || !len || (!s->params && s->n_params > 0) || (!s->meta && s->n_meta > 0))
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_encode: NULL argument");
    int rc = 0;
    uint8_t *le = NULL; /* little-endian copy, big-endian hosts only */
    uint8_t *out = NULL;
    gb_snapshot_view_t *view = gb_malloc(sizeof *view);
    if (!view)
        return gb_error_set(err, GB_ENOMEM, "out of memory encoding a model snapshot");
#if GB_WIRE_LITTLE_ENDIAN
    const uint8_t *params_le = (const uint8_t *)s->params;
#else
    if (s->n_params <= GB_SNAPSHOT_MAX_BYTES / sizeof(float)) {
        le = gb_malloc(s->n_params * sizeof(float) + 1);
        if (!le) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory encoding a model snapshot");
            goto cleanup;
        }
        gb_wire_floats_to_le(le, s->params, s->n_params);
    }
    const uint8_t *params_le = le;
#endif
    if ((rc = s_fill_view(s, params_le, view, err)) != 0)
        goto cleanup;
    size_t packed = glassbox__model_snapshot__get_packed_size(&view->msg);
    if (packed > GB_SNAPSHOT_MAX_BYTES) {
        rc = gb_error_set(err, GB_ERANGE, "model snapshot would be %zu bytes, more than %zu",
                          packed, GB_SNAPSHOT_MAX_BYTES);
        goto cleanup;
    }
    out = gb_malloc(packed);
    if (!out) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory for a %zu-byte model snapshot", packed);
        goto cleanup;
    }
    size_t written = glassbox__model_snapshot__pack(&view->msg, out);
    if (written != packed) {
        rc = gb_error_set(err, GB_EFORMAT, "protobuf-c packed %zu bytes, expected %zu", written,
                          packed);
        goto cleanup;
    }
    *buf = out;
    *len = packed;
    out = NULL;

cleanup:
    gb_free(out);
    gb_free(view);
    gb_free(le);
    return rc;
}

int gb_snapshot_view(const gb_snapshot_t *s, gb_snapshot_view_t *view, gb_error_t *err)
{
    if (!s || !view || (!s->params && s->n_params > 0) || (!s->meta && s->n_meta > 0))
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_view: NULL argument");
#if !GB_WIRE_LITTLE_ENDIAN
    return gb_error_set(err, GB_EINVAL, "gb_snapshot_view: needs a little-endian host");
#else
    return s_fill_view(s, (const uint8_t *)s->params, view, err);
#endif
}

int gb_snapshot_view_le(const gb_snapshot_t *s, const uint8_t *params_le,
                        gb_snapshot_view_t *view, gb_error_t *err)
{
    if (!s || !view || (!s->params && s->n_params > 0) || (!params_le && s->n_params > 0) ||
        (!s->meta && s->n_meta > 0))
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_view_le: NULL argument");
    return s_fill_view(s, params_le, view, err);
}

/* ---- decode ------------------------------------------------------------- */

/* Every check of an unpacked message, on the message itself and before
 * anything is copied out of it: bounded fields first, then the hash, then
 * the values and the spec, which cost time in proportion to the model. */
static int s_check_message(const Glassbox__ModelSnapshot *msg, gb_error_t *err)
{
    if (msg->format_version != GB_SNAPSHOT_FORMAT_VERSION)
        return msg->format_version == 0
            ? gb_error_set(err, GB_EFORMAT, "model snapshot has no format version")
            : gb_error_set(err, GB_EPROTO,
                           "model snapshot format version %u is not supported (this build "
                           "reads version %u)",
                           (unsigned)msg->format_version, GB_SNAPSHOT_FORMAT_VERSION);
    int rc = s_check_spec_text(msg->spec, err);
    if (rc != 0)
        return rc;
    if (msg->params.len % sizeof(float) != 0)
        return gb_error_set(err, GB_EFORMAT,
                            "model snapshot parameters are %zu bytes, not a multiple of 4",
                            msg->params.len);
    size_t n = msg->params.len / sizeof(float);
    if (msg->param_count != (uint64_t)n)
        return gb_error_set(err, GB_EFORMAT,
                            "model snapshot states %llu parameters but holds %zu bytes (%zu)",
                            (unsigned long long)msg->param_count, msg->params.len, n);
    if (msg->params_sha256.len != GB_WIRE_SHA256_LEN)
        return gb_error_set(err, GB_EFORMAT,
                            "model snapshot SHA-256 is %zu bytes, expected %d (missing or cut)",
                            msg->params_sha256.len, GB_WIRE_SHA256_LEN);
    uint8_t digest[GB_WIRE_SHA256_LEN];
    rc = gb_wire_sha256(msg->params.data, msg->params.len, digest, err);
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(digest, msg->params_sha256.data, GB_WIRE_SHA256_LEN) != 0)
        return gb_error_set(err, GB_EINTEGRITY,
                            "model snapshot parameters do not match their SHA-256 (corrupted)");
    rc = s_check_meta((s_meta_view_t){.wire = msg->metadata}, msg->n_metadata, GB_EFORMAT,
                      err);
    if (rc != 0)
        return rc;
    size_t bad = gb_wire_first_nonfinite(msg->params.data, n);
    if (bad < n) {
        float v = gb_wire_float_le(msg->params.data + 4 * bad);
        return gb_error_set(err, GB_ERANGE, "model snapshot parameter %zu of %zu is %s", bad, n,
                            isnan(v) ? "NaN" : "infinite");
    }
    return s_check_spec_count(msg->spec, n, err);
}

int gb_snapshot_check_message(const Glassbox__ModelSnapshot *msg, gb_error_t *err)
{
    if (!msg)
        return gb_error_set(err, GB_EFORMAT, "model snapshot is missing");
    return s_check_message(msg, err);
}

static int s_decode(const uint8_t *buf, size_t len, gb_snapshot_t **out, gb_error_t *err)
{
    if (len > GB_SNAPSHOT_MAX_BYTES)
        return gb_error_set(err, GB_ERANGE,
                            "model snapshot is %zu bytes, more than the limit of %zu", len,
                            GB_SNAPSHOT_MAX_BYTES);
    if (!buf && len > 0)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_decode: NULL buffer");

    gb_wire_budget_t budget = gb_wire_budget(len);
    ProtobufCAllocator alloc = gb_wire_budget_allocator(&budget);
    gb_snapshot_t *s = NULL;
    int rc = 0;
    Glassbox__ModelSnapshot *msg =
        glassbox__model_snapshot__unpack(&alloc, len, len ? buf : (const uint8_t *)"");
    if (!msg) {
        if (budget.out_of_mem)
            return gb_error_set(err, GB_ENOMEM, "out of memory decoding a model snapshot");
        if (budget.over)
            return gb_error_set(err, GB_EFORMAT,
                                "model snapshot of %zu bytes needs too much memory to unpack "
                                "(more than %zu bytes)",
                                len, budget.limit);
        return gb_error_set(err, GB_EFORMAT,
                            "not a model snapshot, or truncated (%zu bytes do not unpack)", len);
    }

    rc = s_check_message(msg, err);
    if (rc != 0)
        goto cleanup;

    /* Everything is bounded, consistent and finite: copy out. */
    size_t n = msg->params.len / sizeof(float);
    s = gb_calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->spec = gb_strdup(msg->spec);
    s->params = gb_malloc(msg->params.len);
    if (!s->spec || !s->params)
        goto nomem;
    gb_wire_floats_from_le(s->params, msg->params.data, n);
    s->n_params = n;
    s->round = msg->round;
    if (msg->n_metadata > 0) {
        s->meta = gb_calloc(msg->n_metadata, sizeof *s->meta);
        if (!s->meta)
            goto nomem;
        for (size_t i = 0; i < msg->n_metadata; i++) {
            s->meta[i].key = gb_strdup(msg->metadata[i]->key);
            s->meta[i].value = gb_strdup(msg->metadata[i]->value);
            s->n_meta = i + 1;
            if (!s->meta[i].key || !s->meta[i].value)
                goto nomem;
        }
    }
    *out = s;
    s = NULL;
    goto cleanup;

nomem:
    rc = gb_error_set(err, GB_ENOMEM, "out of memory decoding a model snapshot");
cleanup:
    gb_snapshot_destroy(&s);
    glassbox__model_snapshot__free_unpacked(msg, &alloc);
    return rc;
}

int gb_snapshot_decode(const uint8_t *buf, size_t len, gb_snapshot_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_decode: NULL output");
    *out = NULL;
    gb_error_t local;
    gb_error_clear(&local);
    int rc = s_decode(buf, len, out, &local);
    if (rc != 0) {
        gb_log_warn("model snapshot rejected: %s", local.msg);
        gb_error_set(err, rc, "%s", local.msg);
    }
    return rc;
}

/* ---- files -------------------------------------------------------------- */

int gb_snapshot_save(const char *path, const gb_snapshot_t *s, gb_error_t *err)
{
    if (!path)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_save: NULL path");
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = gb_snapshot_encode(s, &buf, &len, err);
    if (rc != 0)
        return gb_error_prefix(err, rc, "saving '%s': ", path);
    rc = gb_file_write_atomic(path, buf, len, GB_SNAPSHOT_FILE_MODE, err);
    gb_free(buf);
    return rc;
}

int gb_snapshot_load(const char *path, gb_snapshot_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_load: NULL output");
    *out = NULL;
    if (!path)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_load: NULL path");
    gb_error_t local;
    gb_error_clear(&local);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = gb_file_read_all(path, GB_SNAPSHOT_MAX_BYTES, &buf, &len, &local);
    if (rc == 0) {
        rc = s_decode(buf, len, out, &local);
        if (rc != 0)
            gb_error_prefix(&local, rc, "'%s': ", path);
    }
    gb_free(buf);
    if (rc != 0) {
        gb_log_warn("model file rejected: %s", local.msg);
        gb_error_set(err, rc, "%s", local.msg);
    }
    return rc;
}

/* ---- models ------------------------------------------------------------- */

gb_model_t *gb_snapshot_to_model(const gb_snapshot_t *s, gb_error_t *err)
{
    if (!s || !s->spec || (!s->params && s->n_params > 0)) {
        gb_error_set(err, GB_EINVAL, "gb_snapshot_to_model: NULL argument");
        return NULL;
    }
    gb_model_t *model = gb_model_new(s->spec, err);
    if (!model)
        return NULL;
    size_t want = gb_model_param_count(model);
    if (want != s->n_params) {
        gb_error_set(err, GB_ESHAPE, "model snapshot holds %zu parameters but its spec implies %zu",
                     s->n_params, want);
        gb_model_destroy(&model);
        return NULL;
    }
    if (want)
        memcpy(gb_model_params(model), s->params, want * sizeof(float));
    return model;
}

int gb_snapshot_save_model(const char *path, const gb_model_t *model, uint64_t round,
                           const gb_snapshot_meta_t *meta, size_t n_meta, gb_error_t *err)
{
    if (!meta && n_meta > 0)
        return gb_error_set(err, GB_EINVAL, "gb_snapshot_save_model: NULL metadata");
    gb_error_t local;
    gb_error_clear(&local);
    gb_snapshot_t *s = gb_snapshot_from_model(model, round, &local);
    int rc = s ? gb_snapshot_stamp(s, &local) : local.code;
    for (size_t i = 0; rc == 0 && i < n_meta; i++)
        rc = gb_snapshot_meta_set(s, meta[i].key, meta[i].value, &local);
    if (rc == 0)
        rc = gb_snapshot_save(path, s, &local);
    gb_snapshot_destroy(&s);
    if (rc != 0)
        gb_error_set(err, rc, "%s", local.msg);
    return rc;
}

gb_model_t *gb_snapshot_load_model(const char *path, uint64_t *round, gb_error_t *err)
{
    gb_snapshot_t *s = NULL;
    if (gb_snapshot_load(path, &s, err) != 0)
        return NULL;
    gb_error_t local;
    gb_error_clear(&local);
    gb_model_t *model = gb_snapshot_to_model(s, &local);
    if (!model)
        gb_error_set(err, local.code, "'%s': %s", path, local.msg);
    else if (round)
        *round = s->round;
    gb_snapshot_destroy(&s);
    return model;
}
