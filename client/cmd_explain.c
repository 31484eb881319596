/* `glassbox-client explain`: explains a saved model on the test split of a
 * dataset, the way a client explains the global model on its held-out local
 * data, and writes what it would send (the summary) plus pictures of it.
 *
 * Every test sample (after --limit) is explained for its true class (or, with
 * --target predicted, for the class the model predicts; a regression model
 * for its output 0) by the chosen attribution method (explain/attribution.h),
 * batch by batch. Each per-sample map goes straight into an explanation
 * summary (explain/summary.h: clipped to L2 norm --clip, summed per class in
 * exact fixed point) and is then overwritten: no per-sample map is kept or
 * written. Out of the summary come DIR/summary.json and one PNG heatmap per
 * class with samples (DIR/class_<c>.png, or DIR/output.png for regression):
 * the class's mean signed attribution on a blue-white-red scale, over the
 * class's mean input in faint grey for images; for sequences a feature x
 * time map with time on x. Grad-CAM's coarse map is upsampled bilinearly to
 * the image for the picture (the summary keeps it at its own resolution).
 *
 * --baseline (integrated gradients, and occlusion's fill): zero; mean, the
 * training split's mean per channel (images) or per feature (sequences and
 * tables), constant over positions and time; or FILE, one sample's input as
 * raw little-endian float32 (exactly 4 x input size bytes).
 *
 * Classes are named (data/class_names.h): Fashion-MNIST's names built in,
 * --class-names FILE for other data, "class K" otherwise. The names go into
 * the heatmaps' titles and, as "class_name" beside every "class" index, into
 * summary.json. summary.json itself is written by explain/summary.c, which
 * knows nothing of data/'s name lists (the explain area must not depend on
 * data/): it is handed the names as plain strings (gb_summary_info_t).
 *
 * --sanity randomise is the model-randomisation test of Adebayo et al.,
 * "Sanity checks for saliency maps" (NeurIPS 2018): every batch is
 * explained a second time, for the same target classes, by the same model
 * with its weights re-initialised at random (gb_model_init with
 * --sanity-seed), and each sample's two maps are compared as they come
 * (then dropped, like every per-sample map): Spearman's rank correlation
 * of |attribution| over the cells not zero in both maps (s_compare_sample
 * says why; ties get their mean rank; ranks do not care that the
 * two models' maps differ in scale by orders of magnitude) and the
 * normalised L2 distance || |a|/||a|| - |b|/||b|| || (0: the same map up to
 * scale; sqrt 2: no cell in common) and the cosine similarity of |a| and |b|
 * (1: the same map up to scale; 0: no cell in common; per sample it is
 * 1 - L2^2 / 2, the form most readers know). Reported as means per class
 * and over all samples. All layers are re-initialised at once (Adebayo's
 * "full" randomisation, not the cascade from the top layer down): one
 * question, does the map depend on the weights at all, one answer. Per sample, as Adebayo does, rather than on the class means
 * the summary keeps: a class's mean |attribution| is smooth enough that
 * any two models agree on it (the centre of the image outweighs its
 * border): 0.93 for saliency on a LeNet trained to 72%, 0.42 per sample.
 * Both parameter vectors are kept and copied into the one model per batch,
 * so both passes share its plan and the explainer, and the copies cost
 * nothing beside the explanation. A map that barely changes when the
 * weights are destroyed shows the input (edges, the object's outline), not
 * what the model learnt: above S_SANITY_MAX_RANK overall the command warns
 * and exits 3. The random model's class means are drawn too
 * (DIR/random_class_<c>.png), for a person to compare. */
#include "util/args.h"
#include "commands.h"
#include "data/class_names.h"
#include "data/dataset.h"
#include "data_source.h"
#include "explain/attribution.h"
#include "explain/heatmap.h"
#include "explain/heatmap_layout.h"
#include "explain/summary.h"
#include "net/snapshot.h"
#include "report.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/json.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NAME "glassbox-client explain"
/* Default L2 bound on one sample's map. Measured on a LeNet trained to 89%
 * on Fashion-MNIST, maps' norms reach about 5 (ig), 10 (saliency), 1
 * (gradcam) and 50 (occlusion, whose cells are logit drops); the defaults sit
 * above that, so real maps are rarely scaled, while any single sample's
 * influence stays bounded. A federation fixes one clip for all its clients. */
#define S_DEFAULT_CLIP 20.0
#define S_DEFAULT_CLIP_OCCLUSION 100.0
#define S_MAX_PATH 4096
#define S_MAX_UNDERLAY ((size_t)1 << 24) /* classes x input size summed for the underlay */
/* Overall rank correlation above which --sanity randomise warns (exit 3).
 * Adebayo et al. call a method sensitive to the model when its maps'
 * correlation with a random model's falls well below 1. Measured on 500
 * Fashion-MNIST test images with a LeNet trained to 86%: ig 0.36,
 * gradxinput 0.37, smoothgrad 0.32, saliency 0.31, gradcam 0.01, while
 * occlusion (whose logit drops with random weights follow the input's
 * mass) reaches 0.67; a LeNet at 72% gives ig 0.45. Half-way sits between
 * the two groups. */
#define S_SANITY_MAX_RANK 0.5
#define S_SANITY_DEFAULT_SEED 2 /* not train's default 1: not the model's own starting point */
#define S_EXIT_SANITY 3         /* the explanation was written, but failed --sanity */

typedef struct {
    const char *model_file; /* --model-file */
    const char *method;     /* --method */
    int steps;              /* --steps (0: the method's default) */
    const char *rule;       /* --rule */
    const char *baseline;   /* --baseline */
    const char *target;     /* --target */
    double clip;            /* --clip */
    int batch, threads;     /* --batch, --threads */
    const char *out;        /* --out */
    bool json;              /* --json */
    const char *class_names; /* --class-names FILE, or NULL: built in */
    const char *sanity;     /* --sanity randomise, or NULL */
    uint64_t sanity_seed;   /* --sanity-seed */
    gb_data_source_t data;  /* --data and friends */
} s_opts_t;

/* --sanity randomise: how much the maps changed, over a class's samples
 * or all of them (means of the per-sample figures). */
