/* Element-wise transcendental kernels over contiguous float arrays, in one
 * file so that their speed and accuracy are decided (and tested) in one
 * place. They are written as plain loops that vectorise at -O3 without
 * -ffast-math: exp by range reduction (x = k ln2 + r) and a degree-6
 * polynomial on r, built with exact power-of-two scaling. */
#ifndef GB_ENGINE_ACTIVATIONS_H
#define GB_ENGINE_ACTIVATIONS_H

#include <stddef.h>

/* y[i] = exp(x[i]): +Inf above 88.72, 0 below -103.97 (as float's exp), and
 * NaN for NaN. */
void gb_vec_exp(const float *x, float *y, size_t n);

/* y[i] = 1 / (1 + exp(-x[i])), saturating cleanly at 0 and 1. */
void gb_vec_sigmoid(const float *x, float *y, size_t n);

/* y[i] = tanh(x[i]), saturating at +-1. */
void gb_vec_tanh(const float *x, float *y, size_t n);

/* y[i] = max(x[i], 0); NaN stays NaN. */
void gb_vec_relu(const float *x, float *y, size_t n);

/* dx[i] = y[i] > 0 ? dy[i] : 0 (ReLU's backward from its output). */
void gb_vec_relu_backward(const float *y, const float *dy, float *dx, size_t n);

/* dx[i] = dy[i] * (1 - y[i]^2) (tanh's backward from its output). */
void gb_vec_tanh_backward(const float *y, const float *dy, float *dx, size_t n);

/* dx[i] = dy[i] * y[i] * (1 - y[i]) (sigmoid's backward from its output). */
void gb_vec_sigmoid_backward(const float *y, const float *dy, float *dx, size_t n);

#endif
