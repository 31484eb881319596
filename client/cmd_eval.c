/* `glassbox-client eval`: evaluates a saved model file on a dataset's test
 * split. */
#include "util/args.h"
#include "commands.h"
#include "data_source.h"
#include "report.h"
#include "data/dataset.h"
#include "engine/train.h"
#include "net/snapshot.h"

#include <stdio.h>
#include <unistd.h>

int gb_cmd_eval(int argc, char **argv)
{
    const char *model_file = NULL;
    gb_data_source_t data = gb_data_source_defaults();
    int batch = 64, threads = 1;
    bool json = false;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    gb_arg_t opts[4 + GB_DATA_SOURCE_ARGS] = {
        {"--model-file", GB_ARG_STRING, &model_file, 0, 0, NULL, "model file written by train --save (required)", false},
        {"--batch", GB_ARG_INT, &batch, 1, 65536, NULL, "evaluation batch size (default 64)", false},
        {"--threads", GB_ARG_INT, &threads, 1, 256, NULL, "worker threads (default: cores, at most 8)", false},
        {"--json", GB_ARG_FLAG, &json, 0, 0, NULL, "print one JSON object", false},
    };
    gb_data_source_args(&data, opts + 4);
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err)) {
        fprintf(stderr, "glassbox-client eval: %s (see glassbox-client eval --help)\n", err.msg);
        return 2;
    }
    if (help) {
        printf("usage: glassbox-client eval --model-file FILE [options]\n\n"
               "Evaluates a saved model on the test split of a dataset.\n\noptions:\n");
        gb_args_print_help(opts, n_opts);
        return 0;
    }
    if (!model_file) {
        fprintf(stderr, "glassbox-client eval: --model-file is required (see glassbox-client "
                        "eval --help)\n");
        return 2;
    }
    int rc = 1;
    gb_dataset_t *test = NULL;
    gb_model_t *m = gb_snapshot_load_model(model_file, NULL, &err);
    if (!m)
        goto fail;
    if (gb_data_source_load(&data, NULL, &test, &err) ||
        gb_data_source_check_model(m, test, model_file, &err))
        goto fail;
    if (batch > test->n)
        batch = (int)test->n;
    if (gb_model_plan(m, batch, threads, &err))
        goto fail;
    gb_batches_t b = {test, gb_dataset_fill, test->n, gb_dataset_loss(test)};
    gb_epoch_stats_t es = {0};
    if (gb_evaluate(m, &b, batch, &es, &err))
        goto fail;
    gb_report_extra_t extra;
    gb_data_source_extra(test, &extra);
    gb_data_source_units(test, es.mean_loss, &extra);
    gb_report_t report;
    gb_report_init(&report, json, 0);
    gb_report_eval(&report, &es, &extra);
    gb_report_finish(&report);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "glassbox-client eval: %s\n", err.msg);
out:
    gb_model_destroy(&m);
    gb_dataset_destroy(&test);
    return rc;
}
