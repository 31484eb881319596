/* Training and evaluation loops over a caller's batch source. Buffers for one
 * batch (inputs, labels or targets, outputs) and the epoch's permutation are
 * allocated once per call; the steps themselves never allocate. The step
 * limit, FedProx term and cancellation flag are checked inside the loop, as
 * cheap tests per batch, so a plain epoch runs exactly as before. */
#include "engine/train.h"
#include "util/alloc.h"
#include "util/rng.h"
#include "util/time.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

typedef struct {
    int32_t *order;  /* sample order for the epoch */
    float *x;        /* batch inputs */
    int32_t *labels; /* batch labels */
    float *values;   /* batch regression targets */
    float *out;      /* batch outputs */
} s_buffers_t;

static void s_free(s_buffers_t *b)
{
    gb_free(b->order);
    gb_free_aligned(b->x);
    gb_free(b->labels);
    gb_free_aligned(b->values);
    gb_free_aligned(b->out);
}

static int s_alloc(gb_model_t *m, const gb_batches_t *data, int batch, s_buffers_t *b,
                   gb_error_t *err)
{
    gb_shape_t in = gb_model_input_shape(m), out = gb_model_output_shape(m);
    size_t in_size = gb_shape_size(&in), out_size = gb_shape_size(&out);
    b->order = gb_malloc((size_t)data->n * sizeof *b->order);
    b->x = gb_alloc_aligned((size_t)batch * in_size * sizeof(float));
    b->labels = gb_malloc((size_t)batch * sizeof *b->labels);
    b->values = gb_alloc_aligned((size_t)batch * out_size * sizeof(float));
    b->out = gb_alloc_aligned((size_t)batch * out_size * sizeof(float));
    if (!b->order || !b->x || !b->labels || !b->values || !b->out) {
        s_free(b);
        return gb_error_set(err, GB_ENOMEM, "out of memory for batch buffers");
    }
    for (int64_t i = 0; i < data->n; i++)
        b->order[i] = (int32_t)i;
    return 0;
}

static int s_check(gb_model_t *m, const gb_batches_t *data, int batch, gb_error_t *err)
{
    if (!data || !data->fill || data->n < 1 || data->n > INT32_MAX)
        return gb_error_set(err, GB_EINVAL, "no samples to train or evaluate on");
    if (batch < 1 || batch > gb_model_max_batch(m))
        return gb_error_set(err, GB_ESHAPE, "batch %d out of range: model planned for 1..%d",
                            batch, gb_model_max_batch(m));
    return 0;
}

/* True when no value is NaN or infinite (x - x is 0 only for finite x).
 * 16 independent sums, so that the compiler vectorises the loop without
 * reassociating anything: one chain of dependent adds cost about 50 us a
 * step for LeNet's 80,202 gradients, on the thread the others wait for. */
static bool s_all_finite(const float *v, size_t n)
{
    enum { LANES = 16 };
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += v[i + j] - v[i + j];
    for (; i < n; i++)
        acc[0] += v[i] - v[i];
    float all = 0.0f;
    for (int j = 0; j < LANES; j++)
        all += acc[j];
    return all == 0.0f;
}

/* Counts rows whose largest output is the label (first maximum wins). */
static int s_correct(const float *out, const int32_t *labels, int rows, int classes)
{
    int correct = 0;
    for (int r = 0; r < rows; r++) {
        const float *z = out + (size_t)r * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best])
                best = c;
        correct += best == labels[r];
    }
    return correct;
}

/* grads += mu (w - center): the gradient of (mu / 2) ||w - center||^2. */
static void s_prox(float *grads, const float *w, const float *center, size_t n, float mu)
{
    for (size_t i = 0; i < n; i++)
        grads[i] += mu * (w[i] - center[i]);
}