typedef struct {
    double rank;       /* Spearman's rank correlation of |attribution|; NaN: none defined */
    double l2;         /* || |a|/||a|| - |b|/||b|| ||; NaN: none defined */
    double cosine;     /* |a|.|b| / (||a|| ||b||); NaN: none defined */
    int64_t undefined; /* samples left out of rank: a map without two distinct values */
} s_change_t;

typedef struct {
    s_change_t all;  /* over all samples */
    s_change_t *cls; /* per group (groups + 1 entries, the last unused) */
    double max_rank; /* largest per-class rank correlation, or NaN */
    int max_class;   /* its class, or -1 */
    bool passed;     /* all.rank is at most S_SANITY_MAX_RANK, or NaN (flat maps) */
    int pictures;    /* random-model heatmaps written */
} s_sanity_t;

typedef struct {
    double rank_sum, l2_sum, cos_sum; /* sums of the per-sample figures */
    int64_t n_rank, n_l2;    /* samples in each sum (cos_sum's: n_l2) */
} s_acc_t;

typedef struct {
    double v; /* a cell's value */
    size_t i; /* its index */
} s_cell_t;

/* ---- small helpers ------------------------------------------------------- */

/* mkdir -p: creates path and its missing parents (mode 0755). */
static int s_mkdirs(const char *path, gb_error_t *err)
{
    char buf[S_MAX_PATH];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return gb_error_set(err, GB_EINVAL, "--out: bad directory name");
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return gb_error_set(err, GB_EIO, "cannot create directory '%s': %s", buf,
                                strerror(errno));
        buf[i] = keep;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return gb_error_set(err, GB_EIO, "'%s' is not a directory", path);
    return 0;
}

static int s_join(char *buf, size_t cap, const char *dir, const char *name, gb_error_t *err)
{
    size_t len = strlen(dir);
    int n = snprintf(buf, cap, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
    if (n < 0 || (size_t)n >= cap)
        return gb_error_set(err, GB_EINVAL, "--out: path too long");
    return 0;
}

/* One sample's baseline from a raw little-endian float32 file. */
static int s_baseline_file(const char *path, size_t n, float *out, gb_error_t *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = gb_file_read_all(path, n * 4, &data, &len, err);
    if (rc == GB_ERANGE || (rc == 0 && len != n * 4)) {
        gb_free(data);
        return gb_error_warn(err, GB_EFORMAT,
                             "--baseline %s: expected %zu bytes (%zu little-endian float32, one "
                             "sample), got %s",
                             path, n * 4, n, rc ? "more" : "fewer");
    }
    if (rc)
        return gb_error_prefix(err, rc, "--baseline: ");
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
        if (!isfinite(out[i])) {
            gb_free(data);
            return gb_error_warn(err, GB_ERANGE, "--baseline %s: value %zu is not finite", path, i);
        }
    }
    gb_free(data);
    return 0;
}

/* The training split's mean per channel (rank 3: C x H x W), or per feature
 * (the last axis otherwise), written out as a whole constant sample. */
static int s_baseline_mean(const gb_dataset_t *train, const gb_shape_t *in, float *out,
                           gb_error_t *err)
{
    size_t size = gb_shape_size(in);
    int groups = in->rank == 3 ? in->dim[0] : in->dim[in->rank - 1];
    enum { CHUNK = 256 };
    float *x = gb_malloc(CHUNK * size * sizeof *x);
    double *sum = gb_calloc((size_t)groups, sizeof *sum);
    int32_t idx[CHUNK];
    int rc = 0;
    if (!x || !sum) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory for the mean baseline");
        goto cleanup;
    }
    for (int64_t off = 0; off < train->n; off += CHUNK) {
        int cnt = train->n - off < CHUNK ? (int)(train->n - off) : CHUNK;
        for (int i = 0; i < cnt; i++)
            idx[i] = (int32_t)(off + i);
        if ((rc = gb_dataset_fill((void *)train, idx, cnt, x, NULL, NULL, err)))
            goto cleanup;
        for (size_t j = 0; j < (size_t)cnt * size; j++) {
            size_t k = j % size;
            sum[in->rank == 3 ? k / (size / (size_t)groups) : k % (size_t)groups] += x[j];
        }
    }
    double per = (double)train->n * (double)(size / (size_t)groups);
    for (size_t k = 0; k < size; k++) {
        int g = in->rank == 3 ? (int)(k / (size / (size_t)groups)) : (int)(k % (size_t)groups);
        out[k] = (float)(sum[g] / per);
    }
cleanup:
    gb_free(x);
    gb_free(sum);
    return rc;
}

/* ---- pictures ------------------------------------------------------------ */

typedef struct {
    const gb_dataset_t *ds;  /* the explained split */
    gb_shape_t in;           /* the model's input shape */
    gb_shape_t attr;         /* the attribution shape */
    bool gradcam;            /* attr is a coarse (H', W') map */
    bool image;              /* draw as an image (the data are images) */
    int img_c, img_h, img_w; /* the image's channels and size */
    const double *class_in;  /* groups x input size: per-class input sums, or NULL */
    const char *method;      /* method name for titles */
    const gb_class_names_t *names; /* class names for titles (classification) */
} s_draw_t;

/* Draws class cls's mean map of s into path; `what` (may be NULL) is added
 * to the title ("random model"). */
