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

#if GB_SIMD_KERNELS
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

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

/* The weight gradient's product C += A . B^T (gb_simd_gemm_nt_avx2's
 * contract): every C element is a dot product of two contiguous rows, so a
 * tile keeps 4 x 4 dot products in 16-lane partial sums over k. Reducing
 * them one by one would cost about as much as the product for LeNet's
 * second conv (K is a chunk of 128 columns), so s_nt_reduce4x4 folds all 16
 * at once, in 45 operations, into one vector whose quarter r holds C row r's
 * four sums. OpenBLAS packs both operands first, which for these shapes
 * costs about a third of the product. */
#define S_NT_MR 4 /* rows of A (and C) a tile */
#define S_NT_NR 4 /* rows of B (columns of C) a tile */

/* acc[q] (q = 0..3): one C row's four partial-sum vectors. Returns a vector
 * whose every 128-bit quarter k holds, in lane q, the sum of acc[q]'s
 * quarter k. */
S_AVX512 static inline __m512 s_nt_fold_row(const __m512 acc[4])
{
    const __m512 u01 = _mm512_add_ps(_mm512_unpacklo_ps(acc[0], acc[1]),
                                     _mm512_unpackhi_ps(acc[0], acc[1]));
    const __m512 u23 = _mm512_add_ps(_mm512_unpacklo_ps(acc[2], acc[3]),
                                     _mm512_unpackhi_ps(acc[2], acc[3]));
    return _mm512_add_ps(_mm512_shuffle_ps(u01, u23, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u01, u23, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* The 16 dot products of a 4 x 4 tile: lane 4 r + q is the sum of all lanes
 * of acc[r][q]. */
S_AVX512 static inline __m512 s_nt_reduce4x4(__m512 acc[S_NT_MR][S_NT_NR])
{
    const __m512 s0 = s_nt_fold_row(acc[0]), s1 = s_nt_fold_row(acc[1]);
    const __m512 s2 = s_nt_fold_row(acc[2]), s3 = s_nt_fold_row(acc[3]);
    const __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(s0, s1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(s2, s3, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(s2, s3, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)));
}

S_AVX512 static inline __attribute__((always_inline)) void
s_nt_tile(int mr, int nr, int K, const float *a, size_t lda, const float *b, size_t ldb, float *c,
          size_t ldc)
{
    __m512 acc[S_NT_MR][S_NT_NR];
    for (int r = 0; r < S_NT_MR; r++)
        for (int q = 0; q < S_NT_NR; q++)
            acc[r][q] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 bv[S_NT_NR];
        for (int q = 0; q < nr; q++)
            bv[q] = _mm512_loadu_ps(b + (size_t)q * ldb + k);
        for (int r = 0; r < mr; r++) {
            const __m512 av = _mm512_loadu_ps(a + (size_t)r * lda + k);
            for (int q = 0; q < nr; q++)
                acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
        }
    }
    if (k < K) {
        const __mmask16 m = s_lanes(0, K - k);
        __m512 bv[S_NT_NR];
        for (int q = 0; q < nr; q++)
            bv[q] = _mm512_maskz_loadu_ps(m, b + (size_t)q * ldb + k);
        for (int r = 0; r < mr; r++) {
            const __m512 av = _mm512_maskz_loadu_ps(m, a + (size_t)r * lda + k);
            for (int q = 0; q < nr; q++)
                acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
        }
    }
    /* Edge tiles fold the same way (their unused sums are 0), so an
     * element's bits do not depend on where in C it lies: a sample's row
     * gives the same result wherever the batch puts it. */
    const __m512 sums = s_nt_reduce4x4(acc);
    if (mr == S_NT_MR && nr == S_NT_NR) {
        float *c0 = c, *c1 = c + ldc, *c2 = c + 2 * ldc, *c3 = c + 3 * ldc;
        _mm_storeu_ps(c0, _mm_add_ps(_mm_loadu_ps(c0), _mm512_extractf32x4_ps(sums, 0)));
        _mm_storeu_ps(c1, _mm_add_ps(_mm_loadu_ps(c1), _mm512_extractf32x4_ps(sums, 1)));
        _mm_storeu_ps(c2, _mm_add_ps(_mm_loadu_ps(c2), _mm512_extractf32x4_ps(sums, 2)));
        _mm_storeu_ps(c3, _mm_add_ps(_mm_loadu_ps(c3), _mm512_extractf32x4_ps(sums, 3)));
        return;
    }
    float lane[16];
    _mm512_storeu_ps(lane, sums);
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < nr; q++)
            c[(size_t)r * ldc + q] += lane[4 * r + q];
}

S_AVX512 static __attribute__((noinline)) void s_nt_tile_edge(int mr, int nr, int K, const float *a,
                                                              size_t lda, const float *b,
                                                              size_t ldb, float *c, size_t ldc)
{
    s_nt_tile(mr, nr, K, a, lda, b, ldb, c, ldc);
}

S_AVX512 void gb_simd_gemm_nt_avx512(int M, int N, int K, const float *a, size_t lda,
                                     const float *b, size_t ldb, float *c, size_t ldc)
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

/* ---- the LSTM (lstm.c, activations.h) ------------------------------------ */

#define GB_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define GB_AVX512_INLINE static inline __attribute__((always_inline)) GB_AVX512
#define S_TARGET GB_AVX512
#define S_INLINE GB_AVX512_INLINE
/* s_tanh and s_sigmoid on 16 lanes with the same operations in the same order
 * (no FMA), so they round exactly as the scalar and auto-vectorised code. */
GB_AVX512_INLINE __m512 s_tanh16(__m512 x)
{
    const __m512 clamp = _mm512_set1_ps(7.90531110763549805f);
    /* min(a, b) is a < b ? a : b (b when x is NaN): as s_tanh's selects. */
    __m512 c = _mm512_min_ps(clamp, x);
    c = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), clamp), c);
    __m512 x2 = _mm512_mul_ps(c, c);
    __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(2.00018790482477e-13f));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(-8.60467152213735e-11f));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(5.12229709037114e-08f));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(1.48572235717979e-05f));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(6.37261928875436e-04f));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(4.89352455891786e-03f));
    p = _mm512_mul_ps(p, c);
    __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(1.18534705686654e-04f));
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(2.26843463243900e-03f));
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(4.89352518554385e-03f));
    __m512 t = _mm512_div_ps(p, q);
    __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0.0004f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(tiny, t, x);
}

