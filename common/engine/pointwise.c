/* Element-wise activation layers (relu, tanh, sigmoid) and flatten. They keep
 * no cache: each derivative is a function of the saved output y. */
#include "engine/activations.h"
#include "engine/layer.h"

#include <string.h>

static int s_plan_same(gb_layer_t *l, gb_error_t *err)
{
    (void)err;
    l->out = l->in;
    l->param_len = 0;
    l->cache_per_sample = 0;
    return 0;
}

static size_t s_count(const gb_layer_t *l, const gb_pass_t *pass)
{
    return (size_t)pass->batch * gb_shape_size(&l->in);
}

static void s_relu_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                           const float *x, float *y)
{
    (void)cache;
    gb_vec_relu(x, y, s_count(l, pass));
}

static void s_relu_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                            const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)x;
    if (!dx)
        return;
    gb_vec_relu_backward(y, dy, dx, s_count(l, pass));
}

static void s_tanh_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                           const float *x, float *y)
{
    (void)cache;
    gb_vec_tanh(x, y, s_count(l, pass));
}

static void s_tanh_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                            const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)x;
    if (!dx)
        return;
    gb_vec_tanh_backward(y, dy, dx, s_count(l, pass));
}

static void s_sigmoid_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                              const float *x, float *y)
{
    (void)cache;
    gb_vec_sigmoid(x, y, s_count(l, pass));
}

static void s_sigmoid_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                               const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)x;
    if (!dx)
        return;
    gb_vec_sigmoid_backward(y, dy, dx, s_count(l, pass));
}

static int s_flatten_plan(gb_layer_t *l, gb_error_t *err)
{
    (void)err;
    l->out.rank = 1;
    l->out.dim[0] = (int)gb_shape_size(&l->in);
    l->out.dim[1] = l->out.dim[2] = 1;
    l->param_len = 0;
    l->cache_per_sample = 0;
    return 0;
}

static void s_copy_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                           const float *x, float *y)
{
    (void)cache;
    memcpy(y, x, s_count(l, pass) * sizeof(float));
}

static void s_copy_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                            const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)x;
    (void)y;
    if (dx)
        memcpy(dx, dy, s_count(l, pass) * sizeof(float));
}

const gb_layer_ops_t gb_relu_ops = {
    .plan = s_plan_same, .forward = s_relu_forward, .backward = s_relu_backward};
const gb_layer_ops_t gb_tanh_ops = {
    .plan = s_plan_same, .forward = s_tanh_forward, .backward = s_tanh_backward};
const gb_layer_ops_t gb_sigmoid_ops = {
    .plan = s_plan_same, .forward = s_sigmoid_forward, .backward = s_sigmoid_backward};
const gb_layer_ops_t gb_flatten_ops = {
    .plan = s_flatten_plan, .forward = s_copy_forward, .backward = s_copy_backward};
