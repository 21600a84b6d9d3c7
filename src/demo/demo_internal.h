/* What the files of src/demo share (not public): the rows, the jobs and the
 * setup of one demo. demo.c drives; rows.c chooses the rows; jobs.c plans
 * the runs, writes their configurations and schedules them through a
 * runner; report.c writes the outputs. */
#ifndef SEGDA_DEMO_INTERNAL_H
#define SEGDA_DEMO_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "segda/demo.h"
#include "segda/detect.h"
#include "segda/labels.h"
#include "segda/synth.h"

enum {
    DEMO_CROPS = 200,        /* crops per class for the pretraining (val gets a quarter) */
    DEMO_WARMUP = 100,       /* linear warm-up of the runs that start from the pretrained backbone */
    DEMO_ADABN_ITERS = 200,  /* adabn rows (at most): target batches of 2, one pass over the 400 real train images */
    DEMO_MAX_ROWS = 64,
    DEMO_MAX_EXTRA = 8,
};

/* ---- rows (rows.c) ---- */
typedef struct demo_row {
    char name[64];           /* table row: "adaptseg", "finetune-75" */
    char method[32];
    const char *extra[DEMO_MAX_EXTRA]; /* "key=value" */
    int n_extra;
} demo_row;

/* The rows of these options, oracle and source-only first; -1 naming an
 * unknown method or row (SD_ERR_ARG). bench_w/h, n_real: the benchmark
 * (values of the --full rows depend on it). */
int demo_rows_plan(const sd_demo_opts *o, bool full, int bench_w, int bench_h, int n_real, demo_row *rows);
/* Rows that start from random weights instead of source-base. */
bool demo_row_from_random(const demo_row *r);
/* The method of the rows scored without training: the map of the run named
 * by "seg=@row" with the seed's detector's masks painted over (detect.c). */
#define DEMO_FUSED "det-fuse"
bool demo_row_is_fused(const demo_row *r);

/* ---- jobs (jobs.c) ---- */
enum { JOB_WAIT, JOB_RUN, JOB_OK, JOB_FAIL };

/* What a "+det" row measures besides the fused map's IoUs (detect.c). */
typedef struct demo_det_result {
    double ap, ap50;            /* the detector's instance masks on real val (cityscapesScripts' AP, AP50) */
    double iiou;                /* iIoU of the fused map (mean over the 8 thing classes) */
    double plain_miou, plain_iiou; /* the same network's map without the masks */
    int detections, painted;    /* detections written (score >= 0.05), masks painted over the maps */
} demo_det_result;

typedef struct demo_job {
    sd_demo_task_kind kind;
    char name[64];          /* table row ("adaptseg"), "source-base" or a gap label */
    char method[32];
    const char *extra[DEMO_MAX_EXTRA]; /* "key=value" */
    int n_extra;
    int seed, iters, dep;   /* dep: job whose checkpoint is --init (-1: none) */
    char init_row[64];      /* "init=@row": the row it starts from instead (adabn rows) */
    int threads;            /* 0: demo_setup's */
    int waits[4], n_waits;  /* rows of the same seed named by "@row" in an extra value */
    char resolved[2][700];  /* extra values with "@row" replaced by that row's checkpoint */
    const char *lr;
    bool row;               /* a row of the table */
    char rundir[512], log[600], cfg[600]; /* pretrain: rundir is the checkpoint file */
    sd_pretrain_opts pretrain; /* pretrain's options */
    char tb[560];
    sd_gap_run_opts gap;    /* gap's options */
    char gap_a[600], gap_b[600], gap_model[600], gap_out[600], gap_json[600];
    sd_detect_train_opts detect; /* detect's options (rundir: its run directory) */
    char det_data[600];
    bool fused;             /* a "+det" row: scored in this process (detect.c), not run */
    int det_job;            /* fused: the seed's detect job */
    demo_det_result det;
    int state;
    double t0, seconds;
    double miou, class_iou[SD_NUM_CLASSES];
} demo_job;

