/* What federation.c (events and the action loop) and federation_round.c (the
 * round's steps) share: the federation's state. Not for other modules. */
#ifndef GB_COORDINATOR_FEDERATION_INTERNAL_H
#define GB_COORDINATOR_FEDERATION_INTERNAL_H

#include "aggregate.h"
#include "client_flags.h"
#include "data/class_names.h"
#include "data/dataset.h"
#include "engine/model.h"
#include "explain_merge.h"
#include "federation.h"
#include "held_updates.h"
#include "net/event_loop.h"
#include "net/publish.h"
#include "pub_outbox.h"
#include "report_history.h"
#include "round_evidence.h"
#include "net/signing.h"
#include "net/snapshot.h"
#include "server_optim.h"
#include "shard_map.h"
#include "task_pack.h"
#include "update_probe.h"

#define GB_FED_PHASES 4 /* aggregate, evaluate, publish, checkpoint */

/* One client flagged in the round being finished, with its evidence. */
typedef struct {
    char client[GB_ROUND_EVIDENCE_NAME_MAX + 1]; /* its name */
    gb_flag_evidence_t ev;          /* what it was scored on (ev.client: client above) */
    gb_flag_verdict_t v;            /* the flagger's verdict */
    /* where its explanation moved: cells of the importance map (row-major
     * over map_shape) where its share most exceeds the others', largest
     * first, with the excess (gb_explain_merge_moved); n_moved 0 without */
    uint32_t moved[GB_EXPLAIN_MERGE_MOVED];
    float moved_share[GB_EXPLAIN_MERGE_MOVED];
    size_t n_moved;
    /* which classes' maps it moved most (gb_explain_merge_moved_classes) */
    uint32_t moved_classes[GB_EXPLAIN_MERGE_CLASSES];
    float moved_class_ratio[GB_EXPLAIN_MERGE_CLASSES];
    size_t n_moved_classes;
    /* what its update taught as no other's did (the lesson signal, its z in
     * ev.lesson): the class (-1: no lesson this round) and the input cells
     * whose influence on it the update raised most (gb_update_probe_cell_name) */
    int lesson_class;
    char lesson_cells[64];
} gb_fed_flag_t;

/* The flagged clients as Publication messages (gb_fed_flag_messages). */
typedef struct {
    Glassbox__ClientFlag *flags;    /* [n] */
    Glassbox__ClientFlag **ptrs;    /* [n], for Publication.flags */
    Glassbox__Metric *metrics;      /* their z and evidence lists' items */
    Glassbox__Metric **metric_ptrs; /* ... and pointers to them */
    size_t n;                       /* flags */
} gb_fed_flag_msgs_t;

struct gb_federation {
    gb_federation_options_t o;      /* options, defaults filled (strings borrowed only
                                       during new; the kept ones are below) */
    char *state_dir, *out_dir;      /* copies of the options' */
    char *federation;               /* copy of the name */
    char *server_optimizer;         /* copy of the optimiser spec (o.server_optimizer
                                       points here once it is made) */
    gb_front_door_t *door;          /* borrowed */
    gb_rounds_t *rounds;            /* the round machine */
    gb_aggregator_t *agg;           /* combines the deltas */
    gb_server_optim_t *opt;         /* moves the global model */
    gb_explain_merge_t *merge;      /* NULL when tasks ask for no explanation */
    gb_round_evidence_t *evidence;  /* the attempt's updates, sketched (round_evidence.h) */
    gb_held_updates_t *held;        /* --guard flags: the attempt's updates until its clients
                                       are scored (held_updates.h); NULL without the guard */
    gb_flagger_t *flagger;          /* who stood out, round after round (client_flags.h) */
    gb_fed_flag_t *flags;           /* the flagged of round flags_round [n_flags] */
    size_t n_flags, flags_cap;
    uint64_t flags_round;           /* the round last scored (0: none) */
    gb_signer_t *signer;            /* NULL without publish and out_dir */
    gb_publisher_t *pub;            /* NULL without publish */
    gb_pub_outbox_t *outbox;        /* the files in out_dir; NULL without it */
    gb_report_history_t *history;   /* the report's rounds (out_dir/history.json); NULL
                                       without out_dir */
    gb_snapshot_t *global;          /* the last finished round's model (round = that round) */
    gb_snapshot_t *next;            /* the candidate of the round being finished */
    gb_snapshot_view_t *view;       /* global as a message for Tasks */
    bool view_valid;                /* view matches global */
    gb_task_pack_t *task_pack;      /* the round's Tasks, model packed once (task_pack.h) */
    bool task_pack_valid;           /* task_pack holds view's model and task_pack_round's
                                       settings */
    uint64_t task_pack_round;       /* the round it was prepared for (its train seed) */
    float *delta;                   /* the aggregated delta */
    float *scratch;                 /* an Update's delta, aligned */
    float *optim_backup;            /* the optimiser state before this round's step */
    size_t optim_len;               /* floats of optimiser state */
    uint64_t optim_backup_steps;    /* its step count then */
    bool stepped;                   /* the optimiser moved for the attempt in progress */
    gb_shape_t map_shape;           /* attribution map shape */
    int n_classes;                  /* model outputs */
    gb_dataset_t *test;             /* server-side evaluation data, or NULL */
    gb_model_t *eval_model;         /* planned model for it, or NULL */
    gb_update_probe_t *probe;       /* what each update teaches, on test's samples, or NULL */
    float *lesson;                  /* one update's lesson [probe features] (with probe) */
    bool probe_ready;               /* probe measured this attempt's global model */
    int64_t *class_total, *class_correct; /* its per-class counts [n_classes] (NULL:
                                       no server evaluation, or regression) */
    double *class_accuracy;         /* correct / total per class, NaN for a class
                                       absent from the test data [n_classes] */
    gb_class_names_t *class_names;  /* the classes' names (data/class_names.h; NULL: more
                                       classes than a list holds, and no file) */
    gb_federation_class_support_t *class_support; /* [n_classes], the last round's
                                       (NULL: no explanations asked for) */
    uint64_t *class_keys;           /* [n_classes] scratch: clients << 32 | class, to pick
                                       the classes /metrics shows */
    double *client_accuracies;      /* the attempt's EvalResult accuracies */
    size_t n_client_accuracies, client_accuracies_cap;

