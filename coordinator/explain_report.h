/* The aggregate explanation report with class names and class support
 * (explain_report.c).
 *
 * gb_explain_report_write (explain_merge.h) is this function without
 * options. The names and the support threshold are arguments rather than
 * read from the Publication because they are the coordinator's settings
 * (serve --class-names, --min-class-clients), not the round's data: the
 * publication outbox (pub_outbox.c) holds them and hands them on here. */
#ifndef GB_COORDINATOR_EXPLAIN_REPORT_H
#define GB_COORDINATOR_EXPLAIN_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "explain_merge.h"

#include "data/class_names.h"

/* What the report adds to the bare aggregate. */
typedef struct {
    const gb_class_names_t *names; /* class names (NULL: "class K" everywhere); also
                                      the model's class count, for the classes nobody
                                      explained */
    uint32_t min_class_clients;    /* a class whose aggregate map rests on fewer
                                      clients is weakly explained; 0 or 1: none is */
} gb_explain_report_opts_t;

/* True when a class explained by `clients` clients is weakly explained
 * under min_class_clients (clients < min_class_clients, and the marking is
 * on: min_class_clients >= 2). One rule for the report, the round line
 * and /metrics. */
bool gb_explain_report_is_weak(uint32_t clients, uint32_t min_class_clients);

/* gb_explain_report_write, with
 *  - each class's heatmap titled by its name and support ("round 5  class
 *    7 Sneaker  ig  n=120  3 clients"; a weakly explained class's title
 *    ends "1 client: weak");
 *  - each class object of the JSON ending with "class_name", "clients"
 *    (ClassAttribution.clients), "samples" (its count) and
 *    "weakly_explained" (after "heatmap", so that readers of the existing
 *    keys and their order are not disturbed);
 *  - two keys at the end of the document: "min_class_clients", and
 *    "unexplained_classes", [{"class", "class_name"}] of every class of the
 *    names list that no client explained (empty without a list): they are
 *    named, not hidden.
 * opts may be NULL (no names, no marking). The names may cover fewer
 * classes than the aggregate's indices reach (they come from the wire): a
 * class without a name is "class K" in the JSON and plain "class K" in its
 * title. opts is only read, during the call. Errors as
 * gb_explain_report_write's. */
int gb_explain_report_write_named(const char *dir, uint64_t round,
                                  const Glassbox__Explanation *aggregate,
                                  Glassbox__KeyValue *const *distance, size_t n_distance,
                                  const gb_explain_report_opts_t *opts,
                                  gb_error_t *err) GB_MUST_CHECK;

#endif
