/* Tests of the domain-gap measures (src/gap/) on seeded synthetic features
 * whose answers are known: equal and separated Gaussians, hand-computed MMD
 * and KL values, an anisotropic Gaussian for PCA, a NumPy-written .npy. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/gap.h"

enum { N_PER = 100, D = 16 };

/* Rows 0..na-1 from N(0, I) (domain 0), then nb rows from N(shift * 1, I)
 * (domain 1). */
static void gaussians(float *x, uint8_t *dom, int na, int nb, int d, float shift, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int i = 0; i < na + nb; i++) {
        dom[i] = i >= na;
        for (int j = 0; j < d; j++)
            x[i * d + j] = sd_rng_normal(&r) + (i >= na ? shift : 0);
    }
}

static char tmpdir[256];

static const char *tmp_path(const char *name) { return test_path(tmpdir, name); }


static void test_svm_identical(void)
{
    static float x[2 * N_PER * D];
    static uint8_t dom[2 * N_PER];
    gaussians(x, dom, N_PER, N_PER, D, 0, 11);
    double lin = 0, poly = 0;
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_LINEAR, 5, 1, &lin));
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_POLY, 5, 1, &poly));
    /* Chance is 0.5; with 200 held-out rows one std is 0.035. */
    CHECK_MSG(lin > 0.38 && lin < 0.62, "linear accuracy %g on identical distributions", lin);
    /* liblinear shuffles with rand(): someone else's use of it must not
     * change our answer. */
    srand(12345);
    for (int i = 0; i < 7; i++)
        (void)rand();
    double again = -1;
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_LINEAR, 5, 1, &again));
    CHECK(again == lin);
    CHECK_MSG(poly > 0.38 && poly < 0.62, "poly accuracy %g on identical distributions", poly);
}

static void test_svm_separated(void)
{
    static float x[2 * N_PER * D];
    static uint8_t dom[2 * N_PER];
    gaussians(x, dom, N_PER, N_PER, D, 2.0f, 12); /* means 8 std apart */
    double lin = 0, poly = 0, again = 0;
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_LINEAR, 5, 1, &lin));
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_POLY, 5, 1, &poly));
    CHECK_MSG(lin >= 0.99, "linear accuracy %g on separated Gaussians", lin);
    CHECK_MSG(poly >= 0.99, "poly accuracy %g on separated Gaussians", poly);
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, D, SD_GAP_SVM_LINEAR, 5, 1, &again));
    CHECK(again == lin); /* seeded folds: the same answer twice */

    /* XOR-like classes: no linear separation, but the cubic kernel finds it. */
    sd_rng r;
    sd_rng_seed(&r, 5);
    for (int i = 0; i < 2 * N_PER; i++) {
        float a = sd_rng_uniform(&r) * 2 - 1, b = sd_rng_uniform(&r) * 2 - 1;
        x[i * 2] = a;
        x[i * 2 + 1] = b;
        dom[i] = a * b > 0;
    }
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, 2, SD_GAP_SVM_LINEAR, 5, 1, &lin));
    CHECK_OK(sd_gap_svm_accuracy(x, dom, 2 * N_PER, 2, SD_GAP_SVM_POLY, 5, 1, &poly));
    CHECK_MSG(lin < 0.7, "linear accuracy %g on XOR", lin);
    CHECK_MSG(poly > 0.85, "poly accuracy %g on XOR", poly);
}

static void test_svm_errors(void)
{
    float x[6 * 2] = {0};
    uint8_t dom[6] = {0, 0, 0, 0, 1, 1};
    double acc;
    CHECK(sd_gap_svm_accuracy(x, dom, 6, 2, SD_GAP_SVM_LINEAR, 3, 1, &acc) == SD_ERR_DATA);
    CHECK_ERR_HAS("2 of B");
    CHECK(sd_gap_svm_accuracy(x, dom, 6, 2, SD_GAP_SVM_LINEAR, 1, 1, &acc) == SD_ERR_ARG);
    CHECK_ERR_HAS("folds 1");
}

