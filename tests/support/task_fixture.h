/* A training Task for the client's tests, built the way the coordinator
 * builds one: the model snapshot of a spec with its parameters initialised
 * from seed 11 (or another, gb_test_task_model), as little-endian bytes
 * with their SHA-256; one epoch of SGD (batch 8, learning rate 0.1,
 * momentum 0.5, seed 7); no evaluation or explanation unless the test asks.
 * test_daemon and test_task_runner share it. Test-only code.
 *
 * Ownership: gb_test_task_new returns a task the test owns
 * (gb_test_task_free); the Task points into it, so it is valid while the
 * fixture is. */
#ifndef GB_TEST_TASK_FIXTURE_H
#define GB_TEST_TASK_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "glassbox.pb-c.h"
#include "net/wire.h"

typedef struct {
    Glassbox__Task task;            /* what is sent: points at the fields below */
    Glassbox__ModelSnapshot model;  /* the global model of round - 1 */
    Glassbox__TrainConfig tc;       /* the training settings */
    Glassbox__ExplainConfig ex;     /* none asked for; ex.classes points at classes */
    char spec[256];                 /* the model's spec */
    float *params;                  /* its parameters [np] */
    size_t np;                      /* their count */
    uint8_t sha[GB_WIRE_SHA256_LEN]; /* their SHA-256 */
    uint32_t classes[4];            /* room for the classes a test asks explained */
} gb_test_task_t;

/* The task of round / task_id training a model of spec (the test fails when
 * the spec does not build). */
gb_test_task_t *gb_test_task_new(const char *spec, uint64_t round, uint64_t task_id);

/* Replaces the task's model by one of spec initialised from init_seed. */
void gb_test_task_model(gb_test_task_t *t, const char *spec, uint64_t init_seed);

/* After the test changed params: their bytes and digest in the snapshot. */
void gb_test_task_rehash(gb_test_task_t *t);

/* Frees the task; sets *t to NULL. */
void gb_test_task_free(gb_test_task_t **t);

#endif
