/* Tests for engine/model: construction and accessors (parameter counts of the
 * presets, layer_info, flops), initialisation, planning, the call-order and
 * batch-size errors, backward's accumulate flag, train_step, a batch against
 * single samples, one thread against two, and allocation-failure injection
 * in gb_model_new and gb_model_plan. Doubles as the usage example:
 *
 *     gb_model_t *m = gb_model_new("lenet", &err);      // or spec text
 *     gb_model_init(m, seed);
 *     gb_model_plan(m, max_batch, threads, &err);
 *     gb_model_forward(m, x, batch, out, &err);
 *     gb_model_backward(m, dout, batch, dx, true, &err); // grads += ...
 *     // or in pieces: layers [0, k) then [k, n), backward in reverse
 *     gb_model_forward_layers(m, 0, k, x, batch, h, &err);
 *     gb_model_destroy(&m);
 */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/layer.h"
#include "engine/loss.h"
#include "engine/model.h"
#include "util/alloc.h"
#include "util/rng.h"

/* Every layer kind but dropout (whose masks depend on the sample's index in
 * the batch, so a batch and single samples legitimately differ). */
static const char s_all_layers[] = "input 2 8 8\n"
                                   "conv 3 3 pad 1\n"
                                   "relu\n"
                                   "maxpool 2\n"
                                   "conv 4 3 stride 2 pad 1\n"
                                   "tanh\n"
                                   "avgpool 2\n"
                                   "flatten\n"
                                   "dense 5\n"
                                   "sigmoid\n"
                                   "dense 3\n";

static float *s_random(size_t n, float lo, float hi, uint64_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 3);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)gb_rng_uniform(&rng);
    return p;
}

static void s_assert_msg(const gb_error_t *err, int code, const char *needle)
{
    assert_int_equal(err->code, code);
    if (!strstr(err->msg, needle))
        fail_msg("error message '%s' lacks '%s'", err->msg, needle);
}

/* ------------------------------------------------------------ construction */

static void test_new_accessors(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lenet", &err);
    assert_non_null(m);
    /* 16*25+16 + 32*16*25+32 + 512*128+128 + 128*10+10 */
    assert_int_equal(gb_model_param_count(m), 416 + 12832 + 65664 + 1290);
    assert_int_equal(gb_model_param_count(m), 80202);
    /* Parameters and gradients start zeroed. */
    for (size_t i = 0; i < 80202; i++) {
        assert_true(gb_model_params(m)[i] == 0.0f);
        assert_true(gb_model_grads(m)[i] == 0.0f);
    }
    gb_shape_t in = gb_model_input_shape(m), out = gb_model_output_shape(m);
    assert_int_equal(in.rank, 3);
    assert_int_equal(in.dim[0], 1);
    assert_int_equal(in.dim[1], 28);
    assert_int_equal(in.dim[2], 28);
    assert_int_equal(out.rank, 1);
    assert_int_equal(out.dim[0], 10);
    /* Not planned yet. */
    assert_int_equal(gb_model_max_batch(m), 0);
    assert_int_equal(gb_model_threads(m), 0);
    const gb_spec_t *spec = gb_model_spec(m);
    assert_non_null(spec);
    assert_int_equal(spec->n_layers, 10);
    assert_string_equal(spec->text, gb_spec_preset("lenet"));
    assert_int_equal(gb_model_layer_count(m), 10);
    gb_model_destroy(&m);
    assert_null(m);
    gb_model_destroy(&m);
    gb_model_destroy(NULL);

    m = gb_model_new("mlp", &err);
    assert_non_null(m);
    /* 784*128+128 + 128*10+10 */
    assert_int_equal(gb_model_param_count(m), 101770);
    assert_int_equal(gb_model_layer_count(m), 4);
    gb_model_destroy(&m);
}

