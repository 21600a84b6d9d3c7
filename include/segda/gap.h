/* Domain-gap measures over plain feature matrices: SVM domain classifiers
 * (liblinear, libsvm), MMD with a permutation test, per-class KL divergence of
 * pixel-proportion histograms, cross-domain retrieval, PCA; plus the plots
 * (SVG scatter, PNG contact sheet) and the JSON report. No model or dataset
 * code here: callers hand in float matrices (n x d, row-major) and a domain
 * per row (0 = A, 1 = B). See src/cli/cmd_gap.c for the command. */
#ifndef SEGDA_GAP_H
#define SEGDA_GAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "segda/core.h"
#include "segda/image.h"
#include "segda/labels.h"

/* ---- features ------------------------------------------------------------ */

/* Standardises columns in place: x[:, j] = (x[:, j] - mean_j) / std_j
 * (population std; a constant column becomes 0). */
void sd_gap_standardize(float *x, int n, int d);

/* Turns one C x H x W feature map (CHW, row-major) into rows of `out`:
 * pixels == 0: one row, the global average over H x W (out[C]);
 * pixels > 0: `pixels` rows at positions drawn uniformly with replacement
 * from rng (out[pixels * C]); pos[2*i] = x, pos[2*i+1] = y of row i when
 * pos is not NULL. */
sd_status sd_gap_pool_features(const float *fmap, int c, int h, int w, int pixels,
                               sd_rng *rng, float *out, int *pos);

/* Reads a feature matrix: a NumPy .npy file (float32 or float64,
 * little-endian, C order, 2-D; recognised by its magic bytes) or else text,
 * one row per line, numbers separated by commas, spaces or tabs, '#' lines
 * skipped, every row the same length. *x is allocated (free()). */
sd_status sd_gap_features_read(const char *path, float **x, int *n, int *d);
/* Writes a float32 2-D .npy (version 1.0). */
sd_status sd_gap_features_write_npy(const char *path, const float *x, int n, int d);

/* ---- measures ------------------------------------------------------------ */

typedef enum sd_gap_svm_kind {
    SD_GAP_SVM_LINEAR = 0, /* liblinear, L2-regularised L2-loss dual, C = 1 */
    SD_GAP_SVM_POLY,       /* libsvm C-SVC, (gamma x.y + 1)^3, gamma = 1/d, C = 1 */
    SD_GAP_SVM_COUNT
} sd_gap_svm_kind;

/* Held-out domain-classification accuracy by stratified k-fold
 * cross-validation (folds >= 2; seeded shuffle). Each fold standardises with
 * its training rows' statistics, trains on the other folds, predicts its own
 * rows; the result is the fraction of all n rows predicted right. Both
 * domains need at least `folds` rows. The libraries' printing is silenced;
 * liblinear's solver shuffles with rand(), so the linear kind calls srand()
 * (from `seed`) before each fold: the answer depends on `seed` alone. */
sd_status sd_gap_svm_accuracy(const float *x, const uint8_t *domain, int n, int d,
                              sd_gap_svm_kind kind, int folds, uint64_t seed, double *acc);

/* Unbiased squared maximum mean discrepancy MMD^2_u between the rows of
 * domain 0 and domain 1 with k(x, y) = exp(-|x - y|^2 / (2 sigma^2)),
 * sigma = median pairwise distance over the pooled rows (median heuristic;
 * for an even number of pairs the mean of the two middle ones),
 * and the permutation-test p-value p = (1 + #{perm >= observed}) / (1 + n_perm)
 * (domain labels shuffled, group sizes kept; n_perm = 0 gives p = 1).
 * Each domain needs >= 2 rows. sigma_out may be NULL. Memory: n^2 floats. */
sd_status sd_gap_mmd(const float *x, const uint8_t *domain, int n, int d, int n_perm,
                     uint64_t seed, double *mmd2, double *p, double *sigma_out);

typedef enum sd_gap_metric { SD_GAP_METRIC_L2 = 0, SD_GAP_METRIC_COSINE, SD_GAP_METRIC_COUNT } sd_gap_metric;

/* Cross-domain retrieval: for every row of domain 0 (the queries, in row
 * order), its k nearest rows in the pool of all rows except itself. *frac =
 * fraction of those neighbours from domain 1. nbr (optional) receives
 * n_query * k row indices, nearest first (n_query = rows of domain 0). */
sd_status sd_gap_retrieval(const float *x, const uint8_t *domain, int n, int d, int k,
                           sd_gap_metric metric, int *nbr, double *frac);

