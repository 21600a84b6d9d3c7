/* Helpers shared between the files of src/gap/ (not part of the public API). */
#ifndef SEGDA_GAP_INTERNAL_H
#define SEGDA_GAP_INTERNAL_H

#include "segda/core.h"

/* dist[n * n] = squared Euclidean distances between the rows of x[n * d]. */
sd_status sd_gap_sqdist(const float *x, int n, int d, float *dist);

#endif
