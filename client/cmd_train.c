/* `glassbox-client train`: local training on a dataset, evaluating on its
 * test split after every epoch; optionally saves the model file. */
#include "util/args.h"
#include "commands.h"
#include "data_source.h"
#include "net/model_source.h"
#include "report.h"
#include "data/dataset.h"
#include "engine/optim.h"
#include "engine/train.h"
#include "net/snapshot.h"
#include "util/log.h"

#include <stdio.h>
#include <unistd.h>

typedef struct {
    const char *model;     /* preset, spec file or model file */
    gb_data_source_t data; /* dataset and its options */
    int epochs;            /* passes over the training split */
    int batch;             /* mini-batch size */
    double lr;             /* learning rate (0: the optimiser's default) */
    double momentum;       /* SGD momentum */
    double weight_decay;   /* L2 */
    const char *optimizer; /* sgd | adam */
    uint64_t seed;         /* init, shuffle and dropout seed */
    int threads;           /* workers */
    const char *save;      /* model file to write, or NULL */
    bool json;             /* JSON lines */
} s_opts_t;

static int s_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

static void s_usage(const gb_arg_t *opts, int n)
{
    printf("usage: glassbox-client train [options]\n\n"
           "Trains a model on a local dataset and evaluates it on the test split after\n"
           "every epoch. Data never leaves the machine.\n\noptions:\n");
    gb_args_print_help(opts, n);
    printf("\nexample:\n  glassbox-client train --model lenet --data fashion-mnist --epochs 3 "
           "--batch 32 --lr 0.05 --optimizer sgd --seed 1 --save lenet.gbm\n");
}

static int s_fail(const char *what, const gb_error_t *err)
{
    fprintf(stderr, "glassbox-client train: %s%s%s\n", what, *what ? ": " : "", err->msg);
    gb_log_debug("train failed: %s", gb_strerror(err->code));
    return 1;
}

static int s_save(const s_opts_t *o, gb_model_t *m, int64_t trained, gb_error_t *err)
{
    char samples[32];
    snprintf(samples, sizeof samples, "%lld", (long long)trained);
    gb_snapshot_meta_t meta[] = {
        {.key = GB_SNAPSHOT_META_DATASET, .value = (char *)o->data.data},
        {.key = GB_SNAPSHOT_META_TRAINED_SAMPLES, .value = samples},
    };
    return gb_snapshot_save_model(o->save, m, 0, meta, 2, err);
}

int gb_cmd_train(int argc, char **argv)
{
    s_opts_t o = {.model = "lenet", .data = gb_data_source_defaults(), .epochs = 1, .batch = 32,
                  .optimizer = "sgd", .seed = 1, .threads = s_default_threads()};
    gb_arg_t opts[GB_DATA_SOURCE_ARGS + 11] = {
        {"--model", GB_ARG_STRING, &o.model, 0, 0, NULL, "lenet, mlp, lstm, a spec file or a model file (default lenet)", false},
        {"--epochs", GB_ARG_INT, &o.epochs, 1, 100000, NULL, "passes over the training split (default 1)", false},
        {"--batch", GB_ARG_INT, &o.batch, 1, 65536, NULL, "mini-batch size (default 32)", false},
        {"--lr", GB_ARG_FLOAT, &o.lr, 1e-12, 1e3, NULL, "learning rate (default 0.05 sgd, 0.001 adam)", false},
        {"--momentum", GB_ARG_FLOAT, &o.momentum, 0, 0.999999, NULL, "SGD momentum (default 0)", false},
        {"--weight-decay", GB_ARG_FLOAT, &o.weight_decay, 0, 1e3, NULL, "L2 weight decay (default 0)", false},
        {"--optimizer", GB_ARG_CHOICE, &o.optimizer, 0, 0, "sgd|adam", "optimiser (default sgd)", false},
        {"--seed", GB_ARG_U64, &o.seed, 0, 0, NULL, "seed for init, shuffling and dropout (default 1)", false},
        {"--threads", GB_ARG_INT, &o.threads, 1, 256, NULL, "worker threads (default: cores, at most 8)", false},
        {"--save", GB_ARG_STRING, &o.save, 0, 0, NULL, "write the trained model file here", false},
        {"--json", GB_ARG_FLAG, &o.json, 0, 0, NULL, "one JSON object per line per epoch", false},
    };
    gb_data_source_args(&o.data, opts + 11);
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err)) {
        fprintf(stderr, "glassbox-client train: %s (see glassbox-client train --help)\n", err.msg);
        return 2;
    }
    if (help) {
        s_usage(opts, n_opts);
        return 0;
    }
    gb_optim_kind_t kind;
    if (gb_optim_parse_kind(o.optimizer, &kind))
        return 2; /* unreachable: CHOICE already checked */
    gb_optim_cfg_t cfg = gb_optim_defaults(kind);
    cfg.lr = o.lr > 0 ? (float)o.lr : kind == GB_OPTIM_SGD ? 0.05f : 1e-3f;
    cfg.momentum = (float)o.momentum;
    cfg.weight_decay = (float)o.weight_decay;

    int rc = 1;
    gb_dataset_t *train = NULL, *test = NULL;
    gb_model_t *m = NULL;
    gb_optim_t *optim = NULL;
    bool from_file = false;
    m = gb_model_source_open(o.model, &from_file, &err);
    if (!m) {
        rc = s_fail("", &err);
        goto out;
    }
    if (gb_data_source_load(&o.data, &train, &test, &err) ||
        gb_data_source_check_model(m, train, "model", &err)) {
        rc = s_fail("", &err);
        goto out;
    }
    if (!from_file)
        gb_model_init(m, o.seed);
    if (gb_model_plan(m, o.batch, o.threads, &err)) {
        rc = s_fail("planning", &err);
        goto out;
    }
    optim = gb_optim_new(&cfg, gb_model_param_count(m), &err);
    if (!optim) {
        rc = s_fail("optimiser", &err);
        goto out;
    }
    gb_report_t report;
    gb_report_init(&report, o.json, o.epochs);
    gb_batches_t train_b = {train, gb_dataset_fill, train->n, gb_dataset_loss(train)};
    gb_batches_t test_b = {test, gb_dataset_fill, test->n, gb_dataset_loss(test)};
    gb_report_extra_t extra;
    gb_data_source_extra(test, &extra);
    int64_t trained = 0;
    for (int e = 1; e <= o.epochs; e++) {
        gb_report_epoch_start(&report, e);
        gb_train_cfg_t tc = {.batch = o.batch, .seed = o.seed, .epoch = e,
                             .progress = gb_report_progress, .progress_arg = &report};
        gb_epoch_stats_t ts = {0}, es = {0};
        if (gb_train_epoch(m, optim, &train_b, &tc, &ts, &err)) {
            rc = s_fail("training", &err);
            goto out;
        }
        trained += ts.samples;
        if (gb_evaluate(m, &test_b, o.batch, &es, &err)) {
            rc = s_fail("evaluating", &err);
            goto out;
        }
        gb_data_source_units(test, es.mean_loss, &extra);
        gb_report_epoch(&report, &ts, &es, &extra, gb_model_flops_per_sample(m),
                        gb_model_threads(m), o.batch);
    }
    if (o.save) {
        if (s_save(&o, m, trained, &err)) {
            rc = s_fail("saving", &err);
            goto out;
        }
        if (!o.json)
            printf("saved %s\n", o.save);
    }
    gb_report_finish(&report);
    rc = 0;
out:
    gb_optim_destroy(&optim);
    gb_model_destroy(&m);
    gb_dataset_destroy(&train);
    gb_dataset_destroy(&test);
    return rc;
}
