/* Signed publications over PUB/SUB. See publish.h for what a subscriber
 * refuses; the cryptography is net/signing.c's and the Publication's
 * validation net/envelope.c's, so this file only moves frames and keeps the
 * last round. */
#include "net/publish.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "net/envelope.h"
#include "net/publication.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/time.h"

struct gb_publisher {
    void *sock;                 /* PUB */
    const gb_signer_t *signer;  /* borrowed */
    char endpoint[256];         /* as bound */
};

struct gb_subscriber {
    void *sock;                 /* SUB */
    char *ca_file;              /* trust: copied from the options */
    char *crl_file;             /* NULL: none */
    char *expected_name;        /* the coordinator's certificate name */
    time_t at;                  /* verification time (0: now) */
    uint64_t last_round;        /* newest round accepted */
};

gb_publisher_t *gb_publisher_new(void *zmq_ctx, const char *endpoint, const gb_signer_t *signer,
                                 gb_error_t *err)
{
    gb_publisher_t *pub = gb_calloc(1, sizeof *pub);
    if (!pub) {
        gb_error_set(err, GB_ENOMEM, "publisher: out of memory");
        return NULL;
    }
    pub->signer = signer;
    pub->sock = zmq_socket(zmq_ctx, ZMQ_PUB);
    int zero = 0;
    if (!pub->sock || zmq_setsockopt(pub->sock, ZMQ_LINGER, &zero, sizeof zero) != 0) {
        gb_error_set(err, GB_EIO, "publisher: socket: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(pub->sock, endpoint) != 0) {
        gb_error_set(err, GB_EIO, "publisher: cannot bind %s: %s", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    size_t len = sizeof pub->endpoint;
    if (zmq_getsockopt(pub->sock, ZMQ_LAST_ENDPOINT, pub->endpoint, &len) != 0)
        snprintf(pub->endpoint, sizeof pub->endpoint, "%s", endpoint);
    /* ZeroMQ's PUB socket authenticates nobody: say so where the operator
     * looks, every time it is opened. */
    gb_log_warn("publications on %s are public: anyone who can connect receives every "
                "round's model, explanation and client names", pub->endpoint);
    return pub;
fail:
    gb_publisher_destroy(&pub);
    return NULL;
}

void gb_publisher_destroy(gb_publisher_t **ppub)
{
    if (!ppub || !*ppub)
        return;
    if ((*ppub)->sock)
        zmq_close((*ppub)->sock);
    gb_free(*ppub);
    *ppub = NULL;
}

const char *gb_publisher_endpoint(const gb_publisher_t *pub)
{
    return pub->endpoint;
}

int gb_publisher_send(gb_publisher_t *pub, const uint8_t *publication, size_t len,
                      gb_error_t *err)
{
    uint8_t *signed_pub = NULL;
    size_t signed_len = 0;
    int rc = gb_publication_sign(pub->signer, publication, len, &signed_pub, &signed_len, err);
    if (rc != 0)
        return rc;
    /* PUB never blocks: a subscriber that is behind misses this one, as
     * publish.h explains. */
    if (zmq_send(pub->sock, GB_PUBLISH_TOPIC, strlen(GB_PUBLISH_TOPIC), ZMQ_SNDMORE) < 0 ||
        zmq_send(pub->sock, signed_pub, signed_len, 0) < 0)
        rc = gb_error_set(err, GB_EIO, "publisher: send failed: %s", zmq_strerror(errno));
    gb_free(signed_pub);
    return rc;
}

static char *s_dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = gb_strdup(s);
    if (!d)
        *failed = true;
    return d;
}

gb_subscriber_t *gb_subscriber_new(void *zmq_ctx, const char *endpoint,
                                   const gb_verify_opts_t *trust, gb_error_t *err)
{
    if (!trust || !trust->ca_file || !trust->expected_name) {
        gb_error_set(err, GB_EINVAL, "subscriber: a CA file and the coordinator's name are "
                                     "required");
        return NULL;
    }
    gb_subscriber_t *sub = gb_calloc(1, sizeof *sub);
    bool failed = !sub;
    if (sub) {
        sub->ca_file = s_dup_or_null(trust->ca_file, &failed);
        sub->crl_file = s_dup_or_null(trust->crl_file, &failed);
        sub->expected_name = s_dup_or_null(trust->expected_name, &failed);
        sub->at = trust->at;
    }
    if (failed) {
        gb_error_set(err, GB_ENOMEM, "subscriber: out of memory");
        goto fail;
    }
    sub->sock = zmq_socket(zmq_ctx, ZMQ_SUB);
    int zero = 0;
    int64_t max = (int64_t)GB_SIGNED_PUBLICATION_MAX_BYTES;
    if (!sub->sock || zmq_setsockopt(sub->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(sub->sock, ZMQ_SUBSCRIBE, GB_PUBLISH_TOPIC,
                       strlen(GB_PUBLISH_TOPIC)) != 0) {
        gb_error_set(err, GB_EIO, "subscriber: socket: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_connect(sub->sock, endpoint) != 0) {
        gb_error_set(err, GB_EIO, "subscriber: cannot connect to %s: %s", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    return sub;
fail:
    gb_subscriber_destroy(&sub);
    return NULL;
}

void gb_subscriber_destroy(gb_subscriber_t **psub)
{
    if (!psub || !*psub)
        return;
    gb_subscriber_t *sub = *psub;
    if (sub->sock)
        zmq_close(sub->sock);
    gb_free(sub->ca_file);
    gb_free(sub->crl_file);
    gb_free(sub->expected_name);
    gb_free(sub);
    *psub = NULL;
}

/* Checks one received message; returns the Publication or NULL (logged). */
static Glassbox__Publication *s_check(gb_subscriber_t *sub, zmq_msg_t *topic, zmq_msg_t *body,
                                      bool complete, Glassbox__SignedPublication **signed_out)
{
    gb_error_t err = {0};
    if (!complete || zmq_msg_size(topic) != strlen(GB_PUBLISH_TOPIC) ||
        memcmp(zmq_msg_data(topic), GB_PUBLISH_TOPIC, strlen(GB_PUBLISH_TOPIC)) != 0) {
        gb_log_warn("subscriber: a message that is not [topic, publication]; ignored");
        return NULL;
    }
    gb_verify_opts_t trust = {.ca_file = sub->ca_file, .crl_file = sub->crl_file,
                              .expected_name = sub->expected_name, .at = sub->at};
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (gb_publication_verify(zmq_msg_data(body), zmq_msg_size(body), &trust, &bytes, &len,
                              &err) != 0)
        return NULL; /* logged by the verifier */
    Glassbox__Publication *p = NULL;
    int rc = gb_publication_decode(bytes, len, &p, &err);
    gb_free(bytes);
    if (rc != 0)
        return NULL; /* logged by the decoder */
    if (p->round <= sub->last_round) {
        gb_log_warn("subscriber: publication of round %llu refused: round %llu was already "
                    "accepted (a replay, or the coordinator went back in time)",
                    (unsigned long long)p->round, (unsigned long long)sub->last_round);
        gb_publication_free(&p);
        return NULL;
    }
    if (signed_out &&
        !(*signed_out = glassbox__signed_publication__unpack(NULL, zmq_msg_size(body),
                                                             zmq_msg_data(body)))) {
        /* it verified, so it parsed once already: only memory can fail here */
        gb_log_error("subscriber: out of memory for the publication of round %llu",
                     (unsigned long long)p->round);
        gb_publication_free(&p);
        return NULL;
    }
    if (sub->last_round && p->round > sub->last_round + 1)
        gb_log_info("subscriber: missed rounds %llu..%llu", (unsigned long long)sub->last_round + 1,
                    (unsigned long long)p->round - 1);
    sub->last_round = p->round;
    return p;
}

int gb_subscriber_poll(gb_subscriber_t *sub, int timeout_ms, Glassbox__Publication **out,
                       Glassbox__SignedPublication **signed_out, gb_error_t *err)
{
    *out = NULL;
    if (signed_out)
        *signed_out = NULL;
    double deadline = gb_time_now() + (timeout_ms < 0 ? 1e18 : timeout_ms / 1000.0);
    for (;;) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sub->sock, ZMQ_DONTWAIT) >= 0) {
            bool complete = zmq_msg_more(&topic) && zmq_msg_recv(&body, sub->sock, 0) >= 0 &&
                            !zmq_msg_more(&body);
            while (zmq_msg_more(&body)) { /* drain whatever else the sender added */
                zmq_msg_close(&body);
                zmq_msg_init(&body);
                if (zmq_msg_recv(&body, sub->sock, 0) < 0)
                    break;
            }
            *out = s_check(sub, &topic, &body, complete, signed_out);
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            if (*out)
                return 1;
            continue;
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        if (errno != EAGAIN && errno != EINTR)
            return gb_error_set(err, GB_EIO, "subscriber: receive failed: %s",
                                zmq_strerror(errno));
        double left = deadline - gb_time_now();
        if (left <= 0)
            return 0;
        zmq_pollitem_t item = {.socket = sub->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, (long)(left * 1000.0) + 1) < 0 && errno != EINTR)
            return gb_error_set(err, GB_EIO, "subscriber: poll failed: %s",
                                zmq_strerror(errno));
    }
}
