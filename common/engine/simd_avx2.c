/* conv2d's AVX2 and FMA kernels (see simd_kernels.h), for CPUs without
 * AVX-512 (AMD Zen 2 and 3, Intel before Skylake-SP): the same three jobs as
 * simd_avx512.c with 8-float vectors.
 *
 * AVX2 has no mask registers: a mask is an __m256i whose lanes are all ones
 * or all zeros, and vmaskmovps neither reads nor faults on the lanes it
 * leaves out, so padding and row ends still cost no branch per pixel.
 * The GEMM's tile is 4 rows x 24 columns: 12 accumulators, 3 vectors of B
 * and a broadcast of A fill the 16 ymm registers. Four rows divide every
 * conv's M here (output channels, or C*K*K for dcols) where BLIS's 6 x 16
 * left a slow edge tile in a third of LeNet's first layer; narrower full
 * tiles (8 or 16 columns) take the same kernel with constant widths. OpenBLAS computes these small products at much the same
 * FLOP rate but spends a third of its time packing A and B first; this
 * kernel reads both in place. */
#include "engine/simd_kernels.h"

#if GB_SIMD_KERNELS
#include <immintrin.h>
#include <stdint.h>

#define S_AVX2 __attribute__((target("avx2,fma")))

/* Lanes [lo, hi) of 8 as a vmaskmovps mask; empty when hi <= lo. */
S_AVX2 static inline __m256i s_lanes(int lo, int hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i ge_lo = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1));
    __m256i lt_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx);
    return _mm256_and_si256(ge_lo, lt_hi);
}

S_AVX2 static inline int s_any(__m256i m)
{
    return !_mm256_testz_si256(m, m);
}

/* Stores the first `valid` lanes of v at p; a whole vector when `room`
 * (floats writable from p on, written again later by the caller) allows,
 * since a plain store is cheaper than a masked one. */
S_AVX2 static inline void s_store(float *p, __m256 v, int valid, ptrdiff_t room)
{
    if (room >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, s_lanes(0, valid), v);
}

/* out[ow] = src[ow - PAD + kj] where that lies in the row, else 0, 8
 * columns per masked load. When a row is one chunk the rows of an image are
 * written in order, so a whole-vector store may spill into the next row's
 * place before that row is written. */
S_AVX2 void gb_conv_im2col_s1_avx2(const gb_conv_dims_t *d, int B, const float *x, float *cols)
{
    const int C = d->C, H = d->H, W = d->W, K = d->K, PAD = d->PAD;
    const int OH = d->OH, OW = d->OW, P = d->P;
    const size_t N = (size_t)B * P;
    const size_t img = (size_t)C * H * W;
    for (int c = 0; c < C; c++) {
        for (int ki = 0; ki < K; ki++) {
            for (int kj = 0; kj < K; kj++) {
                float *row = cols + ((size_t)(c * K + ki) * K + kj) * N;
                const int shift = kj - PAD; /* input column of ow = 0 */
                for (int ow0 = 0; ow0 < OW; ow0 += 8) {
                    const int valid = OW - ow0 < 8 ? OW - ow0 : 8;
                    const __m256i load = _mm256_and_si256(
                        s_lanes(-shift - ow0, W - shift - ow0), s_lanes(0, valid));
                    const int any = s_any(load);
                    for (int n = 0; n < B; n++) {
                        const float *plane = x + n * img + (size_t)c * H * W;
                        float *out = row + (size_t)n * P;
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh - PAD + ki;
                            float *o = out + (size_t)oh * OW + ow0;
                            __m256 v = _mm256_setzero_ps();
                            if ((unsigned)ih < (unsigned)H && any)
                                v = _mm256_maskload_ps(plane + (size_t)ih * W + shift + ow0, load);
                            /* With several chunks per row, the next row's
                             * first chunk is already written. */
                            s_store(o, v, valid, OW <= 8 ? out + P - o : valid);
                        }
                    }
                }
            }
        }
    }
}

