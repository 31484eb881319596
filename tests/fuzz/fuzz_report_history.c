/* libFuzzer target: the report's history read back (report_history.h),
 * then the page drawn from it (html_report.h). An accepted history keeps
 * every bound its reader promises, and the page of any accepted history
 * renders without a crash and with no markup of the file's own: every
 * name in it is escaped, so no "<script" can appear. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "html_report.h"
#include "report_history.h"
#include "util/alloc.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gb_log_set_level(GB_LOG_OFF);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_report_history_t *h = gb_report_history_parse((const char *)data, size, NULL);
    if (!h)
        return 0;
    size_t n = gb_report_history_count(h);
    if (n > GB_REPORT_HISTORY_MAX_ROUNDS)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        const gb_report_round_t *r = gb_report_history_round(h, i);
        if (r->round == 0 || (i && r->round <= gb_report_history_round(h, i - 1)->round) ||
            r->n_distances > GB_REPORT_HISTORY_MAX_DISTANCES ||
            r->n_flags > GB_REPORT_HISTORY_MAX_FLAGS ||
            r->n_classes > gb_report_history_classes(h))
            __builtin_trap();
        for (size_t j = 0; j < r->n_flags; j++)
            if (r->flags[j].rounds_out > r->flags[j].rounds_seen ||
                strlen(r->flags[j].client) > GB_REPORT_HISTORY_NAME_MAX)
                __builtin_trap();
    }
    char *page = NULL;
    size_t len = 0;
    gb_html_report_info_t info = {.federation = "fuzz"};
    if (gb_html_report_render(h, &info, &page, &len, NULL) == 0) {
        if (strlen(page) != len || strstr(page, "<script"))
            __builtin_trap();
        gb_free(page);
    }
    gb_report_history_destroy(&h);
    return 0;
}
