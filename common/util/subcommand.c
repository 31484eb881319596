/* Sub-command dispatch from a table (see subcommand.h). The tables are a
 * handful of entries, so lookup is a linear scan in table order; the first
 * entry of a name wins. */
#include "util/subcommand.h"

#include <string.h>

void gb_subcommand_usage(const gb_subcommand_set_t *set, FILE *f)
{
    fprintf(f, "usage: %s <%s> [options]\n\n%ss:\n", set->program, set->noun, set->noun);
    for (size_t i = 0; i < set->n_subs; i++) {
        const gb_subcommand_t *s = &set->subs[i];
        if (!s->help)
            continue;
        /* a name past the column keeps two blanks before its text */
        const char *gap = strlen(s->name) > (size_t)set->width ? "  " : " ";
        fprintf(f, "  %-*s%s%s\n", set->width, s->name, gap, s->help);
    }
    fprintf(f, "\n%s\n", set->footer);
}

int gb_subcommand_dispatch(const gb_subcommand_set_t *set, int argc, char **argv)
{
    if (argc < 1 || !argv[0]) {
        gb_subcommand_usage(set, stderr);
        return 2;
    }
    const char *name = argv[0];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        gb_subcommand_usage(set, stdout);
        return 0;
    }
    for (size_t i = 0; i < set->n_subs; i++)
        if (strcmp(name, set->subs[i].name) == 0)
            return set->subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown %s '%s'\n", set->program, set->noun, name);
    gb_subcommand_usage(set, stderr);
    return 2;
}