static int s_draw_class(const s_draw_t *d, const gb_summary_t *s, int cls, const char *what,
                        const char *path, gb_error_t *err)
{
    size_t cells = gb_summary_cells(s), in_size = gb_shape_size(&d->in);
    double *mean = gb_malloc(cells * sizeof *mean);
    float *map = NULL, *coarse = NULL, *under = NULL;
    int rc = 0;
    if (!mean) {
        rc = gb_error_set(err, GB_ENOMEM, "out of memory drawing %s", path);
        goto cleanup;
    }
    if ((rc = gb_summary_mean(s, cls, mean, err)))
        goto cleanup;
    int64_t count = gb_summary_count(s, cls);
    char title[256];
    gb_heatmap_layout_t l; /* h borrows its caption until the save */
    bool regression = gb_dataset_task(d->ds) == GB_TASK_REGRESSION;
    /* "class 7 Sneaker"; an unnamed class is not called "class 7 class 7" */
    const char *name = !regression && cls < gb_class_names_named(d->names)
                           ? gb_class_names_get(d->names, cls)
                           : "";
    const char *sep = what ? "  " : "";
    if (regression)
        snprintf(title, sizeof title, "output  %s%s%s  n=%lld", d->method, sep, what ? what : "",
                 (long long)count);
    else
        snprintf(title, sizeof title, "class %d%s%s  %s%s%s  n=%lld", cls, *name ? " " : "",
                 name, d->method, sep, what ? what : "", (long long)count);
    gb_heatmap_t h = {.title = title};
    if (d->image) {
        int H = d->img_h, W = d->img_w;
        size_t hw = (size_t)H * W;
        map = gb_calloc(hw, sizeof *map);
        under = d->class_in ? gb_calloc(hw, sizeof *under) : NULL;
        if (!map || (d->class_in && !under)) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory drawing %s", path);
            goto cleanup;
        }
        if (d->gradcam) {
            int h2 = d->attr.dim[0], w2 = d->attr.rank > 1 ? d->attr.dim[1] : 1;
            coarse = gb_malloc(cells * sizeof *coarse);
            if (!coarse) {
                rc = gb_error_set(err, GB_ENOMEM, "out of memory drawing %s", path);
                goto cleanup;
            }
            for (size_t i = 0; i < cells; i++)
                coarse[i] = (float)mean[i];
            gb_heatmap_upsample(coarse, h2, w2, map, H, W);
        } else {
            for (size_t i = 0; i < cells; i++) /* channels summed */
                map[i % hw] += (float)mean[i];
        }
        if (under) {
            const double *xin = d->class_in + (size_t)cls * in_size;
            double lo = INFINITY, hi = -INFINITY;
            for (size_t i = 0; i < hw; i++) {
                double v = 0;
                for (int c = 0; c < d->img_c; c++)
                    v += xin[(size_t)c * hw + i];
                under[i] = (float)v;
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
            for (size_t i = 0; i < hw; i++)
                under[i] = hi > lo ? (float)((under[i] - lo) / (hi - lo)) : 0.0f;
        }
        h.map = map;
        h.h = H;
        h.w = W;
        h.under = under;
    } else {
        /* Not an image: the layout the coordinator's report uses too
         * (explain/heatmap_layout.h), which draws every cell. */
        size_t dims[GB_SHAPE_MAX_RANK];
        for (int i = 0; i < d->attr.rank; i++)
            dims[i] = (size_t)d->attr.dim[i];
        if ((rc = gb_heatmap_layout_plan(dims, d->attr.rank, d->gradcam, &l, err)))
            goto cleanup;
        coarse = gb_malloc(cells * sizeof *coarse);
        map = gb_malloc(gb_heatmap_layout_size(&l) * sizeof *map);
        if (!coarse || !map) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory drawing %s", path);
            goto cleanup;
        }
        for (size_t i = 0; i < cells; i++)
            coarse[i] = (float)mean[i];
        gb_heatmap_layout_fill(&l, coarse, map);
        gb_heatmap_layout_apply(&l, map, &h);
    }
    rc = gb_heatmap_save(path, &h, err);
cleanup:
    gb_free(mean);
    gb_free(map);
    gb_free(coarse);
    gb_free(under);
    return rc;
}

/* ---- the command --------------------------------------------------------- */

static int s_usage_error(const char *msg)
{
    fprintf(stderr, S_NAME ": %s (see " S_NAME " --help)\n", msg);
    return 2;
}

/* Parses and checks the options into *o and *method. Returns -1 to go on,
 * else the exit code (0 after --help, 2 for bad usage). */
static int s_options(s_opts_t *o, gb_explain_method_t *method, int argc, char **argv)
{
    *o = (s_opts_t){.method = "ig", .target = "true", .batch = 64,
                    .sanity_seed = S_SANITY_DEFAULT_SEED, .data = gb_data_source_defaults()};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    enum { N_OWN = 14, I_SANITY_SEED = 13 };
    gb_arg_t opts[N_OWN + GB_DATA_SOURCE_ARGS] = {
        {"--model-file", GB_ARG_STRING, &o->model_file, 0, 0, NULL,
         "model file to explain (required)", false},
        {"--out", GB_ARG_STRING, &o->out, 0, 0, NULL,
         "directory for summary.json and the heatmaps, created if missing (required)", false},
        {"--method", GB_ARG_CHOICE, &o->method, 0, 0,
         "ig|saliency|gradxinput|smoothgrad|gradcam|occlusion", "attribution method (default ig)",
         false},
        {"--steps", GB_ARG_INT, &o->steps, 1, GB_IG_MAX_STEPS, NULL,
         "ig: integration steps before any doubling (default 32)", false},
        {"--rule", GB_ARG_CHOICE, &o->rule, 0, 0, "gauss|trapezoid",
         "ig: quadrature rule (default gauss)", false},
        {"--baseline", GB_ARG_STRING, &o->baseline, 0, 0, NULL,
         "ig and occlusion: zero, mean (the training split's per-channel/feature mean) or FILE "
         "(one sample, raw little-endian float32) (default zero)",
         false},
        {"--target", GB_ARG_CHOICE, &o->target, 0, 0, "true|predicted",
         "explain each sample's true class or the predicted one (default true)", false},
        {"--clip", GB_ARG_FLOAT, &o->clip, 1e-6, 1e12, NULL,
         "L2 bound on one sample's attribution map (default 20; occlusion 100)", false},
        {"--batch", GB_ARG_INT, &o->batch, 1, 65536, NULL, "engine batch size (default 64)",
         false},
        {"--threads", GB_ARG_INT, &o->threads, 1, 256, NULL,
         "worker threads (default: cores, at most 8)", false},
        {"--json", GB_ARG_FLAG, &o->json, 0, 0, NULL, "print one JSON object", false},
        {"--class-names", GB_ARG_STRING, &o->class_names, 0, 0, NULL,
         "file of class names, one a line, for titles and JSON (default: Fashion-MNIST's "
         "for fashion-mnist, else 'class K')",
         false},
        {"--sanity", GB_ARG_CHOICE, &o->sanity, 0, 0, "randomise",
         "also explain with all the weights re-initialised at random and report how much "
         "the maps change: rank correlation, L2 distance, cosine (exit 3 when they barely do)",
         false},
        {"--sanity-seed", GB_ARG_U64, &o->sanity_seed, 0, 0, NULL,
         "seed of the random weights for --sanity (default 2)", false},
    };
    gb_data_source_args(&o->data, opts + N_OWN);
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n_opts, argc, argv, &help, &err))
        return s_usage_error(err.msg);
    if (help) {
        printf("usage: " S_NAME " --model-file FILE --out DIR [options]\n\n"
               "Explains a saved model on the test split of a dataset: attributions of each\n"
               "sample's true class, summarised per class (clipped, exact sums; no per-sample\n"
               "map is kept), written to DIR/summary.json with one PNG heatmap per class.\n"
               "Exit status: 0 done, 1 failed, 2 bad usage, 3 done but --sanity found maps\n"
               "that barely depend on the model's weights.\n\n"
               "options:\n");
        gb_args_print_help(opts, n_opts);
        return 0;
    }
    if (!o->model_file)
        return s_usage_error("--model-file is required");
    if (!o->out)
        return s_usage_error("--out is required");
    if (gb_explain_parse_method(o->method, method))
        return s_usage_error("--method: unknown method");
    bool is_ig = *method == GB_EXPLAIN_IG;
    if (!is_ig && (o->steps || o->rule))
        return s_usage_error(o->steps ? "--steps applies to --method ig only"
                                      : "--rule applies to --method ig only");
    if (o->rule && strcmp(o->rule, "trapezoid") == 0 && o->steps == 1)
        return s_usage_error("--steps: the trapezoid rule needs at least 2");
    if (o->baseline && !is_ig && *method != GB_EXPLAIN_OCCLUSION)
        return s_usage_error("--baseline applies to --method ig and occlusion only");
    if (opts[I_SANITY_SEED].seen && !o->sanity)
        return s_usage_error("--sanity-seed applies to --sanity randomise only");
    if (o->clip == 0)
        o->clip = *method == GB_EXPLAIN_OCCLUSION ? S_DEFAULT_CLIP_OCCLUSION : S_DEFAULT_CLIP;
    return -1;
}

