/* What a training run writes to TensorBoard (RUNDIR/tb/): every loss term
 * and logged metric, the learning rate, each evaluation's mIoU and per-class
 * IoU, and every K iterations an image strip per domain (input, prediction,
 * label; the entropy map for entropy methods). Only rank 0 writes; a write
 * that fails is reported once and logging stops, the run goes on. The loop
 * (train.c) calls these four; the file format is src/io/tfevents.c. */
#ifndef SEGDA_DA_TBLOG_H
#define SEGDA_DA_TBLOG_H

#include "segda/eval.h"
#include "segda/train.h"

/* Opens RUNDIR/tb/events.out.tfevents.* when the `tb` knob is on (and this
 * process writes the log); start_it > 0 marks a resume. */
void sd_tblog_open(sd_trainer *tr, int64_t start_it);
/* After iteration tr->it (0-based) finished: scalars at step it + 1, and
 * image strips when due (every tb-images-every iterations and the last). */
void sd_tblog_iteration(sd_trainer *tr, float lr);
/* An evaluation after tr->it iterations. */
void sd_tblog_eval(sd_trainer *tr, const sd_eval_result *r);
void sd_tblog_close(sd_trainer *tr);

/* For loops outside the trainer (pretrain.c): an event file in dir (NULL
 * when it cannot be made: a warning naming `who` is printed), with a
 * SessionLog START at start_step + 1 when start_step > 0; and scalars that,
 * when a write fails, warn once, close the file and set *tb to NULL. */
struct sd_tb *sd_tblog_open_dir(const char *dir, int64_t start_step, const char *who);
void sd_tblog_scalar(struct sd_tb **tb, const char *tag, int64_t step, double value, const char *who);

#endif
