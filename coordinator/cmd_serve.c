/* `glassbox-coordinator serve`: the coordinator as a daemon. The front door
 * (front_door.h) takes clients over mutual TLS, enrollment with tokens and
 * revocations without a restart; the federation (federation.h) runs the
 * rounds: tasks out, updates in, aggregation, signed publications and
 * checkpoints. One line per finished round on standard output (a JSON
 * object with --json). Runs until the last round is done, or SIGINT or
 * SIGTERM.
 *
 * The process has one event loop (net/event_loop.h), owned here: the
 * federation and its front door are attached to it (their sockets, the
 * round machine's wake-up, the outbox's retry, the CRL check), and serve's
 * own duty, the status publication and the check whether a finished
 * federation may stop, is a periodic timer of S_STATUS_PERIOD_S. The loop
 * turns through gb_federation_step, the same turn the tests make, and
 * sleeps until its nearest deadline. A signal cuts the poll short (the turn
 * returns 0), and the stop flag is looked at after every turn. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "aggregate.h"
#include "commands.h"
#include "federation.h"
#include "front_door.h"
#include "net/event_loop.h"
#include "net/http_server.h"
#include "net/pki.h"
#include "net/status_endpoint.h"
#include "serve_status.h"
#include "server_optim.h"
#include "update_probe.h"
#include "util/args.h"
#include "util/fd_limit.h"
#include "util/json.h"
#include "util/log.h"
#include "util/time.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* What the command line says, before it is turned into options. */
#define S_FEDERATION_IG_STEPS 8 /* IG steps a round asks for when --explain-steps is not given */

typedef struct {
    gb_front_door_options_t door;
    gb_federation_options_t fed;
    const char *log_level, *optimizer, *explain, *publish, *guard;
    const char *http;  /* the HTTP endpoint's address, or "none" */
    bool http_given;   /* --http was given: failing to bind it is an error */
    int min_clients, per_round, quorum, epochs, steps, batch, explain_samples, explain_steps;
    int min_class_clients; /* --min-class-clients */
    double fraction, deadline_s, lr, momentum, weight_decay, mu, clip;
    double finished_grace_s; /* how long a finished federation answers clients coming back */
    uint64_t rounds, seed;
    int simulate_clients;
    bool client_eval, json;
    char key[4096], cert[4096];
} s_cli_t;

/* The round's bias view and flags as members of its JSON line:
 * "class_accuracy" {name: accuracy}, "client_accuracy" {clients, min, p10,
 * median, max} (when the round has them) and "flagged" [names]; names
 * through gb_json_string (their bytes came from outside). */
static void s_add_bias_json(json_t *o, const gb_federation_round_t *r)
{
    if (!o)
        return;
    char label[GB_CLASS_NAMES_LABEL_CAP];
    if (r->n_classes) {
        json_t *c = json_object();
        for (int k = 0; c && k < r->n_classes; k++)
            if (isfinite(r->class_accuracy[k]))
                json_object_set_new(
                    c, gb_class_names_label(r->class_names, k, label, sizeof label),
                    gb_json_real(r->class_accuracy[k]));
        json_object_set_new(o, "class_accuracy", c);
    }
    if (r->n_class_support) {
        json_t *a = json_array();
        for (size_t k = 0; a && k < r->n_class_support; k++) {
            const gb_federation_class_support_t *cs = &r->class_support[k];
            json_array_append_new(
                a, json_pack("{s:o, s:I, s:I, s:b}", "class",
                             gb_json_string(gb_class_names_label(r->class_names, (int)k, label,
                                                                 sizeof label)),
                             "clients", (json_int_t)cs->clients, "samples",
                             (json_int_t)cs->samples, "weak", cs->weak));
        }
        json_object_set_new(o, "class_support", a);
    }
    if (r->clients_evaluated)
        json_object_set_new(o, "client_accuracy",
                            json_pack("{s:I, s:o, s:o, s:o, s:o}", "clients",
                                      (json_int_t)r->clients_evaluated, "min",
                                      gb_json_real_or_null(r->client_accuracy_min), "p10",
                                      gb_json_real_or_null(r->client_accuracy_p10), "median",
                                      gb_json_real_or_null(r->client_accuracy_median), "max",
                                      gb_json_real_or_null(r->client_accuracy_max)));
    json_t *flagged = json_array();
    for (size_t i = 0; flagged && i < r->flagged; i++)
        json_array_append_new(flagged, gb_json_string(r->flagged_clients[i]));
    json_object_set_new(o, "flagged", flagged);
}

