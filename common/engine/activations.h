/* Element-wise transcendental kernels over contiguous float arrays, and the
 * recurrent cells built on them, in one file so that their speed and
 * accuracy are decided (and tested) in one place. They are written as plain
 * loops that vectorise at -O3 without -ffast-math: exp by range reduction
 * (x = k ln2 + r) and a degree-6 polynomial on r with exact power-of-two
 * scaling; tanh as a clamped rational function (one division, no exp);
 * sigmoid(x) = (1 + tanh(x/2)) / 2. */
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

/* One LSTM step for B rows of H units. gates (B x 4H, blocks i f g o) holds
 * the pre-activations without bias on entry and the activated gates on
 * return; bias (4H) is added to every row (b_ih + b_hh); c_prev (B x H) is
 * the previous cell state; c, h and tanh_c (B x H) receive the new cell
 * state, hidden state and tanh(c). */
void gb_lstm_cell_forward(float *gates, const float *bias, const float *c_prev, float *c, float *h,
                          float *tanh_c, int B, int H);

/* The matching backward step: from the activated gates, c_prev, tanh_c and
 * dh (B x H, the total gradient reaching h), with dc holding the gradient
 * reaching c from the next step on entry and the gradient for c_prev on
 * return; dgates (B x 4H) receives the pre-activation gradients. */
void gb_lstm_cell_backward(const float *gates, const float *c_prev, const float *tanh_c,
                           const float *dh, float *dc, float *dgates, int B, int H);

/* The fused LSTM step: 1 when the engine's kernel path is AVX-512
 * (engine/kernels.h); otherwise callers take the sgemm path (sgemm +
 * gb_lstm_cell_forward) and must not call gb_lstm_step_forward. */
int gb_lstm_fast(void);

/* Floats of the packed weights for F inputs and H units. */
size_t gb_lstm_pack_floats(int F, int H);

/* Packs PyTorch's W_ih (4H x F), W_hh (4H x H), b_ih and b_hh (4H) into wp
 * (gb_lstm_pack_floats(F, H) floats) for gb_lstm_step_forward: per block of
 * 16 units, the summed bias and then for k < F + H the 4 x 16 gate weights of
 * input k (zeros for units past H). */
void gb_lstm_pack(const float *Wih, const float *Whh, const float *bih, const float *bhh, int F,
                  int H, float *wp);

/* One whole LSTM step for B rows, only when gb_lstm_fast(): z (B x K, K =
 * F + H) holds each row's [x_t, h_{t-1}]; with `first` h_{t-1} = 0 and z's
 * h part is not read. Computes the gates from bias + z . W^T (wp packed by
 * gb_lstm_pack), stores the activated gates (B x 4H, i f g o), c, h and
 * tanh(c) (B x H) from c_prev (B x H), and when z_next is not NULL also h
 * into the h part of z_next (B x K), the next step's input rows. */
void gb_lstm_step_forward(const float *wp, const float *z, const float *c_prev, float *z_next,
                          float *gates, float *c, float *h, float *tanh_c, int B, int F, int H,
                          int first);

/* One GRU step (PyTorch's: n = tanh(x_n + r * (W_hn h + b_hn))). gx and gh
 * (B x 3H, blocks r z n) are the input and hidden projections with their
 * biases; gates (B x 3H) receives r, z, n; hn (B x H) a copy of gh's n block
 * (kept for backward); h (B x H) the new hidden state. */
void gb_gru_cell_forward(const float *gx, const float *gh, const float *h_prev, float *gates,
                         float *hn, float *h, int B, int H);

/* The matching backward step: dgx and dgh (B x 3H) receive the gradients of
 * the input and hidden projections, dh_prev (B x H) the part of h_prev's
 * gradient that does not pass through W_hh (dh * z). */
void gb_gru_cell_backward(const float *gates, const float *hn, const float *h_prev,
                          const float *dh, float *dgx, float *dgh, float *dh_prev, int B, int H);

#endif
