/* The glassbox-coordinator commands. Each takes the arguments after its name
 * (for `ca` and `token`: the subcommand first) and returns the process exit
 * code: 0 success, 1 failure, 2 bad usage (with a message on stderr). */
#ifndef GB_COORDINATOR_COMMANDS_H
#define GB_COORDINATOR_COMMANDS_H

/* `ca init|issue|revoke|list|crl`: the federation's CA (net/pki.h). */
int gb_cmd_ca(int argc, char **argv);

/* `token create|list`: enrollment tokens (enroll_tokens.h). */
int gb_cmd_token(int argc, char **argv);

/* `serve`: the front door as a daemon (front_door.h). */
int gb_cmd_serve(int argc, char **argv);

/* `health`: 0 when a coordinator's /healthz answers 200, else 1. */
int gb_cmd_health(int argc, char **argv);

#endif
