/* The federation: the coordinator's round loop run for real. It joins the
 * pure round machine (rounds.h) to the front door's clients (front_door.h),
 * and carries out what the machine asks for:
 *
 *   send task   a Task with the global model of the last finished round,
 *               the local training and explanation settings, and the
 *               round's deadline, to one client (chunked when large);
 *   feed        an accepted Update goes to the aggregator (aggregate.h),
 *               its Explanation to the explanation merge (explain_merge.h),
 *               its metrics and any EvalResult to the round's metrics;
 *   aggregate   the aggregated delta moves the global parameters through
 *               the server optimiser (server_optim.h) into the round's
 *               candidate model; the aggregate explanation is built;
 *   evaluate    the candidate on the server's test set, if one is given;
 *   publish     the Publication (model, explanation, metrics) is built and
 *               packed; it goes out, signed, once the round is checkpointed;
 *   checkpoint  the candidate, the optimiser state and the next task id
 *               (checkpoint.h); then the candidate becomes the global model
 *               and the publication goes out on the PUB socket and, with an
 *               output directory, as files anyone can check with openssl,
 *               with the explanation as JSON and PNGs. So what is published
 *               is always a round the federation keeps; a failure to send it
 *               is logged and does not undo the round, and files that could
 *               not be written are retried (pub_outbox.h) until they are.
 *
 * A failed step abandons the attempt: the global model, the optimiser state
 * and every file `latest` names stay those of the last finished round, and
 * the round is tried again after the machine's backoff. A restarted
 * coordinator with the same state directory resumes after the last
 * checkpoint; its task ids continue past the old run's, so late results
 * for old tasks are refused as stale. When total_rounds are done, every
 * connected client is told ERROR_SHUTTING_DOWN (retry_after_ms 0) and
 * gb_federation_finished becomes true.
 *
 * Results are answered by name: an accepted or duplicate Update or
 * EvalResult gets an Ack (its sequence, round and task id); a refused one an
 * Error with the machine's reason (rounds.h: stale, unexpected, ...), or,
 * before the machine counts it: ERROR_SHAPE for a delta that does not fit
 * the global model; ERROR_INVALID_VALUE for a sample count above
 * max_client_samples or above the training samples the client joined with
 * (a Join claiming more than max_client_samples is refused the same way), a
 * delta with a value that is not finite, a loss that is not finite and
 * non-negative, an accuracy outside [0, 1]; ERROR_NORM for a delta whose L2
 * norm is more than max_norm_ratio times the reference: the median norm of
 * the last finished round's updates (of this round's so far while there is
 * none), and never more than max_norm_ratio times the global model's own
 * norm. So no result that would wreck the model or the sums reaches any
 * aggregator. Every refusal is counted in
 * glassbox_updates_refused_total{reason}.
 *
 * It runs on an event loop (net/event_loop.h): attached to the process's
 * one loop (gb_federation_attach, which attaches the door too), with the
 * round machine's wake-up and the outbox's next retry as timers there, so
 * an idle federation sleeps until the nearest deadline; or, for a caller
 * without one, on a loop of its own that gb_federation_step turns. Either
 * way gb_federation_step is the turn: serve runs the same code as the
 * tests.
 *
 * Ownership: gb_federation_new returns an object the caller owns
 * (gb_federation_destroy); it borrows the ZeroMQ context and the front door
 * (which must outlive it) and installs the door's handlers, removed again by
 * destroy, as is the attachment to the loop (the door's too). Strings in
 * the options are copied where kept. Single-threaded: the thread that runs
 * the loop runs everything. */
#ifndef GB_COORDINATOR_FEDERATION_H
#define GB_COORDINATOR_FEDERATION_H

#include "data/class_names.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "front_door.h"
#include "glassbox.pb-c.h"
#include "rounds.h"
#include "util/error.h"

#define GB_FED_DEFAULT_MAX_CLIENT_SAMPLES UINT64_C(10000000)
#define GB_FED_DEFAULT_MAX_NORM_RATIO 10.0

/* Default of serve --min-class-clients: a class map that rests on one
 * client is that client's data, not the federation's. */
#define GB_FED_DEFAULT_MIN_CLASS_CLIENTS 2u

/* How much of the round's aggregate explanation one class rests on. */
typedef struct {
    uint32_t clients;        /* clients whose explanation had the class */
    uint64_t samples;        /* the samples they explained of it */
    bool weak;               /* clients < min_class_clients (explain_report.h's rule) */
} gb_federation_class_support_t;

