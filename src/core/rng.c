/* xoshiro256** seeded by splitmix64: fast, small state, and the same stream
 * on every platform, which the determinism guarantees rest on. */
#include <math.h>

#include "segda/core.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sd_rng_seed(sd_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

sd_rng sd_rng_fork(uint64_t seed, uint64_t stream)
{
    sd_rng r;
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    sd_rng_seed(&r, splitmix64(&x) ^ stream);
    return r;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sd_rng_u64(sd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float sd_rng_uniform(sd_rng *r) { return (float)(sd_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float sd_rng_normal(sd_rng *r)
{
    /* Box-Muller; one value per call keeps the stream position simple. */
    double u1 = ((sd_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (sd_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int sd_rng_int(sd_rng *r, int n) { return n <= 1 ? 0 : (int)((sd_rng_u64(r) >> 33) % (uint64_t)n); }