GB_AVX512_INLINE __m512 s_sigmoid16(__m512 x)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    return _mm512_add_ps(half, _mm512_mul_ps(half, s_tanh16(_mm512_mul_ps(half, x))));
}

/* Arguments of one step, shared by every tile. */
typedef struct {
    const float *wp;    /* this hidden block's packed weights: bias row, K rows */
    const float *z;     /* B x K: x_t, h_{t-1} */
    const float *c_prev;
    float *z_next, *gates, *c, *h, *tanh_c;
    int F, H, K, kend;  /* kend: F on the first step (h_{-1} = 0), else K */
    int j0;             /* first hidden unit of the block */
    __mmask16 m;        /* lanes of the block that are units < H */
} s_step_t;

/* MR rows starting at row b of one hidden block. */
GB_AVX512_INLINE void s_lstm_tile(const s_step_t *s, int b, const int MR)
{
    __m512 acc[6][4];
    const float *w = s->wp;
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            acc[r][g] = _mm512_loadu_ps(w + g * 16);
    w += 64;
    const float *z = s->z + (size_t)b * s->K;
    const int K = s->K;
    for (int k = 0; k < s->kend; k++, w += 64) {
        __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
        __m512 w2 = _mm512_loadu_ps(w + 32), w3 = _mm512_loadu_ps(w + 48);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(z[(size_t)r * K + k]);
            acc[r][0] = _mm512_fmadd_ps(a, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, w1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(a, w2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(a, w3, acc[r][3]);
        }
    }
    const int H = s->H;
    const __mmask16 m = s->m;
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        const size_t row = (size_t)(b + r), o4 = row * 4 * H + s->j0, o1 = row * H + s->j0;
        __m512 i = s_sigmoid16(acc[r][0]), f = s_sigmoid16(acc[r][1]);
        __m512 g = s_tanh16(acc[r][2]), o = s_sigmoid16(acc[r][3]);
        __m512 cp = _mm512_maskz_loadu_ps(m, s->c_prev + o1);
        __m512 c = _mm512_add_ps(_mm512_mul_ps(f, cp), _mm512_mul_ps(i, g));
        __m512 t = s_tanh16(c), h = _mm512_mul_ps(o, t);
        _mm512_mask_storeu_ps(s->gates + o4, m, i);
        _mm512_mask_storeu_ps(s->gates + o4 + H, m, f);
        _mm512_mask_storeu_ps(s->gates + o4 + 2 * H, m, g);
        _mm512_mask_storeu_ps(s->gates + o4 + 3 * H, m, o);
        _mm512_mask_storeu_ps(s->c + o1, m, c);
        _mm512_mask_storeu_ps(s->tanh_c + o1, m, t);
        _mm512_mask_storeu_ps(s->h + o1, m, h);
        if (s->z_next)
            _mm512_mask_storeu_ps(s->z_next + row * K + s->F + s->j0, m, h);
    }
}

