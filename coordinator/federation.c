/* The federation (federation.h): set-up and resume, the front door's events
 * fed to the round machine, and the machine's actions carried out in order.
 *
 * Every call into the machine is followed by draining its action queue, so
 * the queue is empty whenever a new event arrives, and a FEED action always
 * belongs to the result being handled (f->current).
 *
 * Time comes from the event loop: the machine's wake-up (gb_rounds_wake_at)
 * and the outbox's next retry are two timers, set again after every drain
 * (whatever changed the machine or the outbox went through one), so the loop
 * sleeps until the nearer of them unless a client speaks. */
#include "federation.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "data/dataset_load.h"
#include "explain/attribution.h"
#include "federation_internal.h"
#include "net/envelope.h"
#include "net/model_source.h"
#include "net/pki.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/time.h"

static void s_drain(gb_federation_t *f);
static void s_detach(gb_federation_t *f);

/* ---- set-up ---------------------------------------------------------------- */

static void s_defaults(gb_federation_options_t *o)
{
    if (!o->model_seed)
        o->model_seed = 1;
    if (!o->aggregator)
        o->aggregator = "fedavg";
    if (!o->server_optimizer)
        o->server_optimizer = "sgd";
    if (o->keep_checkpoints <= 0)
        o->keep_checkpoints = 3;
    if (o->threads <= 0)
        o->threads = 1;
    if (!o->federation)
        o->federation = "glassbox";
    if (!o->max_client_samples)
        o->max_client_samples = GB_FED_DEFAULT_MAX_CLIENT_SAMPLES;
    if (!(o->max_norm_ratio > 0))
        o->max_norm_ratio = GB_FED_DEFAULT_MAX_NORM_RATIO;
}

/* Takes the model, task ids and optimiser state of checkpoint c. The state
 * waits in optim_backup until the optimiser exists. */
static int s_resume(gb_federation_t *f, const gb_checkpoint_t *c, gb_error_t *err)
{
    if (!(f->global = gb_snapshot_new(c->spec, c->params, c->n_params, c->round, err)))
        return err->code;
    if (c->next_task_id > 1)
        f->task_id_base = c->next_task_id - 1;
    if (strcmp(c->server_optimizer, f->o.server_optimizer) != 0) {
        gb_log_warn("federation: the checkpoint was made with server optimiser '%s'; going on "
                    "with '%s' and a fresh optimiser state",
                    c->server_optimizer, f->o.server_optimizer);
    } else if (c->n_optim_state) {
        if (!(f->optim_backup = gb_malloc(c->n_optim_state * sizeof(float))))
            return gb_error_set(err, GB_ENOMEM, "federation: out of memory resuming");
        memcpy(f->optim_backup, c->optim_state, c->n_optim_state * sizeof(float));
        f->optim_len = c->n_optim_state;
        f->optim_backup_steps = c->optim_steps;
    }
    gb_log_info("federation: resuming after round %llu from %s", (unsigned long long)c->round,
                f->state_dir);
    return 0;
}

/* The initial global model: from the latest checkpoint, else from o->model. */
static int s_load_model(gb_federation_t *f, gb_error_t *err)
{
    gb_checkpoint_t *c = NULL;
    int rc;
    if (f->state_dir && (rc = gb_checkpoint_load_latest(f->state_dir, &c, err)) != 0)
        return rc;
    if (c) {
        rc = s_resume(f, c, err);
        gb_checkpoint_destroy(&c);
        return rc;
    }
    if (!f->o.model)
        return gb_error_set(err, GB_EINVAL, "federation: no initial model (--model) and no "
                                            "checkpoint to resume from");
    bool from_file = false;
    gb_model_t *m = gb_model_source_open(f->o.model, &from_file, err);
    if (!m)
        return err->code;
    if (!from_file)
        gb_model_init(m, f->o.model_seed);
    f->global = gb_snapshot_from_model(m, 0, err);
    gb_model_destroy(&m);
    return f->global ? 0 : err->code;
}

/* Shapes the explanation merge needs, from a model of the global spec. */
static int s_model_facts(gb_federation_t *f, gb_error_t *err)
{
    gb_model_t *m = gb_model_new(f->global->spec, err);
    if (!m)
        return err->code;
    gb_shape_t out = gb_model_output_shape(m);
    f->n_classes = 1;
    for (int i = 0; i < out.rank; i++)
        f->n_classes *= out.dim[i];
    f->map_shape = gb_model_input_shape(m);
    int rc = 0;
    if (f->o.explain == GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM) {
        gb_explain_cfg_t cfg = {.method = GB_EXPLAIN_GRADCAM, .layer = -1};
        if ((rc = gb_model_plan(m, 1, 1, err)) == 0) {
            gb_explainer_t *e = gb_explainer_new(m, &cfg, err);
            if (e)
                f->map_shape = gb_explainer_attr_shape(e);
            else
                rc = err->code;
            gb_explainer_destroy(&e);
        }
    }
    gb_model_destroy(&m);
    return rc;
}

