/* Hex encoding and decoding (see hex.h), shared by the CA registry
 * (net/pki_ca.c) and the enrollment token store (coordinator/enroll_tokens.c),
 * which each had a copy.
 *
 * Decoding is a loop without an early exit: it accumulates "every digit was
 * valid" and looks for the offending offset only once it knows the text is
 * refused, so the time taken over a well-formed token does not depend on
 * its digits' positions. The wipe on failure uses explicit_bzero, which the
 * compiler may not drop, because the half-decoded bytes may be a secret. */
#include "util/hex.h"

#include <stdbool.h>
#include <string.h>

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gb_hex_encode(const uint8_t *in, size_t n, char *out, size_t out_cap, gb_error_t *err)
{
    static const char digits[] = "0123456789abcdef";
    /* (out_cap - 1) / 2 >= n is out_cap >= 2n + 1 without overflowing 2n. */
    if (!out || out_cap == 0 || (out_cap - 1) / 2 < n) {
        if (out && out_cap > 0)
            out[0] = '\0';
        return gb_error_set(err, GB_ERANGE,
                            "%zu bytes need 2 x %zu hex digits and a NUL, the buffer holds %zu",
                            n, n, out ? out_cap : 0);
    }
    if (!in && n > 0) {
        out[0] = '\0';
        return gb_error_set(err, GB_EINVAL, "gb_hex_encode: NULL input of %zu bytes", n);
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
    return 0;
}

int gb_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_cap,
                  gb_error_t *err)
{
    size_t n = hex_len / 2;
    if ((hex_len > 0 && !hex) || (n > 0 && out_cap > 0 && !out))
        return gb_error_set(err, GB_EINVAL, "gb_hex_decode: NULL argument");
    size_t wipe = n < out_cap ? n : out_cap;
    if (hex_len % 2 != 0) {
        if (wipe)
            explicit_bzero(out, wipe);
        return gb_error_set(err, GB_EFORMAT, "hex text of %zu digits: an odd number", hex_len);
    }
    if (out_cap < n) {
        if (wipe)
            explicit_bzero(out, wipe);
        return gb_error_set(err, GB_ERANGE, "%zu hex digits make %zu bytes, the buffer holds %zu",
                            hex_len, n, out_cap);
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        int hi = s_nibble(hex[2 * i]), lo = s_nibble(hex[2 * i + 1]);
        ok &= hi >= 0 && lo >= 0;
        out[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
    }
    if (ok)
        return 0;
    explicit_bzero(out, n);
    size_t bad = 0;
    while (s_nibble(hex[bad]) >= 0)
        bad++;
    return gb_error_set(err, GB_EFORMAT, "hex text: character %zu of %zu is not a hex digit",
                        bad, hex_len);
}
