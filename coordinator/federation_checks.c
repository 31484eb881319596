/* What a result must be before the round machine counts it (federation.h):
 * its sample count within what the client can hold, its metrics in their
 * ranges, its delta of the model's shape and of a norm like the others'.
 * The decoder (net/envelope.c) has already refused values that are not
 * finite; these are the bounds only the federation knows. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "federation_internal.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"

/* A mean cross-entropy this large means the model's outputs are already
 * garbage; one such figure would swamp the round's sample-weighted mean. */
#define S_MAX_LOSS 1e6

typedef struct {
    Glassbox__ErrorCode code; /* the Error the client gets */
    const char *reason;       /* glassbox_updates_refused_total{reason} */
    char why[240];
} s_refusal_t;

static bool s_refuse(s_refusal_t *no, Glassbox__ErrorCode code, const char *reason,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool s_refuse(s_refusal_t *no, Glassbox__ErrorCode code, const char *reason,
                     const char *fmt, ...)
{
    no->code = code;
    no->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(no->why, sizeof no->why, fmt, ap);
    va_end(ap);
    return false;
}

/* Sample counts: within the sums' room this attempt, max_client_samples and
 * the training (Update) or test (EvalResult) samples the client joined with. */
static bool s_samples_fit(gb_federation_t *f, const char *id, uint64_t samples, bool update,
                          s_refusal_t *no)
{
    gb_rounds_status_t st;
    gb_rounds_status(f->rounds, &st);
    uint64_t so_far = update && f->open && f->open_round == st.round &&
                              f->open_attempt == st.attempt
                          ? gb_aggregator_weight(f->agg)
                          : 0;
    gb_rounds_client_t k;
    if (samples > f->o.max_client_samples)
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "samples",
                        "num_samples %llu is more than a client may hold (%llu)",
                        (unsigned long long)samples,
                        (unsigned long long)f->o.max_client_samples);
    uint64_t held = 0;
    if (gb_rounds_find_client(f->rounds, id, &k))
        held = update ? k.train_samples : k.test_samples;
    if (samples > held)
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "samples",
                        "num_samples %llu is more than the %llu %s samples it joined with",
                        (unsigned long long)samples, (unsigned long long)held,
                        update ? "training" : "test");
    if (samples > GB_AGG_MAX_WEIGHT - so_far)
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "samples",
                        "num_samples %llu is more than this round can take (%llu)",
                        (unsigned long long)samples,
                        (unsigned long long)(GB_AGG_MAX_WEIGHT - so_far));
    return true;
}

static bool s_loss_fits(double loss, const char *field, s_refusal_t *no)
{
    if (!(loss >= 0 && loss <= S_MAX_LOSS))
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "invalid",
                        "%s %g is outside [0, %g]", field, loss, S_MAX_LOSS);
    return true;
}

static bool s_accuracy_fits(double acc, const char *field, s_refusal_t *no)
{
    if (!(acc >= 0 && acc <= 1))
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE, "invalid",
                        "%s %g is outside [0, 1]", field, acc);
    return true;
}

static double s_l2(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

static double s_global_norm(gb_federation_t *f)
{
    if (!f->global_norm_valid) {
        f->global_norm = s_l2(f->global->params, f->global->n_params);
        f->global_norm_valid = true;
    }
    return f->global_norm;
}

/* The median of this attempt's accepted norms (kept sorted), 0 for none. */
static double s_median(const double *sorted, size_t n)
{
    if (!n)
        return 0;
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

/* The delta: the model's shape, and an L2 norm within max_norm_ratio of the
 * reference and of the global model's own norm. Leaves it in f->scratch and
 * its norm in f->current_norm. */
static bool s_delta_fits(gb_federation_t *f, const Glassbox__Update *u, s_refusal_t *no)
{
    size_t n = f->global->n_params;
    if (u->param_count != n || u->delta.len != n * sizeof(float))
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_SHAPE, "shape",
                        "update.delta has %llu parameters, the global model %zu",
                        (unsigned long long)u->param_count, n);
    gb_wire_floats_from_le(f->scratch, u->delta.data, n);
    double norm = s_l2(f->scratch, n);
    f->current_norm = norm;
    double ratio = f->o.max_norm_ratio;
    double ref = f->norm_reference > 0 ? f->norm_reference : s_median(f->norms, f->n_norms);
    double global = s_global_norm(f);
    if (!isfinite(norm))
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_NORM, "norm",
                        "update.delta's L2 norm overflows");
    if (ref > 0 && norm > ratio * ref)
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_NORM, "norm",
                        "update.delta's L2 norm %.6g is more than %g times the round's median "
                        "%.6g",
                        norm, ratio, ref);
    if (global > 0 && norm > ratio * global)
        return s_refuse(no, GLASSBOX__ERROR_CODE__ERROR_NORM, "norm",
                        "update.delta's L2 norm %.6g is more than %g times the global model's "
                        "%.6g",
                        norm, ratio, global);
    return true;
}

