/* Virtual clients: N client daemons driven from one thread (see
 * virtual_clients.h). The partition is assigned once over the whole training
 * split (one owner array) and each client's indices are read off it, rather
 * than calling gb_partition_client N times, which would redo the shuffle and
 * the Dirichlet draws N times for the same answer. A regression split has no
 * labels: it is cut iid over a zero label, as data_source.c does for one
 * client, so client K's slice is the same in both commands.
 *
 * Each daemon's report goes through a small per-client record that adds the
 * client's name, since the daemon only knows its report argument.
 *
 * The process has one event loop (net/event_loop.h): the shared run queue's
 * descriptor is registered first (drained before any daemon looks at its
 * worker) and every daemon is a source of it (gb_daemon_attach), so a step
 * is one zmq_poll over every active daemon's items and the queue, for as
 * long as the nearest deadline of any daemon allows; then only the daemons
 * with a ready item or a deadline that came are stepped, each with timeout
 * 0. The older loop gave each daemon a slice of a 20 ms step in turn, and a
 * slice under 2 ms polled without waiting: 20 idle clients kept a core
 * busy. */
#include "virtual_clients.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/partition.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

#define S_DEFAULT_PREFIX "client-"
#define S_LINGER_MS 1000 /* for the close_notify of a daemon that finished or failed */
#define S_HEARTBEAT_GRID_MS 250 /* the daemons' heartbeats share wake-ups on this grid */

typedef struct {
    gb_virtual_t *owner;   /* back pointer, for the report callback */
    char *name;            /* PREFIX K */
    char *error;           /* what went wrong (NULL: nothing) */
    gb_daemon_t *daemon;   /* the client's daemon */
    gb_dataset_t *train;   /* its training slice (owned) */
    gb_dataset_t *test;    /* its test slice when the test split is cut (owned) */
    bool done;             /* finished, failed or stopped: no longer stepped */
    bool failed;           /* its daemon failed (error says why, if memory allowed) */
} s_client_t;

struct gb_virtual {
    s_client_t *clients;         /* count of them */
    gb_daemon_queue_t *queue;    /* the run queue every daemon's tasks share */
    gb_task_engine_t *engine;    /* the model and buffers their runners share */
    const gb_dataset_t *train;   /* dealt: the whole training split slices are cut from */
    const gb_dataset_t *test;    /* dealt: the test split every client evaluates on */
    gb_data_source_t data;       /* dealt: --data and the rest; the shard gives the cut */
    int32_t *dealt_owner;        /* dealt: the owner of every training sample under the cut
                                    the shards named so far (all name the same one) */
    char dealt_key[128];         /* that cut: partition, clients and seed */
    gb_event_loop_t *loop;       /* the process's loop: the queue's descriptor, then every
                                    active daemon as a source */
    int active;                  /* daemons not yet finished, failed or stopped */
    int count;                   /* clients made */
    int failed;                  /* clients with an error */
    gb_virtual_report_fn report; /* the caller's report */
    void *report_arg;            /* its argument */
};

static const char *s_prefix(const gb_virtual_options_t *o)
{
    return o->name_prefix ? o->name_prefix : S_DEFAULT_PREFIX;
}

static int s_path(char *buf, size_t cap, const char *dir, const char *prefix, int k,
                  const char *ext, gb_error_t *err)
{
    int n = snprintf(buf, cap, "%s/%s%d.%s", dir, prefix, k, ext);
    if (n < 0 || (size_t)n >= cap)
        return gb_error_set(err, GB_EINVAL, "--cert-dir: path '%s/%s%d.%s' is too long", dir,
                            prefix, k, ext);
    return 0;
}

