/* Coordinator checkpoints (see checkpoint.h): gb_checkpoint_t <-> packed
 * Checkpoint, and the directory of checkpoint files with its `latest`
 * pointer, retention and fallback.
 *
 * Shape of the code: encode builds the Checkpoint message over the caller's
 * memory (the embedded model is net/snapshot.c's gb_snapshot_view_le, the
 * same ModelSnapshot every Task and Publication carries) and decode unpacks
 * one; both then run the one validator,
 * s_check_message, on the message itself, so the encoder refuses exactly
 * what the decoder refuses and the embedded model goes through
 * gb_snapshot_check_message like every other model Glassbox reads.
 *
 * The SHA-256 covers the raw bytes before the sha256 field, which the
 * encoder writes last (it has the highest number). Decode checks that the
 * file ends with that field and that the hash matches BEFORE protobuf-c sees
 * any of it: a truncated or damaged file is refused in one pass over its
 * bytes, with a message saying which, and the unpacker (under a budget, as
 * every Glassbox decoder) only ever runs on bytes the writer produced.
 *
 * The directory side keeps the commit point explicit: checkpoint and model
 * files are written first, `latest` last, and nothing is pruned until
 * `latest` names the new file, so at every instant `latest` names an intact
 * checkpoint. Loading falls back to older files only for damage; an
 * allocation failure or a newer format is reported instead, since resuming
 * from an older round over either would quietly lose finished rounds. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "aggregate.h"
#include "engine/spec.h"
#include "glassbox.pb-c.h"
#include "net/pki.h"
#include "net/wire.h"
#include "rounds.h"
#include "util/crash_point.h"
#include "server_optim.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

_Static_assert(sizeof(float) == 4, "parameters are stored as 4-byte IEEE-754 floats");

#ifndef GLASSBOX_VERSION
#define GLASSBOX_VERSION "unknown"
#endif


/* The packed sha256 field that ends every checkpoint: tag (15 << 3 | 2),
 * length 32, digest. */
#define S_TRAILER_TAG 0x7a
#define S_TRAILER_LEN (2 + GB_WIRE_SHA256_LEN)

/* Latest saved_unix_ms accepted: 9999-12-31T23:59:59.999Z, so every saved
 * time can be written as created_at. */
#define S_MAX_UNIX_MS UINT64_C(253402300799999)

/* `latest` holds one file name and a newline. */
#define S_LATEST_MAX 64

#define S_CKPT_PREFIX "checkpoint-"
#define S_CKPT_SUFFIX ".gbc"
#define S_MODEL_PREFIX "model-"
#define S_MODEL_SUFFIX ".gbm"

/* ---- small helpers ---------------------------------------------------- */

/* A little-endian view of n host floats: the floats themselves on a
 * little-endian host (*copy NULL), else a converted copy in *copy. */
static int s_le_view(const float *src, size_t n, const uint8_t **view, uint8_t **copy)
{
    *copy = NULL;
#if GB_WIRE_LITTLE_ENDIAN
    (void)n;
    /* protobuf-c only reads through this pointer while packing. */
    *view = (const uint8_t *)src;
    return 0;
#else
    if (n == 0) {
        *view = NULL;
        return 0;
    }
    *copy = gb_malloc(n * sizeof(float));
    if (!*copy)
        return GB_ENOMEM;
    gb_wire_floats_to_le(*copy, src, n);
    *view = *copy;
    return 0;
#endif
}

