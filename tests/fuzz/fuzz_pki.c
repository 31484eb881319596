/* libFuzzer target: the DER parsers of net/pki.h that read what arrives from
 * outside (certificates and CSRs in enrollment, CRLs, keys), and the
 * coordinator's enrollment service (coordinator/enroll_service.h) on a whole
 * request envelope, with a real CA and token store made at start-up in a
 * temporary directory.
 *
 * The first input byte picks what the rest is: 0 a certificate, 1 a CSR,
 * 2 a CRL, 3 a private key, anything else an Envelope for the enrollment
 * service. Every parser must refuse or accept without crashing or leaking
 * (an accepted certificate is also re-encoded and named), and the service
 * must always produce a reply (an EnrollResponse is impossible here:
 * the fuzzer does not know the token, so it traps on one).
 *
 * Seeds (corpus/pki): DER made with the openssl command from the test PKI
 * (a P-256 and an Ed25519 certificate, a CSR, a CRL, a PKCS#8 key) and
 * enrollment envelopes (protoc's Python classes around that CSR). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "fuzz_target.h"
#include "enroll_service.h"
#include "net/envelope.h"
#include "net/pki.h"
#include "util/alloc.h"
#include "util/log.h"

static gb_ca_t *s_ca;
static gb_tokens_t *s_tokens;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gb_log_set_level(GB_LOG_OFF);
    char tmpl[] = "/tmp/gb-fuzz-pki-XXXXXX";
    char *base = mkdtemp(tmpl);
    char dir[64], token[GB_TOKEN_HEX_LEN + 1], id[13];
    gb_error_t err = {0};
    snprintf(dir, sizeof dir, "%s/ca", base ? base : "/tmp");
    if (!base || gb_ca_init(dir, "fuzz", "coordinator.test", 30, &err) != 0 ||
        !(s_ca = gb_ca_open(dir, &err)) || !(s_tokens = gb_tokens_load(dir, &err)) ||
        gb_tokens_create(s_tokens, 1000, 3600, time(NULL), token, id, &err) != 0) {
        fprintf(stderr, "fuzz_pki: cannot make a CA: %s\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *der = data + 1;
    size_t len = size - 1;
    switch (data[0]) {
    case 0: {
        X509 *cert = gb_pki_cert_from_der(der, len, NULL);
        if (cert) {
            uint8_t *out = NULL;
            size_t out_len = 0;
            char name[GB_PKI_NAME_MAX + 1];
            (void)gb_pki_cert_name(cert, name, NULL);
            if (gb_pki_cert_to_der(cert, &out, &out_len, NULL) == 0 && out_len == 0)
                __builtin_trap();
            gb_free(out);
            X509_free(cert);
        }
        return 0;
    }
    case 1:
        X509_REQ_free(gb_pki_csr_from_der(der, len, NULL));
        return 0;
    case 2:
        X509_CRL_free(gb_pki_crl_from_der(der, len, NULL));
        return 0;
    case 3:
        EVP_PKEY_free(gb_pki_key_from_der(der, len, NULL));
        return 0;
    default: {
        gb_enroll_service_t svc = {.ca = s_ca, .tokens = s_tokens, .days = 1};
        uint8_t *reply = NULL;
        size_t reply_len = 0;
        int rc = gb_enroll_service_answer(&svc, der, len, 1, 0, &reply, &reply_len, NULL);
        if (rc == 0 || (!reply && rc != GB_ENOMEM))
            __builtin_trap();
        gb_free(reply);
        return 0;
    }
    }
}