int gb_virtual_check(const gb_virtual_options_t *o, gb_error_t *err)
{
    if (!o || !o->data || !o->cert_dir)
        return gb_error_set(err, GB_EINVAL, "gb_virtual_check: options, data and cert_dir "
                            "are required");
    if (o->count < 1 || o->count > GB_VIRTUAL_MAX)
        return gb_error_set(err, GB_EUSAGE, "--virtual %d: expected 1..%d", o->count,
                            GB_VIRTUAL_MAX);
    const gb_data_source_t *d = o->data;
    if (!o->dealt && (long)d->index + o->count > d->clients)
        return gb_error_set(err, GB_EUSAGE, "--clients %d is too few for --index %d and "
                            "--virtual %d: need %ld or more", d->clients, d->index, o->count,
                            (long)d->index + o->count);
    char path[PATH_MAX];
    for (int i = 0; i < o->count; i++) {
        static const char *const ext[] = {"crt", "key"};
        for (int e = 0; e < 2; e++) {
            int rc = s_path(path, sizeof path, o->cert_dir, s_prefix(o), d->index + i, ext[e],
                            err);
            if (rc)
                return rc;
            if (access(path, R_OK) != 0)
                return gb_error_set(err, GB_EIO, "--cert-dir: cannot read '%s': %s", path,
                                    strerror(errno));
        }
    }
    return 0;
}

static void s_report(void *arg, const gb_daemon_task_report_t *r)
{
    s_client_t *c = arg;
    if (c->owner->report)
        c->owner->report(c->owner->report_arg, c->name, r);
}

/* Each client's slice of ds: slices[i] for client d->index + i. One
 * assignment pass, then one index list and one subset per client. */
static int s_slices(const gb_data_source_t *d, const gb_dataset_t *ds, int count,
                    gb_dataset_t **slices, gb_error_t *err)
{
    gb_partition_plan_t plan;
    int rc = gb_data_source_partition_plan(d, ds, &plan, err);
    if (rc) {
        gb_data_source_partition_plan_free(&plan);
        return rc;
    }
    int32_t *idx = NULL;
    int32_t *owner = gb_malloc((ds->n ? (size_t)ds->n : 1) * sizeof *owner);
    if (!owner) {
        gb_data_source_partition_plan_free(&plan);
        return gb_error_set(err, GB_ENOMEM, "partition: out of memory");
    }
    rc = gb_partition_assign(&plan.partition, plan.labels, ds->n, plan.n_classes, d->clients,
                             d->partition_seed, owner, err);
    for (int i = 0; rc == 0 && i < count; i++) {
        int64_t n = 0;
        int k = d->index + i;
        rc = gb_partition_indices(owner, ds->n, k, &idx, &n, err);
        if (rc == 0)
            rc = gb_dataset_subset(ds, idx, n, &slices[i], err);
        gb_free(idx);
        idx = NULL;
        if (rc == 0 && n == 0)
            rc = gb_error_set(err, GB_EINVAL, "the slice is empty");
        if (rc)
            rc = gb_error_prefix(err, rc, "%s: client %d of %d: ", ds->name, k, d->clients);
    }
    gb_free(owner);
    gb_data_source_partition_plan_free(&plan);
    return rc;
}

/* The owners of the training samples under d's cut, computed once for all
 * the clients whose Welcomes name the same cut (every shard of a federation
 * does): a Dirichlet cut of 60,000 samples costs a good part of a second. */
static int s_dealt_owner(gb_virtual_t *v, const gb_data_source_t *d, gb_error_t *err)
{
    char key[sizeof v->dealt_key];
    snprintf(key, sizeof key, "%s/%d/%llu", d->partition ? d->partition : "iid", d->clients,
             (unsigned long long)d->partition_seed);
    if (v->dealt_owner && strcmp(key, v->dealt_key) == 0)
        return 0;
    gb_partition_plan_t plan;
    int rc = gb_data_source_partition_plan(d, v->train, &plan, err);
    int32_t *owner = NULL;
    if (rc == 0 &&
        !(owner = gb_malloc((v->train->n ? (size_t)v->train->n : 1) * sizeof *owner)))
        rc = gb_error_set(err, GB_ENOMEM, "partition: out of memory");
    if (rc == 0)
        rc = gb_partition_assign(&plan.partition, plan.labels, v->train->n, plan.n_classes,
                                 d->clients, d->partition_seed, owner, err);
    gb_data_source_partition_plan_free(&plan);
    if (rc) {
        gb_free(owner);
        return rc;
    }
    gb_free(v->dealt_owner);
    v->dealt_owner = owner;
    snprintf(v->dealt_key, sizeof v->dealt_key, "%s", key);
    return 0;
}

