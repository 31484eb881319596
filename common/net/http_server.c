/* The read-only HTTP server (http_server.h) on libmicrohttpd. The listening
 * socket is made here, not by microhttpd, so that a port that cannot be
 * bound is reported with its errno and the port chosen for ":0" can be read
 * back; microhttpd then owns it (and closes it when it stops). Each request
 * is answered on its first call into the access handler: nothing of a body
 * is ever read, so no per-request state is kept. */
#include "net/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util/alloc.h"
#include "util/log.h"

struct gb_http_server {
    struct MHD_Daemon *daemon;                /* microhttpd's server and thread */
    gb_http_route_t routes[GB_HTTP_MAX_ROUTES]; /* copied table; paths borrowed */
    size_t n_routes;                          /* entries used */
    uint16_t port;                            /* the bound port */
};

int gb_http_addr_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                       gb_error_t *err)
{
    if (!text || !*text)
        return gb_error_set(err, GB_EUSAGE, "expected HOST:PORT, got an empty address");
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || !colon[1])
        return gb_error_set(err, GB_EUSAGE, "expected HOST:PORT, got '%s'", text);
    char host[64];
    size_t hlen = (size_t)(colon - text);
    const char *h = text;
    if (text[0] == '[') { /* [v6]:port */
        if (hlen < 3 || text[hlen - 1] != ']')
            return gb_error_set(err, GB_EUSAGE, "expected [IPv6]:PORT, got '%s'", text);
        h = text + 1;
        hlen -= 2;
    } else if (memchr(text, ':', hlen)) {
        return gb_error_set(err, GB_EUSAGE, "an IPv6 address goes in brackets: '[%.*s]:PORT'",
                            (int)hlen, text);
    }
    if (hlen == 0 || hlen >= sizeof host)
        return gb_error_set(err, GB_EUSAGE, "expected HOST:PORT, got '%s'", text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    const char *port = colon + 1;
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return gb_error_set(err, GB_EUSAGE, "'%s': the port must be a number 0..65535", text);
    char *end = NULL;
    unsigned long pn = strtoul(port, &end, 10);
    if (strlen(port) > 5 || pn > 65535)
        return gb_error_set(err, GB_EUSAGE, "'%s': the port must be a number 0..65535", text);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return gb_error_set(err, GB_EUSAGE,
                            "'%s': the host must be a numeric IPv4 or [IPv6] address", text);
    memset(out, 0, sizeof *out);
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *out_len = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static enum MHD_Result s_queue(struct MHD_Connection *conn, int status, const char *ctype,
                               const char *body, size_t len, bool allow_get)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO; /* microhttpd closes the connection */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow_get)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

#define TEXT "text/plain; charset=utf-8"

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    gb_http_server_t *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        static const char msg[] = "method not allowed: only GET\n";
        return s_queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT, msg, sizeof msg - 1, true);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te || (cl && strcmp(cl, "0") != 0)) {
        static const char msg[] = "request bodies are not accepted\n";
        return s_queue(conn, MHD_HTTP_CONTENT_TOO_LARGE, TEXT, msg, sizeof msg - 1, false);
    }
    for (size_t i = 0; i < s->n_routes; i++) {
        if (strcmp(url, s->routes[i].path) != 0)
            continue;
        gb_http_reply_t reply = {200, TEXT, NULL, 0};
        if (s->routes[i].fn(s->routes[i].arg, &reply) != 0) {
            free(reply.body);
            static const char msg[] = "internal error\n";
            return s_queue(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT, msg, sizeof msg - 1,
                           false);
        }
        enum MHD_Result rc = s_queue(conn, reply.status, reply.content_type,
                                     reply.body ? reply.body : "", reply.body ? reply.len : 0,
                                     false);
        free(reply.body);
        return rc;
    }
    static const char msg[] = "not found\n";
    return s_queue(conn, MHD_HTTP_NOT_FOUND, TEXT, msg, sizeof msg - 1, false);
}

gb_http_server_t *gb_http_server_new(const char *addr, const gb_http_route_t *routes, size_t n,
                                     gb_error_t *err)
{
    if (n > GB_HTTP_MAX_ROUTES) {
        gb_error_set(err, GB_EINVAL, "http: %zu routes, at most %d", n, GB_HTTP_MAX_ROUTES);
        return NULL;
    }
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    if (gb_http_addr_parse(addr, &sa, &sa_len, err) != 0)
        return NULL;
    gb_http_server_t *s = gb_calloc(1, sizeof *s);
    if (!s) {
        gb_error_set(err, GB_ENOMEM, "http: out of memory");
        return NULL;
    }
    memcpy(s->routes, routes, n * sizeof *routes);
    s->n_routes = n;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sa_len) != 0 || listen(fd, 64) != 0) {
        gb_error_set(err, GB_EIO, "http: cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        gb_free(s);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_access, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)GB_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)GB_HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)GB_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GB_HTTP_MEMORY_LIMIT, MHD_OPTION_END);
    if (!s->daemon) {
        gb_error_set(err, GB_EIO, "http: cannot start the server on %s", addr);
        close(fd);
        gb_free(s);
        return NULL;
    }
    gb_log_info("http: serving on %s (port %u)", addr, (unsigned)s->port);
    return s;
}

uint16_t gb_http_server_port(const gb_http_server_t *s)
{
    return s->port;
}

void gb_http_server_destroy(gb_http_server_t **s)
{
    if (!s || !*s)
        return;
    MHD_stop_daemon((*s)->daemon);
    gb_free(*s);
    *s = NULL;
}
