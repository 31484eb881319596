/* The field checkers behind every decoder of outside messages: what
 * envelope.c (the Envelope and its bodies) and publication.c (the
 * Publication) both build their validation from. Not for other modules:
 * they call gb_envelope_validate / gb_publication_check (net/envelope.h,
 * net/publication.h), which name whole messages.
 *
 * Every checker takes the field's path as the caller spells it
 * ("update.explanation.classes[3].count"), formats its refusal as
 * "<field>: <what is wrong>" into err and returns the gb_err code that
 * gb_envelope_error_code turns into the right ErrorCode (envelope.h, "Reply
 * codes"): GB_EFORMAT for missing, GB_ERANGE for over a size limit,
 * GB_EINVAL for a value out of range, GB_ESHAPE for a tensor that does not
 * fit. 0 when the field is good. None logs, none echoes a string's content
 * (it is hostile), none allocates. */
#ifndef GB_NET_ENVELOPE_CHECK_H
#define GB_NET_ENVELOPE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/envelope.h"
#include "util/error.h"

/* Longest field path in a message ("update.explanation.classes[4095]..."):
 * the size of the buffers callers format paths into. */
#define GB_CHECK_FIELD_MAX 96

/* Fills err with "<field>: <message>" and returns code. */
int gb_check_fail(gb_error_t *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A count or id where proto3's 0 means "missing" (GB_EFORMAT). */
int gb_check_count(gb_error_t *err, const char *field, uint64_t v) GB_MUST_CHECK;

/* A string of min..max bytes, UTF-8 without control characters (tab and
 * newlines too unless allow_space). NULL reads as empty (a caller-built
 * message may leave it so). Shorter than min: GB_EFORMAT; longer than max:
 * GB_ERANGE; bad bytes: GB_EINVAL naming the offset. */
int gb_check_text(gb_error_t *err, const char *field, const char *s, size_t min, size_t max,
                  bool allow_space) GB_MUST_CHECK;

/* A name of 1..max bytes from a restricted alphabet: [a-z0-9_.-], plus A-Z
 * if `upper`, plus the characters in `extra` (not NULL; "" for none). */
int gb_check_name(gb_error_t *err, const char *field, const char *s, size_t max, bool upper,
                  const char *extra) GB_MUST_CHECK;

/* A bytes field of min..max bytes (a length without data is missing). */
int gb_check_blob(gb_error_t *err, const char *field, ProtobufCBinaryData b, size_t min,
                  size_t max) GB_MUST_CHECK;

/* A finite double in [lo, hi] (hi_open: [lo, hi)); NaN, Inf and values
 * outside are GB_EINVAL. */
int gb_check_real(gb_error_t *err, const char *field, double v, double lo, double hi,
                  bool hi_open) GB_MUST_CHECK;

/* An unsigned value at most max (GB_EINVAL: a value, not a size). */
int gb_check_max(gb_error_t *err, const char *field, uint64_t v, uint64_t max) GB_MUST_CHECK;

/* A repeated field's count: at most max (GB_ERANGE), and items present
 * when n > 0 (GB_EFORMAT). */
int gb_check_list(gb_error_t *err, const char *field, size_t n, const void *items,
                  size_t max) GB_MUST_CHECK;

/* A metric list as Glassbox writes it: at most GB_ENVELOPE_MAX_METRICS, names
 * [A-Za-z0-9_.:/-]+ ("loss", "accuracy/class_3"), finite values. */
int gb_check_metrics(gb_error_t *err, const char *base, size_t n,
                     Glassbox__Metric *const *m) GB_MUST_CHECK;

/* Capabilities: at most GB_ENVELOPE_MAX_KV, unique keys [a-z0-9_.-]+, text
 * values. */
int gb_check_capabilities(gb_error_t *err, const char *base, size_t n,
                          Glassbox__KeyValue *const *kv) GB_MUST_CHECK;

/* An enum value in lo..hi: enums are open on the wire, so a number this
 * version does not know is refused here by name (GB_EINVAL). */
int gb_check_enum(gb_error_t *err, const char *field, int v, int lo, int hi) GB_MUST_CHECK;

/* A float32 tensor: 1..GB_ENVELOPE_MAX_DIMS dims, each >= 1, product x 4 ==
 * len(data), every value finite. If like_shape is not NULL, the shape must
 * equal like_shape[0..like_n) (GB_ESHAPE). Costs a pass over the data, after
 * every bounded check. */
int gb_check_tensor(gb_error_t *err, const char *base, const Glassbox__Tensor *t,
                    const uint32_t *like_shape, size_t like_n) GB_MUST_CHECK;

/* Class indices seen so far in one list: a bitmap, so checking a full list
 * for repeats costs one pass. Zero it ({{0}}) before the list. */
typedef struct {
    uint64_t bits[GB_ENVELOPE_MAX_CLASSES / 64]; /* seen class indices */
} gb_check_classes_t;

/* Class index c: below GB_ENVELOPE_MAX_CLASSES and not yet in seen (both
 * GB_EINVAL); on success c is added to seen. */
int gb_check_class(gb_error_t *err, const char *field, gb_check_classes_t *seen,
                   uint32_t c) GB_MUST_CHECK;

/* A nested model (a Task's, a Publication's): the model file's own checks
 * (gb_snapshot_check_message), refused under the field's name. Its
 * GB_ERANGE (a NaN, or a spec over its length limit) becomes GB_EINVAL: an
 * invalid value, not a frame over the size limit. NULL m: GB_EFORMAT. */
int gb_check_model(const char *field, const Glassbox__ModelSnapshot *m,
                   gb_error_t *err) GB_MUST_CHECK;

/* An Explanation (an Update's, a Publication's) under the path base: a
 * known method, at most GB_ENVELOPE_MAX_CLASSES unique classes with counts,
 * classes or feature_importance present, every map a valid tensor of the
 * first map's shape, quality metrics as gb_check_metrics, and every class's
 * clients (the support an aggregate claims) at most max_clients and at most
 * its count (each client explained at least one sample of the class); a
 * client's own explanation is checked with max_clients 0, since the field
 * is the aggregate's and a client has nothing to claim there (GB_EINVAL). */
int gb_check_explanation(const Glassbox__Explanation *x, const char *base,
                         uint32_t max_clients, gb_error_t *err) GB_MUST_CHECK;

/* protobuf-c keeps fields it does not know, to pack them again; but it also
 * keeps one numbered 0, which no protobuf writer may produce and which its
 * own parser then refuses: a message that would not survive being packed
 * again. GB_EFORMAT for such a message, nested ones included (the walk
 * follows the descriptors; no message type of the schema recurses, so its
 * depth is bounded). */
int gb_check_unknown_fields(const ProtobufCMessage *m, gb_error_t *err) GB_MUST_CHECK;

#endif