/* Top n_comp principal components of the centred data (LAPACK's dsyevr on
 * the covariance or, with fewer rows than features, the Gram matrix; seed
 * is unused): comp[n_comp * d] unit vectors (largest variance first, sign
 * chosen so the largest-magnitude entry is positive), proj[n * n_comp]
 * (optional) the centred rows projected, var[n_comp] (optional) the
 * variances along them. n_comp <= min(d, 8). */
sd_status sd_gap_pca(const float *x, int n, int d, int n_comp, uint64_t seed,
                     float *comp, float *proj, double *var);

/* ---- category-specific shift from labels ----------------------------------- */

#define SD_GAP_MAX_BINS 100
#define SD_GAP_KL_BINS 20       /* default bins on [0, 1] */
#define SD_GAP_KL_ALPHA 0.01    /* default additive smoothing per bin (probability mass) */

/* Per class c and domain, a histogram of p_c = (#pixels of trainId c) /
 * (#pixels with a valid trainId) over images; bin = min(floor(p * bins),
 * bins - 1). Images without a valid pixel are skipped. */
typedef struct sd_gap_class_hist {
    int n_bins;
    int n_images[2];
    double count[2][SD_NUM_CLASSES][SD_GAP_MAX_BINS];
} sd_gap_class_hist;

sd_status sd_gap_class_hist_init(sd_gap_class_hist *h, int n_bins);
/* Adds one trainId label image (w x h bytes; 255 and ids >= 19 ignored). */
sd_status sd_gap_class_hist_add(sd_gap_class_hist *h, int domain, const uint8_t *label, int w, int ht);
/* Adds one image's class proportions directly (prop[SD_NUM_CLASSES], in [0, 1]). */
sd_status sd_gap_class_hist_add_props(sd_gap_class_hist *h, int domain, const double *prop);
/* kl[c] = KL(P_A,c || P_B,c) in nats, each histogram smoothed as
 * (count / n_images + alpha) / (1 + bins * alpha), so KL is finite and
 * histograms of the same shape give 0 whatever the two image counts. Both domains need at least one image. */
sd_status sd_gap_class_hist_kl(const sd_gap_class_hist *h, double alpha, double kl[SD_NUM_CLASSES]);
/* KL(p || q) = sum p_i log(p_i / q_i) over i with p_i > 0; q_i must be > 0 there. */
double sd_gap_kl(const double *p, const double *q, int n);

/* ---- everything at once ------------------------------------------------------ */

typedef struct sd_gap_options {
    int folds;              /* SVM cross-validation folds (5) */
    int n_perm;             /* MMD permutations (200) */
    int k;                  /* retrieval neighbours (5) */
    int max_per_domain;     /* at most this many rows per domain, seeded sample (1000) */
    sd_gap_metric metric;   /* retrieval distance (L2 on standardised features) */
    uint64_t seed;          /* 0 */
} sd_gap_options;

void sd_gap_options_default(sd_gap_options *o);

typedef struct sd_gap_result {
    bool has_features;                  /* the feature measures below are set */
    double svm_linear_accuracy;
    double svm_poly_accuracy;
    double mmd, mmd_p, mmd_sigma;
    double retrieval_other_domain;
    bool has_class_kl;
    double class_kl[SD_NUM_CLASSES];
    int n_a, n_b, d;                    /* rows used per domain, feature dim */
    /* Owned (sd_gap_result_free): the rows used after subsampling, in order
     * A rows then B rows, as indices into the caller's xa / xb; the 2-D PCA
     * projection of the standardised rows; the retrieval neighbours of each
     * A row (n_a * k, indices into the used rows). */
    int *rows_a, *rows_b;
    float *pca;                         /* [(n_a + n_b) * 2] */
    int *nbr;                           /* [n_a * k] */
    int k;
} sd_gap_result;

/* res must start zeroed (sd_gap_result r = {0}) or be a result used before.
 * Runs the SVMs, MMD, retrieval and PCA on A rows xa[na * d] and B rows
 * xb[nb * d]: keeps the same number of rows of each domain, min(na, nb,
 * opts->max_per_domain), by a seeded sample (so 0.5 is chance for the SVM
 * accuracies and the retrieval fraction), standardises the pooled rows, then
 * measures. Leaves has_class_kl as it was. */
sd_status sd_gap_measure(const float *xa, int na, const float *xb, int nb, int d,
                         const sd_gap_options *opts, sd_gap_result *res);
void sd_gap_result_free(sd_gap_result *res);

/* A seeded choice of m of 0..n-1 (all when m <= 0 or m >= n), sorted, by a
 * partial Fisher-Yates shuffle; *out_m gets the count. malloc'd; NULL on OOM. */
