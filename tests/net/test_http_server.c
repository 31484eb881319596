/* Tests for net/http_server, net/http_get and net/status_endpoint: a server
 * on a free port (":0") answers its routes, 404 for others, 405 for POST,
 * 413 for a request with a body; /healthz follows the loop's beats; bad
 * addresses are refused. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/http_get.h"
#include "net/http_server.h"
#include "net/status_endpoint.h"
#include "util/metrics.h"

static int s_hello(void *arg, gb_http_reply_t *r)
{
    (void)arg;
    r->body = strdup("hello");
    r->len = 5;
    return 0;
}

static int s_fails(void *arg, gb_http_reply_t *r)
{
    (void)arg;
    (void)r;
    return GB_EINVAL;
}

static void s_addr(char *buf, size_t cap, uint16_t port)
{
    snprintf(buf, cap, "127.0.0.1:%u", (unsigned)port);
}

/* Sends raw text and returns the status code of the answer. */
static int s_raw(uint16_t port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char buf[1024] = {0};
    size_t have = 0;
    ssize_t k;
    while (have < sizeof buf - 1 && (k = recv(fd, buf + have, sizeof buf - 1 - have, 0)) > 0)
        have += (size_t)k;
    close(fd);
    int code = 0;
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &code), 1);
    return code;
}

static void test_addr_parse(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    socklen_t len;
    gb_error_t err = {0};
    assert_int_equal(gb_http_addr_parse("127.0.0.1:7702", &sa, &len, &err), 0);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(gb_http_addr_parse("[::1]:0", &sa, &len, &err), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    const char *bad[] = {"", "7702", "127.0.0.1:", "127.0.0.1:65536", "localhost:80",
                         "127.0.0.1:-1", "::1:80", "1.2.3.4:12a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(gb_http_addr_parse(bad[i], &sa, &len, &err), GB_EUSAGE);
}

static void test_routes_and_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_http_route_t routes[] = {{"/hello", s_hello, NULL}, {"/fails", s_fails, NULL}};
    gb_http_server_t *s = gb_http_server_new("127.0.0.1:0", routes, 2, &err);
    assert_non_null(s);
    uint16_t port = gb_http_server_port(s);
    assert_true(port > 0);
    char addr[64], body[64];
    s_addr(addr, sizeof addr, port);
    int status = 0;
    assert_int_equal(gb_http_get(addr, "/hello", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "hello");
    assert_int_equal(gb_http_get(addr, "/hello?x=1", 20000, &status, body, 3, &err), 0);
    assert_string_equal(body, "he"); /* cut to the buffer */
    assert_int_equal(gb_http_get(addr, "/nothing", 20000, &status, NULL, 0, &err), 0);
    assert_int_equal(status, 404);
    assert_int_equal(gb_http_get(addr, "/fails", 20000, &status, NULL, 0, &err), 0);
    assert_int_equal(status, 500);
    assert_int_equal(s_raw(port, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n"),
                     405);
    assert_int_equal(s_raw(port, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                 "Connection: close\r\n\r\nabcd"),
                     413);
    /* the port is taken now: a second server on it is refused, naming it */
    gb_http_server_t *again = gb_http_server_new(addr, routes, 2, &err);
    assert_null(again);
    assert_int_equal(err.code, GB_EIO);
    assert_non_null(strstr(err.msg, addr));
    gb_http_server_destroy(&s);
    assert_null(s);
    gb_http_server_destroy(&s);
    /* nobody listens any more */
    assert_int_equal(gb_http_get(addr, "/hello", 5000, &status, NULL, 0, &err), GB_EIO);
}

static void test_status_endpoint(void **state)
{
    (void)state;
    gb_metrics_reset();
    gb_error_t err = {0};
    assert_null(gb_status_endpoint_new("127.0.0.1:0", 0, &err));
    gb_status_endpoint_t *e = gb_status_endpoint_new("127.0.0.1:0", 3600, &err);
    assert_non_null(e);
    char addr[64], body[4096];
    s_addr(addr, sizeof addr, gb_status_endpoint_port(e));
    int status = 0;
    assert_int_equal(gb_http_get(addr, "/healthz", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 503);
    assert_string_equal(body, "starting\n");
    gb_status_endpoint_beat(e, NULL);
    assert_int_equal(gb_http_get(addr, "/healthz", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "ok\n");
    gb_status_endpoint_beat(e, "round 3 abandoned 3 times in a row");
    assert_int_equal(gb_http_get(addr, "/healthz", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 503);
    assert_string_equal(body, "round 3 abandoned 3 times in a row\n");
    assert_int_equal(gb_http_get(addr, "/status", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 404);
    assert_int_equal(gb_status_endpoint_set_status(e, "{\"round\":3}", &err), 0);
    assert_int_equal(gb_http_get(addr, "/status", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"round\":3}");
    char *big = malloc(GB_STATUS_DOC_MAX + 2);
    memset(big, 'x', GB_STATUS_DOC_MAX + 1);
    big[GB_STATUS_DOC_MAX + 1] = '\0';
    assert_int_equal(gb_status_endpoint_set_status(e, big, &err), GB_ERANGE);
    free(big);
    gb_metrics_counter_add("glassbox_test_total", "A test counter", NULL, NULL, 2);
    assert_int_equal(gb_http_get(addr, "/metrics", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "glassbox_test_total 2\n"));
    gb_status_endpoint_destroy(&e);
    assert_null(e);
    /* NULL endpoints: calls do nothing */
    gb_status_endpoint_beat(NULL, "x");
    assert_int_equal(gb_status_endpoint_set_status(NULL, "{}", &err), 0);
    assert_int_equal(gb_status_endpoint_port(NULL), 0);
    gb_metrics_reset();
}

static void test_stall(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_status_endpoint_t *e = gb_status_endpoint_new("127.0.0.1:0", 0.05, &err);
    assert_non_null(e);
    char addr[64], body[256];
    s_addr(addr, sizeof addr, gb_status_endpoint_port(e));
    gb_status_endpoint_beat(e, NULL);
    usleep(200 * 1000); /* longer than the stall bound: any delay only makes it older */
    int status = 0;
    assert_int_equal(gb_http_get(addr, "/healthz", 20000, &status, body, sizeof body, &err), 0);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "has not run for"));
    gb_status_endpoint_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_routes_and_refusals),
        cmocka_unit_test(test_status_endpoint),
        cmocka_unit_test(test_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
