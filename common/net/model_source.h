/* Where the commands (the client's local ones and the coordinator's initial
 * global model) get a model: a preset name (lenet, mlp, lstm), a spec text
 * file, or a saved model file (ModelSnapshot). */
#ifndef GB_NET_MODEL_SOURCE_H
#define GB_NET_MODEL_SOURCE_H

#include <stdbool.h>

#include "engine/model.h"
#include "util/error.h"

/* Builds the model named by `what`. A preset or spec file gives a model with
 * zeroed parameters and *from_file = false; a saved model file gives its
 * parameters and *from_file = true. The file is sniffed, not judged by its
 * name: bytes that are not text are decoded as a model file, so a damaged
 * model file is reported as such. Returns a new model the caller owns, or
 * NULL with err naming the file and what is wrong. */
gb_model_t *gb_model_source_open(const char *what, bool *from_file, gb_error_t *err);

#endif
