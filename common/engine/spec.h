/* The model spec language: one layer a line, `#` comments.
 *
 *   input C H W | input T F | input N      first line: per-sample input shape
 *   conv OUT K [stride S] [pad P]          2-D cross-correlation, PyTorch layout
 *   maxpool K [stride S]  avgpool K [stride S]   (stride defaults to K)
 *   dense N   flatten   relu   tanh   sigmoid   dropout P
 *   lstm H [sequence]   gru H [sequence]       on (T, F) inputs; `sequence`
 *                                          outputs (T, H), else the last h
 *   embedding V D                          token ids in [0, V) -> (T, D);
 *                                          only as the first layer
 *
 * Parsing checks only the grammar and value ranges; whether the shapes fit is
 * checked when a model is built from the spec (gb_model_new). */
#ifndef GB_ENGINE_SPEC_H
#define GB_ENGINE_SPEC_H

#include "engine/shape.h"
#include "util/error.h"

typedef enum {
    GB_LAYER_DENSE,
    GB_LAYER_CONV2D,
    GB_LAYER_MAXPOOL2D,
    GB_LAYER_AVGPOOL2D,
    GB_LAYER_FLATTEN,
    GB_LAYER_RELU,
    GB_LAYER_TANH,
    GB_LAYER_SIGMOID,
    GB_LAYER_DROPOUT,
    GB_LAYER_LSTM,
    GB_LAYER_GRU,
    GB_LAYER_EMBEDDING,
    GB_LAYER_KIND_COUNT
} gb_layer_kind_t;

typedef struct {
    gb_layer_kind_t kind; /* which layer */
    int line;             /* 1-based spec line, for error messages */
    int units;            /* dense: outputs; conv: out channels */
    int kernel;           /* conv/pool: square kernel size */
    int stride;           /* conv/pool stride (>= 1) */
    int pad;              /* conv zero padding (>= 0) */
    float rate;           /* dropout probability in [0, 1) */
    int sequence;         /* lstm/gru: 1 outputs every step's state, 0 only the last */
    int vocab;            /* embedding: number of token ids V (units holds D) */
} gb_layer_cfg_t;

typedef struct {
    gb_shape_t input;       /* per-sample input shape from the `input` line */
    int n_layers;           /* number of entries in layers */
    gb_layer_cfg_t *layers; /* owned; n_layers entries */
    char *text;             /* owned copy of the spec text as given */
} gb_spec_t;

/* Parses spec text, or a preset name (`lenet`, `mlp`, `lstm`), into a new spec the
 * caller owns (free with gb_spec_destroy). Returns NULL and fills err with
 * "spec line N: ..." naming the line and what was expected. */
gb_spec_t *gb_spec_parse(const char *text, gb_error_t *err);

/* Frees a spec; sets *spec to NULL; NULL-safe. */
void gb_spec_destroy(gb_spec_t **spec);

/* Text of a named preset, or NULL if there is none; a static string. */
const char *gb_spec_preset(const char *name);

/* The spec keyword of a layer kind ("conv", "dense", ...); a static string. */
const char *gb_layer_kind_name(gb_layer_kind_t kind);

#endif