/* One run of the command: what it loads, the buffers of one batch, and the
 * totals it reports. */
typedef struct {
    const s_opts_t *o;         /* the options */
    gb_explain_method_t method; /* --method */
    bool predicted, regression; /* --target predicted; a regression dataset */
    gb_dataset_t *test;        /* the explained split */
    gb_model_t *m;             /* the model */
    gb_explainer_t *e;         /* the method on the model */
    gb_summary_t *sum;         /* per-class summary */
    float *baseline;           /* --baseline mean/FILE, else NULL (zero) */
    const char *baseline_name; /* for the report */
    int batch, groups, outputs; /* engine batch, summary groups, model outputs */
    size_t in_size, a_size;    /* per-sample input and attribution floats */
    float *x, *attr, *logits;  /* one batch: inputs, maps, outputs (predicted) */
    int32_t *idx, *labels;     /* one batch: sample indices, targets */
    double *rel_err;           /* one batch: completeness errors */
    int *steps_used;           /* one batch: IG steps per sample */
    s_draw_t draw;             /* how the heatmaps are drawn */
    double err_sum, steps_sum; /* totals over samples */
    gb_class_names_t *names;   /* class names (NULL for regression) */
    /* --sanity randomise */
    gb_summary_t *rsum;        /* per-class summary of the random model, or NULL */
    float *trained, *random;   /* both parameter vectors, copied into m per pass */
    size_t n_params;           /* floats in each */
    float *keep;               /* one batch: the trained model's maps */
    double *ca, *cb, *ra, *rb; /* one map: |trained|, |random| and their ranks */
    s_cell_t *cells;           /* one map: sort scratch */
    s_acc_t *acc;              /* groups + 1 (the last: all samples) */
} s_run_t;

static void s_run_free(s_run_t *r)
{
    gb_explainer_destroy(&r->e);
    gb_summary_destroy(&r->sum);
    gb_model_destroy(&r->m);
    gb_dataset_destroy(&r->test);
    gb_free(r->baseline);
    gb_free(r->x);
    gb_free(r->attr);
    gb_free(r->logits);
    gb_free(r->idx);
    gb_free(r->labels);
    gb_free(r->rel_err);
    gb_free((double *)r->draw.class_in);
    gb_free(r->steps_used);
    gb_class_names_destroy(&r->names);
    gb_summary_destroy(&r->rsum);
    gb_free(r->trained);
    gb_free(r->random);
    gb_free(r->keep);
    gb_free(r->ca);
    gb_free(r->cb);
    gb_free(r->ra);
    gb_free(r->rb);
    gb_free(r->cells);
    gb_free(r->acc);
}

/* Loads model, data and baseline; makes the explainer, the summary and the
 * batch buffers. */
