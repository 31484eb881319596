/* glassbox-coordinator: the federation's server side (shared/DESIGN.md): the
 * CA and enrollment tokens, and `serve`, which runs the rounds (selection,
 * federated averaging, the aggregate explanation), checkpoints them and
 * publishes each round's signed model. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util/process.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: glassbox-coordinator <command> [options]\n\n"
               "commands:\n"
               "  ca        the federation's CA: init, issue, revoke, list, crl\n"
               "  token     enrollment tokens for clients that enroll themselves: create, list\n"
               "  serve     run the federation: sessions, enrollment, rounds, checkpoints, publication\n"
               "  health    exit 0 when a running coordinator's /healthz answers 200\n"
               "  version   print the version\n"
               "\n'glassbox-coordinator <command> --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    gb_process_pin_blas(argv);
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("glassbox-coordinator %s\n", GLASSBOX_VERSION);
        return 0;
    }
    if (strcmp(cmd, "ca") == 0)
        return gb_cmd_ca(argc - 2, argv + 2);
    if (strcmp(cmd, "token") == 0)
        return gb_cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0)
        return gb_cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "health") == 0)
        return gb_cmd_health(argc - 2, argv + 2);
    fprintf(stderr, "glassbox-coordinator: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