typedef struct demo_setup {
    const char *src, *tgt, *runs_dir;
    const char *precision;  /* every run's compute dtype */
    const char *pretrain_precision; /* the pretraining's (--pretrain-precision, else precision) */
    const char *device;     /* "cpu" or "cuda:N" */
    int threads;
    int slots;              /* runs at once: the runner's, else --jobs */
    bool verbose;           /* START events of gap runs */
    bool resume;            /* keep finished runs, continue unfinished ones */
    const sd_demo_runner *runner;
    sd_demo_progress_fn progress;
    void *ctx;
    int *stop;              /* set when progress asked to stop */
} demo_setup;

demo_job *demo_job_add(demo_job *jobs, int *n, sd_demo_task_kind kind, const char *name);
/* "@row" values of j's extras become that row's checkpoint (of the jobs
 * first..end-1, the same seed), and j waits for them. */
sd_status demo_resolve_rows(demo_job *jobs, int first, int end, demo_job *j);
/* Runs every job through ds->runner, each after the jobs it starts from.
 * Returns how many failed (each named in a FAILED event). */
int demo_pool_run(const demo_setup *ds, demo_job *jobs, int n);
/* The val top-1 of a pretraining from CKPT.summary.json (NAN if absent). */
double demo_read_top1(const char *ckpt);
/* Sets this process's precision and device to the demo's (runs in
 * process set their own). */
sd_status demo_set_compute(const demo_setup *ds);
/* Sends an event whose text is printf-formatted; returns its progress's answer. */
int demo_emit(const demo_setup *ds, sd_demo_event *ev, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the detection-based foreground (detect.c) ---- */
/* The detector's training set: sim and the VEIS-like simple scenes (the
 * benchmark's own when it has them, else written beside it to
 * OUT/bench-simple with its seed and size: the benchmark's files are not
 * touched) linked into one GTA5-layout folder, data_dir (made anew). */
sd_status demo_det_data(const demo_setup *ds, const char *bench, const sd_synth_opts *have, int n_simple,
                        const char *out, char *data_dir, size_t cap);
/* The detect job of seed s on data_dir with the benchmark's sizes (w x h). */
void demo_det_job(demo_job *j, const demo_setup *ds, const char *data_dir, int seed, int iters, int w, int h);
/* Scores a "+det" row j (its "seg=" value resolved to a checkpoint): the
 * seed's detector's instances on real val (written once per seed beside its
 * run), their AP, the network's map with and without the masks painted. */
sd_status demo_det_score(const demo_setup *ds, const demo_job *jobs, demo_job *j);

/* ---- the outputs (report.c) ---- */
/* The gap measures: image colours, labels, source-only's and the adapted
 * row's layer4, each sim vs real val and real train vs real val. */
enum { G_RGB, G_LAB, G_SRC, G_ADA, G_N };

typedef struct demo_result {
    char name[64];
    char init[80];          /* results.json "init": "pretrain", "source-base" or the row it started from */
    int seed, iters;
    double miou;
    double class_iou[SD_NUM_CLASSES];
    double seconds;
    char rundir[512];
    bool fused;             /* a "+det" row: det holds its detector measures */
    demo_det_result det;
} demo_result;

typedef struct demo_report {
    const sd_demo_opts *o;  /* with every default filled */
    const char *bench, *tgt, *precision, *pretrain_precision, *device;
    int seeds, iters, adapt_iters, par, threads, n_jobs, n_fail;
    const demo_job *pretrain; /* NULL: from random weights */
    double t_start, t_train;
    const demo_result *res;
    int n_res;
    const demo_job *gap_jobs;
    int gap_idx[G_N][2];      /* job of each gap measure (-1: none) */
    int n_gap;
    const char *gap_dir;
    int best;               /* row (of demo_collect_rows) whose features were measured as adapted; -1 none */
} demo_report;

/* The table as `segda demo` prints it (the TABLE event's text) and
 * results.json, report.md, the curves and examples.png. */
typedef struct demo_row_stat {
    char name[64];
    int n;
    double miou_mean, miou_std;
    double class_iou[SD_NUM_CLASSES];
    int first;              /* index of its first result (for run directories) */
} demo_row_stat;
int demo_collect_rows(const demo_result *res, int n_res, demo_row_stat *rows);
sd_status demo_report_write(const demo_setup *ds, const demo_report *r, const demo_row_stat *rows, int n_rows);

#endif
