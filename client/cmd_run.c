/* `glassbox-client run`: the federated client daemon (client/daemon.h) as a
 * command. Loads this client's data (its partition of the training split),
 * connects with its certificate, and runs tasks until SIGINT or SIGTERM (exit
 * 0 after a graceful close) or until the coordinator says the federation has
 * finished (exit 0). One line per finished task on standard output, plain or
 * JSON; everything else is logged to standard error.
 *
 * With --virtual N the same command runs N clients in one process
 * (client/virtual_clients.h): identities from --cert-dir instead of
 * --cert/--key, the data set loaded once and cut there, and every task line
 * prefixed with the client's name (a "client" key in JSON). The two modes
 * share the option table, so flags that belong to only one are refused in
 * the other here, before anything is loaded. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "commands.h"
#include "daemon.h"
#include "client_status.h"
#include "util/time.h"
#include "data_source.h"
#include "virtual_clients.h"
#include "util/json.h"
#include "util/args.h"
#include "util/fd_limit.h"
#include "util/log.h"

/* `glassbox-coordinator ca init` names the coordinator "localhost" unless
 * told otherwise (its --name), so that is the name to expect by default. */
#define S_DEFAULT_SERVER_NAME "localhost"
#define S_STEP_MS 100    /* how often the loop looks at the signal flag */
#define S_VIRTUAL_STEP_MS 250 /* the longest one poll over N daemons waits: a signal
                                cuts it short, this bounds a signal that went astray */
#define S_LINGER_MS 1000 /* time for close_notify to leave */
#define S_HTTP_STALL_S 60.0 /* /healthz fails when the loop has not run for this long */

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

/* One output line per finished task; name is the virtual client's (NULL:
 * the one client of a plain run, whose lines carry no name). */
