/* One GET against a local endpoint (http_get.h): a non-blocking socket
 * driven by poll against a single deadline, so a server that accepts and
 * then says nothing cannot hold a health check past its timeout. The
 * response head is read into a fixed buffer; only the part of the body that
 * fits the caller's buffer is kept. */
#include "net/http_get.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/http_server.h"
#include "util/time.h"

#define HEAD_MAX 8192 /* bytes of status line and headers we read */

/* Waits for events on fd until the deadline; 0, or GB_EIO on timeout. */
static int s_wait(int fd, short events, double deadline, const char *what, gb_error_t *err)
{
    for (;;) {
        double left = deadline - gb_time_now();
        if (left <= 0)
            return gb_error_set(err, GB_EIO, "http: timed out %s", what);
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return gb_error_set(err, GB_EIO, "http: poll: %s", strerror(errno));
    }
}

int gb_http_get(const char *addr, const char *path, int timeout_ms, int *status, char *body,
                size_t cap, gb_error_t *err)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    int rc = gb_http_addr_parse(addr, &sa, &sa_len, err);
    if (rc)
        return rc;
    double deadline = gb_time_now() + (timeout_ms > 0 ? timeout_ms : 1) / 1000.0;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return gb_error_set(err, GB_EIO, "http: socket: %s", strerror(errno));
    char head[HEAD_MAX + 1];
    size_t have = 0;
    if (connect(fd, (struct sockaddr *)&sa, sa_len) != 0) {
        if (errno != EINPROGRESS) {
            rc = gb_error_set(err, GB_EIO, "http: cannot connect to %s: %s", addr,
                              strerror(errno));
            goto cleanup;
        }
        if ((rc = s_wait(fd, POLLOUT, deadline, "connecting", err)) != 0)
            goto cleanup;
        int soerr = 0;
        socklen_t slen = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
        if (soerr) {
            rc = gb_error_set(err, GB_EIO, "http: cannot connect to %s: %s", addr,
                              strerror(soerr));
            goto cleanup;
        }
    }
    char req[512];
    int reqlen = snprintf(req, sizeof req,
                          "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                          "User-Agent: glassbox\r\n\r\n",
                          path, addr);
    if (reqlen < 0 || (size_t)reqlen >= sizeof req) {
        rc = gb_error_set(err, GB_EUSAGE, "http: path or address too long");
        goto cleanup;
    }
    for (size_t sent = 0; sent < (size_t)reqlen;) {
        ssize_t k = send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR) {
            rc = gb_error_set(err, GB_EIO, "http: send to %s: %s", addr, strerror(errno));
            goto cleanup;
        }
        if ((rc = s_wait(fd, POLLOUT, deadline, "sending", err)) != 0)
            goto cleanup;
    }
    /* read until the server closes; keep the head and what fits of the body */
    size_t body_len = 0;
    char *head_end = NULL;
    if (body && cap)
        body[0] = '\0';
    for (;;) {
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0)
            break;
        if (k < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                rc = gb_error_set(err, GB_EIO, "http: receive from %s: %s", addr,
                                  strerror(errno));
                goto cleanup;
            }
            if ((rc = s_wait(fd, POLLIN, deadline, "waiting for the answer", err)) != 0)
                goto cleanup;
            continue;
        }
        const char *p = buf;
        size_t left = (size_t)k;
        if (!head_end) {
            size_t take = left < HEAD_MAX - have ? left : HEAD_MAX - have;
            memcpy(head + have, p, take);
            have += take;
            head[have] = '\0';
            head_end = strstr(head, "\r\n\r\n");
            if (!head_end) {
                if (have == HEAD_MAX) {
                    rc = gb_error_set(err, GB_EPROTO, "http: response head longer than %d bytes",
                                      HEAD_MAX);
                    goto cleanup;
                }
                continue;
            }
            size_t head_bytes = (size_t)(head_end - head) + 4;
            /* what of this read lies past the head is body */
            size_t in_head = head_bytes - (have - take); /* of this read */
            p = buf + in_head;
            left = (size_t)k - in_head;
        }
        if (body && cap > 1 && body_len < cap - 1) {
            size_t take = left < cap - 1 - body_len ? left : cap - 1 - body_len;
            memcpy(body + body_len, p, take);
            body_len += take;
            body[body_len] = '\0';
        }
    }
    int code = 0;
    if (!head_end || sscanf(head, "HTTP/1.%*1[01] %3d", &code) != 1 || code < 100 || code > 599) {
        rc = gb_error_set(err, GB_EPROTO, "http: %s did not answer with HTTP", addr);
        goto cleanup;
    }
    *status = code;
    rc = 0;
cleanup:
    close(fd);
    return rc;
}
