/* Which clients stand out, round after round (issue 12: explanations that
 * defend the federation).
 *
 * Each round the federation hands the flagger one piece of evidence per
 * client whose update it accepted: how far the client's explanation lies
 * from the pooled explanation of all the OTHER clients (explain_merge.h's
 * leave-one-out Jensen-Shannon distance), how far its update lies from the
 * round's coordinate-wise median of the updates, and its update's L2 norm.
 *
 * The rule, per round: each signal becomes a robust z-score over the round's
 * clients, z = (x - median) / s with s = 1.4826 x MAD (the normal-consistent
 * median absolute deviation), floored at min_spread x |median| so that a
 * round of near-identical clients does not turn float noise into outliers.
 * Only a value ABOVE the median counts (a client closer to the rest than
 * usual is not suspect); a signal fewer than 3 clients report has no z. A
 * fifth signal, lesson, comes scored: round_evidence.h's lesson z of what the
 * update teaches on the server's own samples (update_probe.h), a robust z
 * across the round's clients already, which stands out at cfg.lesson_z (its
 * maximum over many cells runs higher than one value's z: honest clients on
 * Dirichlet 0.1 shards reached 3.8, tests/bench/README.md) and counts in
 * the score as lesson x z / lesson_z. A
 * fourth signal, disagreement, is |z_update - z_explanation| / sqrt(2) (the
 * spread of a difference of two unit z-scores): a client whose
 * update stands out while its explanation looks like everyone's (or the
 * reverse) has shaped one of the two, which is itself suspect. A client
 * STANDS OUT in a round when any of its z reaches cfg.z. It is FLAGGED when
 * it stood out in at least cfg.needed of the last cfg.window rounds it took
 * part in, or at once when a z reaches cfg.z_now (an update ten times the
 * others' norm needs no second round to be suspect). Its score is the mean,
 * over those rounds, of its largest z of each round.
 *
 * Why robust z-scores over a window: medians and MAD ignore up to half the
 * clients being outliers, so two attackers among ten cannot drag the
 * reference towards themselves (as a mean and standard deviation would); a
 * window forgives an honest client one odd round (non-IID data makes some)
 * while an attacker, who must keep attacking to keep its effect, stands out
 * round after round.
 *
 * Ownership: gb_flagger_new returns a flagger the caller owns
 * (gb_flagger_destroy). Evidence is read during the call; client names are
 * copied. It remembers at most cfg.max_clients clients; past that a new
 * client is refused (GB_ERANGE) and the round's verdicts are not written. */
#ifndef GB_COORDINATOR_CLIENT_FLAGS_H
#define GB_COORDINATOR_CLIENT_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef enum {
    GB_FLAG_EXPLANATION = 0, /* explanation distance from the others' */
    GB_FLAG_UPDATE = 1,      /* update distance from the round's median update */
    GB_FLAG_NORM = 2,        /* update norm */
    GB_FLAG_DISAGREE = 3,    /* |z update - z explanation| / sqrt(2) */
    GB_FLAG_LESSON = 4,      /* what the update teaches on the server's samples */
    GB_FLAG_SIGNALS = 5
} gb_flag_signal_t;

/* "explanation", "update", "norm", "disagreement", "lesson". */
const char *gb_flag_signal_name(gb_flag_signal_t s);

typedef struct {
    int window;        /* rounds of a client's remembered (default 5; 1..64) */
    int needed;        /* rounds it must stand out in among them (default 2; 1..window) */
    double z;          /* z at which a signal stands out (default 3.5) */
    double z_now;      /* z that flags in one round (default 3 x z) */
    double min_spread; /* floor of the spread, a share of |median| (default 0.05) */
    double lesson_z;   /* lesson z at which it stands out (default 6) */
    size_t max_clients; /* clients remembered at most (default 100,000) */
} gb_flag_cfg_t;

/* One client's evidence in one round; NaN for a signal it does not have. */
typedef struct {
    const char *client; /* its name */
    double explanation; /* leave-one-out explanation distance */
    double update;      /* L2 distance of its update from the median update */
    double norm;        /* L2 norm of its update */
    double lesson;      /* round_evidence.h's lesson z of what its update teaches */
} gb_flag_evidence_t;

/* The verdict on one client after a round. */
typedef struct {
    double z[GB_FLAG_SIGNALS]; /* this round's z per signal (NaN: not available) */
    gb_flag_signal_t strongest; /* the signal with the largest z this round */
    bool stood_out;            /* some z >= cfg.z this round */
    int rounds_out;            /* rounds it stood out among its last window ones */
    int rounds_seen;           /* rounds of its in the window (at most window) */
    double score;              /* mean over those rounds of each round's largest z */
    bool flagged;              /* rounds_out >= needed, or a z >= z_now this round */
} gb_flag_verdict_t;

typedef struct gb_flagger gb_flagger_t;

/* Fills unset (zero) fields of cfg with the defaults. */
gb_flag_cfg_t gb_flag_defaults(const gb_flag_cfg_t *cfg);

/* A flagger with cfg (NULL: the defaults; zero fields: their defaults);
 * NULL with err set (GB_EINVAL naming the field) when a field is out of
 * range or memory runs out. */
gb_flagger_t *gb_flagger_new(const gb_flag_cfg_t *cfg, gb_error_t *err);
void gb_flagger_destroy(gb_flagger_t **f);

/* Scores one round: ev[0..n) (distinct client names, each at most 64 bytes)
 * into out[0..n) in the same order. Rounds must increase. GB_EINVAL for an
 * empty or repeated name or a round not after the last one, GB_ERANGE past
 * max_clients; nothing is remembered of a round that fails. */
int gb_flagger_round(gb_flagger_t *f, uint64_t round, const gb_flag_evidence_t *ev, size_t n,
                     gb_flag_verdict_t *out, gb_error_t *err) GB_MUST_CHECK;

/* Whether the client was flagged in the last round it took part in (false
 * for a client never scored). */
bool gb_flagger_is_flagged(const gb_flagger_t *f, const char *client);

/* Clients remembered. */
size_t gb_flagger_clients(const gb_flagger_t *f);

#endif
