/* Training and domain adaptation: the shared loop (data, poly schedule,
 * several losses into one backward, logging, evaluation, checkpoints,
 * resume) and the interface every adaptation method implements. A method
 * (src/da/<method>.c) is only what differs between papers: which forward
 * passes on which batch and which loss terms. Not here: models (model.h),
 * optimisers (optim.h), datasets (data.h), metrics (eval.h).
 *
 * Files of a run directory RUNDIR:
 *   config.txt          the resolved configuration, `key = value` lines (readable by --config);
 *                       "auto" and 0-means-published knobs as the values the run used
 *   log.jsonl           one line per iteration: {"it", "lr", "time", "terms": {...}} and
 *                       one per evaluation: {"it", "eval": {"miou_19", "class_iou": {...}}}
 *   last.safetensors    the model after the last save (a checkpoint predict/eval load)
 *   best.safetensors    the model with the best target-val mIoU-19 seen (with --eval-every)
 *   state.safetensors   everything --resume needs: model, method modules (discriminators,
 *                       teachers), optimiser states, iteration, best score
 *   summary.json        the run's record when it ends: status, metrics, config, version,
 *                       build, precision, device (sd_run_summary below)
 *   .lock               held (flock) while a run writes here
 * Every file is written to NAME.tmp.PID and renamed, so a crash (even kill -9
 * during a save) leaves the previous complete file. The code: src/train
 * (driver.c: the loop every training task runs on; loop.c, rundir.c,
 * resume.c, summary.c, config.c, config_file.c). */
#ifndef SEGDA_TRAIN_H
#define SEGDA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "segda/loader.h"
#include "segda/model.h"
#include "segda/optim.h"
#include "segda/tensor.h"

/* ---- knobs and configuration ---- */

/* One setting, known to the command line as --KEY and to config files as
 * `KEY = VALUE`. */
typedef enum sd_knob_type {
    SD_KNOB_INT = 0,
    SD_KNOB_FLOAT,
    SD_KNOB_BOOL,     /* true/false/1/0/yes/no; on the command line --KEY alone means true */
    SD_KNOB_STR,      /* free text, or one of `choices` ("vanilla|ls") */
    SD_KNOB_TYPE_COUNT
} sd_knob_type;

typedef struct sd_knob {
    const char *key;
    sd_knob_type type;
    const char *def;       /* default as text; "" = not set */
    const char *choices;   /* SD_KNOB_STR: allowed values separated by '|', or NULL */
    const char *help;
} sd_knob;

/* Settings as text with where each came from ("--iters", "run.cfg:7",
 * "default"), so errors can name the file and line. */
typedef struct sd_config_entry {
    char *key, *value, *origin;
} sd_config_entry;

typedef struct sd_config {
    int n, cap;
    sd_config_entry *e;
} sd_config;

void sd_config_init(sd_config *c);
void sd_config_free(sd_config *c);
/* Sets key (replacing an earlier value when replace, else keeping it). */
sd_status sd_config_set(sd_config *c, const char *key, const char *value, const char *origin, bool replace);
/* Reads `key = value` lines ('#' starts a comment, blank lines skipped).
 * Keys already present are kept (command-line flags win over the file). A
 * line without '=' is an SD_ERR_FORMAT error naming PATH:LINE. Keys are not
 * checked here: sd_train_resolve does that, naming the file and line. */
sd_status sd_config_read(sd_config *c, const char *path);
/* The parser behind sd_config_read: `key = value` lines of text[0..len),
 * '#' starting a comment; a key given twice, a NUL byte or a line over 4094
 * characters is SD_ERR_FORMAT naming name:LINE. */
sd_status sd_config_parse(sd_config *c, const char *text, size_t len, const char *name);
/* A boolean setting: 1 for true/1/yes/on, 0 for false/0/no/off/"", -1 else. */
int sd_config_parse_bool(const char *v);
const char *sd_config_get(const sd_config *c, const char *key);  /* NULL if absent */
const char *sd_config_origin(const sd_config *c, const char *key);
/* Typed getters for resolved configurations (values already validated). */
int64_t sd_config_int(const sd_config *c, const char *key);
double sd_config_float(const sd_config *c, const char *key);
bool sd_config_bool(const sd_config *c, const char *key);
const char *sd_config_str(const sd_config *c, const char *key);  /* "" if absent */
/* Writes every entry as `key = value` (to PATH.tmp, then renamed). */
sd_status sd_config_write(const sd_config *c, const char *path);

/* Parses "WxH" and "A,B". */
sd_status sd_parse_size(const char *s, int *w, int *h);
sd_status sd_parse_pair(const char *s, int *a, int *b);

/* ---- methods ---- */

struct sd_trainer;