/* Rows a batch of the server-side evaluation: 10,000 Fashion-MNIST test images
 * on 2 threads took LeNet 0.18-0.20 s at 64 against 0.235-0.24 at 256 (whose
 * activations outgrow L2), the LSTM 0.31 s at 64 to 256 and 0.49 at 32
 * (`glassbox-client eval --batch B --threads 2`, AMD EPYC Zen 4). The round
 * waits for it. */
#define S_EVAL_BATCH 64

static int s_server_eval(gb_federation_t *f, gb_error_t *err)
{
    if (!f->o.test_data)
        return 0;
    int rc = gb_dataset_load(f->o.test_data, GB_SPLIT_TEST, &f->test, err);
    if (rc)
        return gb_error_prefix(err, rc, "federation: --test-data: ");
    if (!(f->eval_model = gb_model_new(f->global->spec, err)))
        return err->code;
    if ((rc = gb_model_plan(f->eval_model, S_EVAL_BATCH, f->o.threads, err)) != 0)
        return rc;
    gb_shape_t in = gb_model_input_shape(f->eval_model);
    size_t cells = 1;
    for (int i = 0; i < in.rank; i++)
        cells *= (size_t)in.dim[i];
    if (cells != gb_dataset_sample_size(f->test))
        return gb_error_set(err, GB_ESHAPE,
                            "federation: the model takes %zu inputs, %s's samples have %zu",
                            cells, f->o.test_data, gb_dataset_sample_size(f->test));
    if (gb_dataset_loss(f->test) != GB_LOSS_SOFTMAX_CE)
        return 0;
    /* per-class accuracy: who the model fails, by name */
    size_t k = (size_t)f->n_classes;
    f->class_total = gb_calloc(k, sizeof *f->class_total);
    f->class_correct = gb_calloc(k, sizeof *f->class_correct);
    f->class_accuracy = gb_calloc(k, sizeof *f->class_accuracy);
    if (!f->class_total || !f->class_correct || !f->class_accuracy)
        return gb_error_set(err, GB_ENOMEM, "federation: out of memory for %zu classes", k);
    return 0;
}

/* The server's measure of what each update teaches (update_probe.h), on
 * its test data: without test data the flagger goes without it, and so it
 * does, with a warning, for a model the probe does not take (more outputs
 * than a pass holds, more class-cells than it compares): a federation
 * that ran before the probe existed still runs. */
static int s_update_probe(gb_federation_t *f, gb_error_t *err)
{
    if (!f->test || f->o.probe_samples == 0)
        return 0;
    int k = f->o.probe_samples;
    if (k > f->test->n)
        k = (int)f->test->n;
    gb_error_t perr = {0};
    if (!(f->probe = gb_update_probe_new(f->global->spec, f->test, k, f->o.threads, &perr))) {
        if (perr.code == GB_ENOMEM) {
            *err = perr;
            return gb_error_prefix(err, err->code, "federation: ");
        }
        gb_log_warn("federation: updates are not probed for what they teach (no lesson "
                    "signal for the flags): %s", perr.msg);
        return 0;
    }
    size_t features = gb_update_probe_features(f->probe);
    if (!(f->lesson = gb_malloc(features * sizeof *f->lesson)))
        return gb_error_set(err, GB_ENOMEM, "federation: out of memory for the update probe");
    return 0;
}

/* The classes' names, for every place a class is named (round line,
 * /metrics, reports), and the store of each round's class support. A
 * model with more outputs than a names list holds (a large regression
 * head) gets none unless a file is given, which is then refused by its
 * count; so is a file whose count is not the model's. */
static int s_classes(gb_federation_t *f, gb_error_t *err)
{
    if (f->o.min_class_clients > f->o.rounds.max_clients)
        return gb_error_set(err, GB_EINVAL, "federation: --min-class-clients %u is more than "
                            "the %u clients the federation takes", f->o.min_class_clients,
                            f->o.rounds.max_clients);
    if (f->o.class_names_file || f->n_classes <= GB_CLASS_NAMES_MAX_CLASSES) {
        f->class_names = gb_class_names_choose(f->o.class_names_file, f->o.test_data,
                                               f->n_classes, err);
        if (!f->class_names)
            return gb_error_prefix(err, err->code, "federation: ");
    }
    if (f->merge && (!(f->class_support = gb_calloc((size_t)f->n_classes,
                                                    sizeof *f->class_support)) ||
                     !(f->class_keys = gb_calloc((size_t)f->n_classes,
                                                 sizeof *f->class_keys))))
        return gb_error_set(err, GB_ENOMEM, "federation: out of memory for %d classes",
                            f->n_classes);
    return 0;
}

/* Creates dir (one level) when it is missing, so a first run needs no
 * mkdir; says so, since a mistyped --state would otherwise start a new
 * federation without a word. */
static int s_make_dir(const char *dir, mode_t mode, gb_error_t *err)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : gb_error_set(err, GB_EIO, "'%s' is not a directory", dir);
    if (mkdir(dir, mode) != 0)
        return gb_error_set(err, GB_EIO, "cannot create directory '%s': %s", dir,
                            strerror(errno));
    gb_log_info("federation: created directory '%s'", dir);
    return 0;
}

