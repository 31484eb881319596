/* Kernel choice for the engine's GEMMs (gemm.h). */
#include "engine/gemm.h"

#include <cblas.h>

#include "engine/kernels.h"
#include "engine/simd_kernels.h"

void gb_gemm_nn(int M, int N, int K, const float *a, int a_transposed, const float *b,
                size_t ldb, float *c, size_t ldc, int accumulate)
{
#if GB_SIMD_KERNELS
    const gb_kernels_t k = gb_kernels();
    const ptrdiff_t ars = a_transposed ? 1 : K, acs = a_transposed ? M : 1;
    if (k == GB_KERNELS_AVX512) {
        gb_simd_gemm_avx512(M, N, K, a, ars, acs, b, ldb, c, ldc, accumulate);
        return;
    }
    if (k == GB_KERNELS_AVX2) {
        gb_simd_gemm_avx2(M, N, K, a, ars, acs, b, ldb, c, ldc, accumulate);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, a_transposed ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K,
                1.0f, a, a_transposed ? M : K, b, (int)ldb, accumulate ? 1.0f : 0.0f, c, (int)ldc);
}

void gb_gemm_nt(int M, int N, int K, const float *a, size_t lda, const float *b, size_t ldb,
                float *c, size_t ldc)
{
#if GB_SIMD_KERNELS
    const gb_kernels_t k = gb_kernels();
    if (k == GB_KERNELS_AVX512) {
        gb_simd_gemm_nt_avx512(M, N, K, a, lda, b, ldb, c, ldc);
        return;
    }
    if (k == GB_KERNELS_AVX2) {
        gb_simd_gemm_nt_avx2(M, N, K, a, lda, b, ldb, c, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, (int)lda, b, (int)ldb,
                1.0f, c, (int)ldc);
}
