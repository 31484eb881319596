/* `glassbox-client run`: the federated client daemon (client/daemon.h) as a
 * command. Loads this client's data (its partition of the training split),
 * connects with its certificate, and runs tasks until SIGINT or SIGTERM (exit
 * 0 after a graceful close) or until the coordinator says the federation has
 * finished (exit 0). One line per finished task on standard output, plain or
 * JSON; everything else is logged to standard error. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "commands.h"
#include "daemon.h"
#include "data_source.h"
#include "util/args.h"
#include "util/log.h"

/* `glassbox-coordinator ca init` names the coordinator "localhost" unless
 * told otherwise (its --name), so that is the name to expect by default. */
#define S_DEFAULT_SERVER_NAME "localhost"
#define S_STEP_MS 100    /* how often the loop looks at the signal flag */
#define S_LINGER_MS 1000 /* time for close_notify to leave */

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* One output line per finished task. */
static void s_report(void *arg, const gb_daemon_task_report_t *r)
{
    bool json = *(const bool *)arg;
    if (json) {
        printf("{\"round\":%" PRIu64 ",\"task_id\":%" PRIu64 ",\"samples\":%" PRIu64
               ",\"steps\":%ld,\"train_loss\":%.6g,\"train_accuracy\":%.6g,\"seconds\":%.3f,"
               "\"delta_norm\":%.6g,\"clipped\":%s",
               r->round, r->task_id, r->samples, r->steps, r->train_loss, r->train_accuracy,
               r->seconds, r->delta_norm, r->clipped ? "true" : "false");
        if (r->evaluated)
            printf(",\"eval_loss\":%.6g,\"eval_accuracy\":%.6g,\"eval_samples\":%" PRIu64,
                   r->eval_loss, r->eval_accuracy, r->eval_samples);
        printf(",\"explained\":%" PRIu64 ",\"late\":%s}\n", r->explained,
               r->late ? "true" : "false");
    } else {
        printf("round %" PRIu64 " task %" PRIu64 ": %" PRIu64 " samples, train loss %.4f "
               "accuracy %.4f, %.2f s, delta norm %.4g%s",
               r->round, r->task_id, r->samples, r->train_loss, r->train_accuracy, r->seconds,
               r->delta_norm, r->clipped ? " (clipped)" : "");
        if (r->evaluated)
            printf(", eval loss %.4f accuracy %.4f", r->eval_loss, r->eval_accuracy);
        printf("%s\n", r->late ? " [late]" : "");
    }
    fflush(stdout);
}

static int s_fail(const char *what, const gb_error_t *err)
{
    fprintf(stderr, "glassbox-client run: %s%s%s\n", what, *what ? ": " : "", err->msg);
    return 1;
}

