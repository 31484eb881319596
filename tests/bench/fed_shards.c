/* gb_fed_shards: the sample indices of every client of a simulated
 * federation, so that the PyTorch side of the federation benchmark
 * (tests/bench/fed_bench.py, fed_torch.py; README.md there) trains on
 * exactly the slices Glassbox's clients train on.
 *
 *   gb_fed_shards [--data NAME] [--partition iid|dirichlet:A|shards:K]
 *                 [--clients N] [--seed S] [--limit L]
 *
 * It does what a client does to find its slice (client/data_source.c): loads
 * the training split by name (default fashion-mnist), keeps its first --limit
 * samples when given (gb_dataset_limit), and cuts it with the same partition
 * function and seed (data/partition.h: gb_partition_assign, then
 * gb_partition_indices for each client, as run --virtual does; a dealt shard,
 * serve --simulate-clients, is gb_partition_client with the coordinator's
 * --seed: the same function of the same inputs). Slice K is what the client
 * holding index K trains on, whoever that client is.
 *
 * Prints one JSON object on standard output:
 *
 *   {"data": "fashion-mnist", "partition": "dirichlet:0.5", "clients": 10,
 *    "seed": 1, "samples": 60000, "kernels": "avx512",
 *    "sizes": [n0, ...], "shards": [[i, ...], ...]}
 *
 * "kernels" is the engine's kernel path in this process (engine/kernels.h),
 * which is what glassbox-client and glassbox-coordinator choose on the same
 * CPU with the same GLASSBOX_KERNELS. Not a test; built by
 * tests/bench/fed.cmake into the top of the build tree. */
#include "data/dataset.h"
#include "data/dataset_load.h"
#include "data/partition.h"
#include "engine/kernels.h"
#include "util/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_u64_arg(const char *flag, const char *value, unsigned long long hi,
                     unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v = value ? strtoull(value, &end, 10) : 0;
    if (!value || *end != '\0' || v > hi) {
        fprintf(stderr, "gb_fed_shards: %s wants an integer in 0..%llu\n", flag, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *data = "fashion-mnist", *text = "iid";
    unsigned long long clients = 10, seed = 1, limit = 0;
    /* Every option takes a value: step two at a time. */
    for (int i = 1; i < argc; i += 2) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!value) {
            fprintf(stderr, "gb_fed_shards: %s needs a value\n", flag);
            return 2;
        } else if (strcmp(flag, "--data") == 0) {
            data = value;
        } else if (strcmp(flag, "--partition") == 0) {
            text = value;
        } else if (strcmp(flag, "--clients") == 0) {
            rc = s_u64_arg(flag, value, 100000, &clients);
        } else if (strcmp(flag, "--seed") == 0) {
            rc = s_u64_arg(flag, value, ~0ULL, &seed);
        } else if (strcmp(flag, "--limit") == 0) {
            rc = s_u64_arg(flag, value, 2147483647ULL, &limit);
        } else {
            fprintf(stderr, "gb_fed_shards: unknown option '%s'\n", flag);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (clients < 1) {
        fprintf(stderr, "gb_fed_shards: --clients must be at least 1\n");
        return 2;
    }
    gb_error_t err = {0};
    gb_partition_t p;
    if (gb_partition_parse(text, &p, &err) != 0) {
        fprintf(stderr, "gb_fed_shards: --partition: %s\n", err.msg);
        return 2;
    }
    gb_dataset_t *train = NULL;
    if (gb_dataset_load(data, GB_SPLIT_TRAIN, &train, &err) != 0 ||
        (limit > 0 && gb_dataset_limit(train, (int64_t)limit, &err) != 0)) {
        fprintf(stderr, "gb_fed_shards: %s\n", err.msg);
        gb_dataset_destroy(&train);
        return 1;
    }
    if (!train->labels) {
        fprintf(stderr, "gb_fed_shards: %s has no class labels\n", data);
        gb_dataset_destroy(&train);
        return 1;
    }
    int32_t *owner = gb_malloc((size_t)train->n * sizeof *owner);
    if (!owner || gb_partition_assign(&p, train->labels, train->n, train->n_classes,
                                      (int)clients, seed, owner, &err) != 0) {
        fprintf(stderr, "gb_fed_shards: %s\n", owner ? err.msg : "out of memory");
        gb_free(owner);
        gb_dataset_destroy(&train);
        return 1;
    }
    char canonical[64];
    gb_partition_format(&p, canonical, sizeof canonical);
    int32_t **idx = gb_calloc((size_t)clients, sizeof *idx);
    int64_t *count = gb_calloc((size_t)clients, sizeof *count);
    int rc = idx && count ? 0 : 1;
    for (int k = 0; rc == 0 && k < (int)clients; k++)
        if (gb_partition_indices(owner, train->n, k, &idx[k], &count[k], &err) != 0) {
            fprintf(stderr, "gb_fed_shards: client %d: %s\n", k, err.msg);
            rc = 1;
        }
    if (rc == 0) {
        printf("{\"data\": \"%s\", \"partition\": \"%s\", \"clients\": %llu, \"seed\": %llu, "
               "\"samples\": %lld, \"kernels\": \"%s\", \"sizes\": [",
               data, canonical, clients, seed, (long long)train->n,
               gb_kernels_name(gb_kernels()));
        for (int k = 0; k < (int)clients; k++)
            printf("%s%lld", k ? ", " : "", (long long)count[k]);
        printf("], \"shards\": [");
        for (int k = 0; k < (int)clients; k++) {
            printf("%s[", k ? ", " : "");
            for (int64_t i = 0; i < count[k]; i++)
                printf("%s%d", i ? "," : "", idx[k][i]);
            printf("]");
        }
        printf("]}\n");
    }
    for (int k = 0; idx && k < (int)clients; k++)
        gb_free(idx[k]);
    gb_free(idx);
    gb_free(count);
    gb_free(owner);
    gb_dataset_destroy(&train);
    return rc;
}
