/* Robust z-scores per round and a window per client (see client_flags.h).
 * Clients are few enough per round (the selected ones) that a linear name
 * lookup per evidence costs less than the round's aggregation of one update;
 * the table grows by doubling and is bounded by max_clients. */
#include "client_flags.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define S_NAME_MAX 64
#define S_WINDOW_MAX 64
#define S_MIN_CLIENTS 3 /* clients a signal needs before it has a z */

typedef struct {
    char name[S_NAME_MAX + 1];
    int seen;                  /* rounds taken part in, capped at the window */
    int head;                  /* next slot of the ring */
    double maxz[S_WINDOW_MAX]; /* per remembered round: its largest z (>= 0) */
    bool out[S_WINDOW_MAX];    /* per remembered round: it stood out */
    bool flagged;              /* the verdict of its last round */
} s_client_t;

struct gb_flagger {
    gb_flag_cfg_t c;
    s_client_t *clients;
    size_t n, cap;
    uint64_t last_round;
    bool any_round;
};

static const char *const s_names[GB_FLAG_SIGNALS] = {"explanation", "update", "norm",
                                                     "disagreement", "lesson"};

const char *gb_flag_signal_name(gb_flag_signal_t s)
{
    return (unsigned)s < GB_FLAG_SIGNALS ? s_names[s] : "unknown";
}

gb_flag_cfg_t gb_flag_defaults(const gb_flag_cfg_t *cfg)
{
    gb_flag_cfg_t c = cfg ? *cfg : (gb_flag_cfg_t){0};
    if (!c.window)
        c.window = 5;
    if (!c.needed)
        c.needed = 2;
    if (c.z == 0)
        c.z = 3.5;
    if (c.z_now == 0)
        c.z_now = 3 * c.z;
    if (c.min_spread == 0)
        c.min_spread = 0.05;
    if (c.lesson_z == 0)
        c.lesson_z = 6.0;
    if (!c.max_clients)
        c.max_clients = 100000;
    return c;
}

gb_flagger_t *gb_flagger_new(const gb_flag_cfg_t *cfg, gb_error_t *err)
{
    gb_flag_cfg_t c = gb_flag_defaults(cfg);
    if (c.window < 1 || c.window > S_WINDOW_MAX) {
        gb_error_set(err, GB_EINVAL, "flags: window %d is outside 1..%d", c.window, S_WINDOW_MAX);
        return NULL;
    }
    if (c.needed < 1 || c.needed > c.window) {
        gb_error_set(err, GB_EINVAL, "flags: needed %d is outside 1..%d (the window)", c.needed,
                     c.window);
        return NULL;
    }
    if (!(c.z > 0) || !isfinite(c.z) || !(c.z_now >= c.z) || !isfinite(c.z_now) ||
        !(c.min_spread > 0) || !isfinite(c.min_spread) || !(c.lesson_z > 0) ||
        !isfinite(c.lesson_z)) {
        gb_error_set(err, GB_EINVAL,
                     "flags: z %g, z_now %g, min_spread %g and lesson_z %g must be finite, "
                     "z_now >= z > 0, lesson_z > 0", c.z, c.z_now, c.min_spread, c.lesson_z);
        return NULL;
    }
    gb_flagger_t *f = gb_calloc(1, sizeof *f);
    if (!f) {
        gb_error_set(err, GB_ENOMEM, "flags: out of memory");
        return NULL;
    }
    f->c = c;
    return f;
}

void gb_flagger_destroy(gb_flagger_t **fp)
{
    if (!fp || !*fp)
        return;
    gb_free((*fp)->clients);
    gb_free(*fp);
    *fp = NULL;
}

size_t gb_flagger_clients(const gb_flagger_t *f)
{
    return f ? f->n : 0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* z of every client for one signal (get(ev) its value), into z[i * S + sig]. */
static int s_zscores(const gb_flagger_t *f, const gb_flag_evidence_t *ev, size_t n, int sig,
                     double *z, double *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double x = sig == GB_FLAG_EXPLANATION ? ev[i].explanation
                   : sig == GB_FLAG_UPDATE    ? ev[i].update
                                              : ev[i].norm;
        if (isfinite(x))
            scratch[m++] = x;
    }
    if (m < S_MIN_CLIENTS) {
        for (size_t i = 0; i < n; i++)
            z[i * GB_FLAG_SIGNALS + sig] = NAN;
        return 0;
    }
    double med = s_median(scratch, m);
    for (size_t j = 0; j < m; j++)
        scratch[j] = fabs(scratch[j] - med);
    double mad = s_median(scratch, m);
    double s = fmax(1.4826 * mad, f->c.min_spread * fabs(med));
    if (!(s > 0))
        s = 1e-12; /* every value equal to a median of 0: any other stands out */
    for (size_t i = 0; i < n; i++) {
        double x = sig == GB_FLAG_EXPLANATION ? ev[i].explanation
                   : sig == GB_FLAG_UPDATE    ? ev[i].update
                                              : ev[i].norm;
        z[i * GB_FLAG_SIGNALS + sig] = isfinite(x) ? (x - med) / s : NAN;
    }
    return 1;
}