int gb_cmd_run(int argc, char **argv)
{
    const char *endpoint = NULL, *cert = NULL, *key = NULL, *ca_file = NULL;
    const char *server_name = S_DEFAULT_SERVER_NAME, *name = NULL, *log_level = NULL;
    int threads = s_default_threads();
    bool json = false;
    gb_data_source_t data = gb_data_source_defaults();
    enum { N_OWN = 9 };
    gb_arg_t opts[N_OWN + GB_DATA_SOURCE_ARGS + GB_DATA_SOURCE_PARTITION_ARGS] = {
        {"--coordinator", GB_ARG_STRING, &endpoint, 0, 0, NULL, "tcp://HOST:PORT of the coordinator (required)", false},
        {"--cert", GB_ARG_STRING, &cert, 0, 0, NULL, "this client's certificate, PEM (required)", false},
        {"--key", GB_ARG_STRING, &key, 0, 0, NULL, "its private key, PEM (required)", false},
        {"--ca-file", GB_ARG_STRING, &ca_file, 0, 0, NULL, "the federation CA certificate, PEM (required)", false},
        {"--server-name", GB_ARG_STRING, &server_name, 0, 0, NULL, "name on the coordinator's certificate (default localhost, as 'ca init' names it)", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "name sent in Join (default: the certificate's; the certificate is what counts)", false},
        {"--threads", GB_ARG_INT, &threads, 1, 256, NULL, "training threads (default: cores, at most 8)", false},
        {"--json", GB_ARG_FLAG, &json, 0, 0, NULL, "one JSON object per line per finished task", false},
        {"--log", GB_ARG_CHOICE, &log_level, 0, 0, "debug|info|warn|error", "log level (default info, or GLASSBOX_LOG)", false},
    };
    gb_data_source_args(&data, opts + N_OWN);
    gb_data_source_partition_args(&data, opts + N_OWN + GB_DATA_SOURCE_ARGS);
    const int n = (int)(sizeof opts / sizeof opts[0]);
    static const char *const required[] = {"--coordinator", "--cert", "--key", "--ca-file",
                                           NULL};
    int rc = gb_args_command(
        "glassbox-client run", "--coordinator tcp://HOST:7700 --cert F --key F --ca-file F "
                               "[options]",
        "Joins the federation and trains on local data: for every task the coordinator\n"
        "sends, trains the global model on this client's data, evaluates and explains it\n"
        "as asked, and sends back the update (new weights minus global weights). Data\n"
        "never leaves the machine. Reconnects by itself; stops on SIGINT or SIGTERM, or\n"
        "when the coordinator says the federation has finished. With --clients N the\n"
        "training split (after --limit) is cut into N slices and this client takes slice\n"
        "--index; the test split stays whole unless --partition-test is given.",
        opts, n, required, argc, argv);
    if (rc >= 0)
        return rc;
    gb_error_t err = {0};
    if (gb_data_source_check(&data, &err)) {
        fprintf(stderr, "glassbox-client run: %s (see glassbox-client run --help)\n", err.msg);
        return 2;
    }
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        fprintf(stderr, "glassbox-client run: --coordinator: expected tcp://HOST:PORT, got "
                        "'%s' (see glassbox-client run --help)\n", endpoint);
        return 2;
    }
    if (log_level) {
        enum gb_log_level level;
        if (gb_log_parse_level(log_level, &level) == 0)
            gb_log_set_level(level);
    }
    /* The files first: a missing certificate should not wait for the data. */
    const char *files[][2] = {{"--cert", cert}, {"--key", key}, {"--ca-file", ca_file}};
    for (int i = 0; i < 3; i++)
        if (access(files[i][1], R_OK) != 0) {
            fprintf(stderr, "glassbox-client run: %s: cannot read '%s': %s\n", files[i][0],
                    files[i][1], strerror(errno));
            return 1;
        }

    gb_dataset_t *train = NULL, *test = NULL;
    if (gb_data_source_load(&data, &train, &test, &err))
        return s_fail("", &err);
    char desc[256];
    gb_data_source_describe(&data, desc, sizeof desc);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    gb_daemon_options_t o = {.zmq_ctx = ctx, .endpoint = endpoint, .cert_file = cert,
                             .key_file = key, .ca_file = ca_file, .server_name = server_name,
                             .client_name = name, .train = train, .test = test,
                             .dataset = desc, .threads = threads, .report = s_report,
                             .report_arg = &json};
    gb_daemon_t *d = ctx ? gb_daemon_new(&o, &err) : NULL;
    if (!d) {
        rc = ctx ? s_fail("", &err) : 1;
        if (!ctx)
            fprintf(stderr, "glassbox-client run: cannot make a ZeroMQ context\n");
        goto out;
    }
    rc = 0;
    while (!s_stop) {
        int s = gb_daemon_step(d, S_STEP_MS, &err);
        if (s == GB_DAEMON_FINISHED)
            break;
        if (s < 0) {
            rc = s_fail("", &err);
            break;
        }
    }
    if (s_stop)
        gb_log_info("client: signal received; stopping");
    gb_daemon_stop(d, S_LINGER_MS);
out:
    gb_daemon_destroy(&d);
    if (ctx)
        zmq_ctx_term(ctx);
    gb_dataset_destroy(&train);
    gb_dataset_destroy(&test);
    return rc;
}
