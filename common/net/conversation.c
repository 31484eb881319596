/* One side of a session's conversation (net/conversation.h): a FIFO of
 * packed Envelopes on the way out, each sent whole or as a chunked
 * transfer, and a reassembler on the way in.
 *
 * The queue is a singly linked list of items, each owning its packed bytes.
 * Only the head item is ever in flight; for a transfer, the chunk being
 * offered is packed once into a scratch buffer and offered again, unchanged,
 * after GB_EAGAIN (the receiver must see each sequence number once). The
 * reassembler is made on the first chunk of a session and dropped on reset,
 * because a peer that restarted numbers its transfers from 1 again. */
#include "net/conversation.h"

#include <string.h>

#include "net/chunk.h"
#include "net/envelope.h"
#include "util/alloc.h"
#include "util/log.h"

typedef struct s_item {
    struct s_item *next; /* later item, or NULL */
    uint8_t *packed;     /* the packed Envelope */
    size_t len;          /* its bytes */
    uint64_t first_seq;  /* sequence of its first (or only) frame */
    uint32_t frames;     /* 1, or the chunks of a transfer */
} s_item_t;

struct gb_conversation {
    gb_conversation_options_t o; /* options with defaults filled */
    uint64_t next_seq;           /* sequence of the next frame queued */
    uint64_t last_in_seq;        /* sequence of the last frame received */
    uint64_t reply_seq;          /* the sequence a reply to the last frame names: its
                                    own, or its transfer's first chunk's */
    uint64_t in_transfer;        /* id of the incoming transfer in progress (0: none) */
    uint64_t in_first_seq;       /* sequence of its first chunk */
    uint64_t failed_transfer;    /* id of the last incoming transfer that failed: its
                                    later chunks are dropped without a word */
    s_item_t *head, *tail;       /* the queue, oldest first */
    size_t queued_bytes;         /* packed bytes of the items in the queue */
    gb_chunker_t *chunker;       /* cuts the head item when it is a transfer */
    bool head_started;           /* the head transfer's first chunk was made */
    uint8_t *chunk;              /* scratch: the chunk frame being offered */
    size_t chunk_cap;            /* its size */
    size_t chunk_len;            /* bytes of the chunk frame waiting, 0: none */
    uint32_t head_sent;          /* frames of the head item already taken */
    gb_reassembler_t *reasm;     /* incoming transfers (NULL until the first chunk) */
};

gb_conversation_t *gb_conversation_new(const gb_conversation_options_t *opts, gb_error_t *err)
{
    gb_conversation_t *c = gb_calloc(1, sizeof *c);
    if (!c) {
        gb_error_set(err, GB_ENOMEM, "conversation: out of memory");
        return NULL;
    }
    if (opts)
        c->o = *opts;
    if (!c->o.chunk_size)
        c->o.chunk_size = GB_CHUNK_DEFAULT_SIZE;
    if (!c->o.max_transfer)
        c->o.max_transfer = GB_CHUNK_DEFAULT_MAX_TRANSFER;
    if (!c->o.max_queued_bytes)
        c->o.max_queued_bytes = GB_CONVERSATION_DEFAULT_MAX_QUEUED;
    c->next_seq = 1;
    if (!(c->chunker = gb_chunker_new(c->o.chunk_size, err)))
        goto fail;
    c->chunk_cap = gb_chunker_buffer_size(c->chunker);
    if (!(c->chunk = gb_malloc(c->chunk_cap))) {
        gb_error_set(err, GB_ENOMEM, "conversation: out of memory");
        goto fail;
    }
    return c;
fail:
    gb_conversation_destroy(&c);
    return NULL;
}

static void s_drop_queue(gb_conversation_t *c)
{
    while (c->head) {
        s_item_t *next = c->head->next;
        gb_free(c->head->packed);
        gb_free(c->head);
        c->head = next;
    }
    c->tail = NULL;
    c->queued_bytes = 0;
    c->head_started = false;
    c->head_sent = 0;
    c->chunk_len = 0;
}