/* "2025-01-31T12:00:00Z" for Unix milliseconds ms. */
static int s_rfc3339(uint64_t ms, char *out, size_t cap, gb_error_t *err)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm utc;
    if ((uint64_t)secs != ms / 1000 || !gmtime_r(&secs, &utc) ||
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        return gb_error_set(err, GB_ERANGE, "checkpoint time %" PRIu64 " ms cannot be written "
                            "as a date", ms);
    return 0;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* dir + "/" + name in a new buffer (gb_free), or NULL. */
static char *s_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = gb_malloc(dl + 1 + nl + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

/* Parses name as PREFIX ROUND SUFFIX exactly, ROUND a decimal uint64 without
 * leading zeros (so each round has one file name). */
static bool s_parse_name(const char *name, size_t name_len, const char *prefix,
                         const char *suffix, uint64_t *round)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    if (name_len <= pl + sl || memcmp(name, prefix, pl) != 0 ||
        memcmp(name + name_len - sl, suffix, sl) != 0)
        return false;
    const char *d = name + pl;
    size_t nd = name_len - pl - sl;
    if (nd > 20 || (nd > 1 && d[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9')
            return false;
        unsigned digit = (unsigned)(d[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *round = v;
    return true;
}

/* ---- validation, shared by encode and decode ----------------------------- */

static int s_check_meta(Glassbox__KeyValue *const *kv, size_t n, int code, gb_error_t *err)
{
    if (n > GB_SNAPSHOT_MAX_META)
        return gb_error_set(err, code, "checkpoint has %zu metadata entries, more than %d", n,
                            GB_SNAPSHOT_MAX_META);
    for (size_t i = 0; i < n; i++) {
        const char *key = kv[i]->key, *value = kv[i]->value;
        size_t klen = key ? strnlen(key, GB_SNAPSHOT_MAX_KEY + 1) : 0;
        if (klen == 0 || klen > GB_SNAPSHOT_MAX_KEY)
            return gb_error_set(err, code, "checkpoint metadata %zu: key must be 1 to %d bytes",
                                i, GB_SNAPSHOT_MAX_KEY);
        for (size_t j = 0; j < klen; j++) {
            char c = key[j];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-'))
                return gb_error_set(err, code,
                                    "checkpoint metadata key '%.*s': byte %zu is not one of "
                                    "[A-Za-z0-9_.:-]",
                                    (int)klen, key, j);
        }
        if (!value)
            return gb_error_set(err, code, "checkpoint metadata '%s': value is missing", key);
        size_t vlen = strnlen(value, GB_SNAPSHOT_MAX_VALUE + 1);
        size_t bad;
        if (vlen > GB_SNAPSHOT_MAX_VALUE)
            return gb_error_set(err, code, "checkpoint metadata '%s': value longer than %d bytes",
                                key, GB_SNAPSHOT_MAX_VALUE);
        if (!gb_wire_text_ok(value, vlen, false, &bad))
            return gb_error_set(err, code,
                                "checkpoint metadata '%s': control character or bad UTF-8 at "
                                "byte %zu",
                                key, bad);
        for (size_t j = 0; j < i; j++)
            if (strcmp(kv[j]->key, key) == 0)
                return gb_error_set(err, code, "checkpoint metadata key '%s' appears twice", key);
    }
    return 0;
}

/* Every check of a Checkpoint message, on the message itself: bounded
 * fields first, then the model (its hash and spec), then the state values,
 * which cost time in proportion to the model. `code` is what a bad field is
 * (GB_EINVAL from a caller, GB_EFORMAT from a file); the model's own checks
 * keep gb_snapshot_check_message's codes. */
static int s_check_message(const Glassbox__Checkpoint *m, int code, gb_error_t *err)
{
    if (m->format_version != GB_CHECKPOINT_FORMAT_VERSION)
        return m->format_version == 0
            ? gb_error_set(err, GB_EFORMAT, "checkpoint has no format version")
            : gb_error_set(err, GB_EPROTO,
                           "checkpoint format version %u is not supported (this build reads "
                           "version %u)",
                           (unsigned)m->format_version, GB_CHECKPOINT_FORMAT_VERSION);
    if (m->saved_unix_ms > S_MAX_UNIX_MS)
        return gb_error_set(err, code,
                            "checkpoint saved_unix_ms %" PRIu64 " is after the year 9999",
                            m->saved_unix_ms);
    if (m->next_task_id == 0 || m->next_task_id > GB_ROUNDS_MAX_TASK_ID_BASE + 1)
        return gb_error_set(err, code, "checkpoint next_task_id %" PRIu64 " must be 1 to %" PRIu64,
                            m->next_task_id, (uint64_t)GB_ROUNDS_MAX_TASK_ID_BASE + 1);
    gb_error_t local;
    gb_error_clear(&local);
    if (gb_pki_check_name(m->federation, "federation name", &local) != 0)
        return gb_error_set(err, code, "checkpoint: %s", local.msg);
    gb_agg_spec_t agg;
    if (gb_agg_spec_parse(m->aggregator, &agg, &local) != 0)
        return gb_error_set(err, code, "checkpoint: %s", local.msg);
    gb_server_optim_cfg_t opt;
    if (gb_server_optim_parse(m->server_optimizer, &opt, &local) != 0)
        return gb_error_set(err, code, "checkpoint: %s", local.msg);
    int rc = s_check_meta(m->metadata, m->n_metadata, code, err);
    if (rc != 0)
        return rc;

    if (!m->model)
        return gb_error_set(err, code, "checkpoint has no model");
    rc = gb_snapshot_check_message(m->model, &local);
    if (rc != 0)
        return gb_error_set(err, rc, "checkpoint model: %s", local.msg);
    if (m->model->round != m->round)
        return gb_error_set(err, code,
                            "checkpoint is for round %" PRIu64 " but its model says round %" PRIu64,
                            m->round, m->model->round);

    size_t n = (size_t)m->model->param_count; /* checked against params by the model check */
    size_t want = opt.kind == GB_SERVER_SGD ? 0 : 2 * n;
    const char *name = gb_server_optim_kind_name(opt.kind);
    if (m->server_optimizer_state.len % sizeof(float) != 0 ||
        m->server_optimizer_state.len / sizeof(float) != want)
        return gb_error_set(err, GB_ESHAPE,
                            "checkpoint %s state is %zu bytes, expected %zu (%s for %zu "
                            "parameters)",
                            name, m->server_optimizer_state.len, want * sizeof(float),
                            want ? "m then v" : "none", n);
    const uint8_t *st = m->server_optimizer_state.data;
    size_t bad = gb_wire_first_nonfinite(st, want);
    if (bad < want) {
        float v = gb_wire_float_le(st + 4 * bad);
        return gb_error_set(err, GB_ERANGE, "checkpoint %s state %s[%zu] is %s", name,
                            bad < n ? "m" : "v", bad < n ? bad : bad - n,
                            isnan(v) ? "NaN" : "infinite");
    }
    for (size_t i = n; i < want; i++) {
        float v = gb_wire_float_le(st + 4 * i);
        if (v < 0.0f)
            return gb_error_set(err, GB_ERANGE, "checkpoint %s state v[%zu] is negative (%g)",
                                name, i - n, (double)v);
    }
    return 0;
}

/* ---- memory ------------------------------------------------------------- */

void gb_checkpoint_destroy(gb_checkpoint_t **c)
{
    if (!c || !*c)
        return;
    gb_checkpoint_t *p = *c;
    for (size_t i = 0; i < p->n_meta; i++) {
        gb_free(p->meta[i].key);
        gb_free(p->meta[i].value);
    }
    gb_free(p->meta);
    gb_free(p->federation);
    gb_free(p->optim_state);
    gb_free(p->server_optimizer);
    gb_free(p->aggregator);
    gb_free(p->params);
    gb_free(p->spec);
    gb_free(p);
    *c = NULL;
}

/* ---- encode ------------------------------------------------------------- */

int gb_checkpoint_encode(const gb_checkpoint_t *c, uint8_t **buf, size_t *len, gb_error_t *err)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!c || !buf || !len || !c->spec || (!c->params && c->n_params > 0) ||
        (!c->optim_state && c->n_optim_state > 0) || (!c->meta && c->n_meta > 0))
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_encode: NULL argument");
    if (c->n_params > GB_SNAPSHOT_MAX_BYTES / sizeof(float) ||
        c->n_optim_state > 2 * (GB_SNAPSHOT_MAX_BYTES / sizeof(float)))
        return gb_error_set(err, GB_ERANGE,
                            "checkpoint of %zu parameters and %zu state values is too big",
                            c->n_params, c->n_optim_state);

    int rc = 0;
    uint8_t *params_le = NULL, *state_le = NULL, *out = NULL;
    Glassbox__KeyValue *kv = NULL;
    Glassbox__KeyValue **kvp = NULL;
    const uint8_t *pview = NULL, *sview = NULL;
    gb_snapshot_view_t *view = NULL; /* the embedded model */
    char when[32];

    if (s_le_view(c->params, c->n_params, &pview, &params_le) != 0 ||
        s_le_view(c->optim_state, c->n_optim_state, &sview, &state_le) != 0) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory encoding a checkpoint");
        goto cleanup;
    }

    /* The embedded model, with deterministic provenance. */
    if (c->saved_unix_ms > S_MAX_UNIX_MS) {
        rc = gb_error_set(err, GB_EINVAL,
                          "checkpoint saved_unix_ms %" PRIu64 " is after the year 9999",
                          c->saved_unix_ms);
        goto cleanup;
    }
    rc = s_rfc3339(c->saved_unix_ms, when, sizeof when, err);
    if (rc != 0)
        goto cleanup;
    /* The embedded model is net/snapshot.c's view of a snapshot over the
     * caller's parameters, as in every Task and Publication; its checks
     * (spec, count, finite values) run before the checkpoint's own, and a
     * failure keeps its code under a "checkpoint model: " prefix. */
    const char *preset = gb_spec_preset(c->spec);
    gb_snapshot_meta_t model_meta[2] = {
        {(char *)GB_SNAPSHOT_META_CREATED_AT, when},
        {(char *)GB_SNAPSHOT_META_VERSION, (char *)GLASSBOX_VERSION},
    };
    const gb_snapshot_t snap = {
        .spec = (char *)(preset ? preset : c->spec), /* only read */
        .params = c->params,
        .n_params = c->n_params,
        .round = c->round,
        .meta = model_meta,
        .n_meta = 2,
    };
    view = gb_malloc(sizeof *view);
    if (!view) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory encoding a checkpoint");
        goto cleanup;
    }
    gb_error_t local;
    gb_error_clear(&local);
    rc = gb_snapshot_view_le(&snap, pview, view, &local);
    if (rc != 0) {
        rc = gb_error_set(err, rc, "checkpoint model: %s", local.msg);
        goto cleanup;
    }

    Glassbox__Checkpoint msg = GLASSBOX__CHECKPOINT__INIT;
    msg.format_version = GB_CHECKPOINT_FORMAT_VERSION;
    msg.model = &view->msg;
    msg.round = c->round;
    /* protobuf-c only reads these strings; NULL ones are refused by the check. */
    msg.aggregator = c->aggregator;
    msg.server_optimizer = c->server_optimizer;
    msg.server_optimizer_state.data = (uint8_t *)sview;
    msg.server_optimizer_state.len = c->n_optim_state * sizeof(float);
    msg.server_optimizer_steps = c->optim_steps;
    msg.next_task_id = c->next_task_id;
    msg.federation = c->federation;
    msg.saved_unix_ms = c->saved_unix_ms;
    if (c->n_meta > 0) {
        kv = gb_calloc(c->n_meta, sizeof *kv);
        kvp = gb_calloc(c->n_meta, sizeof *kvp);
        if (!kv || !kvp) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory encoding a checkpoint");
            goto cleanup;
        }
        for (size_t i = 0; i < c->n_meta; i++) {
            glassbox__key_value__init(&kv[i]);
            kv[i].key = c->meta[i].key;
            kv[i].value = c->meta[i].value;
            kvp[i] = &kv[i];
        }
        msg.n_metadata = c->n_meta;
        msg.metadata = kvp;
    }
    rc = s_check_message(&msg, GB_EINVAL, err);
    if (rc != 0)
        goto cleanup;

    /* Fields 1..11, then the sha256 field over exactly those bytes. */
    size_t body = glassbox__checkpoint__get_packed_size(&msg);
    if (body > GB_CHECKPOINT_MAX_BYTES - S_TRAILER_LEN) {
        rc = gb_error_set(err, GB_ERANGE, "checkpoint would be %zu bytes, more than %zu",
                          body + S_TRAILER_LEN, GB_CHECKPOINT_MAX_BYTES);
        goto cleanup;
    }
    out = gb_malloc(body + S_TRAILER_LEN);
    if (!out) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory for a %zu-byte checkpoint",
                          body + S_TRAILER_LEN);
        goto cleanup;
    }
    size_t written = glassbox__checkpoint__pack(&msg, out);
    if (written != body) {
        rc = gb_error_set(err, GB_EFORMAT, "protobuf-c packed %zu bytes, expected %zu", written,
                          body);
        goto cleanup;
    }
    out[body] = S_TRAILER_TAG;
    out[body + 1] = GB_WIRE_SHA256_LEN;
    rc = gb_wire_sha256(out, body, out + body + 2, err);
    if (rc != 0)
        goto cleanup;
    *buf = out;
    *len = body + S_TRAILER_LEN;
    out = NULL;