    /* the attempt in progress */
    bool open;                      /* aggregator (and merge) begun for it */
    uint64_t open_round;            /* its round */
    uint32_t open_attempt;          /* its attempt */
    double train_loss_sum, train_acc_sum; /* sample-weighted sums of Update metrics */
    uint64_t train_loss_n, train_acc_n;   /* their weights */
    double eval_loss_sum, eval_acc_sum;   /* of EvalResults */
    uint64_t eval_n;                      /* their weight */
    double test_loss, test_accuracy;      /* server-side evaluation (NaN: none) */
    gb_explain_merge_result_t xr;   /* the aggregate explanation, after aggregate */
    uint8_t *pub_buf;               /* the packed Publication, from publish until it is
                                       sent after the checkpoint */
    size_t pub_len;                 /* its bytes */
    uint64_t started_round;         /* the attempt `started` was set for */
    uint32_t started_attempt;
    size_t participants;            /* updates aggregated */
    uint64_t samples;               /* their weight */
    double started;                 /* when its first task went out (monotonic s) */
    double phase_seconds[GB_FED_PHASES]; /* how long each of its steps took */

    /* the result being fed while the action queue drains */
    const Glassbox__Envelope *current;
    const char *current_client;

    uint64_t task_id_base;          /* the run's task ids start after this */
    bool finished;                  /* total_rounds done, clients told */
    char (*untold)[GB_ROUNDS_ID_MAX + 1]; /* known clients not connected when the rounds
                                       were done, sorted: not told yet */
    size_t n_untold;                /* their number */
    unsigned test_checkpoint_delay_ms; /* GLASSBOX_TEST_CHECKPOINT_DELAY_MS: a slow disk,
                                       for the tests of deadlines after a long step */
    double *norms;                  /* L2 norms of the updates accepted this attempt */
    size_t n_norms, norms_cap;
    double norm_reference;          /* median norm of the last finished round (0: none) */
    double global_norm;             /* the global model's L2 norm, when valid */
    bool global_norm_valid;
    double current_norm;            /* the Update being judged */
    uint64_t explain_cap;           /* this attempt's cap on one client's explanation weight (0: none) */
    uint64_t current_max_count;     /* the samples the Update's client joined with (train + test) */
    gb_shard_map_t *shards;         /* simulation: slices by client name (NULL: none) */
    char *sim_partition;            /* its partition, canonical text */
    Glassbox__DataShard sim_shard;  /* the last shard put in a Welcome */
    char sim_refusal[256];          /* why the last Join that asked got none ("": it did) */
    uint64_t per_checkpoint;        /* bytes one checkpoint and model file take, about */
    char fatal[GB_ERROR_MSG_MAX];   /* why the federation cannot go on ("" while it can) */
    gb_event_loop_t *loop;          /* the loop it is attached to (borrowed, or own_loop) */
    gb_event_loop_t *own_loop;      /* gb_federation_step's, made when it finds none */
    uint64_t round_timer;           /* in loop: the round machine's wake-up
                                       (gb_rounds_wake_at) */
    uint64_t outbox_timer;          /* in loop: the outbox's next retry */
    bool resumed_finished;          /* this run began with every round done: who is
                                       yet to be told is not known */
};

