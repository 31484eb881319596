/* The report a person reads: DIR/index.html, one self-contained page
 * rendered from the report's history (report_history.h) after every
 * finished round.
 *
 * The page needs no server and loads nothing from outside its folder: the
 * plots are inline SVG, the style is inline, there is no script, and the
 * only other files it names are beside it, by relative name: the round's
 * heatmaps and figures (explanation-R-class-C.png,
 * explanation-R-importance.png, explanation-R.json, written by the
 * explanation report) and history.json. It shows the last round's
 * figures; accuracy and loss per round; the spread of the clients' own
 * accuracies per round (min, p10, median, max); the server's accuracy per
 * class by name; the flagged clients (a row per client: how often, when
 * last, its score) and every flag with its evidence (score, the strongest
 * signal, every z, the raw distances and norm, rounds out of seen; in a
 * <details> element, open when short); the last explained round's heatmap
 * of each class titled with its name; and the explanation distance of each client over rounds, one small
 * plot per client. It is bounded: the history's rounds (the last 200), the
 * GB_HTML_REPORT_MAX_CLIENTS clients of largest distance, the
 * GB_HTML_REPORT_MAX_FLAG_CLIENTS most recently flagged clients and the
 * last GB_HTML_REPORT_MAX_FLAG_ROWS flags, and it says what it leaves out.
 * Every name that came from the wire (client ids, class names, the
 * federation's name) is escaped for HTML.
 *
 * Ownership: the history and info are only read, during the call;
 * gb_html_report_render's *out is the caller's (gb_free). */
#ifndef GB_COORDINATOR_HTML_REPORT_H
#define GB_COORDINATOR_HTML_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "report_history.h"
#include "util/error.h"

#define GB_HTML_REPORT_FILE "index.html"
#define GB_HTML_REPORT_MAX_CLIENTS 50    /* clients in the distance plots */
#define GB_HTML_REPORT_MAX_FLAG_ROWS 200 /* rows of the flag table: the latest */
#define GB_HTML_REPORT_MAX_FLAG_CLIENTS 100 /* rows of the flagged clients' summary */

typedef struct {
    const char *federation;      /* its name (NULL: none shown) */
    uint64_t generated_unix_ms;  /* when the page was made (0: not shown) */
} gb_html_report_info_t;

/* The page for history h as a new NUL-terminated string (*out, *len bytes
 * without the NUL). An empty history gives a page that says no round has
 * finished. GB_ENOMEM. */
int gb_html_report_render(const gb_report_history_t *h, const gb_html_report_info_t *info,
                          char **out, size_t *len, gb_error_t *err) GB_MUST_CHECK;

/* Renders the page and writes it to DIR/index.html atomically (a temporary
 * file renamed over it, mode 0644), so a reader never sees half a page.
 * GB_EINVAL for a missing or too long dir, GB_EIO, GB_ENOMEM. */
int gb_html_report_write(const char *dir, const gb_report_history_t *h,
                         const gb_html_report_info_t *info, gb_error_t *err) GB_MUST_CHECK;

#endif