void gb_conversation_destroy(gb_conversation_t **pc)
{
    if (!pc || !*pc)
        return;
    gb_conversation_t *c = *pc;
    s_drop_queue(c);
    gb_chunker_destroy(&c->chunker);
    gb_reassembler_destroy(&c->reasm);
    gb_free(c->chunk);
    gb_free(c);
    *pc = NULL;
}

void gb_conversation_reset(gb_conversation_t *c)
{
    s_drop_queue(c);
    /* The chunker's transfer in progress, if any, is abandoned by the next
     * start; its ids keep increasing, which any new receiver accepts. */
    gb_reassembler_destroy(&c->reasm);
    c->next_seq = 1;
    c->last_in_seq = 0;
    c->reply_seq = 0;
    c->in_transfer = 0;
    c->in_first_seq = 0;
    c->failed_transfer = 0;
}

void gb_conversation_set_max_transfer(gb_conversation_t *c, uint64_t max_transfer)
{
    c->o.max_transfer = max_transfer ? max_transfer : GB_CHUNK_DEFAULT_MAX_TRANSFER;
    if (c->reasm && c->in_transfer)
        c->failed_transfer = c->in_transfer;
    c->in_transfer = 0;
    gb_reassembler_destroy(&c->reasm);
}

uint64_t gb_conversation_max_transfer(const gb_conversation_t *c)
{
    return c->o.max_transfer;
}

size_t gb_conversation_queued_bytes(const gb_conversation_t *c)
{
    return c->queued_bytes;
}

uint64_t gb_conversation_last_sequence(const gb_conversation_t *c)
{
    return c->reply_seq;
}

/* Chunks a transfer of len bytes needs. */
static uint64_t s_chunks(const gb_conversation_t *c, size_t len)
{
    return (len + c->o.chunk_size - 1) / c->o.chunk_size;
}

/* Writes v as a protobuf varint at p; returns the bytes written (<= 10). */
static size_t s_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Appends a packed item to the queue. */
static void s_append(gb_conversation_t *c, s_item_t *item)
{
    if (c->tail)
        c->tail->next = item;
    else
        c->head = item;
    c->tail = item;
    c->queued_bytes += item->len;
    c->next_seq += item->frames;
}

int gb_conversation_queue(gb_conversation_t *c, Glassbox__Envelope *env, uint64_t *seq,
                          gb_error_t *err)
{
    if (!env)
        return gb_error_set(err, GB_EINVAL, "conversation: no envelope to send");
    if (env->body_case == GLASSBOX__ENVELOPE__BODY_CHUNK)
        return gb_error_set(err, GB_EINVAL, "conversation: chunks are made here, not queued");
    if (c->queued_bytes >= c->o.max_queued_bytes)
        return gb_error_set(err, GB_EAGAIN,
                            "conversation: %zu bytes already wait to be sent (limit %zu)",
                            c->queued_bytes, c->o.max_queued_bytes);
    env->protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env->sequence = c->next_seq;
    gb_envelope_limits_t limits = {.max_bytes = (size_t)c->o.max_transfer};
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = gb_envelope_encode(env, &limits, &packed, &len, err);
    if (rc)
        return gb_error_prefix(err, rc, "conversation: %s not sent: ",
                               gb_envelope_body_name(env));
    uint64_t frames = len <= GB_ENVELOPE_MAX_BYTES ? 1 : s_chunks(c, len);
    s_item_t *item = frames <= UINT32_MAX ? gb_calloc(1, sizeof *item) : NULL;
    if (!item) {
        gb_free(packed);
        return gb_error_set(err, frames > UINT32_MAX ? GB_ERANGE : GB_ENOMEM,
                            "conversation: cannot queue a %s of %zu bytes",
                            gb_envelope_body_name(env), len);
    }
    item->packed = packed;
    item->len = len;
    item->first_seq = c->next_seq;
    item->frames = (uint32_t)frames;
    if (seq)
        *seq = item->first_seq;
    s_append(c, item);
    return 0;
}

