/* xoshiro256** (Blackman and Vigna) seeded through splitmix64. */
#include "util/rng.h"

#include <math.h>

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t gb_hash2(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL);
    s_splitmix(&x);
    return s_splitmix(&x);
}

void gb_rng_seed(gb_rng_t *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = gb_hash2(seed, stream);
    for (int i = 0; i < 4; i++)
        rng->s[i] = s_splitmix(&x);
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
        rng->s[0] = 1;
}

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gb_rng_next(gb_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

uint64_t gb_rng_below(gb_rng_t *rng, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)gb_rng_next(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)gb_rng_next(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double gb_rng_uniform(gb_rng_t *rng)
{
    return (double)(gb_rng_next(rng) >> 11) * 0x1.0p-53;
}

double gb_rng_normal(gb_rng_t *rng)
{
    double u1 = 1.0 - gb_rng_uniform(rng); /* (0, 1]: log never sees 0 */
    double u2 = gb_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double gb_rng_gamma(gb_rng_t *rng, double shape)
{
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
        double u = 1.0 - gb_rng_uniform(rng);
        return gb_rng_gamma(rng, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = gb_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = 1.0 - gb_rng_uniform(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return d * v;
    }
}

void gb_rng_shuffle(gb_rng_t *rng, int32_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)gb_rng_below(rng, (uint64_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
