/* The front door's session index: which slot of its session table holds
 * the session of a link handle, and which holds the joined session of a
 * client name, each found in O(1) instead of a scan of every session.
 *
 * Why it exists: the front door looked a session up by scanning the whole
 * table on every message (by handle) and every send (by name), so sending a
 * round's tasks to N clients cost N^2 compares (issue 11: one coordinator
 * carries 1,000 clients). None of the libraries already linked (libzmq,
 * protobuf-c, OpenSSL, jansson) offers a general hash map, so this is a
 * small one of our own: one open-addressing table, used twice (handles,
 * names), with linear probing and backward-shift deletion (no tombstones, so
 * a table that sees many joins and leaves never degrades), kept at most half
 * full.
 *
 * The index maps keys to slots and knows nothing of sessions; the front
 * door keeps it in step with its table: put when a session is added or
 * joins, remove when it leaves, and put again (an update, which never
 * allocates) for the session that moves into a freed slot.
 *
 * Names are hashed with FNV-1a seeded per index. They are certificate CNs
 * the federation's CA issued, not free choices of an outsider; a flood of
 * colliding names costs at worst the linear scan the index replaced.
 *
 * Ownership: gb_session_index_new returns an index the caller owns
 * (gb_session_index_destroy). Names are copied in (at most
 * GB_SESSION_INDEX_NAME_MAX bytes); nothing points to the caller's memory.
 * Not thread-safe. */
#ifndef GB_COORDINATOR_SESSION_INDEX_H
#define GB_COORDINATOR_SESSION_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Longest name kept (a certificate CN, GB_PKI_NAME_MAX). */
#define GB_SESSION_INDEX_NAME_MAX 64

typedef struct gb_session_index gb_session_index_t;

/* A new, empty index with room for `expected` handles and as many names
 * before it grows (0: a small default). NULL and err on GB_ENOMEM. */
gb_session_index_t *gb_session_index_new(size_t expected, gb_error_t *err);

/* Frees the index; sets *ix to NULL; NULL-safe. */
void gb_session_index_destroy(gb_session_index_t **ix);

/* Makes room for `n` handles and `n` names in all, so that the puts of new
 * keys up to that count never allocate (and cannot fail). 0, or GB_ENOMEM
 * with the index unchanged. */
int gb_session_index_reserve(gb_session_index_t *ix, size_t n, gb_error_t *err) GB_MUST_CHECK;

/* handle -> slot: inserts, or updates the slot of a handle present (an
 * update never allocates and never fails). GB_ENOMEM when the table must
 * grow and cannot; the index is unchanged then. */
int gb_session_index_put_handle(gb_session_index_t *ix, uint64_t handle, size_t slot,
                                gb_error_t *err) GB_MUST_CHECK;

/* True with *slot (may be NULL) when the handle is present. */
bool gb_session_index_find_handle(const gb_session_index_t *ix, uint64_t handle, size_t *slot);

/* Removes the handle; false when it was not present. */
bool gb_session_index_remove_handle(gb_session_index_t *ix, uint64_t handle);

/* name -> slot, as for handles. A name longer than GB_SESSION_INDEX_NAME_MAX
 * bytes (or NULL) is GB_EINVAL for put and never found. */
int gb_session_index_put_name(gb_session_index_t *ix, const char *name, size_t slot,
                              gb_error_t *err) GB_MUST_CHECK;
bool gb_session_index_find_name(const gb_session_index_t *ix, const char *name, size_t *slot);
bool gb_session_index_remove_name(gb_session_index_t *ix, const char *name);

/* Keys present. */
size_t gb_session_index_handles(const gb_session_index_t *ix);
size_t gb_session_index_names(const gb_session_index_t *ix);

/* Buckets allocated in the handle and name tables (for the tests of growth). */
size_t gb_session_index_capacity(const gb_session_index_t *ix);

#endif