/* The weakly explained classes for the text line: ", weakly explained
 * (fewer than 3 clients): Sandal 1, Bag 0", at most S_WEAK_SHOWN of them
 * and how many more (a model with thousands of classes would otherwise
 * fill the screen; --json and /metrics have them all). */
#define S_WEAK_SHOWN 10
static void s_print_weak_classes(const gb_federation_round_t *r)
{
    size_t weak = 0;
    char label[GB_CLASS_NAMES_LABEL_CAP];
    for (size_t k = 0; k < r->n_class_support; k++) {
        const gb_federation_class_support_t *cs = &r->class_support[k];
        if (!cs->weak)
            continue;
        if (weak == 0)
            printf(", weakly explained (fewer than %u clients):", (unsigned)r->min_class_clients);
        if (weak < S_WEAK_SHOWN)
            printf("%s %s %u", weak ? "," : "",
                   gb_class_names_label(r->class_names, (int)k, label, sizeof label),
                   (unsigned)cs->clients);
        weak++;
    }
    if (weak > S_WEAK_SHOWN)
        printf(" and %zu more", weak - S_WEAK_SHOWN);
}

/* The class the model fails most ("Shirt 58.1%"), for the text line. */
static void s_print_weakest_class(const gb_federation_round_t *r)
{
    int worst = -1;
    for (int k = 0; k < r->n_classes; k++)
        if (isfinite(r->class_accuracy[k]) &&
            (worst < 0 || r->class_accuracy[k] < r->class_accuracy[worst]))
            worst = k;
    char label[GB_CLASS_NAMES_LABEL_CAP];
    if (worst >= 0)
        printf(", weakest class %s %.1f%%",
               gb_class_names_label(r->class_names, worst, label, sizeof label),
               100 * r->class_accuracy[worst]);
}

static void s_round_line(void *arg, const gb_federation_round_t *r)
{
    const s_cli_t *c = arg;
    if (c->json) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:o}", "round", (json_int_t)r->round,
                              "participants", (json_int_t)r->participants, "samples",
                              (json_int_t)r->samples, "seconds", gb_json_real_or_null(r->seconds));
        const struct {
            const char *key;
            double v;
        } kv[] = {{"train_loss", r->train_loss},      {"train_accuracy", r->train_accuracy},
                  {"client_test_loss", r->client_loss}, {"client_test_accuracy", r->client_accuracy},
                  {"test_loss", r->test_loss},        {"test_accuracy", r->test_accuracy},
                  {"max_explanation_distance", r->max_distance}};
        for (size_t i = 0; o && i < sizeof kv / sizeof kv[0]; i++)
            if (isfinite(kv[i].v)) /* a figure the round did not measure is left out */
                json_object_set_new(o, kv[i].key, gb_json_real(kv[i].v));
        if (o && r->max_distance_client) /* a client's id: its bytes came from outside */
            json_object_set_new(o, "max_distance_client", gb_json_string(r->max_distance_client));
        s_add_bias_json(o, r);
        gb_error_t err = {0};
        if (gb_json_print(stdout, o, &err))
            fprintf(stderr, "glassbox-coordinator serve: %s\n", err.msg);
        json_decref(o);
    } else {
        printf("round %llu: %zu clients, %llu samples", (unsigned long long)r->round,
               r->participants, (unsigned long long)r->samples);
        if (isfinite(r->train_loss))
            printf(", train loss %.4f", r->train_loss);
        if (isfinite(r->test_accuracy))
            printf(", test accuracy %.2f%%", 100 * r->test_accuracy);
        else if (isfinite(r->client_accuracy))
            printf(", clients' test accuracy %.2f%%", 100 * r->client_accuracy);
        s_print_weakest_class(r);
        if (r->clients_evaluated > 1)
            printf(", clients' accuracy %.1f-%.1f%% (median %.1f%%)",
                   100 * r->client_accuracy_min, 100 * r->client_accuracy_max,
                   100 * r->client_accuracy_median);
        s_print_weak_classes(r);
        if (r->max_distance_client)
            printf(", explanation farthest from the rest: %s (%.3f)", r->max_distance_client,
                   r->max_distance);
        if (r->flagged) {
            printf(", flagged:");
            for (size_t i = 0; i < r->flagged; i++)
                printf("%s %s", i ? "," : "", r->flagged_clients[i]);
        }
        printf(", %.1f s\n", r->seconds);
    }
    fflush(stdout);
}

