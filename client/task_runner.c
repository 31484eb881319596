/* The client's task runner (see task_runner.h): one round's Task in,
 * protobuf-c Update / EvalResult / Explanation out, no network.
 *
 * Shape of the code. A task is first PREPARED into an s_prep_t: validation,
 * then whatever the task needs that the runner does not already hold (a
 * model for a new spec, a larger plan, an optimiser of another kind, an
 * explainer for another method), built on the side. Only when every check
 * and allocation has succeeded is the preparation COMMITTED into the runner
 * (s_commit cannot fail), so a refused task changes nothing. The phases then
 * run on the committed state: load the global parameters, evaluate, explain
 * (both on the global model, before training moves it), train.
 *
 * Memory is planned once and kept: the model and its plan, the optimiser
 * (reset, not remade, when its configuration repeats), the explainer with
 * its batch buffers, summary and output maps, the global-parameter copy and
 * the delta. Results point into these buffers, which is why they live until
 * the next run. The engine's training loop allocates its batch buffers once
 * per epoch, never per step. */
#include "task_runner.h"

#include "data_source.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/train.h"
#include "explain/attribution.h"
#include "explain/summary.h"
#include "net/envelope.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/rng.h"
#include "util/time.h"

#include <math.h>
#include <stdint.h>
#include <string.h>


#define S_MAX_METRICS 8         /* Update metrics */
#define S_EVAL_METRICS 1        /* EvalResult metrics */
#define S_QUALITY_METRICS 2     /* Explanation quality metrics */
#define S_MAX_THREADS 256       /* as the local commands allow */
#define S_RANGE_CHUNK 64        /* samples per pass when measuring the test inputs' range */
#define S_EXPLAIN_STREAM 0x45585045ULL /* rng stream of the client's explain order */

_Static_assert(sizeof(float) == 4, "deltas are sent as 4-byte IEEE-754 floats");

/* Everything an explanation needs for one model, plan and configuration. */
typedef struct {
    gb_explainer_t *e;       /* the method on the model; NULL: none */
    gb_explain_cfg_t want;   /* the configuration it was made from, to decide reuse */
    gb_summary_t *sum;       /* per-group sums, reset each task */
    int groups;              /* classes, or 1 for regression */
    int batch;               /* samples per gb_explain call: the plan's batch */
    size_t in_size;          /* floats per input sample */
    size_t cells;            /* floats per attribution map */
    gb_shape_t shape;        /* attribution map shape */
    uint32_t dims[GB_SHAPE_MAX_RANK]; /* the same, for Tensor.shape */
    float *x;                /* batch x in_size: inputs */
    float *attr;             /* batch x cells: maps */
    int32_t *idx;            /* batch: sample indices */
    int32_t *labels;         /* batch: target classes */
    double *completeness;    /* batch: IG completeness errors */
    int *steps_used;         /* batch: IG steps */
    bool *wanted;            /* groups: explain samples of this class */
    double *scratch;         /* cells: one derived map */
    uint8_t *maps;           /* (groups + 1) x cells little-endian float32: class means, then
                                the feature importance */
    Glassbox__ClassAttribution *classes;     /* groups */
    Glassbox__ClassAttribution **class_ptrs; /* groups: the ones sent */
    Glassbox__Tensor *tensors;               /* groups + 1 */
} s_explain_t;

/* What a runner builds for the tasks it runs: the model, its plan, the
 * parameter buffers, the optimiser and the explainer. A runner has its own,
 * or borrows one shared by runners that never run at the same time
 * (gb_task_engine_new): the virtual clients of one process train one after
 * another, so one set serves them all instead of one per client. */
struct gb_task_engine {
    gb_model_t *model;             /* the built model, or NULL before the first task */
    char *spec;                    /* its spec text */
    size_t np;                     /* its parameter count */
    int plan_batch;                /* its planned batch */
    int plan_threads;              /* the threads it was planned for */
    float *global;                 /* np: the task's parameters */
    float *delta;                  /* np: the update, host order */
    uint8_t *delta_le;             /* np x 4 little-endian bytes (big-endian hosts; else NULL) */
    gb_optim_t *optim;             /* the optimiser, or NULL */
    gb_optim_cfg_t optim_cfg;      /* its configuration */
    size_t optim_np;               /* its parameter count */
    s_explain_t ex;                /* the explainer and its buffers */
};

struct gb_task_runner {
    gb_task_runner_cfg_t cfg;      /* configuration, defaults resolved */
    const gb_dataset_t *ref;       /* the split models are checked against (train, else test) */
    gb_loss_kind_t loss;           /* the data's loss */
    int groups;                    /* classes, or 1 for regression */
    bool regression;               /* the data are a regression task */
    int32_t *order;                /* test n: this client's order of samples to explain */
    float in_lo, in_hi;            /* range of the test split's input values */
    gb_task_engine_t *eng;         /* &own, or the shared engine of cfg.engine */
    gb_task_engine_t own;          /* this runner's engine when it has no shared one */
    gb_task_runner_stats_t stats;  /* counters */
    /* Results: the protobuf-c structs handed out, and what they point to. */
    Glassbox__Update update;
    Glassbox__EvalResult eval;
    Glassbox__Explanation explanation;
    Glassbox__Metric metrics[S_MAX_METRICS];
    Glassbox__Metric *metric_ptrs[S_MAX_METRICS];
    Glassbox__Metric eval_metrics[S_EVAL_METRICS];
    Glassbox__Metric *eval_metric_ptrs[S_EVAL_METRICS];
    Glassbox__Metric quality[S_QUALITY_METRICS];
    Glassbox__Metric *quality_ptrs[S_QUALITY_METRICS];
    uint8_t digest[GB_WIRE_SHA256_LEN]; /* SHA-256 of the delta bytes */
};

