/* `glassbox-coordinator health`: asks a running coordinator's /healthz and
 * turns the answer into an exit code, for a container's HEALTHCHECK or a
 * monitoring script: 0 when it answers 200 within the timeout, 1 when it
 * answers anything else, does not answer, or cannot be reached. The body (the
 * reason when unhealthy) goes to standard output, errors to standard error. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "net/http_get.h"
#include "net/http_server.h"
#include "util/args.h"

int gb_cmd_health(int argc, char **argv)
{
    const char *http = "127.0.0.1:7702";
    double timeout_s = 5;
    gb_arg_t opts[] = {
        {"--http", GB_ARG_STRING, &http, 0, 0, NULL, "the coordinator's HTTP endpoint ADDR:PORT (default 127.0.0.1:7702)", false},
        {"--timeout", GB_ARG_FLOAT, &timeout_s, 0.001, 3600, NULL, "seconds to wait for the answer (default 5)", false},
    };
    const int n = (int)(sizeof opts / sizeof opts[0]);
    int rc = gb_args_command(
        "glassbox-coordinator health", "[--http ADDR:PORT] [--timeout S]",
        "Asks a running coordinator's /healthz. Exits 0 when it answers 200 within\n"
        "the timeout, 1 otherwise (unhealthy, not answering, not reachable).",
        opts, n, NULL, argc, argv);
    if (rc >= 0)
        return rc;
    struct sockaddr_storage sa;
    socklen_t sa_len;
    gb_error_t err = {0};
    if (gb_http_addr_parse(http, &sa, &sa_len, &err) != 0) {
        fprintf(stderr, "glassbox-coordinator health: --http: %s\n", err.msg);
        return 2;
    }
    char body[512];
    int status = 0;
    if (gb_http_get(http, "/healthz", (int)(timeout_s * 1000), &status, body, sizeof body,
                    &err) != 0) {
        fprintf(stderr, "glassbox-coordinator health: %s\n", err.msg);
        return 1;
    }
    fputs(body, stdout);
    if (status != 200) {
        fprintf(stderr, "glassbox-coordinator health: %s answered %d\n", http, status);
        return 1;
    }
    return 0;
}
