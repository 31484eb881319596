/* The client tests' training Task (task_fixture.h). */
#include "task_fixture.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/model.h"

#define S_INIT_SEED 11

void gb_test_task_rehash(gb_test_task_t *t)
{
    gb_error_t err = {0};
    assert_int_equal(gb_wire_sha256(t->params, t->np * 4, t->sha, &err), 0);
    t->model.params.data = (uint8_t *)t->params;
    t->model.params.len = t->np * 4;
    t->model.param_count = t->np;
    t->model.params_sha256.data = t->sha;
    t->model.params_sha256.len = GB_WIRE_SHA256_LEN;
}

void gb_test_task_model(gb_test_task_t *t, const char *spec, uint64_t init_seed)
{
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(spec, &err);
    if (!m)
        fail_msg("gb_model_new: %s", err.msg);
    gb_model_init(m, init_seed);
    free(t->params);
    t->np = gb_model_param_count(m);
    t->params = malloc(t->np * sizeof *t->params);
    assert_non_null(t->params);
    memcpy(t->params, gb_model_params(m), t->np * sizeof *t->params);
    gb_model_destroy(&m);
    snprintf(t->spec, sizeof t->spec, "%s", spec);
    t->model.spec = t->spec;
    gb_test_task_rehash(t);
}

gb_test_task_t *gb_test_task_new(const char *spec, uint64_t round, uint64_t task_id)
{
    gb_test_task_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    glassbox__task__init(&t->task);
    glassbox__model_snapshot__init(&t->model);
    glassbox__train_config__init(&t->tc);
    glassbox__explain_config__init(&t->ex);
    t->model.format_version = 1;
    t->model.round = round - 1;
    gb_test_task_model(t, spec, S_INIT_SEED);
    t->tc.epochs = 1;
    t->tc.batch_size = 8;
    t->tc.learning_rate = 0.1;
    t->tc.optimizer = GLASSBOX__OPTIMIZER__OPTIMIZER_SGD;
    t->tc.momentum = 0.5;
    t->tc.seed = 7;
    t->ex.classes = t->classes;
    t->task.round = round;
    t->task.task_id = task_id;
    t->task.train = true;
    t->task.model = &t->model;
    t->task.train_config = &t->tc;
    t->task.explain = &t->ex;
    return t;
}

void gb_test_task_free(gb_test_task_t **t)
{
    if (!t || !*t)
        return;
    free((*t)->params);
    free(*t);
    *t = NULL;
}
