/* Chunked transfers (see chunk.h).
 *
 * Both ends hash as the bytes pass (one EVP_MD_CTX per object, made once),
 * so the SHA-256 costs no second pass over a transfer that may be hundreds
 * of megabytes, and neither end holds more than one copy of it: the sender
 * packs each chunk straight from the caller's payload into the caller's
 * frame buffer, the receiver copies each chunk's data into the one buffer it
 * allocated when the first chunk announced the total.
 *
 * The reassembler is strict rather than clever: in-order chunks only, no
 * reordering buffer, no resumption. The channel underneath is a TLS stream
 * that neither reorders nor loses records, so anything out of order is a
 * broken or hostile peer, and the cheapest safe answer is to drop the whole
 * transfer and say why. */
#include "net/chunk.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"

#if defined(__has_include)
#if __has_include("net/channel.h")
#include "net/channel.h"
_Static_assert(GB_ENVELOPE_MAX_BYTES == GB_CHANNEL_DEFAULT_MAX_MESSAGE,
               "an Envelope frame and a channel message must have the same size limit");
#endif
#endif

/* ---- sender -------------------------------------------------------------- */

struct gb_chunker {
    size_t chunk_size;      /* data bytes per chunk */
    uint64_t last_id;       /* id of the latest transfer started (0: none yet) */
    const uint8_t *payload; /* borrowed bytes of the transfer in progress, or NULL */
    size_t len;             /* bytes in payload */
    uint32_t count;         /* chunks of the transfer */
    uint32_t index;         /* next chunk to send */
    EVP_MD_CTX *md;         /* SHA-256 of the chunks sent so far */
};

gb_chunker_t *gb_chunker_new(size_t chunk_size, gb_error_t *err)
{
    if (chunk_size == 0)
        chunk_size = GB_CHUNK_DEFAULT_SIZE;
    if (chunk_size > GB_CHUNK_MAX_SIZE) {
        gb_error_set(err, GB_EINVAL, "chunk size %zu is more than the %zu that fit one frame",
                     chunk_size, GB_CHUNK_MAX_SIZE);
        return NULL;
    }
    gb_chunker_t *c = gb_calloc(1, sizeof *c);
    if (!c) {
        gb_error_set(err, GB_ENOMEM, "out of memory for a chunker");
        return NULL;
    }
    c->chunk_size = chunk_size;
    c->md = EVP_MD_CTX_new();
    if (!c->md) {
        gb_wire_openssl_error(err, GB_ENOMEM, "EVP_MD_CTX_new for a chunker");
        gb_free(c);
        return NULL;
    }
    return c;
}

void gb_chunker_destroy(gb_chunker_t **c)
{
    if (!c || !*c)
        return;
    EVP_MD_CTX_free((*c)->md);
    gb_free(*c);
    *c = NULL;
}

int gb_chunker_start(gb_chunker_t *c, const uint8_t *payload, size_t len, uint64_t *transfer_id,
                     gb_error_t *err)
{
    if (!c)
        return gb_error_set(err, GB_EINVAL, "gb_chunker_start: NULL chunker");
    c->payload = NULL;
    c->count = c->index = 0;
    if (!payload || len == 0)
        return gb_error_set(err, GB_EINVAL, "gb_chunker_start: empty payload");
    uint64_t count = ((uint64_t)len + c->chunk_size - 1) / c->chunk_size;
    if (count > UINT32_MAX)
        return gb_error_set(err, GB_ERANGE, "a transfer of %zu bytes needs %llu chunks, more "
                            "than %u", len, (unsigned long long)count, UINT32_MAX);
    if (!EVP_DigestInit_ex(c->md, EVP_sha256(), NULL))
        return gb_wire_openssl_error(err, GB_ECRYPTO, "SHA-256 init for a transfer");
    c->payload = payload;
    c->len = len;
    c->count = (uint32_t)count;
    c->last_id++;
    if (transfer_id)
        *transfer_id = c->last_id;
    return 0;
}

uint32_t gb_chunker_count(const gb_chunker_t *c)
{
    return c && c->payload ? c->count : 0;
}

size_t gb_chunker_buffer_size(const gb_chunker_t *c)
{
    return c ? c->chunk_size + GB_CHUNK_OVERHEAD : 0;
}