/* The last run was stopped between a round's checkpoint and the end of its
 * publication: what it staged goes out again (the files are the outbox's),
 * and new subscribers get it as the latest. */
static void s_send_recovered(gb_federation_t *f)
{
    uint64_t round;
    const uint8_t *pub;
    size_t len;
    if (!gb_pub_outbox_recovered(f->outbox, &round, &pub, &len))
        return;
    gb_error_t err = {0};
    uint8_t *signed_pub = NULL;
    size_t signed_len = 0;
    if (f->signer && (gb_publication_sign(f->signer, pub, len, &signed_pub, &signed_len,
                                          &err) != 0 ||
                      gb_front_door_publish(f->door, signed_pub, signed_len, &err) < 0))
        gb_log_error("federation: round %llu: not sent again to subscribers: %s",
                     (unsigned long long)round, err.msg);
    gb_free(signed_pub);
    if (f->pub && gb_publisher_send(f->pub, pub, len, &err) != 0)
        gb_log_error("federation: round %llu: not published again on the PUB socket: %s",
                     (unsigned long long)round, err.msg);
}

static bool s_on_joined(void *arg, const char *id, const Glassbox__Join *j,
                        gb_front_door_refusal_t *no);
static void s_on_left(void *arg, const char *id, const char *reason);
static void s_on_message(void *arg, const char *id, const Glassbox__Envelope *env);

