/* Private to the engine: the layers' hand-written vector kernels, one file
 * per instruction set (simd_avx512.c, simd_avx2.c), chosen per call by
 * engine/kernels.h. Each computes what the plain loops and cblas_sgemm
 * compute (in float rounding); tests/engine/test_simd.c checks each against
 * a naive loop on edge shapes, and test_conv2d.c and test_rnn.c check the
 * layers on every path.
 *
 * All functions only read their inputs and write their output; nothing is
 * allocated. Only x86-64 builds have them (GB_SIMD_KERNELS). */
#ifndef GB_ENGINE_SIMD_KERNELS_H
#define GB_ENGINE_SIMD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define GB_SIMD_KERNELS 1
#else
#define GB_SIMD_KERNELS 0
#endif

/* Largest kernel the vector col2im takes (it keeps one mask per column). */
#define GB_CONV_COL2IM_MAX_K 64

/* One conv layer's shapes. */
typedef struct {
    int C, H, W;       /* input */
    int OC, OH, OW, P; /* output */
    int K, S, PAD;     /* kernel, stride, padding */
    int KK;            /* C * K * K */
} gb_conv_dims_t;

#if GB_SIMD_KERNELS
/* cols[KK x B*P] from B images x (NCHW), stride 1 only: row (c, ki, kj),
 * column n*P + oh*OW + ow, zeros where the kernel reaches the padding. */
void gb_conv_im2col_s1_avx512(const gb_conv_dims_t *d, int B, const float *x, float *cols);
void gb_conv_im2col_s1_avx2(const gb_conv_dims_t *d, int B, const float *x, float *cols);

/* y (B images, NCHW, overwritten) = bias + the convolution of x with w
 * (W[OC][C][K][K]), stride 1 and no padding only, without unrolling the
 * input: each output vector's terms come straight from the input rows. The
 * terms in (c, ki, kj) order, each one FMA, after the bias (or, bias_last,
 * the bias added at the end): the same bits as conv2d's im2col GEMM. */
void gb_conv_direct_s1_avx2(const gb_conv_dims_t *d, int B, const float *x, const float *w,
                            const float *bias, int bias_last, float *y);

/* dx (B images, overwritten) = the scatter-add of dcols, stride 1 and
 * K <= GB_CONV_COL2IM_MAX_K only; each input pixel's terms are added in
 * (ki, kj) order, as the plain loops do. */
void gb_conv_col2im_s1_avx512(const gb_conv_dims_t *d, int B, const float *dcols, float *dx);
void gb_conv_col2im_s1_avx2(const gb_conv_dims_t *d, int B, const float *dcols, float *dx);

/* Max pooling over 2 x 2 windows with stride 2 (pool2d.c's contract):
 * planes planes of H x W (H, W >= 2) to OH = (H - 2)/2 + 1 rows of
 * OW = (W - 2)/2 + 1; y[k] the window's maximum and arg[k] its index in the
 * plane, in the order top-left, top-right, bottom-left, bottom-right, a
 * later value taken when it is greater or NaN (so the first maximum wins a
 * tie and the last NaN wins outright). The windows of a row go 16 (8) to a
 * vector, deinterleaved from two loads of each input row. */
void gb_maxpool2x2_avx512(size_t planes, int H, int W, const float *x, float *y, int32_t *arg);
void gb_maxpool2x2_avx2(size_t planes, int H, int W, const float *x, float *y, int32_t *arg);

/* C[M x N] (+)= A . B with B row-major (rows at b + k * ldb) and C rows at
 * c + r * ldc; A(r, k) = a[r * ars + k * acs], so a matrix and its
 * transpose are both read in place. accumulate: add to C, else overwrite.
 * Each C element's terms are one FMA each, in k order. */
void gb_simd_gemm_avx512(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                         const float *b, size_t ldb, float *c, size_t ldc, int accumulate);
void gb_simd_gemm_avx2(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                       const float *b, size_t ldb, float *c, size_t ldc, int accumulate);

/* C[M x N] += A . B^T (gb_simd_gemm_nt_avx2's contract), each element's
 * terms summed in 16 interleaved partial sums, then added to C. */
void gb_simd_gemm_nt_avx512(int M, int N, int K, const float *a, size_t lda, const float *b,
                            size_t ldb, float *c, size_t ldc);

/* The LSTM's fused step (gb_lstm_step_forward's contract, activations.h):
 * wp packed by gb_lstm_pack. */
void gb_simd_lstm_step_avx512(const float *wp, const float *z, const float *c_prev, float *z_next,
                              float *gates, float *c, float *h, float *tanh_c, int B, int F,
                              int H, int first);

/* dh[B x H] = dG[B x 4H] . W_hh[4H x H] (both row-major). */
void gb_simd_lstm_dh_avx512(const float *dg, const float *Whh, float *dh, int B, int H);

/* CT[K x M4] += Z^T[K x TB] . dG[TB x M4]: Z (TB x K) and dG (TB x M4)
 * row-major. */
void gb_simd_lstm_dw_avx512(const float *dG, const float *Z, float *CT, size_t TB, int K,
                            int M4);

/* C[M x N] += A . B^T with A (M x K) and B (N x K) both row-major: the
 * weight gradient dW += dY' . cols^T, whose operands are read along their
 * contiguous rows. Each element's terms are summed in 8 interleaved partial
 * sums, then added to C. */
void gb_simd_gemm_nt_avx2(int M, int N, int K, const float *a, size_t lda, const float *b,
                          size_t ldb, float *c, size_t ldc);
#endif

#endif