int gb_chunker_next(gb_chunker_t *c, uint64_t seq, uint8_t *buf, size_t cap, size_t *len,
                    gb_error_t *err)
{
    if (len)
        *len = 0;
    if (!c || !buf || !len)
        return gb_error_set(err, GB_EINVAL, "gb_chunker_next: NULL argument");
    if (seq == 0)
        return gb_error_set(err, GB_EINVAL, "gb_chunker_next: sequence 0");
    if (!c->payload || c->index >= c->count)
        return 0;
    size_t off = (size_t)c->index * c->chunk_size;
    size_t n = c->len - off < c->chunk_size ? c->len - off : c->chunk_size;
    bool last = c->index + 1 == c->count;
    uint8_t digest[GB_WIRE_SHA256_LEN];
    int rc = 0;
    if (!EVP_DigestUpdate(c->md, c->payload + off, n) ||
        (last && !EVP_DigestFinal_ex(c->md, digest, NULL))) {
        rc = gb_wire_openssl_error(err, GB_ECRYPTO, "SHA-256 of a transfer");
        goto fail;
    }

    Glassbox__TensorChunk chunk = GLASSBOX__TENSOR_CHUNK__INIT;
    chunk.transfer_id = c->last_id;
    chunk.index = c->index;
    chunk.count = c->count;
    chunk.offset = off;
    chunk.total_bytes = c->len;
    /* protobuf-c only reads through these pointers while packing. */
    chunk.data.data = (uint8_t *)(c->payload + off);
    chunk.data.len = n;
    if (last) {
        chunk.sha256.data = digest;
        chunk.sha256.len = sizeof digest;
    }
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = seq;
    env.body_case = GLASSBOX__ENVELOPE__BODY_CHUNK;
    env.chunk = &chunk;
    /* The same validation as every other envelope we send (cheap here: no
     * hash or float scan for a chunk). */
    rc = gb_envelope_validate(&env, NULL, err);
    if (rc != 0)
        goto fail;
    size_t packed = glassbox__envelope__get_packed_size(&env);
    if (packed > cap) {
        rc = gb_error_set(err, GB_EINVAL, "chunk %u of transfer %llu needs %zu bytes, the buffer "
                          "has %zu", (unsigned)c->index, (unsigned long long)c->last_id, packed,
                          cap);
        goto fail;
    }
    *len = glassbox__envelope__pack(&env, buf);
    c->index++;
    if (last)
        c->payload = NULL;
    return 1;
fail:
    c->payload = NULL;
    return rc;
}

/* ---- receiver ------------------------------------------------------------ */

struct gb_reassembler {
    uint64_t max;        /* per-transfer byte limit */
    uint64_t last_id;    /* largest transfer id ever started (0: none) */
    bool busy;           /* a transfer is open */
    uint64_t id;         /* the open transfer's id */
    uint32_t count;      /* its chunk count */
    uint32_t next;       /* index of the chunk expected next */
    uint64_t total;      /* its total_bytes */
    uint64_t received;   /* bytes received so far */
    uint8_t *buf;        /* total bytes, allocated at the first chunk */
    EVP_MD_CTX *md;      /* SHA-256 of the bytes received so far */
};

gb_reassembler_t *gb_reassembler_new(uint64_t max_transfer, gb_error_t *err)
{
    gb_reassembler_t *r = gb_calloc(1, sizeof *r);
    if (!r) {
        gb_error_set(err, GB_ENOMEM, "out of memory for a reassembler");
        return NULL;
    }
    r->max = max_transfer ? max_transfer : GB_CHUNK_DEFAULT_MAX_TRANSFER;
    r->md = EVP_MD_CTX_new();
    if (!r->md) {
        gb_wire_openssl_error(err, GB_ENOMEM, "EVP_MD_CTX_new for a reassembler");
        gb_free(r);
        return NULL;
    }
    return r;
}

void gb_reassembler_reset(gb_reassembler_t *r)
{
    if (!r)
        return;
    gb_free(r->buf);
    r->buf = NULL;
    r->busy = false;
    r->id = r->total = r->received = 0;
    r->count = r->next = 0;
}

void gb_reassembler_destroy(gb_reassembler_t **r)
{
    if (!r || !*r)
        return;
    gb_reassembler_reset(*r);
    EVP_MD_CTX_free((*r)->md);
    gb_free(*r);
    *r = NULL;
}

uint64_t gb_reassembler_max_transfer(const gb_reassembler_t *r)
{
    return r ? r->max : 0;
}

bool gb_reassembler_busy(const gb_reassembler_t *r)
{
    return r && r->busy;
}

/* Fails the open transfer (if any): frees it, logs and fills err with
 * "transfer <id> chunk <index>: <why>". */