gb_federation_t *gb_federation_new(void *zmq_ctx, gb_front_door_t *door,
                                   const gb_federation_options_t *opts, gb_error_t *err)
{
    gb_error_t scratch = {0};
    if (!err)
        err = &scratch; /* the set-up steps return and prefix their callees' codes */
    if (!door || !opts) {
        gb_error_set(err, GB_EINVAL, "federation: no front door or options");
        return NULL;
    }
    gb_federation_t *f = gb_calloc(1, sizeof *f);
    if (!f) {
        gb_error_set(err, GB_ENOMEM, "federation: out of memory");
        return NULL;
    }
    f->o = *opts;
    s_defaults(&f->o);
    f->door = door;
    f->test_loss = f->test_accuracy = NAN;
    if ((opts->state_dir && !(f->state_dir = gb_strdup(opts->state_dir))) ||
        (opts->out_dir && !(f->out_dir = gb_strdup(opts->out_dir))) ||
        !(f->federation = gb_strdup(f->o.federation)) ||
        !(f->server_optimizer = gb_strdup(f->o.server_optimizer))) {
        gb_error_set(err, GB_ENOMEM, "federation: out of memory");
        goto fail;
    }
    f->o.server_optimizer = f->server_optimizer;
    if ((f->state_dir && s_make_dir(f->state_dir, 0700, err) != 0) ||
        (f->out_dir && s_make_dir(f->out_dir, 0755, err) != 0))
        goto fail;
    if (f->state_dir && gb_pki_check_name(f->federation, "federation name", err) != 0)
        goto fail; /* it is saved in every checkpoint */
    if ((opts->publish || opts->out_dir) && (!opts->key_file || !opts->cert_file)) {
        gb_error_set(err, GB_EINVAL, "federation: publishing needs the coordinator's key and "
                                     "certificate");
        goto fail;
    }
    if (gb_rounds_config_check(&f->o.rounds, err) != 0 || s_load_model(f, err) != 0 ||
        s_model_facts(f, err) != 0)
        goto fail;
    size_t n = f->global->n_params;
    gb_server_optim_cfg_t ocfg;
    if (gb_server_optim_parse(f->o.server_optimizer, &ocfg, err) != 0 ||
        !(f->opt = gb_server_optim_new(&ocfg, n, err)))
        goto fail;
    if (f->optim_backup && gb_server_optim_set_state(f->opt, f->optim_backup, f->optim_len,
                                                     f->optim_backup_steps, err) != 0) {
        gb_error_prefix(err, err->code, "federation: the checkpoint's optimiser state: ");
        goto fail;
    }
    f->optim_len = gb_server_optim_state_len(f->opt);
    /* a checkpoint holds the parameters and the optimiser state, its model
     * file the parameters again; specs and metadata are small */
    f->per_checkpoint = 4 * (2 * (uint64_t)n + f->optim_len) +
                        2 * (uint64_t)strlen(f->global->spec) + 8192;
    if (f->state_dir && gb_checkpoint_check_room(f->state_dir, f->per_checkpoint,
                                                 (size_t)f->o.keep_checkpoints, err) != 0) {
        gb_error_prefix(err, err->code, "--state: ");
        goto fail;
    }
    gb_free(f->optim_backup);
    f->optim_backup = NULL;
    /* a round holds at most its selected clients' results */
    size_t per_round = f->o.rounds.max_clients;
    if (per_round > GB_AGG_MAX_CLIENTS)
        per_round = GB_AGG_MAX_CLIENTS;
    /* serve's --threads: its evaluation's, and the aggregation passes' */
    if (!(f->agg = gb_aggregator_new(f->o.aggregator, per_round, err)) ||
        gb_aggregator_set_threads(f->agg,
                                  f->o.threads < 1                    ? 1
                                  : f->o.threads > GB_AGG_MAX_THREADS ? GB_AGG_MAX_THREADS
                                                                      : f->o.threads,
                                  err) != 0)
        goto fail;
    if (f->o.explain != GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE &&
        !(f->merge = gb_explain_merge_new(per_round < GB_EXPLAIN_MERGE_MAX_CLIENTS
                                              ? per_round
                                              : GB_EXPLAIN_MERGE_MAX_CLIENTS,
                                          err)))
        goto fail;
    if (!(f->flagger = gb_flagger_new(NULL, err)))
        goto fail;
    if (f->o.guard_flags && !(f->held = gb_held_updates_new(per_round, n, err)))
        goto fail;
    f->next = gb_snapshot_new(f->global->spec, f->global->params, n, f->global->round, err);
    f->view = gb_malloc(sizeof *f->view);
    if (f->next && f->view && !(f->task_pack = gb_task_pack_new(err)))
        goto fail;
    f->delta = gb_malloc(n * sizeof(float));
    f->scratch = gb_malloc(n * sizeof(float));
    if (f->optim_len)
        f->optim_backup = gb_malloc(f->optim_len * sizeof(float));
    if (!f->next || !f->view || !f->delta || !f->scratch || (f->optim_len && !f->optim_backup)) {
        if (f->next)
            gb_error_set(err, GB_ENOMEM, "federation: out of memory for %zu parameters", n);
        goto fail;
    }
    if (s_server_eval(f, err) != 0 || s_classes(f, err) != 0 || s_update_probe(f, err))
        goto fail;
    /* the flag evidence, with each update's lesson when the probe runs */
    if (!(f->evidence = gb_round_evidence_new(
              per_round, 0, f->probe ? gb_update_probe_features(f->probe) : 0, err)))
        goto fail;
    /* With the coordinator's key, publications are signed for the certified
     * subscribers on the front door even without --publish or --out. */
    if (opts->publish || opts->out_dir || (opts->key_file && opts->cert_file)) {
        if (!(f->signer = gb_signer_load(opts->key_file, opts->cert_file, err)))
            goto fail;
        if (opts->publish && !(f->pub = gb_publisher_new(zmq_ctx, opts->publish, f->signer, err)))
            goto fail;
    }
    if ((f->out_dir || f->state_dir) &&
        !(f->outbox = gb_pub_outbox_new(f->out_dir, f->state_dir, f->signer, f->global->round,
                                        err)))
        goto fail;
    if (f->outbox) {
        gb_explain_report_opts_t report = {f->class_names, f->o.min_class_clients};
        gb_pub_outbox_set_report(f->outbox, &report);
        s_send_recovered(f);
    }
    if (gb_fed_report_open(f, err) != 0)
        goto fail;
    if (gb_fed_sim_init(f, err) != 0)
        goto fail;
    gb_rounds_config_t rc = f->o.rounds;
    if (f->task_id_base > rc.task_id_base)
        rc.task_id_base = f->task_id_base;
    f->task_id_base = rc.task_id_base;
    if (!(f->rounds = gb_rounds_new(&rc, f->global->round, err)))
        goto fail;
    gb_front_door_handlers_t h = {.arg = f, .joined = s_on_joined, .left = s_on_left,
                                  .message = s_on_message, .welcome = gb_fed_sim_welcome};
    gb_front_door_set_handlers(door, &h);
    gb_front_door_set_max_transfer(door, gb_fed_max_transfer(f));
    gb_log_info("federation: model of %zu parameters at round %llu, aggregator %s, server "
                "optimiser %s, explanations %s",
                n, (unsigned long long)f->global->round, gb_aggregator_name(f->agg),
                f->o.server_optimizer, f->merge ? "on" : "off");
    gb_rounds_status_t st;
    gb_rounds_status(f->rounds, &st);
    f->resumed_finished = st.state == GB_ROUNDS_DONE;
    const char *delay = getenv("GLASSBOX_TEST_CHECKPOINT_DELAY_MS");
    if (delay && *delay) {
        f->test_checkpoint_delay_ms = (unsigned)strtoul(delay, NULL, 10);
        gb_log_warn("federation: test hook: every checkpoint takes %u ms more",
                    f->test_checkpoint_delay_ms);
    }
    s_drain(f); /* resuming past total_rounds queues FINISHED at once */
    return f;
fail:
    gb_federation_destroy(&f);
    return NULL;
}

