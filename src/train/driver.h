/* The training driver: the one loop every training task runs through
 * (segmentation and adaptation methods, the task-informed GAN, backbone
 * pretraining, the detector). It owns what is the same for all of them:
 * the iteration counter, the learning-rate schedule's value, stops
 * (Ctrl-C, stop-after: state saved, every rank at the same iteration),
 * the message of a failed step (which checkpoint still holds what),
 * checkpoints at save-every, at evaluations (saved *before* evaluating)
 * and at the end, evaluations whose failure is logged and survived,
 * progress lines with rate and ETA, and the run's summary.json.
 * A task supplies callbacks for what differs: one iteration's step, its
 * records, an evaluation, a save, the terms of a progress line, and a
 * description of the run for the summary. A step is free in what it
 * reads: a batch of tensors (segmentation), images with instance lists
 * (the detector) or image-folder crops (pretraining).
 * Set-up (data, model, loading a checkpoint to resume) stays the task's:
 * it tells the driver the iteration to continue from.
 * Private to the library: src/train/loop.c, src/train/pretrain.c and
 * src/da/detect.c use it. */
#ifndef SEGDA_TRAIN_DRIVER_H
#define SEGDA_TRAIN_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "segda/optim.h"
#include "segda/train.h"

typedef struct sd_drive_result {
    int64_t iterations;        /* iterations done when the loop ended */
    int64_t last_saved;        /* iteration the checkpoint holds (-1: none written) */
    int eval_failures;         /* evaluations that failed (the run went on) */
    double seconds;            /* wall-clock time of the loop */
    bool stopped;              /* ended by stop_after (state saved; status "interrupted") */
    bool ran;                  /* sd_drive was called (its summary is written) */
} sd_drive_result;

typedef struct sd_drive_task {
    const char *name;          /* prefix of progress lines and messages: "train adaptseg", "pretrain" */
    const char *ckpt;          /* the file a save writes (named in messages) */
    const char *summary;       /* summary.json to write when the loop ends (NULL: none) */
    void *ctx;                 /* the task's state, passed to every callback */
    int64_t iters;             /* the run's length */
    int64_t start;             /* the iteration to continue from (0, or the resumed checkpoint's) */
    int64_t stop_after;        /* stop and save after this many iterations (0: never) */
    int64_t eval_every;        /* evaluate every K and at the end (0: only at the end) */
    int64_t save_every;        /* also save every K (0: at evaluations and the end) */
    int64_t log_every;         /* progress line every K and at the end (0: every 2 s) */
    bool save_at_zero;         /* a stop before iteration 1 saves the initial state */
    const sd_lr_schedule *sched; /* the rate handed to step and record (NULL: 0) */

    /* Iteration it (0-based): read, forward, backward, the ranks'
     * reductions, the optimiser steps at lr. Non-finite losses return
     * SD_ERR_NUMERIC. Required. */
    sd_status (*step)(void *ctx, int64_t it, float lr);
    /* After step: the iteration's records (log lines, TensorBoard).
     * failed: the step failed (record what it measured, if anything). */
    void (*record)(void *ctx, int64_t it, float lr, double elapsed, bool failed);
    /* The iteration's terms for a progress line ("  loss 0.51 ..."). */
    void (*terms)(void *ctx, char *buf, size_t cap);
    /* Evaluation after `done` iterations (NULL: the task has none); sets
     * *resave when the evaluation changed what the checkpoint records
     * (a new best, a metric stored in it): the driver saves again. */
    sd_status (*evaluate)(void *ctx, int64_t done, bool *resave);
    /* An evaluation failed with msg: put it in the task's log. */
    void (*eval_failed)(void *ctx, int64_t done, const char *msg);
    /* The resumable state after `done` iterations, to t->ckpt (rank 0
     * only: the driver tells the other ranks whether it worked). Required. */
    sd_status (*save)(void *ctx, int64_t done);
    /* The task's part of the summary: task, method, metric, final and
     * best values, class IoUs, configuration. */
    void (*describe)(void *ctx, sd_run_summary *s);
} sd_drive_task;

/* Runs iterations t->start .. t->iters - 1. Returns the first error
 * (SD_ERR_INTERRUPTED after Ctrl-C, state saved), SD_OK when the run ended
 * or stopped at stop_after; *r tells which, and summary.json records it. */
sd_status sd_drive(const sd_drive_task *t, sd_drive_result *r);

/* t->summary for a run that ended with st (rank 0; a failure's message
 * stays the caller's). sd_drive writes it; a task calls it itself for a
 * run that failed or finished before its loop. */
void sd_drive_write_summary(const sd_drive_task *t, sd_status st, const sd_drive_result *r);

#endif
