/* Opening a model by preset, spec file or model file (see model_source.h). */
#include "net/model_source.h"
#include "net/snapshot.h"
#include "util/alloc.h"
#include "util/file.h"

#include <string.h>

#define SPEC_FILE_MAX ((size_t)64 << 10)

/* Spec files are short printable text; a model file is binary protobuf. */
static bool s_looks_like_text(const uint8_t *data, size_t len)
{
    if (len > SPEC_FILE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = data[i];
        if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t'))
            return false;
    }
    return true;
}

gb_model_t *gb_model_source_open(const char *what, bool *from_file, gb_error_t *err)
{
    *from_file = false;
    if (gb_spec_preset(what))
        return gb_model_new(what, err);
    uint8_t *data = NULL;
    size_t len = 0;
    if (gb_file_read_all(what, GB_SNAPSHOT_MAX_BYTES, &data, &len, err)) {
        gb_error_prefix(err, GB_EIO, "model '%s' is neither a preset (lenet, mlp, lstm) nor a readable "
                                     "file: ",
                        what);
        return NULL;
    }
    gb_model_t *model = NULL;
    if (s_looks_like_text(data, len)) {
        char *text = gb_malloc(len + 1);
        if (!text) {
            gb_error_set(err, GB_ENOMEM, "out of memory reading %s", what);
        } else {
            memcpy(text, data, len);
            text[len] = '\0';
            model = gb_model_new(text, err);
            if (!model)
                gb_error_prefix(err, GB_ESPEC, "%s: ", what);
            gb_free(text);
        }
    } else {
        gb_snapshot_t *snap = NULL;
        if (gb_snapshot_decode(data, len, &snap, err) == 0) {
            model = gb_snapshot_to_model(snap, err);
            gb_snapshot_destroy(&snap);
            *from_file = model != NULL;
        }
        if (!model)
            gb_error_prefix(err, GB_EFORMAT, "model file %s: ", what);
    }
    gb_free(data);
    return model;
}
