/* Server optimisers (see server_optim.h for the rules, the defaults and the
 * state layout).
 *
 * A step is two passes over the parameters. The first computes every new m,
 * v and x and only checks that each is a finite float32 and that the inputs
 * are finite; the second computes them again, identically, and stores them.
 * Recomputing is cheaper than a scratch copy of the whole state, and it is
 * what lets a refused step leave the model and the optimiser exactly as they
 * were: the coordinator can then drop the round and carry on. m and v live in
 * one allocation (m then v), the layout get_state and set_state copy. */
#include "server_optim.h"
#include "util/alloc.h"
#include "util/log.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct gb_server_optim {
    gb_server_optim_cfg_t cfg; /* validated configuration */
    size_t n;                  /* parameters */
    uint64_t steps;            /* steps taken */
    float *state;              /* adaptive kinds: m[n] then v[n]; NULL for sgd */
};

static const char *const s_names[] = {"sgd", "fedadam", "fedyogi", "fedadagrad"};

const char *gb_server_optim_kind_name(gb_server_optim_kind_t kind)
{
    return (unsigned)kind < sizeof s_names / sizeof *s_names ? s_names[kind] : "?";
}

gb_server_optim_cfg_t gb_server_optim_defaults(gb_server_optim_kind_t kind)
{
    gb_server_optim_cfg_t c = {.kind = kind, .lr = 1.0, .beta1 = 0.9, .beta2 = 0.99, .tau = 1e-3};
    if (kind == GB_SERVER_FEDADAM || kind == GB_SERVER_FEDADAGRAD)
        c.lr = 0.1;
    else if (kind == GB_SERVER_FEDYOGI)
        c.lr = 0.01;
    return c;
}

static bool s_adaptive(gb_server_optim_kind_t kind)
{
    return kind != GB_SERVER_SGD;
}

static int s_check(const gb_server_optim_cfg_t *c, gb_error_t *err)
{
    const char *name = gb_server_optim_kind_name(c->kind);
    if ((unsigned)c->kind > GB_SERVER_FEDADAGRAD)
        return gb_error_set(err, GB_EINVAL, "server optimiser: unknown kind %d", (int)c->kind);
    if (!isfinite(c->lr) || c->lr <= 0)
        return gb_error_set(err, GB_EINVAL, "%s: lr %g must be a finite number > 0", name, c->lr);
    if (!s_adaptive(c->kind))
        return 0;
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return gb_error_set(err, GB_EINVAL, "%s: beta1 %g must be in [0, 1)", name, c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return gb_error_set(err, GB_EINVAL, "%s: beta2 %g must be in [0, 1)", name, c->beta2);
    if (!isfinite(c->tau) || c->tau <= 0)
        return gb_error_set(err, GB_EINVAL, "%s: tau %g must be a finite number > 0", name, c->tau);
    return 0;
}

int gb_server_optim_parse(const char *spec, gb_server_optim_cfg_t *out, gb_error_t *err)
{
    if (!spec || !*spec)
        return gb_error_set(err, GB_EINVAL,
                            "server optimiser: empty spec; expected sgd, fedadam, fedyogi or "
                            "fedadagrad");
    size_t len = strnlen(spec, GB_SERVER_OPTIM_SPEC_MAX + 1);
    if (len > GB_SERVER_OPTIM_SPEC_MAX)
        return gb_error_set(err, GB_EINVAL, "server optimiser: spec longer than %d characters",
                            GB_SERVER_OPTIM_SPEC_MAX);
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : len;
    gb_server_optim_cfg_t c;
    size_t k = 0;
    for (; k < sizeof s_names / sizeof *s_names; k++)
        if (strlen(s_names[k]) == nlen && memcmp(spec, s_names[k], nlen) == 0)
            break;
    if (k == sizeof s_names / sizeof *s_names)
        return gb_error_set(err, GB_EINVAL,
                            "server optimiser '%.*s': unknown; expected sgd, fedadam, fedyogi or "
                            "fedadagrad",
                            (int)nlen, spec);
    c = gb_server_optim_defaults((gb_server_optim_kind_t)k);
    const char *name = s_names[k];
    if (colon) {
        const char *p = colon + 1;
        if (!*p)
            return gb_error_set(err, GB_EINVAL, "%s: nothing after ':'; expected key=value", name);
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t ilen = comma ? (size_t)(comma - p) : strlen(p);
            const char *eq = memchr(p, '=', ilen);
            if (!eq)
                return gb_error_set(err, GB_EINVAL, "%s: '%.*s' is not key=value", name, (int)ilen,
                                    p);
            size_t klen = (size_t)(eq - p);
            double *field = NULL;
            if (klen == 2 && memcmp(p, "lr", 2) == 0)
                field = &c.lr;
            else if (s_adaptive(c.kind) && klen == 5 && memcmp(p, "beta1", 5) == 0)
                field = &c.beta1;
            else if (s_adaptive(c.kind) && klen == 5 && memcmp(p, "beta2", 5) == 0)
                field = &c.beta2;
            else if (s_adaptive(c.kind) && klen == 3 && memcmp(p, "tau", 3) == 0)
                field = &c.tau;
            if (!field)
                return gb_error_set(err, GB_EINVAL, "%s: unknown option '%.*s'%s", name,
                                    (int)klen, p,
                                    s_adaptive(c.kind) ? "; expected lr, beta1, beta2 or tau"
                                                       : "; sgd takes only lr");
            /* The value: a plain decimal number, nothing before or after it. */
            const char *v = eq + 1;
            size_t vlen = ilen - klen - 1;
            char buf[64];
            char *end = NULL;
            bool ok = vlen > 0 && vlen < sizeof buf &&
                      (*v == '-' || *v == '+' || *v == '.' || (*v >= '0' && *v <= '9'));
            if (ok) {
                memcpy(buf, v, vlen);
                buf[vlen] = '\0';
                *field = strtod(buf, &end);
                ok = end && end != buf && *end == '\0';
            }
            if (!ok)
                return gb_error_set(err, GB_EINVAL, "%s: %.*s value '%.*s' is not a number", name,
                                    (int)klen, p, (int)vlen, v);
            p = comma ? comma + 1 : p + ilen;
            if (comma && !*p)
                return gb_error_set(err, GB_EINVAL, "%s: trailing ','", name);
        }
    }
    int rc = s_check(&c, err);
    if (rc)
        return rc;
    *out = c;
    return 0;
}