/* One out-of-line copy per row count: inlined into the loops over blocks,
 * the cell's constants were hoisted into registers the 24 accumulators need,
 * and two of them were spilled to the stack inside the product loop. */
#define S_LSTM_TILE_FN(MR)                                                                    \
    __attribute__((noinline)) GB_AVX512 static void s_lstm_tile##MR(const s_step_t *s, int b) \
    {                                                                                         \
        s_lstm_tile(s, b, MR);                                                                \
    }
S_LSTM_TILE_FN(1)
S_LSTM_TILE_FN(2)
S_LSTM_TILE_FN(3)
S_LSTM_TILE_FN(4)
S_LSTM_TILE_FN(5)
S_LSTM_TILE_FN(6)

GB_AVX512 void gb_simd_lstm_step_avx512(const float *wp, const float *z, const float *c_prev,
                                         float *z_next, float *gates, float *c, float *h,
                                         float *tanh_c, int B, int F, int H, int first)
{
    const int K = F + H, nb = (H + 15) / 16;
    s_step_t s = {.z = z, .c_prev = c_prev, .z_next = z_next, .gates = gates, .c = c, .h = h,
                  .tanh_c = tanh_c, .F = F, .H = H, .K = K, .kend = first ? F : K};
    for (int jb = 0; jb < nb; jb++) {
        s.wp = wp + (size_t)jb * (K + 1) * 64;
        s.j0 = jb * 16;
        s.m = H - s.j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (H - s.j0)) - 1);
        int b = 0;
        for (; b + 6 <= B; b += 6)
            s_lstm_tile6(&s, b);
        switch (B - b) {
        case 5: s_lstm_tile5(&s, b); break;
        case 4: s_lstm_tile4(&s, b); break;
        case 3: s_lstm_tile3(&s, b); break;
        case 2: s_lstm_tile2(&s, b); break;
        case 1: s_lstm_tile1(&s, b); break;
        default: break;
        }
    }
}

