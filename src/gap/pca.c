/* Principal components through LAPACK (dsyevr on the covariance, or on the
 * Gram matrix when there are fewer rows than features), and the SVG
 * scatter plot of the 2-D projection coloured by domain. */
#include <cblas.h>
#include <lapacke.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/gap.h"
#include "io/file.h"

enum { PCA_MAX_COMP = 8 };

/* The top k eigenvectors of the symmetric m x m matrix A (row-major, upper
 * triangle used, destroyed), largest first, into Z (m x k, row-major);
 * their eigenvalues into lam. LAPACK's dsyevr (MRRR) with an index range
 * computes only those k. */
static sd_status top_eigen(double *A, int m, int k, double *lam, double *Z)
{
    lapack_int found = 0;
    lapack_int *isuppz = sd_malloc(sizeof(lapack_int) * 2 * (size_t)k);
    double *w = sd_malloc(sizeof(double) * (size_t)m), *Zt = sd_malloc(sizeof(double) * (size_t)m * k);
    sd_status st = SD_OK;
    if (!isuppz || !w || !Zt)
        st = sd_fail(SD_ERR_NOMEM, "pca: out of memory for a %dx%d eigenproblem", m, m);
    lapack_int info = st ? 0 : LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', m, A, m, 0, 0, m - k + 1, m, 0.0,
                                              &found, w, Zt, k, isuppz);
    if (!st && (info != 0 || found != k))
        st = sd_fail(SD_ERR_NUMERIC, "pca: LAPACK dsyevr failed on a %dx%d matrix (info %d, %d of %d eigenvectors)",
                     m, m, (int)info, (int)found, k);
    for (int a = 0; a < k && !st; a++) {   /* dsyevr returns them ascending */
        lam[a] = w[k - 1 - a];
        for (int j = 0; j < m; j++)
            Z[(size_t)j * k + a] = Zt[(size_t)j * k + (k - 1 - a)];
    }
    free(isuppz);
    free(w);
    free(Zt);
    return st;
}

/* Components from the d x d covariance X^T X (n >= d, or a rank-deficient
 * Gram path): V gets d x k. */
static sd_status pca_covariance(const double *X, int n, int d, int k, double *V)
{
    double *C = sd_malloc(sizeof(double) * (size_t)d * d), lam[PCA_MAX_COMP];
    if (!C)
        return sd_fail(SD_ERR_NOMEM, "pca: out of memory for a %dx%d covariance", d, d);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0, X, d, 0.0, C, d);
    sd_status st = top_eigen(C, d, k, lam, V);
    free(C);
    return st;
}

/* With fewer rows than columns, the n x n Gram matrix X X^T has the same
 * nonzero eigenvalues; its eigenvector u gives the component X^T u / |X^T u|.
 * Returns SD_ERR_NUMERIC (without a message) where a wanted eigenvalue is
 * ~0 and the component is not determined by u. */
static sd_status pca_gram(const double *X, int n, int d, int k, double *V)
{
    double *G = sd_malloc(sizeof(double) * (size_t)n * n), *U = sd_malloc(sizeof(double) * (size_t)n * k);
    double lam[PCA_MAX_COMP];
    sd_status st = SD_OK;
    if (!G || !U)
        st = sd_fail(SD_ERR_NOMEM, "pca: out of memory for a %dx%d Gram matrix", n, n);
    if (!st) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, d, 1.0, X, d, 0.0, G, n);
        st = top_eigen(G, n, k, lam, U);
    }
    if (!st) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, k, n, 1.0, X, d, U, k, 0.0, V, k);
        for (int a = 0; a < k && !st; a++) {
            double nrm = 0;
            for (int j = 0; j < d; j++)
                nrm += V[(size_t)j * k + a] * V[(size_t)j * k + a];
            nrm = sqrt(nrm);
            if (!(lam[a] > 1e-10 * lam[0]) || nrm == 0)
                st = SD_ERR_NUMERIC;
            for (int j = 0; j < d && !st; j++)
                V[(size_t)j * k + a] /= nrm;
        }
    }
    free(G);
    free(U);
    return st;
}

sd_status sd_gap_pca(const float *x, int n, int d, int n_comp, uint64_t seed,
                     float *comp, float *proj, double *var)
{
    (void)seed;   /* (the power iteration LAPACK replaced started from random vectors) */
    if (!x || !comp || n < 2 || d < 1)
        return sd_fail(SD_ERR_ARG, "pca: need >= 2 rows and >= 1 column (n %d, d %d)", n, d);
    if (n_comp < 1 || n_comp > d || n_comp > PCA_MAX_COMP)
        return sd_fail(SD_ERR_ARG, "pca: %d components, expected 1..%d", n_comp, d < PCA_MAX_COMP ? d : PCA_MAX_COMP);
    int k = n_comp;
    double *X = sd_malloc(sizeof(double) * (size_t)n * d), *mean = sd_calloc(d, sizeof(double));
    double *V = sd_malloc(sizeof(double) * (size_t)d * k);
    sd_status st = SD_OK;
    if (!X || !mean || !V) {
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
    /* the smaller eigenproblem: n x n when there are fewer rows than features */
    st = n < d && k <= n ? pca_gram(X, n, d, k, V) : SD_ERR_NUMERIC;
    if (st == SD_ERR_NUMERIC)
        st = pca_covariance(X, n, d, k, V);
    if (st)
        goto done;
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
