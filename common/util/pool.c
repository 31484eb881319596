/* Thread pool: a generation counter under one mutex; workers wait for a new
 * generation, run their share, and the last to finish signals the caller. */
#include "util/pool.h"
#include "util/alloc.h"

#include <pthread.h>

struct gb_pool {
    int size;              /* workers including the caller */
    pthread_t *threads;    /* size - 1 worker threads */
    pthread_mutex_t mutex; /* guards everything below */
    pthread_cond_t start;  /* signalled when a new generation begins */
    pthread_cond_t done;   /* signalled when pending reaches 0 */
    unsigned long generation; /* incremented per region */
    int pending;           /* workers still running the current region */
    int stopping;          /* set by destroy */
    gb_pool_fn fn;         /* current region's function */
    void *arg;             /* current region's argument */
};

typedef struct {
    gb_pool_t *pool;
    int index;
} s_worker_arg_t;

static void *s_worker(void *p)
{
    s_worker_arg_t self = *(s_worker_arg_t *)p;
    gb_free(p);
    gb_pool_t *pool = self.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mutex);
    for (;;) {
        while (pool->generation == seen && !pool->stopping)
            pthread_cond_wait(&pool->start, &pool->mutex);
        if (pool->stopping)
            break;
        seen = pool->generation;
        gb_pool_fn fn = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->mutex);
        fn(arg, self.index, pool->size);
        pthread_mutex_lock(&pool->mutex);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mutex);
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
    pool->stopping = 1;
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
    pthread_mutex_lock(&pool->mutex);
    pool->fn = fn;
    pool->arg = arg;
    pool->pending = pool->size - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mutex);
    fn(arg, 0, pool->size);
    pthread_mutex_lock(&pool->mutex);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
}
