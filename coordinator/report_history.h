/* The report's history: what the coordinator remembers of every finished
 * round for the page a person reads (html_report.h), kept in the output
 * directory as history.json so that a restarted coordinator (--state)
 * appends to it instead of starting the plots again.
 *
 * Each round keeps its accuracy and loss (server-side and the clients'),
 * the spread of the clients' own accuracies, the server's accuracy per
 * class, which classes have a heatmap, the explanation distance of its
 * clients and its flagged clients with their evidence. The history is
 * bounded however long the federation runs and however many clients it
 * has: the last GB_REPORT_HISTORY_MAX_ROUNDS rounds, per round the
 * GB_REPORT_HISTORY_MAX_DISTANCES largest distances and the first
 * GB_REPORT_HISTORY_MAX_FLAGS flagged clients (the page says what was
 * left out: r->distances_total, r->flags_total).
 *
 * The file is outside input when read back (a crash, a full disk, a hand
 * edit, a hostile writer of the directory): gb_report_history_read checks
 * every field, count, range and length before it keeps anything, and a bad
 * file is refused whole with the reason, for the caller to log and start
 * afresh.
 *
 * Ownership: _new and _read return a history the caller owns
 * (gb_report_history_destroy). gb_report_history_add copies what it is
 * given. Pointers from _round and _class_name are borrowed until the next
 * _add or _destroy. Single-threaded. */
#ifndef GB_COORDINATOR_REPORT_HISTORY_H
#define GB_COORDINATOR_REPORT_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client_flags.h"
#include "util/error.h"

#define GB_REPORT_HISTORY_MAX_ROUNDS 200     /* rounds kept: the last ones */
#define GB_REPORT_HISTORY_MAX_DISTANCES 100  /* per round: the largest distances */
#define GB_REPORT_HISTORY_MAX_FLAGS 100      /* per round: flagged clients kept */
#define GB_REPORT_HISTORY_MAX_MOVED 8        /* per flag: moved cells (the Publication's cap) */
#define GB_REPORT_HISTORY_MAX_RANK 8         /* dimensions of the importance map's shape */
#define GB_REPORT_HISTORY_MAX_CELLS ((uint64_t)1 << 24) /* cells of an importance map */
#define GB_REPORT_HISTORY_MAX_CLASSES 10000  /* as data/class_names.h allows */
#define GB_REPORT_HISTORY_NAME_MAX 64        /* bytes of a client or class name */
#define GB_REPORT_HISTORY_MAX_BYTES ((size_t)64 << 20) /* history.json read at most */
#define GB_REPORT_HISTORY_FILE "history.json"

/* One client's explanation distance in a round. */
typedef struct {
    char client[GB_REPORT_HISTORY_NAME_MAX + 1]; /* its id */
    double distance;                             /* leave-one-out distance (>= 0) */
} gb_report_distance_t;

/* One flagged client in a round, with its evidence (client_flags.h). */
typedef struct {
    char client[GB_REPORT_HISTORY_NAME_MAX + 1]; /* its id */
    double score;                  /* mean of each remembered round's largest z */
    int strongest;                 /* gb_flag_signal_t with the largest z (-1: none had one) */
    int rounds_out, rounds_seen;   /* stood out in rounds_out of its last rounds_seen */
    double z[GB_FLAG_SIGNALS];     /* this round's z per signal (NaN: none) */
    double update_distance;        /* from the round's median update (NaN: not measured) */
    double norm;                   /* of its update (NaN: not measured) */
    double explanation_distance;   /* leave-one-out (NaN: not measured) */
    /* where its explanation moved: cells of the round's importance map
     * (row-major over importance_shape), largest excess first, and the
     * excess of its share over the others' (in (0, 1]) */
    size_t n_moved;                /* 0..GB_REPORT_HISTORY_MAX_MOVED */
    uint32_t moved[GB_REPORT_HISTORY_MAX_MOVED];
    double moved_share[GB_REPORT_HISTORY_MAX_MOVED];
    /* which classes' maps it moved most, by index (the history's names
     * say which), with how many times the median client's drift (>= 1) */
    size_t n_classes_moved;        /* 0..GB_REPORT_HISTORY_MAX_MOVED */
    uint32_t classes_moved[GB_REPORT_HISTORY_MAX_MOVED];
    double class_ratio[GB_REPORT_HISTORY_MAX_MOVED];
    /* what its update taught as no other's did (the lesson signal): the
     * class, by index, and the input cells, as the heatmaps name them
     * ("rows 24-27, cols 24-27"); lesson_cells "": no lesson (the class
     * then means nothing) */
    int lesson_class;
    char lesson_cells[GB_REPORT_HISTORY_NAME_MAX + 1];
} gb_report_flag_t;