gb_server_optim_t *gb_server_optim_new(const gb_server_optim_cfg_t *cfg, size_t param_count,
                                       gb_error_t *err)
{
    if (!cfg) {
        gb_error_set(err, GB_EINVAL, "server optimiser: no configuration");
        return NULL;
    }
    if (s_check(cfg, err))
        return NULL;
    if (param_count < 1 || param_count > GB_SERVER_OPTIM_MAX_PARAMS) {
        gb_error_set(err, GB_EINVAL, "%s: param_count %zu outside 1..%zu",
                     gb_server_optim_kind_name(cfg->kind), param_count, GB_SERVER_OPTIM_MAX_PARAMS);
        return NULL;
    }
    gb_server_optim_t *opt = gb_calloc(1, sizeof *opt);
    if (!opt) {
        gb_error_set(err, GB_ENOMEM, "server optimiser: out of memory");
        return NULL;
    }
    opt->cfg = *cfg;
    opt->n = param_count;
    if (s_adaptive(cfg->kind)) {
        opt->state = gb_alloc_aligned(2 * param_count * sizeof *opt->state);
        if (!opt->state) {
            gb_error_set(err, GB_ENOMEM, "%s: out of memory for the state of %zu parameters",
                         gb_server_optim_kind_name(cfg->kind), param_count);
            gb_free(opt);
            return NULL;
        }
        float v0 = (float)(cfg->tau * cfg->tau); /* m = 0 from the zeroed allocation */
        for (size_t i = 0; i < param_count; i++)
            opt->state[param_count + i] = v0;
    }
    return opt;
}

void gb_server_optim_destroy(gb_server_optim_t **opt)
{
    if (!opt || !*opt)
        return;
    gb_free_aligned((*opt)->state);
    gb_free(*opt);
    *opt = NULL;
}

/* One parameter's step, in double, from the stored values; the results are
 * rounded to float32 as they will be stored. Both passes call this, so the
 * checked values are the stored ones. */
