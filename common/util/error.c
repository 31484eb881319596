/* Error codes and the message buffer. Messages are truncated, never overrun. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *gb_strerror(int code)
{
    switch (code) {
    case GB_OK: return "success";
    case GB_EINVAL: return "invalid argument";
    case GB_ENOMEM: return "out of memory";
    case GB_EIO: return "input/output error";
    case GB_EFORMAT: return "malformed data";
    case GB_ESHAPE: return "shape mismatch";
    case GB_ERANGE: return "value out of range";
    case GB_ESPEC: return "bad model spec";
    case GB_EINTEGRITY: return "integrity check failed";
    case GB_EPROTO: return "protocol error";
    case GB_ECRYPTO: return "cryptographic failure";
    case GB_EUSAGE: return "bad usage";
    case GB_EAGAIN: return "try again later";
    case GB_ECLOSED: return "connection closed";
    default: return "unknown error";
    }
}

int gb_error_set(gb_error_t *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int gb_error_prefix(gb_error_t *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    char prefix[GB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[GB_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t plen = strlen(prefix), olen = strlen(old);
    if (plen > sizeof err->msg - 1)
        plen = sizeof err->msg - 1;
    if (olen > sizeof err->msg - 1 - plen)
        olen = sizeof err->msg - 1 - plen;
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, old, olen);
    err->msg[plen + olen] = '\0';
    if (err->code == 0)
        err->code = code;
    return err->code;
}

void gb_error_clear(gb_error_t *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