static s_client_t *s_find(gb_flagger_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->clients[i].name, name) == 0)
            return &f->clients[i];
    return NULL;
}

static int s_check(const gb_flagger_t *f, uint64_t round, const gb_flag_evidence_t *ev,
                   size_t n, gb_error_t *err)
{
    if (f->any_round && round <= f->last_round)
        return gb_error_set(err, GB_EINVAL, "flags: round %llu is not after round %llu",
                            (unsigned long long)round, (unsigned long long)f->last_round);
    for (size_t i = 0; i < n; i++) {
        const char *a = ev[i].client;
        if (!a || !*a || strlen(a) > S_NAME_MAX)
            return gb_error_set(err, GB_EINVAL,
                                "flags: evidence %zu has no client name or one longer than %d "
                                "bytes", i, S_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(a, ev[j].client) == 0)
                return gb_error_set(err, GB_EINVAL, "flags: client '%s' twice in round %llu",
                                    a, (unsigned long long)round);
    }
    return 0;
}

/* Makes room for every new client of the round before anything changes. */
static int s_reserve(gb_flagger_t *f, const gb_flag_evidence_t *ev, size_t n, gb_error_t *err)
{
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++)
        fresh += !s_find(f, ev[i].client);
    if (f->n + fresh > f->c.max_clients)
        return gb_error_set(err, GB_ERANGE,
                            "flags: %zu new clients would make %zu, more than the %zu remembered",
                            fresh, f->n + fresh, f->c.max_clients);
    if (f->n + fresh <= f->cap)
        return 0;
    size_t cap = f->cap ? f->cap : 16;
    while (cap < f->n + fresh)
        cap *= 2;
    s_client_t *grown = gb_realloc(f->clients, cap * sizeof *grown);
    if (!grown)
        return gb_error_set(err, GB_ENOMEM, "flags: out of memory for %zu clients", cap);
    f->clients = grown;
    f->cap = cap;
    return 0;
}

int gb_flagger_round(gb_flagger_t *f, uint64_t round, const gb_flag_evidence_t *ev, size_t n,
                     gb_flag_verdict_t *out, gb_error_t *err)
{
    int rc = s_check(f, round, ev, n, err);
    if (rc || (rc = s_reserve(f, ev, n, err)))
        return rc;
    double *z = gb_malloc((n ? n : 1) * GB_FLAG_SIGNALS * sizeof *z);
    double *scratch = gb_malloc((n ? n : 1) * sizeof *scratch);
    if (!z || !scratch) {
        gb_free(z);
        gb_free(scratch);
        return gb_error_set(err, GB_ENOMEM, "flags: out of memory for %zu clients", n);
    }
    for (int sig = GB_FLAG_EXPLANATION; sig <= GB_FLAG_NORM; sig++)
        s_zscores(f, ev, n, sig, z, scratch);
    for (size_t i = 0; i < n; i++) {
        double *zi = z + i * GB_FLAG_SIGNALS;
        /* the difference of two unit z-scores has a spread of sqrt(2) */
        zi[GB_FLAG_DISAGREE] = isfinite(zi[GB_FLAG_UPDATE]) && isfinite(zi[GB_FLAG_EXPLANATION])
                                   ? fabs(zi[GB_FLAG_UPDATE] - zi[GB_FLAG_EXPLANATION]) / M_SQRT2
                                   : NAN;
        zi[GB_FLAG_LESSON] = isfinite(ev[i].lesson) ? ev[i].lesson : NAN;
        gb_flag_verdict_t *v = &out[i];
        memset(v, 0, sizeof *v);
        double top = 0.0;
        v->strongest = GB_FLAG_UPDATE;
        for (int sig = 0; sig < GB_FLAG_SIGNALS; sig++) {
            v->z[sig] = zi[sig];
            /* the lesson on the others' scale: lesson_z counts as z */
            double on_scale = sig == GB_FLAG_LESSON ? zi[sig] * f->c.z / f->c.lesson_z : zi[sig];
            if (isfinite(on_scale) && on_scale > top) {
                top = on_scale;
                v->strongest = (gb_flag_signal_t)sig;
            }
        }
        v->stood_out = top >= f->c.z;
        s_client_t *c = s_find(f, ev[i].client);
        if (!c) {
            c = &f->clients[f->n++];
            memset(c, 0, sizeof *c);
            memcpy(c->name, ev[i].client, strlen(ev[i].client) + 1);
        }
        c->maxz[c->head] = top;
        c->out[c->head] = v->stood_out;
        c->head = (c->head + 1) % f->c.window;
        if (c->seen < f->c.window)
            c->seen++;
        double sum = 0.0;
        for (int k = 0; k < c->seen; k++) {
            sum += c->maxz[k];
            v->rounds_out += c->out[k];
        }
        v->rounds_seen = c->seen;
        v->score = sum / c->seen;
        v->flagged = v->rounds_out >= f->c.needed || top >= f->c.z_now;
        c->flagged = v->flagged;
    }
    gb_free(z);
    gb_free(scratch);
    f->last_round = round;
    f->any_round = true;
    return 0;
}

bool gb_flagger_is_flagged(const gb_flagger_t *f, const char *client)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->clients[i].name, client) == 0)
            return f->clients[i].flagged;
    return false;
}
