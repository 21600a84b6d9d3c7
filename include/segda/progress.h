/* A one-line progress bar on stderr with items/s and ETA, for eval, predict
 * and train loops. Draws only when enabled (stderr is a TTY, or forced), and
 * at most ten times a second, so calling it every item costs nothing. */
#ifndef SEGDA_PROGRESS_H
#define SEGDA_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum sd_progress_mode {
    SD_PROGRESS_AUTO = 0, /* draw when stderr is a terminal */
    SD_PROGRESS_ON,       /* always draw (e.g. --progress) */
    SD_PROGRESS_OFF,
} sd_progress_mode;

typedef struct sd_progress {
    FILE *f;              /* stderr */
    char label[32];
    const char *unit;     /* "img" */
    int64_t total;        /* 0 = unknown (no bar, no ETA) */
    int64_t done;
    double t0, last_draw; /* seconds, monotonic clock */
    bool enabled, tty;    /* tty: redraw in place with \r; else one line per draw */
} sd_progress;

void sd_progress_init(sd_progress *p, const char *label, const char *unit, int64_t total,
                      sd_progress_mode mode);
/* Sets the number of finished items and redraws if due. */
void sd_progress_update(sd_progress *p, int64_t done);
/* Draws the final state and ends the line. */
void sd_progress_finish(sd_progress *p);
/* Seconds on a monotonic clock (for rates and timings elsewhere). */
double sd_time_now(void);

#endif