static void test_new_errors(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_null(gb_model_new(NULL, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_model_new("nonsense", &err));
    s_assert_msg(&err, GB_ESPEC, "spec line 1");
    assert_null(gb_model_new("input 1 4 4\nmaxpool 5\n", &err));
    s_assert_msg(&err, GB_ESHAPE, "spec line 2");
    /* err may be NULL. */
    assert_null(gb_model_new("input 1 4 4\nmaxpool 5\n", NULL));
    /* A dense layer too large to address is refused before any allocation. */
    assert_null(gb_model_new("input 100000\ndense 100000\n", &err));
    s_assert_msg(&err, GB_ESHAPE, "spec line 2: dense 100000 on 100000 inputs is too large");
}

/* gb_model_count_params checks a spec as gb_model_new does without
 * allocating its parameters: for sizing untrusted model files. */
static void test_count_params(void **state)
{
    (void)state;
    gb_error_t err = {0};
    size_t n = 0;
    assert_int_equal(gb_model_count_params("lenet", &n, &err), 0);
    assert_int_equal(n, 80202);
    assert_int_equal(gb_model_count_params("mlp", &n, NULL), 0);
    assert_int_equal(n, 101770);
    assert_int_equal(gb_model_count_params("input 3 5 5\nconv 4 3\nflatten\n", &n, &err), 0);
    assert_int_equal(n, 4 * 27 + 4);
    assert_int_equal(gb_model_count_params("input 2 3\nrelu\n", &n, &err), 0);
    assert_int_equal(n, 0);

    /* Failures leave *n alone and report like gb_model_new. */
    n = 7;
    assert_int_equal(gb_model_count_params("input 4\nbogus\n", &n, &err), GB_ESPEC);
    s_assert_msg(&err, GB_ESPEC, "spec line 2: unknown layer 'bogus'");
    assert_int_equal(gb_model_count_params("input 16\nconv 2 3\n", &n, &err), GB_ESHAPE);
    s_assert_msg(&err, GB_ESHAPE, "spec line 2: conv needs an image input");
    assert_int_equal(n, 7);
    assert_true(gb_model_count_params("input 16\nconv 2 3\n", &n, NULL) < 0);

    /* More than GB_MODEL_MAX_PARAMS (2^30) parameters: refused by both,
     * without allocating 4 GiB first (1e6 x 1100 + 1100 > 2^30). */
    assert_int_equal(gb_model_count_params("input 1000000\ndense 1100\n", &n, &err), GB_ESHAPE);
    s_assert_msg(&err, GB_ESHAPE, "spec line 2: model exceeds 1073741824 parameters");
    assert_null(gb_model_new("input 1000000\ndense 1100\n", &err));
    s_assert_msg(&err, GB_ESHAPE, "model exceeds");
    /* Just below the limit it counts (and nothing is allocated). */
    assert_int_equal(gb_model_count_params("input 1000000\ndense 1000\n", &n, &err), 0);
    assert_int_equal(n, 1000001000);

    /* Allocation failure: each failing call is GB_ENOMEM and leaks nothing. */
    long k;
    for (k = 1; k < 100; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_model_count_params("lenet", &n, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
        assert_int_equal(err.code, GB_ENOMEM);
    }
    assert_true(k > 3 && k < 100);
    assert_int_equal(n, 80202);
}

static void test_layer_info(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lenet", &err);
    assert_non_null(m);
    /* Parametrised layers: conv1, conv2, dense 128, dense 10. (The kinds of
     * the parameter-free layers: test_layer_info_kinds_follow_spec.) */
    static const size_t offs[10] = {0, 416, 416, 416, 13248, 13248, 13248, 13248, 78912, 78912};
    static const size_t lens[10] = {416, 0, 0, 12832, 0, 0, 0, 65664, 0, 1290};
    for (int i = 0; i < 10; i++) {
        gb_layer_kind_t kind = GB_LAYER_KIND_COUNT;
        size_t off = 99, len = 99;
        assert_int_equal(gb_model_layer_info(m, i, &kind, &off, &len), 0);
        assert_int_equal(off, offs[i]);
        assert_int_equal(len, lens[i]);
        if (i == 0 || i == 3)
            assert_int_equal(kind, GB_LAYER_CONV2D);
        else if (i == 7 || i == 9)
            assert_int_equal(kind, GB_LAYER_DENSE);
        else
            assert_int_not_equal(kind, GB_LAYER_KIND_COUNT);
    }
    /* Output pointers may be NULL. */
    assert_int_equal(gb_model_layer_info(m, 3, NULL, NULL, NULL), 0);
    assert_int_equal(gb_model_layer_info(m, -1, NULL, NULL, NULL), GB_EINVAL);
    assert_int_equal(gb_model_layer_info(m, 10, NULL, NULL, NULL), GB_EINVAL);
    gb_model_destroy(&m);

    m = gb_model_new("mlp", &err);
    assert_non_null(m);
    gb_layer_kind_t kind;
    size_t off, len;
    assert_int_equal(gb_model_layer_info(m, 1, &kind, &off, &len), 0);
    assert_int_equal(kind, GB_LAYER_DENSE);
    assert_int_equal(off, 0);
    assert_int_equal(len, 100480);
    assert_int_equal(gb_model_layer_info(m, 3, &kind, &off, &len), 0);
    assert_int_equal(kind, GB_LAYER_DENSE);
    assert_int_equal(off, 100480);
    assert_int_equal(len, 1290);
    gb_model_destroy(&m);
}

static void test_flops(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lenet", &err);
    assert_non_null(m);
    /* conv1 2*16*25*24*24 + conv2 2*32*400*8*8 + 2*512*128 + 2*128*10 */
    assert_true(gb_model_flops_per_sample(m) == 460800.0 + 1638400.0 + 131072.0 + 2560.0);
    gb_model_destroy(&m);
    m = gb_model_new("mlp", &err);
    assert_non_null(m);
    assert_true(gb_model_flops_per_sample(m) == 2.0 * 784 * 128 + 2.0 * 128 * 10);
    gb_model_destroy(&m);
    /* Layers without multiply-adds count nothing. */
    m = gb_model_new("input 2 6 6\nmaxpool 2\navgpool 3\nrelu\nflatten\ntanh\nsigmoid\n"
                     "dropout 0.5\n",
                     &err);
    assert_non_null(m);
    assert_true(gb_model_flops_per_sample(m) == 0.0);
    gb_model_destroy(&m);
}

/* PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
 * (kaiming-uniform with a = sqrt(5) reduces to that) and biases. */
static void test_init(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *a = gb_model_new("lenet", &err), *b = gb_model_new("lenet", &err);
    assert_true(a && b);
    const size_t np = gb_model_param_count(a);
    gb_model_init(a, 7);
    gb_model_init(b, 7);
    assert_memory_equal(gb_model_params(a), gb_model_params(b), np * sizeof(float));
    gb_model_init(b, 8);
    assert_memory_not_equal(gb_model_params(a), gb_model_params(b), np * sizeof(float));

    /* fan_in per parametrised layer: 1*25, 16*25, 512, 128. */
    static const int layer[4] = {0, 3, 7, 9};
    static const double fan_in[4] = {25, 400, 512, 128};
    for (int k = 0; k < 4; k++) {
        size_t off, len;
        assert_int_equal(gb_model_layer_info(a, layer[k], NULL, &off, &len), 0);
        const double bound = 1.0 / sqrt(fan_in[k]);
        const float *p = gb_model_params(a) + off;
        double sum = 0.0, sq = 0.0, mx = 0.0;
        for (size_t i = 0; i < len; i++) {
            assert_true(fabs(p[i]) <= bound * (1 + 1e-6));
            sum += p[i];
            sq += (double)p[i] * p[i];
            mx = fmax(mx, fabs(p[i]));
        }
        const double mean = sum / len, var = sq / len - mean * mean;
        /* U(-b, b): mean 0 (sd b/sqrt(3 len)), variance b^2/3; 6 sd / 10%. */
        assert_true(fabs(mean) <= 6.0 * bound / sqrt(3.0 * len));
        assert_true(fabs(var / (bound * bound / 3.0) - 1.0) <= 0.1);
        assert_true(mx >= 0.9 * bound);
    }
    gb_model_destroy(&a);
    gb_model_destroy(&b);
}

/* The engine-internal layer helpers (engine/layer.h). */
static void test_layer_helpers(void **state)
{
    (void)state;
    /* Every kind has a table with the mandatory entries. */
    for (int k = 0; k < GB_LAYER_KIND_COUNT; k++) {
        const gb_layer_ops_t *ops = gb_layer_ops((gb_layer_kind_t)k);
        assert_non_null(ops);
        assert_non_null(ops->plan);
        assert_non_null(ops->forward);
        assert_non_null(ops->backward);
    }
    assert_null(gb_layer_ops(GB_LAYER_KIND_COUNT));

    /* fill_uniform: within [-bound, bound], both signs, from the rng. */
    float p[1000];
    gb_rng_t rng;
    gb_rng_seed(&rng, 1, 1);
    gb_layer_fill_uniform(p, 1000, 0.25f, &rng);
    int neg = 0;
    for (int i = 0; i < 1000; i++) {
        assert_true(p[i] >= -0.25f && p[i] <= 0.25f);
        neg += p[i] < 0.0f;
    }
    assert_in_range(neg, 400, 600);

    /* gb_layer_sum: any length (8 lanes and a tail), fixed order, within
     * float rounding of the double sum. */
    float x[37];
    for (int n = 0; n <= 37; n++) {
        double want = 0.0, abssum = 0.0;
        for (int i = 0; i < n; i++) {
            x[i] = (float)(i % 5) - 1.7f + 0.01f * (float)i;
            want += x[i];
            abssum += fabs(x[i]);
        }
        float got = gb_layer_sum(x, (size_t)n);
        assert_true(fabs(got - want) <= 1e-6 * abssum + 1e-30);
        assert_true(gb_layer_sum(x, (size_t)n) == got);
    }

    /* require_image: a (C, H, W) input only, naming the spec line. */
    gb_layer_t l;
    memset(&l, 0, sizeof l);
    l.cfg.kind = GB_LAYER_MAXPOOL2D;
    l.cfg.line = 7;
    l.in = (gb_shape_t){3, {2, 4, 4}};
    gb_error_t err = {0};
    assert_int_equal(gb_layer_require_image(&l, &err), 0);
    l.in = (gb_shape_t){2, {4, 4, 1}};
    assert_int_equal(gb_layer_require_image(&l, &err), GB_ESHAPE);
    assert_string_equal(err.msg, "spec line 7: maxpool needs an image input (channels height "
                                 "width), got shape 4x4");
}

/* ---------------------------------------------------------------- planning */

static void test_plan(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("mlp", &err);
    assert_non_null(m);
    assert_int_equal(gb_model_plan(m, 0, 1, &err), GB_EINVAL);
    s_assert_msg(&err, GB_EINVAL, "batch size 0 out of range");
    assert_int_equal(gb_model_plan(m, (1 << 20) + 1, 1, &err), GB_EINVAL);
    assert_int_equal(gb_model_plan(m, 4, 0, &err), GB_EINVAL);
    s_assert_msg(&err, GB_EINVAL, "thread count 0 out of range");
    assert_int_equal(gb_model_plan(m, 4, 257, &err), GB_EINVAL);
    assert_int_equal(gb_model_plan(m, 4, -1, NULL), GB_EINVAL);
    assert_int_equal(gb_model_max_batch(m), 0);

    assert_int_equal(gb_model_plan(m, 8, 2, &err), 0);
    assert_int_equal(gb_model_max_batch(m), 8);
    assert_int_equal(gb_model_threads(m), 2);
    /* More threads than samples: capped at the batch. */
    assert_int_equal(gb_model_plan(m, 3, 8, &err), 0);
    assert_int_equal(gb_model_max_batch(m), 3);
    assert_int_equal(gb_model_threads(m), 3);
    /* Re-planning replaces the plan. */
    assert_int_equal(gb_model_plan(m, 5, 1, &err), 0);
    assert_int_equal(gb_model_max_batch(m), 5);
    assert_int_equal(gb_model_threads(m), 1);
    gb_model_destroy(&m);
}

/* What s_fill_from_copy does: rows of src into dst, each row counted. */
typedef struct {
    const float *src;
    float *dst;
    size_t row_size;
    int filled[16];
} s_fill_job_t;

static void s_fill_from_copy(void *arg, int row0, int n)
{
    s_fill_job_t *job = arg;
    for (int r = row0; r < row0 + n; r++) {
        assert_true(r >= 0 && r < 16);
        job->filled[r]++; /* rows are the calling worker's own */
        memcpy(job->dst + (size_t)r * job->row_size, job->src + (size_t)r * job->row_size,
               job->row_size * sizeof(float));
    }
}

/* What s_drain_copy does: rows of din copied out as the backward runs. */
static void s_drain_copy(void *arg, int row0, int n)
{
    s_fill_job_t *job = arg; /* src: the backward's din, dst: the copy */
    for (int r = row0; r < row0 + n; r++) {
        assert_true(r >= 0 && r < 16);
        job->filled[r]++;
        memcpy(job->dst + (size_t)r * job->row_size, job->src + (size_t)r * job->row_size,
               job->row_size * sizeof(float));
    }
}

/* A backward whose input gradient rows are read as it runs: every row
 * drained once, after it was written (the copy equals din), and din and
 * the parameter gradients are the plain backward's. */
static void test_backward_layers_drain(void **state)
{
    (void)state;
    const int B = 7;
    for (int threads = 1; threads <= 3; threads++) {
        gb_model_t *m = gb_test_model(s_all_layers, B, threads, 41);
        const int n = gb_model_layer_count(m);
        const size_t ni = gb_test_model_in_size(m), no = gb_test_model_out_size(m),
                     np = gb_model_param_count(m);
        float *x = s_random(B * ni, -1, 1, 42), *dy = s_random(B * no, -1, 1, 43);
        float *dx = malloc(B * ni * sizeof *dx), *dx2 = malloc(B * ni * sizeof *dx2);
        float *copy = malloc(B * ni * sizeof *copy), *g = malloc(np * sizeof *g);
        assert_true(dx && dx2 && copy && g);
        gb_error_t err = {0};
        memset(gb_model_grads(m), 0, np * sizeof(float));
        assert_int_equal(gb_model_forward(m, x, B, NULL, &err), 0);
        assert_int_equal(gb_model_backward(m, dy, B, dx, true, &err), 0);
        memcpy(g, gb_model_grads(m), np * sizeof *g);
        memset(gb_model_grads(m), 0, np * sizeof(float));
        assert_int_equal(gb_model_forward(m, x, B, NULL, &err), 0);
        s_fill_job_t job = {dx2, copy, ni, {0}};
        assert_int_equal(
            gb_model_backward_layers_drain(m, 0, n, dy, B, dx2, true, s_drain_copy, &job, &err),
            0);
        for (int r = 0; r < B; r++)
            assert_int_equal(job.filled[r], 1);
        assert_memory_equal(dx, dx2, B * ni * sizeof *dx);
        assert_memory_equal(dx, copy, B * ni * sizeof *dx);
        assert_memory_equal(g, gb_model_grads(m), np * sizeof *g);
        /* refusals, and none leaves a drain behind for the next backward */
        assert_int_equal(gb_model_backward_layers_drain(m, 0, n, dy, B, dx2, false, NULL, NULL,
                                                        &err),
                         GB_EINVAL);
        s_assert_msg(&err, GB_EINVAL, "no drain function");
        assert_int_equal(gb_model_backward_layers_drain(m, 0, n, dy, B, NULL, false,
                                                        s_drain_copy, &job, &err),
                         GB_EINVAL);
        s_assert_msg(&err, GB_EINVAL, "no input gradient buffer");
        assert_int_equal(gb_model_backward_layers_drain(m, 0, n, dy, B + 1, dx2, false,
                                                        s_drain_copy, &job, &err),
                         GB_ESHAPE);
        memset(job.filled, 0, sizeof job.filled);
        assert_int_equal(gb_model_backward(m, dy, B, dx2, false, &err), 0);
        assert_int_equal(job.filled[0], 0);
        free(x);
        free(dy);
        free(dx);
        free(dx2);
        free(copy);
        free(g);
        gb_model_destroy(&m);
    }
}

/* A forward whose rows are filled as it runs gives the bits of one given
 * its input whole, the backward after it too; every row is filled once. */
static void test_forward_layers_fill(void **state)
{
    (void)state;
    const int B = 7;
    for (int threads = 1; threads <= 3; threads++) {
        gb_model_t *m = gb_test_model(s_all_layers, B, threads, 31);
        const int n = gb_model_layer_count(m);
        const size_t ni = gb_test_model_in_size(m), no = gb_test_model_out_size(m);
        const size_t hn = 3 * 8 * 8; /* layer 1's input: conv's output */
        float *x = s_random(B * ni, -1, 1, 32), *dy = s_random(B * no, -1, 1, 33);
        float *h = malloc(B * hn * sizeof *h), *h2 = malloc(B * hn * sizeof *h2);
        float *y = malloc(B * no * sizeof *y), *y2 = malloc(B * no * sizeof *y2);
        float *dh = malloc(B * hn * sizeof *dh), *dh2 = malloc(B * hn * sizeof *dh2);
        assert_true(h && h2 && y && y2 && dh && dh2);
        gb_error_t err = {0};
        assert_int_equal(gb_model_forward_layers(m, 0, 1, x, B, h, &err), 0);
        assert_int_equal(gb_model_forward_layers(m, 1, n, h, B, y, &err), 0);
        assert_int_equal(gb_model_backward_layers(m, 1, n, dy, B, dh, false, &err), 0);
        memset(h2, 0xff, B * hn * sizeof *h2); /* NaNs until filled */
        s_fill_job_t job = {h, h2, hn, {0}};
        assert_int_equal(
            gb_model_forward_layers_fill(m, 1, n, h2, s_fill_from_copy, &job, B, y2, &err), 0);
        for (int r = 0; r < B; r++)
            assert_int_equal(job.filled[r], 1);
        assert_memory_equal(h, h2, B * hn * sizeof *h);
        assert_memory_equal(y, y2, B * no * sizeof *y);
        assert_int_equal(gb_model_backward_layers(m, 1, n, dy, B, dh2, false, &err), 0);
        assert_memory_equal(dh, dh2, B * hn * sizeof *dh);
        /* a later plain forward has no fill left over */
        memset(job.filled, 0, sizeof job.filled);
        assert_int_equal(gb_model_forward_layers(m, 1, n, h, B, y2, &err), 0);
        assert_int_equal(job.filled[0], 0);
        assert_memory_equal(y, y2, B * no * sizeof *y);
        /* refusals: no fill; and a refused range leaves no fill behind */
        assert_int_equal(gb_model_forward_layers_fill(m, 1, n, h2, NULL, NULL, B, y2, &err),
                         GB_EINVAL);
        s_assert_msg(&err, GB_EINVAL, "no fill function");
        assert_int_equal(
            gb_model_forward_layers_fill(m, 1, n + 1, h2, s_fill_from_copy, &job, B, y2, &err),
            GB_EINVAL);
        assert_int_equal(gb_model_forward_layers(m, 1, n, h, B, y2, &err), 0);
        assert_int_equal(job.filled[0], 0);
        free(x);
        free(dy);
        free(h);
        free(h2);
        free(y);
        free(y2);
        free(dh);
        free(dh2);
        gb_model_destroy(&m);
    }
    /* a first layer that checks its input before the pass cannot be filled */
    gb_error_t err = {0};
    gb_model_t *m = gb_test_model("input 4\nembedding 10 3\nflatten\ndense 2\n", 2, 1, 34);
    float ids[8] = {0}, out[4];
    s_fill_job_t job = {ids, ids, 4, {0}};
    assert_int_equal(gb_model_forward_layers_fill(m, 0, 1, ids, s_fill_from_copy, &job, 2, out,
                                                  &err),
                     GB_EINVAL);
    s_assert_msg(&err, GB_EINVAL, "checks its input");
    gb_model_destroy(&m);
}

static void test_call_order_errors(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("input 4\ndense 3\n", &err);
    assert_non_null(m);
    float x[9 * 4] = {0}, y[9 * 3], dy[9 * 3] = {0}, dx[9 * 4];
    int32_t labels[9] = {0};
    gb_target_t t = {.kind = GB_LOSS_SOFTMAX_CE, .labels = labels};
    double loss;

    /* Before gb_model_plan. */
    assert_int_equal(gb_model_forward(m, x, 1, y, &err), GB_EINVAL);
    s_assert_msg(&err, GB_EINVAL, "not planned");
    assert_int_equal(gb_model_backward(m, dy, 1, dx, true, &err), GB_EINVAL);
    assert_int_equal(gb_model_train_step(m, x, &t, 1, &loss, NULL, &err), GB_EINVAL);

    assert_int_equal(gb_model_plan(m, 8, 1, &err), 0);
    /* Backward before any forward. */
    assert_int_equal(gb_model_backward(m, dy, 2, dx, true, &err), GB_ESHAPE);
    s_assert_msg(&err, GB_ESHAPE, "does not match the last forward");
    /* Batch larger than planned, or < 1. */
    assert_int_equal(gb_model_forward(m, x, 9, y, &err), GB_ESHAPE);
    s_assert_msg(&err, GB_ESHAPE, "batch 9 out of range: planned for 1..8");
    assert_int_equal(gb_model_forward(m, x, 0, y, &err), GB_ESHAPE);
    assert_int_equal(gb_model_forward(m, x, -3, y, NULL), GB_ESHAPE);
    assert_int_equal(gb_model_train_step(m, x, &t, 9, &loss, NULL, &err), GB_ESHAPE);
    assert_int_equal(gb_model_backward(m, dy, 9, dx, true, &err), GB_ESHAPE);

    /* Backward of another batch than the last forward. */
    assert_int_equal(gb_model_forward(m, x, 4, y, &err), 0);
    assert_int_equal(gb_model_backward(m, dy, 3, dx, true, &err), GB_ESHAPE);
    s_assert_msg(&err, GB_ESHAPE, "backward of batch 3 does not match the last forward (batch 4)");
    assert_int_equal(gb_model_backward(m, dy, 4, dx, true, &err), 0);
    /* Again: backward may be repeated for the same forward. */
    assert_int_equal(gb_model_backward(m, dy, 4, dx, false, &err), 0);
    /* A train step counts as a forward of its batch. */
    assert_int_equal(gb_model_train_step(m, x, &t, 2, &loss, NULL, &err), 0);
    assert_int_equal(gb_model_backward(m, dy, 4, dx, true, &err), GB_ESHAPE);
    assert_int_equal(gb_model_backward(m, dy, 2, dx, true, &err), 0);
    /* Re-planning forgets the last forward. */
    assert_int_equal(gb_model_plan(m, 8, 1, &err), 0);
    assert_int_equal(gb_model_backward(m, dy, 2, dx, true, &err), GB_ESHAPE);

    /* Labels outside 0..classes-1. */
    labels[1] = 3;
    assert_int_equal(gb_model_train_step(m, x, &t, 2, &loss, NULL, &err), GB_ERANGE);
    s_assert_msg(&err, GB_ERANGE, "label 3 of sample 1 outside 0..2");
    labels[1] = -1;
    assert_int_equal(gb_model_train_step(m, x, &t, 2, &loss, NULL, &err), GB_ERANGE);
    gb_model_destroy(&m);
}

/* --------------------------------------------------------------- backward */

static void s_backward_accumulate_flag(int threads)
{
    gb_model_t *m = gb_test_model(s_all_layers, 5, threads, 3);
    const int B = 5;
    const size_t np = gb_model_param_count(m);
    float *x = s_random(B * gb_test_model_in_size(m), -1, 1, 1),
          *dy = s_random(B * gb_test_model_out_size(m), -1, 1, 2);
    float *y = malloc(B * gb_test_model_out_size(m) * sizeof *y);
    float *dx1 = malloc(B * gb_test_model_in_size(m) * sizeof *dx1),
          *dx2 = malloc(B * gb_test_model_in_size(m) * 4);
    float *sentinel = s_random(np, -5, 5, 4), *g1 = malloc(np * sizeof *g1);
    assert_true(y && dx1 && dx2 && g1);
    gb_error_t err = {0};
    assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);

    /* accumulate false: the gradient buffer is not touched at all. */
    memcpy(gb_model_grads(m), sentinel, np * sizeof *sentinel);
    assert_int_equal(gb_model_backward(m, dy, B, dx1, false, &err), 0);
    assert_memory_equal(gb_model_grads(m), sentinel, np * sizeof *sentinel);

    /* accumulate true: the same dx, and grads = sentinel + G. */
    memset(gb_model_grads(m), 0, np * sizeof(float));
    assert_int_equal(gb_model_backward(m, dy, B, dx2, true, &err), 0);
    assert_memory_equal(dx1, dx2, B * gb_test_model_in_size(m) * sizeof *dx1);
    memcpy(g1, gb_model_grads(m), np * sizeof *g1);
    double norm = 0.0;
    for (size_t i = 0; i < np; i++)
        norm += fabs(g1[i]);
    assert_true(norm > 0.1);
    memcpy(gb_model_grads(m), sentinel, np * sizeof *sentinel);
    assert_int_equal(gb_model_backward(m, dy, B, NULL, true, &err), 0);
    for (size_t i = 0; i < np; i++) {
        double want = (double)sentinel[i] + g1[i];
        if (!(fabs(gb_model_grads(m)[i] - want) <= 1e-6 * fmax(fabs(want), 1.0)))
            fail_msg("threads %d: grad[%zu] %.9g, want sentinel + G = %.9g", threads, i,
                     gb_model_grads(m)[i], want);
    }
    free(x);
    free(dy);
    free(y);
    free(dx1);
    free(dx2);
    free(sentinel);
    free(g1);
    gb_model_destroy(&m);
}

static void test_backward_accumulate_flag(void **state)
{
    (void)state;
    s_backward_accumulate_flag(1);
    s_backward_accumulate_flag(2);
}

/* train_step: zeroes the gradients first, reports the mean loss of its
 * logits, writes the logits, and leaves the same gradients as
 * forward + backward of the loss gradient. */
static void test_train_step(void **state)
{
    (void)state;
    const int B = 6;
    gb_model_t *m = gb_test_model(s_all_layers, B, 1, 5);
    const size_t np = gb_model_param_count(m), no = gb_test_model_out_size(m);
    float *x = s_random(B * gb_test_model_in_size(m), -1, 1, 1);
    float *logits = malloc(B * no * sizeof *logits), *y = malloc(B * no * sizeof *y);
    float *dl = malloc(B * no * sizeof *dl), *g = malloc(np * sizeof *g);
    float *sentinel = s_random(np, -5, 5, 4);
    assert_true(logits && y && dl && g);
    const int32_t labels[6] = {0, 1, 2, 2, 1, 0};
    gb_target_t t = {.kind = GB_LOSS_SOFTMAX_CE, .labels = labels};
    gb_error_t err = {0};

    memcpy(gb_model_grads(m), sentinel, np * sizeof *sentinel);
    double loss = NAN;
    assert_int_equal(gb_model_train_step(m, x, &t, B, &loss, logits, &err), 0);
    memcpy(g, gb_model_grads(m), np * sizeof *g);

    assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
    assert_memory_equal(y, logits, B * no * sizeof *y);
    double want = gb_loss_softmax_ce(y, labels, B, (int)no, 1.0f / B, dl) / B;
    assert_true(fabs(loss - want) <= 1e-12 * fabs(want));
    memset(gb_model_grads(m), 0, np * sizeof(float));
    assert_int_equal(gb_model_backward(m, dl, B, NULL, true, &err), 0);
    assert_memory_equal(gb_model_grads(m), g, np * sizeof *g);

    /* loss and logits may be NULL. */
    assert_int_equal(gb_model_train_step(m, x, &t, B, NULL, NULL, &err), 0);
    assert_memory_equal(gb_model_grads(m), g, np * sizeof *g);

    /* MSE targets. */
    float *values = s_random(B * no, -1, 1, 9);
    gb_target_t tm = {.kind = GB_LOSS_MSE, .values = values};
    assert_int_equal(gb_model_train_step(m, x, &tm, B, &loss, NULL, &err), 0);
    want = gb_loss_mse(y, values, B, (int)no, 1.0f / B, dl) / B;
    assert_true(fabs(loss - want) <= 1e-12 * fabs(want));
    memcpy(g, gb_model_grads(m), np * sizeof *g);
    memset(gb_model_grads(m), 0, np * sizeof(float));
    assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
    assert_int_equal(gb_model_backward(m, dl, B, NULL, true, &err), 0);
    assert_memory_equal(gb_model_grads(m), g, np * sizeof *g);

    free(values);
    free(x);
    free(logits);
    free(y);
    free(dl);
    free(g);
    free(sentinel);
    gb_model_destroy(&m);
}

/* ---------------------------------------------------- batch against single */

/* Largest |a - b| / max(|a|, |b|, floor) with floor = 10% of the largest
 * |b|: relative error, except that values far below the array's scale (where
 * float rounding of the larger terms dominates) are held to the scale. */
static double s_rel_diff(const float *a, const float *b, size_t n)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    return gb_test_max_rel_diff(a, b, n, 0.1 * scale);
}

