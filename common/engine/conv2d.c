/* 2-D convolution (cross-correlation, no kernel flip) with PyTorch's weight
 * layout W[OC][C][K][K], as im2col and GEMMs over chunks of the (sub-)batch.
 *
 * Shapes: B samples, C input channels, OC output channels, KK = C*K*K rows of
 * the column matrix, P = OH*OW output pixels per image. The batch goes in
 * chunks of g images (s_chunk: about 64K unrolled floats, so each step reads
 * what the last one wrote while it is still in cache), Nc = g*P columns.
 * Forward unrolls a chunk into cols[KK x Nc] (kept in the layer's cache, so
 * backward needs no second im2col), computes Y'[OC x Nc] = W . cols, then
 * scatters Y' into NCHW while adding the bias (maps of at least
 * S_PER_IMAGE_MIN_P pixels: one GEMM per image straight into NCHW).
 * Backward gathers dy into dY'[OC x Nc], dW += dY' . cols^T, and, unless
 * this is the first layer, dcols = W^T . dY' followed by col2im.
 *
 * Where the CPU has AVX-512, the two GEMMs whose right operand is row-major
 * (Y' and dcols) run in this file's AVX-512 kernel rather than OpenBLAS's
 * Haswell one, and stride-1 im2col and col2im move 16-float masked vectors:
 * padding and row ends are load masks, so no branch per pixel; col2im
 * builds each input row in a register from every (ki, kj) that reaches it
 * and stores it once: no zeroing of dx first and no read-modify-write
 * (its terms in the plain loops' order). dW stays with OpenBLAS. Other
 * CPUs take OpenBLAS and the plain loops (gb_conv2d_set_portable forces
 * them, for tests). */
#include "engine/layer.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define S_HAVE_AVX512_PATH 1
#define S_AVX512 __attribute__((target("avx512f")))
#else
#define S_HAVE_AVX512_PATH 0
#endif

static int s_portable; /* 1: the plain loops whatever the CPU */

/* Largest kernel the vector col2im takes (it keeps one mask per column). */
#define S_COL2IM_MAX_K 64

void gb_conv2d_set_portable(int portable)
{
    s_portable = portable ? 1 : 0;
}

#if S_HAVE_AVX512_PATH
/* True when a layer of this stride takes the AVX-512 im2col/col2im (x86-64
 * only: elsewhere every caller takes the plain loops and cblas_sgemm). */
static int s_vector_path(int stride)
{
    return stride == 1 && !s_portable && __builtin_cpu_supports("avx512f");
}
#endif

/* Output maps of at least this many pixels take one sgemm per image (wide
 * enough to run at full speed) and skip the layout passes; smaller maps are
 * batched into one sgemm and scattered. */
#define S_PER_IMAGE_MIN_P 256

typedef struct {
    int C, H, W;       /* input */
    int OC, OH, OW, P; /* output */
    int K, S, PAD;     /* kernel, stride, padding */
    int KK;            /* C * K * K */
} s_dims_t;

static s_dims_t s_dims(const gb_layer_t *l)
{
    s_dims_t d;
    d.C = l->in.dim[0];
    d.H = l->in.dim[1];
    d.W = l->in.dim[2];
    d.OC = l->cfg.units;
    d.K = l->cfg.kernel;
    d.S = l->cfg.stride;
    d.PAD = l->cfg.pad;
    d.OH = (d.H + 2 * d.PAD - d.K) / d.S + 1;
    d.OW = (d.W + 2 * d.PAD - d.K) / d.S + 1;
    d.P = d.OH * d.OW;
    d.KK = d.C * d.K * d.K;
    return d;
}

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    int rc = gb_layer_require_image(l, err);
    if (rc)
        return rc;
    /* Sizes in 64 bits first: kernel and pad come from outside and their
     * products must not wrap the int arithmetic of the kernels below. */
    int64_t C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    int64_t K = l->cfg.kernel, PAD = l->cfg.pad, S = l->cfg.stride;
    if (K > H + 2 * PAD || K > W + 2 * PAD)
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: conv kernel %lld larger than the padded input %lldx%lld",
                            l->cfg.line, (long long)K, (long long)(H + 2 * PAD),
                            (long long)(W + 2 * PAD));
    int64_t OH = (H + 2 * PAD - K) / S + 1, OW = (W + 2 * PAD - K) / S + 1;
    int64_t KK = C * K * K, P = OH * OW;
    if (KK > GB_LAYER_MAX_FLOATS || P > GB_LAYER_MAX_FLOATS || KK * P > GB_LAYER_MAX_FLOATS ||
        P * l->cfg.units > GB_LAYER_MAX_FLOATS)
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: conv too large: %lld x %lld unrolled input per sample "
                            "(at most %lld floats)",
                            l->cfg.line, (long long)KK, (long long)P,
                            (long long)GB_LAYER_MAX_FLOATS);
    s_dims_t d = s_dims(l);
    l->out.rank = 3;
    l->out.dim[0] = d.OC;
    l->out.dim[1] = d.OH;
    l->out.dim[2] = d.OW;
    l->param_len = (size_t)d.OC * d.KK + (size_t)d.OC;
    l->cache_per_sample = (size_t)d.KK * d.P;
    return 0;
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    s_dims_t d = s_dims(l);
    float bound = 1.0f / sqrtf((float)d.KK);
    gb_layer_fill_uniform(p, l->param_len, bound, rng);
}

