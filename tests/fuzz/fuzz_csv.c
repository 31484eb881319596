/* libFuzzer target: the CSV reader on a buffer (data/csv.h). An accepted
 * table must be as big as it says and hold only finite values. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_target.h"
#include "data/csv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_csv_t *csv = gb_csv_parse((const char *)data, size, "fuzz", NULL);
    if (!csv)
        return 0;
    if (csv->n_cols < 1 || csv->n_rows < 1)
        __builtin_trap();
    for (int64_t i = 0; i < csv->n_rows * csv->n_cols; i++)
        if (!isfinite(csv->data[i]))
            __builtin_trap();
    for (int c = 0; c < csv->n_cols; c++)
        if (gb_csv_column(csv, csv->cols[c].name) < 0)
            __builtin_trap();
    gb_csv_destroy(&csv);
    return 0;
}
