/* The demo as a library function: sd_demo_run generates the built-in
 * sim->real benchmark, pretrains deeplab-mini's backbone on object crops,
 * trains source-base, the oracle and every row (an adaptation method or a
 * control) from it, measures the domain gap, and writes DIR/results.json,
 * DIR/report.md, the loss curves and the example sheet. `segda demo` is
 * this function behind its flags.
 *
 * The runs themselves go through a runner (sd_demo_runner): the library's
 * in-process runner (runner NULL: each run in this process, one after
 * another, with its own thread count) or the command's process runner
 * (fork+exec of `segda train|pretrain|gap`, several side by side). Either
 * way every run's result is read back from the summary.json it wrote, so
 * both give the same table for the same options and thread counts.
 *
 * Nothing here prints: the lines a user sees (runs started and finished,
 * the table) arrive as events through the progress function.
 * Layout: src/demo/demo.c (this interface, the benchmark), rows.c (the row
 * tables), jobs.c (the runs, their configurations, --resume, the pool),
 * inprocess.c (the in-process runner), report.c and extra.c (the outputs). */
#ifndef SEGDA_DEMO_H
#define SEGDA_DEMO_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"
#include "segda/gap.h"
#include "segda/pretrain.h"

struct sd_detect_train_opts;

/* The recipe's defaults (measured on the benchmark: README "The demo"). */
enum {
    SD_DEMO_PRETRAIN_ITERS = 600, /* classification pretraining on real-style crops (the ImageNet stand-in) */
    SD_DEMO_ITERS = 800,          /* source-base from the pretrained backbone */
    SD_DEMO_ADAPT_ITERS = 400,    /* every row from source-base; the oracle gets both */
    SD_DEMO_FULL_ITERS = SD_DEMO_ITERS, /* --full: more rows and seeds, the same runs */
    SD_DEMO_FULL_ADAPT_ITERS = SD_DEMO_ADAPT_ITERS,
    SD_DEMO_DET_ITERS = 200,      /* the detector's steps (one image each) per seed: the "+det" rows */
    SD_DEMO_SIMPLE_SCENES = 400,  /* VEIS-like simple scenes beside sim for the detector (50 per thing class) */
};

/* Everything `segda demo`'s flags set. 0 / NULL = the default. */
typedef struct sd_demo_opts {
    const char *out;            /* where everything goes ("demo-out") */
    bool full;                  /* every row, 3 seeds */
    const char *methods;        /* comma-separated methods instead of the default set */
    const char *rows;           /* only these rows of --full (implies full) */
    int seeds;                  /* per row (1; full 3) */
    int iters, adapt_iters;     /* source-base; each row from it */
    int pretrain_iters;         /* SD_DEMO_PRETRAIN_ITERS after init; 0: from random weights */
    const char *lr, *adapt_lr;  /* "0.01", "0.0025" (as written into each run's configuration) */
    int jobs;                   /* runs at once (the process runner): cores, at most 4 */
    int threads;                /* threads per run: cores / jobs */
    bool no_gap;                /* skip the domain-gap measures */
    bool resume;                /* keep finished runs, continue unfinished ones */
    const char *precision;      /* "f32", "bf16", "bf16-emulated"; NULL: the process's (sd_precision) */
    const char *pretrain_precision; /* the pretraining's, as precision; NULL: precision's */
    const char *device;         /* "cpu", "cuda", "cuda:N"; NULL: the selected one (sd_device_selected) */
    int det_iters;              /* detector steps per seed when "+det" rows are selected (SD_DEMO_DET_ITERS) */
    int simple_scenes;          /* simple scenes written for the detector (SD_DEMO_SIMPLE_SCENES) */
} sd_demo_opts;

void sd_demo_opts_init(sd_demo_opts *o);
/* Sets one option by name as `segda demo --NAME VALUE` does ("iters",
 * "--iters" and "adapt_iters" all name options; flags take true/false,
 * 1/0, yes/no). Numbers are whole strings in the option's range. Errors
 * (SD_ERR_ARG) name the option and the value: "--iters 'abc', expected an
 * integer in 0..100000000", "unknown demo option 'bogus'". value is kept,
 * not copied. */
sd_status sd_demo_opts_set(sd_demo_opts *o, const char *key, const char *value);
/* Checks what the options name (methods, --rows) without running anything:
 * SD_ERR_ARG naming the unknown method or row. */
sd_status sd_demo_check(const sd_demo_opts *o);

/* ---- runners ---- */
typedef enum { SD_DEMO_TASK_TRAIN, SD_DEMO_TASK_PRETRAIN, SD_DEMO_TASK_GAP, SD_DEMO_TASK_DETECT } sd_demo_task_kind;