/* One finished round, for the caller's report. */
typedef struct {
    uint64_t round;          /* the round */
    size_t participants;     /* updates aggregated */
    uint64_t samples;        /* their num_samples in all */
    double train_loss;       /* sample-weighted mean of the clients' train_loss (NaN: none) */
    double train_accuracy;   /* ... of train_accuracy (NaN: none) */
    double client_loss;      /* sample-weighted mean of the EvalResults' loss (NaN: none) */
    double client_accuracy;  /* ... accuracy (NaN: none) */
    double test_loss;        /* on the server's test set (NaN: none) */
    double test_accuracy;    /* ... (NaN: none) */
    double max_distance;     /* largest explanation distance (NaN: none) */
    const char *max_distance_client; /* whose; borrowed for the callback's duration */
    int n_classes;           /* classes of class_accuracy (0: no per-class figures) */
    const double *class_accuracy; /* server-side test accuracy per class (NaN: class
                                     absent from the test data); borrowed likewise */
    const gb_class_names_t *class_names; /* the model's class names (also for
                                            class_support; NULL: more classes than a
                                            names list holds); borrowed likewise */
    size_t n_class_support;  /* classes of class_support: the model's outputs, or 0 when
                                the round built no aggregate explanation */
    const gb_federation_class_support_t *class_support; /* per class, nobody's included
                                (clients 0); borrowed likewise */
    uint32_t min_class_clients; /* the threshold the weak marks were made with */
    size_t clients_evaluated; /* EvalResults the round took (--client-eval) */
    double client_accuracy_min, client_accuracy_p10, client_accuracy_median,
        client_accuracy_max; /* the spread of their accuracies: p10 the nearest rank
                                (ceil(n / 10)-th smallest), the median of an even
                                count the mean of the middle two (NaN: none) */
    size_t flagged;          /* clients flagged this round (client_flags.h) */
    const char *const *flagged_clients; /* their names [flagged]; borrowed likewise */
    double seconds;          /* from the round's first task to its checkpoint */
} gb_federation_round_t;

typedef struct {
    const char *model;             /* initial global model: preset, spec file or model file
                                      (ignored when resuming from a checkpoint) */
    uint64_t model_seed;           /* initialisation seed of a preset or spec (0: 1) */
    gb_rounds_config_t rounds;     /* the round loop (task_id_base is set from the
                                      checkpoint when resuming) */
    const char *aggregator;        /* aggregate.h spec (NULL: "fedavg") */
    const char *server_optimizer;  /* server_optim.h spec (NULL: "sgd") */
    Glassbox__TrainConfig train;   /* what each task asks of local training (seed mixed
                                      with the round by the coordinator) */
    Glassbox__ExplainMethod explain; /* EXPLAIN_NONE: tasks ask for no explanation */
    uint32_t explain_samples;      /* local samples to attribute (0: client default) */
    uint32_t explain_steps;        /* IG steps / SmoothGrad samples (0: client default) */
    const char *state_dir;         /* checkpoints, resumed from (NULL: none) */
    int keep_checkpoints;          /* checkpoints kept (0: 3) */
    const char *out_dir;           /* signed publication files and explanation reports
                                      (NULL: none) */
    const char *publish;           /* PUB endpoint for publications (NULL: none) */
    const char *key_file;          /* the coordinator's signing key (PEM); required with
                                      publish or out_dir */
    const char *cert_file;         /* its certificate (PEM) */
    const char *test_data;         /* server-side evaluation data set (its test split;
                                      NULL: none); names the classes when it is
                                      Fashion-MNIST */
    const char *class_names_file;  /* --class-names FILE (data/class_names.h; exactly the
                                      model's classes), wins over the built-in names
                                      (NULL: built in, or "class K") */
    uint32_t min_class_clients;    /* a class whose aggregate explanation rests on fewer
                                      clients is weakly explained (reported, /metrics,
                                      explanation-ROUND.json); 0 or 1: none is; at most
                                      rounds.max_clients */
    int probe_samples;             /* test samples each update is probed on for what it
                                      teaches (update_probe.h; a flag signal); 0: none */
    int threads;                   /* threads for server-side evaluation and FedAvg's
                                      aggregation passes (0: 1) */
    const char *federation;        /* name, saved in checkpoints (NULL: "glassbox") */
    uint64_t max_client_samples;   /* most samples one client may claim, in Join (train and
                                      test) and in any result (0:
                                      GB_FED_DEFAULT_MAX_CLIENT_SAMPLES) */
    double max_norm_ratio;         /* an Update whose delta's L2 norm is more than this
                                      times the reference (below) is refused with
                                      ERROR_NORM (0: GB_FED_DEFAULT_MAX_NORM_RATIO) */
    bool guard_flags;              /* leave the updates (and explanations) of clients
                                      flagged in their last round out of the aggregate
                                      (client_flags.h; serve --guard flags) */
    double max_explanation_share;  /* most of the round's explanation weight one client
                                      carries: this share of the samples the selected
                                      clients joined with (0 or >= 1: no cap beyond each
                                      client's own sample share) */
    uint32_t simulate_clients;     /* simulation: deal the training split in this many
                                      slices to clients that ask, by name (0: none) */
    const char *simulate_partition; /* their partition: iid, dirichlet:A, shards:K
                                      (NULL: iid) */
    uint64_t simulate_seed;        /* the partition's seed */
    void (*round_done)(void *arg, const gb_federation_round_t *r); /* may be NULL */
    void *round_done_arg;          /* passed to round_done */
} gb_federation_options_t;

