/* The engine's two GEMM shapes, each sent to the engine's own AVX-512 or AVX2
 * kernel (simd_kernels.h) when the kernel path has one, else to OpenBLAS.
 * OpenBLAS packs both operands of every call, which for the layers' small
 * shapes costs about as much as the product (and its pool would spin beside
 * the engine's), so conv2d and dense call these rather than cblas_sgemm.
 * All pointers are the caller's; nothing is allocated. */
#ifndef GB_ENGINE_GEMM_H
#define GB_ENGINE_GEMM_H

#include <stddef.h>

/* c[M x N] (+)= A . b[K x N] (accumulate: add to c), b and c row-major with
 * leading dimensions ldb and ldc; A is a[M x K] row-major (lda K), or, when
 * a_transposed, a[K x M] row-major (lda M) read transposed. */
void gb_gemm_nn(int M, int N, int K, const float *a, int a_transposed, const float *b,
                size_t ldb, float *c, size_t ldc, int accumulate);

/* c[M x N] += a . b^T with a (M x K) and b (N x K) row-major, leading
 * dimensions lda, ldb, ldc: every element a dot product of two rows. */
void gb_gemm_nt(int M, int N, int K, const float *a, size_t lda, const float *b, size_t ldb,
                float *c, size_t ldc);

#endif