void gb_federation_destroy(gb_federation_t **pf)
{
    if (!pf || !*pf)
        return;
    gb_federation_t *f = *pf;
    s_detach(f);
    gb_event_loop_destroy(&f->own_loop);
    if (f->rounds)
        gb_front_door_set_handlers(f->door, NULL);
    gb_explain_merge_result_free(&f->xr);
    gb_rounds_destroy(&f->rounds);
    gb_aggregator_destroy(&f->agg);
    gb_server_optim_destroy(&f->opt);
    gb_explain_merge_destroy(&f->merge);
    gb_round_evidence_destroy(&f->evidence);
    gb_held_updates_destroy(&f->held);
    gb_flagger_destroy(&f->flagger);
    gb_free(f->flags);
    gb_fed_report_close(f);
    gb_pub_outbox_destroy(&f->outbox);
    gb_publisher_destroy(&f->pub);
    gb_signer_destroy(&f->signer);
    gb_snapshot_destroy(&f->global);
    gb_snapshot_destroy(&f->next);
    gb_model_destroy(&f->eval_model);
    gb_update_probe_destroy(&f->probe);
    gb_free(f->lesson);
    gb_dataset_destroy(&f->test);
    gb_free(f->class_total);
    gb_free(f->class_correct);
    gb_free(f->class_accuracy);
    gb_free(f->client_accuracies);
    gb_class_names_destroy(&f->class_names);
    gb_free(f->class_support);
    gb_free(f->class_keys);
    gb_free(f->view);
    gb_task_pack_destroy(&f->task_pack);
    gb_free(f->pub_buf);
    gb_free(f->delta);
    gb_free(f->scratch);
    gb_free(f->optim_backup);
    gb_free(f->state_dir);
    gb_free(f->out_dir);
    gb_free(f->federation);
    gb_free(f->server_optimizer);
    gb_free(f->untold);
    gb_free(f->norms);
    gb_shard_map_destroy(&f->shards);
    gb_free(f->sim_partition);
    gb_free(f);
    *pf = NULL;
}

/* ---- actions --------------------------------------------------------------- */

static void s_send_task(gb_federation_t *f, const gb_rounds_action_t *a)
{
    gb_error_t err = {0};
    if (!f->view_valid) {
        if (gb_snapshot_view(f->global, f->view, &err) != 0) {
            gb_log_error("federation: the global model cannot be sent: %s", err.msg);
            return;
        }
        f->view_valid = true;
        f->task_pack_valid = false; /* a new model */
    }
    if (a->round != f->started_round || a->attempt != f->started_attempt) {
        f->started = gb_time_now();
        f->started_round = a->round;
        f->started_attempt = a->attempt;
    }
    int rc = 0;
    /* What every client of the round gets (the model, the training and
     * explanation settings; the seed follows the round) is validated and
     * packed once, for the first task of the round; each task then packs
     * only its own few fields around those bytes (task_pack.h). */
    if (!f->task_pack_valid || f->task_pack_round != a->round) {
        Glassbox__TrainConfig train = f->o.train;
        train.seed = f->o.train.seed ^ (a->round * 0x9E3779B97F4A7C15ull);
        Glassbox__ExplainConfig explain = GLASSBOX__EXPLAIN_CONFIG__INIT;
        explain.method = f->o.explain;
        explain.max_samples = f->o.explain_samples;
        explain.steps = f->o.explain_steps;
        Glassbox__Task shared = GLASSBOX__TASK__INIT;
        shared.model = &f->view->msg;
        shared.train_config = &train;
        shared.explain = &explain;
        f->task_pack_valid = false;
        if ((rc = gb_task_pack_prepare(f->task_pack, &shared, &err)) == 0) {
            f->task_pack_valid = true;
            f->task_pack_round = a->round;
        }
    }
    Glassbox__Task task = GLASSBOX__TASK__INIT;
    task.round = a->round;
    task.task_id = a->task_id;
    task.train = true;
    task.evaluate = a->evaluate;
    task.deadline_unix_ms = a->deadline_ms;
    gb_conversation_part_t parts[GB_TASK_PACK_PARTS];
    if (rc == 0)
        rc = gb_task_pack_parts(f->task_pack, &task, parts, &err);
    if (rc == 0)
        rc = gb_front_door_send_parts(f->door, a->client_id, GLASSBOX__ENVELOPE__BODY_TASK, parts,
                                      GB_TASK_PACK_PARTS, NULL, &err);
    if (rc != 0 && err.code != GB_ECLOSED) {
        /* the client holds a task it never got: a new session makes it join
         * again, and a rejoin gets the same task */
        gb_log_warn("federation: round %llu: task %llu for '%s' not sent: %s",
                    (unsigned long long)a->round, (unsigned long long)a->task_id, a->client_id,
                    err.msg);
        gb_front_door_close(f->door, a->client_id, "its task could not be queued");
    }
}

/* Tells every connected client that the federation is over, and notes
 * the known ones that are away (in id order, as the machine lists them), so
 * that the caller can wait for them to come back and hear it. */
static void s_shutdown_clients(gb_federation_t *f)
{
    gb_rounds_status_t st;
    gb_rounds_status(f->rounds, &st);
    size_t away = st.known - st.connected;
    if (away && !(f->untold = gb_calloc(away, sizeof *f->untold)))
        gb_log_warn("federation: out of memory noting the %zu clients away; not waiting for "
                    "them", away);
    gb_rounds_client_t c;
    for (size_t i = 0; gb_rounds_client_at(f->rounds, i, &c); i++) {
        if (c.connected)
            gb_front_door_refuse(f->door, c.client_id,
                                 GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN, 0,
                                 "the federation has finished its rounds");
        else if (f->untold && f->n_untold < away)
            snprintf(f->untold[f->n_untold++], sizeof f->untold[0], "%s", c.client_id);
    }
}