cleanup:
    gb_free(out);
    gb_free(view);
    gb_free(kvp);
    gb_free(kv);
    gb_free(state_le);
    gb_free(params_le);
    return rc;
}

/* ---- decode ------------------------------------------------------------- */

/* Copies the checked message out into a new gb_checkpoint_t. */
static int s_copy_out(const Glassbox__Checkpoint *m, gb_checkpoint_t **out, gb_error_t *err)
{
    gb_checkpoint_t *c = gb_calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    size_t n = m->model->params.len / sizeof(float);
    size_t ns = m->server_optimizer_state.len / sizeof(float);
    c->spec = gb_strdup(m->model->spec);
    c->params = gb_malloc(n ? n * sizeof(float) : 1);
    c->aggregator = gb_strdup(m->aggregator);
    c->server_optimizer = gb_strdup(m->server_optimizer);
    c->federation = gb_strdup(m->federation);
    if (!c->spec || !c->params || !c->aggregator || !c->server_optimizer || !c->federation)
        goto nomem;
    gb_wire_floats_from_le(c->params, m->model->params.data, n);
    c->n_params = n;
    if (ns > 0) {
        c->optim_state = gb_malloc(ns * sizeof(float));
        if (!c->optim_state)
            goto nomem;
        gb_wire_floats_from_le(c->optim_state, m->server_optimizer_state.data, ns);
        c->n_optim_state = ns;
    }
    c->round = m->round;
    c->optim_steps = m->server_optimizer_steps;
    c->next_task_id = m->next_task_id;
    c->saved_unix_ms = m->saved_unix_ms;
    if (m->n_metadata > 0) {
        c->meta = gb_calloc(m->n_metadata, sizeof *c->meta);
        if (!c->meta)
            goto nomem;
        for (size_t i = 0; i < m->n_metadata; i++) {
            c->meta[i].key = gb_strdup(m->metadata[i]->key);
            c->meta[i].value = gb_strdup(m->metadata[i]->value);
            c->n_meta = i + 1;
            if (!c->meta[i].key || !c->meta[i].value)
                goto nomem;
        }
    }
    *out = c;
    return 0;

nomem:
    gb_checkpoint_destroy(&c);
    return gb_error_set(err, GB_ENOMEM, "out of memory decoding a checkpoint");
}