int gb_conversation_queue_parts(gb_conversation_t *c, Glassbox__Envelope__BodyCase body,
                                const gb_conversation_part_t *parts, size_t n_parts,
                                uint64_t *seq, gb_error_t *err)
{
    if (body < GLASSBOX__ENVELOPE__BODY_JOIN || body > GLASSBOX__ENVELOPE__BODY_ENROLL_RESPONSE ||
        body == GLASSBOX__ENVELOPE__BODY_CHUNK)
        return gb_error_set(err, GB_EINVAL, "conversation: body %d cannot be queued packed",
                            (int)body);
    if (c->queued_bytes >= c->o.max_queued_bytes)
        return gb_error_set(err, GB_EAGAIN,
                            "conversation: %zu bytes already wait to be sent (limit %zu)",
                            c->queued_bytes, c->o.max_queued_bytes);
    size_t body_len = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (!parts[i].data && parts[i].len)
            return gb_error_set(err, GB_EINVAL, "conversation: part %zu has no bytes", i);
        if (parts[i].len > SIZE_MAX / 2 - body_len)
            return gb_error_set(err, GB_ERANGE, "conversation: a body of more than %zu bytes",
                                SIZE_MAX / 2);
        body_len += parts[i].len;
    }
    /* Envelope fields in number order, as protobuf-c writes them: 1
     * protocol_version and 2 sequence (varints, both nonzero), then the
     * body field (tag, length, bytes). */
    uint8_t head[1 + 10 + 1 + 10 + 2 + 10];
    size_t h = 0;
    head[h++] = (1 << 3) | 0; /* protocol_version, varint */
    h += s_varint(head + h, GB_ENVELOPE_PROTOCOL_VERSION);
    head[h++] = (2 << 3) | 0; /* sequence, varint */
    h += s_varint(head + h, c->next_seq);
    h += s_varint(head + h, ((uint64_t)body << 3) | 2); /* the body, length-delimited */
    h += s_varint(head + h, body_len);
    size_t len = h + body_len;
    if ((uint64_t)len > c->o.max_transfer)
        return gb_error_set(err, GB_ERANGE,
                            "conversation: a %zu-byte envelope is over the %llu-byte limit", len,
                            (unsigned long long)c->o.max_transfer);
    uint64_t frames = len <= GB_ENVELOPE_MAX_BYTES ? 1 : s_chunks(c, len);
    s_item_t *item = frames <= UINT32_MAX ? gb_calloc(1, sizeof *item) : NULL;
    uint8_t *packed = item ? gb_malloc(len) : NULL;
    if (!packed) {
        gb_free(item);
        return gb_error_set(err, frames > UINT32_MAX ? GB_ERANGE : GB_ENOMEM,
                            "conversation: cannot queue a %zu-byte envelope", len);
    }
    memcpy(packed, head, h);
    size_t at = h;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].len)
            memcpy(packed + at, parts[i].data, parts[i].len);
        at += parts[i].len;
    }
    item->packed = packed;
    item->len = len;
    item->first_seq = c->next_seq;
    item->frames = (uint32_t)frames;
    if (seq)
        *seq = item->first_seq;
    s_append(c, item);
    return 0;
}

/* Removes the head item once all its frames are taken. */
static void s_pop(gb_conversation_t *c)
{
    s_item_t *item = c->head;
    c->head = item->next;
    if (!c->head)
        c->tail = NULL;
    c->queued_bytes -= item->len;
    c->head_started = false;
    c->head_sent = 0;
    c->chunk_len = 0;
    gb_free(item->packed);
    gb_free(item);
}

/* Makes the head transfer's next chunk frame ready in c->chunk. */
static int s_next_chunk(gb_conversation_t *c, gb_error_t *err)
{
    s_item_t *item = c->head;
    int rc;
    if (!c->head_started) {
        if ((rc = gb_chunker_start(c->chunker, item->packed, item->len, NULL, err)) != 0)
            return rc;
        c->head_started = true;
    }
    rc = gb_chunker_next(c->chunker, item->first_seq + c->head_sent, c->chunk, c->chunk_cap,
                         &c->chunk_len, err);
    if (rc < 0)
        return rc;
    if (rc == 0) /* cannot happen while head_sent < frames: the count is ours */
        return gb_error_set(err, GB_EINVAL, "conversation: transfer ended early");
    return 0;
}