/* A batch of 8 equals 8 single-sample runs: forward outputs, input
 * gradients and the summed parameter gradients agree to 1e-5 relative
 * (s_rel_diff). The two differ only in float rounding: sgemm sums in
 * another order for 8 rows than for 1. */
static void s_batch_vs_single(const char *name, const char *spec, int threads)
{
    const int B = 8;
    gb_model_t *m = gb_test_model(spec, B, threads, 11);
    const size_t ni = gb_test_model_in_size(m), no = gb_test_model_out_size(m),
                 np = gb_model_param_count(m);
    float *x = s_random(B * ni, -1, 1, 1), *dy = s_random(B * no, -1, 1, 2);
    float *yb = malloc(B * no * sizeof *yb), *ys = malloc(B * no * sizeof *ys);
    float *gb = malloc(np * sizeof *gb), *dxb = malloc(B * ni * 4), *dxs = malloc(B * ni * 4);
    assert_true(yb && ys && gb && dxb && dxs);
    gb_error_t err = {0};

    assert_int_equal(gb_model_forward(m, x, B, yb, &err), 0);
    memset(gb_model_grads(m), 0, np * sizeof(float));
    assert_int_equal(gb_model_backward(m, dy, B, dxb, true, &err), 0);
    memcpy(gb, gb_model_grads(m), np * sizeof *gb);

    memset(gb_model_grads(m), 0, np * sizeof(float));
    for (int i = 0; i < B; i++) {
        assert_int_equal(gb_model_forward(m, x + i * ni, 1, ys + i * no, &err), 0);
        assert_int_equal(gb_model_backward(m, dy + i * no, 1, dxs + i * ni, true, &err), 0);
    }
    double ry = s_rel_diff(yb, ys, B * no);
    double rx = s_rel_diff(dxb, dxs, B * ni);
    double rg = s_rel_diff(gb, gb_model_grads(m), np);
    print_message("%s, threads %d: outputs %.2g, dx %.2g, grads %.2g (tol 1e-5)\n", name,
                  threads, ry, rx, rg);
    assert_true(ry <= 1e-5);
    assert_true(rx <= 1e-5);
    assert_true(rg <= 1e-5);
    free(x);
    free(dy);
    free(yb);
    free(ys);
    free(gb);
    free(dxb);
    free(dxs);
    gb_model_destroy(&m);
}