int gb_checkpoint_decode(const uint8_t *buf, size_t len, gb_checkpoint_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_decode: NULL output");
    *out = NULL;
    if (!buf && len > 0)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_decode: NULL buffer");
    if (len > GB_CHECKPOINT_MAX_BYTES)
        return gb_error_set(err, GB_ERANGE, "checkpoint is %zu bytes, more than the limit of %zu",
                            len, GB_CHECKPOINT_MAX_BYTES);
    if (len < S_TRAILER_LEN || buf[len - S_TRAILER_LEN] != S_TRAILER_TAG ||
        buf[len - S_TRAILER_LEN + 1] != GB_WIRE_SHA256_LEN)
        return gb_error_set(err, GB_EFORMAT,
                            "checkpoint of %zu bytes does not end with its SHA-256 (truncated, "
                            "or not a checkpoint)",
                            len);
    size_t body = len - S_TRAILER_LEN;
    uint8_t digest[GB_WIRE_SHA256_LEN];
    int rc = gb_wire_sha256(buf, body, digest, err);
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(digest, buf + body + 2, GB_WIRE_SHA256_LEN) != 0)
        return gb_error_set(err, GB_EINTEGRITY,
                            "checkpoint does not match its SHA-256 (damaged)");

    gb_wire_budget_t budget = gb_wire_budget(len);
    ProtobufCAllocator alloc = gb_wire_budget_allocator(&budget);
    Glassbox__Checkpoint *m = glassbox__checkpoint__unpack(&alloc, len, buf);
    if (!m) {
        if (budget.out_of_mem)
            return gb_error_set(err, GB_ENOMEM, "out of memory decoding a checkpoint");
        if (budget.over)
            return gb_error_set(err, GB_EFORMAT,
                                "checkpoint of %zu bytes needs too much memory to unpack (more "
                                "than %zu bytes)",
                                len, budget.limit);
        return gb_error_set(err, GB_EFORMAT, "checkpoint of %zu bytes does not unpack", len);
    }
    /* The hash matched the bytes, so this only differs if field 15 also
     * appeared earlier; the last one wins in protobuf, and it is checked. */
    if (m->sha256.len != GB_WIRE_SHA256_LEN ||
        CRYPTO_memcmp(m->sha256.data, buf + body + 2, GB_WIRE_SHA256_LEN) != 0)
        rc = gb_error_set(err, GB_EFORMAT, "checkpoint has a second sha256 field");
    if (rc == 0)
        rc = s_check_message(m, GB_EFORMAT, err);
    if (rc == 0)
        rc = s_copy_out(m, out, err);
    glassbox__checkpoint__free_unpacked(m, &alloc);
    return rc;
}

