/* Process-wide metrics: counters and gauges by name and one optional label,
 * rendered in the Prometheus text exposition format (version 0.0.4) for a
 * /metrics endpoint.
 *
 * Modules count where things happen (an update refused for its norm, a
 * handshake dropped, a publication write retried) without being handed a
 * registry: there is one per process, made on first use, like the default
 * registry of Prometheus's own client libraries. The HTTP endpoint renders it
 * from another thread, so every call takes the registry's lock; none is on a
 * per-sample hot path (they are per message at most).
 *
 * Names follow Prometheus's rules ([a-zA-Z_:][a-zA-Z0-9_:]*; counters end in
 * _total by convention) and are checked: a bad name is a programming error
 * (assert). A label value comes from peers (client names, reasons) and is
 * escaped when rendered; the number of series is bounded (GB_METRICS_MAX_SERIES)
 * so that peers choosing label values cannot grow the process without end:
 * past the bound a new series is not made and gb_metrics_dropped counts it.
 *
 * Ownership: names, help texts and label keys are borrowed for the life of the
 * process (string literals); label values are copied. gb_metrics_render
 * returns a buffer the caller frees. */
#ifndef GB_UTIL_METRICS_H
#define GB_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GB_METRICS_MAX_SERIES 4096      /* series in all, across every metric */
#define GB_METRICS_MAX_LABEL_VALUE 128  /* bytes of a label value kept (longer: cut) */

/* Adds v (>= 0, finite) to the counter `name` with label label_key=label_value
 * (both NULL: no label). The first use of a name fixes its help and its type. */
void gb_metrics_counter_add(const char *name, const char *help, const char *label_key,
                            const char *label_value, double v);

/* Sets the gauge `name` (label as above) to v (NaN renders as NaN). */
void gb_metrics_gauge_set(const char *name, const char *help, const char *label_key,
                          const char *label_value, double v);

/* Removes every series of gauge `name` (e.g. per-client gauges before the next
 * round's values are set); the name stays known. */
void gb_metrics_gauge_clear(const char *name);

/* The value of a series (0 when it does not exist), for tests and /status. */
double gb_metrics_value(const char *name, const char *label_key, const char *label_value);

/* Series refused because GB_METRICS_MAX_SERIES was reached. */
uint64_t gb_metrics_dropped(void);

/* The whole registry as Prometheus text (# HELP, # TYPE, one line per
 * series, metrics in the order first used): *out is NUL-terminated and the
 * caller's to free, *len its bytes without the NUL. 0, or GB_ENOMEM. */
int gb_metrics_render(char **out, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Forgets every metric (tests only: makes each test start from nothing). */
void gb_metrics_reset(void);

#endif
