/* The steps of a round (federation.h): feeding accepted results, then
 * aggregate, evaluate, publish and checkpoint, and committing or abandoning
 * what the attempt produced. The round's candidate model lives apart from
 * the global one until its checkpoint is done, so a failed step leaves the
 * federation exactly at the last finished round. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "explain_report.h"
#include "engine/train.h"
#include "federation_internal.h"
#include "front_door.h"
#include "net/envelope.h"
#include "net/publication.h"
#include "util/crash_point.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

/* How long each step of the attempt in progress took (f->phase_seconds,
 * monotonic seconds), kept as the step returns and made the
 * glassbox_round_phase_seconds gauges only when its round is committed, so
 * an abandoned attempt's times never show. Every finished round runs all
 * four steps, so each slot is that round's. */
enum { S_AGGREGATE, S_EVALUATE, S_PUBLISH, S_CHECKPOINT, S_PHASES };
_Static_assert(S_PHASES == GB_FED_PHASES, "one time per step");
static const char *const s_phase_name[S_PHASES] = {"aggregate", "evaluate", "publish",
                                                   "checkpoint"};

typedef int (*s_step_fn)(gb_federation_t *, const gb_rounds_action_t *, gb_error_t *);

static int s_timed(int phase, s_step_fn fn, gb_federation_t *f, const gb_rounds_action_t *a,
                   gb_error_t *err)
{
    double t0 = gb_time_now();
    int rc = fn(f, a, err);
    f->phase_seconds[phase] = gb_time_now() - t0;
    return rc;
}

/* At most this many glassbox_explanation_distance series (one per client of
 * the round): the registry holds GB_METRICS_MAX_SERIES (4096) series for
 * every metric together, and past that it makes no new series at all (each
 * refused one counted by gb_metrics_dropped), which would starve the other
 * metrics' new series (a new refusal reason, say). A round with more
 * clients shows the most divergent ones; the Publication carries them all. */
#define S_DISTANCE_SERIES_MAX 1024

/* At most this many classes get the three class-support series (so 384 of
 * the 4096), for the same reason: a model with more classes shows the ones
 * that rest on the fewest clients, the ones a reader needs to see; the
 * round line (--json) and explanation-ROUND.json have them all. */
#define S_CLASS_SERIES_MAX 128

/* The most explanation weight one client may carry this attempt:
 * max_explanation_share of the samples its selected clients joined with
 * (0: no cap). Read from what they claimed at Join, so a client that lies
 * about its samples in its Update cannot raise it. */
static uint64_t s_explain_cap(const gb_federation_t *f)
{
    if (!(f->o.max_explanation_share > 0 && f->o.max_explanation_share < 1))
        return 0;
    uint64_t selected = 0;
    gb_rounds_client_t k;
    for (size_t i = 0; gb_rounds_client_at(f->rounds, i, &k); i++)
        if (k.selected)
            selected += k.train_samples;
    double cap = f->o.max_explanation_share * (double)selected;
    return cap < 1 ? 1 : (uint64_t)cap;
}

/* Opens the aggregator and the merge for the action's attempt when the
 * attempt in progress is another one (the first result of an attempt). */
static int s_open(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    if (f->open && f->open_round == a->round && f->open_attempt == a->attempt)
        return 0;
    gb_fed_abandon(f);
    f->explain_cap = s_explain_cap(f);
    int rc = gb_aggregator_begin(f->agg, a->round, f->global->n_params, err);
    if (rc == 0 && f->merge)
        rc = gb_explain_merge_begin(f->merge, a->round, f->o.explain, &f->map_shape,
                                    f->n_classes, f->explain_cap, err);
    if (rc)
        return rc;
    f->open = true;
    f->open_round = a->round;
    f->open_attempt = a->attempt;
    f->probe_ready = false;
    if (f->probe) {
        gb_error_t perr = {0};
        if (gb_update_probe_begin(f->probe, f->global->params, f->global->n_params, &perr) == 0)
            f->probe_ready = true;
        else
            gb_log_warn("federation: round %llu: updates are not probed for what they teach: "
                        "%s", (unsigned long long)a->round, perr.msg);
    }
    return 0;
}

/* What the update teaches on the server's samples (f->lesson), for the
 * flagger; NULL without the probe, or when it fails (logged: the client
 * goes without that signal this round) or measures shares that are not
 * finite (an update so large that the probe's gradients overflow, which
 * its norm shows anyway). */