/* ---- files -------------------------------------------------------------- */

/* gb_checkpoint_load without the log line: load_latest says more. */
static int s_load_path(const char *path, gb_checkpoint_t **out, gb_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = gb_file_read_all(path, GB_CHECKPOINT_MAX_BYTES, &buf, &len, err);
    if (rc == 0) {
        rc = gb_checkpoint_decode(buf, len, out, err);
        if (rc != 0)
            gb_error_prefix(err, rc, "'%s': ", path);
    }
    gb_free(buf);
    return rc;
}

int gb_checkpoint_load(const char *path, gb_checkpoint_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_load: NULL output");
    *out = NULL;
    if (!path)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_load: NULL path");
    gb_error_t local;
    gb_error_clear(&local);
    int rc = s_load_path(path, out, &local);
    if (rc != 0) {
        if (rc != GB_ENOMEM)
            gb_log_warn("checkpoint file rejected: %s", local.msg);
        gb_error_set(err, rc, "%s", local.msg);
    }
    return rc;
}

/* Rounds of the files PREFIX ROUND SUFFIX in dir, in *rounds (gb_free), or
 * an error. */
static int s_list(const char *dir, const char *prefix, const char *suffix, uint64_t **rounds,
                  size_t *n, gb_error_t *err)
{
    *rounds = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return gb_error_set(err, GB_EIO, "cannot list checkpoint directory '%s': %s", dir,
                            strerror(errno));
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t r;
        if (!s_parse_name(e->d_name, strlen(e->d_name), prefix, suffix, &r))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            uint64_t *grown = gb_realloc(*rounds, ncap * sizeof *grown);
            if (!grown) {
                rc = gb_error_set(err, GB_ENOMEM, "out of memory listing '%s'", dir);
                break;
            }
            *rounds = grown;
            cap = ncap;
        }
        (*rounds)[(*n)++] = r;
    }
    closedir(d);
    if (rc != 0) {
        gb_free(*rounds);
        *rounds = NULL;
        *n = 0;
    }
    return rc;
}