/* A client's slice as its Welcome deals it (daemon.h's load_shard): cut
 * from the whole training split the set holds, as a single client's
 * cmd_run would cut it from the data set it loads. */
static int s_dealt(void *arg, const Glassbox__DataShard *shard, const gb_dataset_t **train,
                   const gb_dataset_t **test, gb_error_t *err)
{
    s_client_t *c = arg;
    gb_virtual_t *v = c->owner;
    gb_data_source_t d = v->data;
    d.partition = shard->partition;
    d.clients = (int)shard->clients;
    d.index = (int)shard->index;
    d.partition_seed = shard->seed;
    d.partition_test = false;
    gb_dataset_t *slice = NULL;
    int32_t *idx = NULL;
    int64_t n = 0;
    int rc = gb_data_source_check(&d, err);
    if (rc == 0)
        rc = s_dealt_owner(v, &d, err);
    if (rc == 0)
        rc = gb_partition_indices(v->dealt_owner, v->train->n, d.index, &idx, &n, err);
    if (rc == 0 && n == 0)
        rc = gb_error_set(err, GB_EINVAL, "slice %d of %d is empty", d.index, d.clients);
    if (rc == 0)
        rc = gb_dataset_subset(v->train, idx, n, &slice, err);
    gb_free(idx);
    if (rc)
        return gb_error_prefix(err, rc, "the dealt shard: ");
    gb_dataset_destroy(&c->train); /* a slice dealt before */
    c->train = slice;
    *train = c->train;
    *test = v->test;
    return 0;
}

static void s_client_free(s_client_t *c)
{
    gb_daemon_destroy(&c->daemon);
    gb_dataset_destroy(&c->train);
    gb_dataset_destroy(&c->test);
    gb_free(c->name);
    gb_free(c->error);
    c->name = c->error = NULL;
}

void gb_virtual_destroy(gb_virtual_t **pv)
{
    if (!pv || !*pv)
        return;
    gb_virtual_t *v = *pv;
    for (int i = 0; i < v->count; i++)
        s_client_free(&v->clients[i]); /* each daemon leaves the loop */
    gb_event_loop_destroy(&v->loop);
    gb_daemon_queue_destroy(&v->queue); /* after the daemons, whose workers it serves */
    gb_task_engine_destroy(&v->engine); /* after the runners that borrow it */
    gb_free(v->dealt_owner);
    gb_free(v->clients);
    gb_free(v);
    *pv = NULL;
}

/* Makes slices[] (count of them) for the split, or leaves it NULL. */
static int s_cut(const gb_virtual_options_t *o, const gb_dataset_t *ds, bool train,
                 gb_virtual_t *v, gb_error_t *err)
{
    gb_dataset_t **slices = gb_calloc((size_t)o->count, sizeof *slices);
    if (!slices)
        return gb_error_set(err, GB_ENOMEM, "virtual clients: out of memory");
    int rc = s_slices(o->data, ds, o->count, slices, err);
    for (int i = 0; i < o->count; i++) {
        if (rc == 0 && train)
            v->clients[i].train = slices[i];
        else if (rc == 0)
            v->clients[i].test = slices[i];
        else
            gb_dataset_destroy(&slices[i]);
    }
    gb_free(slices);
    return rc;
}

static void s_on_done(void *arg, gb_daemon_t *d, int rc, const gb_error_t *err);
static void s_on_queue(gb_event_loop_t *loop, uint64_t id, short revents, void *arg);