/* A task's needs, built on the side until s_commit. NULL members mean "the
 * runner's current one serves". */
typedef struct {
    gb_model_t *model;        /* a model for a new spec */
    char *spec;               /* its spec text */
    float *global, *delta;    /* parameter buffers for a new parameter count */
    uint8_t *delta_le;        /* big-endian hosts */
    gb_optim_t *optim;        /* an optimiser for a new configuration */
    gb_optim_cfg_t optim_cfg; /* the configuration the task trains with */
    s_explain_t ex;           /* an explainer for a new model, plan or configuration */
    bool have_ex;             /* ex is new */
    int plan_batch;           /* the model's plan after the task */
    bool planned;             /* model (the new one) was planned: counted at commit */
} s_prep_t;

/* ---- small helpers ------------------------------------------------------- */

uint64_t gb_task_runner_seed(uint64_t task_seed, uint64_t client_id)
{
    return gb_hash2(task_seed, client_id);
}

gb_task_runner_stats_t gb_task_runner_stats(const gb_task_runner_t *r)
{
    return r->stats;
}

static void s_metric(Glassbox__Metric *m, const char *name, double value)
{
    glassbox__metric__init(m);
    m->name = (char *)name; /* protobuf-c's field is not const; only read when packing */
    m->value = value;
}

static void s_explain_free(s_explain_t *x)
{
    gb_explainer_destroy(&x->e);
    gb_summary_destroy(&x->sum);
    gb_free(x->x);
    gb_free(x->attr);
    gb_free(x->idx);
    gb_free(x->labels);
    gb_free(x->completeness);
    gb_free(x->steps_used);
    gb_free(x->wanted);
    gb_free(x->scratch);
    gb_free(x->maps);
    gb_free(x->classes);
    gb_free(x->class_ptrs);
    gb_free(x->tensors);
    memset(x, 0, sizeof *x);
}

static void s_prep_free(s_prep_t *p)
{
    gb_model_destroy(&p->model);
    gb_free(p->spec);
    gb_free_aligned(p->global);
    gb_free_aligned(p->delta);
    gb_free(p->delta_le);
    gb_optim_destroy(&p->optim);
    if (p->have_ex)
        s_explain_free(&p->ex);
    memset(p, 0, sizeof *p);
}

/* ---- the runner ---------------------------------------------------------- */

static int s_check_split(const gb_dataset_t *ds, const char *what, gb_error_t *err)
{
    if (ds && (ds->n < 1 || ds->n > INT32_MAX))
        return gb_error_set(err, GB_EINVAL, "task runner: the %s split has %lld samples", what,
                            (long long)ds->n);
    return 0;
}

static int s_check_cfg(const gb_task_runner_cfg_t *c, gb_error_t *err)
{
    if (!c)
        return gb_error_set(err, GB_EINVAL, "task runner: no configuration");
    if (!c->train && !c->test)
        return gb_error_set(err, GB_EINVAL, "task runner: neither a train nor a test split");
    int rc = s_check_split(c->train, "train", err);
    if (!rc)
        rc = s_check_split(c->test, "test", err);
    if (rc)
        return rc;
    if (c->train && c->test &&
        (gb_dataset_sample_size(c->train) != gb_dataset_sample_size(c->test) ||
         gb_dataset_task(c->train) != gb_dataset_task(c->test) ||
         gb_dataset_outputs(c->train) != gb_dataset_outputs(c->test)))
        return gb_error_set(err, GB_EINVAL,
                            "task runner: the train and test splits differ in sample size, "
                            "task or outputs");
    if (c->threads < 1 || c->threads > S_MAX_THREADS)
        return gb_error_set(err, GB_EINVAL, "task runner: threads %d outside 1..%d", c->threads,
                            S_MAX_THREADS);
    if (c->eval_batch < 0)
        return gb_error_set(err, GB_EINVAL, "task runner: eval_batch %d is negative",
                            c->eval_batch);
    if (!(c->explain_clip >= 0) || !isfinite(c->explain_clip))
        return gb_error_set(err, GB_EINVAL, "task runner: explain_clip %g must be finite and >= 0",
                            c->explain_clip);
    return 0;
}

/* The smallest and largest input value of the test split, read in chunks. */
static int s_input_range(gb_task_runner_t *r, gb_error_t *err)
{
    const gb_dataset_t *t = r->cfg.test;
    size_t size = gb_dataset_sample_size(t);
    float *x = gb_malloc(S_RANGE_CHUNK * size * sizeof *x);
    if (!x)
        return gb_error_set(err, GB_ENOMEM, "task runner: out of memory reading the test split");
    int32_t idx[S_RANGE_CHUNK];
    float lo = INFINITY, hi = -INFINITY;
    int rc = 0;
    for (int64_t off = 0; off < t->n && !rc; off += S_RANGE_CHUNK) {
        int cnt = t->n - off < S_RANGE_CHUNK ? (int)(t->n - off) : S_RANGE_CHUNK;
        for (int i = 0; i < cnt; i++)
            idx[i] = (int32_t)(off + i);
        rc = gb_dataset_fill((void *)t, idx, cnt, x, NULL, NULL, err);
        for (size_t j = 0; !rc && j < (size_t)cnt * size; j++) {
            lo = x[j] < lo ? x[j] : lo;
            hi = x[j] > hi ? x[j] : hi;
        }
    }
    gb_free(x);
    r->in_lo = lo;
    r->in_hi = hi;
    return rc;
}

