/* glassbox-coordinator: the federation's server side (shared/DESIGN.md): the
 * CA and enrollment tokens, and `serve`, which runs the rounds (selection,
 * federated averaging, the aggregate explanation), checkpoints them and
 * publishes each round's signed model. */
#include <stdio.h>

#include "commands.h"
#include "util/process.h"
#include "util/subcommand.h"

static int s_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("glassbox-coordinator %s\n", GLASSBOX_VERSION);
    return 0;
}

static const gb_subcommand_t s_commands[] = {
    {"ca", gb_cmd_ca, "the federation's CA: init, issue, revoke, list, crl"},
    {"token", gb_cmd_token, "enrollment tokens for clients that enroll themselves: create, list"},
    {"serve", gb_cmd_serve, "run the federation: sessions, enrollment, rounds, checkpoints, publication"},
    {"health", gb_cmd_health, "exit 0 when a running coordinator's /healthz answers 200"},
    {"version", s_version, "print the version"},
    {"--version", s_version, NULL},
};

static const gb_subcommand_set_t s_set = {
    .program = "glassbox-coordinator",
    .noun = "command",
    .subs = s_commands,
    .n_subs = sizeof s_commands / sizeof s_commands[0],
    .width = 9,
    .footer = "'glassbox-coordinator <command> --help' describes a command.",
};

int main(int argc, char **argv)
{
    gb_process_pin_blas(argv);
    return gb_subcommand_dispatch(&s_set, argc - 1, argv + 1);
}
