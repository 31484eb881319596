/* Tests for data/partition: parsing and formatting, every sample in exactly
 * one client for each scheme, determinism and seed sensitivity, known answers
 * (so a change of algorithm, which would move clients' slices, is noticed),
 * iid balance, shard label limits, Dirichlet skew at small and large alpha,
 * the minimum-size retry and its failure, argument errors and
 * allocation-failure injection. Doubles as the usage example. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/partition.h"
#include "util/alloc.h"
#include "util/log.h"

static gb_partition_t s_parse(const char *text)
{
    gb_partition_t p;
    gb_error_t err = {0};
    if (gb_partition_parse(text, &p, &err) != 0)
        fail_msg("parse '%s': %s", text, err.msg);
    return p;
}

/* n labels cycling 0..classes-1 when `cycle`, else in blocks. */
static int32_t *s_labels(int64_t n, int classes, int cycle)
{
    int32_t *y = malloc((size_t)n * sizeof *y);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++)
        y[i] = cycle ? (int32_t)(i % classes) : (int32_t)(i * classes / n);
    return y;
}

/* FNV-1a over the owner array. */
static uint64_t s_hash(const int32_t *owner, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < n; i++) {
        h ^= (uint32_t)owner[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void test_parse_and_format(void **state)
{
    (void)state;
    gb_partition_t p = s_parse("iid");
    assert_int_equal(p.kind, GB_PARTITION_IID);
    p = s_parse("dirichlet:0.5");
    assert_int_equal(p.kind, GB_PARTITION_DIRICHLET);
    assert_true(p.alpha == 0.5);
    p = s_parse("dirichlet:1e3");
    assert_true(p.alpha == 1000.0);
    p = s_parse("dirichlet:.25");
    assert_true(p.alpha == 0.25);
    p = s_parse("shards:2");
    assert_int_equal(p.kind, GB_PARTITION_SHARDS);
    assert_int_equal(p.shards, 2);

    const char *canon[] = {"iid", "dirichlet:0.5", "dirichlet:0.1", "dirichlet:100",
                           "dirichlet:0.30000000000000004", "shards:2", "shards:1000000"};
    for (size_t i = 0; i < sizeof canon / sizeof *canon; i++) {
        char buf[64];
        p = s_parse(canon[i]);
        assert_string_equal(gb_partition_format(&p, buf, sizeof buf), canon[i]);
    }
    char tiny[4];
    p = s_parse("dirichlet:0.5");
    assert_string_equal(gb_partition_format(&p, tiny, sizeof tiny), "dir"); /* truncated */
    assert_string_equal(gb_partition_format(NULL, tiny, sizeof tiny), "?");

    gb_error_t err = {0};
    assert_int_equal(gb_partition_parse("foo", &p, &err), GB_EINVAL);
    assert_string_equal(err.msg,
                        "unknown partition 'foo': expected iid, dirichlet:ALPHA or shards:K");
    const char *bad[] = {"",
                         "IID",
                         "iid:3",
                         "dirichlet",
                         "shards",
                         "dirichlet:",
                         "dirichlet:0",
                         "dirichlet:-1",
                         "dirichlet:+1",
                         "dirichlet: 0.5",
                         "dirichlet:0.5x",
                         "dirichlet:nan",
                         "dirichlet:inf",
                         "dirichlet:1e999",
                         "dirichlet:1e-999",
                         "shards:",
                         "shards:0",
                         "shards:-1",
                         "shards:2.5",
                         "shards: 2",
                         "shards:1000001",
                         "shards:99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gb_error_clear(&err);
        if (gb_partition_parse(bad[i], &p, &err) != GB_EINVAL)
            fail_msg("'%s' parsed", bad[i]);
        assert_int_equal(err.code, GB_EINVAL);
        assert_true(strlen(err.msg) > 0);
    }
    assert_int_equal(gb_partition_parse("dirichlet:0", &p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "dirichlet ALPHA must be a finite number > 0, got '0'"));
    assert_int_equal(gb_partition_parse("shards:0", &p, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "shards K must be an integer"));
    assert_int_equal(gb_partition_parse(NULL, &p, &err), GB_EINVAL);
    assert_int_equal(gb_partition_parse("iid", NULL, &err), GB_EINVAL);
}

/* Checks owner[] is a partition of n samples into `clients` clients and that
 * gb_partition_indices lists the same thing; returns per-client sizes in
 * sizes[] (caller's array of `clients`). */
static void s_check_partition(const int32_t *owner, int64_t n, int clients, int64_t *sizes)
{
    memset(sizes, 0, sizeof *sizes * (size_t)clients);
    for (int64_t i = 0; i < n; i++) {
        assert_in_range(owner[i], 0, clients - 1);
        sizes[owner[i]]++;
    }
    char *seen = calloc((size_t)n, 1);
    assert_non_null(seen);
    int64_t total = 0;
    for (int k = 0; k < clients; k++) {
        int32_t *idx = NULL;
        int64_t count = -1;
        assert_int_equal(gb_partition_indices(owner, n, k, &idx, &count, NULL), 0);
        assert_non_null(idx);
        assert_int_equal(count, sizes[k]);
        for (int64_t j = 0; j < count; j++) {
            assert_in_range(idx[j], 0, n - 1);
            assert_int_equal(owner[idx[j]], k);
            assert_int_equal(seen[idx[j]], 0);
            seen[idx[j]] = 1;
            if (j > 0)
                assert_true(idx[j] > idx[j - 1]); /* increasing */
        }
        total += count;
        gb_free(idx);
    }
    assert_int_equal(total, n);
    free(seen);
}

static void test_every_sample_once_and_determinism(void **state)
{
    (void)state;
    const char *kinds[] = {"iid", "dirichlet:0.5", "dirichlet:5", "shards:2"};
    const int clients_list[] = {1, 3, 10};
    const int64_t n = 1237;
    int32_t *labels = s_labels(n, 10, 1);
    int32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int64_t sizes[10];
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        gb_partition_t p = s_parse(kinds[i]);
        for (size_t c = 0; c < 3; c++) {
            int clients = clients_list[c];
            gb_error_t err = {0};
            if (gb_partition_assign(&p, labels, n, 10, clients, 42, a, &err) != 0)
                fail_msg("%s x %d: %s", kinds[i], clients, err.msg);
            s_check_partition(a, n, clients, sizes);
            /* same seed, same answer */
            assert_int_equal(gb_partition_assign(&p, labels, n, 10, clients, 42, b, &err), 0);
            assert_memory_equal(a, b, n * sizeof *a);
            /* another seed, another answer (one client has only one answer) */
            assert_int_equal(gb_partition_assign(&p, labels, n, 10, clients, 43, b, &err), 0);
            if (clients > 1)
                assert_memory_not_equal(a, b, n * sizeof *a);
            /* gb_partition_client agrees with assign + indices */
            for (int k = 0; k < clients; k++) {
                int32_t *idx = NULL;
                int64_t count = 0;
                assert_int_equal(gb_partition_client(&p, labels, n, 10, clients, 42, k, &idx,
                                                     &count, &err),
                                 0);
                assert_int_equal(count, sizes[k]);
                for (int64_t j = 0; j < count; j++)
                    assert_int_equal(a[idx[j]], k);
                gb_free(idx);
            }
        }
    }
    free(a);
    free(b);
    free(labels);
}

/* Known answers: a partition must not change between versions or machines,
 * or client K of N would train on a different slice than before. */
static void test_known_answers(void **state)
{
    (void)state;
    const int64_t n = 1000;
    int32_t *labels = s_labels(n, 10, 1);
    int32_t *owner = malloc(n * sizeof *owner);
    assert_non_null(owner);
    struct {
        const char *text;
        uint64_t hash;
    } cases[] = {
        {"iid", 0x0222869f363a57a7ULL},
        {"dirichlet:0.5", 0xd80a0636c985639bULL},
        {"shards:2", 0xbda29634b3f4b555ULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gb_partition_t p = s_parse(cases[i].text);
        assert_int_equal(gb_partition_assign(&p, labels, n, 10, 5, 2024, owner, NULL), 0);
        uint64_t h = s_hash(owner, n);
        if (h != cases[i].hash)
            fail_msg("%s: hash 0x%016llxULL, expected 0x%016llxULL", cases[i].text,
                     (unsigned long long)h, (unsigned long long)cases[i].hash);
    }
    free(owner);
    free(labels);
}

static void test_iid_balanced(void **state)
{
    (void)state;
    gb_partition_t p = s_parse("iid");
    const int64_t n = 1003;
    int32_t *labels = s_labels(n, 2, 0); /* sorted labels: iid must still mix them */
    int32_t *owner = malloc(n * sizeof *owner);
    int64_t sizes[7];
    assert_int_equal(gb_partition_assign(&p, labels, n, 2, 7, 1, owner, NULL), 0);
    s_check_partition(owner, n, 7, sizes);
    for (int k = 0; k < 7; k++) {
        assert_in_range(sizes[k], n / 7, n / 7 + 1);
        /* roughly half of each client's samples are class 1 */
        int64_t ones = 0;
        for (int64_t i = 0; i < n; i++)
            ones += owner[i] == k && labels[i] == 1;
        assert_in_range(ones, sizes[k] / 4, 3 * sizes[k] / 4);
    }
    /* one sample per client is allowed */
    assert_int_equal(gb_partition_assign(&p, labels, 7, 2, 7, 1, owner, NULL), 0);
    s_check_partition(owner, 7, 7, sizes);
    for (int k = 0; k < 7; k++)
        assert_int_equal(sizes[k], 1);
    free(owner);
    free(labels);
}

static int s_distinct_labels(const int32_t *owner, const int32_t *labels, int64_t n, int client,
                             int classes)
{
    int seen[64] = {0}, d = 0;
    assert_true(classes <= 64);
    for (int64_t i = 0; i < n; i++)
        if (owner[i] == client && !seen[labels[i]]) {
            seen[labels[i]] = 1;
            d++;
        }
    return d;
}

static void test_shards(void **state)
{
    (void)state;
    /* 10 classes x 100 samples, 10 clients x 2 shards of 50: shards never
     * straddle a label, so each client holds at most 2 labels */
    gb_partition_t p = s_parse("shards:2");
    int64_t n = 1000, sizes[13];
    int32_t *labels = s_labels(n, 10, 1);
    int32_t *owner = malloc(1001 * sizeof *owner); /* the largest n below */
    assert_non_null(owner);
    for (uint64_t seed = 0; seed < 5; seed++) {
        assert_int_equal(gb_partition_assign(&p, labels, n, 10, 10, seed, owner, NULL), 0);
        s_check_partition(owner, n, 10, sizes);
        for (int k = 0; k < 10; k++) {
            assert_int_equal(sizes[k], 100);
            assert_in_range(s_distinct_labels(owner, labels, n, k, 10), 1, 2);
        }
    }
    /* uneven: shards straddle labels, so at most 2K labels; sizes K x (n/S +- 1) */
    p = s_parse("shards:3");
    n = 1001;
    free(labels);
    labels = s_labels(n, 7, 1);
    assert_int_equal(gb_partition_assign(&p, labels, n, 7, 13, 9, owner, NULL), 0);
    s_check_partition(owner, n, 13, sizes);
    for (int k = 0; k < 13; k++) {
        assert_in_range(sizes[k], 3 * (n / 39), 3 * (n / 39 + 1));
        assert_true(s_distinct_labels(owner, labels, n, k, 7) <= 6);
    }
    /* McMahan's pathological split: 1 shard each -> 1 label each here */
    p = s_parse("shards:1");
    free(labels);
    n = 1000;
    labels = s_labels(n, 10, 0);
    assert_int_equal(gb_partition_assign(&p, labels, n, 10, 10, 3, owner, NULL), 0);
    for (int k = 0; k < 10; k++)
        assert_int_equal(s_distinct_labels(owner, labels, n, k, 10), 1);

    /* not enough samples for clients x K shards */
    gb_error_t err = {0};
    p = s_parse("shards:200");
    assert_int_equal(gb_partition_assign(&p, labels, n, 10, 10, 3, owner, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "shards:200 over 10 clients needs at least 2000 samples, "
                                    "have 1000"));
    free(owner);
    free(labels);
}

/* Per client, the fraction of its samples in its most common class, averaged. */
static double s_mean_top_fraction(const int32_t *owner, const int32_t *labels, int64_t n,
                                  int clients, int classes, int64_t *counts)
{
    memset(counts, 0, sizeof *counts * (size_t)clients * classes);
    for (int64_t i = 0; i < n; i++)
        counts[owner[i] * classes + labels[i]]++;
    double sum = 0;
    for (int k = 0; k < clients; k++) {
        int64_t tot = 0, top = 0;
        for (int c = 0; c < classes; c++) {
            tot += counts[k * classes + c];
            if (counts[k * classes + c] > top)
                top = counts[k * classes + c];
        }
        assert_true(tot > 0);
        sum += (double)top / (double)tot;
    }
    return sum / clients;
}

static void test_dirichlet(void **state)
{
    (void)state;
    const int64_t n = 6000;
    const int classes = 10, clients = 10;
    int32_t *labels = s_labels(n, classes, 1);
    int32_t *owner = malloc(n * sizeof *owner);
    int64_t counts[100], sizes[10];

    /* small alpha: each client dominated by few classes */
    gb_partition_t p = s_parse("dirichlet:0.05");
    double top_small = 0;
    for (uint64_t seed = 0; seed < 5; seed++) {
        assert_int_equal(gb_partition_assign(&p, labels, n, classes, clients, seed, owner, NULL),
                         0);
        s_check_partition(owner, n, clients, sizes);
        for (int k = 0; k < clients; k++)
            assert_true(sizes[k] >= GB_PARTITION_MIN_SAMPLES); /* the retry's guarantee */
        top_small += s_mean_top_fraction(owner, labels, n, clients, classes, counts) / 5;
    }
    assert_true(top_small > 0.6);

    /* huge alpha: every client gets ~1/10 of every class (600 -> 60 +- 5) */
    p = s_parse("dirichlet:10000");
    assert_int_equal(gb_partition_assign(&p, labels, n, classes, clients, 7, owner, NULL), 0);
    double top_large = s_mean_top_fraction(owner, labels, n, clients, classes, counts);
    for (int i = 0; i < clients * classes; i++)
        assert_in_range(counts[i], 55, 65);
    assert_true(top_large < 0.12);

    /* alpha 1: in between */
    p = s_parse("dirichlet:1");
    assert_int_equal(gb_partition_assign(&p, labels, n, classes, clients, 7, owner, NULL), 0);
    double top_mid = s_mean_top_fraction(owner, labels, n, clients, classes, counts);
    assert_true(top_mid > top_large && top_mid < top_small);

    /* tiny alpha, whose gammas underflow in double: still a valid partition */
    p = s_parse("dirichlet:0.001");
    assert_int_equal(gb_partition_assign(&p, labels, n, classes, 2, 7, owner, NULL), 0);
    s_check_partition(owner, n, 2, sizes);

    /* impossible: 10 classes at alpha 0.001 cannot feed 50 clients */
    gb_error_t err = {0};
    assert_int_equal(gb_partition_assign(&p, labels, 100, classes, 50, 7, owner, &err),
                     GB_ERANGE);
    assert_non_null(strstr(err.msg, "dirichlet:0.001 over 50 clients"));
    assert_non_null(strstr(err.msg, "use a larger alpha or fewer clients"));

    /* a class absent from the data is fine */
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int32_t)(i % 3);
    p = s_parse("dirichlet:0.5");
    assert_int_equal(gb_partition_assign(&p, labels, n, classes, clients, 7, owner, NULL), 0);
    s_check_partition(owner, n, clients, sizes);
    free(owner);
    free(labels);
}

static void test_argument_errors(void **state)
{
    (void)state;
    int32_t labels[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    int32_t owner[8];
    gb_partition_t p = s_parse("iid");
    gb_error_t err = {0};
    assert_int_equal(gb_partition_assign(&p, labels, 8, 2, 0, 1, owner, &err), GB_EINVAL);
    assert_int_equal(gb_partition_assign(&p, labels, 8, 2, 9, 1, owner, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "8 samples for 9 clients"));
    assert_int_equal(gb_partition_assign(&p, labels, 0, 2, 1, 1, owner, &err), GB_EINVAL);
    assert_int_equal(gb_partition_assign(NULL, labels, 8, 2, 2, 1, owner, &err), GB_EINVAL);
    assert_int_equal(gb_partition_assign(&p, NULL, 8, 2, 2, 1, owner, &err), GB_EINVAL);
    assert_int_equal(gb_partition_assign(&p, labels, 8, 2, 2, 1, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_partition_assign(&p, labels, 8, 0, 2, 1, owner, &err), GB_EINVAL);
    labels[5] = 2;
    assert_int_equal(gb_partition_assign(&p, labels, 8, 2, 2, 1, owner, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "sample 5 has label 2, expected 0..1"));
    labels[5] = -1;
    assert_int_equal(gb_partition_assign(&p, labels, 8, 2, 2, 1, owner, &err), GB_ERANGE);
    labels[5] = 1;
    gb_partition_t bad = {.kind = GB_PARTITION_DIRICHLET, .alpha = 0.0};
    assert_int_equal(gb_partition_assign(&bad, labels, 8, 2, 2, 1, owner, &err), GB_EINVAL);
    bad.alpha = NAN;
    assert_int_equal(gb_partition_assign(&bad, labels, 8, 2, 2, 1, owner, &err), GB_EINVAL);
    bad = (gb_partition_t){.kind = GB_PARTITION_SHARDS, .shards = 0};
    assert_int_equal(gb_partition_assign(&bad, labels, 8, 2, 2, 1, owner, &err), GB_EINVAL);
    bad = (gb_partition_t){.kind = (gb_partition_kind_t)99};
    assert_int_equal(gb_partition_assign(&bad, labels, 8, 2, 2, 1, owner, &err), GB_EINVAL);

    int32_t *idx = (int32_t *)1;
    int64_t count = 5;
    assert_int_equal(gb_partition_client(&p, labels, 8, 2, 2, 1, 2, &idx, &count, &err),
                     GB_EINVAL);
    assert_null(idx);
    assert_int_equal(count, 0);
    assert_non_null(strstr(err.msg, "client 2 of 2: expected 0..1"));
    assert_int_equal(gb_partition_client(&p, labels, 8, 2, 2, 1, -1, &idx, &count, &err),
                     GB_EINVAL);
    assert_int_equal(gb_partition_client(&p, labels, 0, 2, 2, 1, 0, &idx, &count, &err),
                     GB_EINVAL);
    assert_int_equal(gb_partition_client(&p, labels, 8, 2, 2, 1, 0, NULL, &count, &err),
                     GB_EINVAL);
    /* a failing assign leaves no index array */
    labels[0] = 7;
    assert_int_equal(gb_partition_client(&p, labels, 8, 2, 2, 1, 0, &idx, &count, &err),
                     GB_ERANGE);
    assert_null(idx);
    labels[0] = 0;

    assert_int_equal(gb_partition_indices(NULL, 3, 0, &idx, &count, &err), GB_EINVAL);
    assert_int_equal(gb_partition_indices(owner, -1, 0, &idx, &count, &err), GB_EINVAL);
    assert_int_equal(gb_partition_indices(owner, 8, -1, &idx, &count, &err), GB_EINVAL);
    assert_int_equal(gb_partition_indices(owner, 8, 0, NULL, &count, &err), GB_EINVAL);
    /* a client with nothing gets an empty, freeable array */
    for (int i = 0; i < 8; i++)
        owner[i] = 0;
    assert_int_equal(gb_partition_indices(owner, 8, 1, &idx, &count, &err), 0);
    assert_non_null(idx);
    assert_int_equal(count, 0);
    gb_free(idx);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    const int64_t n = 200;
    int32_t *labels = s_labels(n, 4, 1);
    const char *kinds[] = {"iid", "dirichlet:0.5", "shards:2"};
    for (size_t i = 0; i < 3; i++) {
        gb_partition_t p = s_parse(kinds[i]);
        int failures = 0;
        for (long k = 1; k < 50; k++) {
            int32_t *idx = (int32_t *)1;
            int64_t count = -1;
            gb_error_t err = {0};
            gb_alloc_fail_after(k);
            int rc = gb_partition_client(&p, labels, n, 4, 4, 5, 1, &idx, &count, &err);
            gb_alloc_fail_after(0);
            if (rc == 0) {
                assert_true(count > 0);
                gb_free(idx);
                break;
            }
            assert_int_equal(rc, GB_ENOMEM);
            assert_null(idx);
            failures++;
        }
        assert_true(failures >= 2); /* owner array and index list, plus scratch */
    }
    free(labels);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_format),
        cmocka_unit_test(test_every_sample_once_and_determinism),
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_iid_balanced),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_dirichlet),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
