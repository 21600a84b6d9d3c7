/* Maximum mean discrepancy: the unbiased estimate MMD^2_u with a Gaussian
 * kernel (median-heuristic bandwidth) and its permutation-test p-value. The
 * pairwise distances (shared with retrieval) are computed here with BLAS. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gap/gap_internal.h"
#include "segda/gap.h"

sd_status sd_gap_sqdist(const float *x, int n, int d, float *dist)
{
    float *norm = sd_malloc(sizeof(float) * n);
    if (!norm)
        return SD_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        norm[i] = (float)s;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, -2.0f, x, d, x, d, 0.0f, dist, n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            float v = dist[(size_t)i * n + j] + norm[i] + norm[j];
            dist[(size_t)i * n + j] = v > 0 ? v : 0;
        }
        dist[(size_t)i * n + i] = 0;
    }
    free(norm);
    return SD_OK;
}

/* k-th smallest (0-based) of v[0..n), reordering v (Hoare quickselect). */
static float select_kth(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* The statistic for one labelling: with r_i = sum_{j in A, j != i} K_ij,
 * S_AA = sum_{i in A} r_i, S_AB = sum_{i in B} r_i and S_BB from the total,
 * one pass over the A rows of K costs O(n * n_A). */
static double mmd_stat(const float *K, const uint8_t *lab, int n, int na, double total, double *r)
{
    int nb = n - na;
    memset(r, 0, sizeof(double) * n);
    for (int j = 0; j < n; j++) {
        if (lab[j])
            continue;
        const float *row = K + (size_t)j * n;
        for (int i = 0; i < n; i++)
            r[i] += row[i];
    }
    double saa = 0, sab = 0;
    for (int i = 0; i < n; i++) {
        if (lab[i])
            sab += r[i];
        else
            saa += r[i] - K[(size_t)i * n + i];
    }
    double sbb = total - saa - 2 * sab;
    return saa / ((double)na * (na - 1)) + sbb / ((double)nb * (nb - 1)) - 2 * sab / ((double)na * nb);
}

sd_status sd_gap_mmd(const float *x, const uint8_t *domain, int n, int d, int n_perm,
                     uint64_t seed, double *mmd2, double *p, double *sigma_out)
{
    if (!x || !domain || !mmd2 || !p || n <= 0 || d <= 0)
        return sd_fail(SD_ERR_ARG, "mmd: empty features (n %d, d %d)", n, d);
    if (n_perm < 0)
        return sd_fail(SD_ERR_ARG, "mmd: permutations %d, expected >= 0", n_perm);
    int na = 0;
    for (int i = 0; i < n; i++)
        na += domain[i] == 0;
    if (na < 2 || n - na < 2)
        return sd_fail(SD_ERR_DATA, "mmd: %d rows of A and %d of B; each domain needs >= 2", na, n - na);
    sd_status st = SD_OK;
    float *K = sd_malloc(sizeof(float) * (size_t)n * n);
    float *tri = sd_malloc(sizeof(float) * ((size_t)n * (n - 1) / 2 + 1));
    uint8_t *lab = sd_malloc((size_t)n);
    double *r = sd_malloc(sizeof(double) * n);
    if (!K || !tri || !lab || !r) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    if ((st = sd_gap_sqdist(x, n, d, K)) != SD_OK)
        goto done;
    size_t m = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            tri[m++] = sqrtf(K[(size_t)i * n + j]);
    /* The median; for an even count the mean of the two middle values. */
    size_t mid = (m - 1) / 2;
    double sigma = select_kth(tri, m, mid);
    if (m % 2 == 0) {
        float up = tri[mid + 1];
        for (size_t i = mid + 2; i < m; i++)
            up = tri[i] < up ? tri[i] : up;
        sigma = 0.5 * (sigma + up);
    }
    if (!(sigma > 0))
        sigma = 1; /* all rows equal: any bandwidth gives MMD 0 */
    double g = 1.0 / (2 * sigma * sigma), total = 0;
    for (size_t i = 0; i < (size_t)n * n; i++)
        K[i] = (float)exp(-g * K[i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j)
                total += K[(size_t)i * n + j];
    for (int i = 0; i < n; i++)
        lab[i] = domain[i] != 0;
    double obs = mmd_stat(K, lab, n, na, total, r);
    int ge = 0;
    int fail = 0;
#pragma omp parallel reduction(+ : ge, fail)
    {
        uint8_t *pl = malloc((size_t)n);
        double *pr = malloc(sizeof(double) * n);
        if (!pl || !pr)
            fail = 1;
#pragma omp for schedule(static)
        for (int q = 0; q < n_perm; q++) {
            if (!pl || !pr)
                continue;
            /* One stream per permutation: the p-value does not depend on the
             * thread count. */
            sd_rng rng = sd_rng_fork(seed, (uint64_t)q + 1);
            memcpy(pl, lab, (size_t)n);
            for (int i = n - 1; i > 0; i--) {
                int j = sd_rng_int(&rng, i + 1);
                uint8_t t = pl[i];
                pl[i] = pl[j];
                pl[j] = t;
            }
            ge += mmd_stat(K, pl, n, na, total, pr) >= obs;
        }
        free(pl);
        free(pr);
    }
    if (fail) {
        st = sd_fail(SD_ERR_NOMEM, "mmd: out of memory for the permutation buffers");
        goto done;
    }
    *mmd2 = obs;
    *p = (1.0 + ge) / (1.0 + n_perm);
    if (sigma_out)
        *sigma_out = sigma;
done:
    free(K);
    free(tri);
    free(lab);
    free(r);
    return st;
}