/* One finished round. NaN for a figure the round did not have. */
typedef struct {
    uint64_t round;                /* >= 1 */
    double seconds;                /* from its first task to its checkpoint */
    uint64_t participants;         /* updates aggregated */
    uint64_t samples;              /* their samples */
    double test_accuracy, test_loss;     /* server-side evaluation */
    double train_accuracy, train_loss;   /* the clients' training, sample-weighted */
    double client_accuracy, client_loss; /* the clients' evaluations, sample-weighted */
    uint64_t clients_evaluated;    /* evaluations in the spread below */
    double acc_min, acc_p10, acc_median, acc_max; /* their spread */
    size_t n_classes;              /* entries of class_accuracy (0: none) */
    double *class_accuracy;        /* server-side accuracy per class [n_classes] */
    size_t n_heatmaps;             /* classes with a heatmap this round */
    uint32_t *heatmap_classes;     /* their indices, as explanation-R-class-C.png names them */
    bool importance_heatmap;       /* explanation-R-importance.png was written */
    size_t importance_rank;        /* dimensions of the importance map (0: none) */
    uint32_t importance_shape[GB_REPORT_HISTORY_MAX_RANK]; /* its shape, each >= 1 */
    size_t n_distances;            /* kept: the largest, largest first */
    gb_report_distance_t *distances;
    uint64_t distances_total;      /* clients with a distance this round (>= n_distances) */
    size_t n_flags;                /* flagged clients kept */
    gb_report_flag_t *flags;
    uint64_t flags_total;          /* flagged this round (>= n_flags) */
} gb_report_round_t;

typedef struct gb_report_history gb_report_history_t;

/* An empty history; NULL and err (GB_ENOMEM) when out of memory. */
gb_report_history_t *gb_report_history_new(gb_error_t *err);

/* Reads path (history.json) and checks all of it. NULL and err when it
 * cannot be read (GB_EIO, e.g. missing), is too big (GB_ERANGE), is not a
 * history of this format (GB_EFORMAT) or holds a bad value (GB_EINVAL,
 * naming the round and field). Logs nothing. */
gb_report_history_t *gb_report_history_read(const char *path, gb_error_t *err);

/* gb_report_history_read on the document text[0..len) instead of a file
 * (at most GB_REPORT_HISTORY_MAX_BYTES: GB_ERANGE). */
gb_report_history_t *gb_report_history_parse(const char *text, size_t len, gb_error_t *err);

/* Frees the history; sets *h to NULL; NULL-safe. */
void gb_report_history_destroy(gb_report_history_t **h);

/* Appends a copy of r. Rounds from r->round on that the history holds
 * already (a federation run again from an older checkpoint) are dropped
 * first; past GB_REPORT_HISTORY_MAX_ROUNDS the oldest goes; r's distances
 * are cut to the GB_REPORT_HISTORY_MAX_DISTANCES largest and its flags to
 * the first GB_REPORT_HISTORY_MAX_FLAGS (distances_total and flags_total
 * are raised to what r held when less). class_names[0..n_names) (an
 * entry NULL or empty: "class K"; longer names cut at
 * GB_REPORT_HISTORY_NAME_MAX bytes) become the history's names when
 * n_names > 0. GB_EINVAL for a round 0, a distance or flag without a
 * client name (1..64 bytes), a negative distance, or more than
 * GB_REPORT_HISTORY_MAX_CLASSES classes, names or heatmaps, an importance
 * shape of more than GB_REPORT_HISTORY_MAX_RANK dimensions, a 0 among them
 * or more than GB_REPORT_HISTORY_MAX_CELLS cells, a flag's moved cells
 * past GB_REPORT_HISTORY_MAX_MOVED, repeated, outside that shape (any
 * without one) or with a share outside (0, 1], moved classes past
 * GB_REPORT_HISTORY_MAX_MOVED, repeated, at or past
 * GB_REPORT_HISTORY_MAX_CLASSES or with a ratio not finite and >= 1;
 * GB_ENOMEM.
 * Nothing changes on failure. */
int gb_report_history_add(gb_report_history_t *h, const gb_report_round_t *r, size_t n_names,
                          const char *const *class_names, gb_error_t *err) GB_MUST_CHECK;

/* Writes the history to path atomically (write, fsync, rename; mode 0644). */
int gb_report_history_write(const gb_report_history_t *h, const char *path,
                            gb_error_t *err) GB_MUST_CHECK;

/* Rounds kept, oldest first; the i-th (i < count). */
size_t gb_report_history_count(const gb_report_history_t *h);
const gb_report_round_t *gb_report_history_round(const gb_report_history_t *h, size_t i);

/* Rounds dropped from the front since the federation began (so the page
 * can say it shows the last ones). */
uint64_t gb_report_history_dropped(const gb_report_history_t *h);

/* The classes named (by the last round added with names) and class k's
 * name (NULL past them). */
size_t gb_report_history_classes(const gb_report_history_t *h);
const char *gb_report_history_class_name(const gb_report_history_t *h, size_t k);

#endif
