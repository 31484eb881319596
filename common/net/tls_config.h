/* Private to net/: the TLS configuration behind gb_tls_t (tls_config.c) as
 * the channel (channel.c) sees it. Nothing outside common/net includes this;
 * the public contract is net/channel.h.
 *
 * The trust store is held apart from the SSL_CTX so that gb_tls_reload_crl
 * can swap it while channels run: each channel takes its own reference to
 * the store current when it is made (gb_tls_attach_store), so a reload never
 * frees a store under a handshake in progress, on any thread. */
#ifndef GB_NET_TLS_CONFIG_H
#define GB_NET_TLS_CONFIG_H

#include <pthread.h>
#include <stdbool.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/channel.h"

struct gb_tls {
    gb_tls_role_t role;         /* side of every channel made from this */
    bool allow_anonymous_peers; /* server: a client may send no certificate */
    bool has_cert;              /* own certificate and key are loaded */
    SSL_CTX *ctx;               /* TLS 1.3 only, own certificate, verify mode */
    STACK_OF(X509) *ca_certs;   /* the trust anchors read from ca_file */
    pthread_mutex_t lock;       /* guards store */
    X509_STORE *store;          /* ca_certs plus the current CRL, if any */
};

/* Gives ssl a reference to the trust store current now (thread-safe against
 * gb_tls_reload_crl). Returns 0 or GB_ENOMEM. */
int gb_tls_attach_store(gb_tls_t *tls, SSL *ssl);

/* A new reference to the trust store current now (the caller frees it with
 * X509_STORE_free), thread-safe against gb_tls_reload_crl; NULL when out of
 * memory. */
X509_STORE *gb_tls_store_ref(gb_tls_t *tls);

#endif
