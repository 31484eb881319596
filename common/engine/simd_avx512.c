/* conv2d's AVX-512 kernels (see simd_kernels.h): stride-1 im2col and col2im
 * moving 16-float masked vectors, and the GEMM for conv2d's two products
 * whose right operand is row-major.
 *
 * Padding and row ends are load masks, so there is no branch per pixel;
 * col2im builds each input row in a register from every (ki, kj) that
 * reaches it and stores it once: no zeroing of dx first and no read-modify-
 * write. OpenBLAS runs its Haswell (AVX2) kernels on AVX-512 CPUs
 * (OPENBLAS_CORETYPE, see shared/research/machine.md), so the GEMM's 16-float
 * vectors double the width of the product for these shapes. */
#include "engine/simd_kernels.h"

#if GB_CONV_KERNELS
#include <immintrin.h>
#include <stdint.h>

#define S_AVX512 __attribute__((target("avx512f")))

/* Lanes [lo, hi) of 16, clamped; empty when hi <= lo. */
S_AVX512 static inline __mmask16 s_lanes(int lo, int hi)
{
    if (lo < 0)
        lo = 0;
    if (hi > 16)
        hi = 16;
    if (hi <= lo)
        return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* Stores the first `valid` lanes of v at p. Lanes beyond them may be
 * written with garbage when `room` (floats writable from p on, which the
 * caller writes again later) allows a whole vector: a plain store is much
 * cheaper than a masked one. */
S_AVX512 static inline void s_store(float *p, __m512 v, int valid, ptrdiff_t room)
{
    if (room >= 16)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, s_lanes(0, valid), v);
}

/* s_im2col for stride 1: out[ow] = src[ow - PAD + kj] where that lies in
 * the row, else 0, 16 columns per masked load. When a row is one chunk,
 * the rows of one image are written in order, so a row's whole-vector store
 * may spill into the next row's place before that row is written. */
S_AVX512 void gb_conv_im2col_s1_avx512(const gb_conv_dims_t *d, int B, const float *x, float *cols)
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
                for (int ow0 = 0; ow0 < OW; ow0 += 16) {
                    const int valid = OW - ow0 < 16 ? OW - ow0 : 16;
                    const __mmask16 load =
                        s_lanes(-shift - ow0, W - shift - ow0) & s_lanes(0, valid);
                    for (int n = 0; n < B; n++) {
                        const float *plane = x + n * img + (size_t)c * H * W;
                        float *out = row + (size_t)n * P;
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh - PAD + ki;
                            float *o = out + (size_t)oh * OW + ow0;
                            __m512 v = _mm512_setzero_ps();
                            /* Masked-off lanes are neither read nor faulted. */
                            if ((unsigned)ih < (unsigned)H && load)
                                v = _mm512_maskz_loadu_ps(
                                    load, plane + (size_t)ih * W + shift + ow0);
                            /* With several chunks per row, the next row's
                             * first chunk is already written. */
                            s_store(o, v, valid, OW <= 16 ? out + P - o : valid);
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
S_AVX512 static inline __attribute__((always_inline)) __m512
s_col2im_row(__m512 acc, const float *g, int o, int OH, int OW, int K, size_t N,
             const __mmask16 *masks)
{
    if ((unsigned)o >= (unsigned)OH)
        return acc;
    g += (size_t)o * OW;
    for (int kj = 0; kj < K; kj++, g += N - 1)
        if (masks[kj])
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(masks[kj], g));
    return acc;
}

/* s_col2im for stride 1, overwriting dx: input row ih of channel c, 16
 * columns at a time, is the sum over ki (output row oh = ih + PAD - ki) and
 * kj of dcols row (c, ki, kj) at output columns iw + PAD - kj, added in
 * (ki, kj) order in a register (the order of the plain loops) and stored
 * once. Four rows are summed side by side, four independent chains of
 * adds. When a row is one chunk, rows of a plane are written in order and
 * may spill forward (see s_store). */
S_AVX512 void gb_conv_col2im_s1_avx512(const gb_conv_dims_t *d, int B, const float *dcols, float *dx)
{
    const int C = d->C, H = d->H, W = d->W, K = d->K, PAD = d->PAD;
    const int OH = d->OH, OW = d->OW, P = d->P;
    const size_t N = (size_t)B * P;
    const size_t img = (size_t)C * H * W;
    __mmask16 masks[GB_CONV_COL2IM_MAX_K];
    for (int n = 0; n < B; n++) {
        for (int c = 0; c < C; c++) {
            float *plane = dx + n * img + (size_t)c * H * W;
            float *plane_end = plane + (size_t)H * W;
            const float *crows = dcols + (size_t)c * K * K * N + (size_t)n * P;
            for (int iw0 = 0; iw0 < W; iw0 += 16) {
                const int valid = W - iw0 < 16 ? W - iw0 : 16;
                /* ow of lane 0 is iw0 + PAD - kj */
                for (int kj = 0; kj < K; kj++)
                    masks[kj] = s_lanes(kj - PAD - iw0, OW + kj - PAD - iw0) &
                                s_lanes(0, valid);
                for (int ih0 = 0; ih0 < H; ih0 += 4) {
                    /* Rows past H get an output row no ki reaches. */
                    const int o0 = ih0 + PAD, o1 = ih0 + 1 < H ? o0 + 1 : -1 - K;
                    const int o2 = ih0 + 2 < H ? o0 + 2 : -1 - K;
                    const int o3 = ih0 + 3 < H ? o0 + 3 : -1 - K;
                    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(),
                                     _mm512_setzero_ps(), _mm512_setzero_ps()};
                    for (int ki = 0; ki < K; ki++) {
                        const float *g = crows + (size_t)ki * K * N + iw0 + PAD;
                        acc[0] = s_col2im_row(acc[0], g, o0 - ki, OH, OW, K, N, masks);
                        acc[1] = s_col2im_row(acc[1], g, o1 - ki, OH, OW, K, N, masks);
                        acc[2] = s_col2im_row(acc[2], g, o2 - ki, OH, OW, K, N, masks);
                        acc[3] = s_col2im_row(acc[3], g, o3 - ki, OH, OW, K, N, masks);
                    }
                    for (int q = 0; q < 4 && ih0 + q < H; q++) {
                        float *dst = plane + (size_t)(ih0 + q) * W + iw0;
                        s_store(dst, acc[q], valid, W <= 16 ? plane_end - dst : valid);
                    }
                }
            }
        }
    }
}

