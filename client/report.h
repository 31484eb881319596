/* What the local commands print: a progress line on a terminal, a readable
 * line per epoch, or one JSON object per line (--json). */
#ifndef GB_CLIENT_REPORT_H
#define GB_CLIENT_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/train.h"
#include "util/time.h"

/* What a regression task reports beside the loss (all MSEs; "units" ones in
 * the data file's units, the others in the standardised units trained on). */
typedef struct {
    bool regression;       /* the task is regression: no accuracy */
    double mse_units;      /* test MSE in file units */
    bool has_baseline;     /* a last-value baseline exists (windowed series) */
    double baseline;       /* its MSE, standardised */
    double baseline_units; /* its MSE in file units */
} gb_report_extra_t;

typedef struct {
    bool json;           /* one JSON object per line on stdout */
    bool progress;       /* draw a progress line on stderr (a terminal) */
    double last_draw;    /* monotonic time of the last progress draw */
    double start;        /* monotonic time the epoch started */
    int epoch, epochs;   /* current epoch and total */
} gb_report_t;

/* Sets up reporting: progress only when stderr is a terminal and not --json. */
void gb_report_init(gb_report_t *r, bool json, int epochs);

/* gb_progress_fn for gb_train_epoch: redraws at most 10 times a second. */
void gb_report_progress(void *arg, int64_t done, int64_t total, double mean_loss);

/* Marks the start of an epoch (for the progress line's rate). */
void gb_report_epoch_start(gb_report_t *r, int epoch);

/* Prints one epoch's line. eval may be NULL (no test split); extra may be
 * NULL for classification. */
void gb_report_epoch(gb_report_t *r, const gb_epoch_stats_t *train, const gb_epoch_stats_t *eval,
                     const gb_report_extra_t *extra, double flops_per_sample, int threads,
                     int batch);

/* Prints an evaluation result (the eval command); extra as above. */
void gb_report_eval(const gb_report_t *r, const gb_epoch_stats_t *eval,
                    const gb_report_extra_t *extra);

/* Prints the last line: peak resident set size of this process. */
void gb_report_finish(const gb_report_t *r);

/* Peak RSS of this process in KiB (getrusage). */
long gb_report_peak_rss_kb(void);


#endif