static const float *s_probe_update(gb_federation_t *f, uint64_t round, const char *client,
                                   const float *delta)
{
    if (!f->probe_ready)
        return NULL;
    gb_error_t perr = {0};
    if (gb_update_probe_measure(f->probe, delta, f->global->n_params, f->lesson, &perr) != 0) {
        gb_log_warn("federation: round %llu: what the update of '%s' teaches is not measured: "
                    "%s", (unsigned long long)round, client, perr.msg);
        return NULL;
    }
    const size_t features = gb_update_probe_features(f->probe);
    for (size_t j = 0; j < features; j++)
        if (!isfinite(f->lesson[j])) {
            gb_log_warn("federation: round %llu: what the update of '%s' teaches is not "
                        "measured: the probe's shares are not finite (feature %zu)",
                        (unsigned long long)round, client, j);
            return NULL;
        }
    return f->lesson;
}

double gb_fed_metric(Glassbox__Metric *const *m, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i]->name, name) == 0)
            return m[i]->value;
    return NAN;
}

static void s_count_accepted(void)
{
    gb_metrics_counter_add("glassbox_updates_accepted_total",
                           "Updates fed to the aggregator (of any attempt, finished or not)",
                           NULL, NULL, 1);
}

static void s_count_guarded(void)
{
    gb_metrics_counter_add("glassbox_updates_guarded_total",
                           "Updates of flagged clients left out of the aggregate (--guard flags)",
                           NULL, NULL, 1);
}

/* The guard's first half: a client flagged in its last round has its
 * explanation left out of the merge (so it cannot shape the federation's
 * map or the others' distances) and its norm out of the norm reference;
 * its update, held like every other, is still scored on its distance,
 * norm and what it teaches, and this round's verdict decides whether it is aggregated
 * (s_aggregate_held), so a client that stops standing out is taken again
 * once its window forgives it. */
static int s_guard(gb_federation_t *f, const gb_rounds_action_t *a)
{
    gb_error_t eerr = {0};
    const float *lesson = s_probe_update(f, a->round, a->client_id, f->scratch);
    if (gb_round_evidence_add(f->evidence, a->client_id, f->scratch, f->global->n_params,
                              f->current_norm, lesson, &eerr) != 0)
        gb_log_warn("federation: round %llu: '%s' is not scored for flags: %s",
                    (unsigned long long)a->round, a->client_id, eerr.msg);
    gb_log_warn("federation: round %llu: the explanation of '%s' is left out of the merge: "
                "flagged in its last round (--guard flags); its update waits for this "
                "round's verdict", (unsigned long long)a->round, a->client_id);
    return 0;
}

/* The round's flag of client (f->flags, kept by gb_fed_flag_score), or
 * NULL when this round did not flag it. */
static const gb_fed_flag_t *s_flag_now(const gb_federation_t *f, uint64_t round,
                                       const char *client)
{
    if (f->flags_round != round)
        return NULL;
    for (size_t i = 0; i < f->n_flags; i++)
        if (strcmp(f->flags[i].client, client) == 0)
            return &f->flags[i];
    return NULL;
}

/* Marks in out[0..n) the held updates the guard leaves out: those the
 * round flags, highest score first, as long as the aggregator keeps the
 * updates it needs (at least one): a round the guard emptied, or left
 * short of Krum's 2F + 3, would fail and be tried again for ever. Returns
 * how many; logs the flagged it had to keep. */
static size_t s_guard_choose(const gb_federation_t *f, uint64_t round, bool *out,
                             double *score)
{
    size_t n = gb_held_updates_count(f->held), flagged = 0, left_out = 0;
    size_t need = gb_aggregator_min_updates(f->agg);
    if (need < 1)
        need = 1;
    /* each held update's flag score, looked up once (-1: not flagged) */
    for (size_t i = 0; i < n; i++) {
        const gb_fed_flag_t *k = s_flag_now(f, round, gb_held_updates_client(f->held, i));
        out[i] = false;
        score[i] = k ? k->v.score : -1;
        flagged += k != NULL;
    }
    while (left_out < flagged && n - left_out > need) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!out[i] && score[i] >= 0 && (best == n || score[i] > score[best]))
                best = i;
        out[best] = true;
        left_out++;
    }
    if (left_out < flagged)
        gb_log_warn("federation: round %llu: %zu of its %zu updates are flagged; the guard "
                    "keeps %zu of them, the lowest scores, so that %s still has the %zu "
                    "updates it needs", (unsigned long long)round, flagged, n,
                    flagged - left_out, gb_aggregator_name(f->agg), need);
    return left_out;
}

/* The guard's second half: the round's held updates are scored with the
 * rest of its evidence first, and those of the clients this very round
 * flags are left out (s_guard_choose); the others go to the aggregator.
 * The flagged client's explanation stays in this round's merge (it was
 * merged when it came, and the publication names the client as flagged);
 * from its next round on the first half leaves both out. */