static int s_cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* dir/PREFIX ROUND SUFFIX in a new buffer, or NULL. */
static char *s_file(const char *dir, const char *prefix, uint64_t round, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "%s%" PRIu64 "%s", prefix, round, suffix);
    return s_join(dir, name);
}

/* Removes the PREFIX ROUND SUFFIX files of rounds below `round` except the
 * newest keep - 1. Failures are logged: the new checkpoint is already safe. */
static void s_prune_kind(const char *dir, const char *prefix, const char *suffix, uint64_t round,
                         size_t keep)
{
    uint64_t *rounds = NULL;
    size_t n = 0;
    gb_error_t err;
    gb_error_clear(&err);
    if (s_list(dir, prefix, suffix, &rounds, &n, &err) != 0) {
        gb_log_warn("checkpoint: not pruning old files: %s", err.msg);
        return;
    }
    if (n > 1)
        qsort(rounds, n, sizeof *rounds, s_cmp_desc);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (rounds[i] >= round)
            continue; /* this one, or a later round of a rolled-back run */
        if (++kept < keep)
            continue;
        char *path = s_file(dir, prefix, rounds[i], suffix);
        if (!path) {
            gb_log_warn("checkpoint: out of memory pruning '%s'", dir);
            break;
        }
        if (unlink(path) != 0 && errno != ENOENT)
            gb_log_warn("checkpoint: cannot remove old '%s': %s", path, strerror(errno));
        else
            gb_log_debug("checkpoint: removed old '%s'", path);
        gb_free(path);
    }
    gb_free(rounds);
}

/* True for a temporary file gb_file_write_atomic leaves when a save of ours
 * is interrupted: "." NAME ".tmp-" and six characters, NAME one of ours. */
static bool s_is_stale_tmp(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 + 5 + 6 || name[0] != '.' || memcmp(name + len - 11, ".tmp-", 5) != 0)
        return false;
    const char *base = name + 1;
    size_t blen = len - 1 - 11;
    uint64_t r;
    return (blen == strlen(GB_CHECKPOINT_LATEST) &&
            memcmp(base, GB_CHECKPOINT_LATEST, blen) == 0) ||
           s_parse_name(base, blen, S_CKPT_PREFIX, S_CKPT_SUFFIX, &r) ||
           s_parse_name(base, blen, S_MODEL_PREFIX, S_MODEL_SUFFIX, &r);
}

static void s_remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!s_is_stale_tmp(e->d_name))
            continue;
        char *path = s_join(dir, e->d_name);
        if (path && unlink(path) == 0)
            gb_log_info("checkpoint: removed '%s', left by an interrupted save", path);
        gb_free(path);
    }
    closedir(d);
}

/* Bytes of dir's checkpoint and model files (what pruning frees). */
static uint64_t s_bytes_held(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t held = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t r;
        size_t len = strlen(e->d_name);
        if (!s_parse_name(e->d_name, len, S_CKPT_PREFIX, S_CKPT_SUFFIX, &r) &&
            !s_parse_name(e->d_name, len, S_MODEL_PREFIX, S_MODEL_SUFFIX, &r))
            continue;
        char *path = s_join(dir, e->d_name);
        struct stat st;
        if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            held += (uint64_t)st.st_size;
        gb_free(path);
    }
    closedir(d);
    return held;
}

int gb_checkpoint_check_room(const char *dir, uint64_t per_checkpoint, size_t keep,
                             gb_error_t *err)
{
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0)
        return gb_error_set(err, GB_EIO, "checkpoint directory '%s': %s", dir, strerror(errno));
    uint64_t free_bytes = (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize;
    uint64_t held = s_bytes_held(dir);
    uint64_t need = per_checkpoint * ((uint64_t)keep + 1);
    if (free_bytes + held >= need)
        return 0;
    return gb_error_set(err, GB_ERANGE, "checkpoint directory '%s' cannot hold %zu checkpoints of "
                        "this model: they need about %" PRIu64 " KiB (%zu kept and one written "
                        "beside them, %" PRIu64 " KiB each), and it has %" PRIu64 " KiB free "
                        "with %" PRIu64 " KiB in checkpoints already there; free %" PRIu64
                        " KiB, or lower --keep", dir, keep, need >> 10, keep,
                        per_checkpoint >> 10, free_bytes >> 10, held >> 10,
                        (need - free_bytes - held + 1023) >> 10);
}