/* Turns the parsed flags into the federation's options. */
static int s_options(s_cli_t *c)
{
    gb_federation_options_t *o = &c->fed;
    gb_rounds_config_default(&o->rounds);
    gb_rounds_config_t *r = &o->rounds;
    r->min_clients = (uint32_t)c->min_clients;
    r->min_per_round = (uint32_t)(c->per_round ? c->per_round : c->min_clients);
    r->quorum = c->quorum ? (uint32_t)c->quorum : r->min_per_round;
    r->fraction = c->fraction;
    r->deadline_ms = (uint64_t)(c->deadline_s * 1000);
    r->total_rounds = c->rounds;
    r->seed = c->seed;
    r->client_eval = c->client_eval;
    /* a restarted coordinator's task ids must not meet the old run's */
    r->task_id_base = gb_time_unix_ms() << 12;
    if (r->max_clients < r->min_clients)
        r->max_clients = r->min_clients;
    glassbox__train_config__init(&o->train);
    o->train.epochs = (uint32_t)c->epochs;
    o->train.max_steps = (uint32_t)c->steps;
    o->train.batch_size = (uint32_t)c->batch;
    bool adam = c->optimizer && strcmp(c->optimizer, "adam") == 0;
    o->train.optimizer = adam ? GLASSBOX__OPTIMIZER__OPTIMIZER_ADAM
                              : GLASSBOX__OPTIMIZER__OPTIMIZER_SGD;
    o->train.learning_rate = c->lr > 0 ? c->lr : (adam ? 0.001 : 0.05);
    o->train.momentum = c->momentum;
    o->train.weight_decay = c->weight_decay;
    o->train.fedprox_mu = c->mu;
    o->train.clip_norm = c->clip;
    o->train.seed = c->seed;
    o->simulate_clients = (uint32_t)c->simulate_clients;
    o->simulate_seed = c->seed;
    static const struct {
        const char *name;
        Glassbox__ExplainMethod m;
    } methods[] = {{"none", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE},
                   {"ig", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS},
                   {"gradxinput", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRADIENT_X_INPUT},
                   {"saliency", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY},
                   {"smoothgrad", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SMOOTHGRAD},
                   {"gradcam", GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM}};
    o->explain = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS;
    for (size_t i = 0; c->explain && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(c->explain, methods[i].name) == 0)
            o->explain = methods[i].m;
    o->guard_flags = c->guard && strcmp(c->guard, "flags") == 0;
    o->min_class_clients = (uint32_t)c->min_class_clients;
    if (o->min_class_clients > r->max_clients) {
        fprintf(stderr, "glassbox-coordinator serve: --min-class-clients %d is more than the "
                        "%u clients the federation takes\n", c->min_class_clients,
                (unsigned)r->max_clients);
        return 2;
    }
    o->explain_samples = (uint32_t)c->explain_samples;
    o->explain_steps = (uint32_t)c->explain_steps;
    /* A federation explains every client every round: 16 Gauss-Legendre
     * points instead of a client's 32 halve that cost, and still leave IG's
     * completeness error near 0.7% on a trained LeNet (0.3% at 32), far
     * inside the 5% past which the client doubles the steps by itself. */
    if (!o->explain_steps && o->explain == GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS)
        o->explain_steps = S_FEDERATION_IG_STEPS;
    o->publish = c->publish && strcmp(c->publish, "none") != 0 ? c->publish : NULL;
    snprintf(c->key, sizeof c->key, "%s/%s", c->door.ca_dir, GB_CA_COORD_KEY_FILE);
    snprintf(c->cert, sizeof c->cert, "%s/%s", c->door.ca_dir, GB_CA_COORD_CERT_FILE);
    o->key_file = c->key;
    o->cert_file = c->cert;
    o->federation = c->door.federation;
    gb_error_t err = {0};
    gb_agg_spec_t agg;
    gb_server_optim_cfg_t opt;
    if (o->aggregator && gb_agg_spec_parse(o->aggregator, &agg, &err) != 0) {
        fprintf(stderr, "glassbox-coordinator serve: --aggregator: %s\n", err.msg);
        return 2;
    }
    if (o->server_optimizer && gb_server_optim_parse(o->server_optimizer, &opt, &err) != 0) {
        fprintf(stderr, "glassbox-coordinator serve: --server-optimizer: %s\n", err.msg);
        return 2;
    }
    if (gb_rounds_config_check(r, &err) != 0) {
        fprintf(stderr, "glassbox-coordinator serve: %s\n", err.msg);
        return 2;
    }
    return 0;
}