static int s_prepare(s_run_t *r, gb_error_t *err)
{
    const s_opts_t *o = r->o;
    gb_dataset_t *train = NULL;
    int rc = 0;
    if (!(r->m = gb_snapshot_load_model(o->model_file, NULL, err)))
        return err->code;
    bool need_train = o->baseline && strcmp(o->baseline, "mean") == 0;
    if ((rc = gb_data_source_load(&o->data, need_train ? &train : NULL, &r->test, err)) ||
        (rc = gb_data_source_check_model(r->m, r->test, o->model_file, err)))
        goto out;
    r->regression = gb_dataset_task(r->test) == GB_TASK_REGRESSION;
    if (r->regression && r->predicted) {
        rc = gb_error_set(err, GB_EINVAL,
                          "--target predicted needs a classification dataset; "
                          "a regression model is explained for its output");
        goto out;
    }
    if (r->regression && o->class_names) {
        rc = gb_error_set(err, GB_EINVAL, "--class-names needs a classification dataset; "
                          "a regression model has one output, no classes");
        goto out;
    }
    if (!r->regression &&
        !(r->names = gb_class_names_choose(o->class_names, o->data.data, r->test->n_classes,
                                           err))) {
        rc = err->code;
        goto out;
    }
    bool is_ig = r->method == GB_EXPLAIN_IG;
    gb_shape_t in = gb_model_input_shape(r->m);
    r->in_size = gb_shape_size(&in);
    if (o->baseline && strcmp(o->baseline, "zero") != 0) {
        if (!(r->baseline = gb_malloc(r->in_size * sizeof *r->baseline))) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = need_train ? s_baseline_mean(train, &in, r->baseline, err)
                             : s_baseline_file(o->baseline, r->in_size, r->baseline, err)))
            goto out;
    }
    r->baseline_name =
        o->baseline ? o->baseline
                    : (is_ig || r->method == GB_EXPLAIN_OCCLUSION ? "zero" : NULL);
    r->batch = o->batch > r->test->n ? (int)r->test->n : o->batch;
    if ((rc = gb_model_plan(r->m, r->batch, o->threads, err)))
        goto out;
    gb_explain_cfg_t cfg = gb_explain_defaults(r->method);
    if (o->steps)
        cfg.steps = o->steps;
    if (o->rule)
        cfg.rule = strcmp(o->rule, "trapezoid") == 0 ? GB_IG_TRAPEZOID : GB_IG_GAUSS_LEGENDRE;
    cfg.baseline = r->baseline;
    if (!(r->e = gb_explainer_new(r->m, &cfg, err))) {
        rc = err->code;
        goto out;
    }
    gb_shape_t ashape = gb_explainer_attr_shape(r->e);
    r->a_size = gb_shape_size(&ashape);
    r->groups = r->regression ? 1 : r->test->n_classes;
    if (!(r->sum = gb_summary_new(&ashape, r->groups, o->clip, err))) {
        rc = err->code;
        goto out;
    }
    if (o->sanity) {
        if (!(r->rsum = gb_summary_new(&ashape, r->groups, o->clip, err))) {
            rc = err->code;
            goto out;
        }
        /* Re-initialise, keep the random weights, put the trained ones back. */
        r->n_params = gb_model_param_count(r->m);
        r->trained = gb_malloc(r->n_params * sizeof *r->trained);
        r->random = gb_malloc(r->n_params * sizeof *r->random);
        size_t B = (size_t)r->batch, n = r->a_size;
        r->keep = gb_malloc(B * n * sizeof *r->keep);
        r->ca = gb_malloc(n * sizeof *r->ca);
        r->cb = gb_malloc(n * sizeof *r->cb);
        r->ra = gb_malloc(n * sizeof *r->ra);
        r->rb = gb_malloc(n * sizeof *r->rb);
        r->cells = gb_malloc(n * sizeof *r->cells);
        r->acc = gb_calloc((size_t)r->groups + 1, sizeof *r->acc);
        if (!r->trained || !r->random || !r->keep || !r->ca || !r->cb || !r->ra || !r->rb ||
            !r->cells || !r->acc) {
            rc = gb_error_set(err, GB_ENOMEM, "out of memory for --sanity's random model (%zu "
                              "parameters)", r->n_params);
            goto out;
        }
        float *p = gb_model_params(r->m);
        memcpy(r->trained, p, r->n_params * sizeof *p);
        gb_model_init(r->m, o->sanity_seed);
        memcpy(r->random, p, r->n_params * sizeof *p);
        memcpy(p, r->trained, r->n_params * sizeof *p);
    }
    /* Images: drawn as images, over the class's mean input. */
    r->draw = (s_draw_t){.ds = r->test, .in = in, .attr = ashape,
                         .gradcam = r->method == GB_EXPLAIN_GRADCAM,
                         .method = gb_explain_method_name(r->method), .names = r->names};
    const gb_dataset_t *t = r->test;
    if (t->shape.rank == 3 && (r->a_size == r->in_size || r->draw.gradcam)) {
        r->draw.image = true;
        r->draw.img_c = t->shape.dim[0];
        r->draw.img_h = t->shape.dim[1];
        r->draw.img_w = t->shape.dim[2];
    }
    r->outputs = gb_dataset_outputs(t);
    size_t B = (size_t)r->batch;
    r->x = gb_malloc(B * r->in_size * sizeof *r->x);
    r->attr = gb_malloc(B * r->a_size * sizeof *r->attr);
    r->idx = gb_malloc(B * sizeof *r->idx);
    r->labels = gb_malloc(B * sizeof *r->labels);
    r->rel_err = gb_malloc(B * sizeof *r->rel_err);
    r->steps_used = gb_malloc(B * sizeof *r->steps_used);
    r->logits = r->predicted ? gb_malloc(B * r->outputs * sizeof *r->logits) : NULL;
    /* Per-class input sums for the underlay, unless they would be huge. */
    bool underlay = r->draw.image && (size_t)r->groups * r->in_size <= S_MAX_UNDERLAY;
    r->draw.class_in = underlay ? gb_calloc((size_t)r->groups * r->in_size, sizeof(double))
                                : NULL;
    if (!r->x || !r->attr || !r->idx || !r->labels || !r->rel_err || !r->steps_used ||
        (r->predicted && !r->logits) || (underlay && !r->draw.class_in))
        rc = gb_error_set(err, GB_ENOMEM, "out of memory for batches of %d", r->batch);
out:
    gb_dataset_destroy(&train);
    return rc;
}

/* The targets of one batch: true labels were filled with the inputs; the
 * predicted ones come from a forward pass. */
static int s_predict(s_run_t *r, int cnt, gb_error_t *err)
{
    int rc = gb_model_forward(r->m, r->x, cnt, r->logits, err);
    if (rc)
        return rc;
    for (int i = 0; i < cnt; i++) {
        const float *l = r->logits + (size_t)i * r->outputs;
        int best = 0;
        for (int k = 1; k < r->outputs; k++)
            if (l[k] > l[best])
                best = k;
        r->labels[i] = best;
    }
    return 0;
}

/* ---- --sanity randomise: comparing two maps -------------------------------- */

static int s_cell_cmp(const void *a, const void *b)
{
    const s_cell_t *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* a total order: qsort is not stable */
}

/* 1-based ranks of v[0..n) into rank; tied values share their mean rank
 * (Spearman's correction for ties). cells: n entries of scratch. */
static void s_ranks(const double *v, size_t n, s_cell_t *cells, double *rank)
{
    for (size_t i = 0; i < n; i++)
        cells[i] = (s_cell_t){v[i], i};
    qsort(cells, n, sizeof *cells, s_cell_cmp);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && cells[b].v == cells[a].v)
            b++;
        double mean = (double)(a + 1 + b) / 2; /* of ranks a+1 .. b */
        for (size_t k = a; k < b; k++)
            rank[cells[k].i] = mean;
        a = b;
    }
}

/* Pearson's correlation of a and b (n values); NaN when either is constant
 * or n < 2. */