static void test_batch_vs_single(void **state)
{
    (void)state;
    s_batch_vs_single("all layers", s_all_layers, 1);
    s_batch_vs_single("all layers", s_all_layers, 2);
    s_batch_vs_single("lenet", "lenet", 1);
    s_batch_vs_single("mlp", "mlp", 2);
}

/* ------------------------------------------------------------------ threads */

/* 1, 2 and 3 workers give the same forward (the split never mixes samples),
 * in evaluation and in training mode (dropout masks depend on the sample's
 * index in the batch, not on the worker), and the same gradients up to the
 * order in which the workers' sums are added. */
static void test_threads_same_results(void **state)
{
    (void)state;
    static const char spec[] = "input 2 8 8\nconv 3 3 pad 1\nrelu\nmaxpool 2\nflatten\n"
                               "dense 6\ndropout 0.5\ntanh\ndense 3\n";
    const int B = 7;
    gb_model_t *m[3];
    for (int k = 0; k < 3; k++)
        m[k] = gb_test_model(spec, B, k + 1, 21);
    assert_int_equal(gb_model_threads(m[2]), 3);
    const size_t ni = gb_test_model_in_size(m[0]), no = gb_test_model_out_size(m[0]),
                 np = gb_model_param_count(m[0]);
    float *x = s_random(B * ni, -1, 1, 1), *dy = s_random(B * no, -1, 1, 2);
    float *y[3], *g[3];
    gb_error_t err = {0};
    for (int train = 0; train <= 1; train++) {
        for (int k = 0; k < 3; k++) {
            y[k] = malloc(B * no * sizeof(float));
            assert_non_null(y[k]);
            gb_model_set_train(m[k], train, 99);
            assert_int_equal(gb_model_forward(m[k], x, B, y[k], &err), 0);
            memset(gb_model_grads(m[k]), 0, np * sizeof(float));
            assert_int_equal(gb_model_backward(m[k], dy, B, NULL, true, &err), 0);
            g[k] = gb_model_grads(m[k]);
        }
        for (int k = 1; k < 3; k++) {
            double ry = s_rel_diff(y[k], y[0], B * no);
            double rg = s_rel_diff(g[k], g[0], np);
            print_message("train %d, 1 vs %d threads: outputs %.2g, grads %.2g\n", train, k + 1,
                          ry, rg);
            /* OpenBLAS picks its kernel by the rows it is given, and each
             * worker gets fewer: some of its cores' kernels (the SSE3 one it
             * falls back to on an unknown CPU, which tests run on when
             * OPENBLAS_CORETYPE is unset) then sum in another order. */
            assert_true(ry <= 1e-5);
            assert_true(rg <= 1e-5);
        }
        for (int k = 0; k < 3; k++)
            free(y[k]);
    }
    /* Training mode does apply dropout: the outputs differ from evaluation. */
    float *ye = malloc(B * no * sizeof *ye), *yt = malloc(B * no * sizeof *yt);
    assert_true(ye && yt);
    gb_model_set_train(m[1], false, 0);
    assert_int_equal(gb_model_forward(m[1], x, B, ye, &err), 0);
    gb_model_set_train(m[1], true, 99);
    assert_int_equal(gb_model_forward(m[1], x, B, yt, &err), 0);
    assert_memory_not_equal(ye, yt, B * no * sizeof *ye);
    /* Same seed, same mask; another seed, another mask. */
    float *yt2 = malloc(B * no * sizeof *yt2);
    assert_non_null(yt2);
    assert_int_equal(gb_model_forward(m[1], x, B, yt2, &err), 0);
    assert_memory_equal(yt, yt2, B * no * sizeof *yt);
    gb_model_set_train(m[1], true, 100);
    assert_int_equal(gb_model_forward(m[1], x, B, yt2, &err), 0);
    assert_memory_not_equal(yt, yt2, B * no * sizeof *yt);
    free(ye);
    free(yt);
    free(yt2);
    free(x);
    free(dy);
    for (int k = 0; k < 3; k++)
        gb_model_destroy(&m[k]);
}