static int s_aggregate_held(gb_federation_t *f, uint64_t round, gb_error_t *err)
{
    size_t n = gb_held_updates_count(f->held);
    gb_fed_flag_score(f, round);
    bool *out = n ? gb_malloc(n * sizeof *out) : NULL;
    double *score = n ? gb_malloc(n * sizeof *score) : NULL;
    if (n && (!out || !score)) {
        gb_free(out);
        gb_free(score);
        return gb_error_set(err, GB_ENOMEM, "round %llu: out of memory for the guard",
                            (unsigned long long)round);
    }
    if (n)
        s_guard_choose(f, round, out, score);
    gb_free(score);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *client = gb_held_updates_client(f->held, i);
        if (out[i]) {
            gb_log_warn("federation: round %llu: the update of '%s' is left out of the "
                        "aggregate: flagged this round (--guard flags)",
                        (unsigned long long)round, client);
            s_count_guarded();
            continue;
        }
        rc = gb_aggregator_add(f->agg, gb_held_updates_delta(f->held, i), f->global->n_params,
                               gb_held_updates_weight(f->held, i), err);
        if (rc == 0)
            s_count_accepted();
    }
    gb_free(out);
    return rc;
}

int gb_fed_feed_update(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    const Glassbox__Envelope *env = f->current;
    if (!env || env->body_case != GLASSBOX__ENVELOPE__BODY_UPDATE ||
        strcmp(f->current_client, a->client_id) != 0)
        return gb_error_set(err, GB_EINVAL, "feed_update for '%s' without its Update",
                            a->client_id);
    const Glassbox__Update *u = env->update;
    int rc = s_open(f, a, err);
    if (rc)
        return rc;
    /* f->scratch holds this Update's delta, decoded by gb_fed_result_fits
     * just before the machine took it (a FEED belongs to f->current); with
     * the guard it waits for the round's scores (s_aggregate_held) */
    if (f->held) {
        if ((rc = gb_held_updates_add(f->held, a->client_id, f->scratch, f->global->n_params,
                                      u->num_samples, err)))
            return rc;
        if (gb_flagger_is_flagged(f->flagger, a->client_id))
            return s_guard(f, a);
    }
    /* handed over, not copied: a large model's aggregator keeps the buffer
     * for its next pass and gives f->scratch another; it only reads the one
     * it keeps, so the delta is still read below. Finite: s_delta_fits found
     * its L2 norm finite, so the aggregator need not read it to check. */
    const float *delta = f->scratch;
    if (!f->held) {
        if ((rc = gb_aggregator_add_take_finite(f->agg, &f->scratch, f->global->n_params,
                                                u->num_samples, err)))
            return rc;
        s_count_accepted();
    }
    if ((rc = gb_fed_note_norm(f, f->current_norm, err)))
        return rc;
    const float *lesson = s_probe_update(f, a->round, a->client_id, delta);
    gb_error_t eerr = {0};
    if (gb_round_evidence_add(f->evidence, a->client_id, delta, f->global->n_params,
                              f->current_norm, lesson, &eerr) != 0)
        gb_log_warn("federation: round %llu: '%s' is not scored for flags: %s",
                    (unsigned long long)a->round, a->client_id, eerr.msg);
    double loss = gb_fed_metric(u->metrics, u->n_metrics, "train_loss");
    double acc = gb_fed_metric(u->metrics, u->n_metrics, "train_accuracy");
    if (isfinite(loss)) {
        f->train_loss_sum += loss * (double)u->num_samples;
        f->train_loss_n += u->num_samples;
    }
    if (isfinite(acc)) {
        f->train_acc_sum += acc * (double)u->num_samples;
        f->train_acc_n += u->num_samples;
    }
    gb_rounds_client_t k;
    f->current_max_count = gb_rounds_find_client(f->rounds, a->client_id, &k)
                               ? k.train_samples + k.test_samples
                               : u->num_samples;
    if (f->merge && u->explanation) {
        gb_error_t xerr = {0};
        if (gb_explain_merge_add(f->merge, a->client_id, u->explanation, u->num_samples,
                                 f->current_max_count, &xerr) != 0)
            gb_log_warn("federation: round %llu: the explanation of '%s' is left out: %s",
                        (unsigned long long)a->round, a->client_id, xerr.msg);
    } else if (f->merge) {
        gb_log_warn("federation: round %llu: '%s' sent no explanation",
                    (unsigned long long)a->round, a->client_id);
    }
    return 0;
}