static double s_pearson(const double *a, const double *b, size_t n)
{
    if (n < 2)
        return NAN;
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
}

/* Compares one sample's maps, the trained model's t and the random
 * model's u (a_size floats each), into the accumulators of group g and of
 * all samples. The rank correlation leaves out the cells that are zero in
 * both maps: integrated gradients and gradient x input are exactly zero
 * wherever the input equals the baseline (a Fashion-MNIST image's black
 * background, half its pixels), whatever the weights, and those shared
 * ties would push any two such maps towards a correlation of 1 without
 * saying anything about the model. The L2 distance is over every cell
 * (the left-out ones add nothing to it). */
static void s_compare_sample(s_run_t *r, const float *t, const float *u, int g)
{
    size_t m = 0;
    double nt = 0, nu = 0, d = 0, dot = 0;
    for (size_t i = 0; i < r->a_size; i++) {
        double a = fabs((double)t[i]), b = fabs((double)u[i]);
        nt += a * a;
        nu += b * b;
        if (a == 0 && b == 0)
            continue;
        r->ca[m] = a;
        r->cb[m] = b;
        m++;
    }
    s_ranks(r->ca, m, r->cells, r->ra);
    s_ranks(r->cb, m, r->cells, r->rb);
    double rank = s_pearson(r->ra, r->rb, m);
    nt = sqrt(nt);
    nu = sqrt(nu);
    for (size_t i = 0; nt > 0 && nu > 0 && i < m; i++) {
        d += (r->ca[i] / nt - r->cb[i] / nu) * (r->ca[i] / nt - r->cb[i] / nu);
        dot += (r->ca[i] / nt) * (r->cb[i] / nu);
    }
    s_acc_t *acc[2] = {&r->acc[g], &r->acc[r->groups]};
    for (int k = 0; k < 2; k++) {
        if (isfinite(rank)) {
            acc[k]->rank_sum += rank;
            acc[k]->n_rank++;
        }
        if (nt > 0 && nu > 0) {
            acc[k]->l2_sum += sqrt(d);
            acc[k]->cos_sum += dot;
            acc[k]->n_l2++;
        }
    }
}

/* --sanity: explains the batch's cnt samples again, for the same targets,
 * with the random weights, into r->rsum, and compares each sample's two
 * maps; the trained weights are back in the model afterwards, also after a
 * failure. r->attr holds the trained model's maps on entry. */
static int s_explain_random(s_run_t *r, int64_t off, int cnt, gb_error_t *err)
{
    float *p = gb_model_params(r->m);
    int32_t *labels = r->regression ? NULL : r->labels;
    memcpy(r->keep, r->attr, (size_t)cnt * r->a_size * sizeof *r->keep);
    memcpy(p, r->random, r->n_params * sizeof *p);
    int rc = gb_explain(r->e, r->x, labels, cnt, r->attr, r->rel_err, r->steps_used, err);
    memcpy(p, r->trained, r->n_params * sizeof *p);
    if (rc)
        return gb_error_prefix(err, rc, "--sanity (random model): ");
    for (int i = 0; i < cnt; i++) {
        int g = r->regression ? 0 : r->labels[i];
        const float *u = r->attr + (size_t)i * r->a_size;
        if ((rc = gb_summary_add(r->rsum, u, g, err)))
            return gb_error_prefix(err, rc, "--sanity (random model): test sample %lld: ",
                                   (long long)(off + i));
        s_compare_sample(r, r->keep + (size_t)i * r->a_size, u, g);
    }
    return 0;
}

/* The figures of --sanity from the accumulators. */
static int s_sanity_compute(const s_run_t *r, s_sanity_t *out, gb_error_t *err)
{
    out->cls = gb_malloc(((size_t)r->groups + 1) * sizeof *out->cls);
    if (!out->cls)
        return gb_error_set(err, GB_ENOMEM, "out of memory for --sanity's figures");
    out->max_rank = NAN;
    out->max_class = -1;
    for (int g = 0; g <= r->groups; g++) {
        const s_acc_t *a = &r->acc[g];
        s_change_t *c = g == r->groups ? &out->all : &out->cls[g];
        c->rank = a->n_rank ? a->rank_sum / (double)a->n_rank : NAN;
        c->l2 = a->n_l2 ? a->l2_sum / (double)a->n_l2 : NAN;
        c->cosine = a->n_l2 ? a->cos_sum / (double)a->n_l2 : NAN;
        c->undefined = gb_summary_count(r->sum, g == r->groups ? GB_SUMMARY_ALL : g) - a->n_rank;
        if (g < r->groups && isfinite(c->rank) && !(c->rank <= out->max_rank)) {
            out->max_rank = c->rank;
            out->max_class = g;
        }
    }
    out->passed = !(out->all.rank > S_SANITY_MAX_RANK);
    return 0;
}

/* Explains every test sample, batch by batch, into the summary (and with
 * --sanity into the random model's too). */
static int s_explain_all(s_run_t *r, gb_error_t *err)
{
    const gb_dataset_t *t = r->test;
    double *class_in = (double *)r->draw.class_in;
    double last_draw = 0;
    bool progress = !r->o->json && isatty(STDERR_FILENO);
    int32_t *labels = r->regression ? NULL : r->labels;
    for (int64_t off = 0; off < t->n; off += r->batch) {
        int cnt = t->n - off < r->batch ? (int)(t->n - off) : r->batch;
        for (int i = 0; i < cnt; i++)
            r->idx[i] = (int32_t)(off + i);
        int rc = gb_dataset_fill(r->test, r->idx, cnt, r->x, labels, NULL, err);
        if (!rc && r->predicted)
            rc = s_predict(r, cnt, err);
        if (!rc)
            rc = gb_explain(r->e, r->x, labels, cnt, r->attr, r->rel_err, r->steps_used, err);
        if (rc)
            return rc;
        for (int i = 0; i < cnt; i++) {
            int g = r->regression ? 0 : r->labels[i];
            if ((rc = gb_summary_add(r->sum, r->attr + (size_t)i * r->a_size, g, err)))
                return gb_error_prefix(err, rc, "test sample %lld: ", (long long)(off + i));
            r->err_sum += r->rel_err[i];
            r->steps_sum += r->steps_used[i];
            if (class_in)
                for (size_t j = 0; j < r->in_size; j++)
                    class_in[(size_t)g * r->in_size + j] += r->x[(size_t)i * r->in_size + j];
        }
        if (r->rsum && (rc = s_explain_random(r, off, cnt, err)))
            return rc;
        if (progress && gb_time_now() - last_draw > 0.2) {
            last_draw = gb_time_now();
            fprintf(stderr, "\rexplained %lld/%lld", (long long)(off + cnt), (long long)t->n);
        }
    }
    if (progress)
        fprintf(stderr, "\r%40s\r", "");
    return 0;
}

