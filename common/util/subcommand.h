/* Sub-command dispatch from a table, for `glassbox-client <command>`,
 * `glassbox-coordinator <command>` and the coordinator's `ca` and `token`
 * groups: one place that looks a name up, answers --help and refuses an
 * unknown name, so every level of every binary does these the same way.
 *
 * The usage text it prints is
 *
 *   usage: PROGRAM <NOUN> [options]
 *
 *   NOUNs:
 *     NAME     HELP            (one line per listed entry, in table order)
 *
 *   FOOTER
 *
 * where each NAME is padded to `width` columns and followed by one blank, or
 * by two when it is longer than `width` (so a long name stays apart from its
 * text). Entries whose help is NULL are aliases: they dispatch but are not
 * listed (`--version` beside `version`).
 *
 * Ownership: the set and its table are borrowed, usually static const data;
 * nothing is allocated. */
#ifndef GB_UTIL_SUBCOMMAND_H
#define GB_UTIL_SUBCOMMAND_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *name;                 /* what argv[0] must equal */
    int (*run)(int argc, char **argv); /* gets the arguments after the name; returns the exit code */
    const char *help;                 /* one line for the usage list; NULL: an unlisted alias */
} gb_subcommand_t;

typedef struct {
    const char *program;         /* "glassbox-coordinator ca": usage line and error prefix */
    const char *noun;            /* "command" or "subcommand" */
    const gb_subcommand_t *subs; /* the table */
    size_t n_subs;               /* its entries */
    int width;                   /* column the names are padded to */
    const char *footer;          /* last line of the usage, without its newline */
} gb_subcommand_set_t;

/* Prints set's usage text (above) to f. */
void gb_subcommand_usage(const gb_subcommand_set_t *set, FILE *f);

/* Runs the entry named argv[0] with (argc - 1, argv + 1) and returns what it
 * returns. Without a name: the usage on stderr, 2. "--help", "-h" or "help":
 * the usage on stdout, 0. An unknown name: "PROGRAM: unknown NOUN 'NAME'"
 * and the usage on stderr, 2. */
int gb_subcommand_dispatch(const gb_subcommand_set_t *set, int argc, char **argv);

#endif