/* Keeps one client's test accuracy for the round's spread. */
static int s_note_client_accuracy(gb_federation_t *f, double accuracy, gb_error_t *err)
{
    if (f->n_client_accuracies == f->client_accuracies_cap) {
        size_t cap = f->client_accuracies_cap ? 2 * f->client_accuracies_cap : 16;
        double *grown = gb_realloc(f->client_accuracies, cap * sizeof *grown);
        if (!grown)
            return gb_error_set(err, GB_ENOMEM,
                                "federation: out of memory for client accuracies");
        f->client_accuracies = grown;
        f->client_accuracies_cap = cap;
    }
    f->client_accuracies[f->n_client_accuracies++] = accuracy;
    return 0;
}

int gb_fed_feed_eval(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    const Glassbox__Envelope *env = f->current;
    if (!env || env->body_case != GLASSBOX__ENVELOPE__BODY_EVAL_RESULT ||
        strcmp(f->current_client, a->client_id) != 0)
        return gb_error_set(err, GB_EINVAL, "feed_eval for '%s' without its EvalResult",
                            a->client_id);
    const Glassbox__EvalResult *e = env->eval_result;
    int rc = s_open(f, a, err);
    if (rc)
        return rc;
    if (e->num_samples && (rc = s_note_client_accuracy(f, e->accuracy, err)))
        return rc;
    f->eval_loss_sum += e->loss * (double)e->num_samples;
    f->eval_acc_sum += e->accuracy * (double)e->num_samples;
    f->eval_n += e->num_samples;
    return 0;
}

static int s_aggregate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    size_t n = f->global->n_params;
    if (!f->open || f->open_round != a->round)
        return gb_error_set(err, GB_EINVAL, "round %llu: nothing was fed to aggregate",
                            (unsigned long long)a->round);
    /* the explanation first: the guard scores the clients on it */
    if (f->merge && gb_explain_merge_is_open(f->merge) && gb_explain_merge_clients(f->merge)) {
        gb_error_t xerr = {0};
        if (gb_explain_merge_finish(f->merge, &f->xr, &xerr) != 0)
            gb_log_warn("federation: round %llu: no aggregate explanation: %s",
                        (unsigned long long)a->round, xerr.msg);
    }
    int rc = f->held ? s_aggregate_held(f, a->round, err) : 0;
    if (rc == 0)
        rc = gb_aggregator_finish(f->agg, f->delta, n, err);
    if (rc)
        return rc;
    if ((rc = gb_server_optim_get_state(f->opt, f->optim_backup, f->optim_len,
                                        &f->optim_backup_steps, err)) != 0)
        return rc;
    memcpy(f->next->params, f->global->params, n * sizeof(float));
    if ((rc = gb_server_optim_step(f->opt, f->next->params, f->delta, n, err)) != 0)
        return rc;
    f->stepped = true;
    f->next->round = a->round;
    f->participants = gb_aggregator_updates(f->agg);
    f->samples = gb_aggregator_weight(f->agg);
    gb_log_info("federation: round %llu aggregated: %zu updates (%s), %llu samples",
                (unsigned long long)a->round, f->participants, gb_aggregator_name(f->agg),
                (unsigned long long)f->samples);
    return 0;
}

static int s_evaluate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    f->test_loss = f->test_accuracy = NAN;
    if (!f->eval_model)
        return 0;
    memcpy(gb_model_params(f->eval_model), f->next->params,
           f->next->n_params * sizeof(float));
    gb_batches_t b = {f->test, gb_dataset_fill, f->test->n, gb_dataset_loss(f->test)};
    gb_epoch_stats_t st;
    int batch = gb_model_max_batch(f->eval_model);
    int rc = f->class_total ? gb_evaluate_classes(f->eval_model, &b, batch, &st, f->class_total,
                                                  f->class_correct, f->n_classes, err)
                            : gb_evaluate(f->eval_model, &b, batch, &st, err);
    if (rc)
        return gb_error_prefix(err, rc, "server-side evaluation: ");
    f->test_loss = st.mean_loss;
    f->test_accuracy = st.accuracy;
    for (int k = 0; f->class_total && k < f->n_classes; k++)
        f->class_accuracy[k] = f->class_total[k]
                                   ? (double)f->class_correct[k] / (double)f->class_total[k]
                                   : NAN;
    gb_log_info("federation: round %llu: test loss %.4f, accuracy %.4f on %lld samples",
                (unsigned long long)a->round, st.mean_loss, st.accuracy,
                (long long)st.samples);
    return 0;
}