/* acc + the terms of kernel row ki reaching one input row: dcols rows
 * (c, ki, kj) at output row o (none when o is outside 0..OH-1), each kj's
 * columns under its mask. g points at row (c, ki, 0) + iw0 + PAD. */
S_AVX2 static inline __attribute__((always_inline)) __m256
s_col2im_row(__m256 acc, const float *g, int o, int OH, int OW, int K, size_t N,
             const __m256i *masks, const char *any)
{
    if ((unsigned)o >= (unsigned)OH)
        return acc;
    g += (size_t)o * OW;
    for (int kj = 0; kj < K; kj++, g += N - 1)
        if (any[kj])
            acc = _mm256_add_ps(acc, _mm256_maskload_ps(g, masks[kj]));
    return acc;
}

/* Input row ih of channel c, 8 columns at a time, is the sum over ki and kj
 * of dcols row (c, ki, kj) at output row ih + PAD - ki and columns
 * iw + PAD - kj, added in (ki, kj) order in a register and stored once; four
 * rows side by side give four independent chains of adds. */
S_AVX2 void gb_conv_col2im_s1_avx2(const gb_conv_dims_t *d, int B, const float *dcols, float *dx)
{
    const int C = d->C, H = d->H, W = d->W, K = d->K, PAD = d->PAD;
    const int OH = d->OH, OW = d->OW, P = d->P;
    const size_t N = (size_t)B * P;
    const size_t img = (size_t)C * H * W;
    __m256i masks[GB_CONV_COL2IM_MAX_K];
    char any[GB_CONV_COL2IM_MAX_K];
    for (int n = 0; n < B; n++) {
        for (int c = 0; c < C; c++) {
            float *plane = dx + n * img + (size_t)c * H * W;
            float *plane_end = plane + (size_t)H * W;
            const float *crows = dcols + (size_t)c * K * K * N + (size_t)n * P;
            for (int iw0 = 0; iw0 < W; iw0 += 8) {
                const int valid = W - iw0 < 8 ? W - iw0 : 8;
                /* ow of lane 0 is iw0 + PAD - kj */
                for (int kj = 0; kj < K; kj++) {
                    masks[kj] = _mm256_and_si256(
                        s_lanes(kj - PAD - iw0, OW + kj - PAD - iw0), s_lanes(0, valid));
                    any[kj] = (char)s_any(masks[kj]);
                }
                for (int ih0 = 0; ih0 < H; ih0 += 4) {
                    /* Rows past H get an output row no ki reaches. */
                    const int o0 = ih0 + PAD, o1 = ih0 + 1 < H ? o0 + 1 : -1 - K;
                    const int o2 = ih0 + 2 < H ? o0 + 2 : -1 - K;
                    const int o3 = ih0 + 3 < H ? o0 + 3 : -1 - K;
                    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(),
                                     _mm256_setzero_ps(), _mm256_setzero_ps()};
                    for (int ki = 0; ki < K; ki++) {
                        const float *g = crows + (size_t)ki * K * N + iw0 + PAD;
                        acc[0] = s_col2im_row(acc[0], g, o0 - ki, OH, OW, K, N, masks, any);
                        acc[1] = s_col2im_row(acc[1], g, o1 - ki, OH, OW, K, N, masks, any);
                        acc[2] = s_col2im_row(acc[2], g, o2 - ki, OH, OW, K, N, masks, any);
                        acc[3] = s_col2im_row(acc[3], g, o3 - ki, OH, OW, K, N, masks, any);
                    }
                    for (int q = 0; q < 4 && ih0 + q < H; q++) {
                        float *dst = plane + (size_t)(ih0 + q) * W + iw0;
                        s_store(dst, acc[q], valid, W <= 8 ? plane_end - dst : valid);
                    }
                }
            }
        }
    }
}