int *sd_gap_pick(int n, int m, sd_rng *rng, int *out_m);

/* Writes {"svm_linear_accuracy": .., "svm_poly_accuracy": .., "mmd": ..,
 * "mmd_p": .., "class_kl": {"road": .., ...}, "retrieval_other_domain": ..};
 * the feature keys only when has_features, class_kl always ({} when not
 * computed). Written to PATH.tmp then renamed. */
sd_status sd_gap_result_write_json(const char *path, const sd_gap_result *res);
/* The same with a first key "setup": {keys[i]: values[i], ...} (strings:
 * the inputs, options, segda version, precision and device that produced
 * the numbers). */
sd_status sd_gap_result_write_json_setup(const char *path, const sd_gap_result *res, int n_setup,
                                         const char *const *keys, const char *const *values);

/* ---- objects: shape vs texture (Saleh et al., ECCV 2018) ------------------------ */

typedef enum sd_gap_object_kind {
    SD_GAP_OBJECT_SHAPE = 0,   /* the silhouette: 1 inside the instance, 0 outside */
    SD_GAP_OBJECT_TEXTURE,     /* the colours inside the instance (RGB / 255), 0 outside */
} sd_gap_object_kind;
const char *sd_gap_object_kind_name(sd_gap_object_kind k);

struct sd_dataset;
/* One row per thing instance of at least min_area pixels of every labelled
 * sample of ds (its instance files, instances.h), in dataset and id order:
 * the instance's box made square about its centre, sampled nearest at
 * side x side; d = side^2 (shape) or 3 side^2 (texture). *x is malloc'd.
 * A dataset without instance files is SD_ERR_DATA; no instance at all gives
 * n = 0 (not an error: the caller decides). */
sd_status sd_gap_object_features(const struct sd_dataset *ds, sd_gap_object_kind kind, int side, int min_area,
                                 float **x, int *n, int *d);

/* ---- plots ------------------------------------------------------------------- */

/* Scatter plot of pts[n * 2] coloured by domain (0: orange "A", 1: blue "B")
 * with a legend naming them; an SVG file written to PATH.tmp then renamed. */
sd_status sd_gap_scatter_svg(const char *path, const float *pts, const uint8_t *domain, int n,
                             const char *name_a, const char *name_b, const char *title);

/* Contact sheet: one row per query, the query's thumbnail, a gap, then its k
 * neighbours; each tile framed in its domain's colour (A orange, B blue).
 * thumb[i] is the thumbnail of row i (8-bit RGB, all the same size); mark
 * (optional) gives a pixel position per row (x, y in thumbnail coordinates,
 * negative = none) drawn as a small cross. */
sd_status sd_gap_contact_sheet(const char *path, const sd_image *const *thumb, const uint8_t *domain,
                               const int *query, int n_query, const int *nbr, int k, const int *mark);

/* ---- the whole measurement of `segda gap` (src/gap/run.c) ---------------- */

#define SD_GAP_MODEL_IMAGES 200   /* images per dataset with a model or --rgb, unless n_images says */

/* The options of `segda gap` (its --help says what each does). Exactly one
 * mode: model (+ layer), features_a/features_b, rgb, labels_only or
 * objects (1 shape, 2 texture, 3 both). */
typedef struct sd_gap_run_opts {
    const char *a, *b;                  /* dataset specs */
    const char *model, *layer;          /* checkpoint and layer name */
    const char *features_a, *features_b; /* feature files (.npy or text) */
    bool rgb, labels_only, lanemarking_as_road;
    int objects, crop;                  /* --objects KIND, --crop N (16) */
    int n_images;                       /* --n (-1: all for labels, SD_GAP_MODEL_IMAGES otherwise) */
    int pixels, bins, threads;          /* --pixels (0), --bins (SD_GAP_KL_BINS), --threads (4) */
    int net_w, net_h;                   /* --size (0: each image at its own size) */
    const char *out_dir, *json;         /* --out DIR, --json FILE (NULL: none) */
    sd_gap_options measure;
    FILE *table;                        /* where the table is printed (NULL: nowhere) */
} sd_gap_run_opts;

void sd_gap_run_opts_init(sd_gap_run_opts *o);
/* NULL when the options make one valid run, else why not (a usage error). */
const char *sd_gap_run_check(const sd_gap_run_opts *o);
/* Runs the measurement; SD_ERR_ARG with sd_gap_run_check's reason for
 * invalid options; other errors name the dataset, file or layer. */
sd_status sd_gap_run(const sd_gap_run_opts *o);

#endif
