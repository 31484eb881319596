/* The model spec parser. A line is a keyword and positional integers, then
 * optional `name value` pairs; every token is checked, so a typo is an error
 * naming the line rather than a silently different model. */
#include "engine/spec.h"
#include "util/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_TOKENS 16
#define MAX_LINE 512
#define MAX_DIM 1000000

static const char s_preset_lenet[] = "# LeNet for 28x28 grey images\n"
                                     "input 1 28 28\n"
                                     "conv 16 5\n"
                                     "relu\n"
                                     "maxpool 2\n"
                                     "conv 32 5\n"
                                     "relu\n"
                                     "maxpool 2\n"
                                     "flatten\n"
                                     "dense 128\n"
                                     "relu\n"
                                     "dense 10\n";

static const char s_preset_mlp[] = "# two-layer perceptron for 28x28 grey images\n"
                                   "input 1 28 28\n"
                                   "flatten\n"
                                   "dense 128\n"
                                   "relu\n"
                                   "dense 10\n";

static const char s_preset_lstm[] = "# LSTM reading 28x28 grey images row by row\n"
                                    "input 28 28\n"
                                    "lstm 128\n"
                                    "dense 10\n";

const char *gb_spec_preset(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "lenet") == 0)
        return s_preset_lenet;
    if (strcmp(name, "mlp") == 0)
        return s_preset_mlp;
    if (strcmp(name, "lstm") == 0)
        return s_preset_lstm;
    return NULL;
}

static const char *s_kind_names[GB_LAYER_KIND_COUNT] = {
    [GB_LAYER_DENSE] = "dense",     [GB_LAYER_CONV2D] = "conv",
    [GB_LAYER_MAXPOOL2D] = "maxpool", [GB_LAYER_AVGPOOL2D] = "avgpool",
    [GB_LAYER_FLATTEN] = "flatten", [GB_LAYER_RELU] = "relu",
    [GB_LAYER_TANH] = "tanh",       [GB_LAYER_SIGMOID] = "sigmoid",
    [GB_LAYER_DROPOUT] = "dropout", [GB_LAYER_LSTM] = "lstm",
    [GB_LAYER_GRU] = "gru",         [GB_LAYER_EMBEDDING] = "embedding",
};

const char *gb_layer_kind_name(gb_layer_kind_t kind)
{
    if ((unsigned)kind >= GB_LAYER_KIND_COUNT)
        return "?";
    return s_kind_names[kind];
}

typedef struct {
    int n;                      /* tokens on the line */
    char *tok[MAX_TOKENS];      /* pointers into buf */
    char buf[MAX_LINE];         /* the line, NUL-split */
    int line;                   /* 1-based line number */
} s_line_t;

static int s_parse_int(const s_line_t *l, int i, const char *what, int min, int *out,
                       gb_error_t *err)
{
    if (i >= l->n)
        return gb_error_set(err, GB_ESPEC, "spec line %d: %s expects %s", l->line, l->tok[0], what);
    char *end = NULL;
    errno = 0;
    long v = strtol(l->tok[i], &end, 10);
    if (errno || end == l->tok[i] || *end != '\0' || v < min || v > MAX_DIM)
        return gb_error_set(err, GB_ESPEC,
                            "spec line %d: %s: %s must be an integer in %d..%d, got '%s'", l->line,
                            l->tok[0], what, min, MAX_DIM, l->tok[i]);
    *out = (int)v;
    return 0;
}

/* Parses `name value` option pairs from token `first` on; only the names in
 * allowed (NULL-terminated) are accepted. */