/* Appends metric (name, value) to the list when value is a number. */
static void s_put_metric(Glassbox__Metric *m, Glassbox__Metric **mp, size_t *n, const char *name,
                         double value)
{
    if (!isfinite(value))
        return;
    glassbox__metric__init(&m[*n]);
    m[*n].name = (char *)name;
    m[*n].value = value;
    mp[*n] = &m[*n];
    (*n)++;
}

static double s_mean(double sum, uint64_t n)
{
    return n ? sum / (double)n : NAN;
}

static int s_publish(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    gb_fed_flag_score(f, a->round); /* before packing: the publication names the flagged */
    if (!f->pub && !f->out_dir && !f->signer)
        return 0;
    gb_snapshot_view_t *view = gb_malloc(sizeof *view);
    if (!view)
        return gb_error_set(err, GB_ENOMEM, "out of memory publishing round %llu",
                            (unsigned long long)a->round);
    int rc = gb_snapshot_view(f->next, view, err);
    if (rc) {
        gb_free(view);
        return rc;
    }
    Glassbox__Metric m[8];
    Glassbox__Metric *mp[8];
    size_t nm = 0;
    s_put_metric(m, mp, &nm, "train_loss", s_mean(f->train_loss_sum, f->train_loss_n));
    s_put_metric(m, mp, &nm, "train_accuracy", s_mean(f->train_acc_sum, f->train_acc_n));
    s_put_metric(m, mp, &nm, "client_test_loss", s_mean(f->eval_loss_sum, f->eval_n));
    s_put_metric(m, mp, &nm, "client_test_accuracy", s_mean(f->eval_acc_sum, f->eval_n));
    s_put_metric(m, mp, &nm, "test_loss", f->test_loss);
    s_put_metric(m, mp, &nm, "test_accuracy", f->test_accuracy);
    s_put_metric(m, mp, &nm, "samples", (double)f->samples);
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    p.round = a->round;
    p.model = &view->msg;
    p.explanation = f->xr.explanation;
    p.n_metrics = nm;
    p.metrics = mp;
    p.participants = (uint32_t)f->participants;
    p.aggregator = (char *)gb_aggregator_name(f->agg);
    p.published_unix_ms = gb_time_unix_ms();
    p.n_explanation_distance = f->xr.n_distance;
    p.explanation_distance = f->xr.distance;
    gb_fed_flag_msgs_t flags;
    if ((rc = gb_fed_flag_messages(f, a->round, &flags, err)) != 0) {
        gb_free(view);
        return rc;
    }
    p.n_flags = flags.n;
    p.flags = flags.ptrs;
    gb_free(f->pub_buf);
    f->pub_buf = NULL;
    f->pub_len = 0;
    rc = gb_publication_encode(&p, &f->pub_buf, &f->pub_len, err);
    if (rc && p.n_flags) { /* flags are advice: never the reason a round is lost */
        gb_log_error("federation: round %llu: the flags fail the publication's checks (%s); "
                     "published without them", (unsigned long long)a->round,
                     err ? err->msg : "");
        p.n_flags = 0;
        rc = gb_publication_encode(&p, &f->pub_buf, &f->pub_len, err);
    }
    gb_fed_flag_messages_free(&flags);
    gb_free(view);
    return rc;
}

/* Sends the round's publication, packed by gb_fed_publish, now that its
 * round is checkpointed: what goes out is always a round the federation
 * keeps. A failure here no longer changes the round; it is logged. */
static void s_emit(gb_federation_t *f, uint64_t round)
{
    if (!f->pub_buf)
        return;
    gb_error_t err = {0};
    /* the files: written now, or kept and retried by the outbox (it logs
     * and counts each failure) */
    bool files_ok = !f->outbox ||
                    gb_pub_outbox_put(f->outbox, round, f->pub_buf, f->pub_len, &err) == 0;
    /* The federation's own stream: certified subscribers on the TLS link. */
    uint8_t *signed_pub = NULL;
    size_t signed_len = 0;
    if (f->signer && f->door) {
        gb_error_t e = {0};
        if (gb_publication_sign(f->signer, f->pub_buf, f->pub_len, &signed_pub, &signed_len,
                                &e) != 0 ||
            gb_front_door_publish(f->door, signed_pub, signed_len, &e) < 0)
            gb_log_error("federation: round %llu: not sent to subscribers: %s",
                         (unsigned long long)round, e.msg);
        gb_free(signed_pub);
    }
    bool pub_ok = true;
    if (f->pub && gb_publisher_send(f->pub, f->pub_buf, f->pub_len, &err) != 0) {
        gb_log_error("federation: round %llu: not published on the PUB socket: %s",
                     (unsigned long long)round, err.msg);
        gb_metrics_counter_add("glassbox_publication_failures_total",
                               "Publications not written or not sent", NULL, NULL, 1);
        pub_ok = false;
    }
    if (files_ok && pub_ok) {
        gb_log_info("federation: round %llu published (%zu bytes, signed)%s%s",
                    (unsigned long long)round, f->pub_len, f->out_dir ? " to " : "",
                    f->out_dir ? f->out_dir : "");
        if (f->out_dir || f->pub) {
            gb_metrics_counter_add("glassbox_publications_total", "Rounds published (signed)",
                                   NULL, NULL, 1);
            gb_metrics_gauge_set("glassbox_last_published_round", "The last round published",
                                 NULL, NULL, (double)round);
        }
    }
    gb_free(f->pub_buf);
    f->pub_buf = NULL;
    f->pub_len = 0;
}