/* GB_EIO unless dir is a directory (logged when `warn`). */
static int s_check_dir(const char *dir, bool warn, gb_error_t *err)
{
    struct stat st;
    const char *what = NULL;
    if (stat(dir, &st) != 0)
        what = errno == ENOENT ? "does not exist" : strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        what = "is not a directory";
    if (!what)
        return 0;
    return warn ? gb_error_warn(err, GB_EIO, "checkpoint directory '%s': %s", dir, what)
                : gb_error_set(err, GB_EIO, "checkpoint directory '%s': %s", dir, what);
}

int gb_checkpoint_save(const char *dir, const gb_checkpoint_t *c, size_t keep, gb_error_t *err)
{
    if (!dir || !*dir || !c)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_save: NULL argument");
    if (keep < 1)
        return gb_error_set(err, GB_EINVAL, "checkpoint: keep must be at least 1, got 0");
    gb_checkpoint_t stamped = *c;
    if (stamped.saved_unix_ms == 0)
        stamped.saved_unix_ms = s_now_ms();

    uint8_t *buf = NULL;
    size_t len = 0;
    char *ckpt = NULL, *model = NULL, *latest = NULL;
    char when[32];
    int rc = gb_checkpoint_encode(&stamped, &buf, &len, err);
    if (rc != 0) {
        gb_error_prefix(err, rc, "saving a checkpoint of round %" PRIu64 " in '%s': ", c->round,
                        dir);
        goto cleanup;
    }
    rc = s_check_dir(dir, false, err);
    if (rc != 0)
        goto cleanup;
    ckpt = s_file(dir, S_CKPT_PREFIX, c->round, S_CKPT_SUFFIX);
    model = s_file(dir, S_MODEL_PREFIX, c->round, S_MODEL_SUFFIX);
    latest = s_join(dir, GB_CHECKPOINT_LATEST);
    if (!ckpt || !model || !latest) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory saving a checkpoint");
        goto cleanup;
    }
    rc = gb_file_write_atomic(ckpt, buf, len, GB_CHECKPOINT_FILE_MODE, err);
    if (rc != 0)
        goto cleanup;
    gb_crash_point("checkpoint-file");

    /* The model file: the same bytes of model, through the model file codec. */
    rc = s_rfc3339(stamped.saved_unix_ms, when, sizeof when, err);
    if (rc != 0)
        goto cleanup;
    const char *preset = gb_spec_preset(c->spec);
    gb_snapshot_meta_t meta[2] = {
        {(char *)GB_SNAPSHOT_META_CREATED_AT, when},
        {(char *)GB_SNAPSHOT_META_VERSION, (char *)GLASSBOX_VERSION},
    };
    gb_snapshot_t snap = {
        .spec = (char *)(preset ? preset : c->spec),
        .params = c->params,
        .n_params = c->n_params,
        .round = c->round,
        .meta = meta,
        .n_meta = 2,
    };
    rc = gb_snapshot_save(model, &snap, err);
    if (rc != 0)
        goto cleanup;
    gb_crash_point("model-file");

    /* The commit point. */
    char name[64];
    int nl = snprintf(name, sizeof name, S_CKPT_PREFIX "%" PRIu64 S_CKPT_SUFFIX "\n", c->round);
    rc = gb_file_write_atomic(latest, name, (size_t)nl, GB_CHECKPOINT_FILE_MODE, err);
    if (rc != 0)
        goto cleanup;
    gb_crash_point("latest");
    gb_log_info("checkpoint: saved round %" PRIu64 " as '%s' (%zu bytes) and '%s'", c->round,
                ckpt, len, model);

    s_prune_kind(dir, S_CKPT_PREFIX, S_CKPT_SUFFIX, c->round, keep);
    s_prune_kind(dir, S_MODEL_PREFIX, S_MODEL_SUFFIX, c->round, keep);
    s_remove_stale_tmp(dir);

cleanup:
    gb_free(latest);
    gb_free(model);
    gb_free(ckpt);
    gb_free(buf);
    return rc;
}

/* Loads dir's checkpoint of `round` and checks it holds that round. */
static int s_load_round(const char *dir, uint64_t round, gb_checkpoint_t **out, gb_error_t *err)
{
    char *path = s_file(dir, S_CKPT_PREFIX, round, S_CKPT_SUFFIX);
    if (!path)
        return gb_error_set(err, GB_ENOMEM, "out of memory loading a checkpoint");
    int rc = s_load_path(path, out, err);
    if (rc == 0 && (*out)->round != round) {
        rc = gb_error_set(err, GB_EFORMAT,
                          "'%s' holds round %" PRIu64 ", not the round its name says", path,
                          (*out)->round);
        gb_checkpoint_destroy(out);
    }
    gb_free(path);
    return rc;
}

/* Reads dir/latest: 1 with *round when it names a checkpoint file, 0 when it
 * does not exist, or a negative code with `why` filled. */
