/* Table-driven option parsing (see args.h). Accepts `--name value` and
 * `--name=value`; never uses atoi: every number is range-checked with strto*. */
#include "util/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const gb_arg_t *gb_args_find(const gb_arg_t *opts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int s_choice_ok(const char *choices, const char *value)
{
    size_t len = strlen(value);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return 1;
        p += n + (bar ? 1 : 0);
    }
    return 0;
}

static int s_set_value(gb_arg_t *o, const char *v, gb_error_t *err)
{
    char *end = NULL;
    errno = 0;
    /* strto* skip leading blanks, which would let " -1" past the sign check. */
    if (o->kind != GB_ARG_STRING && o->kind != GB_ARG_CHOICE && isspace((unsigned char)v[0]))
        return gb_error_set(err, GB_EUSAGE, "%s: unexpected blank before '%s'", o->name, v + 1);
    switch (o->kind) {
    case GB_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < (long)o->min || x > (long)o->max)
            return gb_error_set(err, GB_EUSAGE, "%s: expected an integer in %.0f..%.0f, got '%s'",
                                o->name, o->min, o->max, v);
        *(int *)o->dest = (int)x;
        return 0;
    }
    case GB_ARG_U64: {
        if (v[0] == '-')
            return gb_error_set(err, GB_EUSAGE, "%s: expected a non-negative integer, got '%s'",
                                o->name, v);
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a non-negative integer, got '%s'",
                                o->name, v);
        *(uint64_t *)o->dest = (uint64_t)x;
        return 0;
    }
    case GB_ARG_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < o->min || x > o->max)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a number in %g..%g, got '%s'",
                                o->name, o->min, o->max, v);
        *(double *)o->dest = x;
        return 0;
    }
    case GB_ARG_CHOICE:
        if (!s_choice_ok(o->choices, v))
            return gb_error_set(err, GB_EUSAGE, "%s: expected one of %s, got '%s'", o->name,
                                o->choices, v);
        *(const char **)o->dest = v;
        return 0;
    case GB_ARG_STRING:
        if (!*v)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a value, got an empty string",
                                o->name);
        *(const char **)o->dest = v;
        return 0;
    case GB_ARG_FLAG:
        break;
    }
    return gb_error_set(err, GB_EUSAGE, "%s: takes no value", o->name);
}

int gb_args_parse(gb_arg_t *opts, int n, int argc, char **argv, bool *help, gb_error_t *err)
{
    *help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return gb_error_set(err, GB_EUSAGE, "unexpected argument '%s'", a);
        char name[64];
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name)
            return gb_error_set(err, GB_EUSAGE, "unknown option '%.40s...'", a);
        memcpy(name, a, len);
        name[len] = '\0';
        gb_arg_t *o = (gb_arg_t *)gb_args_find(opts, n, name);
        if (!o)
            return gb_error_set(err, GB_EUSAGE, "unknown option '%s'", name);
        if (o->seen)
            return gb_error_set(err, GB_EUSAGE, "%s given twice", name);
        o->seen = true;
        if (o->kind == GB_ARG_FLAG) {
            if (eq)
                return gb_error_set(err, GB_EUSAGE, "%s takes no value", name);
            *(bool *)o->dest = true;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc)
                return gb_error_set(err, GB_EUSAGE, "%s needs a value", name);
            value = argv[++i];
        }
        int rc = s_set_value(o, value, err);
        if (rc)
            return rc;
    }
    return 0;
}

void gb_args_print_help(const gb_arg_t *opts, int n)
{
    for (int i = 0; i < n; i++) {
        const gb_arg_t *o = &opts[i];
        const char *meta = "";
        switch (o->kind) {
        case GB_ARG_FLAG: meta = ""; break;
        case GB_ARG_INT:
        case GB_ARG_U64: meta = " N"; break;
        case GB_ARG_FLOAT: meta = " X"; break;
        case GB_ARG_STRING: meta = " VALUE"; break;
        case GB_ARG_CHOICE: meta = " CHOICE"; break;
        }
        char left[64];
        snprintf(left, sizeof left, "%s%s", o->name, meta);
        printf("  %-22s %s", left, o->help);
        if (o->kind == GB_ARG_CHOICE)
            printf(" (%s)", o->choices);
        printf("\n");
    }
}

int gb_args_command(const char *command, const char *synopsis, const char *about,
                    gb_arg_t *opts, int n, const char *const *required, int argc, char **argv)
{
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n, argc, argv, &help, &err)) {
        fprintf(stderr, "%s: %s (see %s --help)\n", command, err.msg, command);
        return 2;
    }
    if (help) {
        printf("usage: %s %s\n\n%s\n\noptions:\n", command, synopsis, about);
        gb_args_print_help(opts, n);
        return 0;
    }
    for (const char *const *r = required; r && *r; r++) {
        const gb_arg_t *o = gb_args_find(opts, n, *r);
        if (o && !o->seen) {
            fprintf(stderr, "%s: %s is required (see %s --help)\n", command, *r, command);
            return 2;
        }
    }
    return -1;
}
