/* The aggregate explanation report with class names (explain_report.c).
 *
 * gb_explain_report_write (explain_merge.h) is this function without names.
 * The names are an argument rather than a federation option because the
 * report is written by the publication outbox (pub_outbox.c) from the
 * federation's options, which do not carry names yet: wiring
 * `glassbox-coordinator serve --class-names FILE` means a
 * gb_class_names_t * in gb_federation_options_t and in the outbox, handed
 * on to this call. Until then the coordinator's reports title and label
 * every class "class K". */
#ifndef GB_COORDINATOR_EXPLAIN_REPORT_H
#define GB_COORDINATOR_EXPLAIN_REPORT_H

#include "explain_merge.h"

#include "data/class_names.h"

/* gb_explain_report_write, with each class's heatmap titled by its name
 * ("round 5  class 7 Sneaker  ig  n=120") and each class object of the
 * JSON given a "class_name" as its last key (after "heatmap", so that
 * readers of the existing keys and their order are not disturbed). names
 * may be NULL, and may cover fewer classes than the aggregate's indices
 * reach (they come from the wire): a class without a name is "class K" in
 * the JSON and plain "class K" in its title. names is only read, during
 * the call. Errors as gb_explain_report_write's. */
int gb_explain_report_write_named(const char *dir, uint64_t round,
                                  const Glassbox__Explanation *aggregate,
                                  Glassbox__KeyValue *const *distance, size_t n_distance,
                                  const gb_class_names_t *names, gb_error_t *err) GB_MUST_CHECK;

#endif
