/* Loading by name (dataset_load.h): the name picks the reader; the readers
 * do the checking. */
#include "data/dataset_load.h"

#include <string.h>
#include <unistd.h>

#include "data/csv.h"
#include "data/series.h"
#include "util/log.h"

/* Refuses csv: options given for an image dataset. */
static int s_image_opts(const char *name, const gb_data_opts_t *o, gb_error_t *err)
{
    const char *what = o->label ? "a label column" : o->features ? "input columns" :
                       o->window ? "a window" : o->horizon != 1 ? "a horizon" :
                       o->regression ? "regression" : o->raw ? "raw (unstandardised) data" : NULL;
    if (what)
        return gb_error_warn(err, GB_EINVAL, "dataset '%s': %s applies to csv:FILE data only",
                             name, what);
    return 0;
}

int gb_dataset_load_opts(const char *name, gb_split_t split, const gb_data_opts_t *opts,
                         gb_dataset_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_load: out is NULL");
    *out = NULL;
    const gb_data_opts_t o = opts ? *opts : GB_DATA_OPTS_INIT;
    if (!name || !*name)
        return gb_error_set(err, GB_EINVAL, "empty dataset name: expected fashion-mnist, "
                                            "idx:DIR or csv:FILE");
    int rc;
    if (strcmp(name, "fashion-mnist") == 0) {
        if ((rc = s_image_opts(name, &o, err)))
            return rc;
        if (access(GB_FASHION_MNIST_DIR, F_OK) != 0)
            return gb_error_warn(err, GB_EIO,
                          "fashion-mnist: %s not found (install the Debian package "
                          "dataset-fashion-mnist, or give idx:DIR)",
                          GB_FASHION_MNIST_DIR);
        return gb_dataset_load_idx(GB_FASHION_MNIST_DIR, split, 10, name, out, err);
    }
    if (strncmp(name, "idx:", 4) == 0) {
        if (!name[4])
            return gb_error_warn(err, GB_EINVAL, "dataset '%s': idx: needs a directory (idx:DIR)",
                          name);
        if ((rc = s_image_opts(name, &o, err)))
            return rc;
        return gb_dataset_load_idx(name + 4, split, 0, name, out, err);
    }
    if (strncmp(name, "csv:", 4) == 0) {
        if (!name[4])
            return gb_error_warn(err, GB_EINVAL, "dataset '%s': csv: needs a file (csv:FILE)",
                                 name);
        gb_error_t local = {0};
        gb_csv_t *csv = gb_csv_read(name + 4, &local);
        if (!csv)
            return gb_error_set(err, local.code, "%s", local.msg);
        rc = gb_series_dataset(csv, name, split, &o, out, err);
        gb_csv_destroy(&csv);
        return rc;
    }
    return gb_error_warn(err, GB_EINVAL,
                         "unknown dataset '%s': expected fashion-mnist, idx:DIR or csv:FILE", name);
}

int gb_dataset_load(const char *name, gb_split_t split, gb_dataset_t **out, gb_error_t *err)
{
    return gb_dataset_load_opts(name, split, NULL, out, err);
}