/* C[M x N] (+)= A . B in AVX-512 for the conv's two GEMMs whose B is
 * row-major: forward Y' = W . cols and backward dcols = W^T . dY'.
 * OpenBLAS runs its Haswell (AVX2) kernels here (OPENBLAS_CORETYPE, see
 * shared/research/machine.md); these shapes (K = 400 or 32, M = 32 or 400)
 * gain from 16-float vectors. A(r, k) = a[r * ars + k * acs], so W and W^T
 * are both read in place; B rows at b + k * ldb, C rows at c + r * ldc. A
 * tile of 8 rows x 48 columns keeps 24 accumulators in registers; each
 * term is one FMA, in k order. */
#define S_MR 8  /* rows of a tile */
#define S_NV 3  /* 16-float vectors across a tile */

S_AVX512 static inline __attribute__((always_inline)) void
s_tile(int rows, int nv, __mmask16 last, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
       const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    __m512 acc[S_MR][S_NV];
    for (int r = 0; r < S_MR; r++)
        for (int v = 0; v < S_NV; v++) {
            __mmask16 m = v == nv - 1 ? last : (__mmask16)0xffff;
            acc[r][v] = r < rows && v < nv && accumulate
                            ? _mm512_maskz_loadu_ps(m, c + (size_t)r * ldc + 16 * v)
                            : _mm512_setzero_ps();
        }
    for (int k = 0; k < K; k++) {
        const float *bk = b + (size_t)k * ldb;
        __m512 bv[S_NV];
        for (int v = 0; v < S_NV; v++)
            bv[v] = v < nv ? _mm512_maskz_loadu_ps(v == nv - 1 ? last : (__mmask16)0xffff,
                                                    bk + 16 * v)
                           : _mm512_setzero_ps();
        const float *ak = a + (ptrdiff_t)k * acs;
        for (int r = 0; r < rows; r++) {
            __m512 ar = _mm512_set1_ps(ak[(ptrdiff_t)r * ars]);
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            float *cr = c + (size_t)r * ldc + 16 * v;
            if (v == nv - 1 && last != (__mmask16)0xffff)
                _mm512_mask_storeu_ps(cr, last, acc[r][v]);
            else
                _mm512_storeu_ps(cr, acc[r][v]);
        }
}

/* Edge tiles: fewer rows or a partial last vector. */
S_AVX512 static __attribute__((noinline)) void
s_tile_edge(int rows, int nv, __mmask16 last, int K, const float *a, ptrdiff_t ars,
            ptrdiff_t acs, const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    s_tile(rows, nv, last, K, a, ars, acs, b, ldb, c, ldc, accumulate);
}

S_AVX512 void gb_simd_gemm_avx512(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                            const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    for (int j = 0; j < N; j += 16 * S_NV) {
        const int cols = N - j < 16 * S_NV ? N - j : 16 * S_NV;
        const int nv = (cols + 15) / 16;
        const __mmask16 last = s_lanes(0, cols - 16 * (nv - 1));
        for (int i = 0; i < M; i += S_MR) {
            const int rows = M - i < S_MR ? M - i : S_MR;
            const float *ai = a + (ptrdiff_t)i * ars;
            float *cij = c + (size_t)i * ldc + j;
            if (rows == S_MR && last == (__mmask16)0xffff && nv == 3)
                s_tile(S_MR, 3, 0xffff, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
            else if (rows == S_MR && last == (__mmask16)0xffff && nv == 2)
                s_tile(S_MR, 2, 0xffff, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
            else
                s_tile_edge(rows, nv, last, K, ai, ars, acs, b + j, ldb, cij, ldc, accumulate);
        }
    }
}
#endif