static bool s_update_fits(gb_federation_t *f, const char *id, const Glassbox__Update *u,
                          s_refusal_t *no)
{
    if (!s_samples_fit(f, id, u->num_samples, true, no))
        return false;
    double loss = gb_fed_metric(u->metrics, u->n_metrics, "train_loss");
    double acc = gb_fed_metric(u->metrics, u->n_metrics, "train_accuracy");
    if (!isnan(loss) && !s_loss_fits(loss, "metric train_loss", no))
        return false;
    if (!isnan(acc) && !s_accuracy_fits(acc, "metric train_accuracy", no))
        return false;
    return s_delta_fits(f, u, no);
}

static bool s_eval_fits(gb_federation_t *f, const char *id, const Glassbox__EvalResult *e,
                        s_refusal_t *no)
{
    return s_samples_fit(f, id, e->num_samples, false, no) &&
           s_loss_fits(e->loss, "eval_result.loss", no) &&
           s_accuracy_fits(e->accuracy, "eval_result.accuracy", no);
}

bool gb_fed_result_fits(gb_federation_t *f, const char *id, const Glassbox__Envelope *env)
{
    s_refusal_t no = {0};
    bool ok = env->body_case == GLASSBOX__ENVELOPE__BODY_UPDATE
                  ? s_update_fits(f, id, env->update, &no)
                  : s_eval_fits(f, id, env->eval_result, &no);
    if (ok)
        return true;
    gb_log_warn("federation: '%s': refused: %s", id, no.why);
    gb_metrics_counter_add("glassbox_updates_refused_total",
                           "Results refused before they were counted, by reason", "reason",
                           no.reason, 1);
    gb_front_door_refuse(f->door, id, no.code, env->sequence, no.why);
    return false;
}

int gb_fed_note_norm(gb_federation_t *f, double norm, gb_error_t *err)
{
    if (f->n_norms == f->norms_cap) {
        size_t cap = f->norms_cap ? 2 * f->norms_cap : 16;
        double *grown = gb_realloc(f->norms, cap * sizeof *grown);
        if (!grown)
            return gb_error_set(err, GB_ENOMEM, "federation: out of memory for update norms");
        f->norms = grown;
        f->norms_cap = cap;
    }
    size_t i = f->n_norms++;
    while (i > 0 && f->norms[i - 1] > norm) {
        f->norms[i] = f->norms[i - 1];
        i--;
    }
    f->norms[i] = norm;
    return 0;
}

void gb_fed_norms_round_done(gb_federation_t *f)
{
    if (f->n_norms)
        f->norm_reference = s_median(f->norms, f->n_norms);
    f->n_norms = 0;
    f->global_norm_valid = false;
}

void gb_fed_norms_forget(gb_federation_t *f)
{
    f->n_norms = 0;
}

uint64_t gb_fed_max_transfer(const gb_federation_t *f)
{
    uint64_t cells = 1;
    for (int i = 0; i < f->map_shape.rank; i++)
        cells *= (uint64_t)f->map_shape.dim[i];
    /* a Task or an Update carries the parameters once, an Update's
     * explanation a map per class and one of importance; the spec, metrics
     * and protobuf's framing take the rest */
    return 4 * (uint64_t)f->global->n_params + 2 * 4 * cells * ((uint64_t)f->n_classes + 1) +
           2 * (uint64_t)strlen(f->global->spec) + ((uint64_t)4 << 20);
}
