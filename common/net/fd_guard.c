/* The descriptor guard (fd_guard.h). */
#include "fd_guard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <dirent.h>

#include <zmq.h>

#include "util/alloc.h"
#include "util/fd_limit.h"
#include "util/log.h"
#include "util/metrics.h"

struct gb_fd_guard {
    void *sock;        /* watched, borrowed */
    DIR *fds;          /* /proc/self/fd, kept open: counting must not need a
                          descriptor when none is left */
    uint64_t start;    /* refusing starts at this many open, or at an accepted
                          descriptor numbered this high */
    uint64_t stop;     /* and stops below this many */
    void *monitor;     /* PAIR receiving its ACCEPTED events */
    char name[256];    /* for the log */
    bool low;          /* refusing */
    double next_count; /* when to count again */
    uint64_t refused;  /* connections ended */
};

void gb_fd_guard_thresholds(uint64_t limit, uint64_t *start, uint64_t *stop)
{
    uint64_t reserve = limit / 8 > GB_FD_GUARD_MIN_RESERVE ? limit / 8 : GB_FD_GUARD_MIN_RESERVE;
    *start = limit > reserve ? limit - reserve : 0;
    *stop = limit > 2 * reserve ? limit - 2 * reserve : 0;
}

gb_fd_guard_t *gb_fd_guard_new(void *zmq_ctx, void *sock, const char *name, gb_error_t *err)
{
    gb_fd_guard_t *g = gb_calloc(1, sizeof *g);
    if (!g) {
        gb_error_set(err, GB_ENOMEM, "descriptor guard: out of memory");
        return NULL;
    }
    g->sock = sock;
    snprintf(g->name, sizeof g->name, "%s", name ? name : "a socket");
    /* a unique inproc address per guard: a closed monitor's may linger */
    static atomic_ulong guards;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://gb-fd-guard-%lu",
             (unsigned long)atomic_fetch_add(&guards, 1));
    if (zmq_socket_monitor(sock, mon, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        !(g->monitor = zmq_socket(zmq_ctx, ZMQ_PAIR)) || zmq_connect(g->monitor, mon) != 0) {
        gb_error_set(err, GB_EIO, "descriptor guard on %s: cannot monitor it: %s", g->name,
                     zmq_strerror(errno));
        gb_fd_guard_destroy(&g);
        return NULL;
    }
    int zero = 0;
    zmq_setsockopt(g->monitor, ZMQ_LINGER, &zero, sizeof zero);
    g->fds = opendir("/proc/self/fd");
    gb_fd_guard_thresholds(gb_fd_limit(), &g->start, &g->stop);
    return g;
}

void gb_fd_guard_destroy(gb_fd_guard_t **pg)
{
    if (!pg || !*pg)
        return;
    gb_fd_guard_t *g = *pg;
    zmq_socket_monitor(g->sock, NULL, 0);
    if (g->fds)
        closedir(g->fds);
    if (g->monitor)
        zmq_close(g->monitor);
    gb_free(g);
    *pg = NULL;
}

void *gb_fd_guard_socket(const gb_fd_guard_t *g)
{
    return g->monitor;
}

bool gb_fd_guard_low(const gb_fd_guard_t *g)
{
    return g->low;
}

uint64_t gb_fd_guard_refused(const gb_fd_guard_t *g)
{
    return g->refused;
}

static long s_open_now(gb_fd_guard_t *g)
{
    if (!g->fds)
        return gb_fd_count();
    rewinddir(g->fds);
    long n = 0;
    struct dirent *e;
    while ((e = readdir(g->fds)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    return n - 1; /* the kept directory's own descriptor */
}

static void s_go_low(gb_fd_guard_t *g, long open, uint64_t limit)
{
    g->low = true;
    char used[64];
    if (open < 0)
        snprintf(used, sizeof used, "all");
    else
        snprintf(used, sizeof used, "%ld", open);
    gb_log_warn("link: %s of %" PRIu64 " file descriptors in use: %s refuses new "
                "connections until fewer than %" PRIu64 " are (raise the limit: ulimit -n, "
                "LimitNOFILE= in a systemd unit, docker --ulimit nofile=)", used, limit, g->name,
                g->stop);
}

static void s_count(gb_fd_guard_t *g)
{
    long open = s_open_now(g);
    uint64_t limit = gb_fd_limit();
    if (open < 0 || limit == UINT64_MAX)
        return;
    gb_fd_guard_thresholds(limit, &g->start, &g->stop);
    gb_metrics_gauge_set("glassbox_descriptors_open", "File descriptors open in this process",
                         NULL, NULL, (double)open);
    gb_metrics_gauge_set("glassbox_descriptors_limit", "The soft limit on file descriptors",
                         NULL, NULL, (double)limit);
    if (!g->low && (uint64_t)open >= g->start) {
        s_go_low(g, open, limit);
    } else if (g->low && (uint64_t)open < g->stop) {
        g->low = false;
        gb_log_info("link: %ld of %" PRIu64 " file descriptors in use: %s takes new connections "
                    "again (%" PRIu64 " refused so far)", open, limit, g->name, g->refused);
    }
}

/* True for a connected stream socket: what an ACCEPTED event names, and
 * not (should the number have been reused since) a listener or a file. */
static bool s_is_accepted_stream(int fd)
{
    int type = 0, listening = 1;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return false;
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening)
        return false;
    struct sockaddr_storage peer;
    len = sizeof peer;
    return getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
}

static void s_refuse(gb_fd_guard_t *g, int fd)
{
    if (!s_is_accepted_stream(fd) || shutdown(fd, SHUT_RDWR) != 0)
        return;
    g->refused++;
    gb_metrics_counter_add("glassbox_connections_refused_total",
                           "New connections ended at once, by reason", "reason", "descriptors",
                           1);
    if ((g->refused & (g->refused - 1)) == 0) /* 1, 2, 4, ...: the log stays readable */
        gb_log_warn("link: descriptors low: %" PRIu64 " new connections to %s refused so far",
                    g->refused, g->name);
}

void gb_fd_guard_check(gb_fd_guard_t *g, double now)
{
    if (now >= g->next_count) {
        s_count(g);
        g->next_count = now + GB_FD_GUARD_PERIOD_S;
    }
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, g->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= sizeof id + sizeof value) {
            memcpy(&id, zmq_msg_data(&ev), sizeof id);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + sizeof id, sizeof value);
        }
        while (zmq_msg_more(&ev)) { /* the endpoint frame */
            zmq_msg_close(&ev);
            zmq_msg_init(&ev);
            if (zmq_msg_recv(&ev, g->monitor, ZMQ_DONTWAIT) < 0)
                break;
        }
        zmq_msg_close(&ev);
        if (id != ZMQ_EVENT_ACCEPTED && id != ZMQ_EVENT_ACCEPT_FAILED)
            continue;
        /* Linux gives out the lowest free number, so an accepted descriptor
         * numbered `start` means at least that many are open: a burst of
         * connections is caught at once, not at the next count; a failed
         * accept means none is left */
        if (!g->low && (id == ZMQ_EVENT_ACCEPT_FAILED || value >= g->start))
            s_go_low(g, id == ZMQ_EVENT_ACCEPTED ? (long)value + 1 : -1, gb_fd_limit());
        if (id == ZMQ_EVENT_ACCEPTED && g->low)
            s_refuse(g, (int)value);
    }
}