static void s_report_named(void *arg, const char *name, const gb_daemon_task_report_t *r)
{
    bool json = *(const bool *)arg;
    if (json) {
        json_t *o = json_object();
        if (o && name)
            json_object_set_new(o, "client", gb_json_string(name));
        json_t *rest = json_pack(
            "{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "round", (json_int_t)r->round,
            "task_id", (json_int_t)r->task_id, "samples", (json_int_t)r->samples, "steps",
            (json_int_t)r->steps, "train_loss", gb_json_real_or_null(r->train_loss),
            "train_accuracy", gb_json_real_or_null(r->train_accuracy), "seconds",
            gb_json_real_or_null(r->seconds), "delta_norm", gb_json_real_or_null(r->delta_norm),
            "clipped", (int)r->clipped);
        if (o && json_object_update(o, rest) != 0) {
            json_decref(o);
            o = NULL;
        }
        json_decref(rest);
        if (o && r->evaluated) {
            json_object_set_new(o, "eval_loss", gb_json_real_or_null(r->eval_loss));
            json_object_set_new(o, "eval_accuracy", gb_json_real_or_null(r->eval_accuracy));
            json_object_set_new(o, "eval_samples", json_integer((json_int_t)r->eval_samples));
        }
        /* when it trained and how long it waited for its turn (--virtual) */
        if (o) {
            json_object_set_new(o, "explained", json_integer((json_int_t)r->explained));
            json_object_set_new(o, "late", json_boolean(r->late));
            json_object_set_new(o, "started_unix_ms", json_integer((json_int_t)r->started_unix_ms));
            json_object_set_new(o, "queued_seconds", gb_json_real_or_null(r->queued_seconds));
            /* what the task's seconds went to */
            json_object_set_new(o, "eval_seconds", gb_json_real_or_null(r->eval_seconds));
            json_object_set_new(o, "explain_seconds", gb_json_real_or_null(r->explain_seconds));
            json_object_set_new(o, "train_seconds", gb_json_real_or_null(r->train_seconds));
        }
        gb_error_t err = {0};
        if (gb_json_print(stdout, o, &err))
            fprintf(stderr, "glassbox-client run: %s\n", err.msg);
        json_decref(o);
    } else {
        if (name)
            printf("%s: ", name);
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

static void s_report(void *arg, const gb_daemon_task_report_t *r)
{
    s_report_named(arg, NULL, r);
}

static int s_fail(const char *what, const gb_error_t *err)
{
    fprintf(stderr, "glassbox-client run: %s%s%s\n", what, *what ? ": " : "", err->msg);
    return 1;
}

static int s_usage(const char *msg)
{
    fprintf(stderr, "glassbox-client run: %s (see glassbox-client run --help)\n", msg);
    return 2;
}

/* Flags that belong to one mode only: returns 2 (after saying why) when one
 * is given in the other mode, or a flag that mode needs is missing. */
static int s_check_mode(int virt, const char *cert, const char *key, const char *name,
                        const char *cert_dir, const char *prefix, const char *ca_file)
{
    /* --cert and --key are required only without --virtual, so the parser
     * checks none of the files: they are checked here, in the order the
     * usage line gives them. */
    if (virt) {
        if (cert || key || name)
            return s_usage(cert ? "--cert cannot be used with --virtual (each client's is in "
                                  "--cert-dir)"
                           : key ? "--key cannot be used with --virtual (each client's is in "
                                   "--cert-dir)"
                                 : "--name cannot be used with --virtual (each client is "
                                   "named by its certificate)");
        if (!cert_dir)
            return s_usage("--cert-dir is required with --virtual");
        return ca_file ? 0 : s_usage("--ca-file is required");
    }
    if (cert_dir || prefix)
        return s_usage(cert_dir ? "--cert-dir needs --virtual (one client takes --cert and "
                                  "--key)"
                                : "--name-prefix needs --virtual");
    if (!cert || !key)
        return s_usage(!cert ? "--cert is required" : "--key is required");
    return ca_file ? 0 : s_usage("--ca-file is required");
}

/* What N virtual clients need beyond one: per client a DEALER socket and
 * its monitor's two PAIR sockets (ZeroMQ sockets, each with a mailbox
 * descriptor) and the TCP connection; measured, with a margin, by
 * tests/client/test_virtual_limits.py. */
#define S_SOCKETS_PER_CLIENT 3
#define S_FDS_PER_CLIENT 5
#define S_FDS_BASE 64

/* Sets the context's socket limit and raises the descriptor limit for N
 * clients before any is made, or says (exit 1) which limit stops them. */
static int s_room_for_virtual(void *ctx, int n)
{
    char what[64];
    snprintf(what, sizeof what, "--virtual %d", n);
    int sockets = S_SOCKETS_PER_CLIENT * n + 16;
    int most = zmq_ctx_get(ctx, ZMQ_SOCKET_LIMIT);
    if (most > 0 && sockets > most) {
        fprintf(stderr, "glassbox-client run: %s needs %d ZeroMQ sockets in one process, the "
                        "most this libzmq allows is %d: run the clients in several processes "
                        "(--index)\n", what, sockets, most);
        return 1;
    }
    if (zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, sockets) != 0) {
        fprintf(stderr, "glassbox-client run: cannot set ZeroMQ's socket limit to %d: %s\n",
                sockets, zmq_strerror(errno));
        return 1;
    }
    gb_error_t err = {0};
    uint64_t need = (uint64_t)S_FDS_PER_CLIENT * (uint64_t)n + S_FDS_BASE, limit = 0;
    if (gb_fd_limit_raise(need, what, &limit, &err) != 0) {
        fprintf(stderr, "glassbox-client run: %s\n", err.msg);
        return 1;
    }
    gb_log_info("client: %s: up to %d ZeroMQ sockets and %llu file descriptors", what, sockets,
                (unsigned long long)limit);
    return 0;
}

/* The loop of one daemon. */
static int s_run_one(gb_daemon_t *d, gb_status_endpoint_t *ep)
{
    gb_error_t err = {0};
    int rc = 0;
    double welcomed_at = gb_time_now(); /* the grace counts from the start */
    while (!s_stop) {
        int s = gb_daemon_step(d, S_STEP_MS, &err);
        gb_daemon_status_t st = gb_daemon_status(d);
        double now = gb_time_now();
        if (st.welcomed)
            welcomed_at = now;
        gb_client_status_publish(ep, &st, now - welcomed_at);
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
    return rc;
}

/* The loop of N daemons: until every one has finished or failed, or a
 * signal. Exit 1 names every client that failed. */
static int s_run_virtual(gb_virtual_t *v)
{
    while (!s_stop && gb_virtual_step(v, S_VIRTUAL_STEP_MS) == 0) {
    }
    if (s_stop)
        gb_log_info("client: signal received; stopping %d clients", gb_virtual_count(v));
    gb_virtual_stop(v, S_LINGER_MS);
    int failed = gb_virtual_failed(v);
    for (int i = 0; i < failed; i++) {
        const char *name = NULL, *why = gb_virtual_failure(v, i, &name);
        fprintf(stderr, "glassbox-client run: %s failed: %s\n", name, why);
    }
    return failed ? 1 : 0;
}

/* What a client dealt its shard by the coordinator loads, and frees at the end. */
typedef struct {
    gb_data_source_t data; /* --data and the rest; the partition comes from the shard */
    gb_dataset_t *train, *test;
} s_shard_load_t;

static int s_load_shard(void *arg, const Glassbox__DataShard *shard, const gb_dataset_t **train,
                        const gb_dataset_t **test, gb_error_t *err)
{
    s_shard_load_t *l = arg;
    gb_data_source_t d = l->data;
    d.partition = shard->partition;
    d.clients = (int)shard->clients;
    d.index = (int)shard->index;
    d.partition_seed = shard->seed;
    int rc = gb_data_source_check(&d, err);
    if (rc == 0)
        rc = gb_data_source_load(&d, &l->train, &l->test, err);
    if (rc)
        return gb_error_prefix(err, rc, "the dealt shard: ");
    *train = l->train;
    *test = l->test;
    return 0;
}

/* The command; *config gets the --config file's storage, which holds
 * string options until the caller frees it after the run. */
static int s_cmd_run(int argc, char **argv, gb_args_config_t **config)
{
    const char *endpoint = NULL, *cert = NULL, *key = NULL, *ca_file = NULL;
    const char *server_name = S_DEFAULT_SERVER_NAME, *name = NULL, *log_level = NULL;
    const char *cert_dir = NULL, *prefix = NULL, *http = "none";
    int threads = 0, virt = 0, give_up = 0; /* threads 0: not given; give_up 0: never */
    bool json = false, dealt = false;
    gb_data_source_t data = gb_data_source_defaults();
    const char *config_file = NULL;
    enum { N_OWN = 16 };
    gb_arg_t opts[N_OWN + GB_DATA_SOURCE_ARGS + GB_DATA_SOURCE_PARTITION_ARGS] = {
        {"--config", GB_ARG_STRING, &config_file, 0, 0, NULL, "read options from FILE: 'key = value' lines, key a flag without --, # comments; flags given here win", false},
        {"--coordinator", GB_ARG_STRING, &endpoint, 0, 0, NULL, "tcp://HOST:PORT of the coordinator (required)", false},
        {"--cert", GB_ARG_STRING, &cert, 0, 0, NULL, "this client's certificate, PEM (required without --virtual)", false},
        {"--key", GB_ARG_STRING, &key, 0, 0, NULL, "its private key, PEM (required without --virtual)", false},
        {"--ca-file", GB_ARG_STRING, &ca_file, 0, 0, NULL, "the federation CA certificate, PEM (required)", false},
        {"--server-name", GB_ARG_STRING, &server_name, 0, 0, NULL, "name on the coordinator's certificate (default localhost, as 'ca init' names it)", false},
        {"--name", GB_ARG_STRING, &name, 0, 0, NULL, "name sent in Join (default: the certificate's; the certificate is what counts)", false},
        {"--virtual", GB_ARG_INT, &virt, 1, GB_VIRTUAL_MAX, NULL, "run N clients in this process: PREFIX K for K = --index .. --index+N-1, each on slice K of --clients", false},
        {"--cert-dir", GB_ARG_STRING, &cert_dir, 0, 0, NULL, "with --virtual: DIR/PREFIX K.crt and .key for each client, as 'ca issue --out DIR' writes them (required)", false},
        {"--name-prefix", GB_ARG_STRING, &prefix, 0, 0, NULL, "with --virtual: client names are PREFIX K (default client-)", false},
        {"--threads", GB_ARG_INT, &threads, 1, 256, NULL, "training threads (default: cores, at most 8); with --virtual the clients' tasks train one at a time, each with all of them", false},
        {"--give-up", GB_ARG_INT, &give_up, 1, 100000000, NULL, "exit 1 after S seconds without a session to the coordinator (default: never, for a daemon under systemd)", false},
        {"--json", GB_ARG_FLAG, &json, 0, 0, NULL, "one JSON object per line per finished task", false},
        {"--http", GB_ARG_STRING, &http, 0, 0, NULL, "HTTP endpoint ADDR:PORT for /healthz, /metrics, /status of this client, or none (default none)", false},
        {"--shard-from-coordinator", GB_ARG_FLAG, &dealt, 0, 0, NULL, "simulation: train on the slice of --data the coordinator deals this client by name (serve --simulate-clients), instead of --clients/--index", false},
        {"--log", GB_ARG_CHOICE, &log_level, 0, 0, "debug|info|warn|error", "log level (default info, or GLASSBOX_LOG)", false},
    };
    gb_data_source_args(&data, opts + N_OWN);
    gb_data_source_partition_args(&data, opts + N_OWN + GB_DATA_SOURCE_ARGS);
    const int n = (int)(sizeof opts / sizeof opts[0]);
    static const char *const required[] = {"--coordinator", NULL};
    int rc = gb_args_command_config(
        "glassbox-client run", "--coordinator tcp://HOST:7700 --cert F --key F --ca-file F "
                               "[options]\n"
                               "       glassbox-client run --virtual N --cert-dir DIR "
                               "--coordinator tcp://HOST:7700 --ca-file F --clients M [options]",
        "Joins the federation and trains on local data: for every task the coordinator\n"
        "sends, trains the global model on this client's data, evaluates and explains it\n"
        "as asked, and sends back the update (new weights minus global weights). Data\n"
        "never leaves the machine. Reconnects by itself; stops on SIGINT or SIGTERM, or\n"
        "when the coordinator says the federation has finished (exit 0), or after\n"
        "--give-up seconds without reaching it (exit 1). With --clients N the\n"
        "training split (after --limit) is cut into N slices and this client takes slice\n"
        "--index; the test split stays whole unless --partition-test is given.\n"
        "With --virtual N, N clients run in this one process, each with its own identity\n"
        "from --cert-dir and its own connection, sharing one loaded copy of the data:\n"
        "client K takes slice K (--clients must be at least --index + N). Their tasks\n"
        "train one at a time, in the order they arrive, each with --threads threads,\n"
        "while the other clients stay connected and idle clients cost no CPU.\n"
        "With --shard-from-coordinator the coordinator (serve --simulate-clients N) deals\n"
        "the slice by this client's name, so identical replicas need no setting of their own;\n"
        "with --virtual each client is dealt its own slice of the data loaded once.",
        opts, n, required, argc, argv, config);
    if (rc >= 0)
        return rc;
    if ((rc = s_check_mode(virt, cert, key, name, cert_dir, prefix, ca_file)))
        return rc;
    if (virt && strcmp(http, "none") != 0)
        return s_usage("--http: one endpoint per client process; not with --virtual");
    if (dealt && (data.clients != 1 || data.index != 0))
        return s_usage("--shard-from-coordinator: the coordinator deals the slices; give "
                       "neither --clients nor --index");
    gb_error_t err = {0};
    gb_virtual_options_t vo = {.endpoint = endpoint, .cert_dir = cert_dir,
                               .name_prefix = prefix, .ca_file = ca_file,
                               .server_name = server_name, .count = virt, .data = &data,
                               .dealt = dealt, .give_up_s = give_up,
                               .report = s_report_named, .report_arg = &json};
    if (gb_data_source_check(&data, &err))
        return s_usage(err.msg);
    /* Its counts now (exit 2); its files with the other files below (exit 1). */
    if (virt && gb_virtual_check(&vo, &err) && err.code == GB_EUSAGE)
        return s_usage(err.msg);
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
    if (!threads)
        threads = s_default_threads();
    /* The files first: a missing certificate should not wait for the data. */
    const char *files[][2] = {{"--ca-file", ca_file}, {"--cert", cert}, {"--key", key}};
    for (int i = 0; i < (virt ? 1 : 3); i++)
        if (access(files[i][1], R_OK) != 0) {
            fprintf(stderr, "glassbox-client run: %s: cannot read '%s': %s\n", files[i][0],
                    files[i][1], strerror(errno));
            return 1;
        }
    if (virt && gb_virtual_check(&vo, &err))
        return err.code == GB_EUSAGE ? s_usage(err.msg) : s_fail("", &err);

    /* --virtual loads the whole (limited) split once; the clients' slices
     * are cut from it in gb_virtual_new. */
    gb_data_source_t load = data;
    if (virt)
        load.clients = 1, load.index = 0;
    gb_dataset_t *train = NULL, *test = NULL;
    /* A dealt single client loads its slice when dealt; dealt virtual
     * clients cut theirs from the whole split, loaded once here. */
    if ((!dealt || virt) && gb_data_source_load(&load, &train, &test, &err))
        return s_fail("", &err);
    char desc[256];
    gb_data_source_describe(&data, desc, sizeof desc);
    if (dealt)
        snprintf(desc, sizeof desc, "%s, slice dealt by the coordinator", data.data);
    s_shard_load_t shard = {.data = data};

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    if (!ctx) {
        fprintf(stderr, "glassbox-client run: cannot make a ZeroMQ context\n");
        rc = 1;
    } else if (virt && s_room_for_virtual(ctx, virt) != 0) {
        rc = 1;
    } else if (virt) {
        vo.zmq_ctx = ctx;
        vo.train = train;
        vo.test = test;
        vo.threads = threads;
        gb_virtual_t *v = gb_virtual_new(&vo, &err);
        if (!dealt)
            gb_dataset_destroy(&train); /* the clients hold their slices */
        rc = v ? s_run_virtual(v) : s_fail("", &err);
        gb_virtual_destroy(&v);
    } else {
        gb_daemon_options_t o = {.zmq_ctx = ctx, .endpoint = endpoint, .cert_file = cert,
                                 .key_file = key, .ca_file = ca_file,
                                 .server_name = server_name, .client_name = name,
                                 .train = train, .test = test, .dataset = desc,
                                 .threads = threads, .give_up_s = give_up,
                                 .load_shard = dealt ? s_load_shard : NULL,
                                 .shard_arg = &shard, .report = s_report, .report_arg = &json};
        gb_status_endpoint_t *ep = NULL;
        if (strcmp(http, "none") != 0 &&
            !(ep = gb_status_endpoint_new(http, S_HTTP_STALL_S, &err)))
            rc = s_fail("--http: ", &err);
        gb_daemon_t *d = rc ? NULL : gb_daemon_new(&o, &err);
        if (!rc)
            rc = d ? s_run_one(d, ep) : s_fail("", &err);
        gb_daemon_destroy(&d);
        gb_status_endpoint_destroy(&ep);
    }
    if (ctx)
        zmq_ctx_term(ctx);
    gb_dataset_destroy(&train);
    gb_dataset_destroy(&test);
    gb_dataset_destroy(&shard.train);
    gb_dataset_destroy(&shard.test);
    return rc;
}

int gb_cmd_run(int argc, char **argv)
{
    gb_args_config_t *config = NULL;
    int rc = s_cmd_run(argc, argv, &config);
    gb_args_config_destroy(&config);
    return rc;
}