/* A batch smaller than the thread count leaves workers idle: still right. */
static void test_threads_small_batch(void **state)
{
    (void)state;
    gb_model_t *a = gb_test_model("mlp", 4, 1, 2), *b = gb_test_model("mlp", 4, 4, 2);
    const size_t np = gb_model_param_count(a);
    float *x = s_random(784, 0, 1, 1);
    int32_t label = 3;
    gb_target_t t = {.kind = GB_LOSS_SOFTMAX_CE, .labels = &label};
    gb_error_t err = {0};
    double la, lb;
    assert_int_equal(gb_model_train_step(a, x, &t, 1, &la, NULL, &err), 0);
    assert_int_equal(gb_model_train_step(b, x, &t, 1, &lb, NULL, &err), 0);
    assert_true(la == lb);
    assert_true(s_rel_diff(gb_model_grads(b), gb_model_grads(a), np) <= 1e-6);
    free(x);
    gb_model_destroy(&a);
    gb_model_destroy(&b);
}

/* ------------------------------------------------------- layer behaviours */

/* Max-pool: ties go to the first maximum of a window (so the gradient goes
 * there), and a NaN wins, as in PyTorch; the 2x2 stride-2 fast path and the
 * general path agree. */
static void test_maxpool_ties_and_nan(void **state)
{
    (void)state;
    static const char *const specs[2] = {"input 1 4 4\nmaxpool 2\n",
                                         "input 1 4 4\nmaxpool 3 stride 1\n"};
    for (int k = 0; k < 2; k++) {
        gb_model_t *m = gb_test_model(specs[k], 1, 1, 1);
        float x[16], y[4], dy[4] = {1, 1, 1, 1}, dx[16];
        for (int i = 0; i < 16; i++)
            x[i] = 0.5f;
        gb_error_t err = {0};
        assert_int_equal(gb_model_forward(m, x, 1, y, &err), 0);
        for (int i = 0; i < 4; i++)
            assert_true(y[i] == 0.5f);
        assert_int_equal(gb_model_backward(m, dy, 1, dx, true, &err), 0);
        /* First maximum = top-left of each window: (0,0) (0,2) (2,0) (2,2)
         * for 2x2 stride 2, (0,0) (0,1) (1,0) (1,1) for 3x3 stride 1. */
        for (int i = 0; i < 16; i++) {
            int r = i / 4, c = i % 4;
            bool first = k == 0 ? (r % 2 == 0 && c % 2 == 0) : (r < 2 && c < 2);
            assert_true(dx[i] == (first ? 1.0f : 0.0f));
        }
        /* A NaN in the window shared by all outputs (x[5] = (1,1)) wins. */
        x[5] = NAN;
        x[6] = 9.0f;
        assert_int_equal(gb_model_forward(m, x, 1, y, &err), 0);
        assert_true(isnan(y[0]));
        gb_model_destroy(&m);
    }
}