/* The round's steps (federation_round.c); each returns 0 or a gb_err with
 * err filled, and the caller reports done or failed to the machine. */
int gb_fed_feed_update(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
int gb_fed_feed_eval(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
int gb_fed_aggregate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
int gb_fed_evaluate(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
int gb_fed_publish(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
int gb_fed_checkpoint(gb_federation_t *f, const gb_rounds_action_t *a, gb_error_t *err);
/* The value of metric `name` in a list, or NaN (federation_round.c). */
double gb_fed_metric(Glassbox__Metric *const *m, size_t n, const char *name);

/* The checks before the machine counts a result (federation_checks.c). */
/* True when the Update or EvalResult in env may be counted; else refuses it
 * to the client (the reason logged and counted) and returns false. An
 * Update's delta is left in f->scratch and its norm in f->current_norm. */
bool gb_fed_result_fits(gb_federation_t *f, const char *id, const Glassbox__Envelope *env);
/* Keeps the norm of an Update the attempt took (GB_ENOMEM). */
int gb_fed_note_norm(gb_federation_t *f, double norm, gb_error_t *err);
/* A round finished: its median norm becomes the reference. */
void gb_fed_norms_round_done(gb_federation_t *f);
/* An attempt was abandoned: its norms are forgotten. */
void gb_fed_norms_forget(gb_federation_t *f);
/* The largest Envelope a Task or an Update of this model needs, in bytes. */
uint64_t gb_fed_max_transfer(const gb_federation_t *f);

/* The flag step (federation_flags.c). gb_fed_flag_score scores the clients
 * of the round being published from f->evidence and f->xr and keeps the
 * flagged in f->flags (a round scored by an earlier attempt keeps those
 * verdicts: the flagger counts a round once). gb_fed_flag_round, at
 * commit, logs and counts them and returns how many; *names gets their
 * names (borrowed from f->flags until the next scoring, the array the
 * caller's to gb_free; NULL when none). gb_fed_flag_messages fills *out
 * (gb_fed_flag_messages_free) with them as ClientFlag messages that borrow
 * from f->flags (GB_ENOMEM). */
void gb_fed_flag_score(gb_federation_t *f, uint64_t round);
size_t gb_fed_flag_round(gb_federation_t *f, uint64_t round, const char ***names);
int gb_fed_flag_messages(const gb_federation_t *f, uint64_t round, gb_fed_flag_msgs_t *out,
                         gb_error_t *err) GB_MUST_CHECK;
void gb_fed_flag_messages_free(gb_fed_flag_msgs_t *m);

/* The report (federation_report.c): with out_dir, _open reads the history
 * back (a bad file is logged, moved aside and replaced by a fresh one; 0, or
 * GB_EINVAL/GB_ENOMEM), _round adds the committed round r to it and writes
 * out_dir/history.json and out_dir/index.html (a failure is logged and
 * counted, never returned), _close frees it. */
int gb_fed_report_open(gb_federation_t *f, gb_error_t *err) GB_MUST_CHECK;
void gb_fed_report_round(gb_federation_t *f, const gb_federation_round_t *r);
void gb_fed_report_close(gb_federation_t *f);

/* Simulation (federation_sim.c). */
/* Opens the shard map when simulate_clients is set (0, or a gb_err). */
int gb_fed_sim_init(gb_federation_t *f, gb_error_t *err);
/* The front door's welcome handler: deals the Join a shard if it asks. */
void gb_fed_sim_welcome(void *arg, const char *id, const Glassbox__Join *j,
                        Glassbox__Welcome *w);
/* True, with the refusal, for a Join that asked for a shard and holds no
 * data yet (busy: load it and join again) or could get none. */
bool gb_fed_sim_turns_away(gb_federation_t *f, const char *id, const Glassbox__Join *j,
                           gb_front_door_refusal_t *no);

/* Makes the candidate the global model and reports the round. */
void gb_fed_commit(gb_federation_t *f, const gb_rounds_action_t *a);
/* Drops what the attempt fed or produced; restores the optimiser. */
void gb_fed_abandon(gb_federation_t *f);

#endif