/* A finished federation stops once its clients have heard so: every one
 * that was connected has left (the notice reached it: frames still in the
 * link's queues would die with the socket; at most S_DRAIN_S), and every
 * one that was away has come back and been told, or --finished-grace has
 * passed. A run that resumed a finished federation does not know who took
 * part, so it answers for the whole grace period: a client that finds a
 * restarted coordinator hears "finished" and exits, instead of retrying
 * for ever. */
#define S_DRAIN_S 5.0
/* How often serve publishes its status and looks whether a finished
 * federation may stop: the cadence the old step loop had (a step of at
 * most 200 ms each turn), fine enough for /status and for stopping. */
#define S_STATUS_PERIOD_S 0.2
static bool s_finished_may_stop(const s_cli_t *c, const gb_federation_t *fed,
                                const gb_front_door_t *door, double *finished_at)
{
    double now = gb_time_now();
    size_t untold = gb_federation_untold(fed);
    if (*finished_at == 0) {
        *finished_at = now;
        if (untold && c->finished_grace_s > 0) {
            if (untold == SIZE_MAX)
                gb_log_info("coordinator: the federation had finished; telling clients that "
                            "come back for %.0f s (--finished-grace)", c->finished_grace_s);
            else
                gb_log_info("coordinator: %zu clients were away at the end; waiting up to "
                            "%.0f s for them to hear that the federation has finished "
                            "(--finished-grace)", untold, c->finished_grace_s);
        }
    }
    double waited = now - *finished_at;
    bool drained = (gb_front_door_joined(door) == 0 && gb_front_door_queued_bytes(door) == 0) ||
                   waited > S_DRAIN_S;
    bool graced = untold == 0 || waited >= c->finished_grace_s;
    return (drained && graced) || waited > c->finished_grace_s + S_DRAIN_S;
}

/* What the status timer needs. */
typedef struct {
    const s_cli_t *c;           /* the run's settings */
    gb_federation_t *fed;       /* borrowed */
    gb_front_door_t *door;      /* borrowed */
    gb_status_endpoint_t *ep;   /* borrowed, may be NULL */
    double finished_at;         /* when the federation was first seen finished (0: not) */
    bool done;                  /* it may stop: the loop ends after this turn */
} s_serve_t;

static void s_on_status(gb_event_loop_t *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    s_serve_t *sv = arg;
    gb_serve_status_publish(sv->ep, sv->fed, &sv->c->fed, false);
    if (gb_federation_finished(sv->fed) &&
        s_finished_may_stop(sv->c, sv->fed, sv->door, &sv->finished_at))
        sv->done = true;
}