/* Two dropout layers draw different masks: with p = 0.5 each, 3/4 of the
 * outputs are dropped (the same mask twice would drop 1/2). */
static void test_dropout_layers_independent(void **state)
{
    (void)state;
    gb_model_t *m = gb_test_model("input 4000\ndropout 0.5\ndropout 0.5\n", 2, 1, 1);
    float *x = s_random(8000, 1, 2, 1), *y = malloc(8000 * sizeof *y);
    assert_non_null(y);
    gb_error_t err = {0};
    gb_model_set_train(m, true, 5);
    assert_int_equal(gb_model_forward(m, x, 2, y, &err), 0);
    int zeros = 0;
    for (int i = 0; i < 8000; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_true(y[i] == x[i] * 4.0f);
    }
    /* Binomial(8000, 0.75): sd 39; 6 sd. */
    assert_in_range(zeros, 6000 - 235, 6000 + 235);
    free(x);
    free(y);
    gb_model_destroy(&m);
}

/* ------------------------------------------------------- allocation failure */

/* Fails the k-th allocation of gb_model_new for k = 1, 2, ... until it
 * succeeds: every failing call returns NULL with GB_ENOMEM and frees what it
 * had (LeakSanitizer checks at exit). */
static void test_alloc_failure_new(void **state)
{
    (void)state;
    static const char *const specs[] = {"lenet", s_all_layers};
    for (size_t s = 0; s < 2; s++) {
        long k;
        gb_model_t *m = NULL;
        for (k = 1; k < 1000; k++) {
            gb_error_t err = {0};
            gb_alloc_fail_after(k);
            m = gb_model_new(specs[s], &err);
            gb_alloc_fail_after(0);
            if (m)
                break;
            assert_int_equal(err.code, GB_ENOMEM);
            assert_true(strlen(err.msg) > 0);
        }
        assert_non_null(m);
        /* Every allocation point was hit: the successful run made k - 1. */
        gb_alloc_fail_after(0);
        gb_error_t err = {0};
        gb_model_t *again = gb_model_new(specs[s], &err);
        assert_int_equal(gb_alloc_fail_after(0), k - 1);
        assert_true(k > 5);
        gb_model_destroy(&again);
        gb_model_destroy(&m);
    }
}