gb_virtual_t *gb_virtual_new(const gb_virtual_options_t *o, gb_error_t *err)
{
    gb_error_t scratch = {0};
    if (!err)
        err = &scratch; /* a daemon's failure is prefixed with its client's name */
    if (gb_virtual_check(o, err))
        return NULL;
    if (!o->zmq_ctx || !o->train || !o->test) {
        gb_error_set(err, GB_EINVAL, "gb_virtual_new: zmq_ctx, train and test are required");
        return NULL;
    }
    gb_virtual_t *v = gb_calloc(1, sizeof *v);
    if (v)
        v->clients = gb_calloc((size_t)o->count, sizeof *v->clients);
    if (!v || !v->clients) {
        gb_free(v);
        gb_error_set(err, GB_ENOMEM, "virtual clients: out of memory");
        return NULL;
    }
    v->count = o->count;
    if (!(v->queue = gb_daemon_queue_new(err)) || !(v->engine = gb_task_engine_new(err)) ||
        !(v->loop = gb_event_loop_new(err)))
        goto fail;
    if (!gb_event_loop_add_fd(v->loop, gb_daemon_queue_fd(v->queue), ZMQ_POLLIN, s_on_queue, v,
                              err))
        goto fail;
    v->report = o->report;
    v->report_arg = o->report_arg;
    v->train = o->train;
    v->test = o->test;
    v->data = *o->data;
    if (!o->dealt && (s_cut(o, o->train, true, v, err) ||
                      (o->data->partition_test && s_cut(o, o->test, false, v, err))))
        goto fail;
    char crt[PATH_MAX], key[PATH_MAX], desc[GB_ENVELOPE_MAX_NAME + 1];
    for (int i = 0; i < o->count; i++) {
        s_client_t *c = &v->clients[i];
        int k = o->data->index + i;
        c->owner = v;
        snprintf(crt, sizeof crt, "%s%d", s_prefix(o), k);
        c->name = gb_strdup(crt);
        if (!c->name) {
            gb_error_set(err, GB_ENOMEM, "virtual clients: out of memory");
            goto fail;
        }
        if (s_path(crt, sizeof crt, o->cert_dir, s_prefix(o), k, "crt", err) ||
            s_path(key, sizeof key, o->cert_dir, s_prefix(o), k, "key", err))
            goto fail;
        gb_data_source_t one = *o->data;
        one.index = k;
        gb_data_source_describe(&one, desc, sizeof desc);
        if (o->dealt)
            snprintf(desc, sizeof desc, "%s, slice dealt by the coordinator", o->data->data);
        gb_daemon_options_t d = {.zmq_ctx = o->zmq_ctx, .endpoint = o->endpoint,
                                 .cert_file = crt, .key_file = key, .ca_file = o->ca_file,
                                 .server_name = o->server_name, .train = c->train,
                                 /* dealt: both come with the Welcome (s_dealt) */
                                 .test = o->dealt ? NULL : c->test ? c->test : o->test,
                                 .dataset = desc,
                                 .threads = o->threads, .queue = v->queue,
                                 .engine = v->engine,
                                 .heartbeat_grid_ms = S_HEARTBEAT_GRID_MS,
                                 .retry_ms = o->retry_ms,
                                 .retry_max_ms = o->retry_max_ms,
                                 .give_up_s = o->give_up_s, .report = s_report,
                                 .report_arg = c, .load_shard = o->dealt ? s_dealt : NULL,
                                 .shard_arg = c};
        c->daemon = gb_daemon_new(&d, err);
        if (!c->daemon) {
            gb_error_prefix(err, err->code ? err->code : GB_EINVAL, "%s: ", c->name);
            goto fail;
        }
        if (gb_daemon_attach(c->daemon, v->loop, s_on_done, c, err))
            goto fail;
        v->active++;
    }
    return v;
fail:
    gb_virtual_destroy(&v);
    return NULL;
}