typedef struct gb_federation gb_federation_t;

/* Builds the federation: resumes from state_dir's latest checkpoint when
 * there is one (its model, round, optimiser state and task ids; a damaged
 * latest falls back as checkpoint.h says), else builds the initial model;
 * refuses a state directory that cannot hold keep_checkpoints checkpoints
 * of the model (checkpoint.h: gb_checkpoint_check_room);
 * makes the aggregator, optimiser, explanation merge, publisher and signer;
 * and installs the door's handlers. NULL and err on any failure (a bad
 * option names itself). */
gb_federation_t *gb_federation_new(void *zmq_ctx, gb_front_door_t *door,
                                   const gb_federation_options_t *opts, gb_error_t *err);

/* Removes the door's handlers and frees everything; sets *f to NULL;
 * NULL-safe. */
void gb_federation_destroy(gb_federation_t **f);

/* Attaches the federation to loop: the door (gb_front_door_attach), the
 * round machine's wake-up (the first tick at once) and the outbox's next
 * retry as timers, set again after everything that changes them. The loop
 * is borrowed and must outlive the attachment. A federation that a step
 * attached to its own loop moves to the given one. Returns 0 (also when
 * attached to loop already), GB_EINVAL when attached to another loop (it or
 * its door), GB_ENOMEM (err filled). */
int gb_federation_attach(gb_federation_t *f, gb_event_loop_t *loop,
                         gb_error_t *err) GB_MUST_CHECK;

/* One turn of the loop the federation is attached to (a loop of its own,
 * made now, when it is attached to none): waits at most max_wait_ms (-1:
 * until the nearest deadline of the loop) for the door's events and the
 * timers, then handles what came: the door's events, the machine's
 * deadlines, every action they lead to, the publication files due for a
 * retry. Returns 0 (also when a signal cut the wait short: the caller looks
 * at its flags), or a negative gb_err when the loop or the door's socket
 * fails or the federation cannot go on (GB_EIO: the state directory cannot
 * hold the next checkpoint; err says how much room it needs). */
int gb_federation_step(gb_federation_t *f, int max_wait_ms, gb_error_t *err) GB_MUST_CHECK;

/* total_rounds are finished (and the clients were told). From then on a
 * client that joins is told ERROR_SHUTTING_DOWN (retry_after_ms 0): the
 * federation has finished. */
bool gb_federation_finished(const gb_federation_t *f);

/* Once finished: known clients that were away when the rounds were done
 * and have not come back to hear it; SIZE_MAX when this run resumed a
 * federation already finished (who took part is not known); 0 before. */
size_t gb_federation_untold(const gb_federation_t *f);

/* Tries every publication file waiting for a retry now (before stopping). */
void gb_federation_flush(gb_federation_t *f);

/* Finished rounds whose publication files in out_dir are not written yet
 * (pub_outbox.h: retried when their backoff has passed); *first (may be NULL) gets the
 * oldest and *why (may be NULL) the last failure, borrowed. */
size_t gb_federation_unwritten(const gb_federation_t *f, uint64_t *first, const char **why);

/* The last finished round (0: none) and the round machine's status. */
uint64_t gb_federation_round(const gb_federation_t *f);
void gb_federation_status(const gb_federation_t *f, gb_rounds_status_t *out);

/* The global model of the last finished round: parameters (borrowed until
 * the next step) and their count. */
const float *gb_federation_params(const gb_federation_t *f, size_t *n_params);

#endif