static int s_check_train_cfg(const gb_train_cfg_t *cfg, gb_error_t *err)
{
    if (cfg->max_steps < 0)
        return gb_error_set(err, GB_EINVAL, "max_steps must be >= 0, got %ld", cfg->max_steps);
    if (!(cfg->prox_mu >= 0.0f) || !isfinite(cfg->prox_mu))
        return gb_error_set(err, GB_EINVAL, "FedProx mu must be finite and >= 0, got %g",
                            (double)cfg->prox_mu);
    if (cfg->prox_mu > 0.0f && !cfg->prox_center)
        return gb_error_set(err, GB_EINVAL, "FedProx mu %g needs the global parameters",
                            (double)cfg->prox_mu);
    return 0;
}

int gb_train_epoch(gb_model_t *m, gb_optim_t *optim, const gb_batches_t *data,
                   const gb_train_cfg_t *cfg, gb_epoch_stats_t *stats, gb_error_t *err)
{
    int rc = s_check(m, data, cfg->batch, err);
    if (!rc)
        rc = s_check_train_cfg(cfg, err);
    if (rc)
        return rc;
    s_buffers_t b = {0};
    if ((rc = s_alloc(m, data, cfg->batch, &b, err)))
        return rc;
    gb_shape_t out = gb_model_output_shape(m);
    int classes = (int)gb_shape_size(&out);
    gb_rng_t rng;
    gb_rng_seed(&rng, cfg->seed, 0x5348554646ULL + (uint64_t)cfg->epoch);
    gb_rng_shuffle(&rng, b.order, data->n);
    gb_target_t target = {.kind = data->loss, .labels = b.labels, .values = b.values};
    double t0 = gb_time_now(), loss_sum = 0.0;
    int64_t done = 0, correct = 0;
    long step = 0;
    bool cancelled = false;
    size_t np = gb_model_param_count(m);
    while (done < data->n && (cfg->max_steps == 0 || step < cfg->max_steps)) {
        if (cfg->cancel && atomic_load(cfg->cancel)) {
            cancelled = true;
            break;
        }
        int n = (int)(data->n - done < cfg->batch ? data->n - done : cfg->batch);
        if ((rc = data->fill(data->source, b.order + done, n, b.x, b.labels, b.values, err)))
            goto out;
        gb_model_set_train(m, true, gb_hash2(cfg->seed, ((uint64_t)cfg->epoch << 32) + step));
        double loss = 0.0;
        if ((rc = gb_model_train_step(m, b.x, &target, n, &loss, b.out, err)))
            goto out;
        if (!isfinite(loss)) {
            rc = gb_error_set(err, GB_ERANGE,
                              "training diverged: loss is %g at sample %lld of epoch %d (lower "
                              "the learning rate)",
                              loss, (long long)done, cfg->epoch);
            goto out;
        }
        if (cfg->prox_mu > 0.0f)
            s_prox(gb_model_grads(m), gb_model_params(m), cfg->prox_center, np, cfg->prox_mu);
        /* A finite loss can still come with an overflowed gradient: never let
         * one into the parameters. */
        if (!s_all_finite(gb_model_grads(m), np)) {
            rc = gb_error_set(err, GB_ERANGE,
                              "training diverged: a gradient is not finite at sample %lld of "
                              "epoch %d (lower the learning rate)",
                              (long long)done, cfg->epoch);
            goto out;
        }
        gb_optim_step(optim, gb_model_params(m), gb_model_grads(m));
        loss_sum += loss * n;
        if (data->loss == GB_LOSS_SOFTMAX_CE)
            correct += s_correct(b.out, b.labels, n, classes);
        done += n;
        step++;
        if (cfg->progress)
            cfg->progress(cfg->progress_arg, done, data->n, loss_sum / (double)done);
    }
    stats->samples = done;
    stats->mean_loss = done ? loss_sum / (double)done : 0.0;
    stats->accuracy =
        data->loss == GB_LOSS_SOFTMAX_CE && done ? (double)correct / (double)done : 0.0;
    stats->seconds = gb_time_now() - t0;
    stats->steps = step;
    stats->cancelled = cancelled;
out:
    gb_model_set_train(m, false, 0);
    s_free(&b);
    return rc;
}

