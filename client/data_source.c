/* Dataset options shared by the local commands and the daemon (see
 * data_source.h). A client's partition is computed from the labels of the
 * whole (limited) split and kept as a subset copy, so what the engine
 * trains on is an ordinary dataset. */
#include "data_source.h"
#include "data/dataset_load.h"
#include "data/partition.h"
#include "data/series.h"
#include "util/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

gb_data_source_t gb_data_source_defaults(void)
{
    gb_data_source_t d = {.data = "fashion-mnist", .horizon = 1,
                          .test_fraction = GB_DATA_TEST_FRACTION, .partition = "iid",
                          .clients = 1, .partition_seed = 1};
    return d;
}

void gb_data_source_partition_args(gb_data_source_t *d, gb_arg_t *o)
{
    const gb_arg_t entries[GB_DATA_SOURCE_PARTITION_ARGS] = {
        {"--partition", GB_ARG_STRING, &d->partition, 0, 0, NULL,
         "how the training split is cut among --clients: iid, dirichlet:ALPHA or shards:K "
         "(default iid)", false},
        {"--clients", GB_ARG_INT, &d->clients, 1, 1000000, NULL,
         "clients the training split is cut for (default 1: not cut)", false},
        {"--index", GB_ARG_INT, &d->index, 0, 999999, NULL,
         "this client's slice, 0..clients-1 (default 0)", false},
        {"--partition-seed", GB_ARG_U64, &d->partition_seed, 0, 0, NULL,
         "the partition's seed, the same on every client (default 1)", false},
        {"--partition-test", GB_ARG_FLAG, &d->partition_test, 0, 0, NULL,
         "cut the test split the same way (default: every client tests on all of it)", false},
    };
    for (int i = 0; i < GB_DATA_SOURCE_PARTITION_ARGS; i++)
        o[i] = entries[i];
}

int gb_data_source_check(const gb_data_source_t *d, gb_error_t *err)
{
    gb_partition_t p;
    gb_error_t local = {0};
    if (gb_partition_parse(d->partition ? d->partition : "iid", &p, &local))
        return gb_error_set(err, GB_EUSAGE, "--partition: %s", local.msg);
    if (d->clients < 1)
        return gb_error_set(err, GB_EUSAGE, "--clients %d: expected 1 or more", d->clients);
    if (d->index < 0 || d->index >= d->clients)
        return gb_error_set(err, GB_EUSAGE, "--index %d is outside 0..%d for --clients %d",
                            d->index, d->clients - 1, d->clients);
    return 0;
}

char *gb_data_source_describe(const gb_data_source_t *d, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    gb_partition_t p;
    gb_error_t err = {0};
    char scheme[64];
    if (d->clients <= 1 ||
        gb_partition_parse(d->partition ? d->partition : "iid", &p, &err) != 0) {
        snprintf(buf, cap, "%s", d->data);
        return buf;
    }
    snprintf(buf, cap, "%s %s %d/%d%s", d->data, gb_partition_format(&p, scheme, sizeof scheme),
             d->index, d->clients, d->partition_test ? " (test cut too)" : "");
    return buf;
}

int gb_data_source_partition_plan(const gb_data_source_t *d, const gb_dataset_t *ds,
                                  gb_partition_plan_t *plan, gb_error_t *err)
{
    memset(plan, 0, sizeof *plan);
    int rc = gb_partition_parse(d->partition ? d->partition : "iid", &plan->partition, err);
    if (rc)
        return rc;
    plan->labels = ds->labels;
    plan->n_classes = ds->n_classes;
    if (plan->labels)
        return 0;
    if (plan->partition.kind != GB_PARTITION_IID)
        return gb_error_set(err, GB_EINVAL, "%s: a regression dataset can only be "
                            "partitioned iid, not '%s'", ds->name, d->partition);
    plan->zeros = gb_calloc(ds->n ? (size_t)ds->n : 1, sizeof *plan->zeros);
    if (!plan->zeros)
        return gb_error_set(err, GB_ENOMEM, "partition: out of memory");
    plan->labels = plan->zeros;
    plan->n_classes = 1;
    return 0;
}

void gb_data_source_partition_plan_free(gb_partition_plan_t *plan)
{
    gb_free(plan->zeros);
    memset(plan, 0, sizeof *plan);
}

/* Replaces *ds by this client's slice of it. */
static int s_partition(const gb_data_source_t *d, gb_dataset_t **ds, gb_error_t *err)
{
    const gb_dataset_t *s = *ds;
    gb_partition_plan_t plan;
    int rc = gb_data_source_partition_plan(d, s, &plan, err);
    if (rc)
        return rc;
    int32_t *idx = NULL;
    int64_t count = 0;
    gb_dataset_t *sub = NULL;
    rc = gb_partition_client(&plan.partition, plan.labels, s->n, plan.n_classes, d->clients,
                             d->partition_seed, d->index, &idx, &count, err);
    if (rc == 0)
        rc = gb_dataset_subset(s, idx, count, &sub, err);
    gb_free(idx);
    gb_data_source_partition_plan_free(&plan);
    if (rc)
        return gb_error_prefix(err, rc, "%s: client %d of %d: ", s->name, d->index, d->clients);
    gb_dataset_destroy(ds);
    *ds = sub;
    return 0;
}