static void test_mmd_hand(void)
{
    /* A = {0, 1}, B = {3, 4}: pair distances 1, 1, 2, 3, 3, 4, median 2.5;
     * MMD^2_u = 2 k(1) - (2 k(3) + k(2) + k(4)) / 2 with
     * k(t) = exp(-t^2 / (2 * 2.5^2)) = 0.8573872680 (Python). */
    float x[4] = {0, 1, 3, 4};
    uint8_t dom[4] = {0, 0, 1, 1};
    double mmd, p, sigma;
    CHECK_OK(sd_gap_mmd(x, dom, 4, 1, 0, 1, &mmd, &p, &sigma));
    CHECK_NEAR(sigma, 2.5, 1e-6);
    CHECK_NEAR(mmd, 0.8573872680498573, 1e-6);
    CHECK(p == 1.0);
    /* Row order must not matter, only the labels. */
    float y[4] = {3, 0, 4, 1};
    uint8_t domy[4] = {1, 0, 1, 0};
    CHECK_OK(sd_gap_mmd(y, domy, 4, 1, 0, 1, &mmd, &p, NULL));
    CHECK_NEAR(mmd, 0.8573872680498573, 1e-6);
    CHECK(sd_gap_mmd(x, dom, 3, 1, 10, 1, &mmd, &p, NULL) == SD_ERR_DATA);
    CHECK_ERR_HAS("each domain needs >= 2");
}

/* Direct O(n^2) MMD^2_u with a given sigma, to check the fast statistic. */
static double mmd_naive(const float *x, const uint8_t *dom, int n, int d, double sigma)
{
    double saa = 0, sbb = 0, sab = 0;
    int na = 0;
    for (int i = 0; i < n; i++)
        na += !dom[i];
    int nb = n - na;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j)
                continue;
            double s = 0;
            for (int t = 0; t < d; t++)
                s += (double)(x[i * d + t] - x[j * d + t]) * (x[i * d + t] - x[j * d + t]);
            double k = exp(-s / (2 * sigma * sigma));
            if (!dom[i] && !dom[j])
                saa += k;
            else if (dom[i] && dom[j])
                sbb += k;
            else if (!dom[i])
                sab += k;
        }
    return saa / ((double)na * (na - 1)) + sbb / ((double)nb * (nb - 1)) - 2 * sab / ((double)na * nb);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_mmd_identical(void)
{
    static float x[2 * N_PER * D];
    static uint8_t dom[2 * N_PER];
    gaussians(x, dom, N_PER, N_PER, D, 0, 21);
    double mmd, p, sigma;
    CHECK_OK(sd_gap_mmd(x, dom, 2 * N_PER, D, 200, 3, &mmd, &p, &sigma));
    CHECK_MSG(fabs(mmd) < 0.01, "MMD^2_u %g for one distribution", mmd);
    CHECK_MSG(p > 0.05, "p %g for one distribution", p);
    /* The median and the statistic, recomputed the slow way. */
    int n = 2 * N_PER;
    static double pd[2 * N_PER * (2 * N_PER - 1) / 2];
    int m = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double s = 0;
            for (int t = 0; t < D; t++)
                s += (double)(x[i * D + t] - x[j * D + t]) * (x[i * D + t] - x[j * D + t]);
            pd[m++] = sqrt(s);
        }
    qsort(pd, m, sizeof pd[0], cmp_double);
    double med = m % 2 ? pd[m / 2] : 0.5 * (pd[m / 2 - 1] + pd[m / 2]);
    CHECK_NEAR(sigma, med, 1e-4);
    CHECK_NEAR(mmd, mmd_naive(x, dom, n, D, med), 1e-5);
}

