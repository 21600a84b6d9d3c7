/* What the files of src/demo share (not public): the rows, the jobs and the
 * setup of one demo. demo.c drives; rows.c chooses the rows; jobs.c plans
 * the runs, writes their configurations and schedules them through a
 * runner; report.c writes the outputs. */
#ifndef SEGDA_DEMO_INTERNAL_H
#define SEGDA_DEMO_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "segda/demo.h"
#include "segda/labels.h"

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

/* ---- jobs (jobs.c) ---- */
enum { JOB_WAIT, JOB_RUN, JOB_OK, JOB_FAIL };

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
    int state;
    double t0, seconds;
    double miou, class_iou[SD_NUM_CLASSES];
} demo_job;

typedef struct demo_setup {
    const char *src, *tgt, *runs_dir;
    const char *precision;  /* every run's compute dtype */
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
/* Sends an event whose text is printf-formatted; returns its progress's answer. */
int demo_emit(const demo_setup *ds, sd_demo_event *ev, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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
} demo_result;

typedef struct demo_report {
    const sd_demo_opts *o;  /* with every default filled */
    const char *bench, *tgt, *precision, *device;
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
