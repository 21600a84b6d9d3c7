/* Domain classification accuracy by stratified k-fold cross-validation with
 * a linear SVM (liblinear) and a polynomial-kernel SVM (libsvm). Only the
 * glue to the two libraries lives here; the other measures are elsewhere. */
#include <libsvm/svm.h>
#include <linear.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/gap.h"

static void quiet(const char *s) { (void)s; }

/* Per-fold statistics: computed on the training rows only, so the held-out
 * rows leak nothing into the scaling. */
static void fold_stats(const float *x, const int *fold, int n, int d, int f, double *mean, double *inv_std)
{
    int m = 0;
    for (int j = 0; j < d; j++)
        mean[j] = inv_std[j] = 0;
    for (int i = 0; i < n; i++) {
        if (fold[i] == f)
            continue;
        m++;
        for (int j = 0; j < d; j++)
            mean[j] += x[(size_t)i * d + j];
    }
    for (int j = 0; j < d; j++)
        mean[j] /= m;
    for (int i = 0; i < n; i++) {
        if (fold[i] == f)
            continue;
        for (int j = 0; j < d; j++) {
            double t = x[(size_t)i * d + j] - mean[j];
            inv_std[j] += t * t;
        }
    }
    for (int j = 0; j < d; j++) {
        double sd = sqrt(inv_std[j] / m);
        inv_std[j] = sd > 1e-12 ? 1.0 / sd : 0.0;
    }
}

/* liblinear's feature_node and libsvm's svm_node have the same layout; one
 * dense node table (d features, a bias slot, the -1 terminator) serves both. */
static void fill_nodes(const float *x, int n, int d, const double *mean, const double *inv_std,
                       struct feature_node *nodes, bool bias)
{
    int stride = d + 2;
    for (int i = 0; i < n; i++) {
        struct feature_node *r = nodes + (size_t)i * stride;
        int k = 0;
        for (int j = 0; j < d; j++) {
            r[k].index = j + 1;
            r[k].value = (x[(size_t)i * d + j] - mean[j]) * inv_std[j];
            k++;
        }
        if (bias) {
            r[k].index = d + 1;
            r[k].value = 1.0;
            k++;
        }
        r[k].index = -1;
        r[k].value = 0;
    }
}

