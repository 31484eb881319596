/* Command-line options from a table: each option names its flag, its kind,
 * its range and where the parsed value goes. Parsing stops at the first bad
 * flag or value and fills err with a message naming which and why, e.g.
 * "--epochs: expected an integer in 1..100000, got 'x'".
 *
 * The same table also reads a configuration file (for systemd units and
 * containers), so every flag can come from either place with the same
 * checks. The format is strict, so a typo is an error rather than a flag
 * silently left at its default:
 *
 *   # the coordinator of the lab federation
 *   min-clients = 3
 *   state = /var/lib/glassbox/state
 *   name = "  keeps its blanks  "
 *   json = yes
 *
 * - UTF-8 text (a leading byte-order mark is skipped), at most
 *   GB_ARGS_CONFIG_FILE_MAX bytes, lines of at most GB_ARGS_CONFIG_LINE_MAX
 *   bytes (not counting the newline); LF or CRLF line ends. No NUL bytes and
 *   no control characters other than tab.
 * - Blank lines and lines whose first non-blank character is '#' are
 *   ignored; '#' anywhere else is part of the value.
 * - Every other line is `key = value`: the key is a flag's name without the
 *   leading "--"; the first '=' splits the line; blanks (space, tab) around
 *   key and value are trimmed.
 * - A value wrapped in double quotes keeps the blanks inside them; there are
 *   no escapes: everything between the first and the last quote is the value.
 * - A FLAG option takes true|false|yes|no|on|off|1|0 (lower case).
 * - Values are checked as on the command line (kind, range, choices).
 * - `help` and `config` are not keys; a key may appear once per file.
 * Errors name the file and line: "serve.conf:4: min-clients: expected an
 * integer in 1..1000000, got 'x'". */
#ifndef GB_UTIL_ARGS_H
#define GB_UTIL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef enum {
    GB_ARG_FLAG,   /* no value on argv (sets true); true/false... in a file; *(bool *)dest */
    GB_ARG_INT,    /* long in [min, max] into *(int *)dest */
    GB_ARG_U64,    /* unsigned 64-bit into *(uint64_t *)dest */
    GB_ARG_FLOAT,  /* finite double in [min, max] into *(double *)dest */
    GB_ARG_STRING, /* borrowed argv or config-file string into *(const char **)dest */
    GB_ARG_CHOICE, /* one of `choices` ("a|b|c") into *(const char **)dest */
} gb_arg_kind_t;

typedef struct {
    const char *name;    /* "--epochs" */
    gb_arg_kind_t kind;  /* value kind */
    void *dest;          /* where the value goes */
    double min, max;     /* range for INT and FLOAT */
    const char *choices; /* "sgd|adam" for CHOICE */
    const char *help;    /* one line for --help */
    bool seen;           /* set by the parser when given */
} gb_arg_t;

/* Parses argv[0..argc) against opts (n entries). `--help`/`-h` sets *help and
 * stops. Returns 0, or GB_EUSAGE with err naming the flag and the reason.
 * Strings stored are borrowed from argv. */
int gb_args_parse(gb_arg_t *opts, int n, int argc, char **argv, bool *help, gb_error_t *err);

/* Prints "  --name VALUE  help" lines for opts to stdout. */
void gb_args_print_help(const gb_arg_t *opts, int n);

/* The whole front matter of a command: parses argv against opts; on a bad
 * flag prints "<command>: <why> (see <command> --help)" to stderr and
 * returns 2; on --help prints "usage: <command> <synopsis>", the about text
 * and the options to stdout and returns 0; when an option named in
 * `required` (a NULL-terminated list, may be NULL) was not given prints
 * "<command>: <flag> is required ..." and returns 2. Otherwise returns -1:
 * go on. command is the full command ("glassbox-coordinator ca init").
 * For tables without "--config"; a table with one needs
 * gb_args_command_config, which keeps the file's strings alive (asserted;
 * without asserts, giving --config is refused with exit 2). */
int gb_args_command(const char *command, const char *synopsis, const char *about,
                    gb_arg_t *opts, int n, const char *const *required, int argc, char **argv);

/* gb_args_command for a subcommand of a group of commands: the command is
 * "<group> <sub>" (group "glassbox-coordinator ca", sub "init"), cut to
 * GB_ARGS_COMMAND_MAX - 1 bytes. */
#define GB_ARGS_COMMAND_MAX 256
int gb_args_subcommand(const char *group, const char *sub, const char *synopsis,
                       const char *about, gb_arg_t *opts, int n, const char *const *required,
                       int argc, char **argv);

/* The largest configuration file and line accepted, in bytes. A line holds
 * a key and a path of up to PATH_MAX (4096) bytes with room to spare. */
#define GB_ARGS_CONFIG_FILE_MAX (1024 * 1024)
#define GB_ARGS_CONFIG_LINE_MAX 8192

/* A configuration file's text, which the string options read from it point
 * into. Opaque; free with gb_args_config_destroy once those strings are no
 * longer used (typically at the end of the command). */
typedef struct gb_args_config gb_args_config_t;

/* Reads the configuration file at `path` (format above) into opts (n
 * entries). An option whose `seen` is already set (by gb_args_parse on argv)
 * keeps its value: the command line wins over the file; the file's value for
 * it is still checked, so a bad file is refused whatever the command line
 * says. Every option taken from the file gets `seen` set, so `required`
 * options may come from the file; a FLAG given as false is `seen` too.
 *
 * On success returns 0 and *config is the caller's: STRING and CHOICE
 * destinations set from the file point into it, valid until
 * gb_args_config_destroy. On failure opts are untouched, *config is NULL and
 * the return is GB_EUSAGE (a bad line; err: "FILE:LINE: ..."), GB_EIO
 * (cannot open or read it; err: "--config: cannot open 'FILE': <strerror>"),
 * GB_ERANGE (too big) or GB_ENOMEM. FILE is `path` as given. */
int gb_args_parse_config(gb_arg_t *opts, int n, const char *path, gb_args_config_t **config,
                         gb_error_t *err) GB_MUST_CHECK;

/* Frees *config and sets it to NULL; safe on NULL and on *config == NULL.
 * Strings read from the file are invalid afterwards. */
void gb_args_config_destroy(gb_args_config_t **config);

/* gb_args_command for tables that may have a "--config" option (kind
 * GB_ARG_STRING): when the user gives --config FILE, FILE is read with
 * gb_args_parse_config after argv and before the `required` check, so the
 * file may supply required options and the command line wins over it. A
 * bad file prints "<command>: <why> (see <command> --help)" to stderr and
 * returns 2. --help never reads the file.
 *
 * *config is set to the file's storage only when -1 (go on) is returned and
 * a file was read; otherwise it is NULL. The caller frees it with
 * gb_args_config_destroy after its last use of the options' strings (always
 * calling it is fine). */
int gb_args_command_config(const char *command, const char *synopsis, const char *about,
                           gb_arg_t *opts, int n, const char *const *required, int argc,
                           char **argv, gb_args_config_t **config);

/* The option named `name`, or NULL. */
const gb_arg_t *gb_args_find(const gb_arg_t *opts, int n, const char *name);

#endif
