/* libFuzzer target: the link's frame header (net/link_frame.h), the first
 * thing the coordinator reads from any peer. A header that decodes must
 * encode back to exactly its 9 bytes. */
#include <stdint.h>
#include <string.h>

#include "fuzz_target.h"
#include "net/link.h"
#include "net/link_frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return gb_fuzz_quiet(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gb_link_header_t h;
    if (gb_link_header_decode(data, size, &h, NULL) != 0)
        return 0;
    uint8_t again[GB_LINK_HEADER_BYTES];
    gb_link_header_encode(h.kind, h.session_id, again);
    if (size != GB_LINK_HEADER_BYTES || memcmp(again, data, size) != 0 || h.session_id == 0)
        __builtin_trap();
    return 0;
}