/* What a method is: its name, its knobs, and the hooks the loop calls. */
typedef struct sd_method {
    const char *name;
    const char *summary;
    const sd_knob *knobs;  /* method-specific settings, terminated by a {NULL} entry */
    bool needs_target;     /* reads target images (every adaptation method) */
    bool target_labels;    /* reads target labels for training (oracle, finetune) */
    bool source_batches;   /* reads source batches (false: oracle, finetune) */
    bool fixed_weights;    /* no optimiser steps: the weights stay those of --init (adabn) */
    /* bn = auto gives this mode ("batch-stats" where the published code
     * trains with model.train() and BN affine frozen); NULL = "frozen". */
    const char *bn_default;
    /* Whether the model needs its auxiliary (layer3) classifier under this
     * configuration (multi-level methods); NULL = no. */
    bool (*wants_aux)(const sd_config *cfg);
    /* Creates discriminators / teachers (register them with sd_train_add_module)
     * and parses the method's knobs from tr->cfg. *state is the method's own. */
    sd_status (*init)(struct sd_trainer *tr, void **state);
    /* One iteration: forward passes and loss terms (sd_train_loss), with
     * sd_train_backward wherever the recipe needs a separate backward (the
     * loop flushes what is left, then steps every optimiser). */
    sd_status (*step)(struct sd_trainer *tr, void *state);
    /* After the optimisers stepped (mean-teacher EMA); may be NULL. */
    sd_status (*after_step)(struct sd_trainer *tr, void *state);
    /* Maps the normalised input of each evaluation image before the model
     * sees it (taskgan: the real image through its generator); NULL = as is. */
    sd_tensor *(*eval_input)(struct sd_trainer *tr, void *state, sd_tensor *x);
    void (*free)(void *state);
} sd_method;

const sd_method *sd_method_find(const char *name);
const sd_method *const *sd_method_list(int *n);
/* Shared knobs of every run (iters, lr, batch, ...), {NULL}-terminated. */
const sd_knob *sd_train_knobs(void);

/* ---- the trainer ---- */

#define SD_TRAIN_MAX_MODULES 72   /* ROAD: up to 64 region classifiers + teacher */
#define SD_TRAIN_MAX_TERMS 24

/* A set of parameters besides the segmentation network that the run owns
 * the optimisation and checkpointing of: a discriminator (trainable, own
 * optimiser), a frozen or EMA teacher (saved, never stepped). */
typedef struct sd_train_module {
    char prefix[32];       /* checkpoint namespace, ending in ':' ("disc:", "teacher:") */
    sd_params *params;     /* not owned (the method frees its module objects) */
    bool trainable;
    sd_optim opt;
    sd_lr_schedule sched;
} sd_train_module;

typedef struct sd_train_term {
    char name[32];
    double value;          /* unweighted loss value */
    float weight;
    bool logged_only;      /* a metric (sd_train_log_value), not a loss */
} sd_train_term;

typedef struct sd_trainer {
    sd_config *cfg;                  /* resolved: every shared and method knob present */
    const sd_method *method;
    void *mstate;
    char *rundir;

    /* shared settings, from cfg */
    int64_t iters, stop_after, eval_every, save_every;
    int batch_src, batch_tgt;
    int crop_w, crop_h;              /* training crop */
    int src_w, src_h, tgt_w, tgt_h;  /* full-image sizes before cropping (0 = as stored) */
    uint64_t seed;
    int threads;

    sd_model *model;
    sd_params *params;               /* the model's */
    sd_norm norm;
    sd_optim opt;
    sd_lr_schedule sched;
    sd_train_module mods[SD_TRAIN_MAX_MODULES];
    int n_mods;

    sd_tape tape;
    int64_t it;                      /* the iteration being run (0-based) */
    /* This iteration's batches from the loaders (loader.h; NULL when the
     * method reads no such batch). Differences from the loader's defaults:
     * image holds RGB 0..255 before normalisation, so methods may edit it
     * (FDA's amplitude swap) before sd_train_input normalises; label is NULL
     * for target images of unsupervised methods; box[k] is the crop in the
     * image as read (sd_crop_box_point maps crop pixels to it), index[k] the
     * dataset sample. Valid for the iteration only. */
    const sd_batch *src, *tgt;

    sd_train_term terms[SD_TRAIN_MAX_TERMS];
    int n_terms;
    sd_tensor *pending[SD_TRAIN_MAX_TERMS];  /* losses awaiting backward */
    float pending_w[SD_TRAIN_MAX_TERMS];
    int n_pending;

    double best_miou;                /* best target-val mIoU-19 so far (-1 none) */
    int64_t best_it;
    int64_t last_saved_it;
    int64_t inject_nan_at;           /* test hook (SEGDA_INJECT_NAN_AT): -1 off */
    FILE *log;                       /* RUNDIR/log.jsonl */
    void *tb;                        /* RUNDIR/tb/ TensorBoard writer (src/da/tblog.c); NULL: none */
    struct sd_grad_ratio *grad_ratio; /* --log-grad-ratio's measurement (src/da/grad_ratio.c) */
    void *priv;                      /* the loop's data sources */
} sd_trainer;

/* Checks cfg (keys against the shared knobs and the chosen method's, values
 * against their types and choices; errors name the origin, e.g. "run.cfg:7:
 * unknown key 'lamda'") and fills defaults. */
sd_status sd_train_resolve(sd_config *cfg, const sd_method **method);