/* A finished round's gauges are set before its line is printed, so whoever
 * reads the line and then /metrics sees that round's figures, not those of
 * the status timer's last turn. */
static void s_on_round_done(void *arg, const gb_federation_round_t *r)
{
    s_serve_t *sv = arg;
    if (sv->fed)
        gb_serve_status_publish(sv->ep, sv->fed, &sv->c->fed, false);
    s_round_line((void *)sv->c, r);
}

static int s_run(s_cli_t *c)
{
    gb_error_t err = {0};
    /* a descriptor per client connection: the usual soft limit of 1,024 is
     * too few for a large federation, the hard limit is what the operator
     * allows (the front door refuses new connections cleanly near it) */
    uint64_t fds = 0;
    if (gb_fd_limit_raise(0, NULL, &fds, &err) != 0)
        gb_log_warn("coordinator: %s", err.msg);
    else
        gb_log_info("coordinator: up to %llu file descriptors", (unsigned long long)fds);
    void *ctx = zmq_ctx_new();
    gb_event_loop_t *loop = ctx ? gb_event_loop_new(&err) : NULL;
    gb_front_door_t *door = loop ? gb_front_door_new(ctx, &c->door, &err) : NULL;
    s_serve_t sv = {.c = c, .door = door};
    c->fed.round_done = s_on_round_done;
    c->fed.round_done_arg = &sv;
    gb_federation_t *fed = door ? gb_federation_new(ctx, door, &c->fed, &err) : NULL;
    sv.fed = fed;
    if (!fed || gb_federation_attach(fed, loop, &err) != 0 ||
        !gb_event_loop_add_timer(loop, gb_time_now(), S_STATUS_PERIOD_S, s_on_status, &sv,
                                 &err)) {
        fprintf(stderr, "glassbox-coordinator serve: %s\n",
                ctx ? err.msg : "cannot make a ZeroMQ context");
        gb_federation_destroy(&fed);
        gb_front_door_destroy(&door);
        gb_event_loop_destroy(&loop);
        if (ctx)
            zmq_ctx_term(ctx);
        return 1;
    }
    /* the default address may be taken (another coordinator on this
     * machine): then serve runs without it; an address asked for must work */
    gb_status_endpoint_t *ep = NULL;
    if (strcmp(c->http, "none") != 0 &&
        !(ep = gb_status_endpoint_new(c->http, GB_SERVE_STALL_S, &err))) {
        if (c->http_given) {
            fprintf(stderr, "glassbox-coordinator serve: --http: %s\n", err.msg);
            gb_federation_destroy(&fed);
            gb_front_door_destroy(&door);
            gb_event_loop_destroy(&loop);
            zmq_ctx_term(ctx);
            return 1;
        }
        gb_log_warn("coordinator: no HTTP endpoint: %s", err.msg);
    }
    printf("listening on %s\n", gb_front_door_endpoint(door));
    if (ep)
        printf("http on %s (port %u)\n", c->http, (unsigned)gb_status_endpoint_port(ep));
    fflush(stdout);
    sv.ep = ep;
    int rc = 0;
    while (!s_stop && !sv.done) {
        /* -1: the status timer always bounds the wait */
        if (gb_federation_step(fed, -1, &err) != 0) {
            fprintf(stderr, "glassbox-coordinator serve: %s\n", err.msg);
            rc = 1;
            break;
        }
    }
    gb_log_info("coordinator: stopping after round %llu",
                (unsigned long long)gb_federation_round(fed));
    uint64_t first = 0;
    const char *why = NULL;
    gb_federation_flush(fed);
    size_t unwritten = gb_federation_unwritten(fed, &first, &why);
    if (unwritten) {
        fprintf(stderr, "glassbox-coordinator serve: %zu finished round(s) from round %llu on "
                        "are not published to --out: %s (they are kept in --state and written "
                        "by the next run)\n", unwritten, (unsigned long long)first, why);
        rc = 1;
    }
    gb_serve_status_publish(ep, fed, &c->fed, true);
    gb_status_endpoint_destroy(&ep);
    gb_federation_destroy(&fed);
    gb_front_door_destroy(&door);
    gb_event_loop_destroy(&loop);
    zmq_ctx_term(ctx);
    return rc;
}