void gb_data_source_args(gb_data_source_t *d, gb_arg_t *o)
{
    const gb_arg_t entries[GB_DATA_SOURCE_ARGS] = {
        {"--data", GB_ARG_STRING, &d->data, 0, 0, NULL,
         "fashion-mnist, idx:DIR or csv:FILE (default fashion-mnist)", false},
        {"--label", GB_ARG_STRING, &d->label, 0, 0, NULL, "csv: the target column", false},
        {"--features", GB_ARG_STRING, &d->features, 0, 0, NULL,
         "csv: input columns, comma-separated (default: all but the label; a series "
         "always includes it)",
         false},
        {"--window", GB_ARG_INT, &d->window, 1, 100000, NULL,
         "csv: cut the rows into windows of T steps (a time series)", false},
        {"--horizon", GB_ARG_INT, &d->horizon, 1, 100000, NULL,
         "csv: predict the target K steps after the window (default 1)", false},
        {"--regression", GB_ARG_FLAG, &d->regression, 0, 0, NULL,
         "csv: the label is a real value (MSE), not a class", false},
        {"--test-fraction", GB_ARG_FLOAT, &d->test_fraction, 0.001, 0.999, NULL,
         "csv: the last fraction of the rows is the test split (default 0.2)", false},
        {"--limit", GB_ARG_INT, &d->limit, 1, 2147483647, NULL,
         "use only the first N samples of each split", false},
    };
    for (int i = 0; i < GB_DATA_SOURCE_ARGS; i++)
        o[i] = entries[i];
}

int gb_data_source_load(const gb_data_source_t *d, gb_dataset_t **train, gb_dataset_t **test,
                        gb_error_t *err)
{
    gb_data_opts_t opts = GB_DATA_OPTS_INIT;
    opts.label = d->label;
    opts.features = d->features;
    opts.window = d->window;
    opts.horizon = d->horizon;
    opts.regression = d->regression;
    opts.test_fraction = d->test_fraction;
    int rc = 0;
    if (train && (rc = gb_dataset_load_opts(d->data, GB_SPLIT_TRAIN, &opts, train, err)))
        return rc;
    if ((rc = gb_dataset_load_opts(d->data, GB_SPLIT_TEST, &opts, test, err)))
        goto fail;
    if (d->limit > 0 && ((train && (rc = gb_dataset_limit(*train, d->limit, err))) ||
                         (rc = gb_dataset_limit(*test, d->limit, err))))
        goto fail;
    if (d->clients > 1) {
        if ((rc = gb_data_source_check(d, err)) ||
            (train && (rc = s_partition(d, train, err))) ||
            (d->partition_test && (rc = s_partition(d, test, err))))
            goto fail;
    }
    if (train && (*train)->n == 0) {
        rc = gb_error_set(err, GB_EINVAL, "%s: the training split is empty", d->data);
        goto fail;
    }
    if ((*test)->n == 0) {
        rc = gb_error_set(err, GB_EINVAL, "%s: the test split is empty", d->data);
        goto fail;
    }
    return 0;
fail:
    if (train)
        gb_dataset_destroy(train);
    gb_dataset_destroy(test);
    return rc;
}

int gb_data_source_check_model(const gb_model_t *m, const gb_dataset_t *ds, const char *what,
                               gb_error_t *err)
{
    gb_shape_t in = gb_model_input_shape(m), out = gb_model_output_shape(m);
    char a[64], b[64];
    if (gb_shape_size(&in) != gb_dataset_sample_size(ds))
        return gb_error_set(err, GB_ESHAPE, "%s input %s does not fit %s samples of shape %s",
                            what, gb_shape_format(&in, a, sizeof a), ds->name,
                            gb_shape_format(&ds->shape, b, sizeof b));
    int outputs = gb_dataset_outputs(ds);
    if (gb_shape_size(&out) != (size_t)outputs)
        return gb_error_set(err, GB_ESHAPE, "%s has %zu outputs but %s has %d %s", what,
                            gb_shape_size(&out), ds->name, outputs,
                            gb_dataset_task(ds) == GB_TASK_REGRESSION ? "targets" : "classes");
    return 0;
}

void gb_data_source_extra(const gb_dataset_t *test, gb_report_extra_t *x)
{
    memset(x, 0, sizeof *x);
    x->regression = gb_dataset_task(test) == GB_TASK_REGRESSION;
    if (!x->regression || test->shape.rank != 2 || !test->starts)
        return;
    gb_error_t err = {0};
    x->has_baseline =
        gb_series_last_value_mse(test, &x->baseline, &x->baseline_units, &err) == 0;
}

void gb_data_source_units(const gb_dataset_t *test, double mse, gb_report_extra_t *x)
{
    if (x->regression)
        x->mse_units = gb_dataset_mse_units(test, mse);
}
