/* Thread pool: a generation counter; workers wait for a new generation,
 * run their share, and the last to finish tells the caller.
 *
 * Waiting spins for up to S_SPIN_SECONDS before it sleeps on a condition
 * variable. A training step runs two regions back to back, and the caller's
 * serial work between steps (the next batch, the optimiser) takes tens of
 * microseconds: waking a sleeping thread costs a futex call on each side
 * and, in a VM, often more than that again before the thread runs, which at
 * LeNet's 700 steps a second was several percent of both cores. The spin is
 * short enough that an idle pool costs nothing (it sleeps after one spin per
 * region) and never competes for long with another pool (OpenBLAS's spins
 * for milliseconds; machine.md). */
#include "util/pool.h"
#include "util/alloc.h"
#include "util/time.h"

#include <pthread.h>
#include <stdatomic.h>

#define S_SPIN_SECONDS 50e-6
#define S_SPINS_PER_CLOCK 64 /* pause instructions between clock reads */

struct gb_pool {
    int size;              /* workers including the caller */
    pthread_t *threads;    /* size - 1 worker threads */
    pthread_mutex_t mutex; /* guards the sleeping: waiters, the condition variables */
    pthread_cond_t start;  /* signalled when a new generation begins */
    pthread_cond_t done;   /* signalled when pending reaches 0 */
    atomic_ulong generation; /* incremented per region (after fn and arg are set) */
    atomic_int pending;    /* workers still running the current region */
    atomic_int stopping;   /* set by destroy */
    int sleepers;          /* workers asleep on start (under mutex) */
    int caller_asleep;     /* the caller asleep on done (under mutex) */
    gb_pool_fn fn;         /* current region's function */
    void *arg;             /* current region's argument */
};

typedef struct {
    gb_pool_t *pool;
    int index;
} s_worker_arg_t;

static inline void s_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until done(pool, ctx) or S_SPIN_SECONDS pass; returns done's last value. */
static int s_spin(const gb_pool_t *pool, int (*done)(const gb_pool_t *, unsigned long),
                  unsigned long ctx)
{
    double until = 0.0;
    for (;;) {
        for (int i = 0; i < S_SPINS_PER_CLOCK; i++) {
            if (done(pool, ctx))
                return 1;
            s_relax();
        }
        double now = gb_time_now();
        if (until == 0.0)
            until = now + S_SPIN_SECONDS;
        else if (now >= until)
            return done(pool, ctx);
    }
}

static int s_started(const gb_pool_t *pool, unsigned long seen)
{
    return atomic_load_explicit(&pool->generation, memory_order_acquire) != seen ||
           atomic_load_explicit(&pool->stopping, memory_order_acquire);
}

static int s_finished(const gb_pool_t *pool, unsigned long unused)
{
    (void)unused;
    return atomic_load_explicit(&pool->pending, memory_order_acquire) == 0;
}

static void *s_worker(void *p)
{
    s_worker_arg_t self = *(s_worker_arg_t *)p;
    gb_free(p);
    gb_pool_t *pool = self.pool;
    unsigned long seen = 0;
    for (;;) {
        if (!s_spin(pool, s_started, seen)) {
            pthread_mutex_lock(&pool->mutex);
            while (!s_started(pool, seen)) {
                pool->sleepers++;
                pthread_cond_wait(&pool->start, &pool->mutex);
                pool->sleepers--;
            }
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire))
            break;
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        pool->fn(pool->arg, self.index, pool->size);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mutex);
            if (pool->caller_asleep)
                pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
    return NULL;
}

gb_pool_t *gb_pool_new(int threads, gb_error_t *err)
{
    if (threads < 1 || threads > 256) {
        gb_error_set(err, GB_EINVAL, "thread count %d out of range 1..256", threads);
        return NULL;
    }
    gb_pool_t *pool = gb_calloc(1, sizeof *pool);
    if (!pool) {
        gb_error_set(err, GB_ENOMEM, "out of memory for thread pool");
        return NULL;
    }
    pool->size = threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stopping, 0);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (threads > 1) {
        pool->threads = gb_calloc((size_t)threads - 1, sizeof *pool->threads);
        if (!pool->threads)
            goto fail;
    }
    for (int i = 1; i < threads; i++) {
        s_worker_arg_t *a = gb_malloc(sizeof *a);
        if (!a)
            goto fail_started;
        a->pool = pool;
        a->index = i;
        if (pthread_create(&pool->threads[i - 1], NULL, s_worker, a) != 0) {
            gb_free(a);
            goto fail_started;
        }
        continue;
    fail_started:
        pool->size = i; /* only threads 1..i-1 exist */
        gb_pool_destroy(&pool);
        gb_error_set(err, GB_ENOMEM, "cannot start worker thread %d", i);
        return NULL;
    }
    return pool;
fail:
    gb_pool_destroy(&pool);
    gb_error_set(err, GB_ENOMEM, "out of memory for thread pool");
    return NULL;
}

void gb_pool_destroy(gb_pool_t **pool_p)
{
    if (!pool_p || !*pool_p)
        return;
    gb_pool_t *pool = *pool_p;
    pthread_mutex_lock(&pool->mutex);
    atomic_store_explicit(&pool->stopping, 1, memory_order_release);
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->size && pool->threads; i++)
        pthread_join(pool->threads[i - 1], NULL);
    pthread_cond_destroy(&pool->start);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mutex);
    gb_free(pool->threads);
    gb_free(pool);
    *pool_p = NULL;
}

int gb_pool_size(const gb_pool_t *pool)
{
    return pool ? pool->size : 1;
}

void gb_pool_run(gb_pool_t *pool, gb_pool_fn fn, void *arg)
{
    if (!pool || pool->size == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->size - 1, memory_order_relaxed);
    /* Under the mutex, so that a worker between its last check and its
     * wait cannot miss the new generation. */
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    if (pool->sleepers)
        pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mutex);
    fn(arg, 0, pool->size);
    if (s_spin(pool, s_finished, 0))
        return;
    pthread_mutex_lock(&pool->mutex);
    while (!s_finished(pool, 0)) {
        pool->caller_asleep = 1;
        pthread_cond_wait(&pool->done, &pool->mutex);
    }
    pool->caller_asleep = 0;
    pthread_mutex_unlock(&pool->mutex);
}