static sd_status run_fold(const float *x, const uint8_t *domain, const int *fold, int n, int d,
                          sd_gap_svm_kind kind, int f, uint64_t seed, int *correct)
{
    sd_status st = SD_OK;
    double *mean = sd_malloc(sizeof(double) * d), *inv_std = sd_malloc(sizeof(double) * d);
    struct feature_node *nodes = sd_malloc(sizeof(struct feature_node) * (size_t)n * (d + 2));
    void **rows = sd_malloc(sizeof(void *) * n);
    double *y = sd_malloc(sizeof(double) * n);
    if (!mean || !inv_std || !nodes || !rows || !y) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    fold_stats(x, fold, n, d, f, mean, inv_std);
    bool bias = kind == SD_GAP_SVM_LINEAR;
    fill_nodes(x, n, d, mean, inv_std, nodes, bias);
    int l = 0;
    for (int i = 0; i < n; i++) {
        if (fold[i] == f)
            continue;
        rows[l] = nodes + (size_t)i * (d + 2);
        y[l] = domain[i] ? 1.0 : -1.0;
        l++;
    }
    if (kind == SD_GAP_SVM_LINEAR) {
        struct problem prob = {.l = l, .n = d + 1, .y = y, .x = (struct feature_node **)rows, .bias = 1.0};
        struct parameter par = {.solver_type = L2R_L2LOSS_SVC_DUAL, .eps = 0.1, .C = 1.0};
        const char *why = check_parameter(&prob, &par);
        if (why) {
            st = sd_fail(SD_ERR_ARG, "linear SVM: liblinear rejects its parameters: %s", why);
            goto done;
        }
        set_print_string_function(quiet);
        /* liblinear's dual solver shuffles with rand(): seeding it per fold
         * makes the accuracy a function of our seed alone. */
        srand((unsigned)(seed * 2654435761u + (uint64_t)f));
        struct model *m = train(&prob, &par);
        if (!m) {
            st = sd_fail(SD_ERR_NOMEM, "linear SVM: liblinear train failed (fold %d)", f);
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (fold[i] == f)
                *correct += (predict(m, nodes + (size_t)i * (d + 2)) > 0) == (domain[i] != 0);
        free_and_destroy_model(&m);
    } else {
        struct svm_problem prob = {.l = l, .y = y, .x = (struct svm_node **)rows};
        struct svm_parameter par = {.svm_type = C_SVC, .kernel_type = POLY, .degree = 3,
                                    .gamma = 1.0 / d, .coef0 = 1.0, .cache_size = 100,
                                    .eps = 1e-3, .C = 1.0, .shrinking = 1};
        const char *why = svm_check_parameter(&prob, &par);
        if (why) {
            st = sd_fail(SD_ERR_ARG, "polynomial SVM: libsvm rejects its parameters: %s", why);
            goto done;
        }
        svm_set_print_string_function(quiet);
        struct svm_model *m = svm_train(&prob, &par);
        if (!m) {
            st = sd_fail(SD_ERR_NOMEM, "polynomial SVM: libsvm train failed (fold %d)", f);
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (fold[i] == f)
                *correct += (svm_predict(m, (struct svm_node *)(nodes + (size_t)i * (d + 2))) > 0) ==
                            (domain[i] != 0);
        /* The model points into `nodes` (its support vectors): free it first. */
        svm_free_and_destroy_model(&m);
    }
done:
    free(mean);
    free(inv_std);
    free(nodes);
    free(rows);
    free(y);
    return st;
}

sd_status sd_gap_svm_accuracy(const float *x, const uint8_t *domain, int n, int d,
                              sd_gap_svm_kind kind, int folds, uint64_t seed, double *acc)
{
    _Static_assert(sizeof(struct feature_node) == sizeof(struct svm_node), "node layouts");
    if (!x || !domain || !acc || n <= 0 || d <= 0)
        return sd_fail(SD_ERR_ARG, "svm accuracy: empty features (n %d, d %d)", n, d);
    if ((unsigned)kind >= SD_GAP_SVM_COUNT)
        return sd_fail(SD_ERR_ARG, "svm accuracy: unknown kind %d", (int)kind);
    if (folds < 2)
        return sd_fail(SD_ERR_ARG, "svm accuracy: folds %d, expected >= 2", folds);
    int cnt[2] = {0, 0};
    for (int i = 0; i < n; i++)
        cnt[domain[i] != 0]++;
    if (cnt[0] < folds || cnt[1] < folds)
        return sd_fail(SD_ERR_DATA, "svm accuracy: %d rows of A and %d of B; each domain needs >= %d (the folds)",
                       cnt[0], cnt[1], folds);
    int *fold = sd_malloc(sizeof(int) * n), *idx = sd_malloc(sizeof(int) * n);
    if (!fold || !idx) {
        free(fold);
        free(idx);
        return SD_ERR_NOMEM;
    }
    /* Stratified: each domain's rows shuffled, then dealt round the folds. */
    sd_rng rng = sd_rng_fork(seed, 0x5f3 + kind);
    for (int dom = 0; dom < 2; dom++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if ((domain[i] != 0) == dom)
                idx[m++] = i;
        for (int i = m - 1; i > 0; i--) {
            int j = sd_rng_int(&rng, i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        for (int i = 0; i < m; i++)
            fold[idx[i]] = i % folds;
    }
    /* The kernel SVM's folds train in parallel (libsvm without probability
     * estimates only reads globals); liblinear's draw on the one rand()
     * stream, so they run in turn. The lowest failing fold's message comes
     * back through sd_first_error (messages are per thread). */
    int correct = 0;
    sd_first_error fe;
    sd_first_error_init(&fe);
#pragma omp parallel for schedule(dynamic) reduction(+ : correct) if (kind == SD_GAP_SVM_POLY)
    for (int f = 0; f < folds; f++) {
        int c = 0;
        sd_status fs = run_fold(x, domain, fold, n, d, kind, f, seed, &c);
        correct += c;
        sd_first_error_keep(&fe, f, fs);
    }
    free(fold);
    free(idx);
    if (fe.st != SD_OK)
        return sd_first_error_raise(&fe);
    *acc = (double)correct / n;
    return SD_OK;
}