#define S_MR 4 /* rows of a tile */
#define S_NV 3 /* 8-float vectors across a tile */

/* One tile of `rows` rows and nv vectors, the last under mask `last`. With
 * constant arguments (the full tile) the compiler keeps acc in registers. */
S_AVX2 static inline __attribute__((always_inline)) void
s_tile(int rows, int nv, __m256i last, int full_last, int K, const float *a, ptrdiff_t ars,
       ptrdiff_t acs, const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    __m256 acc[S_MR][S_NV];
    for (int r = 0; r < S_MR; r++)
        for (int v = 0; v < S_NV; v++) {
            acc[r][v] = _mm256_setzero_ps();
            if (r < rows && v < nv && accumulate) {
                const float *cr = c + (size_t)r * ldc + 8 * v;
                acc[r][v] = v == nv - 1 && !full_last ? _mm256_maskload_ps(cr, last)
                                                      : _mm256_loadu_ps(cr);
            }
        }
    for (int k = 0; k < K; k++) {
        const float *bk = b + (size_t)k * ldb;
        __m256 bv[S_NV];
        for (int v = 0; v < S_NV; v++)
            bv[v] = v >= nv                        ? _mm256_setzero_ps()
                    : v == nv - 1 && !full_last ? _mm256_maskload_ps(bk + 8 * v, last)
                                                : _mm256_loadu_ps(bk + 8 * v);
        const float *ak = a + (ptrdiff_t)k * acs;
        for (int r = 0; r < rows; r++) {
            __m256 ar = _mm256_broadcast_ss(ak + (ptrdiff_t)r * ars);
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            float *cr = c + (size_t)r * ldc + 8 * v;
            if (v == nv - 1 && !full_last)
                _mm256_maskstore_ps(cr, last, acc[r][v]);
            else
                _mm256_storeu_ps(cr, acc[r][v]);
        }
}

/* Edge tiles: fewer rows or a partial last vector. */
S_AVX2 static __attribute__((noinline)) void
s_tile_edge(int rows, int nv, __m256i last, int full_last, int K, const float *a, ptrdiff_t ars,
            ptrdiff_t acs, const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    s_tile(rows, nv, last, full_last, K, a, ars, acs, b, ldb, c, ldc, accumulate);
}

/* ---- direct convolution, stride 1, no padding -------------------------------- */

/* A tile of `rows` output channels x nv vectors of 8 output pixels, each
 * vector within one output row: vector v's outputs at yv[v] (channel
 * stride P), its input window's top-left at xv[v]. Every term is one FMA,
 * in (c, ki, kj) order, after the bias or (bias_last) before it: the order
 * conv2d's im2col path takes for wide and for small maps, so both give the
 * same bits. */
#define S_DC_MR 4 /* output channels a tile */
#define S_DC_NV 3 /* vectors a tile */

S_AVX2 static inline __attribute__((always_inline)) void
s_dc_tile(const gb_conv_dims_t *d, int rows, int nv, int full, int bias_last, const float *const *xv,
          const __m256i *mv, const float *w, const float *bias, float *const *yv)
{
    const int C = d->C, K = d->K, W = d->W, KK = d->KK;
    const size_t plane = (size_t)d->H * d->W, P = (size_t)d->P;
    __m256 acc[S_DC_MR][S_DC_NV];
    for (int r = 0; r < S_DC_MR; r++)
        for (int v = 0; v < S_DC_NV; v++)
            acc[r][v] = r < rows && !bias_last ? _mm256_broadcast_ss(bias + r) : _mm256_setzero_ps();
    for (int c = 0; c < C; c++) {
        for (int ki = 0; ki < K; ki++) {
            const size_t off = (size_t)c * plane + (size_t)ki * W;
            const float *wk = w + (size_t)(c * K + ki) * K;
            for (int kj = 0; kj < K; kj++) {
                __m256 bv[S_DC_NV];
                for (int v = 0; v < S_DC_NV; v++)
                    bv[v] = v >= nv ? _mm256_setzero_ps()
                            : full  ? _mm256_loadu_ps(xv[v] + off + kj)
                                    : _mm256_maskload_ps(xv[v] + off + kj, mv[v]);
                for (int r = 0; r < rows; r++) {
                    const __m256 wr = _mm256_broadcast_ss(wk + (size_t)r * KK + kj);
                    for (int v = 0; v < nv; v++)
                        acc[r][v] = _mm256_fmadd_ps(wr, bv[v], acc[r][v]);
                }
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            float *dst = yv[v] + (size_t)r * P;
            if (bias_last)
                acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_broadcast_ss(bias + r));
            if (full)
                _mm256_storeu_ps(dst, acc[r][v]);
            else
                _mm256_maskstore_ps(dst, mv[v], acc[r][v]);
        }
}

S_AVX2 static __attribute__((noinline)) void
s_dc_tile_edge(const gb_conv_dims_t *d, int rows, int nv, int full, int bias_last,
               const float *const *xv, const __m256i *mv, const float *w, const float *bias,
               float *const *yv)
{
    s_dc_tile(d, rows, nv, full, bias_last, xv, mv, w, bias, yv);
}

S_AVX2 void gb_conv_direct_s1_avx2(const gb_conv_dims_t *d, int B, const float *x, const float *w,
                                   const float *bias, int bias_last, float *y)
{
    /* Vectors are numbered over the whole batch, so that a tile's may lie in
     * two images and only the batch's last tile falls short (LeNet's second
     * conv has 8 vectors an image). */
    const int OW = d->OW, per_row = (OW + 7) / 8, per_image = d->OH * per_row;
    const long vectors = (long)B * per_image;
    const size_t img = (size_t)d->C * d->H * d->W, out = (size_t)d->OC * d->P;
    for (long t0 = 0; t0 < vectors; t0 += S_DC_NV) {
        const int nv = vectors - t0 < S_DC_NV ? (int)(vectors - t0) : S_DC_NV;
        const float *xv[S_DC_NV];
        float *yv[S_DC_NV];
        __m256i mv[S_DC_NV];
        int full = 1;
        for (int v = 0; v < S_DC_NV; v++) {
            const long t = t0 + (v < nv ? v : 0);
            const int n = (int)(t / per_image), in_image = (int)(t % per_image);
            const int oh = in_image / per_row, ow = (in_image % per_row) * 8;
            xv[v] = x + (size_t)n * img + (size_t)oh * d->W + ow;
            yv[v] = y + (size_t)n * out + (size_t)oh * OW + ow;
            mv[v] = s_lanes(0, OW - ow);
            full &= v >= nv || OW - ow >= 8;
        }
        for (int oc = 0; oc < d->OC; oc += S_DC_MR) {
            const int rows = d->OC - oc < S_DC_MR ? d->OC - oc : S_DC_MR;
            float *yo[S_DC_NV];
            for (int v = 0; v < S_DC_NV; v++)
                yo[v] = yv[v] + (size_t)oc * d->P;
            const float *wo = w + (size_t)oc * d->KK;
            if (rows == S_DC_MR && nv == S_DC_NV && full)
                s_dc_tile(d, S_DC_MR, S_DC_NV, 1, bias_last, xv, mv, wo, bias + oc, yo);
            else
                s_dc_tile_edge(d, rows, nv, full, bias_last, xv, mv, wo, bias + oc, yo);
        }
    }
}

S_AVX2 void gb_simd_gemm_avx2(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                              const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    for (int j = 0; j < N; j += 8 * S_NV) {
        const int cols = N - j < 8 * S_NV ? N - j : 8 * S_NV;
        const int nv = (cols + 7) / 8;
        const int tail = cols - 8 * (nv - 1);
        const __m256i last = s_lanes(0, tail);
        const int full_last = tail == 8;
        for (int i = 0; i < M; i += S_MR) {
            const int rows = M - i < S_MR ? M - i : S_MR;
            const float *ai = a + (ptrdiff_t)i * ars;
            float *cij = c + (size_t)i * ldc + j;
            if (rows == S_MR && nv == 3 && full_last)
                s_tile(S_MR, 3, last, 1, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
            else if (rows == S_MR && nv == 2 && full_last)
                s_tile(S_MR, 2, last, 1, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
            else if (rows == S_MR && nv == 1 && full_last)
                s_tile(S_MR, 1, last, 1, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
            else
                s_tile_edge(rows, nv, last, full_last, K, ai, ars, acs, b + j, ldb, cij, ldc,
                            accumulate);
        }
    }
}

/* The weight gradient's product: every C element is a dot product of two
 * contiguous rows (a row of dY' and a row of cols), so the tile keeps 3 x 4
 * dot products in 8-lane partial sums over k and reduces them at the end, a
 * C row's four at once (s_nt_row_sums: 3 horizontal adds and one add, where
 * one by one they would cost 20 operations: for LeNet's second conv, whose
 * K is a chunk of 128 columns, that is a third of the product). OpenBLAS
 * packs both operands first, which for K of a few hundred costs as much as
 * the product. */

/* Lane q: the sum of all lanes of acc[q]. */
S_AVX2 static inline __m128 s_nt_row_sums(const __m256 acc[4])
{
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#define S_NT_MR 3 /* rows of A (and C) a tile */
#define S_NT_NR 4 /* rows of B (columns of C) a tile */

S_AVX2 static inline __attribute__((always_inline)) void
s_nt_tile(int mr, int nr, int K, const float *a, size_t lda, const float *b, size_t ldb, float *c,
          size_t ldc)
{
    __m256 acc[S_NT_MR][S_NT_NR];
    for (int r = 0; r < S_NT_MR; r++)
        for (int q = 0; q < S_NT_NR; q++)
            acc[r][q] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 bv[S_NT_NR];
        for (int q = 0; q < nr; q++)
            bv[q] = _mm256_loadu_ps(b + (size_t)q * ldb + k);
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_loadu_ps(a + (size_t)r * lda + k);
            for (int q = 0; q < nr; q++)
                acc[r][q] = _mm256_fmadd_ps(av, bv[q], acc[r][q]);
        }
    }
    if (k < K) {
        const __m256i m = s_lanes(0, K - k);
        __m256 bv[S_NT_NR];
        for (int q = 0; q < nr; q++)
            bv[q] = _mm256_maskload_ps(b + (size_t)q * ldb + k, m);
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_maskload_ps(a + (size_t)r * lda + k, m);
            for (int q = 0; q < nr; q++)
                acc[r][q] = _mm256_fmadd_ps(av, bv[q], acc[r][q]);
        }
    }
    /* Edge tiles fold the same way (their unused sums are 0), so an
     * element's bits do not depend on where in C it lies: a sample's row
     * gives the same result wherever the batch puts it. */
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc;
        const __m128 sums = s_nt_row_sums(acc[r]);
        if (nr == S_NT_NR) {
            _mm_storeu_ps(cr, _mm_add_ps(_mm_loadu_ps(cr), sums));
            continue;
        }
        float lane[4];
        _mm_storeu_ps(lane, sums);
        for (int q = 0; q < nr; q++)
            cr[q] += lane[q];
    }
}

S_AVX2 static __attribute__((noinline)) void s_nt_tile_edge(int mr, int nr, int K, const float *a,
                                                            size_t lda, const float *b,
                                                            size_t ldb, float *c, size_t ldc)
{
    s_nt_tile(mr, nr, K, a, lda, b, ldb, c, ldc);
}

S_AVX2 void gb_simd_gemm_nt_avx2(int M, int N, int K, const float *a, size_t lda, const float *b,
                                 size_t ldb, float *c, size_t ldc)
{
    for (int i = 0; i < M; i += S_NT_MR) {
        const int mr = M - i < S_NT_MR ? M - i : S_NT_MR;
        for (int j = 0; j < N; j += S_NT_NR) {
            const int nr = N - j < S_NT_NR ? N - j : S_NT_NR;
            const float *ai = a + (size_t)i * lda, *bj = b + (size_t)j * ldb;
            float *cij = c + (size_t)i * ldc + j;
            if (mr == S_NT_MR && nr == S_NT_NR)
                s_nt_tile(S_NT_MR, S_NT_NR, K, ai, lda, bj, ldb, cij, ldc);
            else
                s_nt_tile_edge(mr, nr, K, ai, lda, bj, ldb, cij, ldc);
        }
    }
}

/* ---- max pooling, 2 x 2 windows, stride 2 ---------------------------------- */

/* The n <= 8 windows' columns from p (2n floats): left elements to *left,
 * right ones to *right. Lanes past n are read from nowhere (masked). */
S_AVX2 static inline void s_pool_split(const float *p, int n, __m256 *left, __m256 *right)
{
    __m256 a, b;
    if (n == 8) {
        a = _mm256_loadu_ps(p);
        b = _mm256_loadu_ps(p + 8);
    } else {
        a = _mm256_maskload_ps(p, s_lanes(0, 2 * n));
        b = _mm256_maskload_ps(p + 8, s_lanes(0, 2 * n - 8));
    }
    /* per 128-bit half: a0 a2 b0 b2 | a4 a6 b4 b6; then the 64-bit pairs
     * reordered to a0 a2 a4 a6 b0 b2 b4 b6 */
    __m256 l = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 r = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    *left = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(l), _MM_SHUFFLE(3, 1, 2, 0)));
    *right = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(r), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* Takes v over *best where v is greater or NaN, and its offset with it. */
S_AVX2 static inline void s_pool_take(__m256 v, __m256i offset, __m256 *best, __m256i *at)
{
    __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *best = _mm256_blendv_ps(*best, v, take);
    *at = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(offset), take));
}