static int s_checkpoint(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    if (!f->state_dir) {
        s_emit(f, a->round);
        return 0;
    }
    float *state = NULL;
    uint64_t steps = 0;
    int rc = 0;
    if (f->optim_len && !(state = gb_malloc(f->optim_len * sizeof *state)))
        return gb_error_set(err, GB_ENOMEM, "out of memory for the optimiser state");
    if ((rc = gb_server_optim_get_state(f->opt, state, f->optim_len, &steps, err)) == 0) {
        gb_rounds_status_t st;
        gb_rounds_status(f->rounds, &st);
        gb_checkpoint_t c = {.spec = f->next->spec,
                             .params = f->next->params,
                             .n_params = f->next->n_params,
                             .round = a->round,
                             .aggregator = (char *)gb_aggregator_name(f->agg),
                             .server_optimizer = (char *)(f->o.server_optimizer),
                             .optim_state = state,
                             .n_optim_state = f->optim_len,
                             .optim_steps = steps,
                             .next_task_id = f->task_id_base + st.tasks_sent + 1,
                             .federation = f->federation};
        /* staged first: a crash once the checkpoint is saved still finds
         * the round's publication to finish on restart */
        if (f->outbox && f->pub_buf &&
            (rc = gb_pub_outbox_stage(f->outbox, a->round, f->pub_buf, f->pub_len, err)) != 0)
            gb_error_prefix(err, rc, "staging the publication: ");
        else {
            gb_crash_point("staged");
            rc = gb_checkpoint_save(f->state_dir, &c, (size_t)f->o.keep_checkpoints, err);
        }
    }
    gb_free(state);
    if (rc == 0 && f->test_checkpoint_delay_ms) {
        struct timespec ts = {f->test_checkpoint_delay_ms / 1000,
                              (long)(f->test_checkpoint_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0)
        s_emit(f, a->round);
    return rc;
}

int gb_fed_aggregate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    return s_timed(S_AGGREGATE, s_aggregate, f, a, err);
}

int gb_fed_evaluate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    return s_timed(S_EVALUATE, s_evaluate, f, a, err);
}

int gb_fed_publish(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    return s_timed(S_PUBLISH, s_publish, f, a, err);
}

int gb_fed_checkpoint(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err)
{
    return s_timed(S_CHECKPOINT, s_checkpoint, f, a, err);
}

static int s_by_value_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

/* The round's explanation distances as glassbox_explanation_distance{client},
 * the previous round's series cleared first so that clients that left do not
 * linger; past S_DISTANCE_SERIES_MAX clients, the largest distances. */
static void s_distance_metrics(const gb_federation_t *f)
{
    const char *name = "glassbox_explanation_distance";
    gb_metrics_gauge_clear(name);
    size_t n = f->xr.n_distance;
    double floor = -INFINITY;
    if (n > S_DISTANCE_SERIES_MAX) {
        double *d = gb_malloc(n * sizeof *d);
        if (!d) {
            gb_log_warn("federation: out of memory for the explanation distance metrics");
            return;
        }
        for (size_t i = 0; i < n; i++)
            d[i] = strtod(f->xr.distance[i]->value, NULL);
        qsort(d, n, sizeof *d, s_by_value_desc);
        floor = d[S_DISTANCE_SERIES_MAX - 1];
        gb_free(d);
    }
    for (size_t i = 0, shown = 0; i < n && shown < S_DISTANCE_SERIES_MAX; i++) {
        double d = strtod(f->xr.distance[i]->value, NULL);
        if (!(d >= floor))
            continue;
        gb_metrics_gauge_set(name,
                             "Divergence of each client's explanation from the aggregate of "
                             "the others', last finished round",
                             "client", f->xr.distance[i]->key, d);
        shown++;
    }
}

/* The finished round's gauges: its duration and its steps', its
 * evaluations (those it had) and its explanation distances. */
