/* A simulated federation's data shards (federation.h: simulate_clients):
 * each participant that asks for a shard in its Join (capability
 * shard=ask) gets one in its Welcome, assigned by its name (shard_map.h);
 * until it has loaded that slice and joins again with its sample counts,
 * the Join that asked is turned away as busy, so the round machine only
 * ever counts clients that hold their data. */
#include <stdio.h>
#include <string.h>

#include "data/partition.h"
#include "federation_internal.h"
#include "util/alloc.h"
#include "util/log.h"

int gb_fed_sim_init(gb_federation_t *f, gb_error_t *err)
{
    if (!f->o.simulate_clients)
        return 0;
    gb_error_t scratch = {0};
    if (!err)
        err = &scratch; /* the callees' codes are read back below */
    gb_partition_t p;
    const char *text = f->o.simulate_partition ? f->o.simulate_partition : "iid";
    if (gb_partition_parse(text, &p, err) != 0)
        return gb_error_prefix(err, err->code, "--simulate-partition: ");
    char canonical[64];
    gb_partition_format(&p, canonical, sizeof canonical);
    if (!(f->sim_partition = gb_strdup(canonical)))
        return gb_error_set(err, GB_ENOMEM, "federation: out of memory");
    if (!(f->shards = gb_shard_map_new(f->state_dir, f->o.simulate_clients, err)))
        return err->code;
    gb_log_info("federation: simulation of %u clients on %s slices (seed %llu); %zu dealt "
                "already",
                f->o.simulate_clients, canonical, (unsigned long long)f->o.simulate_seed,
                gb_shard_map_count(f->shards));
    return 0;
}

static bool s_asks_for_shard(const Glassbox__Join *j)
{
    for (size_t i = 0; i < j->n_capabilities; i++)
        if (strcmp(j->capabilities[i]->key, "shard") == 0 &&
            strcmp(j->capabilities[i]->value, "ask") == 0)
            return true;
    return false;
}

void gb_fed_sim_welcome(void *arg, const char *id, const Glassbox__Join *j,
                        Glassbox__Welcome *w)
{
    gb_federation_t *f = arg;
    f->sim_refusal[0] = '\0';
    if (!f->shards || !s_asks_for_shard(j))
        return;
    uint32_t index;
    gb_error_t err = {0};
    if (gb_shard_map_assign(f->shards, id, &index, &err) != 0) {
        snprintf(f->sim_refusal, sizeof f->sim_refusal, "%.250s", err.msg);
        gb_log_warn("federation: '%s' gets no data shard: %s", id, err.msg);
        return;
    }
    glassbox__data_shard__init(&f->sim_shard);
    f->sim_shard.partition = f->sim_partition;
    f->sim_shard.clients = f->o.simulate_clients;
    f->sim_shard.index = index;
    f->sim_shard.seed = f->o.simulate_seed;
    w->shard = &f->sim_shard;
}

bool gb_fed_sim_turns_away(gb_federation_t *f, const char *id, const Glassbox__Join *j,
                           gb_front_door_refusal_t *no)
{
    if (!s_asks_for_shard(j))
        return false;
    if (!f->shards) {
        no->code = GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN;
        snprintf(no->why, sizeof no->why,
                 "this federation deals no data shards (serve without --simulate-clients): "
                 "give the client its own --data slice");
        return true;
    }
    if (f->sim_refusal[0]) {
        no->code = GLASSBOX__ERROR_CODE__ERROR_FORBIDDEN;
        snprintf(no->why, sizeof no->why, "%s", f->sim_refusal);
        return true;
    }
    if (j->train_samples || j->test_samples)
        return false; /* it holds its slice: it takes part */
    no->code = GLASSBOX__ERROR_CODE__ERROR_BUSY;
    no->retry_after_ms = 100;
    snprintf(no->why, sizeof no->why, "load slice %u of %u (%s), then join again",
             f->sim_shard.index, f->sim_shard.clients, f->sim_partition);
    gb_log_info("federation: '%s' was dealt slice %u of %u", id, f->sim_shard.index,
                f->sim_shard.clients);
    return true;
}
