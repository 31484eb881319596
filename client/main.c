/* glassbox-client: the edge daemon (run) and its local commands (train,
 * eval, inspect, explain), and enrollment with the coordinator. */
#include "commands.h"
#include "util/process.h"

#include <stdio.h>
#include <string.h>

static void s_usage(FILE *f)
{
    fprintf(f, "usage: glassbox-client <command> [options]\n\n"
               "commands:\n"
               "  train   train a model on local data, evaluating after each epoch\n"
               "  eval    evaluate a saved model file on a dataset's test split\n"
               "  inspect check a model file and print what it holds\n"
               "  explain explain a saved model on a dataset's test split: summary and heatmaps\n"
               "  enroll  get this client's certificate from the coordinator with a token\n"
               "  run     join the federation and train on local data (the daemon)\n"
               "  subscribe  receive, verify and save the federation's signed publications\n"
               "\n'glassbox-client <command> --help' describes a command's options.\n");
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
    if (strcmp(cmd, "train") == 0)
        return gb_cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return gb_cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "inspect") == 0)
        return gb_cmd_inspect(argc - 2, argv + 2);
    if (strcmp(cmd, "explain") == 0)
        return gb_cmd_explain(argc - 2, argv + 2);
    if (strcmp(cmd, "enroll") == 0)
        return gb_cmd_enroll(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return gb_cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "subscribe") == 0)
        return gb_cmd_subscribe(argc - 2, argv + 2);
    fprintf(stderr, "glassbox-client: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