static int s_serve(s_cli_t *c, gb_arg_t *opts, int n);

int gb_cmd_serve(int argc, char **argv)
{
    s_cli_t c = {.min_clients = 2, .fraction = 1, .deadline_s = 600, .epochs = 1, .batch = 32,
                 .seed = 1, .publish = NULL, .http = "127.0.0.1:7702",
                 .finished_grace_s = 30,
                 .min_class_clients = (int)GB_FED_DEFAULT_MIN_CLASS_CLIENTS};
    c.fed.model = "lenet";
    c.fed.probe_samples = GB_UPDATE_PROBE_SAMPLES;
    const char *config_file = NULL;
    gb_arg_t opts[] = {
        {"--config", GB_ARG_STRING, &config_file, 0, 0, NULL, "read options from FILE: 'key = value' lines, key a flag without --, # comments; flags given here win", false},
        {"--ca", GB_ARG_STRING, &c.door.ca_dir, 0, 0, NULL, "the CA directory of 'ca init' (required)", false},
        {"--listen", GB_ARG_STRING, &c.door.listen, 0, 0, NULL, "endpoint for clients (default tcp://0.0.0.0:7700)", false},
        {"--publish", GB_ARG_STRING, &c.publish, 0, 0, NULL, "PUB endpoint for signed publications, e.g. tcp://127.0.0.1:7701, or none (default none: the PUB socket authenticates nobody, so its publications are public)", false},
        {"--http", GB_ARG_STRING, &c.http, 0, 0, NULL, "HTTP endpoint ADDR:PORT for /healthz, /metrics, /status, or none (default 127.0.0.1:7702)", false},
        {"--federation", GB_ARG_STRING, &c.door.federation, 0, 0, NULL, "federation name told to clients (default glassbox)", false},
        {"--model", GB_ARG_STRING, &c.fed.model, 0, 0, NULL, "initial model: lenet, mlp, lstm, a spec file or a model file (default lenet)", false},
        {"--model-seed", GB_ARG_U64, &c.fed.model_seed, 0, 0, NULL, "initialisation seed (default 1)", false},
        {"--rounds", GB_ARG_U64, &c.rounds, 0, 0, NULL, "rounds to run, then stop (default 0: forever)", false},
        {"--min-clients", GB_ARG_INT, &c.min_clients, 1, 1000000, NULL, "connected clients a round waits for (default 2)", false},
        {"--fraction", GB_ARG_FLOAT, &c.fraction, 1e-6, 1, NULL, "share of the connected clients selected each round (default 1)", false},
        {"--per-round", GB_ARG_INT, &c.per_round, 1, 1000000, NULL, "fewest clients selected (default --min-clients)", false},
        {"--quorum", GB_ARG_INT, &c.quorum, 1, 1000000, NULL, "fewest updates a round aggregates at its deadline (default --per-round)", false},
        {"--deadline", GB_ARG_FLOAT, &c.deadline_s, 0.1, 604800, NULL, "seconds a round waits for updates (default 600)", false},
        {"--seed", GB_ARG_U64, &c.seed, 0, 0, NULL, "selection and training seed (default 1)", false},
        {"--aggregator", GB_ARG_STRING, &c.fed.aggregator, 0, 0, NULL, "fedavg, median, trimmed_mean:B, krum:F, multi_krum:F:M (default fedavg)", false},
        {"--server-optimizer", GB_ARG_STRING, &c.fed.server_optimizer, 0, 0, NULL, "sgd, fedadam, fedyogi, fedadagrad, e.g. fedadam:lr=0.01 (default sgd)", false},
        {"--epochs", GB_ARG_INT, &c.epochs, 1, 1000, NULL, "local epochs per round (default 1)", false},
        {"--steps", GB_ARG_INT, &c.steps, 0, 100000000, NULL, "local steps per round instead, if > 0", false},
        {"--batch", GB_ARG_INT, &c.batch, 1, 65536, NULL, "local mini-batch (default 32)", false},
        {"--lr", GB_ARG_FLOAT, &c.lr, 1e-12, 1e3, NULL, "local learning rate (default 0.05 sgd, 0.001 adam)", false},
        {"--optimizer", GB_ARG_CHOICE, &c.optimizer, 0, 0, "sgd|adam", "local optimiser (default sgd)", false},
        {"--momentum", GB_ARG_FLOAT, &c.momentum, 0, 0.999999, NULL, "local SGD momentum (default 0)", false},
        {"--weight-decay", GB_ARG_FLOAT, &c.weight_decay, 0, 1e3, NULL, "local weight decay (default 0)", false},
        {"--fedprox-mu", GB_ARG_FLOAT, &c.mu, 0, 1e6, NULL, "FedProx proximal term (default 0: FedAvg)", false},
        {"--clip-norm", GB_ARG_FLOAT, &c.clip, 0, 1e12, NULL, "clip each update to this L2 norm (default 0: off)", false},
        {"--simulate-clients", GB_ARG_INT, &c.simulate_clients, 1, 100000, NULL, "simulation: deal the training split in N slices to clients started with 'run --shard-from-coordinator', one each by name, kept in --state (default: none)", false},
        {"--simulate-partition", GB_ARG_STRING, &c.fed.simulate_partition, 0, 0, NULL, "how those slices are cut: iid, dirichlet:ALPHA or shards:K (default iid; seeded by --seed)", false},
        {"--max-client-samples", GB_ARG_U64, &c.fed.max_client_samples, 0, 0, NULL, "most samples one client may claim in its Join or any result (default 10000000)", false},
        {"--max-norm-ratio", GB_ARG_FLOAT, &c.fed.max_norm_ratio, 1.5, 1e9, NULL, "refuse an update whose L2 norm is more than this times the last round's median (and the global model's norm) (default 10)", false},
        {"--guard", GB_ARG_CHOICE, &c.guard, 0, 0, "none|flags", "flags: hold each round's updates until its clients are scored and leave out those of the clients it flags, and from then on their explanations too (default none: flags are only reported)", false},
        {"--max-explanation-share", GB_ARG_FLOAT, &c.fed.max_explanation_share, 0, 1, NULL, "most of a round's aggregate explanation one client may carry, as a share of the selected clients' samples (default 0: each client weighs its own samples, no further cap)", false},
        {"--explain", GB_ARG_CHOICE, &c.explain, 0, 0, "none|ig|gradxinput|saliency|smoothgrad|gradcam", "what clients explain each round (default ig)", false},
        {"--explain-samples", GB_ARG_INT, &c.explain_samples, 0, 1000000, NULL, "local samples each client explains (default: the client's)", false},
        {"--explain-steps", GB_ARG_INT, &c.explain_steps, 0, 4096, NULL, "IG steps (default 8) or SmoothGrad samples (default: the client's)", false},
        {"--client-eval", GB_ARG_FLAG, &c.client_eval, 0, 0, NULL, "clients also evaluate each global model on their test data", false},
        {"--class-names", GB_ARG_STRING, &c.fed.class_names_file, 0, 0, NULL, "file of class names, one a line, exactly the model's classes, for the round line, /metrics and the reports (default: Fashion-MNIST's with --test-data fashion-mnist, else 'class K')", false},
        {"--min-class-clients", GB_ARG_INT, &c.min_class_clients, 0, 1000000, NULL, "a class whose aggregate explanation rests on fewer clients is marked weakly explained; 0 or 1: never (default 2)", false},
        {"--probe-samples", GB_ARG_INT, &c.fed.probe_samples, 0, GB_UPDATE_PROBE_MAX_SAMPLES, NULL, "test samples (of --test-data) on which serve measures what each update teaches, a flag signal; 0: none (default 8)", false},
        {"--test-data", GB_ARG_STRING, &c.fed.test_data, 0, 0, NULL, "evaluate each round's model on this data set's test split (e.g. fashion-mnist)", false},
        {"--threads", GB_ARG_INT, &c.fed.threads, 1, 256, NULL, "threads for that evaluation and for FedAvg's aggregation (default 1)", false},
        {"--state", GB_ARG_STRING, &c.fed.state_dir, 0, 0, NULL, "checkpoint directory; a restart resumes from it", false},
        {"--keep", GB_ARG_INT, &c.fed.keep_checkpoints, 1, 1000000, NULL, "checkpoints kept (default 3)", false},
        {"--out", GB_ARG_STRING, &c.fed.out_dir, 0, 0, NULL, "write each round's signed publication and explanation report here, and the report page index.html with its history.json", false},
        {"--finished-grace", GB_ARG_FLOAT, &c.finished_grace_s, 0, 86400, NULL, "seconds a finished federation keeps telling clients that come back that it has finished, so they exit 0 (default 30)", false},
        {"--cert-days", GB_ARG_INT, &c.door.cert_days, 1, 36500, NULL, "validity of certificates issued by enrollment (default 365)", false},
        {"--heartbeat-ms", GB_ARG_INT, &c.door.heartbeat_interval_ms, 100, 3600000, NULL, "how often clients send heartbeats (default 5000)", false},
        {"--timeout-ms", GB_ARG_INT, &c.door.heartbeat_timeout_ms, 300, 86400000, NULL, "silence that ends a client's session (default 30000)", false},
        {"--json", GB_ARG_FLAG, &c.json, 0, 0, NULL, "one JSON object per finished round", false},
        {"--log", GB_ARG_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", "log level (default info, or GLASSBOX_LOG)", false},
    };
    const int n = (int)(sizeof opts / sizeof opts[0]);
    static const char *const required[] = {"--ca", NULL};
    gb_args_config_t *config = NULL; /* holds the file's strings until serve ends */
    int rc = gb_args_command_config(
        "glassbox-coordinator serve", "--ca DIR [options]",
        "Runs the federation. Clients with a certificate from the CA join over\n"
        "mutual TLS 1.3; clients without one may enroll with a token ('token\n"
        "create'); crl.pem is reloaded when 'ca revoke' rewrites it. Each round\n"
        "selects clients, sends them the global model, combines their updates,\n"
        "publishes the new model with the aggregate explanation (signed), and\n"
        "checkpoints. Stops after --rounds (once the clients have heard so, or\n"
        "--finished-grace has passed), or on SIGINT or SIGTERM.",
        opts, n, required, argc, argv, &config);
    if (rc < 0) {
        rc = s_serve(&c, opts, n);
        gb_log_report_held();
    }
    gb_args_config_destroy(&config);
    return rc;
}

/* What follows the parse: checks across flags, then the run. */
static int s_serve(s_cli_t *c_, gb_arg_t *opts, int n)
{
    s_cli_t c = *c_;
    int rc;
    c.http_given = gb_args_find(opts, n, "--http")->seen;
    if (strcmp(c.http, "none") != 0) {
        struct sockaddr_storage sa;
        socklen_t sa_len;
        gb_error_t err = {0};
        if (gb_http_addr_parse(c.http, &sa, &sa_len, &err) != 0) {
            fprintf(stderr, "glassbox-coordinator serve: --http: %s\n", err.msg);
            return 2;
        }
    }
    if (c.log_level) {
        enum gb_log_level level;
        if (gb_log_parse_level(c.log_level, &level) == 0)
            gb_log_set_level(level);
    }
    /* compared with the front door's defaults when only one is given */
    int interval = c.door.heartbeat_interval_ms ? c.door.heartbeat_interval_ms : 5000;
    int timeout = c.door.heartbeat_timeout_ms ? c.door.heartbeat_timeout_ms : 30000;
    if (timeout <= interval) {
        fprintf(stderr, "glassbox-coordinator serve: --timeout-ms must be longer than "
                        "--heartbeat-ms\n");
        return 2;
    }
    if ((rc = s_options(&c)) != 0)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return s_run(&c);
}