/* Per-class counts of one batch: total[label]++ and correct[label]++ when
 * the largest output is the label's. */
static void s_count_classes(const float *out, const int32_t *labels, int rows, int classes,
                            int64_t *total, int64_t *correct)
{
    for (int r = 0; r < rows; r++) {
        const float *z = out + (size_t)r * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best])
                best = c;
        total[labels[r]]++;
        correct[labels[r]] += best == labels[r];
    }
}

static int s_evaluate(gb_model_t *m, const gb_batches_t *data, int batch, gb_epoch_stats_t *stats,
                      int64_t *class_total, int64_t *class_correct, gb_error_t *err)
{
    int rc = s_check(m, data, batch, err);
    if (rc)
        return rc;
    s_buffers_t b = {0};
    if ((rc = s_alloc(m, data, batch, &b, err)))
        return rc;
    gb_shape_t out = gb_model_output_shape(m);
    int classes = (int)gb_shape_size(&out);
    gb_model_set_train(m, false, 0);
    double t0 = gb_time_now(), loss_sum = 0.0;
    int64_t done = 0, correct = 0;
    while (done < data->n) {
        int n = (int)(data->n - done < batch ? data->n - done : batch);
        if ((rc = data->fill(data->source, b.order + done, n, b.x, b.labels, b.values, err)))
            goto out;
        if ((rc = gb_model_forward(m, b.x, n, b.out, err)))
            goto out;
        if (data->loss == GB_LOSS_SOFTMAX_CE) {
            for (int i = 0; i < n; i++)
                if (b.labels[i] < 0 || b.labels[i] >= classes) {
                    rc = gb_error_set(err, GB_ERANGE, "label %d of sample %lld outside 0..%d",
                                      b.labels[i], (long long)(done + i), classes - 1);
                    goto out;
                }
            loss_sum += gb_loss_softmax_ce(b.out, b.labels, n, classes, 1.0f, NULL);
            correct += s_correct(b.out, b.labels, n, classes);
            if (class_total)
                s_count_classes(b.out, b.labels, n, classes, class_total, class_correct);
        } else {
            loss_sum += gb_loss_mse(b.out, b.values, n, classes, 1.0f, NULL);
        }
        done += n;
    }
    stats->samples = done;
    stats->mean_loss = loss_sum / (double)done;
    stats->accuracy = data->loss == GB_LOSS_SOFTMAX_CE ? (double)correct / (double)done : 0.0;
    stats->seconds = gb_time_now() - t0;
    stats->steps = 0;
    stats->cancelled = false;
out:
    s_free(&b);
    return rc;
}

int gb_evaluate(gb_model_t *m, const gb_batches_t *data, int batch, gb_epoch_stats_t *stats,
                gb_error_t *err)
{
    return s_evaluate(m, data, batch, stats, NULL, NULL, err);
}

int gb_evaluate_classes(gb_model_t *m, const gb_batches_t *data, int batch,
                        gb_epoch_stats_t *stats, int64_t *class_total, int64_t *class_correct,
                        int n_classes, gb_error_t *err)
{
    gb_shape_t out = gb_model_output_shape(m);
    if (data->loss != GB_LOSS_SOFTMAX_CE || n_classes != (int)gb_shape_size(&out))
        return gb_error_set(err, GB_EINVAL,
                            "per-class evaluation needs a classifier of %d classes (the model "
                            "has %zu outputs%s)",
                            n_classes, gb_shape_size(&out),
                            data->loss != GB_LOSS_SOFTMAX_CE ? ", the data are regression" : "");
    memset(class_total, 0, (size_t)n_classes * sizeof *class_total);
    memset(class_correct, 0, (size_t)n_classes * sizeof *class_correct);
    return s_evaluate(m, data, batch, stats, class_total, class_correct, err);
}