/* The one line a person reads (no newline), into buf. A class whose maps
 * fail while the whole passes is named: the verdict is over all samples,
 * but a person looking at that class's heatmap should know. */
static void s_sanity_verdict(const s_run_t *r, const s_sanity_t *sa, char *buf, size_t cap)
{
    if (isnan(sa->all.rank))
        snprintf(buf, cap, "maps depend on the model: the random model's maps are flat "
                           "(rank correlation undefined)");
    else if (sa->passed && sa->max_class >= 0 && !r->regression &&
             sa->max_rank > S_SANITY_MAX_RANK)
        snprintf(buf, cap, "maps depend on the model: rank correlation %.2f, but %.2f for "
                           "class %d %s", sa->all.rank, sa->max_rank, sa->max_class,
                 gb_class_names_get(r->names, sa->max_class));
    else if (sa->passed)
        snprintf(buf, cap, "maps depend on the model: rank correlation %.2f", sa->all.rank);
    else
        snprintf(buf, cap, "warning: these maps barely depend on the model's weights: rank "
                           "correlation %.2f with a random model's maps (above %.1f)",
                 sa->all.rank, S_SANITY_MAX_RANK);
}

/* DIR/summary.json (its path into summary_path) and one heatmap per class
 * with samples (their count into *pictures). */
static int s_write(s_run_t *r, const gb_summary_info_t *info, char *summary_path, size_t cap,
                   int *pictures, gb_error_t *err)
{
    char *json = NULL;
    size_t json_len = 0;
    gb_summary_info_t named = *info;
    const char **names = NULL;
    int rc = s_mkdirs(r->o->out, err);
    if (!rc && r->names) {
        names = gb_calloc((size_t)r->groups, sizeof *names);
        if (!names)
            rc = gb_error_set(err, GB_ENOMEM, "out of memory for summary.json");
        for (int c = 0; names && c < r->groups; c++)
            names[c] = gb_class_names_get(r->names, c);
        named.class_names = names;
    }
    if (!rc)
        rc = gb_summary_json(r->sum, &named, &json, &json_len, err);
    gb_free(names);
    if (!rc)
        rc = s_join(summary_path, cap, r->o->out, "summary.json", err);
    if (!rc)
        rc = gb_file_write_atomic(summary_path, json, json_len, 0644, err);
    gb_free(json);
    *pictures = 0;
    for (int c = 0; !rc && c < r->groups; c++) {
        if (gb_summary_count(r->sum, c) == 0)
            continue;
        char name[64], png[S_MAX_PATH];
        if (r->regression)
            snprintf(name, sizeof name, "output.png");
        else
            snprintf(name, sizeof name, "class_%d.png", c);
        rc = s_join(png, sizeof png, r->o->out, name, err);
        if (!rc)
            rc = s_draw_class(&r->draw, r->sum, c, NULL, png, err);
        if (!rc)
            (*pictures)++;
    }
    return rc;
}

/* --sanity: DIR/random_class_<c>.png (random_output.png), the random
 * model's maps beside the trained one's, their count into *pictures. */
static int s_write_random(s_run_t *r, int *pictures, gb_error_t *err)
{
    int rc = 0;
    *pictures = 0;
    for (int c = 0; !rc && c < r->groups; c++) {
        if (gb_summary_count(r->rsum, c) == 0)
            continue;
        char name[64], png[S_MAX_PATH];
        if (r->regression)
            snprintf(name, sizeof name, "random_output.png");
        else
            snprintf(name, sizeof name, "random_class_%d.png", c);
        rc = s_join(png, sizeof png, r->o->out, name, err);
        if (!rc)
            rc = s_draw_class(&r->draw, r->rsum, c, "random weights", png, err);
        if (!rc)
            (*pictures)++;
    }
    return rc;
}

/* The "sanity" object of the --json line. */
static json_t *s_sanity_json(const s_run_t *r, const s_sanity_t *sa)
{
    char verdict[512];
    s_sanity_verdict(r, sa, verdict, sizeof verdict);
    json_t *classes = json_array();
    for (int c = 0; classes && !r->regression && c < r->groups; c++) {
        int64_t count = gb_summary_count(r->sum, c);
        if (count == 0)
            continue;
        json_t *o = json_pack("{s:i, s:o, s:I, s:o, s:o, s:o}", "class", c, "class_name",
                              gb_json_string(gb_class_names_get(r->names, c)), "count",
                              (json_int_t)count, "rank_correlation",
                              gb_json_real_or_null(sa->cls[c].rank), "l2_distance",
                              gb_json_real_or_null(sa->cls[c].l2), "cosine_similarity",
                              gb_json_real_or_null(sa->cls[c].cosine));
        if (json_array_append_new(classes, o) != 0) {
            json_decref(classes);
            return NULL;
        }
    }
    return json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:I, s:f, s:b, s:o, s:i, s:o}",
                     "check", "randomise", "layers", "all", "seed",
                     (json_int_t)r->o->sanity_seed, "rank_correlation",
                     gb_json_real_or_null(sa->all.rank), "l2_distance",
                     gb_json_real_or_null(sa->all.l2), "cosine_similarity",
                     gb_json_real_or_null(sa->all.cosine), "max_class_rank_correlation",
                     gb_json_real_or_null(sa->max_rank), "samples_without_rank",
                     (json_int_t)sa->all.undefined, "threshold", S_SANITY_MAX_RANK, "passed",
                     (int)sa->passed, "verdict", gb_json_string(verdict), "heatmaps",
                     sa->pictures, "classes", classes);
}

/* v with 3 decimals, or "n/a" (NaN), into buf. */
static const char *s_fig(double v, char *buf, size_t cap)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.3f", v);
    else
        snprintf(buf, cap, "n/a");
    return buf;
}