gb_task_runner_t *gb_task_runner_new(const gb_task_runner_cfg_t *cfg, gb_error_t *err)
{
    if (s_check_cfg(cfg, err))
        return NULL;
    gb_task_runner_t *r = gb_calloc(1, sizeof *r);
    if (!r) {
        gb_error_set(err, GB_ENOMEM, "task runner: out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    r->eng = cfg->engine ? cfg->engine : &r->own;
    if (!r->cfg.eval_batch)
        r->cfg.eval_batch = GB_TASK_DEFAULT_EVAL_BATCH;
    if (!(r->cfg.explain_clip > 0))
        r->cfg.explain_clip = GB_TASK_DEFAULT_EXPLAIN_CLIP;
    r->ref = cfg->train ? cfg->train : cfg->test;
    r->loss = gb_dataset_loss(r->ref);
    r->regression = gb_dataset_task(r->ref) == GB_TASK_REGRESSION;
    r->groups = r->regression ? 1 : r->ref->n_classes;
    if (cfg->test) {
        r->order = gb_malloc((size_t)cfg->test->n * sizeof *r->order);
        if (!r->order) {
            gb_error_set(err, GB_ENOMEM, "task runner: out of memory for the explain order");
            gb_task_runner_destroy(&r);
            return NULL;
        }
        for (int64_t i = 0; i < cfg->test->n; i++)
            r->order[i] = (int32_t)i;
        gb_rng_t rng;
        gb_rng_seed(&rng, cfg->client_id, S_EXPLAIN_STREAM);
        gb_rng_shuffle(&rng, r->order, cfg->test->n);
        if (s_input_range(r, err)) {
            gb_task_runner_destroy(&r);
            return NULL;
        }
    }
    return r;
}

static void s_engine_free(gb_task_engine_t *e)
{
    s_explain_free(&e->ex);
    gb_optim_destroy(&e->optim);
    gb_model_destroy(&e->model);
    gb_free(e->spec);
    gb_free_aligned(e->global);
    gb_free_aligned(e->delta);
    gb_free(e->delta_le);
    memset(e, 0, sizeof *e);
}

gb_task_engine_t *gb_task_engine_new(gb_error_t *err)
{
    gb_task_engine_t *e = gb_calloc(1, sizeof *e);
    if (!e)
        gb_error_set(err, GB_ENOMEM, "task engine: out of memory");
    return e;
}

void gb_task_engine_destroy(gb_task_engine_t **ep)
{
    if (!ep || !*ep)
        return;
    s_engine_free(*ep);
    gb_free(*ep);
    *ep = NULL;
}

void gb_task_runner_destroy(gb_task_runner_t **rp)
{
    if (!rp || !*rp)
        return;
    gb_task_runner_t *r = *rp;
    s_engine_free(&r->own);
    gb_free(r->order);
    gb_free(r);
    *rp = NULL;
}

/* ---- validation and preparation ------------------------------------------ */

static bool s_explaining(const Glassbox__Task *t)
{
    return t->explain && t->explain->method != GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE;
}

/* What the wire decoder checks, run here too: the runner may be handed a
 * Task that never crossed the wire, and one set of rules serves both. */
static int s_check_wire(const Glassbox__Task *task, gb_error_t *err)
{
    if (!task)
        return gb_error_set(err, GB_EFORMAT, "task: is missing");
    Glassbox__Envelope env = GLASSBOX__ENVELOPE__INIT;
    env.protocol_version = GB_ENVELOPE_PROTOCOL_VERSION;
    env.sequence = 1;
    env.body_case = GLASSBOX__ENVELOPE__BODY_TASK;
    env.task = (Glassbox__Task *)task; /* only read */
    /* The size of a task is the transport's business (its transfer limit). */
    gb_envelope_limits_t limits = {.max_bytes = SIZE_MAX};
    return gb_envelope_validate(&env, &limits, err);
}

/* What only this client can judge before building anything. */
static int s_check_local(const gb_task_runner_t *r, const Glassbox__Task *t, gb_error_t *err)
{
    if (t->train && !r->cfg.train)
        return gb_error_set(err, GB_EINVAL, "task.train: this client has no training data");
    if (t->evaluate && !r->cfg.test)
        return gb_error_set(err, GB_EINVAL, "task.evaluate: this client has no test data");
    if (!s_explaining(t))
        return 0;
    if (!r->cfg.test)
        return gb_error_set(err, GB_EINVAL, "task.explain: this client has no test data");
    for (size_t i = 0; i < t->explain->n_classes; i++)
        if (t->explain->classes[i] >= (uint32_t)r->groups)
            return gb_error_set(err, GB_EINVAL,
                                "task.explain.classes[%zu]: class %u is not one of this "
                                "client's %s 0..%d",
                                i, (unsigned)t->explain->classes[i],
                                r->regression ? "outputs" : "classes", r->groups - 1);
    return 0;
}

static bool s_has_conv(const gb_model_t *m)
{
    for (int i = 0; i < gb_model_layer_count(m); i++) {
        gb_layer_kind_t kind;
        size_t off, len;
        if (gb_model_layer_info(m, i, &kind, &off, &len) == 0 && kind == GB_LAYER_CONV2D)
            return true;
    }
    return false;
}

/* The model for the task: the runner's when the spec repeats, else a new
 * one in p->model. Checks it against the local data. */
static int s_prepare_model(gb_task_runner_t *r, const Glassbox__Task *t, s_prep_t *p,
                           gb_model_t **m, gb_error_t *err)
{
    const char *spec = t->model->spec;
    if (r->eng->model && strcmp(r->eng->spec, spec) == 0) {
        *m = r->eng->model;
    } else {
        gb_error_t local = {0};
        if (!(p->model = gb_model_new(spec, &local)))
            return gb_error_set(err, local.code, "%s: %s",
                                local.code == GB_ENOMEM ? "task runner" : "task.model.spec",
                                local.msg);
        if (!(p->spec = gb_strdup(spec)))
            return gb_error_set(err, GB_ENOMEM, "task runner: out of memory for the spec");
        *m = p->model;
    }
    gb_error_t local = {0};
    if (gb_data_source_check_model(*m, r->ref, "task.model", &local))
        return gb_error_set(err, local.code, "%s", local.msg);
    if (s_explaining(t) && t->explain->method == GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM &&
        !s_has_conv(*m))
        return gb_error_set(err, GB_EINVAL,
                            "task.explain.method: Grad-CAM needs a conv layer and the model has "
                            "none");
    return 0;
}

/* The optimiser configuration a TrainConfig asks for. proto3 cannot tell an
 * unset beta or epsilon from 0, so 0 reads as PyTorch's default. */
static int s_optim_cfg(const Glassbox__TrainConfig *c, gb_optim_cfg_t *o, gb_error_t *err)
{
    gb_optim_kind_t kind =
        c->optimizer == GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM ? GB_OPTIM_ADAM : GB_OPTIM_SGD;
    *o = gb_optim_defaults(kind);
    o->lr = (float)c->learning_rate;
    o->momentum = (float)c->momentum;
    o->weight_decay = (float)c->weight_decay;
    if (c->beta1 > 0)
        o->beta1 = (float)c->beta1;
    if (c->beta2 > 0)
        o->beta2 = (float)c->beta2;
    if (c->epsilon > 0)
        o->eps = (float)c->epsilon;
    /* Values in range as doubles can still fall out of float (a learning
     * rate of 1e-50 is 0 in float): say so by field. */
    if (!(o->lr > 0))
        return gb_error_set(err, GB_EINVAL, "task.train_config.learning_rate: %g is 0 in float32",
                            c->learning_rate);
    if (!(o->momentum < 1.0f))
        return gb_error_set(err, GB_EINVAL, "task.train_config.momentum: %.17g rounds to 1",
                            c->momentum);
    if (kind == GB_OPTIM_ADAM && (!(o->beta1 < 1.0f) || !(o->beta2 < 1.0f)))
        return gb_error_set(err, GB_EINVAL, "task.train_config.beta%d: %.17g rounds to 1",
                            o->beta1 < 1.0f ? 2 : 1, o->beta1 < 1.0f ? c->beta2 : c->beta1);
    if (!(o->eps > 0))
        return gb_error_set(err, GB_EINVAL, "task.train_config.epsilon: %g is 0 in float32",
                            c->epsilon);
    return 0;
}

static bool s_optim_cfg_equal(const gb_optim_cfg_t *a, const gb_optim_cfg_t *b)
{
    return a->kind == b->kind && a->lr == b->lr && a->momentum == b->momentum &&
           a->weight_decay == b->weight_decay && a->beta1 == b->beta1 && a->beta2 == b->beta2 &&
           a->eps == b->eps;
}

/* The explainer configuration an ExplainConfig asks for. */
static gb_explain_cfg_t s_explain_cfg(const gb_task_runner_t *r, const Glassbox__ExplainConfig *c,
                                      uint64_t seed)
{
    gb_explain_method_t m;
    switch (c->method) {
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRADIENT_X_INPUT: m = GB_EXPLAIN_GRADXINPUT; break;
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY: m = GB_EXPLAIN_SALIENCY; break;
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SMOOTHGRAD: m = GB_EXPLAIN_SMOOTHGRAD; break;
    case GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM: m = GB_EXPLAIN_GRADCAM; break;
    default: m = GB_EXPLAIN_IG; break;
    }
    gb_explain_cfg_t e = gb_explain_defaults(m);
    if (m == GB_EXPLAIN_IG && c->steps > 0) {
        e.steps = (int)c->steps;
        /* Long initial paths leave less room to double within the limit. */
        while (e.max_doublings > 0 && (e.steps << e.max_doublings) > GB_IG_MAX_STEPS)
            e.max_doublings--;
    }
    if (m == GB_EXPLAIN_SMOOTHGRAD) {
        if (c->steps > 0)
            e.samples = (int)c->steps;
        double rel = c->noise > 0 ? c->noise : GB_TASK_DEFAULT_SMOOTHGRAD_NOISE;
        double range = (double)r->in_hi - (double)r->in_lo;
        e.sigma = (float)(rel * (range > 0 ? range : 0));
        e.seed = seed;
    }
    return e;
}

static bool s_explain_cfg_equal(const gb_explain_cfg_t *a, const gb_explain_cfg_t *b)
{
    return a->method == b->method && a->steps == b->steps && a->rule == b->rule &&
           a->max_doublings == b->max_doublings &&
           a->completeness_tol == b->completeness_tol && a->base == b->base &&
           a->samples == b->samples && a->sigma == b->sigma && a->seed == b->seed &&
           a->layer == b->layer && a->baseline == b->baseline;
}

/* A new explainer with its summary and buffers for model m planned at batch. */
static int s_explain_build(const gb_task_runner_t *r, gb_model_t *m, int batch,
                           const gb_explain_cfg_t *want, s_explain_t *x, gb_error_t *err)
{
    memset(x, 0, sizeof *x);
    gb_error_t local = {0};
    x->want = *want;
    if (!(x->e = gb_explainer_new(m, want, &local))) {
        int rc = gb_error_set(err, local.code, "task.explain: %s", local.msg);
        s_explain_free(x);
        return rc;
    }
    x->shape = gb_explainer_attr_shape(x->e);
    x->cells = gb_shape_size(&x->shape);
    for (int i = 0; i < x->shape.rank; i++)
        x->dims[i] = (uint32_t)x->shape.dim[i];
    gb_shape_t in = gb_model_input_shape(m);
    x->in_size = gb_shape_size(&in);
    x->groups = r->groups;
    x->batch = batch;
    if (!(x->sum = gb_summary_new(&x->shape, x->groups, r->cfg.explain_clip, &local))) {
        int rc = gb_error_set(err, local.code, "task.explain: %s", local.msg);
        s_explain_free(x);
        return rc;
    }
    size_t B = (size_t)batch, G = (size_t)x->groups;
    x->x = gb_malloc(B * x->in_size * sizeof *x->x);
    x->attr = gb_malloc(B * x->cells * sizeof *x->attr);
    x->idx = gb_malloc(B * sizeof *x->idx);
    x->labels = gb_malloc(B * sizeof *x->labels);
    x->completeness = gb_malloc(B * sizeof *x->completeness);
    x->steps_used = gb_malloc(B * sizeof *x->steps_used);
    x->wanted = gb_malloc(G * sizeof *x->wanted);
    x->scratch = gb_malloc(x->cells * sizeof *x->scratch);
    x->maps = gb_malloc((G + 1) * x->cells * 4);
    x->classes = gb_malloc(G * sizeof *x->classes);
    x->class_ptrs = gb_malloc(G * sizeof *x->class_ptrs);
    x->tensors = gb_malloc((G + 1) * sizeof *x->tensors);
    if (!x->x || !x->attr || !x->idx || !x->labels || !x->completeness || !x->steps_used ||
        !x->wanted || !x->scratch || !x->maps || !x->classes || !x->class_ptrs || !x->tensors) {
        s_explain_free(x);
        return gb_error_set(err, GB_ENOMEM, "task runner: out of memory for explanations");
    }
    return 0;
}

/* The batch the model must be planned for: the training batch (capped by
 * the data), and for evaluation and explanation the configured one. */
static int s_needed_batch(const gb_task_runner_t *r, const Glassbox__Task *t)
{
    int need = 0;
    if (t->train) {
        int64_t b = t->train_config->batch_size;
        need = (int)(b < r->cfg.train->n ? b : r->cfg.train->n);
    }
    if (t->evaluate || s_explaining(t)) {
        int64_t b = r->cfg.eval_batch < r->cfg.test->n ? r->cfg.eval_batch : r->cfg.test->n;
        need = need > b ? need : (int)b;
    }
    return need;
}

static int s_prepare(gb_task_runner_t *r, const Glassbox__Task *t, uint64_t seed, s_prep_t *p,
                     gb_error_t *err)
{
    memset(p, 0, sizeof *p);
    int rc = s_check_wire(t, err);
    if (!rc)
        rc = s_check_local(r, t, err);
    gb_model_t *m = NULL;
    if (!rc)
        rc = s_prepare_model(r, t, p, &m, err);
    if (!rc && t->train)
        rc = s_optim_cfg(t->train_config, &p->optim_cfg, err);
    if (rc)
        return rc;
    size_t np = gb_model_param_count(m);

    /* The plan: a new model gets one; the runner's grows when too small. A
     * grown plan invalidates the runner's explainer (it batches at the
     * plan's size), so that goes at once: the model itself stays usable
     * whatever happens next. */
    int need = s_needed_batch(r, t);
    bool current = m == r->eng->model;
    /* A shared engine's plan may have been made for another runner's threads. */
    p->plan_batch = current && r->eng->plan_threads == r->cfg.threads ? r->eng->plan_batch : 0;
    if (need > p->plan_batch) {
        gb_error_t local = {0};
        if (gb_model_plan(m, need, r->cfg.threads, &local))
            return gb_error_set(err, local.code, "task runner: planning batch %d: %s", need,
                                local.msg);
        p->plan_batch = need;
        p->planned = !current;
        if (current) {
            r->stats.plans++;
            r->eng->plan_batch = need;
            r->eng->plan_threads = r->cfg.threads;
            s_explain_free(&r->eng->ex);
        }
    }

    /* An optimiser depends on its configuration and the parameter count
     * only; a repeated one is reset (fresh state) instead of remade. */
    if (t->train &&
        (!r->eng->optim || np != r->eng->optim_np || !s_optim_cfg_equal(&r->eng->optim_cfg, &p->optim_cfg))) {
        gb_error_t local = {0};
        if (!(p->optim = gb_optim_new(&p->optim_cfg, np, &local)))
            return gb_error_set(err, local.code, "task.train_config: %s", local.msg);
    }

    if (s_explaining(t)) {
        gb_explain_cfg_t want = s_explain_cfg(r, t->explain, seed);
        /* a shared engine's explainer may sum another runner's classes */
        if (!current || !r->eng->ex.e || r->eng->ex.groups != r->groups ||
            !s_explain_cfg_equal(&r->eng->ex.want, &want)) {
            if ((rc = s_explain_build(r, m, p->plan_batch, &want, &p->ex, err)))
                return rc;
            p->have_ex = true;
        }
    }

    if (!current && (np != r->eng->np || !r->eng->global)) {
        size_t cap = np ? np : 1; /* a model may have no parameters at all */
        p->global = gb_alloc_aligned(cap * sizeof *p->global);
        p->delta = gb_alloc_aligned(cap * sizeof *p->delta);
        p->delta_le = GB_WIRE_LITTLE_ENDIAN ? NULL : gb_malloc(cap * 4);
        if (!p->global || !p->delta || (!GB_WIRE_LITTLE_ENDIAN && !p->delta_le))
            return gb_error_set(err, GB_ENOMEM,
                                "task runner: out of memory for %zu parameters", np);
    }
    return 0;
}

/* Moves what p built into the runner; cannot fail. */
static void s_commit(gb_task_runner_t *r, s_prep_t *p)
{
    if (p->model) {
        s_explain_free(&r->eng->ex); /* made for the old model */
        gb_model_destroy(&r->eng->model);
        gb_free(r->eng->spec);
        r->eng->model = p->model;
        r->eng->spec = p->spec;
        r->eng->np = gb_model_param_count(r->eng->model);
        r->eng->plan_batch = p->plan_batch;
        r->eng->plan_threads = r->cfg.threads;
        p->model = NULL;
        p->spec = NULL;
        r->stats.models_built++;
        r->stats.plans += p->planned;
    }
    if (p->global) {
        gb_free_aligned(r->eng->global);
        gb_free_aligned(r->eng->delta);
        gb_free(r->eng->delta_le);
        r->eng->global = p->global;
        r->eng->delta = p->delta;
        r->eng->delta_le = p->delta_le;
        p->global = p->delta = NULL;
        p->delta_le = NULL;
    }
    if (p->optim) {
        gb_optim_destroy(&r->eng->optim);
        r->eng->optim = p->optim;
        r->eng->optim_cfg = p->optim_cfg;
        r->eng->optim_np = r->eng->np;
        p->optim = NULL;
    }
    if (p->have_ex) {
        s_explain_free(&r->eng->ex);
        r->eng->ex = p->ex;
        p->have_ex = false;
        memset(&p->ex, 0, sizeof p->ex);
        r->stats.explainers_built++;
    }
}

/* ---- the phases ---------------------------------------------------------- */

static bool s_cancelled(const atomic_int *cancel)
{
    return cancel && atomic_load(cancel) != 0;
}

static int s_cancel_error(gb_error_t *err, const char *phase)
{
    return gb_error_set(err, GB_TASK_ECANCELLED, "task cancelled during %s", phase);
}

static int s_evaluate(gb_task_runner_t *r, const Glassbox__Task *t, gb_task_result_t *out,
                      gb_error_t *err)
{
    const gb_dataset_t *test = r->cfg.test;
    gb_batches_t b = {(void *)test, gb_dataset_fill, test->n, r->loss};
    int batch = r->eng->plan_batch < test->n ? r->eng->plan_batch : (int)test->n;
    gb_epoch_stats_t es = {0};
    gb_error_t local = {0};
    if (gb_evaluate(r->eng->model, &b, batch, &es, &local))
        return gb_error_set(err, local.code, "evaluating: %s", local.msg);
    glassbox__eval_result__init(&r->eval);
    r->eval.round = t->round;
    r->eval.task_id = t->task_id;
    r->eval.num_samples = (uint64_t)es.samples;
    r->eval.loss = es.mean_loss;
    r->eval.accuracy = es.accuracy;
    s_metric(&r->eval_metrics[0], "duration_s", es.seconds);
    r->eval_metric_ptrs[0] = &r->eval_metrics[0];
    r->eval.n_metrics = S_EVAL_METRICS;
    r->eval.metrics = r->eval_metric_ptrs;
    out->eval = &r->eval;
    out->eval_loss = es.mean_loss;
    out->eval_accuracy = es.accuracy;
    out->eval_samples = (uint64_t)es.samples;
    return 0;
}

/* Explains one gathered batch into the summary. */
static int s_explain_batch(gb_task_runner_t *r, int cnt, double *err_sum, double *steps_sum,
                           gb_error_t *err)
{
    s_explain_t *x = &r->eng->ex;
    int32_t *labels = r->regression ? NULL : x->labels;
    int rc = gb_dataset_fill((void *)r->cfg.test, x->idx, cnt, x->x, labels, NULL, err);
    if (!rc)
        rc = gb_explain(x->e, x->x, labels, cnt, x->attr, x->completeness, x->steps_used, err);
    for (int i = 0; !rc && i < cnt; i++) {
        int g = r->regression ? 0 : x->labels[i];
        rc = gb_summary_add(x->sum, x->attr + (size_t)i * x->cells, g, err);
        *err_sum += x->completeness[i];
        *steps_sum += x->steps_used[i];
    }
    return rc;
}

/* One derived map into the tensor of slot k (little-endian float32). */
static void s_explain_tensor(s_explain_t *x, size_t k)
{
    uint8_t *dst = x->maps + k * x->cells * 4;
    for (size_t i = 0; i < x->cells; i++) {
        float v = (float)x->scratch[i];
        gb_wire_floats_to_le(dst + 4 * i, &v, 1);
    }
    Glassbox__Tensor *tn = &x->tensors[k];
    glassbox__tensor__init(tn);
    tn->n_shape = (size_t)x->shape.rank;
    tn->shape = x->dims;
    tn->data.len = x->cells * 4;
    tn->data.data = dst;
}

static int s_explain(gb_task_runner_t *r, const Glassbox__Task *t, const atomic_int *cancel,
                     gb_task_result_t *out, gb_error_t *err)
{
    s_explain_t *x = &r->eng->ex;
    const Glassbox__ExplainConfig *c = t->explain;
    const gb_dataset_t *test = r->cfg.test;
    gb_summary_class_t empty = {0};
    for (int g = 0; g < x->groups; g++) {
        if (gb_summary_class_set(x->sum, g, &empty, err))
            return err->code;
        x->wanted[g] = c->n_classes == 0;
    }
    for (size_t i = 0; i < c->n_classes; i++)
        x->wanted[c->classes[i]] = true;
    int64_t want = c->max_samples ? c->max_samples : GB_TASK_DEFAULT_EXPLAIN_SAMPLES;
    double err_sum = 0, steps_sum = 0;
    int64_t done = 0;
    int cnt = 0;
    for (int64_t k = 0; k < test->n && done + cnt < want; k++) {
        int32_t s = r->order[k];
        if (!r->regression && !x->wanted[test->labels[s]])
            continue;
        x->idx[cnt++] = s;
        if (cnt < x->batch && done + cnt < want && k + 1 < test->n)
            continue;
        if (s_cancelled(cancel))
            return s_cancel_error(err, "explanation");
        int rc = s_explain_batch(r, cnt, &err_sum, &steps_sum, err);
        if (rc)
            return gb_error_prefix(err, rc, "explaining: ");
        done += cnt;
        cnt = 0;
    }
    if (cnt > 0) { /* samples gathered when the order ran out */
        if (s_cancelled(cancel))
            return s_cancel_error(err, "explanation");
        int rc = s_explain_batch(r, cnt, &err_sum, &steps_sum, err);
        if (rc)
            return gb_error_prefix(err, rc, "explaining: ");
        done += cnt;
    }

    Glassbox__Explanation *e = &r->explanation;
    glassbox__explanation__init(e);
    e->method = c->method;
    e->round = t->round;
    size_t n = 0;
    for (int g = 0; g < x->groups; g++) {
        int64_t count = gb_summary_count(x->sum, g);
        if (count == 0)
            continue;
        if (gb_summary_mean(x->sum, g, x->scratch, err))
            return err->code;
        s_explain_tensor(x, (size_t)g);
        Glassbox__ClassAttribution *ca = &x->classes[g];
        glassbox__class_attribution__init(ca);
        ca->class_index = (uint32_t)g;
        ca->count = (uint64_t)count;
        ca->mean_attribution = &x->tensors[g];
        x->class_ptrs[n++] = ca;
    }
    e->n_classes = n;
    e->classes = x->class_ptrs;
    if (gb_summary_importance(x->sum, GB_SUMMARY_ALL, x->scratch, err))
        return err->code;
    s_explain_tensor(x, (size_t)x->groups);
    e->feature_importance = &x->tensors[x->groups];
    e->count = (uint64_t)done;
    if (x->want.method == GB_EXPLAIN_IG && done > 0) {
        s_metric(&r->quality[0], "completeness_error", err_sum / (double)done);
        s_metric(&r->quality[1], "steps_used", steps_sum / (double)done);
        r->quality_ptrs[0] = &r->quality[0];
        r->quality_ptrs[1] = &r->quality[1];
        e->n_quality = S_QUALITY_METRICS;
        e->quality = r->quality_ptrs;
    }
    out->explanation = e;
    out->explained = (uint64_t)done;
    return 0;
}

/* Scales the delta to L2 norm `clip`. Float rounding can leave it a hair
 * above the bound; a few further shrinks by an ulp's worth make it hold. */
static void s_clip(float *d, size_t n, double norm, double clip)
{
    for (int pass = 0; pass < 8 && norm > clip; pass++) {
        double f = clip / norm;
        if (f > 1.0 - 2.5e-7)
            f = 1.0 - 2.5e-7;
        double sq = 0;
        for (size_t i = 0; i < n; i++) {
            d[i] = (float)((double)d[i] * f);
            sq += (double)d[i] * d[i];
        }
        norm = sqrt(sq);
    }
}

static int s_train(gb_task_runner_t *r, const Glassbox__Task *t, uint64_t seed,
                   const atomic_int *cancel, gb_task_result_t *out, gb_error_t *err)
{
    const Glassbox__TrainConfig *c = t->train_config;
    const gb_dataset_t *train = r->cfg.train;
    gb_batches_t b = {(void *)train, gb_dataset_fill, train->n, r->loss};
    int batch = c->batch_size < train->n ? (int)c->batch_size : (int)train->n;
    gb_optim_reset(r->eng->optim);
    double t0 = gb_time_now(), loss_sum = 0, acc_sum = 0;
    int64_t seen = 0;
    long steps = 0;
    for (int e = 1; c->epochs == 0 || e <= (int)c->epochs; e++) {
        if (c->max_steps > 0 && steps >= (long)c->max_steps)
            break;
        gb_train_cfg_t tc = {.batch = batch, .seed = seed, .epoch = e,
                             .max_steps = c->max_steps > 0 ? (long)c->max_steps - steps : 0,
                             .prox_mu = (float)c->fedprox_mu,
                             .prox_center = c->fedprox_mu > 0 ? r->eng->global : NULL,
                             .cancel = cancel};
        gb_epoch_stats_t st = {0};
        gb_error_t local = {0};
        if (gb_train_epoch(r->eng->model, r->eng->optim, &b, &tc, &st, &local))
            return gb_error_set(err, local.code, "training: %s", local.msg);
        steps += st.steps;
        seen += st.samples;
        loss_sum += st.mean_loss * (double)st.samples;
        acc_sum += st.accuracy * (double)st.samples;
        if (st.cancelled)
            return gb_error_set(err, GB_TASK_ECANCELLED,
                                "task cancelled during training (after %ld steps)", steps);
    }
    /* delta = w - w_global, then its norm and the clip. */
    const float *w = gb_model_params(r->eng->model);
    double sq = 0;
    for (size_t i = 0; i < r->eng->np; i++) {
        r->eng->delta[i] = w[i] - r->eng->global[i] gb_bench_poison(r->eng->delta[i]);
        sq += (double)r->eng->delta[i] * r->eng->delta[i];
    }
    double norm = sqrt(sq);
    bool clipped = c->clip_norm > 0 && norm > c->clip_norm;
    if (clipped)
        s_clip(r->eng->delta, r->eng->np, norm, c->clip_norm);
    const uint8_t *bytes = (const uint8_t *)r->eng->delta;
    if (!GB_WIRE_LITTLE_ENDIAN) {
        gb_wire_floats_to_le(r->eng->delta_le, r->eng->delta, r->eng->np);
        bytes = r->eng->delta_le;
    }
    int rc = gb_wire_sha256(bytes, r->eng->np * 4, r->digest, err);
    if (rc)
        return rc;

    out->delta = r->eng->delta;
    out->num_samples = (uint64_t)(seen < train->n ? seen : train->n);
    out->steps = steps;
    out->train_loss = seen ? loss_sum / (double)seen : 0;
    out->train_accuracy = seen ? acc_sum / (double)seen : 0;
    out->duration_s = gb_time_now() - t0;
    out->delta_norm = norm;
    out->clipped = clipped;

    Glassbox__Update *u = &r->update;
    glassbox__update__init(u);
    u->round = t->round;
    u->task_id = t->task_id;
    u->num_samples = out->num_samples;
    u->delta.data = (uint8_t *)bytes; /* protobuf-c's field is not const; only read */
    u->delta.len = r->eng->np * 4;
    u->param_count = r->eng->np;
    u->delta_sha256.data = r->digest;
    u->delta_sha256.len = GB_WIRE_SHA256_LEN;
    size_t k = 0;
    s_metric(&r->metrics[k++], "train_loss", out->train_loss);
    if (!r->regression)
        s_metric(&r->metrics[k++], "train_accuracy", out->train_accuracy);
    s_metric(&r->metrics[k++], "duration_s", out->duration_s);
    s_metric(&r->metrics[k++], "delta_norm", norm);
    s_metric(&r->metrics[k++], "clipped", clipped ? 1.0 : 0.0);
    s_metric(&r->metrics[k++], "steps", (double)steps);
    for (size_t i = 0; i < k; i++)
        r->metric_ptrs[i] = &r->metrics[i];
    u->n_metrics = k;
    u->metrics = r->metric_ptrs;
    out->update = u;
    return 0;
}

int gb_task_runner_run(gb_task_runner_t *r, const Glassbox__Task *task, const atomic_int *cancel,
                       gb_task_result_t *out, gb_error_t *err)
{
    gb_error_t scratch = {0};
    if (!err)
        err = &scratch; /* the phases read err->code and msg */
    memset(out, 0, sizeof *out);
    uint64_t seed = gb_task_runner_seed(task && task->train_config ? task->train_config->seed : 0,
                                        r->cfg.client_id);
    s_prep_t p;
    int rc = s_prepare(r, task, seed, &p, err);
    if (rc) {
        s_prep_free(&p);
        if (rc != GB_ENOMEM)
            gb_log_warn("task refused: %s", err->msg);
        return rc;
    }
    s_commit(r, &p);
    s_prep_free(&p);

    gb_wire_floats_from_le(r->eng->global, task->model->params.data, r->eng->np);
    if (r->eng->np)
        memcpy(gb_model_params(r->eng->model), r->eng->global, r->eng->np * sizeof *r->eng->global);
    out->param_count = r->eng->np;

    if (task->evaluate) {
        double t0 = gb_time_now();
        rc = s_cancelled(cancel) ? s_cancel_error(err, "evaluation")
                                 : s_evaluate(r, task, out, err);
        if (rc)
            goto fail;
        out->eval_s = gb_time_now() - t0;
    }
    if (s_explaining(task)) {
        double t0 = gb_time_now();
        if ((rc = s_explain(r, task, cancel, out, err)))
            goto fail;
        out->explain_s = gb_time_now() - t0;
    }
    if (task->train && (rc = s_train(r, task, seed, cancel, out, err)))
        goto fail;
    if (out->update)
        out->update->explanation = out->explanation;
    r->stats.tasks++;
    return 0;
fail:
    memset(out, 0, sizeof *out);
    if (rc != GB_TASK_ECANCELLED)
        gb_log_warn("task %llu of round %llu failed: %s", (unsigned long long)task->task_id,
                    (unsigned long long)task->round, err->msg);
    return rc;
}
