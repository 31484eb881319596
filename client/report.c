/* Output of the local commands. JSON is written by hand: every value is a
 * number or one of the engine's fixed kernel names, so no escaping is
 * needed; keys are fixed. */
#include "report.h"

#include <math.h>

#include "engine/kernels.h"

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

/* Appends the regression keys (JSON) or words (plain) for extra. */
static void s_extra(const gb_report_extra_t *x, bool json)
{
    if (!x || !x->regression)
        return;
    if (json) {
        printf(", \"test_mse_units\": %.6g", x->mse_units);
        if (x->has_baseline)
            printf(", \"baseline_mse\": %.6f, \"baseline_mse_units\": %.6g", x->baseline,
                   x->baseline_units);
    } else {
        printf("  (%.4g in data units", x->mse_units);
        if (x->has_baseline)
            printf("; last-value baseline %.4f, %.4g in data units", x->baseline,
                   x->baseline_units);
        printf(")");
    }
}

void gb_report_epoch(gb_report_t *r, const gb_epoch_stats_t *train, const gb_epoch_stats_t *eval,
                     const gb_report_extra_t *extra, double flops_per_sample, int threads,
                     int batch)
{
    bool regression = extra && extra->regression;
    double sps = train->seconds > 0 ? (double)train->samples / train->seconds : 0.0;
    double esps = eval && eval->seconds > 0 ? (double)eval->samples / eval->seconds : 0.0;
    if (r->json) {
        char test_loss[32] = "null", test_acc[32] = "null", train_acc[32] = "null";
        if (eval && isfinite(eval->mean_loss))
            snprintf(test_loss, sizeof test_loss, "%.6f", eval->mean_loss);
        if (eval && !regression)
            snprintf(test_acc, sizeof test_acc, "%.6f", eval->accuracy);
        if (!regression)
            snprintf(train_acc, sizeof train_acc, "%.6f", train->accuracy);
        printf("{\"epoch\": %d, \"samples\": %lld, \"samples_per_s\": %.1f, \"train_loss\": %.6f, "
               "\"train_accuracy\": %s, \"test_loss\": %s, \"test_accuracy\": %s, "
               "\"seconds\": %.3f, \"eval_samples_per_s\": %.1f, \"flops_per_sample\": %.0f, "
               "\"threads\": %d, \"batch\": %d, \"kernels\": \"%s\"",
               r->epoch, (long long)train->samples, sps, train->mean_loss, train_acc, test_loss,
               test_acc, train->seconds, esps, flops_per_sample, threads, batch,
               gb_kernels_name(gb_kernels()));
        s_extra(extra, true);
        printf("}\n");
    } else if (regression) {
        printf("epoch %d/%d  train mse %.4f", r->epoch, r->epochs, train->mean_loss);
        if (eval)
            printf("  test mse %.4f", eval->mean_loss);
        s_extra(extra, false);
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
        char acc[32] = "null", loss[32] = "null";
        if (!regression)
            snprintf(acc, sizeof acc, "%.6f", eval->accuracy);
        if (isfinite(eval->mean_loss))
            snprintf(loss, sizeof loss, "%.6f", eval->mean_loss);
        printf("{\"samples\": %lld, \"test_loss\": %s, \"test_accuracy\": %s, "
               "\"seconds\": %.3f, \"eval_samples_per_s\": %.1f",
               (long long)eval->samples, loss, acc, eval->seconds, esps);
        s_extra(extra, true);
        printf("}\n");
    } else if (regression) {
        printf("test mse %.4f", eval->mean_loss);
        s_extra(extra, false);
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
        printf("{\"peak_rss_kb\": %ld}\n", rss);
    else
        printf("peak memory %.1f MiB\n", rss / 1024.0);
    fflush(stdout);
}