static void s_report_sanity_text(const s_run_t *r, const s_sanity_t *sa)
{
    char verdict[512], f1[32], f2[32], f3[32];
    s_sanity_verdict(r, sa, verdict, sizeof verdict);
    printf("sanity check: the same samples explained by the model with all its weights "
           "random (seed %llu);\n  per-sample means of the rank correlation, the normalised "
           "L2 distance and the cosine similarity of |attribution|:\n",
           (unsigned long long)r->o->sanity_seed);
    printf("  %-28s %8s %10s %8s %8s\n", "", "samples", "rank corr", "L2 dist", "cosine");
    for (int c = 0; !r->regression && c < r->groups; c++) {
        int64_t count = gb_summary_count(r->sum, c);
        if (count == 0)
            continue;
        char label[GB_CLASS_NAMES_MAX_LEN + 16];
        snprintf(label, sizeof label, "%d %s", c, gb_class_names_get(r->names, c));
        printf("  %-28s %8lld %10s %8s %8s\n", label, (long long)count,
               s_fig(sa->cls[c].rank, f1, sizeof f1), s_fig(sa->cls[c].l2, f2, sizeof f2),
               s_fig(sa->cls[c].cosine, f3, sizeof f3));
    }
    printf("  %-28s %8lld %10s %8s %8s\n", r->regression ? "output" : "all classes",
           (long long)gb_summary_count(r->sum, GB_SUMMARY_ALL),
           s_fig(sa->all.rank, f1, sizeof f1), s_fig(sa->all.l2, f2, sizeof f2),
           s_fig(sa->all.cosine, f3, sizeof f3));
    if (sa->all.undefined)
        printf("  %lld sample%s without a rank correlation (a map with fewer than two "
               "distinct values)\n", (long long)sa->all.undefined,
               sa->all.undefined == 1 ? "" : "s");
    printf("wrote %d random-weights heatmap%s (random_%s.png) in %s\n", sa->pictures,
           sa->pictures == 1 ? "" : "s", r->regression ? "output" : "class_<c>", r->o->out);
    printf("%s\n", verdict);
}

static void s_report(const s_run_t *r, const gb_summary_info_t *info, const char *summary_path,
                     int pictures, const s_sanity_t *sanity, double seconds)
{
    int64_t n = gb_summary_count(r->sum, GB_SUMMARY_ALL);
    long long clipped = (long long)gb_summary_clipped(r->sum, GB_SUMMARY_ALL);
    double compl = info->mean_completeness_error;
    if (r->o->json) {
        json_t *o = json_pack(
            "{s:o, s:i, s:I, s:o, s:o, s:I, s:o}", "summary", gb_json_string(summary_path),
            "heatmaps", pictures, "samples", (json_int_t)n, "method", gb_json_string(info->method),
            "mean_completeness_error",
            info->has_completeness ? gb_json_real_or_null(compl) : json_null(), "clipped",
            (json_int_t)clipped, "class_names",
            gb_json_string(r->names ? gb_class_names_source(r->names) : NULL));
        if (o && sanity)
            json_object_set_new(o, "sanity", s_sanity_json(r, sanity));
        if (o)
            json_object_set_new(o, "seconds", gb_json_real(seconds));
        gb_error_t err = {0};
        if (gb_json_print(stdout, o, &err))
            fprintf(stderr, S_NAME ": %s\n", err.msg);
        json_decref(o);
        return;
    }
    printf("explained %lld samples with %s", (long long)n, info->method);
    if (info->has_completeness)
        printf(" (%d steps, %s rule, %s baseline): mean completeness error %.4g, "
               "%.1f steps per sample",
               info->steps, info->rule, r->baseline_name, compl, info->mean_steps_used);
    printf("; %lld of them clipped to norm %g; %.1f s\n", clipped, r->o->clip, seconds);
    printf("wrote %s and %d heatmap%s in %s\n", summary_path, pictures,
           pictures == 1 ? "" : "s", r->o->out);
    if (sanity)
        s_report_sanity_text(r, sanity);
}

int gb_cmd_explain(int argc, char **argv)
{
    s_opts_t o;
    s_run_t r = {.o = &o};
    s_sanity_t sanity = {0};
    int rc = s_options(&o, &r.method, argc, argv);
    if (rc >= 0)
        return rc;
    r.predicted = strcmp(o.target, "predicted") == 0;
    double t0 = gb_time_now();
    gb_error_t err = {0};
    rc = s_prepare(&r, &err);
    if (!rc)
        rc = s_explain_all(&r, &err);
    if (!rc) {
        bool is_ig = r.method == GB_EXPLAIN_IG;
        int64_t n = gb_summary_count(r.sum, GB_SUMMARY_ALL);
        const gb_explain_cfg_t *used = gb_explainer_cfg(r.e);
        gb_shape_t in = gb_model_input_shape(r.m);
        gb_summary_info_t info = {
            .method = gb_explain_method_name(r.method),
            .steps = is_ig ? used->steps : 0,
            .rule = is_ig ? (used->rule == GB_IG_TRAPEZOID ? "trapezoid" : "gauss") : NULL,
            .baseline = r.baseline_name,
            .target = r.regression ? "output" : o.target,
            .dataset = o.data.data,
            .model = o.model_file,
            .input_shape = &in,
            .has_completeness = is_ig,
            .mean_completeness_error = n ? r.err_sum / (double)n : 0.0,
            .mean_steps_used = is_ig && n ? r.steps_sum / (double)n : 0.0,
            .sequence = in.rank == 2 && r.draw.attr.rank == 2 && !r.draw.gradcam,
            .regression = r.regression,
        };
        char path[S_MAX_PATH];
        int pictures = 0;
        rc = s_write(&r, &info, path, sizeof path, &pictures, &err);
        if (!rc && r.rsum)
            rc = s_sanity_compute(&r, &sanity, &err);
        if (!rc && r.rsum)
            rc = s_write_random(&r, &sanity.pictures, &err);
        if (!rc)
            s_report(&r, &info, path, pictures, r.rsum ? &sanity : NULL, gb_time_now() - t0);
    }
    if (rc)
        fprintf(stderr, S_NAME ": %s\n", err.msg);
    bool failed_sanity = !rc && r.rsum && !sanity.passed;
    gb_free(sanity.cls);
    s_run_free(&r);
    return rc ? 1 : failed_sanity ? S_EXIT_SANITY : 0;
}