/* The same for gb_model_plan, with one thread and with a pool of three. A
 * failed plan leaves the model unplanned, and a later plan works. */
static void test_alloc_failure_plan(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads += 2) {
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new(s_all_layers, &err);
        assert_non_null(m);
        gb_model_init(m, 1);
        long k;
        int rc = -1;
        for (k = 1; k < 1000; k++) {
            gb_alloc_fail_after(k);
            rc = gb_model_plan(m, 6, threads, &err);
            gb_alloc_fail_after(0);
            if (rc == 0)
                break;
            assert_int_equal(rc, GB_ENOMEM);
            assert_int_equal(err.code, GB_ENOMEM);
            assert_int_equal(gb_model_max_batch(m), 0);
            float x[128] = {0}, y[3];
            assert_int_equal(gb_model_forward(m, x, 1, y, &err), GB_EINVAL);
        }
        assert_int_equal(rc, 0);
        assert_true(k > 5);
        float *x = s_random(6 * 128, -1, 1, 1), y[6 * 3];
        assert_int_equal(gb_model_forward(m, x, 6, y, &err), 0);
        free(x);
        gb_model_destroy(&m);
    }
}

/* ---------------------------------------------------------------- capture */

/* gb_model_capture copies a layer's output on forward and the gradient
 * arriving at it on backward, on 1 and 2 threads: the conv output equals a
 * conv-only model with the same weights, and the gradient arriving at the
 * flattened maps is dout . W of the dense layer. */
static void test_capture(void **state)
{
    (void)state;
    const int B = 5;
    for (int threads = 1; threads <= 2; threads++) {
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new("input 1 6 6\nconv 2 3\nrelu\nflatten\ndense 3\n", &err);
        gb_model_t *conv = gb_model_new("input 1 6 6\nconv 2 3\n", &err);
        assert_non_null(m);
        assert_non_null(conv);
        gb_model_init(m, 3);
        memcpy(gb_model_params(conv), gb_model_params(m), 2 * 9 * sizeof(float) + 2 * sizeof(float));
        assert_int_equal(gb_model_plan(m, B, threads, &err), 0);
        assert_int_equal(gb_model_plan(conv, B, 1, &err), 0);
        gb_shape_t s = gb_model_layer_output_shape(m, 0);
        assert_int_equal(gb_shape_size(&s), 2 * 4 * 4);
        assert_int_equal(gb_model_layer_output_shape(m, 9).rank, 0);
        float x[5 * 36], maps[5 * 32], want[5 * 32], flat_grad[5 * 32], out[5 * 3], dout[5 * 3];
        for (int i = 0; i < B * 36; i++)
            x[i] = (float)((i * 7) % 11) / 11.0f - 0.4f;
        for (int i = 0; i < B * 3; i++)
            dout[i] = (float)(i % 4) - 1.5f;
        assert_int_equal(gb_model_capture(m, 0, maps, NULL, &err), 0);
        assert_int_equal(gb_model_forward(m, x, B, out, &err), 0);
        assert_int_equal(gb_model_forward(conv, x, B, want, &err), 0);
        assert_memory_equal(maps, want, sizeof maps);
        /* The gradient arriving at flatten's output: dout . W (3 x 32). */
        assert_int_equal(gb_model_capture(m, 2, NULL, flat_grad, &err), 0);
        assert_int_equal(gb_model_backward(m, dout, B, NULL, false, &err), 0);
        const float *W = gb_model_params(m) + 20;
        for (int b = 0; b < B; b++)
            for (int k = 0; k < 32; k++) {
                double g = 0.0;
                for (int o = 0; o < 3; o++)
                    g += (double)dout[b * 3 + o] * W[o * 32 + k];
                assert_true(fabs(flat_grad[b * 32 + k] - g) <= 1e-5 * fmax(1.0, fabs(g)));
            }
        assert_int_equal(gb_model_capture(m, -1, NULL, NULL, &err), 0);
        assert_int_equal(gb_model_capture(m, 7, maps, NULL, &err), GB_EINVAL);
        gb_model_destroy(&m);
        gb_model_destroy(&conv);
    }
    /* lenet's relu after conv runs after the pool: not capturable. */
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lenet", &err);
    float buf[1];
    assert_int_equal(gb_model_capture(m, 1, buf, NULL, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "reordered"));
    assert_int_equal(gb_model_capture(m, 3, buf, NULL, &err), 0);
    gb_model_destroy(&m);
}

/* gb_model_forward_layers / backward_layers: running the layers in pieces
 * gives the whole pass bit for bit (outputs, input gradients, parameter
 * gradients) on every layer kind, at every boundary that is a spec position,
 * on one and two threads; the errors name bad ranges, a boundary inside
 * lenet's reordered relu/max-pool pair, and a backward whose range is not the
 * last forward's. */
