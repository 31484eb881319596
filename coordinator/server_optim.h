/* Server optimisers: how the coordinator moves the global parameters x by a
 * round's aggregated delta (aggregate.h), treated as a pseudo-gradient, as in
 * Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2. With
 * D the aggregated delta of round t, per parameter:
 *   sgd         x += lr * D                      (lr 1 is plain FedAvg)
 *   fedadam     m = b1 m + (1 - b1) D;  v = b2 v + (1 - b2) D^2
 *   fedyogi     m = b1 m + (1 - b1) D;  v = v - (1 - b2) D^2 sign(v - D^2)
 *   fedadagrad  m = b1 m + (1 - b1) D;  v = v + D^2
 *               and then, for the three adaptive ones,
 *               x += lr * m / (sqrt(v) + tau)
 * As in the paper there is no bias correction, m starts at 0 and v at
 * tau^2 (the paper's v_{-1} >= tau^2). Defaults: b1 0.9, b2 0.99, tau 1e-3
 * (the paper's); lr 1 for sgd, and 0.1 for fedadam and fedadagrad, 0.01 for
 * fedyogi (Flower's FedAdam, FedAdagrad and FedYogi strategies).
 *
 * Arithmetic is in double per parameter; m, v and x are stored as float32,
 * and the step uses the stored (rounded) m and v, so the state below is the
 * whole state: restoring it resumes bit-identically.
 *
 * State layout (gb_server_optim_get_state / set_state), for the adaptive
 * kinds: 2 * param_count floats, m[0..param_count) then v[0..param_count),
 * each in the parameters' own flat order; plus the count of steps taken.
 * sgd has no state (0 floats). A checkpoint saves these and hands them back.
 *
 * Ownership: gb_server_optim_new returns an optimiser the caller owns and
 * frees with gb_server_optim_destroy; params, delta and state buffers are the
 * caller's, only read (or, for params and get_state, written) during the
 * call. Not thread-safe. */
#ifndef GB_COORDINATOR_SERVER_OPTIM_H
#define GB_COORDINATOR_SERVER_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Largest param_count of an optimiser (as GB_AGG_MAX_PARAMS). */
#define GB_SERVER_OPTIM_MAX_PARAMS ((size_t)1 << 28)
/* Longest spec string accepted. */
#define GB_SERVER_OPTIM_SPEC_MAX 128

typedef enum {
    GB_SERVER_SGD,
    GB_SERVER_FEDADAM,
    GB_SERVER_FEDYOGI,
    GB_SERVER_FEDADAGRAD,
} gb_server_optim_kind_t;

typedef struct {
    gb_server_optim_kind_t kind; /* which rule */
    double lr;                   /* server learning rate, finite > 0 */
    double beta1;                /* first-moment decay, [0, 1) (adaptive kinds) */
    double beta2;                /* second-moment decay, [0, 1) (fedadam, fedyogi) */
    double tau;                  /* adaptivity, finite > 0 (adaptive kinds) */
} gb_server_optim_cfg_t;

typedef struct gb_server_optim gb_server_optim_t;

/* The defaults above for kind. */
gb_server_optim_cfg_t gb_server_optim_defaults(gb_server_optim_kind_t kind);

/* "sgd", "fedadam", "fedyogi" or "fedadagrad"; "?" for anything else. */
const char *gb_server_optim_kind_name(gb_server_optim_kind_t kind);

/* Parses "NAME" or "NAME:key=value,key=value" (keys lr, beta1, beta2, tau;
 * sgd takes only lr) into *out, starting from NAME's defaults:
 * "fedadam:lr=0.01,tau=1e-4". A bad spec is GB_EINVAL with a message naming
 * the bad part ("fedyogi: beta2 1.5 must be in [0, 1)"); *out is unchanged. */
int gb_server_optim_parse(const char *spec, gb_server_optim_cfg_t *out,
                          gb_error_t *err) GB_MUST_CHECK;

/* A new optimiser for param_count (1..GB_SERVER_OPTIM_MAX_PARAMS)
 * parameters, at step 0 (m = 0, v = tau^2). Returns NULL and fills err on a
 * bad configuration (GB_EINVAL, naming the field) or no memory (GB_ENOMEM). */
gb_server_optim_t *gb_server_optim_new(const gb_server_optim_cfg_t *cfg, size_t param_count,
                                       gb_error_t *err);

/* Frees; sets *opt to NULL; NULL-safe. */
void gb_server_optim_destroy(gb_server_optim_t **opt);

/* One server step: moves params[0..param_count) by delta[0..param_count) as
 * above and updates the state. Refuses, changing neither params nor state:
 * a wrong param_count (GB_ESHAPE), a NaN or infinity in delta or params
 * (GB_ERANGE, naming the index), and a step whose new parameters or state
 * would not be finite float32 values (GB_ERANGE, naming the index). delta is
 * only read. */
int gb_server_optim_step(gb_server_optim_t *opt, float *params, const float *delta,
                         size_t param_count, gb_error_t *err) GB_MUST_CHECK;

/* Steps taken (since new, or as restored by set_state). */
uint64_t gb_server_optim_steps(const gb_server_optim_t *opt);

/* The configuration and param_count given to new. */
gb_server_optim_cfg_t gb_server_optim_config(const gb_server_optim_t *opt);
size_t gb_server_optim_param_count(const gb_server_optim_t *opt);

/* Floats of state in the layout above: 2 * param_count, or 0 for sgd. */
size_t gb_server_optim_state_len(const gb_server_optim_t *opt);

/* Copies the state into state[0..len) (len must equal state_len; state may
 * be NULL when it is 0) and the step count into *steps (may be NULL).
 * GB_EINVAL for a wrong len. */
int gb_server_optim_get_state(const gb_server_optim_t *opt, float *state, size_t len,
                              uint64_t *steps, gb_error_t *err) GB_MUST_CHECK;

/* Replaces the state with state[0..len) and the step count with steps, as
 * saved by get_state (from an optimiser of the same kind and param_count).
 * Refuses, changing nothing: a wrong len (GB_ESHAPE), a NaN or infinity
 * (GB_ERANGE), and a negative v (GB_ERANGE), each naming the index. */
int gb_server_optim_set_state(gb_server_optim_t *opt, const float *state, size_t len,
                              uint64_t steps, gb_error_t *err) GB_MUST_CHECK;

#endif