static void test_mmd_separated(void)
{
    static float x[2 * N_PER * D];
    static uint8_t dom[2 * N_PER];
    gaussians(x, dom, N_PER, N_PER, D, 1.0f, 22);
    double mmd, p, mmd2, p2;
    CHECK_OK(sd_gap_mmd(x, dom, 2 * N_PER, D, 200, 3, &mmd, &p, NULL));
    CHECK_MSG(mmd > 0.1, "MMD^2_u %g for separated Gaussians", mmd);
    CHECK_NEAR(p, 1.0 / 201, 1e-12); /* no permutation reaches the observed value */
    CHECK_OK(sd_gap_mmd(x, dom, 2 * N_PER, D, 200, 3, &mmd2, &p2, NULL));
    CHECK(mmd2 == mmd && p2 == p);
    /* A small shift: large but not every permutation below it is certain,
     * yet p must still be below 0.01. */
    gaussians(x, dom, N_PER, N_PER, D, 0.3f, 23);
    CHECK_OK(sd_gap_mmd(x, dom, 2 * N_PER, D, 200, 3, &mmd, &p, NULL));
    CHECK_MSG(p < 0.01, "p %g for a shift of 0.3 in 16 dims", p);
}

static void test_class_kl(void)
{
    sd_gap_class_hist h;
    double kl[SD_NUM_CLASSES];
    CHECK_OK(sd_gap_class_hist_init(&h, SD_GAP_KL_BINS));
    double props[3][SD_NUM_CLASSES] = {{0}};
    props[0][0] = 0.3, props[0][2] = 0.7;
    props[1][0] = 0.55, props[1][10] = 0.45;
    props[2][0] = 1.0;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(sd_gap_class_hist_add_props(&h, 0, props[i]));
        CHECK_OK(sd_gap_class_hist_add_props(&h, 1, props[i]));
    }
    CHECK_OK(sd_gap_class_hist_kl(&h, SD_GAP_KL_ALPHA, kl));
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        CHECK(kl[c] == 0);
    CHECK(h.count[0][0][19] == 1); /* a proportion of 1 falls in the last bin */

    /* Two bins, alpha 0.5: road in A at 0.1, 0.2, 0.9 -> frequencies
     * (2/3, 1/3), in B at 0.7, 0.8, 0.6 -> (0, 1); P = (2/3 + .5, 1/3 + .5) / 2,
     * Q = (.5, 1.5) / 2, KL = sum P ln(P/Q) = 0.2493459748 (Python). */
    CHECK_OK(sd_gap_class_hist_init(&h, 2));
    double a[3] = {0.1, 0.2, 0.9}, b[3] = {0.7, 0.8, 0.6};
    for (int i = 0; i < 3; i++) {
        double pa[SD_NUM_CLASSES] = {0}, pb[SD_NUM_CLASSES] = {0};
        pa[0] = a[i], pa[1] = 1 - a[i];
        pb[0] = b[i], pb[1] = 1 - b[i];
        CHECK_OK(sd_gap_class_hist_add_props(&h, 0, pa));
        CHECK_OK(sd_gap_class_hist_add_props(&h, 1, pb));
    }
    CHECK_OK(sd_gap_class_hist_kl(&h, 0.5, kl));
    CHECK_NEAR(kl[0], 0.24934597484998566, 1e-12);
    CHECK(kl[1] > 0);
    CHECK(kl[2] == 0); /* absent in both */

    /* The same distribution from 3 images in A and 6 in B: KL 0. */
    CHECK_OK(sd_gap_class_hist_init(&h, 4));
    for (int i = 0; i < 9; i++) {
        double pr[SD_NUM_CLASSES] = {0};
        pr[0] = a[i % 3], pr[1] = 1 - a[i % 3];
        CHECK_OK(sd_gap_class_hist_add_props(&h, i < 3 ? 0 : 1, pr));
    }
    CHECK_OK(sd_gap_class_hist_kl(&h, SD_GAP_KL_ALPHA, kl));
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        CHECK_MSG(fabs(kl[c]) < 1e-12, "class %d: KL %g for one distribution", c, kl[c]);

    /* From a label image: 2 road, 1 sidewalk, 1 ignored, 1 unknown id. */
    uint8_t lab[5] = {0, 0, 1, 255, 40};
    CHECK_OK(sd_gap_class_hist_init(&h, 3));
    CHECK_OK(sd_gap_class_hist_add(&h, 1, lab, 5, 1));
    CHECK(h.n_images[1] == 1);
    CHECK(h.count[1][0][2] == 1); /* 2/3 -> bin 2 */
    CHECK(h.count[1][1][1] == 1); /* 1/3 -> bin 1 */
    CHECK(h.count[1][2][0] == 1);
    uint8_t void_only[2] = {255, 255};
    CHECK_OK(sd_gap_class_hist_add(&h, 1, void_only, 2, 1));
    CHECK(h.n_images[1] == 1);

    CHECK(sd_gap_class_hist_kl(&h, 0.5, kl) == SD_ERR_DATA);
    CHECK_ERR_HAS("0 images with valid pixels in A");
    CHECK(sd_gap_class_hist_init(&h, 0) == SD_ERR_ARG);
    CHECK_ERR_HAS("0 bins");
    double badp[SD_NUM_CLASSES] = {0};
    badp[5] = 1.5;
    CHECK_OK(sd_gap_class_hist_init(&h, 4));
    CHECK(sd_gap_class_hist_add_props(&h, 0, badp) == SD_ERR_DATA);
    CHECK_ERR_HAS("pole");
}