/* Images per chunk: the batch goes through im2col, the GEMMs and col2im in
 * chunks whose unrolled columns take about S_CHUNK_FLOATS, so that cols,
 * dY' and dcols are still in the core's cache when the next step reads
 * them (a whole sub-batch's would not be: LeNet's second conv unrolls 100 KB
 * per image). Depends on the shapes only, so results do not depend on the
 * batch's split. */
#define S_CHUNK_FLOATS (64 * 1024)

static int s_chunk(const s_dims_t *d)
{
    int64_t g = S_CHUNK_FLOATS / ((int64_t)d->KK * d->P);
    return g < 1 ? 1 : (int)g;
}

static size_t s_work_floats(const gb_layer_t *l, int batch)
{
    s_dims_t d = s_dims(l);
    int g = s_chunk(&d);
    size_t n = (size_t)(batch < g ? batch : g) * d.P;
    return (size_t)d.OC * n + (size_t)d.KK * n; /* a chunk's dY' and dcols */
}

#if S_HAVE_AVX512_PATH
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
S_AVX512 static void s_im2col_s1(const s_dims_t *d, int B, const float *x, float *cols)
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
S_AVX512 static void s_col2im_s1(const s_dims_t *d, int B, const float *dcols, float *dx)
{
    const int C = d->C, H = d->H, W = d->W, K = d->K, PAD = d->PAD;
    const int OH = d->OH, OW = d->OW, P = d->P;
    const size_t N = (size_t)B * P;
    const size_t img = (size_t)C * H * W;
    __mmask16 masks[S_COL2IM_MAX_K];
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
#endif

#if S_HAVE_AVX512_PATH
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

S_AVX512 static void s_gemm(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
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

/* y[M x N] (+)= W[M x K] . x[K x N] (accumulate: add to y), row-major with
 * leading dimensions ldx, ldy; W^T[M x K] when w_transposed (W is K x M). */
static void s_sgemm(int M, int N, int K, const float *w, int w_transposed, const float *x,
                    int ldx, float *y, int ldy, int accumulate)
{
#if S_HAVE_AVX512_PATH
    if (s_vector_path(1)) { /* any stride: the GEMM does not see it */
        if (w_transposed)
            s_gemm(M, N, K, w, 1, M, x, (size_t)ldx, y, (size_t)ldy, accumulate);
        else
            s_gemm(M, N, K, w, K, 1, x, (size_t)ldx, y, (size_t)ldy, accumulate);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, w_transposed ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K,
                1.0f, w, w_transposed ? M : K, x, ldx, accumulate ? 1.0f : 0.0f, y, ldy);
}

/* cols[KK x B*P]: row k = (c, ki, kj), column n*P + oh*OW + ow. */
static void s_im2col(const s_dims_t *d, int B, const float *x, float *cols)
{
#if S_HAVE_AVX512_PATH
    if (s_vector_path(d->S)) {
        s_im2col_s1(d, B, x, cols);
        return;
    }
#endif
    const size_t N = (size_t)B * d->P;
    const size_t img = (size_t)d->C * d->H * d->W;
    for (int c = 0; c < d->C; c++) {
        for (int ki = 0; ki < d->K; ki++) {
            for (int kj = 0; kj < d->K; kj++) {
                float *row = cols + ((size_t)(c * d->K + ki) * d->K + kj) * N;
                for (int n = 0; n < B; n++) {
                    const float *plane = x + n * img + (size_t)c * d->H * d->W;
                    float *out = row + (size_t)n * d->P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->S - d->PAD + ki;
                        float *o = out + (size_t)oh * d->OW;
                        if ((unsigned)ih >= (unsigned)d->H) {
                            memset(o, 0, (size_t)d->OW * sizeof(float));
                            continue;
                        }
                        const float *src = plane + (size_t)ih * d->W;
                        if (d->S == 1 && d->PAD == 0) {
                            /* A loop, not memcpy: rows are short (24 floats in LeNet). */
                            const float *s = src + kj;
                            for (int ow = 0; ow < d->OW; ow++)
                                o[ow] = s[ow];
                            continue;
                        }
                        for (int ow = 0; ow < d->OW; ow++) {
                            int iw = ow * d->S - d->PAD + kj;
                            o[ow] = (unsigned)iw < (unsigned)d->W ? src[iw] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

/* dx = scatter-add of dcols (overwrites dx). */
static void s_col2im(const s_dims_t *d, int B, const float *dcols, float *dx)
{
#if S_HAVE_AVX512_PATH
    if (s_vector_path(d->S) && d->K <= S_COL2IM_MAX_K) {
        s_col2im_s1(d, B, dcols, dx);
        return;
    }
#endif
    memset(dx, 0, (size_t)B * d->C * d->H * d->W * sizeof(float));
    const size_t N = (size_t)B * d->P;
    const size_t img = (size_t)d->C * d->H * d->W;
    for (int c = 0; c < d->C; c++) {
        for (int ki = 0; ki < d->K; ki++) {
            for (int kj = 0; kj < d->K; kj++) {
                const float *row = dcols + ((size_t)(c * d->K + ki) * d->K + kj) * N;
                for (int n = 0; n < B; n++) {
                    float *plane = dx + n * img + (size_t)c * d->H * d->W;
                    const float *in = row + (size_t)n * d->P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->S - d->PAD + ki;
                        if ((unsigned)ih >= (unsigned)d->H)
                            continue;
                        const float *g = in + (size_t)oh * d->OW;
                        float *dst = plane + (size_t)ih * d->W;
                        if (d->S == 1 && d->PAD == 0) {
                            float *dk = dst + kj;
                            for (int ow = 0; ow < d->OW; ow++)
                                dk[ow] += g[ow];
                            continue;
                        }
                        for (int ow = 0; ow < d->OW; ow++) {
                            int iw = ow * d->S - d->PAD + kj;
                            if ((unsigned)iw < (unsigned)d->W)
                                dst[iw] += g[ow];
                        }
                    }
                }
            }
        }
    }
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cols, const float *x,
                      float *y)
{
    s_dims_t d = s_dims(l);
    const int B = pass->batch, G = s_chunk(&d);
    const size_t img = (size_t)d.C * d.H * d.W, ccols = (size_t)d.KK * d.P;
    const float *Wt = pass->params + l->param_off;
    const float *bias = Wt + (size_t)d.OC * d.KK;
    float *Yp = pass->work;
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G, Nc = g * d.P;
        float *cc = cols + (size_t)n0 * ccols;
        s_im2col(&d, g, x + (size_t)n0 * img, cc);
        if (d.P >= S_PER_IMAGE_MIN_P) {
            /* Wide maps: one sgemm per image writes NCHW directly, no scatter. */
            for (int n = n0; n < n0 + g; n++) {
                float *yn = y + (size_t)n * d.OC * d.P;
                for (int oc = 0; oc < d.OC; oc++)
                    for (int p = 0; p < d.P; p++)
                        yn[(size_t)oc * d.P + p] = bias[oc];
                /* y_n[OC x P] += W[OC x KK] . cc[:, (n - n0)*P ..)[KK x P] */
                s_sgemm(d.OC, d.P, d.KK, Wt, 0, cc + (size_t)(n - n0) * d.P, Nc, yn, d.P, 1);
            }
            continue;
        }
        /* Y'[OC x Nc] = W[OC x KK] . cc[KK x Nc] */
        s_sgemm(d.OC, Nc, d.KK, Wt, 0, cc, Nc, Yp, Nc, 0);
        for (int n = 0; n < g; n++) {
            for (int oc = 0; oc < d.OC; oc++) {
                const float *src = Yp + (size_t)oc * Nc + (size_t)n * d.P;
                float *dst = y + ((size_t)(n0 + n) * d.OC + oc) * d.P;
                const float b = bias[oc];
                for (int p = 0; p < d.P; p++)
                    dst[p] = src[p] + b;
            }
        }
    }
}

/* Backward of one chunk of g images whose columns cc ([KK x g*P]) the
 * forward left; dy and dx point at the chunk's first image. Wide maps read
 * NCHW dy one image at a time; small ones gather it into dY' first. */
static void s_backward_chunk(const gb_layer_t *l, const gb_pass_t *pass, const s_dims_t *d, int g,
                             const float *cc, const float *dy, float *dx)
{
    const int Nc = g * d->P;
    const float *Wt = pass->params + l->param_off;
    float *dW = pass->grads ? pass->grads + l->param_off : NULL;
    float *db = dW ? dW + (size_t)d->OC * d->KK : NULL;
    float *dYp = pass->work;
    float *dcols = pass->work + (size_t)d->OC * Nc;
    if (d->P >= S_PER_IMAGE_MIN_P) {
        for (int n = 0; n < g; n++) {
            const float *dyn = dy + (size_t)n * d->OC * d->P;
            if (dW) {
                /* dW[OC x KK] += dy_n[OC x P] . cc_n^T[P x KK] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->OC, d->KK, d->P, 1.0f,
                            dyn, d->P, cc + (size_t)n * d->P, Nc, 1.0f, dW, d->KK);
                for (int oc = 0; oc < d->OC; oc++)
                    db[oc] += gb_layer_sum(dyn + (size_t)oc * d->P, (size_t)d->P);
            }
            if (dx)
                /* dcols[:, n*P ..)[KK x P] = W^T[KK x OC] . dy_n[OC x P] */
                s_sgemm(d->KK, d->P, d->OC, Wt, 1, dyn, d->P, dcols + (size_t)n * d->P, Nc, 0);
        }
    } else {
        for (int n = 0; n < g; n++)
            for (int oc = 0; oc < d->OC; oc++)
                memcpy(dYp + (size_t)oc * Nc + (size_t)n * d->P,
                       dy + ((size_t)n * d->OC + oc) * d->P, (size_t)d->P * sizeof(float));
        if (dW) {
            /* dW[OC x KK] += dY'[OC x Nc] . cc^T[Nc x KK] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->OC, d->KK, Nc, 1.0f, dYp, Nc,
                        cc, Nc, 1.0f, dW, d->KK);
            for (int oc = 0; oc < d->OC; oc++)
                db[oc] += gb_layer_sum(dYp + (size_t)oc * Nc, (size_t)Nc);
        }
        if (dx)
            /* dcols[KK x Nc] = W^T[KK x OC] . dY'[OC x Nc] */
            s_sgemm(d->KK, Nc, d->OC, Wt, 1, dYp, Nc, dcols, Nc, 0);
    }
    if (dx)
        s_col2im(d, g, dcols, dx);
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cols,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)x;
    (void)y;
    s_dims_t d = s_dims(l);
    const int B = pass->batch, G = s_chunk(&d);
    const size_t img = (size_t)d.C * d.H * d.W, yimg = (size_t)d.OC * d.P;
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G;
        s_backward_chunk(l, pass, &d, g, cols + (size_t)n0 * d.KK * d.P, dy + (size_t)n0 * yimg,
                         dx ? dx + (size_t)n0 * img : NULL);
    }
}

static double s_flops(const gb_layer_t *l)
{
    s_dims_t d = s_dims(l);
    return 2.0 * d.OC * (double)d.KK * d.P;
}

const gb_layer_ops_t gb_conv2d_ops = {
    .plan = s_plan,
    .init = s_init,
    .work_floats = s_work_floats,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
};
