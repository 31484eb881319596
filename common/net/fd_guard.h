/* A guard on a listening ZeroMQ socket for when file descriptors run low.
 *
 * libzmq accepts every TCP connection its listener is offered; once the
 * process is out of descriptors, accept fails with EMFILE and the listener,
 * still readable, is called again at once: the I/O thread spins and no
 * error reaches the application. Unbinding is no way out (it ends every
 * connection the listener accepted). So the guard counts the process's open
 * descriptors (throttled to every GB_FD_GUARD_PERIOD_S) and, once fewer than
 * a reserve are left, ends each newly accepted connection at once (the
 * socket monitor names its descriptor; it is shut down, libzmq closes it):
 * the peer sees its connection close and retries later, nothing spins, and
 * the sessions already held go on. It says so in the log when it starts and
 * stops refusing, and counts what it refused in
 * glassbox_connections_refused_total{reason="descriptors"}; the gauges
 * glassbox_descriptors_open and glassbox_descriptors_limit show the margin.
 *
 * Reserve: an eighth of the soft limit, at least GB_FD_GUARD_MIN_RESERVE;
 * refusing stops once twice the reserve is free again.
 *
 * Ownership: gb_fd_guard_new returns an object the caller owns
 * (gb_fd_guard_destroy), to destroy before the watched socket is closed;
 * the context and socket are borrowed. Single-threaded. */
#ifndef GB_NET_FD_GUARD_H
#define GB_NET_FD_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

#define GB_FD_GUARD_PERIOD_S 0.1
#define GB_FD_GUARD_MIN_RESERVE 32

typedef struct gb_fd_guard gb_fd_guard_t;

/* Watches sock (a bound socket; `name` for the log, e.g. its endpoint).
 * NULL and err (GB_EIO, GB_ENOMEM) on failure. */
gb_fd_guard_t *gb_fd_guard_new(void *zmq_ctx, void *sock, const char *name, gb_error_t *err);
void gb_fd_guard_destroy(gb_fd_guard_t **g);

/* The socket to poll for ZMQ_POLLIN beside the watched one: the guard has
 * events to handle when it is readable. */
void *gb_fd_guard_socket(const gb_fd_guard_t *g);

/* Counts descriptors when the period has passed (now: monotonic seconds)
 * and handles the monitor's events, refusing new connections while low. */
void gb_fd_guard_check(gb_fd_guard_t *g, double now);

/* Refusing new connections now. */
bool gb_fd_guard_low(const gb_fd_guard_t *g);

/* Connections refused so far. */
uint64_t gb_fd_guard_refused(const gb_fd_guard_t *g);

/* The thresholds for a soft limit (exposed for the tests): refusing starts
 * at *start open descriptors and stops below *stop. */
void gb_fd_guard_thresholds(uint64_t limit, uint64_t *start, uint64_t *stop);

#endif
