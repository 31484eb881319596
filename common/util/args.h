/* Command-line options from a table: each option names its flag, its kind,
 * its range and where the parsed value goes. Parsing stops at the first bad
 * flag or value and fills err with a message naming which and why, e.g.
 * "--epochs: expected an integer in 1..100000, got 'x'". */
#ifndef GB_UTIL_ARGS_H
#define GB_UTIL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef enum {
    GB_ARG_FLAG,   /* no value; sets *(bool *)dest */
    GB_ARG_INT,    /* long in [min, max] into *(int *)dest */
    GB_ARG_U64,    /* unsigned 64-bit into *(uint64_t *)dest */
    GB_ARG_FLOAT,  /* finite double in [min, max] into *(double *)dest */
    GB_ARG_STRING, /* borrowed argv string into *(const char **)dest */
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
 * go on. command is the full command ("glassbox-coordinator ca init"). */
int gb_args_command(const char *command, const char *synopsis, const char *about,
                    gb_arg_t *opts, int n, const char *const *required, int argc, char **argv);

/* The option named `name`, or NULL. */
const gb_arg_t *gb_args_find(const gb_arg_t *opts, int n, const char *name);

#endif
