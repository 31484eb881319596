/* glassbox-coordinator: runs the federation's rounds, aggregation, CA and
 * publication (shared/DESIGN.md). This build carries the engine and the model
 * file only; the round loop and the `ca` commands land with the wire and
 * federation work, and until then every command says so plainly. */
#include <stdio.h>
#include <string.h>

#include "util/process.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: glassbox-coordinator <command> [options]\n\n"
               "commands:\n"
               "  version   print the version\n"
               "\nThe federation commands (run, ca) are not in this build yet: train\n"
               "locally with 'glassbox-client train'.\n");
}

int main(int argc, char **argv)
{
    gb_process_pin_blas(argv);
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("glassbox-coordinator %s\n", GLASSBOX_VERSION);
        return 0;
    }
    fprintf(stderr, "glassbox-coordinator: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
