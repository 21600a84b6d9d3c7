/* Principal components by subspace iteration (no LAPACK in this build: the
 * eigen part is a few lines of power iteration with Gram-Schmidt), and the
 * SVG scatter plot of the 2-D projection coloured by domain. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/gap.h"
#include "io/file.h"

enum { PCA_MAX_COMP = 8, PCA_MAX_ITER = 300 };

/* Orthonormalises the k columns of V (d x k, row-major) in order; a column
 * that vanished (rank-deficient data) is replaced by a unit vector
 * orthogonal to the previous ones. */
static void orthonormalise(double *V, int d, int k)
{
    for (int a = 0; a < k; a++) {
        for (int pass = 0; pass < 2; pass++) /* twice is enough (Kahan) */
            for (int b = 0; b < a; b++) {
                double dot = 0;
                for (int j = 0; j < d; j++)
                    dot += V[(size_t)j * k + a] * V[(size_t)j * k + b];
                for (int j = 0; j < d; j++)
                    V[(size_t)j * k + a] -= dot * V[(size_t)j * k + b];
            }
        double nrm = 0;
        for (int j = 0; j < d; j++)
            nrm += V[(size_t)j * k + a] * V[(size_t)j * k + a];
        nrm = sqrt(nrm);
        if (nrm < 1e-300) {
            /* A direction of zero variance: any unit vector orthogonal to the
             * others will do; try the axes in turn. */
            for (int e = 0; e < d; e++) {
                for (int j = 0; j < d; j++)
                    V[(size_t)j * k + a] = j == e;
                for (int b = 0; b < a; b++) {
                    double dot = V[(size_t)e * k + b];
                    for (int j = 0; j < d; j++)
                        V[(size_t)j * k + a] -= dot * V[(size_t)j * k + b];
                }
                nrm = 0;
                for (int j = 0; j < d; j++)
                    nrm += V[(size_t)j * k + a] * V[(size_t)j * k + a];
                nrm = sqrt(nrm);
                if (nrm > 1e-6)
                    break;
            }
        }
        for (int j = 0; j < d; j++)
            V[(size_t)j * k + a] /= nrm;
    }
}

sd_status sd_gap_pca(const float *x, int n, int d, int n_comp, uint64_t seed,
                     float *comp, float *proj, double *var)
{
    if (!x || !comp || n < 2 || d < 1)
        return sd_fail(SD_ERR_ARG, "pca: need >= 2 rows and >= 1 column (n %d, d %d)", n, d);
    if (n_comp < 1 || n_comp > d || n_comp > PCA_MAX_COMP)
        return sd_fail(SD_ERR_ARG, "pca: %d components, expected 1..%d", n_comp, d < PCA_MAX_COMP ? d : PCA_MAX_COMP);
    /* A few extra vectors: the top n_comp converge at the rate
     * lambda_{k+1} / lambda_{n_comp} instead of lambda_{n_comp+1} / lambda_{n_comp}. */
    int k = n_comp + 6 < d ? n_comp + 6 : d;
    double *X = sd_malloc(sizeof(double) * (size_t)n * d), *mean = sd_calloc(d, sizeof(double));
    double *V = sd_malloc(sizeof(double) * (size_t)d * k), *W = sd_malloc(sizeof(double) * (size_t)d * k);
    double *Y = sd_malloc(sizeof(double) * (size_t)n * k);
    sd_status st = SD_OK;
    if (!X || !mean || !V || !W || !Y) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            mean[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++)
        mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = x[(size_t)i * d + j] - mean[j];
    sd_rng rng = sd_rng_fork(seed, 0x9ca);
    for (size_t i = 0; i < (size_t)d * k; i++)
        V[i] = sd_rng_normal(&rng);
    orthonormalise(V, d, k);
    for (int it = 0; it < PCA_MAX_ITER; it++) {
        /* W = X^T (X V): the covariance times V without forming d x d. */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, k, d, 1.0, X, d, V, k, 0.0, Y, k);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, k, n, 1.0, X, d, Y, k, 0.0, W, k);
        orthonormalise(W, d, k);
        double worst = 0;
        for (int a = 0; a < n_comp; a++) {
            double dot = 0;
            for (int j = 0; j < d; j++)
                dot += W[(size_t)j * k + a] * V[(size_t)j * k + a];
            if (1 - fabs(dot) > worst)
                worst = 1 - fabs(dot);
        }
        memcpy(V, W, sizeof(double) * (size_t)d * k);
        if (worst < 1e-12)
            break;
    }
    /* A fixed sign per component, so plots do not flip between runs. */
    for (int a = 0; a < n_comp; a++) {
        int jm = 0;
        for (int j = 1; j < d; j++)
            if (fabs(V[(size_t)j * k + a]) > fabs(V[(size_t)jm * k + a]))
                jm = j;
        double s = V[(size_t)jm * k + a] < 0 ? -1 : 1;
        for (int j = 0; j < d; j++)
            comp[(size_t)a * d + j] = (float)(s * V[(size_t)j * k + a]);
    }
    for (int a = 0; a < n_comp; a++) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            double p = 0;
            for (int j = 0; j < d; j++)
                p += X[(size_t)i * d + j] * comp[(size_t)a * d + j];
            if (proj)
                proj[(size_t)i * n_comp + a] = (float)p;
            ss += p * p;
        }
        if (var)
            var[a] = ss / n;
    }
