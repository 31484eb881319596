/* Tests for coordinator/explain_merge (and its report, explain_report.c):
 * the weighted means worked by hand for 3 clients and 2 classes, with a
 * class only some clients have and one no client has; the quality metrics'
 * weighted means; the weights the caller's, not the counts: counts near
 * 2^40 buying no more than the client's weight, counts above max_count
 * refused, the cap, a client's leave-one-out distance blind to its own
 * weight; the aggregate and distances byte-identical whatever the order of
 * the adds; every refusal of add and begin changing
 * nothing (the round then gives exactly the bytes it gives without the bad
 * call); a client whose maps carry a trigger patch scoring far above 8 clean
 * clients; identical clients scoring 0; the round's life cycle; the output
 * passing the Publication's own checks; the report's JSON parsed by a strict
 * parser and its PNGs decoded by libpng, for image, sequence, Grad-CAM and
 * vector shapes; the report's refusals; and allocation-failure injection
 * into new, begin, add, finish and the report. */
#include "testutil.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact_sum.h"
#include "engine/model.h"
#include "explain/divergence.h"
#include "class_drift.h"
#include "explain_merge.h"
#include "net/envelope.h"
#include "net/publication.h"
#include "net/snapshot.h"
#include "net/wire.h"
#include "util/alloc.h"
#include "util/file.h"
#include "util/log.h"

#define IG GLASSBOX__EXPLAIN_METHOD__EXPLAIN_INTEGRATED_GRADIENTS
#define SAL GLASSBOX__EXPLAIN_METHOD__EXPLAIN_SALIENCY
#define GRADCAM GLASSBOX__EXPLAIN_METHOD__EXPLAIN_GRAD_CAM

/* ---- explanations built in memory ------------------------------------------ */

#define T_CLASSES 4
#define T_CELLS 256
#define T_QUALITY 4

/* One client's Explanation with room for T_CLASSES classes of T_CELLS cells;
 * its pointers point into itself, so it must not be copied by value. */
typedef struct {
    Glassbox__Explanation e;
    Glassbox__ClassAttribution ca[T_CLASSES];
    Glassbox__ClassAttribution *cap[T_CLASSES];
    Glassbox__Tensor t[T_CLASSES + 1]; /* classes, then the importance */
    uint32_t dims[T_CLASSES + 1][3];
    uint8_t data[T_CLASSES + 1][T_CELLS * 4];
    Glassbox__Metric q[T_QUALITY];
    Glassbox__Metric *qp[T_QUALITY];
    size_t cells;
} t_expl_t;

