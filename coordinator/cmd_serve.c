/* `glassbox-coordinator serve`: the coordinator's front door as a daemon
 * (front_door.h): clients connect with their certificates and join, new
 * clients enroll with a token, revocations take effect without a restart.
 * Runs until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "commands.h"
#include "front_door.h"
#include "util/args.h"
#include "util/log.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

int gb_cmd_serve(int argc, char **argv)
{
    gb_front_door_options_t o = {0};
    const char *log_level = NULL;
    gb_arg_t opts[] = {
        {"--ca", GB_ARG_STRING, &o.ca_dir, 0, 0, NULL, "the CA directory of 'ca init' (required)", false},
        {"--listen", GB_ARG_STRING, &o.listen, 0, 0, NULL, "endpoint for clients (default tcp://0.0.0.0:7700)", false},
        {"--federation", GB_ARG_STRING, &o.federation, 0, 0, NULL, "federation name told to clients (default glassbox)", false},
        {"--cert-days", GB_ARG_INT, &o.cert_days, 1, 36500, NULL, "validity of certificates issued by enrollment (default 365)", false},
        {"--heartbeat-ms", GB_ARG_INT, &o.heartbeat_interval_ms, 100, 3600000, NULL, "how often clients send heartbeats (default 5000)", false},
        {"--timeout-ms", GB_ARG_INT, &o.heartbeat_timeout_ms, 300, 86400000, NULL, "silence that ends a client's session (default 30000)", false},
        {"--log", GB_ARG_CHOICE, &log_level, 0, 0, "debug|info|warn|error", "log level (default info, or GLASSBOX_LOG)", false},
    };
    const int n = (int)(sizeof opts / sizeof opts[0]);
    static const char *const required[] = {"--ca", NULL};
    int rc = gb_args_command("glassbox-coordinator serve", "--ca DIR [options]",
                             "Accepts clients on the ROUTER socket over mutual TLS 1.3: clients\n"
                             "with a certificate from the CA join and are acknowledged; clients\n"
                             "without one may enroll with a token ('token create'). crl.pem is\n"
                             "reloaded when 'ca revoke' rewrites it. Stops on SIGINT or SIGTERM.",
                             opts, n, required, argc, argv);
    if (rc >= 0)
        return rc;
    if (log_level) {
        enum gb_log_level level;
        if (gb_log_parse_level(log_level, &level) == 0)
            gb_log_set_level(level);
    }
    if (o.heartbeat_timeout_ms && o.heartbeat_interval_ms &&
        o.heartbeat_timeout_ms <= o.heartbeat_interval_ms) {
        fprintf(stderr, "glassbox-coordinator serve: --timeout-ms must be longer than "
                        "--heartbeat-ms\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    gb_error_t err = {0};
    gb_front_door_t *door = ctx ? gb_front_door_new(ctx, &o, &err) : NULL;
    if (!door) {
        fprintf(stderr, "glassbox-coordinator serve: %s\n",
                ctx ? err.msg : "cannot make a ZeroMQ context");
        if (ctx)
            zmq_ctx_term(ctx);
        return 1;
    }
    printf("listening on %s\n", gb_front_door_endpoint(door));
    fflush(stdout);
    rc = 0;
    while (!s_stop) {
        if (gb_front_door_step(door, 200, &err) != 0) {
            fprintf(stderr, "glassbox-coordinator serve: %s\n", err.msg);
            rc = 1;
            break;
        }
    }
    gb_log_info("coordinator: stopping");
    gb_front_door_destroy(&door);
    zmq_ctx_term(ctx);
    return rc;
}