/* Masks of the four 16-lane vectors of a 64-wide block starting at j0 of n. */
S_INLINE void s_masks(int j0, int n, __mmask16 m[4])
{
    for (int v = 0; v < 4; v++) {
        int left = n - j0 - 16 * v;
        m[v] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
}

/* dh[MR rows from b][64 units from j0] = dG[rows][4H] . W_hh[4H x H] */
S_INLINE void s_dh_tile(const float *dg, const float *Whh, float *dh, int H, int b, int j0,
                        const __mmask16 m[4], const int MR)
{
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            acc[r][v] = _mm512_setzero_ps();
    const int K4 = 4 * H;
    const float *a = dg + (size_t)b * K4, *w = Whh + j0;
    for (int k = 0; k < K4; k++, w += H) {
        __m512 w0 = _mm512_maskz_loadu_ps(m[0], w), w1 = _mm512_maskz_loadu_ps(m[1], w + 16);
        __m512 w2 = _mm512_maskz_loadu_ps(m[2], w + 32), w3 = _mm512_maskz_loadu_ps(m[3], w + 48);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m512 x = _mm512_set1_ps(a[(size_t)r * K4 + k]);
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(x, w2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(x, w3, acc[r][3]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(dh + (size_t)(b + r) * H + j0 + 16 * v, m[v], acc[r][v]);
}

/* dh[B x H] = dG[B x 4H] . W_hh[4H x H] */
S_TARGET void gb_simd_lstm_dh_avx512(const float *dg, const float *Whh, float *dh, int B, int H)
{
    for (int j0 = 0; j0 < H; j0 += 64) {
        __mmask16 m[4];
        s_masks(j0, H, m);
        int b = 0;
        for (; b + 6 <= B; b += 6)
            s_dh_tile(dg, Whh, dh, H, b, j0, m, 6);
        switch (B - b) {
        case 5: s_dh_tile(dg, Whh, dh, H, b, j0, m, 5); break;
        case 4: s_dh_tile(dg, Whh, dh, H, b, j0, m, 4); break;
        case 3: s_dh_tile(dg, Whh, dh, H, b, j0, m, 3); break;
        case 2: s_dh_tile(dg, Whh, dh, H, b, j0, m, 2); break;
        case 1: s_dh_tile(dg, Whh, dh, H, b, j0, m, 1); break;
        default: break;
        }
    }
}

/* CT[NR rows from n0][64 columns from m0] += Z[r0..r1)[n0..]^T . dG[r0..r1)[m0..] */
S_INLINE void s_dw_tile(const float *dG, const float *Z, float *CT, int M4, int K, int r0, int r1,
                        int n0, int m0, const __mmask16 m[4], const int NR)
{
    __m512 acc[6][4];
    float *ct = CT + (size_t)n0 * M4 + m0;
#pragma GCC unroll 6
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            acc[i][v] = _mm512_maskz_loadu_ps(m[v], ct + (size_t)i * M4 + 16 * v);
    const float *d = dG + (size_t)r0 * M4 + m0, *z = Z + (size_t)r0 * K + n0;
    for (int r = r0; r < r1; r++, d += M4, z += K) {
        __m512 d0 = _mm512_maskz_loadu_ps(m[0], d), d1 = _mm512_maskz_loadu_ps(m[1], d + 16);
        __m512 d2 = _mm512_maskz_loadu_ps(m[2], d + 32), d3 = _mm512_maskz_loadu_ps(m[3], d + 48);
#pragma GCC unroll 6
        for (int i = 0; i < NR; i++) {
            __m512 x = _mm512_set1_ps(z[i]);
            acc[i][0] = _mm512_fmadd_ps(x, d0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, d1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(x, d2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(x, d3, acc[i][3]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(ct + (size_t)i * M4 + 16 * v, m[v], acc[i][v]);
}

/* CT[K x M4] += Z^T[K x TB] . dG[TB x M4], rows taken in chunks that stay in
 * the core's L2 while every tile of the chunk reads them. */
S_TARGET void gb_simd_lstm_dw_avx512(const float *dG, const float *Z, float *CT, size_t TB, int K,
                                 int M4)
{
    const size_t chunk = 256;
    for (size_t r0 = 0; r0 < TB; r0 += chunk) {
        int r1 = (int)(TB - r0 < chunk ? TB : r0 + chunk);
        for (int m0 = 0; m0 < M4; m0 += 64) {
            __mmask16 m[4];
            s_masks(m0, M4, m);
            int n = 0;
            for (; n + 6 <= K; n += 6)
                s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 6);
            switch (K - n) {
            case 5: s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 5); break;
            case 4: s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 4); break;
            case 3: s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 3); break;
            case 2: s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 2); break;
            case 1: s_dw_tile(dG, Z, CT, M4, K, (int)r0, r1, n, m0, m, 1); break;
            default: break;
            }
        }
    }
}

/* ---- max pooling, 2 x 2 windows, stride 2 ---------------------------------- */

/* The n <= 16 windows' columns from p (2n floats): left elements to *left,
 * right ones to *right. Lanes past n are read from nowhere (masked). */
S_AVX512 static inline void s_pool_split(const float *p, int n, __m512 *left, __m512 *right)
{
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                            28, 30);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    __m512 a, b;
    if (n == 16) {
        a = _mm512_loadu_ps(p);
        b = _mm512_loadu_ps(p + 16);
    } else {
        a = _mm512_maskz_loadu_ps(s_lanes(0, 2 * n), p);
        b = _mm512_maskz_loadu_ps(s_lanes(0, 2 * n - 16), p + 16);
    }
    *left = _mm512_permutex2var_ps(a, evens, b);
    *right = _mm512_permutex2var_ps(a, odds, b);
}

/* Takes v over *best where v is greater or NaN, and its offset with it. */
S_AVX512 static inline void s_pool_take(__m512 v, __m512i offset, __m512 *best, __m512i *at)
{
    __mmask16 take = _mm512_cmp_ps_mask(v, *best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    *best = _mm512_mask_mov_ps(*best, take, v);
    *at = _mm512_mask_mov_epi32(*at, take, offset);
}

S_AVX512 void gb_maxpool2x2_avx512(size_t planes, int H, int W, const float *x, float *y,
                                   int32_t *arg)
{
    const int OH = (H - 2) / 2 + 1, OW = (W - 2) / 2 + 1;
    const __m512i twice_lane = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                                 26, 28, 30);
    const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(W),
                  below_right = _mm512_set1_epi32(W + 1);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = x + pl * (size_t)H * W;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = in + (size_t)(2 * oh) * W, *r1 = r0 + W;
            float *o = y + (pl * OH + oh) * (size_t)OW;
            int32_t *a = arg + (pl * OH + oh) * (size_t)OW;
            for (int ow = 0; ow < OW; ow += 16) {
                const int n = OW - ow < 16 ? OW - ow : 16;
                __m512 tl, tr, bl, br;
                s_pool_split(r0 + 2 * ow, n, &tl, &tr);
                s_pool_split(r1 + 2 * ow, n, &bl, &br);
                __m512 best = tl;
                __m512i at = _mm512_setzero_si512();
                s_pool_take(tr, one, &best, &at);
                s_pool_take(bl, below, &best, &at);
                s_pool_take(br, below_right, &best, &at);
                __m512i index = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow), twice_lane), at);
                const __mmask16 m = s_lanes(0, n);
                _mm512_mask_storeu_ps(o + ow, m, best);
                _mm512_mask_storeu_epi32(a + ow, m, index);
            }
        }
    }
}
#endif
