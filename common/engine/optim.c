/* SGD and Adam over flat buffers, following torch.optim's update order so
 * that three steps here match three steps there to float rounding.
 *
 * The update loops are built for each kernel path (engine/vec_dispatch.h), and
 * this file is compiled with -fno-math-errno (CMakeLists.txt): otherwise
 * sqrtf must be able to set errno, which keeps GCC from vectorising the
 * loop at all (Adam was 3% of an LSTM training step, one value at a time).
 * Its argument is a second moment, never negative, so errno would never be
 * set and the bits are the same either way. */
#include "engine/optim.h"
#include "engine/vec_dispatch.h"
#include "util/alloc.h"

#include <math.h>
#include <string.h>

struct gb_optim {
    gb_optim_cfg_t cfg; /* hyper-parameters */
    size_t n;           /* parameters */
    long t;             /* steps taken */
    float *m;           /* SGD momentum buffer or Adam first moment */
    float *v;           /* Adam second moment, NULL for SGD */
};

gb_optim_cfg_t gb_optim_defaults(gb_optim_kind_t kind)
{
    gb_optim_cfg_t cfg = {.kind = kind, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    cfg.lr = kind == GB_OPTIM_ADAM ? 1e-3f : 0.01f;
    return cfg;
}

int gb_optim_parse_kind(const char *name, gb_optim_kind_t *kind)
{
    if (name && strcmp(name, "sgd") == 0)
        *kind = GB_OPTIM_SGD;
    else if (name && strcmp(name, "adam") == 0)
        *kind = GB_OPTIM_ADAM;
    else
        return GB_EINVAL;
    return 0;
}

static int s_check(const gb_optim_cfg_t *c, gb_error_t *err)
{
    if (c->kind != GB_OPTIM_SGD && c->kind != GB_OPTIM_ADAM)
        return gb_error_set(err, GB_EINVAL, "unknown optimiser kind %d", (int)c->kind);
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return gb_error_set(err, GB_EINVAL, "learning rate must be positive and finite, got %g",
                            (double)c->lr);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return gb_error_set(err, GB_EINVAL, "momentum must be in [0, 1), got %g",
                            (double)c->momentum);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return gb_error_set(err, GB_EINVAL, "weight decay must be >= 0, got %g",
                            (double)c->weight_decay);
    if (c->kind == GB_OPTIM_ADAM) {
        if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
            return gb_error_set(err, GB_EINVAL, "Adam betas must be in [0, 1), got %g and %g",
                                (double)c->beta1, (double)c->beta2);
        if (!(c->eps > 0.0f))
            return gb_error_set(err, GB_EINVAL, "Adam eps must be positive, got %g",
                                (double)c->eps);
    }
    return 0;
}

gb_optim_t *gb_optim_new(const gb_optim_cfg_t *cfg, size_t n, gb_error_t *err)
{
    if (s_check(cfg, err))
        return NULL;
    gb_optim_t *o = gb_calloc(1, sizeof *o);
    if (!o)
        goto nomem;
    o->cfg = *cfg;
    o->n = n;
    if (cfg->kind == GB_OPTIM_ADAM || cfg->momentum > 0.0f) {
        o->m = gb_alloc_aligned((n ? n : 1) * sizeof(float));
        if (!o->m)
            goto nomem;
    }
    if (cfg->kind == GB_OPTIM_ADAM) {
        o->v = gb_alloc_aligned((n ? n : 1) * sizeof(float));
        if (!o->v)
            goto nomem;
    }
    return o;
nomem:
    gb_optim_destroy(&o);
    gb_error_set(err, GB_ENOMEM, "out of memory for optimiser state of %zu parameters", n);
    return NULL;
}

void gb_optim_destroy(gb_optim_t **optim)
{
    if (!optim || !*optim)
        return;
    gb_free_aligned((*optim)->m);
    gb_free_aligned((*optim)->v);
    gb_free(*optim);
    *optim = NULL;
}

void gb_optim_reset(gb_optim_t *o)
{
    o->t = 0;
    if (o->m)
        memset(o->m, 0, o->n * sizeof(float));
    if (o->v)
        memset(o->v, 0, o->n * sizeof(float));
}

long gb_optim_steps(const gb_optim_t *o)
{
    return o->t;
}

/* One SGD update of n parameters; buf NULL: no momentum; first: the
 * momentum buffer starts as the gradient itself (PyTorch's rule). */
GB_VEC_FN(static, s_sgd_update, (float *restrict p, const float *restrict g, float *restrict buf, size_t n, float lr, float wd, float mu, int first), (p, g, buf, n, lr, wd, mu, first))
{
    if (!buf) {
        for (size_t i = 0; i < n; i++)
            p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
    if (first) {
        for (size_t i = 0; i < n; i++) {
            buf[i] = g[i] + wd * p[i];
            p[i] -= lr * buf[i];
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        buf[i] = mu * buf[i] + (g[i] + wd * p[i]);
        p[i] -= lr * buf[i];
    }
}

static void s_sgd(gb_optim_t *o, float *restrict p, const float *restrict g)
{
    s_sgd_update(p, g, o->m, o->n, o->cfg.lr, o->cfg.weight_decay, o->cfg.momentum, o->t == 0);
}

/* One Adam update of n parameters: the moments m and v, then p. */
GB_VEC_FN(static, s_adam_update, (float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n, float wd, float b1, float b2, float eps, float step, float bc2_sqrt), (p, g, m, v, n, wd, b1, b2, eps, step, bc2_sqrt))
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step * (m[i] / denom);
    }
}

static void s_adam(gb_optim_t *o, float *restrict p, const float *restrict g)
{
    const float lr = o->cfg.lr, wd = o->cfg.weight_decay;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const double t = (double)(o->t + 1);
    const float bc1 = (float)(1.0 - pow(b1, t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float step = lr / bc1;
    s_adam_update(p, g, o->m, o->v, o->n, wd, b1, b2, eps, step, bc2_sqrt);
}

void gb_optim_step(gb_optim_t *o, float *params, const float *grads)
{
    if (o->cfg.kind == GB_OPTIM_ADAM)
        s_adam(o, params, grads);
    else
        s_sgd(o, params, grads);
    o->t++;
}