static void t_put(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static void t_tensor(t_expl_t *x, size_t k, const gb_shape_t *shape, const float *v)
{
    Glassbox__Tensor *t = &x->t[k];
    glassbox__tensor__init(t);
    for (int i = 0; i < shape->rank; i++)
        x->dims[k][i] = (uint32_t)shape->dim[i];
    t->n_shape = (size_t)shape->rank;
    t->shape = x->dims[k];
    t->data.len = x->cells * 4;
    t->data.data = x->data[k];
    for (size_t i = 0; i < x->cells; i++)
        t_put(x->data[k] + 4 * i, v ? v[i] : 0.0f);
}

/* A fresh explanation (no classes, no quality) with importance fi (NULL:
 * zeros) behind `count` samples. */
static t_expl_t *t_new(uint64_t round, Glassbox__ExplainMethod method, const gb_shape_t *shape,
                       uint64_t count, const float *fi)
{
    t_expl_t *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->cells = gb_shape_size(shape);
    assert_true(x->cells <= T_CELLS);
    glassbox__explanation__init(&x->e);
    x->e.method = method;
    x->e.round = round;
    x->e.count = count;
    t_tensor(x, T_CLASSES, shape, fi);
    x->e.feature_importance = &x->t[T_CLASSES];
    x->e.classes = x->cap;
    x->e.quality = x->qp;
    return x;
}

static void t_class(t_expl_t *x, uint32_t cls, uint64_t count, const gb_shape_t *shape,
                    const float *map)
{
    size_t k = x->e.n_classes++;
    assert_true(k < T_CLASSES);
    glassbox__class_attribution__init(&x->ca[k]);
    x->ca[k].class_index = cls;
    x->ca[k].count = count;
    t_tensor(x, k, shape, map);
    x->ca[k].mean_attribution = &x->t[k];
    x->cap[k] = &x->ca[k];
}

static void t_quality(t_expl_t *x, const char *name, double value)
{
    size_t k = x->e.n_quality++;
    assert_true(k < T_QUALITY);
    glassbox__metric__init(&x->q[k]);
    x->q[k].name = (char *)name;
    x->q[k].value = value;
    x->qp[k] = &x->q[k];
}

static float t_get(const Glassbox__Tensor *t, size_t i)
{
    return gb_wire_float_le(t->data.data + 4 * i);
}

/* ---- results ------------------------------------------------------------------ */

static uint8_t *t_pack(const Glassbox__Explanation *e, size_t *len)
{
    *len = glassbox__explanation__get_packed_size(e);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(glassbox__explanation__pack(e, buf), *len);
    return buf;
}

/* The two results are the same bytes: packed aggregate and every distance. */
static void t_same(const gb_explain_merge_result_t *a, const gb_explain_merge_result_t *b)
{
    size_t la, lb;
    uint8_t *pa = t_pack(a->explanation, &la), *pb = t_pack(b->explanation, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    free(pa);
    free(pb);
    assert_int_equal(a->n_distance, b->n_distance);
    for (size_t i = 0; i < a->n_distance; i++) {
        assert_string_equal(a->distance[i]->key, b->distance[i]->key);
        assert_string_equal(a->distance[i]->value, b->distance[i]->value);
    }
}

/* A merger with a round open whose client weights are capped at cap (0:
 * none). */
static gb_explain_merge_t *t_merger_cap(size_t max_clients, uint64_t round,
                                        Glassbox__ExplainMethod method, const gb_shape_t *shape,
                                        int classes, uint64_t cap)
{
    gb_error_t err = {0};
    gb_explain_merge_t *m = gb_explain_merge_new(max_clients, &err);
    assert_non_null(m);
    assert_int_equal(gb_explain_merge_begin(m, round, method, shape, classes, cap, &err), 0);
    return m;
}

static gb_explain_merge_t *t_merger(size_t max_clients, uint64_t round,
                                    Glassbox__ExplainMethod method, const gb_shape_t *shape,
                                    int classes)
{
    return t_merger_cap(max_clients, round, method, shape, classes, 0);
}

/* The largest of x's counts: the fewest samples its client can hold. */
static uint64_t t_most(const t_expl_t *x)
{
    uint64_t most = x->e.count;
    for (size_t i = 0; i < x->e.n_classes; i++)
        if (x->ca[i].count > most)
            most = x->ca[i].count;
    return most;
}

static void t_add_w(gb_explain_merge_t *m, const char *id, const t_expl_t *x, uint64_t weight,
                    uint64_t max_count)
{
    gb_error_t err = {0};
    int rc = gb_explain_merge_add(m, id, &x->e, weight, max_count, &err);
    if (rc)
        fail_msg("add %s: %s", id, err.msg);
}

/* Adds x with weight its own count, from a client holding just what it
 * counted: the weights the hand-worked numbers below were made with. */
static void t_add(gb_explain_merge_t *m, const char *id, const t_expl_t *x)
{
    t_add_w(m, id, x, x->e.count, t_most(x));
}

static void t_finish(gb_explain_merge_t *m, gb_explain_merge_result_t *r)
{
    gb_error_t err = {0};
    int rc = gb_explain_merge_finish(m, r, &err);
    if (rc)
        fail_msg("finish: %s", err.msg);
    assert_non_null(r->explanation);
}

static double t_distance(const gb_explain_merge_result_t *r, const char *id)
{
    for (size_t i = 0; i < r->n_distance; i++)
        if (strcmp(r->distance[i]->key, id) == 0) {
            char *end = NULL;
            double d = strtod(r->distance[i]->value, &end);
            assert_true(end && *end == '\0');
            return d;
        }
    fail_msg("no distance for %s", id);
    return -1;
}

static uint64_t s_rng = 0x2545f4914f6cdd1dull;

/* ---- the hand-worked round: 3 clients, classes 0 and 1 of 3 ------------------- */

static const gb_shape_t S4 = {3, {1, 2, 2}};

typedef struct {
    t_expl_t *x[3];
    const char *id[3];
} t_hand_t;

static t_hand_t t_hand(uint64_t round)
{
    t_hand_t h = {{NULL}, {"a", "c-b", "B2"}};
    static const float fa[4] = {1, 1, 1, 1}, a0[4] = {1, 2, 3, 4}, a1[4] = {0.5f, 0, -1, 2};
    static const float fb[4] = {2, 0, 2, 0}, b0[4] = {3, 2, 1, 0};
    static const float fc[4] = {0, 4, 0, 4}, c0[4] = {-5, 2, 7, 8}, c1[4] = {1, 1, 1, -2};
    h.x[0] = t_new(round, IG, &S4, 2, fa);
    t_class(h.x[0], 1, 1, &S4, a1);
    t_class(h.x[0], 0, 1, &S4, a0);
    t_quality(h.x[0], "steps_used", 32);
    t_quality(h.x[0], "completeness_error", 0.1);
    h.x[1] = t_new(round, IG, &S4, 6, fb);
    t_class(h.x[1], 0, 6, &S4, b0);
    t_quality(h.x[1], "completeness_error", 0.3);
    h.x[2] = t_new(round, IG, &S4, 8, fc);
    t_class(h.x[2], 0, 1, &S4, c0);
    t_class(h.x[2], 1, 7, &S4, c1);
    t_quality(h.x[2], "steps_used", 64);
    return h;
}

static void t_hand_free(t_hand_t *h)
{
    for (int i = 0; i < 3; i++)
        free(h->x[i]);
}

static void test_weighted_mean_by_hand(void **state)
{
    (void)state;
    t_hand_t h = t_hand(5);
    gb_explain_merge_t *m = t_merger(8, 5, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(m, h.id[i], h.x[i]);
    assert_int_equal(gb_explain_merge_clients(m), 3);
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    const Glassbox__Explanation *e = r.explanation;
    assert_int_equal(e->method, IG);
    assert_int_equal(e->round, 5);
    assert_int_equal(e->count, 16);
    /* class 0: (1 [1,2,3,4] + 6 [3,2,1,0] + 1 [-5,2,7,8]) / 8 */
    /* class 1, A and C only: (1 [0.5,0,-1,2] + 7 [1,1,1,-2]) / 8; class 2: nobody */
    static const float want0[4] = {1.75f, 2, 2, 1.5f}, want1[4] = {0.9375f, 0.875f, 0.75f, -1.5f};
    /* importance: (2 [1,1,1,1] + 6 [2,0,2,0] + 8 [0,4,0,4]) / 16 */
    static const float wantf[4] = {0.875f, 2.125f, 0.875f, 2.125f};
    assert_int_equal(e->n_classes, 2);
    assert_int_equal(e->classes[0]->class_index, 0);
    assert_int_equal(e->classes[0]->count, 8);
    assert_int_equal(e->classes[1]->class_index, 1);
    assert_int_equal(e->classes[1]->count, 8);
    /* support: class 0 rests on A, B and C (1 + 6 + 1 samples), class 1 on
     * A and C (1 + 7) */
    assert_int_equal(e->classes[0]->clients, 3);
    assert_int_equal(e->classes[1]->clients, 2);
    for (size_t i = 0; i < 4; i++) {
        assert_true(t_get(e->classes[0]->mean_attribution, i) == want0[i]);
        assert_true(t_get(e->classes[1]->mean_attribution, i) == want1[i]);
        assert_true(t_get(e->feature_importance, i) == wantf[i]);
    }
    const Glassbox__Tensor *t = e->feature_importance;
    assert_int_equal(t->n_shape, 3);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 2);
    assert_int_equal(t->shape[2], 2);
    /* quality: sorted by name, weighted by the weights (here the importance
     * counts) of the clients that report each */
    assert_int_equal(e->n_quality, 2);
    assert_string_equal(e->quality[0]->name, "completeness_error");
    assert_true(fabs(e->quality[0]->value - (2 * 0.1 + 6 * 0.3) / 8) < 1e-15);
    assert_string_equal(e->quality[1]->name, "steps_used");
    assert_true(fabs(e->quality[1]->value - (2 * 32.0 + 8 * 64.0) / 10) < 1e-12);
    /* distances: sorted by id (bytes), each against the other two pooled */
    assert_int_equal(r.n_distance, 3);
    assert_string_equal(r.distance[0]->key, "B2");
    assert_string_equal(r.distance[1]->key, "a");
    assert_string_equal(r.distance[2]->key, "c-b");
    /* the others' pooled importance is a float32 map (the mean, correctly
     * rounded), and the value has 9 decimals: so 1e-9 */
    static const double mine[4] = {1, 1, 1, 1};
    const double o12 = (float)(12.0 / 14), o32 = (float)(32.0 / 14); /* (6 fb + 8 fc) / 14 */
    const double others[4] = {o12, o32, o12, o32};
    assert_true(fabs(t_distance(&r, "a") - gb_divergence_js(mine, others, 4)) < 1e-9);
    assert_true(t_distance(&r, "a") > 0.01);
    static const double mb[4] = {2, 0, 2, 0};
    const double ob[4] = {(float)0.2, (float)3.4, (float)0.2, (float)3.4}; /* (2 fa + 8 fc)/10 */
    assert_true(fabs(t_distance(&r, "c-b") - gb_divergence_js(mb, ob, 4)) < 1e-9);
    for (size_t i = 0; i < r.n_distance; i++)
        assert_int_equal(strlen(r.distance[i]->value), 11); /* "0.123456789" */
    gb_explain_merge_result_free(&r);
    assert_null(r.explanation);
    gb_explain_merge_result_free(&r); /* zeroed: a no-op */
    gb_explain_merge_destroy(&m);
    assert_null(m);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
}

/* The output is what a Publication may carry: gb_publication_check accepts
 * it, and it survives a pack and unpack. */
static void test_publication_accepts(void **state)
{
    (void)state;
    t_hand_t h = t_hand(2);
    gb_explain_merge_t *m = t_merger(8, 2, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(m, h.id[i], h.x[i]);
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    gb_error_t err = {0};
    gb_model_t *model = gb_model_new("mlp", &err);
    assert_non_null(model);
    gb_snapshot_t *snap = gb_snapshot_from_model(model, 2, &err);
    assert_non_null(snap);
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(gb_snapshot_encode(snap, &bytes, &len, &err), 0);
    Glassbox__ModelSnapshot *ms = glassbox__model_snapshot__unpack(NULL, len, bytes);
    assert_non_null(ms);
    Glassbox__Publication p = GLASSBOX__PUBLICATION__INIT;
    p.round = 2;
    p.model = ms;
    p.participants = 3;
    p.aggregator = "fedavg";
    p.explanation = r.explanation;
    p.explanation_distance = r.distance;
    p.n_explanation_distance = r.n_distance;
    int rc = gb_publication_check(&p, &err);
    if (rc)
        fail_msg("publication refused: %s", err.msg);
    uint8_t *pub = NULL;
    size_t pub_len = 0;
    assert_int_equal(gb_publication_encode(&p, &pub, &pub_len, &err), 0);
    Glassbox__Publication *back = NULL;
    assert_int_equal(gb_publication_decode(pub, pub_len, &back, &err), 0);
    gb_explain_merge_result_t again = {back->explanation, back->explanation_distance,
                                       back->n_explanation_distance, NULL, NULL, NULL, NULL};
    t_same(&r, &again);
    gb_publication_free(&back);
    gb_free(pub);
    glassbox__model_snapshot__free_unpacked(ms, NULL);
    gb_free(bytes);
    gb_snapshot_destroy(&snap);
    gb_model_destroy(&model);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
}

/* ---- the weights: the caller's, not the counts ---------------------------------- */

static void t_map(const Glassbox__Tensor *t, const float *want, const char *what)
{
    for (size_t i = 0; i < 4; i++)
        if (t_get(t, i) != want[i])
            fail_msg("%s cell %zu: %.9g, expected %.9g", what, i, (double)t_get(t, i),
                     (double)want[i]);
}

/* A client whose counts are near 2^40 but whose Update weighs 10, among two
 * honest clients weighing 10 each, has exactly a third of the importance
 * mass; its two classes split its 10 by its counts (5 and 5). */
static void test_inflated_counts_carry_no_weight(void **state)
{
    (void)state;
    static const float fa[4] = {3, 0, 0, 0}, fb[4] = {0, 3, 0, 0}, fm[4] = {0, 0, 0, 3};
    static const float a0[4] = {5, 0, 0, 0}, b0[4] = {0, 5, 0, 0}, m0[4] = {0, 0, 0, 5};
    static const float m1[4] = {1, 2, 3, 4};
    const uint64_t big = GB_EXACT_SUM_MAX_WEIGHT - 100, half = GB_EXACT_SUM_MAX_WEIGHT / 2;
    t_expl_t *a = t_new(7, IG, &S4, 10, fa), *b = t_new(7, IG, &S4, 10, fb);
    t_expl_t *mal = t_new(7, IG, &S4, big, fm);
    t_class(a, 0, 10, &S4, a0);
    t_class(b, 0, 10, &S4, b0);
    t_class(mal, 0, half, &S4, m0);
    t_class(mal, 1, half, &S4, m1);
    t_quality(a, "steps_used", 0);
    t_quality(b, "steps_used", 0);
    t_quality(mal, "steps_used", 3);
    gb_explain_merge_t *m = t_merger(4, 7, IG, &S4, 2);
    t_add_w(m, "honest-a", a, 10, 10);
    t_add_w(m, "honest-b", b, 10, 10);
    t_add_w(m, "mallory", mal, 10, big); /* it lied at Join too: its counts pass */
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    const Glassbox__Explanation *e = r.explanation;
    /* importance (10 fa + 10 fb + 10 fm) / 30: mallory's cell holds 1 of 3 */
    static const float wantf[4] = {1, 1, 0, 1};
    t_map(e->feature_importance, wantf, "importance");
    /* class 0: (10 a0 + 10 b0 + 5 m0) / 25; class 1: mallory's alone */
    static const float want0[4] = {2, 2, 0, 1};
    assert_int_equal(e->n_classes, 2);
    t_map(e->classes[0]->mean_attribution, want0, "class 0");
    t_map(e->classes[1]->mean_attribution, m1, "class 1");
    /* the counts are still published as sent, summed */
    assert_true(e->count == big + 20);
    assert_true(e->classes[0]->count == half + 20);
    assert_true(e->classes[1]->count == half);
    /* quality weighted by the weights: (0 + 0 + 3) / 3 */
    assert_int_equal(e->n_quality, 1);
    assert_true(fabs(e->quality[0]->value - 1) < 1e-15);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    free(a);
    free(b);
    free(mal);
}

/* Counts above max_count (the samples the client joined with) are refused,
 * naming the field, and the round ends exactly as without the call. */
static void test_counts_above_max_count_refused(void **state)
{
    (void)state;
    t_hand_t h = t_hand(4);
    gb_explain_merge_t *ref = t_merger(3, 4, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(ref, h.id[i], h.x[i]);
    gb_explain_merge_result_t want;
    t_finish(ref, &want);

    gb_explain_merge_t *m = t_merger(3, 4, IG, &S4, 3);
    t_add(m, h.id[0], h.x[0]);
    t_add(m, h.id[1], h.x[1]);
    t_expl_t *x = h.x[2]; /* count 8; class 0 count 1, class 1 count 7 */
    gb_error_t err = {0};
    assert_int_equal(gb_explain_merge_add(m, h.id[2], &x->e, 8, 7, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "count 8"));
    x->ca[1].count = 9;
    assert_int_equal(gb_explain_merge_add(m, h.id[2], &x->e, 8, 8, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "classes[1].count 9"));
    x->ca[1].count = GB_EXACT_SUM_MAX_WEIGHT - 1;
    assert_int_equal(gb_explain_merge_add(m, h.id[2], &x->e, 8, 8, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "classes[1].count"));
    x->ca[1].count = 7;
    assert_int_equal(gb_explain_merge_clients(m), 2);
    t_add_w(m, h.id[2], x, 8, 8); /* exactly max_count: fine */
    gb_explain_merge_result_t got;
    t_finish(m, &got);
    t_same(&want, &got);
    gb_explain_merge_result_free(&got);
    gb_explain_merge_result_free(&want);
    gb_explain_merge_destroy(&m);
    gb_explain_merge_destroy(&ref);
    t_hand_free(&h);
}

/* Weights 100, 100 and 10000 under a cap of 200: the big client carries
 * 200 of 400. A cap no client reaches changes nothing. */
static void test_cap_weight(void **state)
{
    (void)state;
    static const float fa[4] = {4, 0, 0, 0}, fb[4] = {0, 4, 0, 0}, fc[4] = {0, 0, 0, 4};
    static const float *const maps[3] = {fa, fb, fc};
    static const uint64_t weight[3] = {100, 100, 10000};
    static const char *const ids[3] = {"small-a", "small-b", "big"};
    t_expl_t *x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = t_new(8, IG, &S4, weight[i], maps[i]);
        t_class(x[i], 0, weight[i], &S4, maps[i]);
    }
    gb_explain_merge_result_t r[3];
    static const uint64_t caps[3] = {200, 0, 10000};
    for (int k = 0; k < 3; k++) {
        gb_explain_merge_t *m = t_merger_cap(4, 8, IG, &S4, 1, caps[k]);
        for (int i = 0; i < 3; i++)
            t_add_w(m, ids[i], x[i], weight[i], weight[i]);
        t_finish(m, &r[k]);
        gb_explain_merge_destroy(&m);
    }
    /* (100 fa + 100 fb + 200 fc) / 400, importance and class 0 alike */
    static const float want[4] = {1, 1, 0, 2};
    t_map(r[0].explanation->feature_importance, want, "capped importance");
    t_map(r[0].explanation->classes[0]->mean_attribution, want, "capped class 0");
    assert_int_equal(r[0].explanation->count, 10200); /* counts are not capped */
    assert_true(t_get(r[1].explanation->feature_importance, 3) > 3.9f); /* 10000 of 10200 */
    t_same(&r[1], &r[2]);
    for (int k = 0; k < 3; k++)
        gb_explain_merge_result_free(&r[k]);
    for (int i = 0; i < 3; i++)
        free(x[i]);
}

/* ---- order independence --------------------------------------------------------- */

#define ORD_N 7
#define ORD_CAP 50000

/* Weights apart from the counts, one client above the cap, class counts
 * that do not split the weight evenly: still the same bytes in any order. */
static void test_order_independence(void **state)
{
    (void)state;
    static const gb_shape_t shape = {3, {2, 3, 5}};
    t_expl_t *x[ORD_N];
    uint64_t weight[ORD_N];
    char ids[ORD_N][16];
    float fi[30], map[30];
    for (int k = 0; k < ORD_N; k++) {
        weight[k] = k == 0 ? 3 * ORD_CAP : 1 + gb_test_xorshift(&s_rng) % 100000;
        for (int i = 0; i < 30; i++)
            fi[i] = (float)ldexp(fabs(gb_test_xorshift_unif(&s_rng)), (int)(gb_test_xorshift(&s_rng) % 41) - 20);
        x[k] = t_new(3, SAL, &shape, 1 + gb_test_xorshift(&s_rng) % 100000, fi);
        for (uint32_t c = 0; c < 3; c++) {
            if (gb_test_xorshift(&s_rng) % 3 == 0)
                continue;
            for (int i = 0; i < 30; i++)
                map[i] = (float)ldexp(gb_test_xorshift_unif(&s_rng), (int)(gb_test_xorshift(&s_rng) % 41) - 20);
            t_class(x[k], c, 1 + gb_test_xorshift(&s_rng) % 1000, &shape, map);
        }
        t_quality(x[k], "completeness_error", gb_test_xorshift_unif(&s_rng) * 1e-3);
        if (k % 2)
            t_quality(x[k], "steps_used", (double)(gb_test_xorshift(&s_rng) % 128));
        snprintf(ids[k], sizeof ids[k], "c%c-%d", 'a' + k, (int)(gb_test_xorshift(&s_rng) % 1000)); /* unique */
    }
    gb_explain_merge_result_t ref;
    gb_explain_merge_t *m = t_merger_cap(ORD_N, 3, SAL, &shape, 3, ORD_CAP);
    for (int k = 0; k < ORD_N; k++)
        t_add_w(m, ids[k], x[k], weight[k], t_most(x[k]));
    t_finish(m, &ref);
    assert_int_equal(ref.n_distance, ORD_N);
    for (int trial = 0; trial < 6; trial++) {
        size_t idx[ORD_N];
        for (size_t i = 0; i < ORD_N; i++)
            idx[i] = i;
        for (size_t i = ORD_N - 1; i > 0; i--) {
            size_t j = gb_test_xorshift(&s_rng) % (i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        if (trial == 0) /* reversed, for certain */
            for (size_t i = 0; i < ORD_N; i++)
                idx[i] = ORD_N - 1 - i;
        gb_error_t err = {0};
        assert_int_equal(gb_explain_merge_begin(m, 3, SAL, &shape, 3, ORD_CAP, &err), 0);
        for (size_t i = 0; i < ORD_N; i++)
            t_add_w(m, ids[idx[i]], x[idx[i]], weight[idx[i]], t_most(x[idx[i]]));
        gb_explain_merge_result_t got;
        t_finish(m, &got);
        t_same(&ref, &got);
        gb_explain_merge_result_free(&got);
    }
    gb_explain_merge_result_free(&ref);
    gb_explain_merge_destroy(&m);
    for (int k = 0; k < ORD_N; k++)
        free(x[k]);
}

/* ---- refusals ------------------------------------------------------------------- */

/* Adds x with weight and max_count, expecting refusal `code`. */
static void t_refused_w(gb_explain_merge_t *m, const char *id, const Glassbox__Explanation *x,
                        uint64_t weight, uint64_t max_count, int code, const char *what)
{
    gb_error_t err = {0};
    size_t before = gb_explain_merge_clients(m);
    int rc = gb_explain_merge_add(m, id, x, weight, max_count, &err);
    if (rc != code)
        fail_msg("%s: add gave %d (%s), expected %d", what, rc, err.msg, code);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(gb_explain_merge_clients(m), before);
    assert_true(gb_explain_merge_is_open(m));
}

/* The same with a valid weight and no bound from max_count, so the refusal
 * is x's own. */
static void t_refused(gb_explain_merge_t *m, const char *id, const Glassbox__Explanation *x,
                      int code, const char *what)
{
    t_refused_w(m, id, x, 3, UINT64_MAX, code, what);
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    t_hand_t h = t_hand(4);
    static const float good[4] = {0.25f, 0.5f, 1, 2};
    /* the reference: the three clients alone */
    gb_explain_merge_t *ref = t_merger(3, 4, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(ref, h.id[i], h.x[i]);
    gb_explain_merge_result_t want;
    t_finish(ref, &want);

    gb_explain_merge_t *m = t_merger(3, 4, IG, &S4, 3);
    t_add(m, h.id[0], h.x[0]);
    t_add(m, h.id[1], h.x[1]);
    const char *id = h.id[2];
    t_expl_t *x = t_new(4, IG, &S4, 3, good);
    t_class(x, 0, 2, &S4, good);
    t_class(x, 1, 2, &S4, good);
    t_quality(x, "completeness_error", 0.5);

    x->e.method = SAL;
    t_refused(m, id, &x->e, GB_EINVAL, "another method");
    x->e.method = IG;
    x->e.round = 3;
    t_refused(m, id, &x->e, GB_EINVAL, "another round");
    x->e.round = 4;
    x->dims[1][2] = 1, x->dims[1][1] = 4;
    t_refused(m, id, &x->e, GB_ESHAPE, "a class map of shape 1x4x1");
    x->dims[1][2] = 2, x->dims[1][1] = 2;
    x->t[T_CLASSES].n_shape = 2;
    t_refused(m, id, &x->e, GB_ESHAPE, "an importance of rank 2");
    x->t[T_CLASSES].n_shape = 3;
    x->t[0].data.len -= 4;
    t_refused(m, id, &x->e, GB_ESHAPE, "a class map a float short");
    x->t[0].data.len += 4;
    x->ca[1].class_index = 3;
    t_refused(m, id, &x->e, GB_EINVAL, "class 3 of 3");
    x->ca[1].class_index = 0;
    t_refused(m, id, &x->e, GB_EINVAL, "class 0 twice");
    x->ca[1].class_index = 1;
    x->ca[1].count = 0;
    t_refused(m, id, &x->e, GB_EINVAL, "a class map with count 0");
    x->ca[1].count = GB_EXACT_SUM_MAX_WEIGHT;
    t_refused(m, id, &x->e, GB_ERANGE, "a class count past the bound");
    x->ca[1].count = 2;
    x->e.count = 0;
    t_refused(m, id, &x->e, GB_EINVAL, "an importance with count 0");
    x->e.count = GB_EXACT_SUM_MAX_WEIGHT;
    t_refused(m, id, &x->e, GB_ERANGE, "an importance count past the bound");
    x->e.count = 3;
    t_refused_w(m, id, &x->e, 0, 3, GB_EINVAL, "weight 0");
    t_refused_w(m, id, &x->e, 3, 0, GB_EINVAL, "max_count 0");
    t_refused_w(m, id, &x->e, 2, 2, GB_ERANGE, "a count above max_count");
    x->ca[1].count = 4;
    t_refused_w(m, id, &x->e, 3, 3, GB_ERANGE, "a class count above max_count");
    x->ca[1].count = 2;
    t_refused_w(m, id, &x->e, GB_EXACT_SUM_MAX_WEIGHT, 3, GB_ERANGE, "a weight past the bound");
    x->e.feature_importance = NULL;
    t_refused(m, id, &x->e, GB_EINVAL, "no importance");
    x->e.feature_importance = &x->t[T_CLASSES];
    t_put(x->data[1] + 8, NAN); /* the second class: the first one was fine */
    t_refused(m, id, &x->e, GB_ERANGE, "NaN in a class map");
    t_put(x->data[1] + 8, 1);
    t_put(x->data[T_CLASSES] + 12, INFINITY);
    t_refused(m, id, &x->e, GB_ERANGE, "infinity in the importance");
    t_put(x->data[T_CLASSES] + 12, -INFINITY);
    t_refused(m, id, &x->e, GB_ERANGE, "-infinity in the importance");
    t_put(x->data[T_CLASSES] + 12, -0.5f);
    t_refused(m, id, &x->e, GB_EINVAL, "a negative importance");
    t_put(x->data[T_CLASSES] + 12, 2);
    t_quality(x, "completeness_error", 0.1);
    t_refused(m, id, &x->e, GB_EINVAL, "a metric twice");
    x->e.n_quality = 1;
    x->q[0].value = 1e301;
    t_refused(m, id, &x->e, GB_ERANGE, "a metric beyond 1e300");
    x->q[0].value = NAN;
    t_refused(m, id, &x->e, GB_ERANGE, "a NaN metric");
    x->q[0].value = 0.5;
    t_refused(m, h.id[0], &x->e, GB_EINVAL, "a client added twice");
    t_refused(m, "b 2", &x->e, GB_EINVAL, "a space in the id");
    t_refused(m, "", &x->e, GB_EINVAL, "an empty id");
    char longid[GB_ENVELOPE_MAX_NAME + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    t_refused(m, longid, &x->e, GB_EINVAL, "an id too long");
    t_refused(m, NULL, &x->e, GB_EINVAL, "no id");
    t_refused(m, id, NULL, GB_EINVAL, "no explanation");
    /* more metric names than a Publication may carry, over two clients */
    {
        gb_explain_merge_t *q = t_merger(4, 4, IG, &S4, 3);
        Glassbox__Metric qm[GB_ENVELOPE_MAX_METRICS];
        Glassbox__Metric *qp[GB_ENVELOPE_MAX_METRICS];
        char names[GB_ENVELOPE_MAX_METRICS][16];
        for (int i = 0; i < GB_ENVELOPE_MAX_METRICS; i++) {
            glassbox__metric__init(&qm[i]);
            snprintf(names[i], sizeof names[i], "m%d", i);
            qm[i].name = names[i];
            qp[i] = &qm[i];
        }
        t_expl_t *y = t_new(4, IG, &S4, 1, good);
        y->e.quality = qp;
        y->e.n_quality = GB_ENVELOPE_MAX_METRICS - 1;
        t_add(q, "first", y);
        y->e.quality = qp + 1; /* m1 .. m255 are known, m256 would be new: fine */
        y->e.n_quality = GB_ENVELOPE_MAX_METRICS - 1;
        t_add(q, "second", y);
        snprintf(names[0], sizeof names[0], "fresh");
        y->e.quality = qp;
        y->e.n_quality = 1;
        t_refused(q, "third", &y->e, GB_ERANGE, "a 257th metric name");
        gb_explain_merge_destroy(&q);
        free(y);
    }

    /* the refused client, now well formed, then one too many */
    t_add(m, id, h.x[2]);
    t_refused(m, "late", &h.x[0]->e, GB_ERANGE, "more than max_clients");
    gb_explain_merge_result_t got;
    t_finish(m, &got);
    t_same(&want, &got);
    gb_explain_merge_result_free(&got);
    gb_explain_merge_result_free(&want);
    gb_explain_merge_destroy(&m);
    gb_explain_merge_destroy(&ref);
    free(x);
    t_hand_free(&h);
}

static void test_new_and_begin_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_explain_merge_new(0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_explain_merge_new(GB_EXPLAIN_MERGE_MAX_CLIENTS + 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    gb_explain_merge_t *m = gb_explain_merge_new(4, &err);
    assert_non_null(m);
    assert_int_equal(gb_explain_merge_round(m), 0);
    assert_false(gb_explain_merge_is_open(m));
    t_hand_t h = t_hand(6);
    /* no round */
    assert_int_equal(gb_explain_merge_add(m, "a", &h.x[0]->e, 2, 2, &err), GB_EINVAL);
    gb_explain_merge_result_t r;
    assert_int_equal(gb_explain_merge_finish(m, &r, &err), GB_EINVAL);
    assert_null(r.explanation);

    /* a round open with one client; every bad begin leaves it so */
    assert_int_equal(gb_explain_merge_begin(m, 6, IG, &S4, 3, 0, &err), 0);
    t_add(m, h.id[0], h.x[0]);
    static const struct {
        uint64_t round;
        int method;
        gb_shape_t shape;
        int classes;
        int code;
    } bad[] = {
        {0, IG, {3, {1, 2, 2}}, 3, GB_EINVAL},
        {7, GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE, {3, {1, 2, 2}}, 3, GB_EINVAL},
        {7, 99, {3, {1, 2, 2}}, 3, GB_EINVAL},
        {7, IG, {0, {1, 1, 1}}, 3, GB_EINVAL},
        {7, IG, {4, {1, 1, 1}}, 3, GB_EINVAL},
        {7, IG, {2, {0, 5, 1}}, 3, GB_EINVAL},
        {7, IG, {2, {-3, 5, 1}}, 3, GB_EINVAL},
        {7, IG, {3, {1, 2, 2}}, 0, GB_EINVAL},
        {7, IG, {3, {1, 2, 2}}, GB_ENVELOPE_MAX_CLASSES + 1, GB_EINVAL},
        {7, IG, {3, {1, 2048, 2048}}, 2, GB_ERANGE},
        {7, IG, {3, {65536, 65536, 65536}}, 1, GB_ERANGE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = gb_explain_merge_begin(m, bad[i].round, (Glassbox__ExplainMethod)bad[i].method,
                                        &bad[i].shape, bad[i].classes, 0, &err);
        if (rc != bad[i].code)
            fail_msg("bad begin %zu: %d (%s)", i, rc, err.msg);
        assert_int_equal(gb_explain_merge_round(m), 6);
        assert_int_equal(gb_explain_merge_clients(m), 1);
    }
    assert_int_equal(gb_explain_merge_begin(m, 7, IG, NULL, 3, 0, &err), GB_EINVAL);
    assert_int_equal(gb_explain_merge_begin(NULL, 7, IG, &S4, 3, 0, &err), GB_EINVAL);
    t_add(m, h.id[1], h.x[1]);
    t_add(m, h.id[2], h.x[2]);
    gb_explain_merge_t *ref = t_merger(4, 6, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(ref, h.id[i], h.x[i]);
    gb_explain_merge_result_t want;
    t_finish(ref, &want);
    t_finish(m, &r);
    t_same(&want, &r);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_result_free(&want);
    gb_explain_merge_destroy(&ref);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
}

/* begin, add, finish; a finished round takes nothing more; a new begin
 * forgets the old round's clients; begun again mid-round, it starts over. */
static void test_life_cycle(void **state)
{
    (void)state;
    gb_error_t err = {0};
    t_hand_t h = t_hand(1);
    gb_explain_merge_t *m = t_merger(4, 1, IG, &S4, 2);
    gb_explain_merge_result_t r;
    assert_int_equal(gb_explain_merge_finish(m, &r, &err), GB_EINVAL); /* nobody yet */
    assert_true(gb_explain_merge_is_open(m));
    t_add(m, "solo", h.x[0]);
    t_finish(m, &r);
    assert_int_equal(r.n_distance, 0); /* nobody to compare with */
    assert_null(r.distance);
    assert_int_equal(r.explanation->n_classes, 2);
    for (size_t i = 0; i < 4; i++) /* one client: its own maps, exactly */
        assert_true(t_get(r.explanation->feature_importance, i) ==
                    t_get(h.x[0]->e.feature_importance, i));
    gb_explain_merge_result_free(&r);
    assert_false(gb_explain_merge_is_open(m));
    assert_int_equal(gb_explain_merge_add(m, "late", &h.x[1]->e, 6, 6, &err), GB_EINVAL);
    assert_int_equal(gb_explain_merge_finish(m, &r, &err), GB_EINVAL);
    assert_int_equal(gb_explain_merge_finish(m, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_explain_merge_finish(NULL, &r, &err), GB_EINVAL);

    t_hand_t h2 = t_hand(2);
    assert_int_equal(gb_explain_merge_begin(m, 2, IG, &S4, 3, 0, &err), 0);
    assert_int_equal(gb_explain_merge_clients(m), 0);
    t_add(m, "solo", h2.x[1]); /* the same id, a new round */
    t_add(m, "other", h2.x[2]);
    assert_int_equal(gb_explain_merge_begin(m, 2, IG, &S4, 3, 0, &err), 0); /* again */
    assert_int_equal(gb_explain_merge_clients(m), 0);
    for (int i = 0; i < 3; i++)
        t_add(m, h2.id[i], h2.x[i]);
    gb_explain_merge_t *ref = t_merger(4, 2, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(ref, h2.id[i], h2.x[i]);
    gb_explain_merge_result_t want;
    t_finish(ref, &want);
    t_finish(m, &r);
    t_same(&want, &r);
    assert_int_equal(gb_explain_merge_round(m), 2);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_result_free(&want);
    gb_explain_merge_destroy(&ref);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
    t_hand_free(&h2);
}

/* ---- distances: a trigger patch, identical clients ------------------------------- */

static const gb_shape_t S144 = {3, {1, 12, 12}};

/* A clean client's maps: a blob in the middle of the image, with noise. */
static t_expl_t *t_clean(uint64_t round, double noise)
{
    float fi[144], m0[144], m1[144];
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++) {
            double d2 = (y - 5.5) * (y - 5.5) + (x - 5.5) * (x - 5.5);
            double blob = exp(-d2 / (2 * 2.5 * 2.5));
            int i = y * 12 + x;
            fi[i] = (float)(blob * (1 + noise * gb_test_xorshift_unif(&s_rng)) + 0.01 * (1 + gb_test_xorshift_unif(&s_rng)));
            m0[i] = (float)(blob * (1 + noise * gb_test_xorshift_unif(&s_rng)));
            m1[i] = (float)(-blob * (1 + noise * gb_test_xorshift_unif(&s_rng)));
        }
    t_expl_t *c = t_new(round, IG, &S144, 50 + gb_test_xorshift(&s_rng) % 100, fi);
    t_class(c, 0, c->e.count / 2, &S144, m0);
    t_class(c, 1, c->e.count - c->e.count / 2, &S144, m1);
    return c;
}

static void test_trigger_patch_scores_highest(void **state)
{
    (void)state;
    gb_explain_merge_t *m = t_merger(16, 9, IG, &S144, 2);
    t_expl_t *x[9];
    char id[9][16];
    for (int k = 0; k < 8; k++) {
        x[k] = t_clean(9, 0.2);
        snprintf(id[k], sizeof id[k], "clean-%d", k);
        t_add(m, id[k], x[k]);
    }
    /* the poisoned client: its model has learnt a 3 x 3 trigger in the top
     * left corner, which takes much of the attribution for class 0 */
    x[8] = t_clean(9, 0.2);
    for (int y = 0; y < 3; y++)
        for (int xx = 0; xx < 3; xx++) {
            t_put(x[8]->data[T_CLASSES] + 4 * (y * 12 + xx), 2.0f);
            t_put(x[8]->data[0] + 4 * (y * 12 + xx), 3.0f);
        }
    snprintf(id[8], sizeof id[8], "mallory");
    t_add(m, id[8], x[8]);
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    assert_int_equal(r.n_distance, 9);
    for (size_t i = 1; i < r.n_distance; i++)
        assert_true(strcmp(r.distance[i - 1]->key, r.distance[i]->key) < 0);
    double bad = t_distance(&r, "mallory"), worst_clean = 0;
    for (int k = 0; k < 8; k++) {
        double d = t_distance(&r, id[k]);
        assert_true(d >= 0 && d <= 1);
        if (d > worst_clean)
            worst_clean = d;
    }
    if (!(bad > 5 * worst_clean && bad > 0.05))
        fail_msg("trigger client %g, worst clean client %g", bad, worst_clean);
    /* the evidence: where mallory's importance exceeds the others' is the
     * patch, largest excess first; no clean client's excess lies there */
    const uint32_t *cells = NULL;
    const float *share = NULL;
    assert_int_equal(gb_explain_merge_moved(&r, "mallory", &cells, &share), GB_EXPLAIN_MERGE_MOVED);
    for (size_t i = 0; i < GB_EXPLAIN_MERGE_MOVED; i++) {
        uint32_t y = cells[i] / 12, xx = cells[i] % 12;
        if (!(y < 3 && xx < 3))
            fail_msg("mallory's moved cell %zu is %u, outside the patch", i, cells[i]);
        assert_true(share[i] > 0.0f && share[i] <= 1.0f);
        if (i > 0)
            assert_true(share[i] <= share[i - 1]);
    }
    for (int k = 0; k < 8; k++) {
        size_t n = gb_explain_merge_moved(&r, id[k], &cells, &share);
        for (size_t i = 0; i < n; i++)
            assert_false(cells[i] / 12 < 3 && cells[i] % 12 < 3);
    }
    assert_int_equal(gb_explain_merge_moved(&r, "nobody", &cells, &share), 0);
    assert_int_equal(gb_explain_merge_moved(&r, NULL, &cells, &share), 0);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    for (int k = 0; k < 9; k++)
        free(x[k]);
}

/* Which classes moved: none in the first merge (no reference); in the
 * next, the poisoned client's class 0 (its map on the patch) and no clean
 * client's class 0 as strongly; a merge of another shape starts again. */
static void test_moved_classes_name_the_target(void **state)
{
    (void)state;
    gb_explain_merge_t *m = t_merger(16, 1, IG, &S144, 2);
    t_expl_t *x[9];
    char id[9][16];
    for (int k = 0; k < 9; k++) {
        x[k] = t_clean(1, 0.2);
        snprintf(id[k], sizeof id[k], k < 8 ? "clean-%d" : "mallory", k);
        t_add(m, id[k], x[k]);
        free(x[k]);
    }
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    const uint32_t *classes = NULL;
    const float *ratio = NULL;
    for (int k = 0; k < 9; k++)
        assert_int_equal(gb_explain_merge_moved_classes(&r, id[k], &classes, &ratio), 0);
    gb_explain_merge_result_free(&r);

    gb_error_t err = {0};
    assert_int_equal(gb_explain_merge_begin(m, 2, IG, &S144, 2, 0, &err), 0);
    for (int k = 0; k < 9; k++) {
        x[k] = t_clean(2, 0.2);
        if (k == 8) /* a trigger learnt for class 0 */
            for (int y = 0; y < 3; y++)
                for (int xx = 0; xx < 3; xx++)
                    t_put(x[8]->data[0] + 4 * (y * 12 + xx), 3.0f);
        t_add(m, id[k], x[k]);
        free(x[k]);
    }
    t_finish(m, &r);
    size_t n = gb_explain_merge_moved_classes(&r, "mallory", &classes, &ratio);
    assert_true(n >= 1);
    assert_int_equal(classes[0], 0);
    assert_true(ratio[0] >= GB_CLASS_DRIFT_RATIO);
    float top = ratio[0];
    for (int k = 0; k < 8; k++) {
        size_t nk = gb_explain_merge_moved_classes(&r, id[k], &classes, &ratio);
        for (size_t i = 0; i < nk; i++) {
            assert_true(ratio[i] >= GB_CLASS_DRIFT_RATIO && classes[i] < 2);
            if (i > 0)
                assert_true(ratio[i] <= ratio[i - 1]);
            if (classes[i] == 0)
                assert_true(ratio[i] < top);
        }
    }
    assert_int_equal(gb_explain_merge_moved_classes(&r, "nobody", &classes, &ratio), 0);
    assert_int_equal(gb_explain_merge_moved_classes(NULL, "mallory", &classes, &ratio), 0);
    gb_explain_merge_result_free(&r);

    /* three classes now: the reference of two is dropped */
    assert_int_equal(gb_explain_merge_begin(m, 3, IG, &S144, 3, 0, &err), 0);
    for (int k = 0; k < 9; k++) {
        x[k] = t_clean(3, 0.2);
        t_add(m, id[k], x[k]);
        free(x[k]);
    }
    t_finish(m, &r);
    for (int k = 0; k < 9; k++)
        assert_int_equal(gb_explain_merge_moved_classes(&r, id[k], &classes, &ratio), 0);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
}

static void test_identical_clients_score_zero(void **state)
{
    (void)state;
    gb_explain_merge_t *m = t_merger(8, 1, IG, &S144, 2);
    t_expl_t *c = t_clean(1, 0.3);
    static const char *const ids[] = {"n1", "n2", "n3", "n4", "n5"};
    for (int k = 0; k < 5; k++) {
        c->e.count = 10 + 7 * (uint64_t)k; /* weights differ, maps do not */
        t_add(m, ids[k], c);
    }
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    assert_int_equal(r.n_distance, 5);
    for (int k = 0; k < 5; k++) {
        assert_true(t_distance(&r, ids[k]) < 1e-9);
        /* nothing moved: every share equals the others' */
        const uint32_t *cells = NULL;
        assert_int_equal(gb_explain_merge_moved(&r, ids[k], &cells, NULL), 0);
        assert_true(cells && cells[0] == UINT32_MAX);
    }
    /* the mean of identical maps is the map itself, bit for bit */
    for (size_t i = 0; i < 144; i++)
        assert_true(t_get(r.explanation->feature_importance, i) ==
                    t_get(c->e.feature_importance, i));
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    free(c);
}

/* A client's leave-one-out distance does not move when it alone changes
 * its weight: its reference is everyone else, as they are. The others'
 * references include it, so theirs do move. */
static void test_leave_one_out_ignores_own_weight(void **state)
{
    (void)state;
    static const char *const ids[4] = {"p", "q", "s", "x"};
    static const uint64_t weight[4] = {7, 11, 13, 0};
    t_expl_t *c[4];
    for (int k = 0; k < 4; k++)
        c[k] = t_clean(3, 0.5);
    gb_explain_merge_result_t r[2];
    static const uint64_t x_weight[2] = {5, 5000};
    for (int t = 0; t < 2; t++) {
        gb_explain_merge_t *m = t_merger(4, 3, IG, &S144, 2);
        for (int k = 0; k < 4; k++)
            t_add_w(m, ids[k], c[k], k == 3 ? x_weight[t] : weight[k], t_most(c[k]));
        t_finish(m, &r[t]);
        gb_explain_merge_destroy(&m);
    }
    assert_int_equal(r[0].n_distance, 4);
    assert_string_equal(r[0].distance[3]->key, "x");
    assert_string_equal(r[0].distance[3]->value, r[1].distance[3]->value);
    assert_true(t_distance(&r[0], "x") > 0);
    assert_string_not_equal(r[0].distance[0]->value, r[1].distance[0]->value);
    for (int t = 0; t < 2; t++)
        gb_explain_merge_result_free(&r[t]);
    for (int k = 0; k < 4; k++)
        free(c[k]);
}

/* ---- the report ------------------------------------------------------------------ */

/* The report's JSON parsed with jansson (strict RFC 8259; fails the test if
 * it is not JSON); the caller json_decrefs it. */
static json_t *t_json_load(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc)
        fail_msg("%s is not JSON (line %d: %s)", path, jerr.line, jerr.text);
    return doc;
}

/* doc's member at a path of keys and array indices ("classes", "#1", "min"). */
static json_t *t_at(json_t *doc, const char *const *keys, size_t n)
{
    for (size_t i = 0; doc && i < n; i++)
        doc = keys[i][0] == '#' ? json_array_get(doc, (size_t)strtoul(keys[i] + 1, NULL, 10))
                                : json_object_get(doc, keys[i]);
    if (!doc)
        fail_msg("the JSON lacks %s", keys[n - 1]);
    return doc;
}
#define T_AT(doc, ...)                                                                         \
    t_at((doc), (const char *const[]){__VA_ARGS__},                                            \
         sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Decodes a PNG with libpng and checks its IHDR says the same size. */
static void t_png_valid(const char *path)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        fail_msg("%s: %s", path, im.message);
    im.format = PNG_FORMAT_RGB;
    size_t bytes = PNG_IMAGE_SIZE(im);
    uint8_t *px = malloc(bytes);
    assert_non_null(px);
    assert_true(png_image_finish_read(&im, NULL, px, 0, NULL));
    assert_true(im.width >= 8 && im.height >= 8);
    free(px);
    uint8_t *data = NULL;
    size_t len = 0;
    gb_error_t err = {0};
    assert_int_equal(gb_file_read_all(path, 1 << 26, &data, &len, &err), 0);
    assert_true(len > 33);
    assert_memory_equal(data, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 |
                 data[19];
    uint32_t hgt = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 |
                   (uint32_t)data[22] << 8 | data[23];
    assert_int_equal(w, im.width);
    assert_int_equal(hgt, im.height);
    gb_free(data);
}

/* Files in dir, counted; fails on a leftover temporary file. */
static int t_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        if (e->d_name[0] == '.')
            fail_msg("temporary file %s left in %s", e->d_name, dir);
        n++;
    }
    closedir(d);
    return n;
}

static void test_report(void **state)
{
    (void)state;
    t_hand_t h = t_hand(5);
    gb_explain_merge_t *m = t_merger(8, 5, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(m, h.id[i], h.x[i]);
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    char *base = gb_test_mkdtemp();
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/report", base); /* created by the report */
    gb_error_t err = {0};
    int rc = gb_explain_report_write(dir, 5, r.explanation, r.distance, r.n_distance, &err);
    if (rc)
        fail_msg("report: %s", err.msg);
    assert_int_equal(t_files(dir), 4);
    snprintf(path, sizeof path, "%s/explanation-5.json", dir);
    json_t *doc = t_json_load(path);
    assert_string_equal(json_string_value(T_AT(doc, "format")), "glassbox-aggregate-explanation");
    assert_int_equal(json_integer_value(T_AT(doc, "round")), 5);
    assert_string_equal(json_string_value(T_AT(doc, "method")), "ig");
    assert_int_equal(json_array_size(T_AT(doc, "attribution_shape")), 3);
    assert_int_equal(json_integer_value(T_AT(doc, "attribution_shape", "#2")), 2);
    assert_int_equal(json_integer_value(T_AT(doc, "samples")), 16);
    assert_true(json_real_value(T_AT(doc, "quality", "completeness_error")) == 0.25);
    assert_int_equal(json_integer_value(T_AT(doc, "classes", "#0", "class")), 0);
    assert_int_equal(json_integer_value(T_AT(doc, "classes", "#0", "count")), 8);
    assert_true(json_real_value(T_AT(doc, "classes", "#0", "min")) == 1.5);
    assert_true(json_real_value(T_AT(doc, "classes", "#0", "max")) >= 2);
    assert_int_equal(json_integer_value(T_AT(doc, "classes", "#1", "class")), 1);
    assert_int_equal(json_integer_value(T_AT(doc, "classes", "#1", "count")), 8);
    assert_string_equal(json_string_value(T_AT(doc, "classes", "#1", "heatmap")),
                        "explanation-5-class-1.png");
    const double values[] = {0.875, 2.125, 0.875, 2.125};
    json_t *vals = T_AT(doc, "feature_importance", "values");
    assert_int_equal(json_array_size(vals), 4);
    for (size_t i = 0; i < 4; i++)
        assert_true(json_real_value(json_array_get(vals, i)) == values[i]);
    assert_int_equal(json_integer_value(T_AT(doc, "classes", "#0", "max_abs_cell")), 1);
    assert_string_equal(json_string_value(T_AT(doc, "distance", "measure")),
                        GB_EXPLAIN_MERGE_MEASURE);
    /* the clients in id order, each with a real distance */
    json_t *clients = T_AT(doc, "distance", "clients");
    assert_int_equal(json_array_size(clients), r.n_distance);
    for (size_t i = 0; i < r.n_distance; i++) {
        json_t *c = json_array_get(clients, i);
        assert_string_equal(json_string_value(json_object_get(c, "client")), r.distance[i]->key);
        assert_true(json_is_real(json_object_get(c, "distance")));
    }
    assert_string_equal(json_string_value(T_AT(clients, "#0", "client")), "B2");
    json_decref(doc);
    /* a client id that is not UTF-8 (ids come from the wire): each bad byte
     * is U+FFFD, as in every other document */
    char *keep_id = r.distance[0]->key;
    r.distance[0]->key = (char *)"B\xff" "2";
    assert_int_equal(gb_explain_report_write(dir, 5, r.explanation, r.distance, r.n_distance,
                                             &err), 0);
    r.distance[0]->key = keep_id;
    doc = t_json_load(path);
    assert_string_equal(json_string_value(T_AT(doc, "distance", "clients", "#0", "client")),
                        "B\xef\xbf\xbd" "2");
    json_decref(doc);
    static const char *const pngs[] = {"explanation-5-class-0.png", "explanation-5-class-1.png",
                                       "explanation-5-importance.png"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, pngs[i]);
        t_png_valid(path);
    }
    /* written again over itself: still exactly the same four files */
    assert_int_equal(gb_explain_report_write(dir, 5, r.explanation, r.distance, r.n_distance,
                                             &err), 0);
    assert_int_equal(t_files(dir), 4);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
    gb_test_rmtree(base);
    free(base);
}

/* Sequences (time along x), Grad-CAM maps and vectors draw too. */
static void test_report_shapes(void **state)
{
    (void)state;
    static const struct {
        gb_shape_t shape;
        Glassbox__ExplainMethod method;
    } cases[] = {
        {{2, {6, 3, 1}}, IG},       /* a sequence: 6 timesteps x 3 features */
        {{2, {4, 4, 1}}, GRADCAM},  /* a Grad-CAM map at the conv layer's resolution */
        {{1, {10, 1, 1}}, SAL},     /* a vector */
        {{3, {3, 4, 5}}, IG},       /* a colour image */
        {{2, {1, 200, 1}}, IG},     /* one timestep of 200 features */
    };
    char *base = gb_test_mkdtemp();
    float v[T_CELLS];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const gb_shape_t *s = &cases[c].shape;
        size_t n = gb_shape_size(s);
        for (size_t i = 0; i < n; i++)
            v[i] = (float)(i % 7) - 3;
        gb_explain_merge_t *m = t_merger(4, 2, cases[c].method, s, 1);
        float fi[T_CELLS];
        for (size_t i = 0; i < n; i++)
            fi[i] = fabsf(v[i]);
        t_expl_t *x = t_new(2, cases[c].method, s, 3, fi);
        t_class(x, 0, 3, s, v);
        t_add(m, "one", x);
        t_add(m, "two", x);
        gb_explain_merge_result_t r;
        t_finish(m, &r);
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/case%zu", base, c);
        gb_error_t err = {0};
        int rc = gb_explain_report_write(dir, 2, r.explanation, r.distance, r.n_distance, &err);
        if (rc)
            fail_msg("case %zu: %s", c, err.msg);
        assert_int_equal(t_files(dir), 3);
        snprintf(path, sizeof path, "%s/explanation-2.json", dir);
        json_decref(t_json_load(path));
        snprintf(path, sizeof path, "%s/explanation-2-class-0.png", dir);
        t_png_valid(path);
        snprintf(path, sizeof path, "%s/explanation-2-importance.png", dir);
        t_png_valid(path);
        gb_explain_merge_result_free(&r);
        gb_explain_merge_destroy(&m);
        free(x);
    }
    gb_test_rmtree(base);
    free(base);
}

static void test_report_refusals(void **state)
{
    (void)state;
    t_hand_t h = t_hand(5);
    gb_explain_merge_t *m = t_merger(8, 5, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(m, h.id[i], h.x[i]);
    gb_explain_merge_result_t r;
    t_finish(m, &r);
    char *base = gb_test_mkdtemp();
    gb_error_t err = {0};
    Glassbox__Explanation *e = r.explanation;
    assert_int_equal(gb_explain_report_write(NULL, 5, e, NULL, 0, &err), GB_EINVAL);
    assert_int_equal(gb_explain_report_write(base, 5, NULL, NULL, 0, &err), GB_EINVAL);
    assert_int_equal(gb_explain_report_write(base, 4, e, NULL, 0, &err), GB_EINVAL);
    assert_int_equal(gb_explain_report_write(base, 5, e, NULL, 2, &err), GB_EINVAL);
    e->feature_importance->data.len -= 4;
    assert_int_equal(gb_explain_report_write(base, 5, e, NULL, 0, &err), GB_ESHAPE);
    e->feature_importance->data.len += 4;
    e->classes[1]->mean_attribution->shape[1] = 4;
    e->classes[1]->mean_attribution->shape[2] = 1;
    assert_int_equal(gb_explain_report_write(base, 5, e, NULL, 0, &err), GB_ESHAPE);
    e->classes[1]->mean_attribution->shape[1] = 2;
    e->classes[1]->mean_attribution->shape[2] = 2;
    uint8_t keep[4];
    memcpy(keep, e->classes[0]->mean_attribution->data.data, 4);
    t_put(e->classes[0]->mean_attribution->data.data, NAN);
    assert_int_equal(gb_explain_report_write(base, 5, e, NULL, 0, &err), GB_ERANGE);
    memcpy(e->classes[0]->mean_attribution->data.data, keep, 4);
    Glassbox__ExplainMethod method = e->method;
    e->method = GLASSBOX__EXPLAIN_METHOD__EXPLAIN_NONE;
    assert_int_equal(gb_explain_report_write(base, 5, e, NULL, 0, &err), GB_EINVAL);
    e->method = method;
    char *value = r.distance[1]->value;
    static const char *const bad[] = {"abc", "inf", "nan", "0.5x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r.distance[1]->value = (char *)bad[i];
        assert_int_equal(gb_explain_report_write(base, 5, e, r.distance, r.n_distance, &err),
                         GB_EINVAL);
    }
    r.distance[1]->value = value;
    assert_int_equal(t_files(base), 0); /* nothing was written by a refusal */
    /* a directory that cannot be: a regular file in the way */
    char *file = gb_test_write_file(base, "in-the-way", "x", 1);
    int rc = gb_explain_report_write(file, 5, e, r.distance, r.n_distance, &err);
    assert_int_equal(rc, GB_EIO);
    assert_non_null(strstr(err.msg, "in-the-way"));
    free(file);
    /* and the same aggregate, put right, is written */
    assert_int_equal(gb_explain_report_write(base, 5, e, r.distance, r.n_distance, &err), 0);
    gb_explain_merge_result_free(&r);
    gb_explain_merge_destroy(&m);
    t_hand_free(&h);
    gb_test_rmtree(base);
    free(base);
}

/* ---- allocation failures ---------------------------------------------------------- */

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_error_t err = {0};
    int points = 0;
    for (long k = 1;; k++) { /* new */
        gb_alloc_fail_after(k);
        gb_explain_merge_t *m = gb_explain_merge_new(4, &err);
        gb_alloc_fail_after(0);
        if (m) {
            gb_explain_merge_destroy(&m);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        points++;
    }
    assert_true(points >= 1);

    t_hand_t h = t_hand(3);
    gb_explain_merge_t *ref = t_merger(4, 3, IG, &S4, 3);
    for (int i = 0; i < 3; i++)
        t_add(ref, h.id[i], h.x[i]);
    gb_explain_merge_result_t want;
    t_finish(ref, &want);

    /* begin: a failure leaves the round that was open */
    gb_explain_merge_t *m = gb_explain_merge_new(4, &err);
    assert_non_null(m);
    assert_int_equal(gb_explain_merge_begin(m, 2, IG, &(gb_shape_t){1, {1, 1, 1}}, 1, 0, &err), 0);
    points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_explain_merge_begin(m, 3, IG, &S4, 3, 0, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_int_equal(gb_explain_merge_round(m), 2);
        assert_true(gb_explain_merge_is_open(m));
        points++;
    }
    assert_true(points >= 1);

    /* add: every allocation point of every add fails once, changing nothing */
    points = 0;
    for (int i = 0; i < 3; i++) {
        for (long k = 1;; k++) {
            gb_alloc_fail_after(k);
            int rc = gb_explain_merge_add(m, h.id[i], &h.x[i]->e, h.x[i]->e.count,
                                          t_most(h.x[i]), &err);
            gb_alloc_fail_after(0);
            if (rc == 0)
                break;
            assert_int_equal(rc, GB_ENOMEM);
            assert_int_equal(gb_explain_merge_clients(m), (size_t)i);
            points++;
        }
    }
    assert_true(points >= 3);

    /* finish: a failure leaves the round open and the result empty */
    gb_explain_merge_result_t got;
    points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_explain_merge_finish(m, &got, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(got.explanation);
        assert_null(got.distance);
        assert_true(gb_explain_merge_is_open(m));
        points++;
    }
    assert_true(points >= 10);
    t_same(&want, &got);

    /* the report: each failure is GB_ENOMEM and leaves no temporary file */
    char *base = gb_test_mkdtemp();
    points = 0;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_explain_report_write(base, 3, got.explanation, got.distance, got.n_distance,
                                         &err);
        gb_alloc_fail_after(0);
        t_files(base);
        if (rc == 0)
            break;
        if (rc != GB_ENOMEM)
            fail_msg("report, allocation %ld failed: %d (%s)", k, rc, err.msg);
        points++;
    }
    assert_true(points >= 3);
    assert_int_equal(t_files(base), 4);
    gb_test_rmtree(base);
    free(base);

    gb_explain_merge_result_free(&got);
    gb_explain_merge_result_free(&want);
    gb_explain_merge_destroy(&m);
    gb_explain_merge_destroy(&ref);
    t_hand_free(&h);
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted_mean_by_hand),
        cmocka_unit_test(test_publication_accepts),
        cmocka_unit_test(test_inflated_counts_carry_no_weight),
        cmocka_unit_test(test_counts_above_max_count_refused),
        cmocka_unit_test(test_cap_weight),
        cmocka_unit_test(test_leave_one_out_ignores_own_weight),
        cmocka_unit_test(test_order_independence),
        cmocka_unit_test(test_refusals_change_nothing),
        cmocka_unit_test(test_new_and_begin_refusals),
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_trigger_patch_scores_highest),
        cmocka_unit_test(test_moved_classes_name_the_target),
        cmocka_unit_test(test_identical_clients_score_zero),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_report_shapes),
        cmocka_unit_test(test_report_refusals),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