static void s_round_metrics(const gb_federation_t *f, const gb_federation_round_t *r)
{
    gb_metrics_gauge_set("glassbox_round_seconds",
                         "Seconds the last finished round took, from its first task to its "
                         "checkpoint",
                         NULL, NULL, r->seconds);
    for (int i = 0; i < S_PHASES; i++)
        gb_metrics_gauge_set("glassbox_round_phase_seconds",
                             "Seconds each step of the last finished round took", "phase",
                             s_phase_name[i], f->phase_seconds[i]);
    if (isfinite(r->test_accuracy))
        gb_metrics_gauge_set("glassbox_test_accuracy",
                             "Accuracy of the last finished round's model on the "
                             "coordinator's test set",
                             NULL, NULL, r->test_accuracy);
    if (isfinite(r->test_loss))
        gb_metrics_gauge_set("glassbox_test_loss",
                             "Mean loss of the last finished round's model on the "
                             "coordinator's test set",
                             NULL, NULL, r->test_loss);
    if (isfinite(r->client_accuracy))
        gb_metrics_gauge_set("glassbox_client_accuracy",
                             "Sample-weighted mean accuracy of the clients' evaluations in the "
                             "last finished round",
                             NULL, NULL, r->client_accuracy);
    s_distance_metrics(f);
}

static int s_by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The bias view of the round: the spread of the clients' own test
 * accuracies and the server's accuracy per class, into r and /metrics. */
static void s_bias_view(gb_federation_t *f, gb_federation_round_t *r)
{
    r->client_accuracy_min = r->client_accuracy_p10 = NAN;
    r->client_accuracy_median = r->client_accuracy_max = NAN;
    size_t n = f->n_client_accuracies;
    r->clients_evaluated = n;
    if (n) {
        double *v = f->client_accuracies;
        qsort(v, n, sizeof *v, s_by_double);
        r->client_accuracy_min = v[0];
        r->client_accuracy_p10 = v[(n + 9) / 10 - 1];
        r->client_accuracy_median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        r->client_accuracy_max = v[n - 1];
        const char *q = "glassbox_client_accuracy_quantile";
        const char *help = "Spread of the clients' own test accuracies, last finished round";
        gb_metrics_gauge_set(q, help, "quantile", "0", r->client_accuracy_min);
        gb_metrics_gauge_set(q, help, "quantile", "0.1", r->client_accuracy_p10);
        gb_metrics_gauge_set(q, help, "quantile", "0.5", r->client_accuracy_median);
        gb_metrics_gauge_set(q, help, "quantile", "1", r->client_accuracy_max);
    }
    f->n_client_accuracies = 0;
    if (!f->class_total || !isfinite(f->test_accuracy))
        return;
    r->n_classes = f->n_classes;
    r->class_accuracy = f->class_accuracy;
    char label[GB_CLASS_NAMES_LABEL_CAP];
    for (int k = 0; k < f->n_classes; k++)
        if (isfinite(f->class_accuracy[k]))
            gb_metrics_gauge_set("glassbox_class_accuracy",
                                 "Server-side test accuracy per class, last finished round",
                                 "class",
                                 gb_class_names_label(f->class_names, k, label, sizeof label),
                                 f->class_accuracy[k]);
}

static int s_by_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The round's class support: per class of the model, how many clients and
 * samples its aggregate map rests on (a class nobody explained: 0 and 0),
 * from the merge's counts in the aggregate, into r and /metrics (at most
 * S_CLASS_SERIES_MAX classes there: the fewest-supported). The
 * series are cleared first, so a round without an aggregate explanation
 * shows none rather than the last one's. */