static int s_parse_options(const s_line_t *l, int first, const char *const *allowed, int *values,
                           const int *mins, gb_error_t *err)
{
    unsigned seen = 0;
    for (int i = first; i < l->n; i += 2) {
        int which = -1;
        for (int k = 0; allowed[k]; k++)
            if (strcmp(l->tok[i], allowed[k]) == 0)
                which = k;
        if (which < 0) {
            char expected[128] = "";
            size_t used = 0;
            for (int k = 0; allowed[k] && used < sizeof expected; k++)
                used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s",
                                         k ? " or " : "", allowed[k]);
            return gb_error_set(err, GB_ESPEC, "spec line %d: %s: unexpected '%s'%s%s", l->line,
                                l->tok[0], l->tok[i], allowed[0] ? ", expected " : "",
                                allowed[0] ? expected : "");
        }
        if (seen & (1u << which))
            return gb_error_set(err, GB_ESPEC, "spec line %d: %s: '%s' given twice", l->line,
                                l->tok[0], allowed[which]);
        seen |= 1u << which;
        int rc = s_parse_int(l, i + 1, allowed[which], mins[which], &values[which], err);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_expect_count(const s_line_t *l, int min, int max, const char *usage, gb_error_t *err)
{
    if (l->n - 1 < min || l->n - 1 > max)
        return gb_error_set(err, GB_ESPEC, "spec line %d: %s expects %s, got %d argument%s",
                            l->line, l->tok[0], usage, l->n - 1, l->n == 2 ? "" : "s");
    return 0;
}

static int s_parse_layer(const s_line_t *l, gb_layer_cfg_t *cfg, gb_error_t *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->line = l->line;
    cfg->stride = 1;
    const char *kw = l->tok[0];
    int kind = -1;
    for (int k = 0; k < GB_LAYER_KIND_COUNT; k++)
        if (strcmp(kw, s_kind_names[k]) == 0)
            kind = k;
    if (kind < 0)
        return gb_error_set(err, GB_ESPEC,
                            "spec line %d: unknown layer '%s', expected one of conv, maxpool, "
                            "avgpool, dense, flatten, relu, tanh, sigmoid, dropout, lstm, gru, "
                            "embedding",
                            l->line, kw);
    cfg->kind = (gb_layer_kind_t)kind;
    int rc = 0;
    switch (cfg->kind) {
    case GB_LAYER_DENSE:
        if ((rc = s_expect_count(l, 1, 1, "units (e.g. 'dense 128')", err)))
            return rc;
        return s_parse_int(l, 1, "units", 1, &cfg->units, err);
    case GB_LAYER_CONV2D: {
        if (l->n < 3)
            return gb_error_set(err, GB_ESPEC,
                                "spec line %d: conv expects out_channels kernel [stride S] [pad P]",
                                l->line);
        if ((rc = s_parse_int(l, 1, "out_channels", 1, &cfg->units, err)) ||
            (rc = s_parse_int(l, 2, "kernel", 1, &cfg->kernel, err)))
            return rc;
        static const char *const names[] = {"stride", "pad", NULL};
        static const int mins[] = {1, 0};
        int values[2] = {1, 0};
        if ((l->n - 3) % 2)
            return gb_error_set(err, GB_ESPEC,
                                "spec line %d: conv: option '%s' needs a value", l->line,
                                l->tok[l->n - 1]);
        if ((rc = s_parse_options(l, 3, names, values, mins, err)))
            return rc;
        cfg->stride = values[0];
        cfg->pad = values[1];
        return 0;
    }
    case GB_LAYER_MAXPOOL2D:
    case GB_LAYER_AVGPOOL2D: {
        if (l->n < 2)
            return gb_error_set(err, GB_ESPEC, "spec line %d: %s expects kernel [stride S]",
                                l->line, kw);
        if ((rc = s_parse_int(l, 1, "kernel", 1, &cfg->kernel, err)))
            return rc;
        static const char *const names[] = {"stride", NULL};
        static const int mins[] = {1};
        int values[1] = {cfg->kernel};
        if ((l->n - 2) % 2)
            return gb_error_set(err, GB_ESPEC, "spec line %d: %s: option '%s' needs a value",
                                l->line, kw, l->tok[l->n - 1]);
        if ((rc = s_parse_options(l, 2, names, values, mins, err)))
            return rc;
        cfg->stride = values[0];
        return 0;
    }
    case GB_LAYER_LSTM:
    case GB_LAYER_GRU:
        if (l->n < 2 || l->n > 3)
            return gb_error_set(err, GB_ESPEC, "spec line %d: %s expects hidden [sequence], got %d "
                                               "argument%s",
                                l->line, kw, l->n - 1, l->n == 2 ? "" : "s");
        if ((rc = s_parse_int(l, 1, "hidden", 1, &cfg->units, err)))
            return rc;
        if (l->n == 3) {
            if (strcmp(l->tok[2], "sequence") != 0)
                return gb_error_set(err, GB_ESPEC,
                                    "spec line %d: %s: unexpected '%s', expected 'sequence'",
                                    l->line, kw, l->tok[2]);
            cfg->sequence = 1;
        }
        return 0;
    case GB_LAYER_EMBEDDING:
        if ((rc = s_expect_count(l, 2, 2, "vocabulary dimension (e.g. 'embedding 1000 32')",
                                 err)))
            return rc;
        if ((rc = s_parse_int(l, 1, "vocabulary", 1, &cfg->vocab, err)) ||
            (rc = s_parse_int(l, 2, "dimension", 1, &cfg->units, err)))
            return rc;
        return 0;
    case GB_LAYER_DROPOUT: {
        if ((rc = s_expect_count(l, 1, 1, "a probability (e.g. 'dropout 0.5')", err)))
            return rc;
        char *end = NULL;
        errno = 0;
        double p = strtod(l->tok[1], &end);
        if (errno || end == l->tok[1] || *end || !(p >= 0.0 && p < 1.0))
            return gb_error_set(err, GB_ESPEC,
                                "spec line %d: dropout probability must be in [0, 1), got '%s'",
                                l->line, l->tok[1]);
        cfg->rate = (float)p;
        return 0;
    }
    default:
        return s_expect_count(l, 0, 0, "no arguments", err);
    }
}

/* Splits one line (without its newline) into tokens; strips a # comment. */
static int s_tokenize(const char *start, size_t len, int line, s_line_t *l, gb_error_t *err)
{
    if (len >= MAX_LINE)
        return gb_error_set(err, GB_ESPEC, "spec line %d: longer than %d characters", line,
                            MAX_LINE - 1);
    memcpy(l->buf, start, len);
    l->buf[len] = '\0';
    char *hash = strchr(l->buf, '#');
    if (hash)
        *hash = '\0';
    l->n = 0;
    l->line = line;
    char *p = l->buf;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (l->n == MAX_TOKENS)
            return gb_error_set(err, GB_ESPEC, "spec line %d: too many words", line);
        l->tok[l->n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return 0;
}

static int s_parse_input(const s_line_t *l, gb_shape_t *shape, gb_error_t *err)
{
    if (strcmp(l->tok[0], "input") != 0)
        return gb_error_set(err, GB_ESPEC,
                            "spec line %d: expected 'input C H W', 'input T F' or 'input N' "
                            "first, got '%s'",
                            l->line, l->tok[0]);
    if (l->n < 2 || l->n > 4)
        return gb_error_set(err, GB_ESPEC,
                            "spec line %d: input expects 1 to 3 dimensions (C H W, T F or N)",
                            l->line);
    shape->rank = l->n - 1;
    for (int i = 0; i < GB_SHAPE_MAX_RANK; i++)
        shape->dim[i] = 1;
    for (int i = 1; i < l->n; i++) {
        int rc = s_parse_int(l, i, "a dimension", 1, &shape->dim[i - 1], err);
        if (rc)
            return rc;
    }
    if (gb_shape_size(shape) > (size_t)MAX_DIM * 16)
        return gb_error_set(err, GB_ESPEC, "spec line %d: input too large", l->line);
    return 0;
}

gb_spec_t *gb_spec_parse(const char *text, gb_error_t *err)
{
    if (!text) {
        gb_error_set(err, GB_EINVAL, "spec is NULL");
        return NULL;
    }
    const char *preset = gb_spec_preset(text);
    if (preset)
        text = preset;
    gb_spec_t *spec = gb_calloc(1, sizeof *spec);
    s_line_t *l = gb_malloc(sizeof *l);
    size_t text_len = strlen(text);
    if (spec)
        spec->text = gb_malloc(text_len + 1);
    if (!spec || !l || !spec->text) {
        gb_error_set(err, GB_ENOMEM, "out of memory parsing spec");
        goto fail;
    }
    memcpy(spec->text, text, text_len + 1);
    int cap = 0, have_input = 0, line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (s_tokenize(p, len, line, l, err))
            goto fail;
        p += len + (nl ? 1 : 0);
        if (l->n == 0)
            continue;
        if (!have_input) {
            if (s_parse_input(l, &spec->input, err))
                goto fail;
            have_input = 1;
            continue;
        }
        if (strcmp(l->tok[0], "input") == 0) {
            gb_error_set(err, GB_ESPEC, "spec line %d: a second 'input' line", line);
            goto fail;
        }
        if (spec->n_layers == cap) {
            int ncap = cap ? cap * 2 : 16;
            if (ncap > 4096) {
                gb_error_set(err, GB_ESPEC, "spec line %d: more than 4096 layers", line);
                goto fail;
            }
            gb_layer_cfg_t *grown = gb_realloc(spec->layers, (size_t)ncap * sizeof *grown);
            if (!grown) {
                gb_error_set(err, GB_ENOMEM, "out of memory parsing spec");
                goto fail;
            }
            spec->layers = grown;
            cap = ncap;
        }
        if (s_parse_layer(l, &spec->layers[spec->n_layers], err))
            goto fail;
        if (spec->layers[spec->n_layers].kind == GB_LAYER_EMBEDDING && spec->n_layers > 0) {
            gb_error_set(err, GB_ESPEC,
                         "spec line %d: embedding must be the first layer (it reads token ids)",
                         line);
            goto fail;
        }
        spec->n_layers++;
    }
    if (!have_input) {
        gb_error_set(err, GB_ESPEC, "spec: empty, expected an 'input' line and layers");
        goto fail;
    }
    if (spec->n_layers == 0) {
        gb_error_set(err, GB_ESPEC, "spec: no layers after the 'input' line");
        goto fail;
    }
    gb_free(l);
    return spec;
fail:
    gb_free(l);
    gb_spec_destroy(&spec);
    return NULL;
}

void gb_spec_destroy(gb_spec_t **spec)
{
    if (!spec || !*spec)
        return;
    gb_free((*spec)->layers);
    gb_free((*spec)->text);
    gb_free(*spec);
    *spec = NULL;
}