/* Runs (or with resume = true in cfg, continues) a training run as cfg
 * describes. Returns SD_ERR_INTERRUPTED after a clean stop on SIGINT (state
 * saved), SD_ERR_NUMERIC when a loss turned non-finite (previous checkpoint
 * kept). The caller installs the SIGINT handler that calls sd_request_stop
 * (core.h); the run clears any earlier request when it starts. */
sd_status sd_train_run(sd_config *cfg);

/* What a finished run measured (for the demo's table). */
typedef struct sd_train_summary {
    bool evaluated;                  /* a final evaluation ran (eval-every > 0) */
    double miou_19;                  /* of the final model; NAN when not evaluated */
    double class_iou[19];            /* fractions, NAN absent */
    double best_miou;                /* best over the run's evaluations */
    int64_t best_it;
    int64_t iters;
    double seconds;                  /* wall-clock time of the loop */
    int eval_failures;               /* evaluations that failed (named in log.jsonl); the run went on */
} sd_train_summary;
/* This iteration's loss terms as two parallel arrays (names[i] = values[i],
 * each of room SD_TRAIN_MAX_TERMS): what a progress callback hands on.
 * Returns their count. */
int sd_trainer_term_list(const sd_trainer *tr, const char **names, double *values);

/* sd_train_run that also fills *sum (may be NULL). */
sd_status sd_train_run_summary(sd_config *cfg, sd_train_summary *sum);

/* RUNDIR/summary.json (src/train/summary.c): every run's record, written
 * atomically when it ends (ok, failed or interrupted): {"task", "method",
 * "status": "ok"|"failed"|"interrupted", "message", "iterations" (done),
 * "iters", "seconds", "eval_failures", "final": {METRIC: v, "class_iou":
 * {...}}, "best": {METRIC: v, "iteration"}, "config", "segda_version",
 * "build", "precision", "device"}. Unknown numbers are null. */
typedef struct sd_run_summary {
    const char *task;                /* "train" or "pretrain" */
    const char *method;
    const char *status;              /* "ok", "failed", "interrupted" */
    const char *message;             /* why it failed or stopped ("" when ok) */
    int64_t iterations, iters;
    double seconds;
    int eval_failures;
    const char *metric;              /* "miou_19", "miou_16", "val_top1" */
    double final_value, best_value;
    int64_t best_iteration;
    const double *class_iou;         /* [19] or NULL */
    const char *config;              /* key = value lines */
    const char *precision, *device;  /* NULL: the process's precision, "cpu" */
} sd_run_summary;
sd_status sd_run_summary_write(const char *path, const sd_run_summary *s);

/* What sd_run_summary_read gives back of a summary.json. */
typedef struct sd_run_result {
    char status[16], metric[32], message[1024];
    char precision[16]; /* the run's compute precision ("f32", "bf16"; "" in older files) */
    int64_t iterations, iters, best_iteration;
    double seconds, final_value, best_value;
    bool has_class_iou;
    double class_iou[19];
} sd_run_result;
sd_status sd_run_summary_read(const char *path, sd_run_result *r);

/* A hook called after every iteration of the runs this thread starts
 * (in-process users such as the Python package; NULL = none). tr->it is
 * the iteration just done (0-based), tr->terms its losses. A nonzero return
 * requests a clean stop, as SIGINT does. */
typedef int (*sd_train_progress_fn)(void *ctx, const sd_trainer *tr);
void sd_train_set_progress(sd_train_progress_fn fn, void *ctx);

/* ---- for methods ---- */

/* Normalises the batch's images (RGB 0..255) for the model as a tape tensor. */
sd_tensor *sd_train_input(sd_trainer *tr, const sd_batch *b);
/* Adds weight * loss to the next backward and logs its value under name. A
 * non-finite value stops the run: SD_ERR_NUMERIC naming the term and the
 * iteration. */
sd_status sd_train_loss(sd_trainer *tr, const char *name, sd_tensor *loss, float weight);
/* Logs a number that is not a loss (pseudo-label fraction, D accuracy). */
void sd_train_log_value(sd_trainer *tr, const char *name, double value);
/* Backward over the losses added since the last call. */
sd_status sd_train_backward(sd_trainer *tr);
/* Registers parameters the run saves (and, with opt non-NULL, optimises
 * with that optimiser on a poly schedule from base_lr). */
sd_status sd_train_add_module(sd_trainer *tr, const char *prefix, sd_params *params,
                              const sd_optim_opts *opt, float base_lr);
/* Segmentation loss of logits against the batch labels: the logits are
 * upsampled bilinearly (align_corners true, as AdaptSegNet) to the batch
 * size first. */
sd_tensor *sd_train_seg_loss(sd_trainer *tr, sd_tensor *logits, const uint8_t *labels, int h, int w);
/* Records the value an "auto" or 0-means-default knob resolved to, so
 * config.txt and the checkpoints' config hold what the run used
 * (lambda-adv = 0.001, not 0); tr->cfg keeps the value as given. */
sd_status sd_train_set_resolved(sd_trainer *tr, const char *key, const char *value);
/* Upsample logits to the batch's size (align_corners true). */
sd_tensor *sd_train_upsample(sd_trainer *tr, sd_tensor *logits, int h, int w);

#endif
