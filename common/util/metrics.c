/* The process's metrics registry (metrics.h): a table of metric names and a
 * table of series, both fixed in size and searched linearly under one lock.
 * A few hundred series at most are live in a federation (reasons, clients),
 * and the calls are per message, so a scan beats the upkeep of a hash; the
 * fixed tables keep a peer from growing the process through label values. */
#include "util/metrics.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 256

typedef enum { KIND_COUNTER, KIND_GAUGE } kind_t;

typedef struct {
    const char *name;      /* borrowed literal */
    const char *help;      /* borrowed literal */
    const char *label_key; /* borrowed literal, NULL: no label */
    kind_t kind;           /* fixed by the first use */
} metric_t;

typedef struct {
    int metric;                                  /* index into s_metrics */
    bool labelled;                               /* has label_value */
    char label_value[GB_METRICS_MAX_LABEL_VALUE + 1]; /* copied, cut at a UTF-8 boundary */
    double v;                                    /* the value */
} series_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static metric_t s_metrics[MAX_METRICS];
static int s_n_metrics;
static series_t s_series[GB_METRICS_MAX_SERIES];
static int s_n_series;
static uint64_t s_dropped;

static __attribute__((unused)) bool s_valid_name(const char *name)
{
    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_' || name[0] == ':'))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return false;
    return true;
}

/* Copies a peer's label value, cut to the bound without splitting a UTF-8
 * sequence, control bytes replaced so a line stays one line. */
static void s_copy_label(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > GB_METRICS_MAX_LABEL_VALUE) {
        n = GB_METRICS_MAX_LABEL_VALUE;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

static int s_metric_find(const char *name)
{
    for (int i = 0; i < s_n_metrics; i++)
        if (strcmp(s_metrics[i].name, name) == 0)
            return i;
    return -1;
}

static int s_metric_get(const char *name, const char *help, const char *label_key, kind_t kind)
{
    int i = s_metric_find(name);
    if (i >= 0)
        return i;
    if (s_n_metrics == MAX_METRICS)
        return -1;
    s_metrics[s_n_metrics] = (metric_t){name, help ? help : "", label_key, kind};
    return s_n_metrics++;
}

static series_t *s_series_get(int metric, const char *label_value)
{
    char cut[GB_METRICS_MAX_LABEL_VALUE + 1] = "";
    if (label_value)
        s_copy_label(cut, label_value);
    for (int i = 0; i < s_n_series; i++) {
        series_t *s = &s_series[i];
        if (s->metric == metric && s->labelled == (label_value != NULL) &&
            (!label_value || strcmp(s->label_value, cut) == 0))
            return s;
    }
    if (s_n_series == GB_METRICS_MAX_SERIES) {
        s_dropped++;
        return NULL;
    }
    series_t *s = &s_series[s_n_series++];
    s->metric = metric;
    s->labelled = label_value != NULL;
    memcpy(s->label_value, cut, sizeof cut);
    s->v = 0;
    return s;
}

static series_t *s_lookup(const char *name, const char *help, const char *label_key,
                          const char *label_value, kind_t kind)
{
    assert(s_valid_name(name));
    assert((label_key == NULL) == (label_value == NULL));
    assert(!label_key || s_valid_name(label_key));
    int m = s_metric_get(name, help, label_key, kind);
    if (m < 0) {
        s_dropped++;
        return NULL;
    }
    /* A name used with the other type or label is the program's own mistake;
     * counting into it anyway would render a metric Prometheus rejects. */
    assert(s_metrics[m].kind == kind);
    assert((s_metrics[m].label_key == NULL) == (label_key == NULL));
    return s_series_get(m, label_value);
}

void gb_metrics_counter_add(const char *name, const char *help, const char *label_key,
                            const char *label_value, double v)
{
    if (!(v >= 0) || isinf(v))
        return; /* a counter only goes up, by a finite amount */
    pthread_mutex_lock(&s_lock);
    series_t *s = s_lookup(name, help, label_key, label_value, KIND_COUNTER);
    if (s)
        s->v += v;
    pthread_mutex_unlock(&s_lock);
}

void gb_metrics_gauge_set(const char *name, const char *help, const char *label_key,
                          const char *label_value, double v)
{
    pthread_mutex_lock(&s_lock);
    series_t *s = s_lookup(name, help, label_key, label_value, KIND_GAUGE);
    if (s)
        s->v = v;
    pthread_mutex_unlock(&s_lock);
}

void gb_metrics_gauge_clear(const char *name)
{
    pthread_mutex_lock(&s_lock);
    int m = s_metric_find(name);
    if (m >= 0) {
        int kept = 0;
        for (int i = 0; i < s_n_series; i++)
            if (s_series[i].metric != m)
                s_series[kept++] = s_series[i];
        s_n_series = kept;
    }
    pthread_mutex_unlock(&s_lock);
}

double gb_metrics_value(const char *name, const char *label_key, const char *label_value)
{
    (void)label_key;
    double v = 0;
    char cut[GB_METRICS_MAX_LABEL_VALUE + 1] = "";
    if (label_value)
        s_copy_label(cut, label_value);
    pthread_mutex_lock(&s_lock);
    int m = s_metric_find(name);
    for (int i = 0; m >= 0 && i < s_n_series; i++) {
        const series_t *s = &s_series[i];
        if (s->metric == m && s->labelled == (label_value != NULL) &&
            (!label_value || strcmp(s->label_value, cut) == 0)) {
            v = s->v;
            break;
        }
    }
    pthread_mutex_unlock(&s_lock);
    return v;
}

uint64_t gb_metrics_dropped(void)
{
    pthread_mutex_lock(&s_lock);
    uint64_t d = s_dropped;
    pthread_mutex_unlock(&s_lock);
    return d;
}

/* A growing text buffer; a failed append leaves ok false and the rest no-ops. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool ok;
} text_t;

static void s_put(text_t *t, const char *s, size_t n)
{
    if (!t->ok)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->ok = false;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void s_puts(text_t *t, const char *s) { s_put(t, s, strlen(s)); }

/* Escapes as the exposition format asks: in HELP, backslash and newline; in
 * a label value, also the double quote. */
static void s_put_escaped(text_t *t, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            s_puts(t, "\\\\");
        else if (*s == '\n')
            s_puts(t, "\\n");
        else if (quote && *s == '"')
            s_puts(t, "\\\"");
        else
            s_put(t, s, 1);
    }
}