S_AVX2 void gb_maxpool2x2_avx2(size_t planes, int H, int W, const float *x, float *y, int32_t *arg)
{
    const int OH = (H - 2) / 2 + 1, OW = (W - 2) / 2 + 1;
    const __m256i twice_lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i one = _mm256_set1_epi32(1), below = _mm256_set1_epi32(W),
                  below_right = _mm256_set1_epi32(W + 1);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = x + pl * (size_t)H * W;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = in + (size_t)(2 * oh) * W, *r1 = r0 + W;
            float *o = y + (pl * OH + oh) * (size_t)OW;
            int32_t *a = arg + (pl * OH + oh) * (size_t)OW;
            for (int ow = 0; ow < OW; ow += 8) {
                const int n = OW - ow < 8 ? OW - ow : 8;
                __m256 tl, tr, bl, br;
                s_pool_split(r0 + 2 * ow, n, &tl, &tr);
                s_pool_split(r1 + 2 * ow, n, &bl, &br);
                __m256 best = tl;
                __m256i at = _mm256_setzero_si256();
                s_pool_take(tr, one, &best, &at);
                s_pool_take(bl, below, &best, &at);
                s_pool_take(br, below_right, &best, &at);
                __m256i index = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_set1_epi32(2 * oh * W + 2 * ow), twice_lane), at);
                if (n == 8) {
                    _mm256_storeu_ps(o + ow, best);
                    _mm256_storeu_si256((__m256i *)(a + ow), index);
                } else {
                    const __m256i m = s_lanes(0, n);
                    _mm256_maskstore_ps(o + ow, m, best);
                    _mm256_maskstore_epi32(a + ow, m, index);
                }
            }
        }
    }
}
#endif
