/* Virtual clients (`glassbox-client run --virtual N`, DESIGN.md, Client): N
 * federated clients in one process so that one machine can simulate
 * hundreds. Each is a whole client daemon (client/daemon.h) with its own TLS
 * identity (CERT_DIR/NAME.crt and NAME.key, as `glassbox-coordinator ca issue
 * --out CERT_DIR` writes them) and its own link socket; all of them share
 * the caller's ZeroMQ context and one run queue (client/daemon_worker.h):
 * their tasks train one at a time, in the order they arrived, each with
 * `threads` engine threads, instead of all at once on too few cores. The
 * tasks waiting for their turn stay their daemons' running tasks (a newer
 * Task from the coordinator withdraws one from the queue at once), and every
 * daemon's link stays alive meanwhile.
 *
 * The data set is loaded once by the caller. The training split is cut here
 * with one partition pass (data/partition.h): client K gets slice K of
 * `clients` as its own dataset, so the slices together hold one copy of the
 * training split and the caller may free the whole split as soon as
 * gb_virtual_new returns. The test split is shared by every client
 * (borrowed) unless partition_test asks for it to be cut the same way.
 *
 * One thread drives every daemon: gb_virtual_step waits in one poll on all
 * their sockets and the run queue, until the nearest deadline of any of
 * them, and steps only those with something to do, so idle clients cost
 * nothing but their heartbeats. A daemon that finishes (the coordinator
 * said the federation is over) or fails is stopped at once and no longer
 * stepped; the others go on.
 *
 * Ownership: gb_virtual_new returns an object the caller owns
 * (gb_virtual_destroy). It borrows the ZeroMQ context, and the test split
 * unless it is cut, until it is destroyed; option strings are copied. */
#ifndef GB_CLIENT_VIRTUAL_CLIENTS_H
#define GB_CLIENT_VIRTUAL_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "daemon_worker.h"
#include "data/dataset.h"
#include "data_source.h"
#include "util/error.h"

/* The most virtual clients one process runs (each costs a few sockets and
 * file descriptors). */
#define GB_VIRTUAL_MAX 10000

/* Called on the stepping thread for every finished task of client `name`
 * (borrowed for the call). */
typedef void (*gb_virtual_report_fn)(void *arg, const char *name,
                                     const gb_daemon_task_report_t *r);

typedef struct {
    void *zmq_ctx;                 /* shared ZeroMQ context (borrowed; required) */
    const char *endpoint;          /* the coordinator, "tcp://HOST:7700" (required) */
    const char *cert_dir;          /* where NAME.crt and NAME.key are (required) */
    const char *name_prefix;       /* client K is PREFIX K (NULL: "client-") */
    const char *ca_file;           /* PEM: the federation CA (required) */
    const char *server_name;       /* name on the coordinator's certificate (required) */
    int count;                     /* virtual clients, 1..GB_VIRTUAL_MAX */
    const gb_data_source_t *data;  /* partition options: client K (K = data->index ..
                                      data->index + count - 1) takes slice K of
                                      data->clients; data->index + count <= clients */
    const gb_dataset_t *train;     /* the whole (limited) training split: read during
                                      gb_virtual_new only, unless dealt (required) */
    bool dealt;                    /* the coordinator deals each client its slice in its
                                      Welcome (serve --simulate-clients): a client cuts it
                                      from train then, so train must outlive the set; the
                                      partition options of data are not used */
    const gb_dataset_t *test;      /* the whole test split (borrowed unless
                                      data->partition_test; required) */
    int threads;                   /* engine threads of each task, 1..256 (tasks train one
                                      at a time: the cores, for all of them) */
    int retry_ms;                  /* each link's first reconnection delay (0: default) */
    int retry_max_ms;              /* its backoff ceiling (0: default) */
    int give_up_s;                 /* each daemon's give-up time (daemon.h; 0: never) */
    gb_virtual_report_fn report;   /* per finished task (may be NULL) */
    void *report_arg;              /* passed to report */
} gb_virtual_options_t;

typedef struct gb_virtual gb_virtual_t;

/* Checks the counts (GB_EUSAGE naming --virtual or --clients: "--clients 4
 * is too few for --index 0 and --virtual 6: need 6 or more"), the
 * certificate files (GB_EIO naming the first one missing, before any daemon
 * is made), cuts the slices and makes the N daemons, whose first handshakes
 * start at once. Returns NULL and fills err on failure, having freed what
 * it made. */
gb_virtual_t *gb_virtual_new(const gb_virtual_options_t *opts, gb_error_t *err);

/* Checks only the counts and the certificate files of opts, as
 * gb_virtual_new does first: for a command that wants to refuse a bad
 * invocation before it loads any data. Needs data, cert_dir and count. */
int gb_virtual_check(const gb_virtual_options_t *opts, gb_error_t *err) GB_MUST_CHECK;

/* One turn of the process's event loop (net/event_loop.h): waits up to
 * timeout_ms (0: not at all; -1: until something happens) in one poll over
 * every active daemon's sockets and the run queue, cut short
 * by the nearest deadline of any daemon (gb_daemon_next_deadline) or a
 * signal, then steps every daemon with a ready socket, a finished task or a
 * deadline that came. Returns 0 while any daemon is still running,
 * GB_DAEMON_FINISHED once every one has finished or failed (and on every
 * later call). Failures are not returned: see gb_virtual_failed (a failure
 * of the poll itself fails every daemon). */
int gb_virtual_step(gb_virtual_t *v, int timeout_ms);

/* Stops every daemon still running: each closes its link gracefully, all
 * of them within linger_ms in total for their closes to leave (a connected
 * link flushes at once; one that is down gets what is left of the budget).
 * Later steps return GB_DAEMON_FINISHED. */
void gb_virtual_stop(gb_virtual_t *v, int linger_ms);

/* Daemons that failed so far; for i in 0..failed-1, gb_virtual_failure
 * gives the client's name and what went wrong (borrowed until destroy). */
int gb_virtual_failed(const gb_virtual_t *v);
const char *gb_virtual_failure(const gb_virtual_t *v, int i, const char **name);

/* The shared run queue's counters: tests read most_running (never above 1)
 * and finished. */
gb_daemon_queue_stats_t gb_virtual_queue_stats(const gb_virtual_t *v);

/* The number of daemons and the name of daemon i (borrowed until destroy). */
int gb_virtual_count(const gb_virtual_t *v);
const char *gb_virtual_name(const gb_virtual_t *v, int i);

/* Stops nothing (call gb_virtual_stop first for the goodbyes): cancels
 * running tasks, frees every daemon and slice; sets *v to NULL; NULL-safe. */
void gb_virtual_destroy(gb_virtual_t **v);

#endif
