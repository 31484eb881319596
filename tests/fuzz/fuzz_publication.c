/* libFuzzer target: what a subscriber does with a publication (net/signing.h
 * gb_publication_verify, then net/publication.h gb_publication_decode).
 *
 * The first input byte picks the mode:
 *   even: the rest is a packed SignedPublication off the wire, verified
 *         against the test PKI (GB_BINARY_DIR/test-pki, made by
 *         tests/net/make_test_pki.sh): the unpacking, the certificate and
 *         the signature checks;
 *   odd:  the rest is a packed Publication, which is signed here with the
 *         test coordinator's key, so that verification passes and the
 *         fuzzer reaches the Publication decoder behind it. An accepted
 *         Publication must encode again to bytes that decode.
 * Seeds (corpus/publication): two Publications packed with protoc's Python
 * classes around the snapshot seeds, a third with a flagged client
 * (publication-flags: the first with a ClientFlag added the same way), and
 * one SignedPublication signed by the
 * test PKI of the day it was made (its certificate no longer chains to a
 * freshly made test CA, which exercises the refusal path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "net/envelope.h"
#include "net/publication.h"
#include "net/signing.h"
#include "util/alloc.h"
#include "util/log.h"

static gb_signer_t *s_signer;
static char s_ca[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gb_log_set_level(GB_LOG_OFF);
    const char *bin = getenv("GB_BINARY_DIR");
    char key[4096], cert[4096];
    snprintf(s_ca, sizeof s_ca, "%s/test-pki/ca.pem", bin ? bin : ".");
    snprintf(key, sizeof key, "%s/test-pki/coordinator.key", bin ? bin : ".");
    snprintf(cert, sizeof cert, "%s/test-pki/coordinator.pem", bin ? bin : ".");
    gb_error_t err = {0};
    s_signer = gb_signer_load(key, cert, &err);
    if (!s_signer) {
        fprintf(stderr, "fuzz_publication: %s (run tests/net/make_test_pki.sh into "
                        "$GB_BINARY_DIR/test-pki)\n", err.msg);
        exit(1);
    }
    return 0;
}

static void s_decode(const uint8_t *pub, size_t len)
{
    Glassbox__Publication *p = NULL;
    if (gb_publication_decode(pub, len, &p, NULL) != 0)
        return;
    uint8_t *again = NULL;
    size_t again_len = 0;
    Glassbox__Publication *q = NULL;
    if (gb_publication_encode(p, &again, &again_len, NULL) != 0 ||
        gb_publication_decode(again, again_len, &q, NULL) != 0 || q->round != p->round)
        __builtin_trap();
    gb_publication_free(&q);
    gb_publication_free(&p);
    gb_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    gb_verify_opts_t trust = {.ca_file = s_ca, .expected_name = "coordinator.test"};
    uint8_t *pub = NULL;
    size_t len = 0;
    if ((data[0] & 1) == 0) {
        if (gb_publication_verify(data + 1, size - 1, &trust, &pub, &len, NULL) == 0) {
            /* Only the test coordinator's own signatures pass; a mutation of
             * such a seed that still verifies is decoded like any other. */
            s_decode(pub, len);
            gb_free(pub);
        }
        return 0;
    }
    uint8_t *signed_pub = NULL;
    size_t signed_len = 0;
    if (gb_publication_sign(s_signer, data + 1, size - 1, &signed_pub, &signed_len, NULL) != 0)
        return 0;
    if (gb_publication_verify(signed_pub, signed_len, &trust, &pub, &len, NULL) != 0 ||
        len != size - 1 || memcmp(pub, data + 1, len) != 0)
        __builtin_trap(); /* our own signature must verify, over exactly our bytes */
    s_decode(pub, len);
    gb_free(pub);
    gb_free(signed_pub);
    return 0;
}