static void test_layer_ranges(void **state)
{
    (void)state;
    const int B = 5;
    for (int threads = 1; threads <= 2; threads++) {
        gb_model_t *m = gb_test_model(s_all_layers, B, threads, 21);
        const int n = gb_model_layer_count(m);
        const size_t ni = gb_test_model_in_size(m), no = gb_test_model_out_size(m),
                     np = gb_model_param_count(m);
        float *x = s_random(B * ni, -1, 1, 22), *dy = s_random(B * no, -1, 1, 23);
        float *y = malloc(B * no * sizeof *y), *dx = malloc(B * ni * sizeof *dx);
        float *g = malloc(np * sizeof *g), *y2 = malloc(B * no * sizeof *y2);
        float *dx2 = malloc(B * ni * sizeof *dx2);
        assert_true(y && dx && g && y2 && dx2);
        gb_error_t err = {0};
        memset(gb_model_grads(m), 0, np * sizeof(float));
        assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
        assert_int_equal(gb_model_backward(m, dy, B, dx, true, &err), 0);
        memcpy(g, gb_model_grads(m), np * sizeof *g);
        /* conv 3 3 pad 1 / relu / maxpool 2 runs as conv / maxpool / relu:
         * boundary 2 is not a spec position. */
        for (int k = 1; k < n; k++) {
            /* Room for any boundary: the largest activation is conv's 3x8x8
             * (layer_output_shape has none for the reordered pair). */
            const size_t hn = 3 * 8 * 8;
            if (k == 2) {
                assert_int_equal(gb_model_forward_layers(m, 0, k, x, B, NULL, &err), GB_EINVAL);
                s_assert_msg(&err, GB_EINVAL, "reordered");
                assert_int_equal(gb_model_forward_layers(m, k, n, x, B, NULL, &err), GB_EINVAL);
                continue;
            }
            float *h = malloc(B * hn * sizeof *h), *dh = malloc(B * hn * sizeof *dh);
            assert_true(h && dh);
            memset(gb_model_grads(m), 0, np * sizeof(float));
            assert_int_equal(gb_model_forward_layers(m, 0, k, x, B, h, &err), 0);
            assert_int_equal(gb_model_forward_layers(m, k, n, h, B, y2, &err), 0);
            assert_memory_equal(y, y2, B * no * sizeof *y);
            assert_int_equal(gb_model_backward_layers(m, k, n, dy, B, dh, true, &err), 0);
            /* The backward follows the last forward's range. */
            assert_int_equal(gb_model_backward_layers(m, 0, k, dh, B, dx2, true, &err), GB_ESHAPE);
            s_assert_msg(&err, GB_ESHAPE, "does not match the last forward (layers [");
            assert_int_equal(gb_model_backward(m, dy, B, dx2, true, &err), GB_ESHAPE);
            assert_int_equal(gb_model_forward_layers(m, 0, k, x, B, NULL, &err), 0);
            assert_int_equal(gb_model_backward_layers(m, 0, k, dh, B, dx2, true, &err), 0);
            assert_memory_equal(dx, dx2, B * ni * sizeof *dx);
            if (memcmp(g, gb_model_grads(m), np * sizeof *g) != 0)
                fail_msg("%d thread(s), boundary %d: parameter gradients differ", threads, k);
            free(h);
            free(dh);
        }
        assert_int_equal(gb_model_forward_layers(m, 0, 0, x, B, NULL, &err), GB_EINVAL);
        s_assert_msg(&err, GB_EINVAL, "empty");
        assert_int_equal(gb_model_forward_layers(m, -1, 2, x, B, NULL, &err), GB_EINVAL);
        assert_int_equal(gb_model_forward_layers(m, 0, n + 1, x, B, NULL, &err), GB_EINVAL);
        assert_int_equal(gb_model_backward_layers(m, 3, 1, dy, B, NULL, false, &err), GB_EINVAL);
        assert_int_equal(gb_model_forward_layers(m, 0, n, x, B + 1, NULL, &err), GB_ESHAPE);
        /* The whole range is gb_model_forward. */
        assert_int_equal(gb_model_forward_layers(m, 0, n, x, B, y2, &err), 0);
        assert_memory_equal(y, y2, B * no * sizeof *y);
        assert_int_equal(gb_model_backward(m, dy, B, dx2, false, &err), 0);
        assert_memory_equal(dx, dx2, B * ni * sizeof *dx);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(g);
        free(y2);
        free(dx2);
        gb_model_destroy(&m);
    }
}

/* A failed re-plan leaves the earlier plan working; a plan bigger than half
 * the machine is refused before anything is allocated. */
static void test_plan_failure_keeps_old_plan(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("input 6\ndense 4\n", &err);
    assert_non_null(m);
    gb_model_init(m, 1);
    assert_int_equal(gb_model_plan(m, 8, 2, &err), 0);
    gb_alloc_fail_after(2);
    assert_int_equal(gb_model_plan(m, 64, 2, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_int_equal(gb_model_max_batch(m), 8);
    assert_int_equal(gb_model_threads(m), 2);
    float x[8 * 6] = {0}, y[8 * 4];
    assert_int_equal(gb_model_forward(m, x, 8, y, &err), 0);
    gb_model_destroy(&m);

    /* 2578 parameters, but a 0.96 GiB conv output per sample. */
    m = gb_model_new("input 1 28 28\nconv 4 1 pad 4000\nmaxpool 1000\nflatten\ndense 10\n", &err);
    assert_non_null(m);
    gb_error_clear(&err);
    assert_int_equal(gb_model_plan(m, 64, 8, &err), GB_ENOMEM);
    assert_non_null(strstr(err.msg, "more than half of this machine's memory"));
    gb_model_destroy(&m);
}

/* ------------------------------------------------------------ size limits */

/* The engine runs "relu, maxpool" as "maxpool, relu" (same outputs and
 * gradients, a quarter of the relu work); gb_model_layer_info still numbers
 * and names layers as the spec does. */
static void test_layer_info_kinds_follow_spec(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lenet", &err);
    assert_non_null(m);
    const gb_spec_t *spec = gb_model_spec(m);
    char msg[128] = "";
    for (int i = 0; i < gb_model_layer_count(m) && !msg[0]; i++) {
        gb_layer_kind_t kind;
        assert_int_equal(gb_model_layer_info(m, i, &kind, NULL, NULL), 0);
        if (kind != spec->layers[i].kind)
            snprintf(msg, sizeof msg, "layer %d (spec line %d): layer_info says %s, the spec %s",
                     i, spec->layers[i].line, gb_layer_kind_name(kind),
                     gb_layer_kind_name(spec->layers[i].kind));
    }
    gb_model_destroy(&m);
    if (msg[0])
        fail_msg("%s", msg);
}

/* Kernel and padding each within the parser's limits must not overflow the
 * conv's sizes: such specs are refused with GB_ESHAPE naming the line. */
static void test_conv_size_overflow_refused(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "input 1 1 1\nconv 1 65536 pad 65535\n",
        "input 4 1 1\nconv 1 32768 pad 32767\n",
        "input 1 1 1\nconv 1 46341 pad 46340\n",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new(specs[i], &err);
        if (m) {
            gb_shape_t o = gb_model_output_shape(m);
            size_t np = gb_model_param_count(m);
            gb_model_destroy(&m);
            fail_msg("%s: accepted, %zu parameters, output %dx%dx%d", specs[i], np, o.dim[0],
                     o.dim[1], o.dim[2]);
        }
        s_assert_msg(&err, GB_ESHAPE, "spec line 2");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_accessors),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_count_params),
        cmocka_unit_test(test_layer_info),
        cmocka_unit_test(test_flops),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_layer_helpers),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_call_order_errors),
        cmocka_unit_test(test_backward_accumulate_flag),
        cmocka_unit_test(test_train_step),
        cmocka_unit_test(test_batch_vs_single),
        cmocka_unit_test(test_threads_same_results),
        cmocka_unit_test(test_threads_small_batch),
        cmocka_unit_test(test_maxpool_ties_and_nan),
        cmocka_unit_test(test_dropout_layers_independent),
        cmocka_unit_test(test_alloc_failure_new),
        cmocka_unit_test(test_alloc_failure_plan),
        cmocka_unit_test(test_layer_info_kinds_follow_spec),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_forward_layers_fill),
        cmocka_unit_test(test_backward_layers_drain),
        cmocka_unit_test(test_layer_ranges),
        cmocka_unit_test(test_plan_failure_keeps_old_plan),
        cmocka_unit_test(test_conv_size_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
