/* gb_ig_bench: integrated gradients' speed, Glassbox's side of the
 * explanation benchmark (tests/bench/bench.py --model ig; README.md there).
 *
 *   gb_ig_bench [--model lenet|lstm] [--batch N] [--threads T] [--images N]
 *               [--steps S] [--rounds R] [--seed S] [--data DIR]
 *
 * Loads the first --images (1,000) Fashion-MNIST test images through the
 * dataset API (inputs x/255, targets their true labels), builds the preset
 * with gb_model_init(seed): trained weights are not needed to measure speed,
 * the work is the same for any weights. Plans it at --batch (default 64)
 * samples and --threads workers, and explains every image by integrated
 * gradients: Gauss-Legendre, --steps (32) points, max_doublings 0 (so the work
 * is fixed: no sample's steps are doubled whatever its completeness error),
 * zero baseline. Only gb_explain is timed: one untimed warm-up call on the
 * first batch, then --rounds (3) calls over all the images; the fastest counts
 * (other processes only ever slow a round down). Prints one JSON line:
 *
 *   {"model": "lenet", "steps": 32, "images": 1000, "seconds": S,
 *    "images_per_s": N, "threads": T, "batch": B, "mean_completeness": C,
 *    "rounds": [S1, S2, S3]}
 *
 * mean_completeness is the mean over the images of IG's relative
 * completeness error |sum(attr) - (f(x) - f(0))| / |f(x) - f(0)|, a check
 * that the work done was the real thing. Not a test; built by
 * tests/bench/bench.cmake into the top of the build tree. */
#include "data/dataset.h"
#include "data/dataset_load.h"
#include "engine/model.h"
#include "explain/attribution.h"
#include "util/process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROUNDS 20

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int s_int_arg(const char *flag, const char *value, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "gb_ig_bench: %s wants an integer in %d..%d\n", flag, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    gb_process_pin_blas(argv);
    const char *model_name = "lenet", *data_dir = NULL;
    int batch = 64, threads = 1, images = 1000, steps = 32, rounds = 3, seed = 1;
    /* Every option takes a value: step two at a time. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--model") == 0 && v)
            model_name = v;
        else if (strcmp(a, "--data") == 0 && v)
            data_dir = v;
        else if (strcmp(a, "--batch") == 0)
            rc = s_int_arg(a, v, 1, 1 << 16, &batch);
        else if (strcmp(a, "--threads") == 0)
            rc = s_int_arg(a, v, 1, 256, &threads);
        else if (strcmp(a, "--images") == 0)
            rc = s_int_arg(a, v, 1, 10000, &images);
        else if (strcmp(a, "--steps") == 0)
            rc = s_int_arg(a, v, 1, GB_IG_MAX_STEPS, &steps);
        else if (strcmp(a, "--rounds") == 0)
            rc = s_int_arg(a, v, 1, MAX_ROUNDS, &rounds);
        else if (strcmp(a, "--seed") == 0)
            rc = s_int_arg(a, v, 0, 1 << 30, &seed);
        else {
            fprintf(stderr,
                    "usage: gb_ig_bench [--model lenet|lstm] [--batch N] [--threads T] "
                    "[--images N] [--steps S] [--rounds R] [--seed S] [--data DIR]\n");
            return 2;
        }
        if (rc)
            return 2;
    }
    if (strcmp(model_name, "lenet") != 0 && strcmp(model_name, "lstm") != 0) {
        fprintf(stderr, "gb_ig_bench: --model lenet or lstm\n");
        return 2;
    }

    gb_error_t err = {0};
    gb_dataset_t *test = NULL;
    gb_model_t *m = NULL;
    gb_explainer_t *e = NULL;
    float *x = NULL, *attr = NULL;
    int32_t *idx = NULL, *labels = NULL;
    double *completeness = NULL;
    int status = 1;
    char name[4200];
    if (data_dir)
        snprintf(name, sizeof name, "idx:%s", data_dir);
    else
        snprintf(name, sizeof name, "fashion-mnist");
    if (gb_dataset_load(name, GB_SPLIT_TEST, &test, &err))
        goto fail;
    if (test->n < images) {
        fprintf(stderr, "gb_ig_bench: %s has only %lld test images\n", name, (long long)test->n);
        goto done;
    }
    size_t size = gb_dataset_sample_size(test);
    x = malloc((size_t)images * size * sizeof *x);
    attr = malloc((size_t)images * size * sizeof *attr);
    idx = malloc((size_t)images * sizeof *idx);
    labels = malloc((size_t)images * sizeof *labels);
    completeness = malloc((size_t)images * sizeof *completeness);
    if (!x || !attr || !idx || !labels || !completeness) {
        fprintf(stderr, "gb_ig_bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < images; i++)
        idx[i] = i;
    /* The lstm preset reads (28, 28) and lenet (1, 28, 28): the same 784
     * floats per image, row-major, so one fill serves both. */
    if (gb_dataset_fill(test, idx, images, x, labels, NULL, &err))
        goto fail;

    if (!(m = gb_model_new(model_name, &err)))
        goto fail;
    gb_model_init(m, (uint64_t)seed);
    if (gb_model_plan(m, batch, threads, &err))
        goto fail;
    gb_explain_cfg_t cfg = gb_explain_defaults(GB_EXPLAIN_IG);
    cfg.steps = steps;
    cfg.rule = GB_IG_GAUSS_LEGENDRE;
    cfg.baseline = NULL; /* zeros */
    cfg.max_doublings = 0;
    if (!(e = gb_explainer_new(m, &cfg, &err)))
        goto fail;

    int warm = images < batch ? images : batch;
    if (gb_explain(e, x, labels, warm, attr, completeness, NULL, &err))
        goto fail;
    double secs[MAX_ROUNDS], best = 0.0;
    for (int r = 0; r < rounds; r++) {
        double t0 = s_now();
        if (gb_explain(e, x, labels, images, attr, completeness, NULL, &err))
            goto fail;
        secs[r] = s_now() - t0;
        if (r == 0 || secs[r] < best)
            best = secs[r];
    }
    double mean_c = 0.0;
    for (int i = 0; i < images; i++)
        mean_c += completeness[i];
    mean_c /= images;

    printf("{\"model\": \"%s\", \"steps\": %d, \"images\": %d, \"seconds\": %.6f, "
           "\"images_per_s\": %.3f, \"threads\": %d, \"batch\": %d, "
           "\"mean_completeness\": %.6g, \"rounds\": [",
           model_name, steps, images, best, images / best, threads, batch, mean_c);
    for (int r = 0; r < rounds; r++)
        printf("%s%.6f", r ? ", " : "", secs[r]);
    printf("]}\n");
    status = 0;
    goto done;
fail:
    fprintf(stderr, "gb_ig_bench: %s\n", err.msg);
done:
    gb_explainer_destroy(&e);
    gb_model_destroy(&m);
    gb_dataset_destroy(&test);
    free(x);
    free(attr);
    free(idx);
    free(labels);
    free(completeness);
    return status;
}