static void test_retrieval(void)
{
    /* A = {0, 10}, B = {1, 11} on a line: each A point's neighbour is B. */
    float x[4] = {0, 10, 1, 11};
    uint8_t dom[4] = {0, 0, 1, 1};
    int nbr[4];
    double frac;
    CHECK_OK(sd_gap_retrieval(x, dom, 4, 1, 1, SD_GAP_METRIC_L2, nbr, &frac));
    CHECK(frac == 1.0);
    CHECK(nbr[0] == 2 && nbr[1] == 3);
    CHECK_OK(sd_gap_retrieval(x, dom, 4, 1, 2, SD_GAP_METRIC_L2, nbr, &frac));
    CHECK(nbr[0] == 2 && nbr[1] == 1 && nbr[2] == 3 && nbr[3] == 2);
    CHECK(frac == 0.75);
    /* Cosine: direction only. */
    float y[8] = {1, 0, 0, 1, 5, 0.1f, 0.1f, 5};
    CHECK_OK(sd_gap_retrieval(y, dom, 4, 2, 1, SD_GAP_METRIC_COSINE, nbr, &frac));
    CHECK(nbr[0] == 2 && nbr[1] == 3);
    CHECK(sd_gap_retrieval(x, dom, 4, 1, 4, SD_GAP_METRIC_L2, nbr, &frac) == SD_ERR_ARG);
    CHECK_ERR_HAS("k = 4");

    static float g[2 * N_PER * D];
    static uint8_t gd[2 * N_PER];
    gaussians(g, gd, N_PER, N_PER, D, 3.0f, 31);
    CHECK_OK(sd_gap_retrieval(g, gd, 2 * N_PER, D, 5, SD_GAP_METRIC_L2, NULL, &frac));
    CHECK_MSG(frac == 0, "other-domain fraction %g for separated Gaussians", frac);
    gaussians(g, gd, N_PER, N_PER, D, 0, 32);
    CHECK_OK(sd_gap_retrieval(g, gd, 2 * N_PER, D, 5, SD_GAP_METRIC_L2, NULL, &frac));
    CHECK_MSG(frac > 0.4 && frac < 0.6, "other-domain fraction %g for one distribution", frac);
}