static int s_read_latest(const char *dir, uint64_t *round, gb_error_t *why)
{
    char *path = s_join(dir, GB_CHECKPOINT_LATEST);
    if (!path)
        return gb_error_set(why, GB_ENOMEM, "out of memory loading a checkpoint");
    struct stat st;
    int rc;
    if (lstat(path, &st) != 0 && errno == ENOENT) {
        rc = 0;
    } else {
        uint8_t *text = NULL;
        size_t len = 0;
        rc = gb_file_read_all(path, S_LATEST_MAX, &text, &len, why);
        if (rc == 0) {
            size_t nlen = len > 0 && text[len - 1] == '\n' ? len - 1 : len;
            if (s_parse_name((const char *)text, nlen, S_CKPT_PREFIX, S_CKPT_SUFFIX, round))
                rc = 1;
            else
                rc = gb_error_set(why, GB_EFORMAT,
                                  "'%s' does not hold a checkpoint file name "
                                  "(\"checkpoint-ROUND.gbc\")",
                                  path);
        } else if (rc == GB_ERANGE) {
            rc = GB_EFORMAT; /* too long to be a name: garbage, not a value */
        }
        gb_free(text);
    }
    gb_free(path);
    return rc;
}

/* Whether a failure to load the latest checkpoint lets an older one stand
 * in: only damage does. */
static bool s_may_fall_back(int rc)
{
    return rc != GB_ENOMEM && rc != GB_EPROTO;
}

int gb_checkpoint_load_latest(const char *dir, gb_checkpoint_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_load_latest: NULL output");
    *out = NULL;
    if (!dir || !*dir)
        return gb_error_set(err, GB_EINVAL, "gb_checkpoint_load_latest: NULL directory");
    int rc = s_check_dir(dir, true, err);
    if (rc != 0)
        return rc;

    gb_error_t why; /* what is wrong with the latest checkpoint */
    gb_error_clear(&why);
    uint64_t latest_round = 0;
    int have = s_read_latest(dir, &latest_round, &why);
    if (have == GB_ENOMEM)
        return gb_error_set(err, GB_ENOMEM, "%s", why.msg);
    if (have == 1) {
        rc = s_load_round(dir, latest_round, out, &why);
        if (rc == 0)
            return 0;
        if (!s_may_fall_back(rc))
            return gb_error_set(err, rc, "%s", why.msg);
        gb_log_error("checkpoint: the latest checkpoint is unusable: %s", why.msg);
    } else if (have < 0) {
        gb_log_error("checkpoint: %s", why.msg);
    }

    /* `latest` is missing, garbage, or names a damaged file: older files. */
    uint64_t *rounds = NULL;
    size_t n = 0;
    gb_error_t local;
    gb_error_clear(&local);
    rc = s_list(dir, S_CKPT_PREFIX, S_CKPT_SUFFIX, &rounds, &n, &local);
    if (rc != 0)
        return gb_error_set(err, rc, "%s", local.msg);
    if (have == 0 && n == 0) {
        gb_free(rounds);
        gb_log_info("checkpoint: no checkpoint in '%s': starting afresh", dir);
        return 0;
    }
    if (have == 0) {
        why.code = GB_EIO;
        snprintf(why.msg, sizeof why.msg, "'%s/%s' is missing", dir, GB_CHECKPOINT_LATEST);
        gb_log_error("checkpoint: '%s' holds checkpoint files but no '%s'", dir,
                     GB_CHECKPOINT_LATEST);
    }
    if (n > 1)
        qsort(rounds, n, sizeof *rounds, s_cmp_desc);
    size_t tried = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (have == 1 && rounds[i] >= latest_round)
            continue; /* only older ones; a later one was never committed */
        tried++;
        rc = s_load_round(dir, rounds[i], out, &local);
        if (rc == 0) {
            gb_log_warn("checkpoint: resuming from '%s/" S_CKPT_PREFIX "%" PRIu64 S_CKPT_SUFFIX
                        "' (round %" PRIu64 "), the newest intact checkpoint, because %s",
                        dir, rounds[i], rounds[i], why.msg);
            break;
        }
        if (!s_may_fall_back(rc))
            break;
        gb_log_warn("checkpoint: an older checkpoint is unusable too: %s", local.msg);
        rc = 0; /* try the next older one */
    }
    gb_free(rounds);
    if (*out)
        return 0;
    if (rc != 0)
        return gb_error_set(err, rc, "%s", local.msg);
    return gb_error_set(err, why.code ? why.code : GB_EFORMAT,
                        "no intact checkpoint in '%s' (%zu other checkpoint file%s tried, none "
                        "usable): %s",
                        dir, tried, tried == 1 ? "" : "s", why.msg);
}
