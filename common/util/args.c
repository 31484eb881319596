/* Table-driven option parsing (see args.h). Accepts `--name value` and
 * `--name=value`; never uses atoi: every number is range-checked with strto*.
 * Configuration files (second half) go through the same value checks, so a
 * value refused on the command line is refused in a file with the same words;
 * only the option's label differs ("--epochs" there, "epochs" here). */
#include "util/args.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/file.h"

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

/* 1 or 0 for a config file's FLAG spellings, -1 for anything else. */
static int s_flag_value(const char *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(v, yes[i]) == 0)
            return 1;
        if (strcmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Checks v against o's kind and range and stores it. `label` names the
 * option in messages: "--epochs" on the command line, "epochs" in a file. */
static int s_set_value(gb_arg_t *o, const char *label, const char *v, gb_error_t *err)
{
    char *end = NULL;
    errno = 0;
    /* strto* skip leading blanks, which would let " -1" past the sign check. */
    if (o->kind != GB_ARG_STRING && o->kind != GB_ARG_CHOICE && isspace((unsigned char)v[0]))
        return gb_error_set(err, GB_EUSAGE, "%s: unexpected blank before '%s'", label, v + 1);
    switch (o->kind) {
    case GB_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < (long)o->min || x > (long)o->max)
            return gb_error_set(err, GB_EUSAGE, "%s: expected an integer in %.0f..%.0f, got '%s'",
                                label, o->min, o->max, v);
        *(int *)o->dest = (int)x;
        return 0;
    }
    case GB_ARG_U64: {
        if (v[0] == '-')
            return gb_error_set(err, GB_EUSAGE, "%s: expected a non-negative integer, got '%s'",
                                label, v);
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a non-negative integer, got '%s'",
                                label, v);
        *(uint64_t *)o->dest = (uint64_t)x;
        return 0;
    }
    case GB_ARG_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < o->min || x > o->max)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a number in %g..%g, got '%s'",
                                label, o->min, o->max, v);
        *(double *)o->dest = x;
        return 0;
    }
    case GB_ARG_CHOICE:
        if (!s_choice_ok(o->choices, v))
            return gb_error_set(err, GB_EUSAGE, "%s: expected one of %s, got '%s'", label,
                                o->choices, v);
        *(const char **)o->dest = v;
        return 0;
    case GB_ARG_STRING:
        if (!*v)
            return gb_error_set(err, GB_EUSAGE, "%s: expected a value, got an empty string",
                                label);
        *(const char **)o->dest = v;
        return 0;
    case GB_ARG_FLAG: {
        /* Only a file gives a flag a value; argv flags never get here. */
        int b = s_flag_value(v);
        if (b < 0)
            return gb_error_set(err, GB_EUSAGE,
                                "%s: expected one of true|false|yes|no|on|off|1|0, got '%s'",
                                label, v);
        *(bool *)o->dest = b;
        return 0;
    }
    }
    return gb_error_set(err, GB_EINVAL, "%s: unknown option kind %d", label, (int)o->kind);
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
        int rc = s_set_value(o, o->name, value, err);
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

/* ---- configuration files ----
 *
 * The file is read whole (bounded) and parsed in place: each key and value is
 * cut out of its line with a NUL, so string options point straight into the
 * text and one buffer owns them all. Parsing is two passes over the options:
 * every line is checked first (into scratch destinations) and only a file
 * without errors is applied, so a bad file leaves the options untouched and
 * no destination points into a buffer that is about to be freed. */

struct gb_args_config {
    uint8_t *text; /* the file's bytes, keys and values NUL-terminated in place */
};

/* What the file says about one option, before it is applied. */
typedef struct {
    const char *value; /* into the text; NULL when the file does not name it */
    int line;          /* where it was given, for "given twice" */
} s_entry_t;

/* One line of the file being parsed. */
typedef struct {
    const char *path; /* the file as the user named it */
    int line;         /* 1-based */
    char *text;       /* the line, without its line end */
    size_t len;       /* its length */
} s_line_t;

/* Longest part of a line echoed in a message, so the message keeps its end. */
#define S_ECHO_MAX 60