/* A client told (on its return) that the federation is over: no longer
 * waited for. */
static void s_told(gb_federation_t *f, const char *id)
{
    size_t lo = 0, hi = f->n_untold;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(f->untold[mid], id);
        if (cmp == 0) {
            memmove(&f->untold[mid], &f->untold[mid + 1],
                    (f->n_untold - mid - 1) * sizeof f->untold[0]);
            f->n_untold--;
            return;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* Carries out a step and reports it to the machine. */
static void s_step(gb_federation_t *f, const gb_rounds_action_t *a,
                   int (*fn)(gb_federation_t *, const gb_rounds_action_t *, gb_error_t *))
{
    gb_error_t err = {0}, merr = {0};
    int rc = fn(f, a, &err);
    if (rc == 0 && a->kind == GB_ROUNDS_ACT_CHECKPOINT)
        gb_fed_commit(f, a);
    /* Read after the step: the next round's tasks go out with this report,
     * and their deadline counts from it, however long the step took. */
    uint64_t now = gb_time_unix_ms();
    if (rc == 0)
        rc = gb_rounds_step_done(f->rounds, a->kind, a->round, now, &merr);
    else {
        gb_log_error("federation: round %llu: %s failed: %s", (unsigned long long)a->round,
                     gb_rounds_action_name(a->kind), err.msg);
        gb_error_t room = {0};
        /* a state directory too small for the next checkpoint is not
         * mended by waiting: the run stops and says how much it needs */
        if (a->kind == GB_ROUNDS_ACT_CHECKPOINT && f->state_dir &&
            gb_checkpoint_check_room(f->state_dir, f->per_checkpoint,
                                     (size_t)f->o.keep_checkpoints, &room) == GB_ERANGE)
            snprintf(f->fatal, sizeof f->fatal, "round %llu cannot be checkpointed: %.440s",
                     (unsigned long long)a->round, room.msg);
        rc = gb_rounds_step_failed(f->rounds, a->kind, a->round, err.msg, now, &merr);
    }
    if (rc)
        gb_log_error("federation: the round machine refused a step report: %s", merr.msg);
}

static void s_do(gb_federation_t *f, const gb_rounds_action_t *a)
{
    gb_error_t err = {0};
    switch (a->kind) {
    case GB_ROUNDS_ACT_SEND_TASK:
        s_send_task(f, a);
        break;
    case GB_ROUNDS_ACT_FEED_UPDATE:
        if (gb_fed_feed_update(f, a, &err) != 0)
            gb_log_error("federation: round %llu: the update of '%s' cannot be used: %s",
                         (unsigned long long)a->round, a->client_id, err.msg);
        break;
    case GB_ROUNDS_ACT_FEED_EVAL:
        if (gb_fed_feed_eval(f, a, &err) != 0)
            gb_log_error("federation: round %llu: %s", (unsigned long long)a->round, err.msg);
        break;
    case GB_ROUNDS_ACT_AGGREGATE:
        s_step(f, a, gb_fed_aggregate);
        break;
    case GB_ROUNDS_ACT_EVALUATE:
        s_step(f, a, gb_fed_evaluate);
        break;
    case GB_ROUNDS_ACT_PUBLISH:
        s_step(f, a, gb_fed_publish);
        break;
    case GB_ROUNDS_ACT_CHECKPOINT:
        s_step(f, a, gb_fed_checkpoint);
        break;
    case GB_ROUNDS_ACT_FAILED:
        gb_log_warn("federation: round %llu attempt %u abandoned: %s",
                    (unsigned long long)a->round, a->attempt, a->reason);
        gb_fed_abandon(f);
        break;
    case GB_ROUNDS_ACT_FINISHED:
        gb_log_info("federation: all %llu rounds finished",
                    (unsigned long long)f->o.rounds.total_rounds);
        f->finished = true;
        s_shutdown_clients(f);
        break;
    }
}

/* The timers at what the machine and the outbox wait for now. The machine
 * counts in Unix milliseconds, the loop in gb_time_now's monotonic seconds:
 * the wait is carried over, not the time. */
static void s_arm(gb_federation_t *f)
{
    if (!f->loop)
        return;
    double now = gb_time_now();
    uint64_t wake = gb_rounds_wake_at(f->rounds), unix_now = gb_time_unix_ms();
    double at = wake == UINT64_MAX ? HUGE_VAL
                : wake <= unix_now ? now
                                   : now + (double)(wake - unix_now) / 1000.0;
    double retry = f->outbox ? gb_pub_outbox_next_retry(f->outbox) : HUGE_VAL;
    if (gb_event_loop_timer_set(f->loop, f->round_timer, at) != 0 ||
        gb_event_loop_timer_set(f->loop, f->outbox_timer, retry) != 0)
        gb_log_error("federation: its timers are gone from the loop");
}

static void s_drain(gb_federation_t *f)
{
    gb_rounds_action_t a;
    while (gb_rounds_next_action(f->rounds, &a))
        s_do(f, &a);
    gb_rounds_status_t st;
    gb_rounds_status(f->rounds, &st);
    gb_front_door_set_round(f->door, st.round);
    s_arm(f);
}

/* ---- events ---------------------------------------------------------------- */

static bool s_on_joined(void *arg, const char *id, const Glassbox__Join *j,
                        gb_front_door_refusal_t *no)
{
    gb_federation_t *f = arg;
    gb_error_t err = {0};
    if (f->finished) {
        no->code = GLASSBOX__ERROR_CODE__ERROR_SHUTTING_DOWN;
        snprintf(no->why, sizeof no->why, "the federation has finished its rounds");
        gb_log_info("federation: '%s' is back; told that the federation has finished", id);
        s_told(f, id);
        return false;
    }
    if (gb_fed_sim_turns_away(f, id, j, no))
        return false;
    if (j->train_samples > f->o.max_client_samples ||
        j->test_samples > f->o.max_client_samples) {
        no->code = GLASSBOX__ERROR_CODE__ERROR_INVALID_VALUE;
        snprintf(no->why, sizeof no->why,
                 "join claims %llu training and %llu test samples; a client may hold %llu",
                 (unsigned long long)j->train_samples, (unsigned long long)j->test_samples,
                 (unsigned long long)f->o.max_client_samples);
        gb_log_warn("federation: '%s' refused: %s", id, no->why);
        gb_metrics_counter_add("glassbox_updates_refused_total",
                               "Results refused before they were counted, by reason", "reason",
                               "samples", 1);
        return false;
    }
    if (gb_rounds_join(f->rounds, id, j->train_samples, j->test_samples, gb_time_unix_ms(),
                       &err) != 0) {
        gb_log_warn("federation: '%s' cannot take part: %s", id, err.msg);
        if (err.code == GB_ERANGE) { /* the federation has all the clients it takes */
            no->code = GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN;
        } else {
            no->code = GLASSBOX__ERROR_CODE__ERROR_BUSY;
            no->retry_after_ms = 1000;
        }
        snprintf(no->why, sizeof no->why, "%.255s", err.msg);
        return false;
    }
    s_drain(f);
    return true;
}

static void s_on_left(void *arg, const char *id, const char *reason)
{
    gb_federation_t *f = arg;
    gb_error_t err = {0};
    (void)reason;
    if (gb_rounds_leave(f->rounds, id, gb_time_unix_ms(), &err) == 0)
        s_drain(f);
}

/* A result refused on its content: the round stops waiting for it once the
 * quorum holds without it (rounds.h). */
static void s_note_refused(gb_federation_t *f, const char *id, bool eval, uint64_t round,
                           uint64_t task_id, uint64_t now)
{
    gb_error_t err = {0};
    if (gb_rounds_refused(f->rounds, id, eval, round, task_id, now, &err) != 0) {
        gb_log_warn("federation: '%s': the refusal could not be noted: %s", id, err.msg);
        return;
    }
    gb_log_blame(NULL); /* the round it may complete is the federation's */
    s_drain(f);
}

static void s_on_message(void *arg, const char *id, const Glassbox__Envelope *env)
{
    gb_federation_t *f = arg;
    gb_error_t err = {0};
    gb_rounds_verdict_t verdict = GB_ROUNDS_INVALID;
    uint64_t round = 0, task_id = 0;
    uint64_t now = gb_time_unix_ms();
    int rc;
    f->current = env;
    f->current_client = id;
    gb_log_blame(id); /* what its result makes us refuse is its doing (util/log.h) */
    switch (env->body_case) {
    case GLASSBOX__ENVELOPE__BODY_UPDATE:
        if (!gb_fed_result_fits(f, id, env)) {
            s_note_refused(f, id, false, env->update->round, env->update->task_id, now);
            goto out;
        }
        round = env->update->round;
        task_id = env->update->task_id;
        rc = gb_rounds_update(f->rounds, id, round, task_id, env->update->num_samples, now,
                              &verdict, &err);
        break;
    case GLASSBOX__ENVELOPE__BODY_EVAL_RESULT:
        if (!gb_fed_result_fits(f, id, env)) {
            s_note_refused(f, id, true, env->eval_result->round, env->eval_result->task_id, now);
            goto out;
        }
        round = env->eval_result->round;
        task_id = env->eval_result->task_id;
        rc = gb_rounds_eval_result(f->rounds, id, round, task_id, env->eval_result->num_samples,
                                   now, &verdict, &err);
        break;
    default: {
        char why[128];
        snprintf(why, sizeof why, "a coordinator does not take %s messages",
                 gb_envelope_body_name(env));
        gb_log_warn("federation: '%s' sent %s", id, why);
        gb_front_door_refuse(f->door, id, GLASSBOX__ERROR_CODE__ERROR_UNEXPECTED, env->sequence,
                             why);
        goto out;
    }
    }
    /* The reply first: the client hears its result counted before the
     * round it may complete goes on to aggregate and the next tasks. */
    if (rc == 0)
        gb_front_door_ack(f->door, id, env->sequence, round, task_id);
    else
        gb_front_door_refuse(f->door, id, gb_rounds_verdict_error_code(verdict), env->sequence,
                             err.msg);
    gb_log_blame(NULL); /* the round it may complete is the federation's */
    s_drain(f);
out:
    gb_log_blame(NULL);
    f->current = NULL;
    f->current_client = NULL;
}

/* ---- the loop -------------------------------------------------------------- */

/* The machine's deadline came (a round's, a backoff's end). */
static void s_on_round_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_federation_t *f = arg;
    gb_error_t err = {0};
    if (gb_rounds_tick(f->rounds, gb_time_unix_ms(), &err) != 0)
        gb_log_warn("federation: %s", err.msg);
    s_drain(f);
}

/* A round's publication files are due for another try. */
static void s_on_outbox_timer(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gb_federation_t *f = arg;
    gb_pub_outbox_retry(f->outbox, gb_time_now());
    s_arm(f);
}

/* Leaves the loop: the timers and the door. */
static void s_detach(gb_federation_t *f)
{
    if (!f->loop)
        return;
    gb_event_loop_remove(f->loop, f->round_timer);
    gb_event_loop_remove(f->loop, f->outbox_timer);
    gb_front_door_detach(f->door);
    f->round_timer = f->outbox_timer = 0;
    f->loop = NULL;
}

int gb_federation_attach(gb_federation_t *f, gb_event_loop_t *loop, gb_error_t *err)
{
    if (!loop)
        return gb_error_set(err, GB_EINVAL, "federation: attach needs a loop");
    if (f->loop == loop)
        return 0;
    if (f->loop && f->loop != f->own_loop)
        return gb_error_set(err, GB_EINVAL, "federation: attached to another loop already");
    s_detach(f); /* from its own loop, if a step made one */
    int rc = gb_front_door_attach(f->door, loop, err);
    if (rc)
        return rc;
    /* the machine's first tick at once, as a step always began with one */
    f->round_timer = gb_event_loop_add_timer(loop, gb_time_now(), 0, s_on_round_timer, f, err);
    f->outbox_timer =
        f->round_timer ? gb_event_loop_add_timer(loop, HUGE_VAL, 0, s_on_outbox_timer, f, err)
                       : 0;
    if (!f->outbox_timer) {
        gb_event_loop_remove(loop, f->round_timer);
        f->round_timer = 0;
        gb_front_door_detach(f->door);
        return err && err->code ? err->code : GB_ENOMEM;
    }
    f->loop = loop;
    double retry = f->outbox ? gb_pub_outbox_next_retry(f->outbox) : HUGE_VAL;
    if (gb_event_loop_timer_set(loop, f->outbox_timer, retry) != 0)
        return gb_error_set(err, GB_EINVAL, "federation: the outbox timer is gone");
    return 0;
}

int gb_federation_step(gb_federation_t *f, int max_wait_ms, gb_error_t *err)
{
    if (f->fatal[0])
        return gb_error_set(err, GB_EIO, "%s", f->fatal);
    if (!f->loop) {
        if (!f->own_loop && !(f->own_loop = gb_event_loop_new(err)))
            return err && err->code ? err->code : GB_ENOMEM;
        int rc = gb_federation_attach(f, f->own_loop, err);
        if (rc)
            return rc;
    }
    /* a turn of f->loop: the door is attached to it, and says when its
     * socket failed */
    int rc = gb_front_door_step(f->door, max_wait_ms, err);
    if (rc)
        return rc;
    if (f->fatal[0])
        return gb_error_set(err, GB_EIO, "%s", f->fatal);
    return 0;
}

void gb_federation_flush(gb_federation_t *f)
{
    if (f->outbox)
        gb_pub_outbox_retry(f->outbox, INFINITY);
    s_arm(f);
}

bool gb_federation_finished(const gb_federation_t *f)
{
    return f->finished;
}

size_t gb_federation_unwritten(const gb_federation_t *f, uint64_t *first, const char **why)
{
    if (!f->outbox) {
        if (first)
            *first = 0;
        if (why)
            *why = "";
        return 0;
    }
    return gb_pub_outbox_waiting(f->outbox, first, why);
}

size_t gb_federation_untold(const gb_federation_t *f)
{
    if (!f->finished)
        return 0;
    return f->resumed_finished ? SIZE_MAX : f->n_untold;
}

uint64_t gb_federation_round(const gb_federation_t *f)
{
    return f->global->round;
}

void gb_federation_status(const gb_federation_t *f, gb_rounds_status_t *out)
{
    gb_rounds_status(f->rounds, out);
}

const float *gb_federation_params(const gb_federation_t *f, size_t *n_params)
{
    if (n_params)
        *n_params = f->global->n_params;
    return f->global->params;
}