static void test_pca(void)
{
    /* Std 5 along a random unit u, 1 across: PC 1 is u (up to sign). */
    enum { N = 300, DD = 16 };
    static float x[N * DD];
    double u[DD], nu = 0;
    sd_rng r;
    sd_rng_seed(&r, 41);
    for (int j = 0; j < DD; j++) {
        u[j] = sd_rng_normal(&r);
        nu += u[j] * u[j];
    }
    for (int j = 0; j < DD; j++)
        u[j] /= sqrt(nu);
    for (int i = 0; i < N; i++) {
        double t = 5 * sd_rng_normal(&r);
        for (int j = 0; j < DD; j++)
            x[i * DD + j] = (float)(t * u[j] + sd_rng_normal(&r) + 3);
    }
    float comp[2 * DD], proj[2 * N];
    double var[2];
    CHECK_OK(sd_gap_pca(x, N, DD, 2, 1, comp, proj, var));
    double dot = 0, n0 = 0, n1 = 0, c01 = 0;
    for (int j = 0; j < DD; j++) {
        dot += comp[j] * u[j];
        n0 += comp[j] * comp[j];
        n1 += comp[DD + j] * comp[DD + j];
        c01 += comp[j] * comp[DD + j];
    }
    CHECK_MSG(fabs(dot) > 0.99, "|<pc1, u>| = %g", fabs(dot));
    CHECK_NEAR(n0, 1, 1e-5);
    CHECK_NEAR(n1, 1, 1e-5);
    CHECK(fabs(c01) < 1e-5);
    CHECK_MSG(var[0] > 20 && var[0] < 31, "variance along pc1 %g (expected about 26)", var[0]);
    CHECK_MSG(var[1] > 1 && var[1] < 2, "variance along pc2 %g (expected a little over 1)", var[1]);
    double pm = 0;
    for (int i = 0; i < N; i++)
        pm += proj[2 * i];
    CHECK(fabs(pm / N) < 1e-3); /* projections of centred rows */

    /* Exact case: points on the line y = 2x; PC 1 = (1, 2) / sqrt 5. */
    float line[8] = {0, 0, 1, 2, 2, 4, 3, 6};
    CHECK_OK(sd_gap_pca(line, 4, 2, 1, 1, comp, proj, var));
    CHECK_NEAR(comp[0], 1 / sqrt(5.0), 1e-6);
    CHECK_NEAR(comp[1], 2 / sqrt(5.0), 1e-6);
    CHECK_NEAR(var[0], 6.25, 1e-5); /* projections +-1.5 sqrt5, +-0.5 sqrt5 */
    CHECK(sd_gap_pca(line, 4, 2, 3, 1, comp, proj, var) == SD_ERR_ARG);
    CHECK_ERR_HAS("3 components");
}

