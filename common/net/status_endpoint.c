/* /healthz, /metrics and /status over the HTTP server (status_endpoint.h).
 * The snapshot is a reason buffer, a beat time and a document pointer under
 * one mutex; a new document is copied before the lock is taken and the old
 * one freed after it is released, so the HTTP thread waits for no
 * allocation. */
#include "net/status_endpoint.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_server.h"
#include "util/alloc.h"
#include "util/metrics.h"
#include "util/time.h"

struct gb_status_endpoint {
    gb_http_server_t *server;             /* serves the routes below */
    pthread_mutex_t lock;                 /* guards everything below */
    bool beaten;                          /* a beat has come */
    double beat_at;                       /* gb_time_now of the last beat */
    double stall_s;                       /* beats older than this are a hung loop */
    char reason[GB_STATUS_REASON_MAX];    /* "" healthy, else why not */
    char *doc;                            /* the /status document (NULL: none) */
    size_t doc_len;                       /* its bytes */
};

static char *s_dup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static int s_healthz(void *arg, gb_http_reply_t *reply)
{
    gb_status_endpoint_t *e = arg;
    char msg[GB_STATUS_REASON_MAX + 64];
    pthread_mutex_lock(&e->lock);
    double age = gb_time_now() - e->beat_at;
    if (!e->beaten)
        snprintf(msg, sizeof msg, "starting\n");
    else if (e->reason[0])
        snprintf(msg, sizeof msg, "%s\n", e->reason);
    else if (age > e->stall_s)
        snprintf(msg, sizeof msg, "the main loop has not run for %.0f s\n", age);
    else
        snprintf(msg, sizeof msg, "ok\n");
    pthread_mutex_unlock(&e->lock);
    reply->status = strcmp(msg, "ok\n") == 0 ? 200 : 503;
    reply->len = strlen(msg);
    reply->body = s_dup(msg, reply->len);
    return reply->body ? 0 : GB_ENOMEM;
}

static int s_metrics(void *arg, gb_http_reply_t *reply)
{
    (void)arg;
    gb_error_t err = {0};
    int rc = gb_metrics_render(&reply->body, &reply->len, &err);
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return rc;
}

static int s_status(void *arg, gb_http_reply_t *reply)
{
    gb_status_endpoint_t *e = arg;
    pthread_mutex_lock(&e->lock);
    if (e->doc) {
        reply->body = s_dup(e->doc, e->doc_len);
        reply->len = e->doc_len;
        reply->content_type = "application/json";
    }
    bool none = !e->doc;
    pthread_mutex_unlock(&e->lock);
    if (none) {
        static const char msg[] = "no status yet\n";
        reply->status = 404;
        reply->body = s_dup(msg, sizeof msg - 1);
        reply->len = sizeof msg - 1;
    }
    return reply->body ? 0 : GB_ENOMEM;
}

gb_status_endpoint_t *gb_status_endpoint_new(const char *addr, double stall_s, gb_error_t *err)
{
    if (!(stall_s > 0)) {
        gb_error_set(err, GB_EINVAL, "status endpoint: stall bound must be > 0");
        return NULL;
    }
    gb_status_endpoint_t *e = gb_calloc(1, sizeof *e);
    if (!e) {
        gb_error_set(err, GB_ENOMEM, "status endpoint: out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    e->stall_s = stall_s;
    const gb_http_route_t routes[] = {
        {"/healthz", s_healthz, e}, {"/metrics", s_metrics, e}, {"/status", s_status, e}};
    e->server = gb_http_server_new(addr, routes, sizeof routes / sizeof routes[0], err);
    if (!e->server) {
        pthread_mutex_destroy(&e->lock);
        gb_free(e);
        return NULL;
    }
    return e;
}

void gb_status_endpoint_destroy(gb_status_endpoint_t **e)
{
    if (!e || !*e)
        return;
    gb_http_server_destroy(&(*e)->server); /* no handler runs after this */
    pthread_mutex_destroy(&(*e)->lock);
    free((*e)->doc);
    gb_free(*e);
    *e = NULL;
}

uint16_t gb_status_endpoint_port(const gb_status_endpoint_t *e)
{
    return e ? gb_http_server_port(e->server) : 0;
}

void gb_status_endpoint_beat(gb_status_endpoint_t *e, const char *unhealthy_reason)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->beaten = true;
    e->beat_at = gb_time_now();
    snprintf(e->reason, sizeof e->reason, "%s", unhealthy_reason ? unhealthy_reason : "");
    pthread_mutex_unlock(&e->lock);
}

int gb_status_endpoint_set_status(gb_status_endpoint_t *e, const char *json, gb_error_t *err)
{
    if (!e)
        return 0;
    size_t len = json ? strlen(json) : 0;
    if (len > GB_STATUS_DOC_MAX)
        return gb_error_set(err, GB_ERANGE, "status endpoint: document of %zu bytes, at most %d",
                            len, GB_STATUS_DOC_MAX);
    char *copy = NULL;
    if (json && !(copy = s_dup(json, len)))
        return gb_error_set(err, GB_ENOMEM, "status endpoint: out of memory");
    pthread_mutex_lock(&e->lock);
    char *old = e->doc;
    e->doc = copy;
    e->doc_len = len;
    pthread_mutex_unlock(&e->lock);
    free(old);
    return 0;
}