static int s_refuse(gb_reassembler_t *r, const Glassbox__TensorChunk *c, int code,
                    gb_error_t *err, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int s_refuse(gb_reassembler_t *r, const Glassbox__TensorChunk *c, int code,
                    gb_error_t *err, const char *fmt, ...)
{
    char why[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    gb_reassembler_reset(r);
    return gb_error_warn(err, code, "transfer %llu chunk %u of %u refused: %s",
                         (unsigned long long)c->transfer_id, (unsigned)c->index,
                         (unsigned)c->count, why);
}

/* The first chunk of a transfer: checks the id and the size, then allocates
 * the whole once. */
static int s_open(gb_reassembler_t *r, const Glassbox__TensorChunk *c, gb_error_t *err)
{
    if (c->index != 0)
        return s_refuse(r, c, GB_EFORMAT, err,
                        "no transfer is open, so chunk 0 was expected (first chunks missing)");
    if (c->transfer_id <= r->last_id)
        return s_refuse(r, c, GB_EFORMAT, err,
                        "transfer id is not above the previous one, %llu (replayed or reused)",
                        (unsigned long long)r->last_id);
    if (c->total_bytes > r->max)
        return s_refuse(r, c, GB_ERANGE, err, "total_bytes %llu is more than the limit of %llu",
                        (unsigned long long)c->total_bytes, (unsigned long long)r->max);
    r->last_id = c->transfer_id;
    r->buf = gb_malloc((size_t)c->total_bytes);
    if (!r->buf)
        return s_refuse(r, c, GB_ENOMEM, err, "out of memory for %llu bytes",
                        (unsigned long long)c->total_bytes);
    if (!EVP_DigestInit_ex(r->md, EVP_sha256(), NULL)) {
        gb_error_t local;
        gb_wire_openssl_error(&local, GB_ECRYPTO, "SHA-256 init");
        return s_refuse(r, c, GB_ECRYPTO, err, "%s", local.msg);
    }
    r->busy = true;
    r->id = c->transfer_id;
    r->count = c->count;
    r->total = c->total_bytes;
    r->received = 0;
    r->next = 0;
    return 0;
}

int gb_reassembler_feed(gb_reassembler_t *r, const Glassbox__TensorChunk *c, uint8_t **out,
                        size_t *out_len, gb_error_t *err)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!r || !c || !out || !out_len)
        return gb_error_set(err, GB_EINVAL, "gb_reassembler_feed: NULL argument");
    /* The envelope decoder checked these; the memcpy below depends on them,
     * so they are checked again rather than trusted. */
    if (c->transfer_id == 0 || c->count == 0 || c->index >= c->count || c->data.len == 0 ||
        !c->data.data || c->offset > c->total_bytes ||
        c->data.len > c->total_bytes - c->offset)
        return s_refuse(r, c, GB_EFORMAT, err, "ids, counts or lengths are inconsistent");

    if (!r->busy) {
        int rc = s_open(r, c, err);
        if (rc != 0)
            return rc;
    } else if (c->transfer_id != r->id) {
        return s_refuse(r, c, GB_EFORMAT, err, "transfer %llu is still open (one at a time)",
                        (unsigned long long)r->id);
    }
    if (c->index != r->next)
        return s_refuse(r, c, GB_EFORMAT, err, "chunk %u was expected (%s)", (unsigned)r->next,
                        c->index < r->next ? "duplicate" : "gap");
    if (c->count != r->count || c->total_bytes != r->total)
        return s_refuse(r, c, GB_EFORMAT, err,
                        "count %u and total_bytes %llu differ from the first chunk's %u and "
                        "%llu", (unsigned)c->count, (unsigned long long)c->total_bytes,
                        (unsigned)r->count, (unsigned long long)r->total);
    if (c->offset != r->received)
        return s_refuse(r, c, GB_EFORMAT, err, "offset %llu, expected %llu (%s)",
                        (unsigned long long)c->offset, (unsigned long long)r->received,
                        c->offset < r->received ? "overlap" : "gap");
    bool last = c->index + 1 == c->count;
    if (!last && c->data.len == r->total - r->received)
        return s_refuse(r, c, GB_EFORMAT, err, "the data is complete before the last chunk");
    if (last && c->data.len != r->total - r->received)
        return s_refuse(r, c, GB_EFORMAT, err, "the last chunk ends at byte %llu of %llu",
                        (unsigned long long)(c->offset + c->data.len),
                        (unsigned long long)r->total);
    if (last && (c->sha256.len != GB_WIRE_SHA256_LEN || !c->sha256.data))
        return s_refuse(r, c, GB_EFORMAT, err, "the last chunk has no 32-byte SHA-256");

    memcpy(r->buf + r->received, c->data.data, c->data.len);
    uint8_t digest[GB_WIRE_SHA256_LEN];
    if (!EVP_DigestUpdate(r->md, c->data.data, c->data.len) ||
        (last && !EVP_DigestFinal_ex(r->md, digest, NULL))) {
        gb_error_t local;
        gb_wire_openssl_error(&local, GB_ECRYPTO, "SHA-256");
        return s_refuse(r, c, GB_ECRYPTO, err, "%s", local.msg);
    }
    r->received += c->data.len;
    r->next++;
    if (!last)
        return 0;
    if (CRYPTO_memcmp(digest, c->sha256.data, GB_WIRE_SHA256_LEN) != 0)
        return s_refuse(r, c, GB_EINTEGRITY, err,
                        "the %llu bytes do not match the transfer's SHA-256",
                        (unsigned long long)r->total);
    *out = r->buf;
    *out_len = (size_t)r->total;
    r->buf = NULL;
    gb_reassembler_reset(r);
    return 1;
}