static inline void s_one(const gb_server_optim_cfg_t *c, float x, float d, float m, float v,
                         float *x_out, float *m_out, float *v_out)
{
    double dd = d;
    if (c->kind == GB_SERVER_SGD) {
        *x_out = (float)((double)x + c->lr * dd);
        return;
    }
    double d2 = dd * dd;
    double mn = c->beta1 * (double)m + (1 - c->beta1) * dd;
    double vn;
    switch (c->kind) {
    case GB_SERVER_FEDADAM:
        vn = c->beta2 * (double)v + (1 - c->beta2) * d2;
        break;
    case GB_SERVER_FEDYOGI: {
        double diff = (double)v - d2;
        double sign = (diff > 0) - (diff < 0);
        vn = (double)v - (1 - c->beta2) * d2 * sign;
        break;
    }
    default: /* fedadagrad */
        vn = (double)v + d2;
        break;
    }
    float mf = (float)mn, vf = (float)vn;
    *m_out = mf;
    *v_out = vf;
    *x_out = (float)((double)x + c->lr * (double)mf / (sqrt((double)vf) + c->tau));
}

int gb_server_optim_step(gb_server_optim_t *opt, float *params, const float *delta,
                         size_t param_count, gb_error_t *err)
{
    const char *name = gb_server_optim_kind_name(opt->cfg.kind);
    if (!params || !delta || param_count != opt->n)
        return gb_error_set(err, GB_ESHAPE, "%s: step over %zu parameters, expected %zu", name,
                            param_count, opt->n);
    size_t n = opt->n;
    float *m = opt->state, *v = opt->state ? opt->state + n : NULL;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(delta[i]))
            return gb_error_warn(err, GB_ERANGE, "%s: delta value %zu is not finite", name, i);
        if (!isfinite(params[i]))
            return gb_error_warn(err, GB_ERANGE, "%s: parameter %zu is not finite", name, i);
        float x, mo = 0, vo = 0;
        s_one(&opt->cfg, params[i], delta[i], m ? m[i] : 0, v ? v[i] : 0, &x, &mo, &vo);
        if (!isfinite(x) || !isfinite(mo) || !isfinite(vo))
            return gb_error_warn(err, GB_ERANGE,
                                 "%s: step %llu would make parameter %zu or its state overflow "
                                 "float32",
                                 name, (unsigned long long)opt->steps + 1, i);
    }
    for (size_t i = 0; i < n; i++) {
        float mo = 0, vo = 0;
        s_one(&opt->cfg, params[i], delta[i], m ? m[i] : 0, v ? v[i] : 0, &params[i], &mo, &vo);
        if (m) {
            m[i] = mo;
            v[i] = vo;
        }
    }
    opt->steps++;
    return 0;
}

uint64_t gb_server_optim_steps(const gb_server_optim_t *opt)
{
    return opt->steps;
}

gb_server_optim_cfg_t gb_server_optim_config(const gb_server_optim_t *opt)
{
    return opt->cfg;
}

size_t gb_server_optim_param_count(const gb_server_optim_t *opt)
{
    return opt->n;
}

size_t gb_server_optim_state_len(const gb_server_optim_t *opt)
{
    return opt->state ? 2 * opt->n : 0;
}

int gb_server_optim_get_state(const gb_server_optim_t *opt, float *state, size_t len,
                              uint64_t *steps, gb_error_t *err)
{
    size_t want = gb_server_optim_state_len(opt);
    if (len != want || (want && !state))
        return gb_error_set(err, GB_EINVAL, "%s: state has %zu floats, asked for %zu",
                            gb_server_optim_kind_name(opt->cfg.kind), want, len);
    if (want)
        memcpy(state, opt->state, want * sizeof *state);
    if (steps)
        *steps = opt->steps;
    return 0;
}

int gb_server_optim_set_state(gb_server_optim_t *opt, const float *state, size_t len,
                              uint64_t steps, gb_error_t *err)
{
    const char *name = gb_server_optim_kind_name(opt->cfg.kind);
    size_t want = gb_server_optim_state_len(opt);
    if (len != want || (want && !state))
        return gb_error_warn(err, GB_ESHAPE, "%s: saved state has %zu floats, expected %zu", name,
                             len, want);
    for (size_t i = 0; i < want; i++) {
        if (!isfinite(state[i]))
            return gb_error_warn(err, GB_ERANGE, "%s: saved %s value %zu is not finite", name,
                                 i < opt->n ? "m" : "v", i < opt->n ? i : i - opt->n);
        if (i >= opt->n && state[i] < 0)
            return gb_error_warn(err, GB_ERANGE, "%s: saved v value %zu is negative (%g)", name,
                                 i - opt->n, (double)state[i]);
    }
    if (want)
        memcpy(opt->state, state, want * sizeof *state);
    opt->steps = steps;
    return 0;
}
