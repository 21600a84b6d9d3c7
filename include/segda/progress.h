/* A one-line progress bar on stderr with items/s and ETA, for eval, predict,
 * gap, check-data and train loops. On a terminal it is redrawn in place at
 * most ten times a second; otherwise (a log file, a pipe) it is one line
 * every 5 s, the first after 5 s, so short runs print nothing. Calling it
 * every item costs nothing. */
#ifndef SEGDA_PROGRESS_H
#define SEGDA_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum sd_progress_mode {
    SD_PROGRESS_AUTO = 0, /* a terminal: the bar; otherwise a line every 5 s once a run takes that long */
    SD_PROGRESS_ON,       /* also a first line at once and a last line when not a terminal (--progress) */
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
    bool quiet_start;     /* not a tty, AUTO: no line before 5 s, no last line unless one was drawn */
    int64_t lines;        /* lines drawn */
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