static void s_fail(s_client_t *c, const gb_error_t *err)
{
    c->done = c->failed = true;
    c->error = gb_strdup(err->msg[0] ? err->msg : gb_strerror(err->code));
    c->owner->failed++;
    c->owner->active--;
    gb_log_error("%s: %s", c->name, c->error ? c->error : "failed");
}

/* A step the loop made ended a daemon (it has left the loop): stop it. */
static void s_on_done(void *arg, gb_daemon_t *d, int rc, const gb_error_t *err)
{
    s_client_t *c = arg;
    if (rc == GB_DAEMON_FINISHED) {
        c->done = true;
        c->owner->active--;
        gb_log_info("%s: the federation has finished", c->name);
    } else {
        s_fail(c, err);
    }
    /* not gb_daemon_stop: its waits (the task's batch, the goodbye's
     * linger) would stall every other daemon on the loop */
    gb_error_t e = {0};
    if (gb_daemon_stop_begin(d, c->owner->loop, S_LINGER_MS, &e) != 0)
        gb_log_warn("%s: stopping: %s", c->name, e.msg);
}

/* A daemon that ended still finishes its goodbye in the loop. */
static bool s_any_stopping(const gb_virtual_t *v)
{
    for (int i = 0; i < v->count; i++)
        if (v->clients[i].daemon && gb_daemon_stopping(v->clients[i].daemon))
            return true;
    return false;
}

/* The shared run queue said a task finished: drained here, before the
 * daemons (sources, dispatched after descriptors) look at their workers. */
static void s_on_queue(gb_event_loop_t *loop, uint64_t id, short revents, void *arg)
{
    (void)loop;
    (void)id;
    (void)revents;
    gb_virtual_t *v = arg;
    gb_daemon_queue_drain(v->queue);
}

int gb_virtual_step(gb_virtual_t *v, int timeout_ms)
{
    if (!v->active && !s_any_stopping(v))
        return GB_DAEMON_FINISHED;
    gb_error_t err = {0};
    if (gb_event_loop_run_once(v->loop, timeout_ms, &err) < 0) {
        for (int i = 0; i < v->count; i++) {
            s_client_t *c = &v->clients[i];
            if (!c->done) {
                gb_daemon_detach(c->daemon);
                s_fail(c, &err);
                gb_daemon_stop(c->daemon, 0);
            }
        }
        return GB_DAEMON_FINISHED;
    }
    return v->active || s_any_stopping(v) ? 0 : GB_DAEMON_FINISHED;
}

void gb_virtual_stop(gb_virtual_t *v, int linger_ms)
{
    /* One budget for all: a daemon whose link is down waits its whole
     * linger for a close_notify that cannot leave, and N of them in turn
     * would keep a signalled process alive N times as long. */
    double until = gb_time_now() + linger_ms / 1000.0;
    for (int i = 0; i < v->count; i++) {
        s_client_t *c = &v->clients[i];
        if (!c->done) {
            double left = (until - gb_time_now()) * 1000.0;
            gb_daemon_detach(c->daemon);
            gb_daemon_stop(c->daemon, left > 0 ? (int)left : 0);
            v->active--;
        }
        c->done = true;
    }
}

int gb_virtual_failed(const gb_virtual_t *v)
{
    return v->failed;
}

const char *gb_virtual_failure(const gb_virtual_t *v, int i, const char **name)
{
    for (int k = 0, seen = 0; k < v->count; k++) {
        const s_client_t *c = &v->clients[k];
        if (!c->failed)
            continue;
        if (seen++ == i) {
            if (name)
                *name = c->name;
            return c->error ? c->error : "failed";
        }
    }
    if (name)
        *name = NULL;
    return NULL;
}

gb_daemon_queue_stats_t gb_virtual_queue_stats(const gb_virtual_t *v)
{
    return gb_daemon_queue_stats(v->queue);
}

int gb_virtual_count(const gb_virtual_t *v)
{
    return v->count;
}

const char *gb_virtual_name(const gb_virtual_t *v, int i)
{
    return i >= 0 && i < v->count ? v->clients[i].name : NULL;
}