/* One run as the runner receives it: `segda train --config config
 * [--resume]`, `segda pretrain` with *pretrain, `segda gap` with *gap or
 * `segda train --method detect` with *detect (sd_detect_train: always f32
 * on the CPU, precision "f32", device "cpu", which its command takes by
 * default), on `threads` threads, with `precision`
 * and `device`. Its output goes to `log` (appended to when append). */
typedef struct sd_demo_task {
    sd_demo_task_kind kind;
    const char *name;            /* row, "source-base", "pretrain" or a gap label */
    int seed;
    int threads;
    const char *precision, *device;
    const char *log;
    bool append;
    bool resume;                 /* train: continue the run in its out directory */
    const char *config;          /* train: the run's configuration file */
    const sd_pretrain_opts *pretrain; /* pretrain: resume is set there */
    const sd_gap_run_opts *gap;  /* gap (table NULL) */
    const struct sd_detect_train_opts *detect; /* detect: resume is set there */
} sd_demo_task;

enum { SD_DEMO_STARTED, SD_DEMO_DONE_OK, SD_DEMO_DONE_FAILED };

typedef struct sd_demo_runner {
    int slots;                   /* runs at once (0: the options' jobs) */
    void *self;
    /* Starts task t, known as `id` to wait: returns SD_DEMO_STARTED, or
     * SD_DEMO_DONE_OK / SD_DEMO_DONE_FAILED when it ran to its end already
     * (an in-process runner) or could not start (its message in
     * sd_errmsg()). A run "ok" is one whose process would exit 0. */
    int (*start)(void *self, const sd_demo_task *t, int id);
    /* Waits for one started run to end: its id and whether it ended ok.
     * SD_ERR_IO when nothing is running or waiting failed. */
    sd_status (*wait)(void *self, int *id, bool *ok);
} sd_demo_runner;

/* ---- progress ---- */
typedef enum {
    SD_DEMO_EV_NOTE,      /* a line on what the demo does (benchmark, plan, gap) */
    SD_DEMO_EV_START,     /* a run started */
    SD_DEMO_EV_DONE,      /* a run finished: miou (train), seconds */
    SD_DEMO_EV_KEPT,      /* --resume: a finished run kept from an earlier demo: miou */
    SD_DEMO_EV_FAILED,    /* a run failed (text names its log) */
    SD_DEMO_EV_SKIPPED,   /* a run not started: a run it starts from failed */
    SD_DEMO_EV_ITER,      /* an iteration of an in-process training run: it, iters, terms */
    SD_DEMO_EV_TABLE,     /* the results table (what `segda demo` prints on stdout) */
} sd_demo_event_kind;

typedef struct sd_demo_event {
    sd_demo_event_kind kind;
    const char *text;            /* the line(s) as `segda demo` prints them, with "\n"; "" for
                                  * the runs of the gap measures, which it does not list */
    const char *name;            /* the run's row/label (NULL for NOTE and TABLE) */
    const char *method;          /* training runs */
    sd_demo_task_kind task;
    int seed, iters;
    double miou, seconds;        /* DONE/KEPT of training runs; NAN otherwise */
    int64_t it;                  /* ITER: the iteration done (1-based) of iters */
    int n_terms;
    const char *const *term_names;
    const double *term_values;
} sd_demo_event;

/* Returns nonzero to stop the demo: no further run starts, an in-process
 * training run stops cleanly (state saved), sd_demo_run returns
 * SD_ERR_INTERRUPTED. */
typedef int (*sd_demo_progress_fn)(void *ctx, const sd_demo_event *ev);

/* Runs the demo. runner NULL: in-process. progress may be NULL. Returns
 * SD_OK when every run finished; a failed run leaves the report written
 * without it and returns SD_ERR_DATA naming how many failed; bad options
 * are SD_ERR_ARG naming them. */
sd_status sd_demo_run(const sd_demo_opts *o, const sd_demo_runner *runner, sd_demo_progress_fn progress,
                      void *ctx);

/* The in-process runner sd_demo_run uses when runner is NULL (for callers
 * that wrap it). The runner's self must point to an sd_demo_inprocess. */
typedef struct sd_demo_inprocess {
    sd_demo_progress_fn progress;  /* ITER events go here (may be NULL) */
    void *ctx;
    int stop;                      /* set when progress asked to stop */
} sd_demo_inprocess;
sd_demo_runner sd_demo_runner_inprocess(sd_demo_inprocess *state);

#endif
