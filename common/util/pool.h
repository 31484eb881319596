/* A persistent pool of worker threads for data-parallel regions.
 *
 * gb_pool_run(pool, fn, arg) calls fn(arg, i, n) once for each i in [0, n)
 * where n is the pool's size: i = 0 runs on the calling thread, the others on
 * the pool's threads, and the call returns when all have finished. The pool
 * owns its threads; the caller owns the pool. Between regions threads spin
 * for at most 50 microseconds (a training step's regions come that close
 * together), then sleep on a condition variable: an idle pool costs nothing
 * and never spins against OpenBLAS's for long. */
#ifndef GB_UTIL_POOL_H
#define GB_UTIL_POOL_H

#include "util/error.h"

typedef struct gb_pool gb_pool_t;
typedef void (*gb_pool_fn)(void *arg, int index, int count);

/* New pool of `threads` workers in all (>= 1; 1 means no extra thread).
 * Returns NULL and fills err on failure. */
gb_pool_t *gb_pool_new(int threads, gb_error_t *err);

/* Joins the threads and frees the pool; sets *pool to NULL; NULL-safe. */
void gb_pool_destroy(gb_pool_t **pool);

/* Number of workers (the caller's thread included). */
int gb_pool_size(const gb_pool_t *pool);

/* Runs fn(arg, i, size) for every worker i and waits. Not reentrant. */
void gb_pool_run(gb_pool_t *pool, gb_pool_fn fn, void *arg);

#endif