static bool s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of s[0..len) cut to at most S_ECHO_MAX bytes, not inside a UTF-8
 * sequence (the line has passed s_utf8_ok). */
static int s_echo_len(const char *s, size_t len)
{
    if (len <= S_ECHO_MAX)
        return (int)len;
    size_t n = S_ECHO_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

/* Bytes in the UTF-8 sequence that lead byte c starts; 0 if c cannot lead. */
static size_t s_utf8_len(unsigned c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 0;
}

/* True when s[0..n) is well-formed UTF-8: no overlong forms, surrogates or
 * code points past U+10FFFF (RFC 3629). */
static bool s_utf8_ok(const unsigned char *s, size_t n)
{
    static const uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000}; /* by length */
    for (size_t i = 0; i < n;) {
        size_t len = s_utf8_len(s[i]);
        if (len == 0 || n - i < len)
            return false;
        if (len == 1) {
            i++;
            continue;
        }
        uint32_t cp = s[i] & (0x7Fu >> len); /* the lead byte's payload bits */
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < shortest[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* Refuses bytes no hand-written config holds: NUL (C strings would cut the
 * value short unseen), control characters (they hide in terminals and logs)
 * and broken UTF-8. */
static int s_check_bytes(const s_line_t *l, gb_error_t *err)
{
    if (memchr(l->text, '\0', l->len))
        return gb_error_set(err, GB_EUSAGE, "%s:%d: NUL byte in the line", l->path, l->line);
    for (size_t i = 0; i < l->len; i++) {
        unsigned char c = (unsigned char)l->text[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return gb_error_set(err, GB_EUSAGE, "%s:%d: control character 0x%02x in the line",
                                l->path, l->line, c);
    }
    if (!s_utf8_ok((const unsigned char *)l->text, l->len))
        return gb_error_set(err, GB_EUSAGE, "%s:%d: not valid UTF-8", l->path, l->line);
    return 0;
}

/* Trims blanks from both ends of s[0..*len): returns the new start. */
static char *s_trim(char *s, size_t *len)
{
    while (*len && s_blank(s[0])) {
        s++;
        (*len)--;
    }
    while (*len && s_blank(s[*len - 1]))
        (*len)--;
    return s;
}

/* The option a file key names, or NULL with err set. "help" and "config"
 * are refused by name: a file cannot ask for help or include another file. */
static gb_arg_t *s_key_option(gb_arg_t *opts, int n, const s_line_t *l, const char *key,
                              gb_error_t *err)
{
    if (strcmp(key, "help") == 0 || strcmp(key, "config") == 0) {
        gb_error_set(err, GB_EUSAGE, "%s:%d: %s: not allowed in a configuration file", l->path,
                     l->line, key);
        return NULL;
    }
    char name[64];
    size_t len = strlen(key);
    gb_arg_t *o = NULL;
    if (len + 3 <= sizeof name) {
        name[0] = name[1] = '-';
        memcpy(name + 2, key, len + 1);
        o = (gb_arg_t *)gb_args_find(opts, n, name);
    }
    if (!o)
        gb_error_set(err, GB_EUSAGE, "%s:%d: unknown key '%.*s'%s", l->path, l->line,
                     s_echo_len(key, len), key,
                     strncmp(key, "--", 2) == 0 ? " (keys have no leading --)" : "");
    return o;
}

/* Checks v for o without storing it: the file is applied only once every
 * line has passed. */
static int s_check_value(const gb_arg_t *o, const char *label, const char *v, gb_error_t *err)
{
    union {
        bool b;
        int i;
        uint64_t u;
        double d;
        const char *s;
    } scratch;
    gb_arg_t probe = *o;
    probe.dest = &scratch;
    return s_set_value(&probe, label, v, err);
}

/* Cuts the value out of v[0..len) (already trimmed): drops the quotes of a
 * quoted value and NUL-terminates it in place. */
static int s_cut_value(const s_line_t *l, const char *key, char *v, size_t len,
                       const char **value, gb_error_t *err)
{
    if (len && v[0] == '"') {
        if (len < 2 || v[len - 1] != '"')
            return gb_error_set(err, GB_EUSAGE, "%s:%d: %s: missing closing quote", l->path,
                                l->line, key);
        v++;
        len -= 2;
    }
    v[len] = '\0';
    *value = v;
    return 0;
}

/* One `key = value` line (not blank, not a comment) into found[]. */
static int s_parse_pair(gb_arg_t *opts, int n, const s_line_t *l, char *text, size_t len,
                        s_entry_t *found, gb_error_t *err)
{
    char *eq = memchr(text, '=', len);
    if (!eq)
        return gb_error_set(err, GB_EUSAGE, "%s:%d: expected 'key = value', got '%.*s'",
                            l->path, l->line, s_echo_len(text, len), text);
    size_t klen = (size_t)(eq - text), vlen = len - klen - 1;
    char *key = s_trim(text, &klen);
    char *v = s_trim(eq + 1, &vlen);
    if (!klen)
        return gb_error_set(err, GB_EUSAGE, "%s:%d: empty key before '='", l->path, l->line);
    key[klen] = '\0'; /* overwrites a blank or the '=' itself */
    gb_arg_t *o = s_key_option(opts, n, l, key, err);
    if (!o)
        return GB_EUSAGE;
    s_entry_t *e = &found[o - opts];
    if (e->value)
        return gb_error_set(err, GB_EUSAGE, "%s:%d: %s given twice (first on line %d)", l->path,
                            l->line, key, e->line);
    const char *value = NULL;
    int rc = s_cut_value(l, key, v, vlen, &value, err);
    if (rc)
        return rc;
    if ((rc = s_check_value(o, key, value, err)))
        return gb_error_prefix(err, rc, "%s:%d: ", l->path, l->line);
    e->value = value;
    e->line = l->line;
    return 0;
}

/* One line: bounded and clean bytes first, then blank, comment or pair. */
static int s_parse_line(gb_arg_t *opts, int n, const s_line_t *l, s_entry_t *found,
                        gb_error_t *err)
{
    if (l->len > GB_ARGS_CONFIG_LINE_MAX)
        return gb_error_set(err, GB_EUSAGE, "%s:%d: line longer than the limit of %d bytes",
                            l->path, l->line, GB_ARGS_CONFIG_LINE_MAX);
    int rc = s_check_bytes(l, err);
    if (rc)
        return rc;
    size_t len = l->len;
    char *text = s_trim(l->text, &len);
    if (!len || text[0] == '#')
        return 0;
    return s_parse_pair(opts, n, l, text, len, found, err);
}

/* Every line of text[0..len) into found[]; the first bad line fails. */
static int s_parse_text(gb_arg_t *opts, int n, const char *path, char *text, size_t len,
                        s_entry_t *found, gb_error_t *err)
{
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* a byte-order mark some editors write */
    s_line_t l = {.path = path, .line = 0};
    while (pos < len) {
        char *start = text + pos;
        char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - start) : len - pos;
        pos += llen + (nl ? 1 : 0);
        if (llen && start[llen - 1] == '\r')
            llen--; /* CRLF: the CR is part of the line end */
        l.line++;
        l.text = start;
        l.len = llen;
        int rc = s_parse_line(opts, n, &l, found, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Stores what the file says, except where the command line already spoke.
 * Values were checked by s_parse_text, so storing cannot fail. */
static void s_apply(gb_arg_t *opts, int n, const s_entry_t *found)
{
    for (int i = 0; i < n; i++) {
        if (!found[i].value || opts[i].seen)
            continue;
        int rc = s_set_value(&opts[i], opts[i].name, found[i].value, NULL);
        assert(rc == 0);
        (void)rc;
        opts[i].seen = true;
    }
}

void gb_args_config_destroy(gb_args_config_t **config)
{
    if (!config || !*config)
        return;
    gb_free((*config)->text);
    gb_free(*config);
    *config = NULL;
}

int gb_args_parse_config(gb_arg_t *opts, int n, const char *path, gb_args_config_t **config,
                         gb_error_t *err)
{
    assert(config && path && (opts || n == 0));
    *config = NULL;
    int rc = 0;
    size_t len = 0;
    gb_args_config_t *c = gb_calloc(1, sizeof *c);
    s_entry_t *found = gb_calloc(n > 0 ? (size_t)n : 1, sizeof *found);
    if (!c || !found) {
        rc = gb_error_set(err, GB_ENOMEM, "--config: out of memory reading '%s'", path);
        goto cleanup;
    }
    if ((rc = gb_file_read_all(path, GB_ARGS_CONFIG_FILE_MAX, &c->text, &len, err))) {
        gb_error_prefix(err, rc, "--config: ");
        goto cleanup;
    }
    if ((rc = s_parse_text(opts, n, path, (char *)c->text, len, found, err)))
        goto cleanup;
    s_apply(opts, n, found);
    *config = c;
    c = NULL;
cleanup:
    gb_free(found);
    gb_args_config_destroy(&c);
    return rc;
}

/* ---- a command's front matter ---- */

static int s_usage_error(const char *command, const char *why)
{
    fprintf(stderr, "%s: %s (see %s --help)\n", command, why, command);
    return 2;
}

static void s_print_usage(const char *command, const char *synopsis, const char *about,
                          const gb_arg_t *opts, int n)
{
    printf("usage: %s %s\n\n%s\n\noptions:\n", command, synopsis, about);
    gb_args_print_help(opts, n);
}

/* The first option of `required` not given, or NULL. */
static const char *s_missing(const gb_arg_t *opts, int n, const char *const *required)
{
    for (const char *const *r = required; r && *r; r++) {
        const gb_arg_t *o = gb_args_find(opts, n, *r);
        if (o && !o->seen)
            return *r;
    }
    return NULL;
}

/* Reads --config FILE when the table has it and the user gave it: 0 to go
 * on, else the exit code. */
static int s_read_config(const char *command, gb_arg_t *opts, int n, gb_args_config_t **config)
{
    const gb_arg_t *conf = gb_args_find(opts, n, "--config");
    if (!conf || conf->kind != GB_ARG_STRING || !conf->seen)
        return 0;
    if (!config) /* gb_args_command on a table with --config: see args.h */
        return s_usage_error(command, "--config is not supported by this command");
    gb_error_t err = {0};
    if (gb_args_parse_config(opts, n, *(const char *const *)conf->dest, config, &err))
        return s_usage_error(command, err.msg);
    return 0;
}

int gb_args_command_config(const char *command, const char *synopsis, const char *about,
                           gb_arg_t *opts, int n, const char *const *required, int argc,
                           char **argv, gb_args_config_t **config)
{
    if (config)
        *config = NULL;
    gb_error_t err = {0};
    bool help = false;
    if (gb_args_parse(opts, n, argc, argv, &help, &err))
        return s_usage_error(command, err.msg);
    if (help) {
        s_print_usage(command, synopsis, about, opts, n);
        return 0;
    }
    int rc = s_read_config(command, opts, n, config);
    if (rc)
        return rc;
    const char *missing = s_missing(opts, n, required);
    if (missing) {
        gb_args_config_destroy(config);
        fprintf(stderr, "%s: %s is required (see %s --help)\n", command, missing, command);
        return 2;
    }
    return -1;
}

int gb_args_command(const char *command, const char *synopsis, const char *about,
                    gb_arg_t *opts, int n, const char *const *required, int argc, char **argv)
{
    /* A table with --config must come with storage for the file's strings. */
    const gb_arg_t *conf = gb_args_find(opts, n, "--config");
    assert(!conf || conf->kind != GB_ARG_STRING);
    (void)conf;
    return gb_args_command_config(command, synopsis, about, opts, n, required, argc, argv,
                                  NULL);
}

int gb_args_subcommand(const char *group, const char *sub, const char *synopsis,
                       const char *about, gb_arg_t *opts, int n, const char *const *required,
                       int argc, char **argv)
{
    char command[GB_ARGS_COMMAND_MAX];
    snprintf(command, sizeof command, "%s %s", group, sub);
    return gb_args_command(command, synopsis, about, opts, n, required, argc, argv);
}
