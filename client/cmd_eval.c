/* `glassbox-client eval`: evaluates a saved model file on a dataset's test
 * split. */
#include "args.h"
#include "commands.h"
#include "report.h"
#include "data/dataset.h"
#include "engine/train.h"
#include "net/snapshot.h"

#include <stdio.h>
#include <unistd.h>

int gb_cmd_eval(int argc, char **argv)
{
    const char *model_file = NULL, *data = "fashion-mnist";
    int batch = 64, limit = 0, threads = 1;
    bool json = false;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    gb_arg_t opts[] = {
        {"--model-file", GB_ARG_STRING, &model_file, 0, 0, NULL, "model file written by train --save (required)", false},
        {"--data", GB_ARG_STRING, &data, 0, 0, NULL, "fashion-mnist or idx:DIR (default fashion-mnist)", false},
        {"--batch", GB_ARG_INT, &batch, 1, 65536, NULL, "evaluation batch size (default 64)", false},
        {"--threads", GB_ARG_INT, &threads, 1, 256, NULL, "worker threads (default: cores, at most 8)", false},
        {"--limit", GB_ARG_INT, &limit, 1, 2147483647, NULL, "use only the first N test samples", false},
        {"--json", GB_ARG_FLAG, &json, 0, 0, NULL, "print one JSON object", false},
    };
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
    if (gb_dataset_load(data, GB_SPLIT_TEST, &test, &err))
        goto fail;
    if (limit > 0 && gb_dataset_limit(test, limit, &err))
        goto fail;
    gb_shape_t in = gb_model_input_shape(m), out = gb_model_output_shape(m);
    if (gb_shape_size(&in) != gb_dataset_sample_size(test) ||
        gb_shape_size(&out) != (size_t)test->n_classes) {
        gb_error_set(&err, GB_ESHAPE, "model %s does not fit dataset %s (%zu inputs, %zu outputs "
                                      "against %zu features, %d classes)",
                     model_file, data, gb_shape_size(&in), gb_shape_size(&out),
                     gb_dataset_sample_size(test), test->n_classes);
        goto fail;
    }
    if (batch > test->n)
        batch = (int)test->n;
    if (gb_model_plan(m, batch, threads, &err))
        goto fail;
    gb_batches_t b = {test, gb_dataset_fill, test->n, GB_LOSS_SOFTMAX_CE};
    gb_epoch_stats_t es = {0};
    if (gb_evaluate(m, &b, batch, &es, &err))
        goto fail;
    gb_report_t report;
    gb_report_init(&report, json, 0);
    gb_report_eval(&report, &es);
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
