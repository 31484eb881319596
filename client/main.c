/* glassbox-client: the edge daemon (run) and its local commands (train,
 * eval, inspect, explain), and enrollment with the coordinator. */
#include "commands.h"
#include "util/process.h"
#include "util/subcommand.h"

static const gb_subcommand_t s_commands[] = {
    {"train", gb_cmd_train, "train a model on local data, evaluating after each epoch"},
    {"eval", gb_cmd_eval, "evaluate a saved model file on a dataset's test split"},
    {"inspect", gb_cmd_inspect, "check a model file and print what it holds"},
    {"explain", gb_cmd_explain, "explain a saved model on a dataset's test split: summary and heatmaps"},
    {"enroll", gb_cmd_enroll, "get this client's certificate from the coordinator with a token"},
    {"run", gb_cmd_run, "join the federation and train on local data (the daemon)"},
    {"subscribe", gb_cmd_subscribe, "receive, verify and save the federation's signed publications"},
};

static const gb_subcommand_set_t s_set = {
    .program = "glassbox-client",
    .noun = "command",
    .subs = s_commands,
    .n_subs = sizeof s_commands / sizeof s_commands[0],
    .width = 7,
    .footer = "'glassbox-client <command> --help' describes a command's options.",
};

int main(int argc, char **argv)
{
    gb_process_pin_blas(argv);
    return gb_subcommand_dispatch(&s_set, argc - 1, argv + 1);
}
