/* Partitioners: how a dataset's samples are split among the clients of a
 * simulated federation. `iid`, `dirichlet:ALPHA` (label skew drawn from a
 * Dirichlet prior, as in Hsu et al. 2019 and the usual FL benchmarks) and
 * `shards:K` (sort by label, cut into clients x K shards, K shards each:
 * McMahan et al. 2017).
 *
 * A partition is a pure function of (labels, clients, seed): every random
 * draw comes from a gb_rng_t seeded with the seed, and only integer and IEEE
 * double arithmetic turns draws into counts, so client K of N computes the
 * same slice on every machine without talking to the others.
 *
 * Ownership: gb_partition_assign writes into the caller's array;
 * gb_partition_indices and gb_partition_client return an index array
 * allocated with gb_malloc that the caller frees with gb_free. */
#ifndef GB_DATA_PARTITION_H
#define GB_DATA_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef enum { GB_PARTITION_IID, GB_PARTITION_DIRICHLET, GB_PARTITION_SHARDS } gb_partition_kind_t;

typedef struct {
    gb_partition_kind_t kind; /* which scheme */
    double alpha;             /* dirichlet: concentration, > 0 and finite */
    int shards;               /* shards: shards per client, >= 1 */
} gb_partition_t;

/* Dirichlet retries until every client has at least
 * min(GB_PARTITION_MIN_SAMPLES, max(1, n / (2 x clients))) samples. */
#define GB_PARTITION_MIN_SAMPLES 10

/* Parses "iid", "dirichlet:ALPHA" or "shards:K" into *out. Anything else is
 * GB_EINVAL with a message naming the text ("unknown partition 'foo':
 * expected iid, dirichlet:ALPHA or shards:K"). */
int gb_partition_parse(const char *text, gb_partition_t *out, gb_error_t *err) GB_MUST_CHECK;

/* Writes the canonical text of p ("dirichlet:0.5") into buf (always
 * NUL-terminated); returns buf. */
char *gb_partition_format(const gb_partition_t *p, char *buf, size_t cap);

/* Assigns each of the n samples (labels in [0, n_classes)) to one of
 * `clients` clients: owner[i] receives the client of sample i. Deterministic
 * in (p, labels, n_classes, clients, seed).
 *   iid:       shuffled round-robin; client sizes differ by at most 1.
 *   dirichlet: per class, proportions drawn from Dirichlet(alpha, ..., alpha)
 *              over clients split that class's shuffled samples by cumulative
 *              proportion. The draw is repeated (bounded) until every client
 *              gets the minimum above; if none succeeds (alpha tiny for this
 *              many clients) it is GB_ERANGE, with advice, not an empty client.
 *   shards:    samples sorted by label (ties in a shuffled order), cut into
 *              clients x K contiguous shards of equal size (+-1), K random
 *              shards per client; so a client sees at most 2K labels, K when
 *              shards do not straddle labels. Needs n >= clients x K.
 * Needs n >= clients >= 1, n <= INT32_MAX and n_classes >= 1; a label out
 * of range is GB_ERANGE. */
int gb_partition_assign(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                        int clients, uint64_t seed, int32_t *owner, gb_error_t *err)
    GB_MUST_CHECK;

/* The samples owned by `client`, in increasing order: *idx receives a
 * gb_malloc'd array (caller frees with gb_free; non-NULL even when empty)
 * and *count its length. */
int gb_partition_indices(const int32_t *owner, int64_t n, int client, int32_t **idx,
                         int64_t *count, gb_error_t *err) GB_MUST_CHECK;

/* gb_partition_assign followed by gb_partition_indices for one client: what a
 * client daemon calls to find its slice. */
int gb_partition_client(const gb_partition_t *p, const int32_t *labels, int64_t n, int n_classes,
                        int clients, uint64_t seed, int client, int32_t **idx, int64_t *count,
                        gb_error_t *err) GB_MUST_CHECK;

#endif