static void test_features_io(void)
{
    /* Written by numpy.save(np.array([[1,2,3],[4,5,6.5]], dtype='<f4')). */
    static const unsigned char npy[] =
        "\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        "                                                          \x0a"
        "\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40\x00\x00\xd0\x40";
    CHECK(sizeof npy - 1 == 152);
    const char *p = tmp_path("a.npy");
    FILE *f = fopen(p, "wb");
    fwrite(npy, 1, sizeof npy - 1, f);
    fclose(f);
    float *x = NULL;
    int n = 0, d = 0;
    CHECK_OK(sd_gap_features_read(p, &x, &n, &d));
    CHECK(n == 2 && d == 3);
    if (x && n == 2 && d == 3) {
        CHECK(x[0] == 1 && x[2] == 3 && x[5] == 6.5f);
    }
    free(x);
    /* Truncated data. */
    f = fopen(p, "wb");
    fwrite(npy, 1, sizeof npy - 5, f);
    fclose(f);
    CHECK(sd_gap_features_read(p, &x, &n, &d) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("truncated .npy data");
    CHECK_ERR_HAS("a.npy");
    /* Our own writer round-trips, float64 is converted, wrong dtype named. */
    float w[6] = {1.5f, -2, 3, 4, 5, 6};
    CHECK_OK(sd_gap_features_write_npy(p, w, 3, 2));
    x = NULL;
    CHECK_OK(sd_gap_features_read(p, &x, &n, &d));
    CHECK(n == 3 && d == 2 && x && !memcmp(x, w, sizeof w));
    free(x);
    f = fopen(p, "wb");
    static const char bad_dtype[] = "\x93NUMPY\x01\x00\x3d\x00{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1), }\n"
                                    "\x01\x00\x00\x00";
    fwrite(bad_dtype, 1, sizeof bad_dtype - 1, f);
    fclose(f);
    CHECK(sd_gap_features_read(p, &x, &n, &d) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("'descr' is '<i4'");

    const char *t = tmp_path("a.csv");
    f = fopen(t, "w");
    fputs("# two rows\n1, 2 ,3\n\n4\t5 6e-1\n", f);
    fclose(f);
    x = NULL;
    CHECK_OK(sd_gap_features_read(t, &x, &n, &d));
    CHECK(n == 2 && d == 3 && x && x[3] == 4 && fabsf(x[5] - 0.6f) < 1e-7f);
    free(x);
    f = fopen(t, "w");
    fputs("1,2,3\n4,5\n", f);
    fclose(f);
    CHECK(sd_gap_features_read(t, &x, &n, &d) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("a.csv:2: 2 numbers, expected 3");
    f = fopen(t, "w");
    fputs("1,2,abc\n", f);
    fclose(f);
    CHECK(sd_gap_features_read(t, &x, &n, &d) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("column 3 is 'abc'");
    CHECK(sd_gap_features_read(tmp_path("missing.npy"), &x, &n, &d) == SD_ERR_IO);
    CHECK_ERR_HAS("missing.npy");
}

static void test_pool(void)
{
    /* C = 2, H = 2, W = 3. */
    float fm[12] = {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60};
    float out[3 * 2];
    int pos[6];
    CHECK_OK(sd_gap_pool_features(fm, 2, 2, 3, 0, NULL, out, NULL));
    CHECK_NEAR(out[0], 3.5, 1e-6);
    CHECK_NEAR(out[1], 35, 1e-6);
    sd_rng r;
    sd_rng_seed(&r, 1);
    CHECK_OK(sd_gap_pool_features(fm, 2, 2, 3, 3, &r, out, pos));
    for (int k = 0; k < 3; k++) {
        CHECK(pos[2 * k] >= 0 && pos[2 * k] < 3 && pos[2 * k + 1] >= 0 && pos[2 * k + 1] < 2);
        CHECK(out[2 * k] == fm[pos[2 * k + 1] * 3 + pos[2 * k]]);
        CHECK(out[2 * k + 1] == 10 * out[2 * k]);
    }
    CHECK(sd_gap_pool_features(fm, 2, 0, 3, 0, NULL, out, NULL) == SD_ERR_SHAPE);
    CHECK_ERR_HAS("2x0x3");
}

static void test_measure_and_outputs(void)
{
    enum { NA = 120, NB = 80 };
    static float x[(NA + NB) * D];
    static uint8_t dom[NA + NB];
    gaussians(x, dom, NA, NB, D, 2.0f, 51);
    sd_gap_options o;
    sd_gap_options_default(&o);
    o.max_per_domain = 90; /* both get 80 rows: A is subsampled to B's size */
    o.n_perm = 100;
    sd_gap_result res = {0};
    CHECK_OK(sd_gap_measure(x, NA, x + NA * D, NB, D, &o, &res));
    CHECK(res.has_features && res.n_a == 80 && res.n_b == 80 && res.d == D);
    CHECK(res.svm_linear_accuracy >= 0.99 && res.svm_poly_accuracy >= 0.99);
    CHECK_NEAR(res.mmd_p, 1.0 / 101, 1e-12);
    CHECK(res.retrieval_other_domain == 0);
    for (int i = 1; i < res.n_a; i++)
        CHECK(res.rows_a[i] > res.rows_a[i - 1] && res.rows_a[i] < NA);
    CHECK(res.rows_b[NB - 1] == NB - 1);
    /* The domains separate along PC 1. */
    double ma = 0, mb = 0;
    for (int i = 0; i < 80; i++)
        ma += res.pca[2 * i];
    for (int i = 80; i < 160; i++)
        mb += res.pca[2 * i];
    CHECK(fabs(ma / 80 - mb / 80) > 4);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        res.class_kl[c] = c * 0.5;
    res.has_class_kl = true;
    const char *jp = tmp_path("gap.json");
    CHECK_OK(sd_gap_result_write_json(jp, &res));
    char *js = test_slurp(jp, NULL);
    CHECK(js && strstr(js, "\"svm_linear_accuracy\": 1.000000"));
    CHECK(js && strstr(js, "\"mmd_p\": 0.009901"));
    CHECK(js && strstr(js, "\"class_kl\": {\"road\": 0.000000, \"sidewalk\": 0.500000"));
    CHECK(js && strstr(js, "\"bicycle\": 9.000000}, \"retrieval_other_domain\": 0.000000}"));

    free(js);
    const char *sp = tmp_path("pca.svg");
    uint8_t pdom[160];
    for (int i = 0; i < 160; i++)
        pdom[i] = i >= 80;
    CHECK_OK(sd_gap_scatter_svg(sp, res.pca, pdom, 160, "sim <A>", "real", "PCA & more"));
    js = test_slurp(sp, NULL);
    CHECK(js && strstr(js, "<svg") && strstr(js, "sim &lt;A&gt;") && strstr(js, "PCA &amp; more"));
    int circles = 0;
    for (char *q = js; q && (q = strstr(q, "<circle")); q++)
        circles++;
    CHECK(circles == 160 + 2); /* the points and the two legend marks */
    free(js);

    /* Labels only: the feature keys are left out. */
    sd_gap_result lab = {0};
    lab.has_class_kl = true;
    CHECK_OK(sd_gap_result_write_json(jp, &lab));
    js = test_slurp(jp, NULL);
    CHECK(js && !strstr(js, "mmd") && strstr(js, "{\"class_kl\": {\"road\": 0.000000"));
    free(js);
    sd_gap_result_free(&res);
    CHECK(sd_gap_result_write_json(tmp_path("no/such/dir.json"), &lab) == SD_ERR_IO);
    CHECK_ERR_HAS("no/such/dir.json");
}

static void test_contact_sheet(void)
{
    enum { TW = 8, TH = 6 };
    sd_image tiles[4];
    const sd_image *thumb[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(sd_image_alloc(&tiles[i], TW, TH, 3, 8));
        memset(tiles[i].data, 40 * i, TW * TH * 3);
        thumb[i] = &tiles[i];
    }
    uint8_t dom[4] = {0, 0, 1, 1};
    int query[2] = {0, 1}, nbr[4] = {2, 1, 3, 0}, mark[8] = {-1, -1, 2, 3, -1, -1, -1, -1};
    const char *p = tmp_path("sheet.png");
    CHECK_OK(sd_gap_contact_sheet(p, thumb, dom, query, 2, nbr, 2, mark));
    sd_image img = {0};
    CHECK_OK(sd_image_read(p, &img, false));
    /* width 4 + 16 + 16 + 2 * (16 + 4), height 4 + 2 * (14 + 4); tile 8x6 +
     * border 4 = 16x14. */
    CHECK(img.w == 4 + 16 + 16 + 2 * 20 && img.h == 4 + 2 * 18 && img.c == 3);
    if (img.data && img.w == 76) {
        const uint8_t *px = img.data;
        /* Row 0, query 0's border is orange; its first neighbour (row 2, B) blue. */
        CHECK(px[(4 * 76 + 4) * 3] == 255 && px[(4 * 76 + 4) * 3 + 1] == 127);
        int x0 = 4 + 16 + 16;
        CHECK(px[(4 * 76 + x0) * 3] == 31 && px[(4 * 76 + x0) * 3 + 2] == 180);
        /* Inside the neighbour tile: thumbnail 2's grey 80. */
        CHECK(px[((4 + 4) * 76 + x0 + 4) * 3] == 80);
        /* Row 1's query (row 1) carries the magenta mark at (2, 3). */
        int y1 = 4 + 18 + 4 + 3, xm = 4 + 4 + 2;
        CHECK(px[(y1 * 76 + xm) * 3] == 255 && px[(y1 * 76 + xm) * 3 + 1] == 0 && px[(y1 * 76 + xm) * 3 + 2] == 255);
    }
    sd_image_free(&img);
    sd_image bad;
    CHECK_OK(sd_image_alloc(&bad, TW + 1, TH, 3, 8));
    thumb[3] = &bad;
    CHECK(sd_gap_contact_sheet(p, thumb, dom, query, 2, nbr, 2, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("row 3");
    sd_image_free(&bad);
    for (int i = 0; i < 4; i++)
        sd_image_free(&tiles[i]);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda_test_gap_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_svm_identical);
    RUN(test_svm_separated);
    RUN(test_svm_errors);
    RUN(test_mmd_hand);
    RUN(test_mmd_identical);
    RUN(test_mmd_separated);
    RUN(test_class_kl);
    RUN(test_retrieval);
    RUN(test_pca);
    RUN(test_features_io);
    RUN(test_pool);
    RUN(test_measure_and_outputs);
    RUN(test_contact_sheet);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    TESTS_DONE();
}
