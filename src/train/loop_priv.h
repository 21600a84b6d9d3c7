/* Private to src/train: the loop's state, shared by loop.c (the loop),
 * rundir.c (run directory, log) and resume.c (checkpoints, --resume).
 * Not a public API; methods see only train.h and da/train_internal.h. */
#ifndef SEGDA_TRAIN_LOOP_PRIV_H
#define SEGDA_TRAIN_LOOP_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/data.h"
#include "segda/eval.h"
#include "segda/loader.h"
#include "segda/stage.h"
#include "segda/train.h"

/* One domain's training stream: its dataset, the loader's pipeline and
 * the loader, started once the iteration to begin at is known. */
typedef struct domain {
    sd_dataset ds;
    bool opened;
    bool images_only;            /* unlabelled here (target of an adaptation method) */
    uint32_t stream;             /* separates the domains' orders and crops */
    int batch;
    int *subset, n_subset;       /* dataset indices read (NULL: all) */
    sd_augment aug;
    sd_loader *loader;
} domain;

/* The target validation set, read image by image at every evaluation. */
typedef struct val_set {
    sd_dataset ds;
    bool opened;
    int n;
    int *idx;                    /* [n] dataset indices evaluated (bad pairs left out with --skip-bad) */
    int in_w, in_h;              /* network input size (0: as stored) */
    int n_skipped;
    char **skipped;              /* "PATH: why" of each pair left out */
} val_set;

typedef struct loop_priv {
    domain src, tgt;
    bool have_src, have_tgt;
    val_set val;
    bool have_val;
    bool align_corners;
    int log_every, workers;
    bool skip_bad;
    char *config_text;
    int lock_fd;                 /* RUNDIR/.lock, held for the whole run (-1: none) */
    int eval_failures;           /* evaluations that failed (logged, the run went on) */
    char *forced;                /* settings --resume-force let change ("key: old -> new; ..."), or NULL */
    /* data parallel (dist.h): this process is rank `rank` of `ranks` */
    int rank, ranks;
    bool sync_buffers;           /* BN running statistics move: averaged over the ranks */
    uint64_t valid_px[2][2];     /* [src, tgt][this rank, all ranks]: labelled pixels of the iteration's batch */
    bool lanemarking;            /* SYNTHIA id 22 read as road */
    bool remap;                  /* a class set other than the 19 trainIds: labels go through class_lut */
    uint8_t class_lut[256];      /* trainId -> the model's output index */
    sd_stage stage;              /* --device cuda: the iteration's inputs, copied ahead (stage.h) */
    sd_protocol protocol;        /* what evaluations select the best checkpoint by */
    double last_miou;            /* the last evaluation's mIoU by that protocol (NAN: none) */
    /* what "auto" / 0-means-published knobs resolved to (sd_train_set_resolved):
     * written to config.txt and the checkpoints' config, while tr->cfg keeps
     * the values as given, so a run stored with "auto" still resumes */
    sd_config resolved;
} loop_priv;

/* rundir.c */
sd_status train_write_config(sd_trainer *tr);
bool train_is_run_only_key(const char *k);
sd_status train_log_open(sd_trainer *tr, bool resume);
void train_log_iteration(sd_trainer *tr, float lr, double elapsed);
void train_log_eval(sd_trainer *tr, const sd_eval_result *r);
void train_log_eval_error(sd_trainer *tr, const char *msg);
void train_log_val_skipped(sd_trainer *tr);
/* The loop's fields of RUNDIR/summary.json (the driver writes it). */
void train_describe(sd_trainer *tr, const sd_train_summary *sum, sd_run_summary *s);

/* resume.c */
/* RUNDIR/last.safetensors at tr->it (the caller is rank 0: the driver). */
sd_status train_save_last_file(sd_trainer *tr);
sd_status train_save_best(sd_trainer *tr);
sd_status train_resume_from(sd_trainer *tr);

#endif
