/* The glassbox-client commands. Each takes the arguments after its name and
 * returns the process exit code: 0 success, 1 failure, 2 bad usage. */
#ifndef GB_CLIENT_COMMANDS_H
#define GB_CLIENT_COMMANDS_H

int gb_cmd_train(int argc, char **argv);
int gb_cmd_eval(int argc, char **argv);
int gb_cmd_inspect(int argc, char **argv);
int gb_cmd_explain(int argc, char **argv);
int gb_cmd_enroll(int argc, char **argv);
int gb_cmd_run(int argc, char **argv);
int gb_cmd_subscribe(int argc, char **argv);

#endif
