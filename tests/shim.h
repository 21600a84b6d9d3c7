/* Shared between the parity shims (tests/shim_ops.c, tests/shim_smallnet.c,
 * tests/shim_models.c): the arguments an op receives when tests/py/segda_ct.py
 * runs it by name through ctypes. Test-only; not part of libsegda's API. */
#ifndef SEGDA_TEST_SHIM_H
#define SEGDA_TEST_SHIM_H

#include <stdbool.h>

#include "segda/ops.h"

#define F32(p) ((float *)(p))

#define SDT_MAX_IN 8

typedef struct sdt_args {
    sd_tape *t;
    int n_in;
    sd_tensor *in[SDT_MAX_IN];  /* copies of the caller's arrays, in the arena */
    const int *ip;              /* integer parameters, op-specific order */
    int nip;
    const float *fp;            /* float parameters */
    int nfp;
} sdt_args;

/* Parameter k, or `def` when the caller passed fewer. */
static inline int sdt_ip(const sdt_args *a, int k, int def) { return k < a->nip ? a->ip[k] : def; }
static inline float sdt_fp(const sdt_args *a, int k, float def) { return k < a->nfp ? a->fp[k] : def; }
/* Input k or NULL when absent (optional bias, affine params). */
static inline sd_tensor *sdt_in(const sdt_args *a, int k) { return k < a->n_in ? a->in[k] : NULL; }

#endif