static void s_class_support(gb_federation_t *f, gb_federation_round_t *r)
{
    static const char *const gauges[] = {"glassbox_class_explanation_clients",
                                         "glassbox_class_explanation_samples",
                                         "glassbox_class_weakly_explained"};
    static const char *const helps[] = {
        "Clients whose explanations the class's aggregate map rests on, last finished round",
        "Samples the class's aggregate map rests on, last finished round",
        /* parenthesised: one string, not two elements clang suspects */
        ("1 when the class rests on fewer clients than --min-class-clients, last finished "
         "round")};
    for (size_t g = 0; g < 3; g++)
        gb_metrics_gauge_clear(gauges[g]);
    r->min_class_clients = f->o.min_class_clients;
    const Glassbox__Explanation *e = f->xr.explanation;
    if (!f->class_support || !e)
        return;
    memset(f->class_support, 0, (size_t)f->n_classes * sizeof *f->class_support);
    for (size_t i = 0; i < e->n_classes; i++) {
        const Glassbox__ClassAttribution *c = e->classes[i];
        if (c->class_index < (uint32_t)f->n_classes) { /* the merge's own: always */
            f->class_support[c->class_index].clients = c->clients;
            f->class_support[c->class_index].samples = c->count;
        }
    }
    for (int k = 0; k < f->n_classes; k++) {
        gb_federation_class_support_t *cs = &f->class_support[k];
        cs->weak = gb_explain_report_is_weak(cs->clients, f->o.min_class_clients);
        f->class_keys[k] = (uint64_t)cs->clients << 32 | (uint32_t)k;
    }
    size_t shown = (size_t)f->n_classes;
    if (shown > S_CLASS_SERIES_MAX) { /* the fewest clients first, then by class */
        qsort(f->class_keys, shown, sizeof *f->class_keys, s_by_u64);
        shown = S_CLASS_SERIES_MAX;
    }
    char label[GB_CLASS_NAMES_LABEL_CAP];
    for (size_t i = 0; i < shown; i++) {
        int k = (int)(uint32_t)f->class_keys[i];
        const gb_federation_class_support_t *cs = &f->class_support[k];
        const char *name = gb_class_names_label(f->class_names, k, label, sizeof label);
        double v[3] = {cs->clients, (double)cs->samples, cs->weak};
        for (size_t g = 0; g < 3; g++)
            gb_metrics_gauge_set(gauges[g], helps[g], "class", name, v[g]);
    }
    r->n_class_support = (size_t)f->n_classes;
    r->class_support = f->class_support;
}

void gb_fed_commit(gb_federation_t *f, const gb_rounds_action_t *a)
{
    gb_snapshot_t *t = f->global;
    f->global = f->next;
    f->next = t;
    f->view_valid = false;
    f->stepped = false;
    f->open = false;
    gb_fed_norms_round_done(f);
    gb_federation_round_t r = {
        .round = a->round,
        .participants = f->participants,
        .samples = f->samples,
        .train_loss = s_mean(f->train_loss_sum, f->train_loss_n),
        .train_accuracy = s_mean(f->train_acc_sum, f->train_acc_n),
        .client_loss = s_mean(f->eval_loss_sum, f->eval_n),
        .client_accuracy = s_mean(f->eval_acc_sum, f->eval_n),
        .test_loss = f->test_loss,
        .test_accuracy = f->test_accuracy,
        .max_distance = NAN,
        .class_names = f->class_names,
        .seconds = gb_time_now() - f->started,
    };
    for (size_t i = 0; i < f->xr.n_distance; i++) {
        double d = strtod(f->xr.distance[i]->value, NULL);
        if (!(d <= r.max_distance)) {
            r.max_distance = d;
            r.max_distance_client = f->xr.distance[i]->key;
        }
    }
    s_bias_view(f, &r);
    s_class_support(f, &r);
    const char **flagged = NULL;
    r.flagged = gb_fed_flag_round(f, a->round, &flagged);
    r.flagged_clients = flagged;
    s_round_metrics(f, &r);
    if (f->o.round_done)
        f->o.round_done(f->o.round_done_arg, &r);
    gb_fed_report_round(f, &r);
    gb_free(flagged);
    gb_round_evidence_clear(f->evidence);
    gb_held_updates_clear(f->held);
    gb_explain_merge_result_free(&f->xr);
    f->train_loss_sum = f->train_acc_sum = f->eval_loss_sum = f->eval_acc_sum = 0;
    f->train_loss_n = f->train_acc_n = f->eval_n = 0;
    f->participants = 0;
    f->samples = 0;
}

void gb_fed_abandon(gb_federation_t *f)
{
    if (f->stepped) {
        gb_error_t err = {0};
        if (gb_server_optim_set_state(f->opt, f->optim_backup, f->optim_len,
                                      f->optim_backup_steps, &err) != 0)
            gb_log_error("federation: cannot restore the optimiser state: %s", err.msg);
        f->stepped = false;
    }
    f->open = false;
    gb_fed_norms_forget(f);
    f->n_client_accuracies = 0;
    if (f->evidence)
        gb_round_evidence_clear(f->evidence);
    gb_held_updates_clear(f->held);
    gb_explain_merge_result_free(&f->xr);
    gb_free(f->pub_buf);
    f->pub_buf = NULL;
    f->pub_len = 0;
    f->train_loss_sum = f->train_acc_sum = f->eval_loss_sum = f->eval_acc_sum = 0;
    f->train_loss_n = f->train_acc_n = f->eval_n = 0;
    f->participants = 0;
    f->samples = 0;
    f->test_loss = f->test_accuracy = NAN;
}