done:
    free(X);
    free(mean);
    free(V);
    free(W);
    free(Y);
    return st;
}

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

sd_status sd_gap_scatter_svg(const char *path, const float *pts, const uint8_t *domain, int n,
                             const char *name_a, const char *name_b, const char *title)
{
    if (!path || !pts || !domain || n < 1)
        return sd_fail(SD_ERR_ARG, "scatter plot %s: no points", path ? path : "(null)");
    float lo[2] = {pts[0], pts[1]}, hi[2] = {pts[0], pts[1]};
    for (int i = 0; i < n; i++)
        for (int a = 0; a < 2; a++) {
            float v = pts[2 * i + a];
            if (!isfinite(v))
                return sd_fail(SD_ERR_NUMERIC, "scatter plot %s: point %d is not finite", path, i);
            lo[a] = v < lo[a] ? v : lo[a];
            hi[a] = v > hi[a] ? v : hi[a];
        }
    for (int a = 0; a < 2; a++)
        if (hi[a] - lo[a] < 1e-12f) {
            lo[a] -= 1;
            hi[a] += 1;
        }
    char tmp[4096];
    if (io_tmp_name(tmp, sizeof tmp, path) >= (int)sizeof tmp)
        return sd_fail(SD_ERR_ARG, "scatter plot: path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "scatter plot %s: cannot create: %s", tmp, strerror(errno));
    const double W = 640, H = 520, L = 60, R = 20, T = 40, B = 50;
    const char *col[2] = {"#ff7f0e", "#1f77b4"};
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    xml_text(f, title ? title : "PCA of features");
    fprintf(f, "</text>\n<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n",
            L, T, W - L - R, H - T - B);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">PC 1</text>\n", L + (W - L - R) / 2, H - 12);
    fprintf(f, "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 %g)\">PC 2</text>\n",
            T + (H - T - B) / 2, T + (H - T - B) / 2);
    for (int t = 0; t <= 4; t++) {
        double fx = lo[0] + (hi[0] - lo[0]) * t / 4, fy = lo[1] + (hi[1] - lo[1]) * t / 4;
        double px = L + (W - L - R) * t / 4, py = H - B - (H - T - B) * t / 4;
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" fill=\"#444\">%.3g</text>\n", px, H - B + 16, fx);
        fprintf(f, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" fill=\"#444\">%.3g</text>\n", L - 4, py + 4, fy);
    }
    /* B first, then A on top: A are the queries of the other measures. */
    for (int pass = 1; pass >= 0; pass--) {
        fprintf(f, "<g fill=\"%s\" fill-opacity=\"0.6\">\n", col[pass]);
        for (int i = 0; i < n; i++) {
            if ((domain[i] != 0) != pass)
                continue;
            double px = L + 4 + (W - L - R - 8) * (pts[2 * i] - lo[0]) / (hi[0] - lo[0]);
            double py = H - B - 4 - (H - T - B - 8) * (pts[2 * i + 1] - lo[1]) / (hi[1] - lo[1]);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>\n", px, py);
        }
        fprintf(f, "</g>\n");
    }
    const char *names[2] = {name_a ? name_a : "A", name_b ? name_b : "B"};
    for (int a = 0; a < 2; a++) {
        fprintf(f, "<circle cx=\"%g\" cy=\"%g\" r=\"5\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">", L + 14,
                T + 16 + 18 * a, col[a], L + 24, T + 20 + 18 * a);
        xml_text(f, names[a]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) || bad) {
        remove(tmp);
        return sd_fail(SD_ERR_IO, "scatter plot %s: write failed", tmp);
    }
    if (rename(tmp, path)) {
        remove(tmp);
        return sd_fail(SD_ERR_IO, "scatter plot %s: cannot rename from %s: %s", path, tmp, strerror(errno));
    }
    return SD_OK;
}