int gb_conversation_flush(gb_conversation_t *c, gb_frame_send_fn send, void *arg,
                          gb_error_t *err)
{
    while (c->head) {
        s_item_t *item = c->head;
        int rc;
        if (item->frames == 1) {
            if ((rc = send(arg, item->packed, item->len, err)) != 0)
                return rc;
            s_pop(c);
            continue;
        }
        if (!c->chunk_len && (rc = s_next_chunk(c, err)) != 0) {
            /* Our own failure (memory, hashing): the peer has seen some
             * chunks, so the rest of this transfer cannot follow; drop it
             * and let the next one start afresh. */
            gb_log_error("conversation: a %zu-byte transfer is dropped: %s", item->len,
                         err ? err->msg : "");
            s_pop(c);
            return rc;
        }
        if ((rc = send(arg, c->chunk, c->chunk_len, err)) != 0)
            return rc;
        c->chunk_len = 0;
        if (++c->head_sent == item->frames)
            s_pop(c);
    }
    return 0;
}

/* Feeds a decoded chunk of frame sequence seq; 1 with *out when its
 * transfer completed. A failed transfer is answered once: its later chunks
 * are dropped (0) without another error. */
static int s_feed_chunk(gb_conversation_t *c, const Glassbox__TensorChunk *chunk, uint64_t seq,
                        Glassbox__Envelope **out, gb_error_t *err)
{
    if (chunk->transfer_id == c->failed_transfer)
        return 0;
    if (chunk->index == 0) {
        c->in_transfer = chunk->transfer_id;
        c->in_first_seq = seq;
    }
    if (chunk->transfer_id == c->in_transfer)
        c->reply_seq = c->in_first_seq;
    if (!c->reasm && !(c->reasm = gb_reassembler_new(c->o.max_transfer, err)))
        return err ? err->code : GB_ENOMEM;
    uint8_t *whole = NULL;
    size_t len = 0;
    int rc = gb_reassembler_feed(c->reasm, chunk, &whole, &len, err);
    if (rc < 0)
        c->failed_transfer = chunk->transfer_id;
    if (rc <= 0)
        return rc;
    c->in_transfer = 0;
    gb_envelope_limits_t limits = {.max_bytes = (size_t)c->o.max_transfer, .reassembled = true};
    rc = gb_envelope_decode(whole, len, &limits, out, err);
    gb_free(whole);
    return rc ? rc : 1;
}

int gb_conversation_receive(gb_conversation_t *c, const uint8_t *frame, size_t len,
                            Glassbox__Envelope **out, gb_error_t *err)
{
    *out = NULL;
    Glassbox__Envelope *env = NULL;
    gb_envelope_limits_t limits = {.max_bytes = GB_ENVELOPE_MAX_BYTES};
    if (c->o.max_transfer < limits.max_bytes)
        limits.max_bytes = (size_t)c->o.max_transfer;
    int rc = gb_envelope_decode(frame, len, &limits, &env, err);
    if (rc)
        return rc;
    if (env->sequence <= c->last_in_seq) {
        rc = gb_error_set(err, GB_EPROTO,
                          "conversation: frame sequence %llu does not follow %llu",
                          (unsigned long long)env->sequence,
                          (unsigned long long)c->last_in_seq);
        gb_log_warn("%s", err ? err->msg : "conversation: sequence out of order");
        gb_envelope_free(&env);
        return rc;
    }
    c->last_in_seq = env->sequence;
    c->reply_seq = env->sequence;
    if (env->body_case != GLASSBOX__ENVELOPE__BODY_CHUNK) {
        *out = env;
        return 1;
    }
    rc = s_feed_chunk(c, env->chunk, env->sequence, out, err);
    gb_envelope_free(&env);
    return rc;
}