static void s_put_value(text_t *t, double v)
{
    char num[40];
    if (isnan(v))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(v))
        snprintf(num, sizeof num, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(num, sizeof num, "%.17g", v);
    s_puts(t, num);
}

int gb_metrics_render(char **out, size_t *len, gb_error_t *err)
{
    text_t t = {NULL, 0, 0, true};
    s_put(&t, "", 0); /* an empty registry renders as "" */
    pthread_mutex_lock(&s_lock);
    for (int m = 0; m < s_n_metrics; m++) {
        const metric_t *mt = &s_metrics[m];
        s_puts(&t, "# HELP ");
        s_puts(&t, mt->name);
        s_puts(&t, " ");
        s_put_escaped(&t, mt->help, false);
        s_puts(&t, "\n# TYPE ");
        s_puts(&t, mt->name);
        s_puts(&t, mt->kind == KIND_COUNTER ? " counter\n" : " gauge\n");
        for (int i = 0; i < s_n_series; i++) {
            const series_t *s = &s_series[i];
            if (s->metric != m)
                continue;
            s_puts(&t, mt->name);
            if (s->labelled) {
                s_puts(&t, "{");
                s_puts(&t, mt->label_key);
                s_puts(&t, "=\"");
                s_put_escaped(&t, s->label_value, true);
                s_puts(&t, "\"}");
            }
            s_puts(&t, " ");
            s_put_value(&t, s->v);
            s_puts(&t, "\n");
        }
    }
    pthread_mutex_unlock(&s_lock);
    if (!t.ok) {
        free(t.buf);
        return gb_error_set(err, GB_ENOMEM, "metrics: out of memory rendering");
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}

void gb_metrics_reset(void)
{
    pthread_mutex_lock(&s_lock);
    s_n_metrics = 0;
    s_n_series = 0;
    s_dropped = 0;
    pthread_mutex_unlock(&s_lock);
}
