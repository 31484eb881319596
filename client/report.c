/* Output of the local commands. JSON lines go through util/json.h
 * (jansson) like every other document Glassbox writes: reals with 9
 * significant digits, null for a figure that is not defined. */
#include "report.h"

#include <math.h>

#include "engine/kernels.h"
#include "util/json.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

long gb_report_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

void gb_report_init(gb_report_t *r, bool json, int epochs)
{
    r->json = json;
    r->progress = !json && isatty(STDERR_FILENO);
    r->last_draw = 0.0;
    r->start = gb_time_now();
    r->epoch = 0;
    r->epochs = epochs;
}

void gb_report_epoch_start(gb_report_t *r, int epoch)
{
    r->epoch = epoch;
    r->start = gb_time_now();
    r->last_draw = 0.0;
}

void gb_report_progress(void *arg, int64_t done, int64_t total, double mean_loss)
{
    gb_report_t *r = arg;
    if (!r->progress)
        return;
    double now = gb_time_now();
    if (done < total && now - r->last_draw < 0.1)
        return;
    r->last_draw = now;
    double rate = now > r->start ? (double)done / (now - r->start) : 0.0;
    int width = 30, filled = (int)(width * (double)done / (double)total);
    char bar[31];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  loss %.4f  %.0f samples/s ", r->epoch,
            r->epochs, bar, (long long)done, (long long)total, mean_loss, rate);
    if (done >= total)
        fprintf(stderr, "\r%*s\r", 100, "");
    fflush(stderr);
}

/* Sets the regression keys of extra on o (JSON lines). */
static void s_extra_json(json_t *o, const gb_report_extra_t *x)
{
    if (!o || !x || !x->regression)
        return;
    json_object_set_new(o, "test_mse_units", gb_json_real_or_null(x->mse_units));
    if (x->has_baseline) {
        json_object_set_new(o, "baseline_mse", gb_json_real_or_null(x->baseline));
        json_object_set_new(o, "baseline_mse_units", gb_json_real_or_null(x->baseline_units));
    }
}

/* Appends the regression words for extra (plain lines). */
static void s_extra_text(const gb_report_extra_t *x)
{
    if (!x || !x->regression)
        return;
    printf("  (%.4g in data units", x->mse_units);
    if (x->has_baseline)
        printf("; last-value baseline %.4f, %.4g in data units", x->baseline, x->baseline_units);
    printf(")");
}

/* Prints o as one line and frees it; a line that cannot be written is said
 * on stderr (the commands' output is best effort, as printf's is). */
static void s_print(json_t *o)
{
    gb_error_t err = {0};
    if (gb_json_print(stdout, o, &err))
        fprintf(stderr, "glassbox-client: %s\n", err.msg);
    json_decref(o);
}

void gb_report_epoch(gb_report_t *r, const gb_epoch_stats_t *train, const gb_epoch_stats_t *eval,
                     const gb_report_extra_t *extra, double flops_per_sample, int threads,
                     int batch)
{
    bool regression = extra && extra->regression;
    double sps = train->seconds > 0 ? (double)train->samples / train->seconds : 0.0;
    double esps = eval && eval->seconds > 0 ? (double)eval->samples / eval->seconds : 0.0;
    if (r->json) {
        json_t *o = json_pack(
            "{s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i, s:s}", "epoch",
            r->epoch, "samples", (json_int_t)train->samples, "samples_per_s", gb_json_real(sps),
            "train_loss", gb_json_real_or_null(train->mean_loss), "train_accuracy",
            regression ? json_null() : gb_json_real_or_null(train->accuracy), "test_loss",
            eval ? gb_json_real_or_null(eval->mean_loss) : json_null(), "test_accuracy",
            eval && !regression ? gb_json_real_or_null(eval->accuracy) : json_null(), "seconds",
            gb_json_real_or_null(train->seconds), "eval_samples_per_s", gb_json_real(esps),
            /* a count of operations: an integer, as it always was */
            "flops_per_sample", json_integer((json_int_t)llround(flops_per_sample)), "threads",
            threads, "batch", batch, "kernels", gb_kernels_name(gb_kernels()));
        s_extra_json(o, extra);
        s_print(o);
    } else if (regression) {
        printf("epoch %d/%d  train mse %.4f", r->epoch, r->epochs, train->mean_loss);
        if (eval)
            printf("  test mse %.4f", eval->mean_loss);
        s_extra_text(extra);
        printf("  %.0f samples/s  %.1f s\n", sps, train->seconds);
    } else {
        printf("epoch %d/%d  train loss %.4f acc %5.2f%%", r->epoch, r->epochs, train->mean_loss,
               100.0 * train->accuracy);
        if (eval)
            printf("  test loss %.4f acc %5.2f%%", eval->mean_loss, 100.0 * eval->accuracy);
        printf("  %.0f samples/s  %.1f s\n", sps, train->seconds);
    }
    fflush(stdout);
}

void gb_report_eval(const gb_report_t *r, const gb_epoch_stats_t *eval,
                    const gb_report_extra_t *extra)
{
    bool regression = extra && extra->regression;
    double esps = eval->seconds > 0 ? (double)eval->samples / eval->seconds : 0.0;
    if (r->json) {
        json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o}", "samples", (json_int_t)eval->samples,
                              "test_loss", gb_json_real_or_null(eval->mean_loss), "test_accuracy",
                              regression ? json_null() : gb_json_real_or_null(eval->accuracy),
                              "seconds", gb_json_real_or_null(eval->seconds),
                              "eval_samples_per_s", gb_json_real(esps));
        s_extra_json(o, extra);
        s_print(o);
    } else if (regression) {
        printf("test mse %.4f", eval->mean_loss);
        s_extra_text(extra);
        printf("  (%lld samples, %.0f samples/s)\n", (long long)eval->samples, esps);
    } else {
        printf("test loss %.4f  accuracy %.2f%%  (%lld samples, %.0f samples/s)\n",
               eval->mean_loss, 100.0 * eval->accuracy, (long long)eval->samples, esps);
    }
    fflush(stdout);
}

void gb_report_finish(const gb_report_t *r)
{
    long rss = gb_report_peak_rss_kb();
    if (r->json)
        s_print(json_pack("{s:I}", "peak_rss_kb", (json_int_t)rss));
    else
        printf("peak memory %.1f MiB\n", rss / 1024.0);
    fflush(stdout);
}
