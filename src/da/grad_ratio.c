/* --log-grad-ratio K: how strongly each adaptation term pulls on the
 * segmentation network compared with the segmentation loss. Every K
 * iterations (from the first), the pending terms of each backward are run
 * as separate backward passes instead of one:
 *   1. the segmentation terms (names starting "seg") together, with their
 *      weights: g_seg;
 *   2. every other term alone, with its weight: g_term.
 * Gradients accumulate, so the iteration's update is the one backward's
 * (up to float summation order). From the increments of the network's
 * gradient (the segmentation network only, not discriminators or teachers):
 *   grad_norm_seg = ||g_seg||,  grad_ratio_<term> = ||g_term|| / ||g_seg||
 * and, when two or more terms reach the network, grad_ratio_adapt = the
 * norm of their sum over ||g_seg|| (e.g. feature-adv's dom_src + dom_tgt,
 * or both levels of a multi-level method, whichever backward they are in),
 * logged with the iteration's terms in log.jsonl. The network's gradient
 * is zero when an iteration starts, so the sum of the adaptation terms is
 * its gradient minus g_seg. Terms that do not reach the network (a
 * discriminator's own loss on detached outputs) or have weight 0 are not
 * listed. With data parallelism each rank measures its own share and the
 * log holds the ranks' mean. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"

struct sd_grad_ratio {
    int64_t it;          /* the iteration measured */
    size_t n;            /* the network's parameter count */
    float *seg, *before, *now;  /* g_seg; the gradient before / after a pass */
    bool have_seg;
    int reached;         /* adaptation terms that reached the network */
};

bool sd_grad_ratio_due(const sd_trainer *tr)
{
    int64_t k = sd_config_int(tr->cfg, "log-grad-ratio");
    return k > 0 && tr->it % k == 0;
}

void sd_grad_ratio_free(sd_trainer *tr)
{
    struct sd_grad_ratio *g = tr->grad_ratio;
    if (g) {
        free(g->seg);
        free(g->before);
        free(g->now);
        free(g);
    }
    tr->grad_ratio = NULL;
}

/* The network's gradient, every tensor in declaration order, on the host. */
static sd_status net_grads(const sd_params *p, float *dst)
{
    sd_status st = SD_OK;
    for (int i = 0; i < p->n && !st; i++) {
        st = sd_tensor_grad_to_host(p->tensors[i], dst);
        dst += p->tensors[i]->numel;
    }
    return st;
}

/* ||a - b|| */
static double dist(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return sqrt(s);
}

/* A logged value, replaced when this iteration already has it. */
static void log_set(sd_trainer *tr, const char *name, double v)
{
    for (int i = 0; i < tr->n_terms; i++)
        if (tr->terms[i].logged_only && !strcmp(tr->terms[i].name, name)) {
            tr->terms[i].value = v;
            return;
        }
    sd_train_log_value(tr, name, v);
}

static sd_status state_for(sd_trainer *tr, struct sd_grad_ratio **out)
{
    struct sd_grad_ratio *g = tr->grad_ratio;
    if (!g) {
        g = tr->grad_ratio = calloc(1, sizeof *g);
        if (!g)
            return sd_fail(SD_ERR_NOMEM, "log-grad-ratio: out of memory");
        for (int i = 0; i < tr->params->n; i++)
            g->n += tr->params->tensors[i]->numel;
        size_t bytes = (g->n ? g->n : 1) * sizeof(float);
        g->seg = malloc(bytes);
        g->before = malloc(bytes);
        g->now = malloc(bytes);
        if (!g->seg || !g->before || !g->now)
            return sd_fail(SD_ERR_NOMEM, "log-grad-ratio: out of memory for %zu gradients", g->n);
        g->it = -1;
    }
    if (g->it != tr->it) {
        g->it = tr->it;
        g->have_seg = false;
        g->reached = 0;
    }
    *out = g;
    return SD_OK;
}

sd_status sd_grad_ratio_backward(sd_trainer *tr)
{
    struct sd_grad_ratio *g = NULL;
    sd_status st = state_for(tr, &g);
    if (st)
        return st;
    /* the pending losses are the last n_pending terms that are not logged-only */
    const char *name[SD_TRAIN_MAX_TERMS];
    int k = tr->n_pending;
    for (int i = tr->n_terms - 1; i >= 0 && k > 0; i--)
        if (!tr->terms[i].logged_only)
            name[--k] = tr->terms[i].name;
    sd_tensor *seg[SD_TRAIN_MAX_TERMS];
    float seg_w[SD_TRAIN_MAX_TERMS];
    int n_seg = 0;
    for (int i = 0; i < tr->n_pending; i++)
        if (!strncmp(name[i], "seg", 3)) {
            seg[n_seg] = tr->pending[i];
            seg_w[n_seg++] = tr->pending_w[i];
        }
    const sd_params *p = tr->params;
    if ((st = net_grads(p, g->before)))
        return st;
    double seg_norm = 0;
    if (n_seg) {
        if ((st = sd_backward(&tr->tape, n_seg, seg, seg_w)) || (st = net_grads(p, g->now)))
            return st;
        /* g_seg: this pass plus any earlier segmentation pass of the iteration */
        for (size_t i = 0; i < g->n; i++)
            g->seg[i] = g->now[i] - g->before[i] + (g->have_seg ? g->seg[i] : 0.0f);
        g->have_seg = true;
        memcpy(g->before, g->now, g->n * sizeof(float));
    }
    if (g->have_seg) {
        for (size_t i = 0; i < g->n; i++)
            seg_norm += (double)g->seg[i] * g->seg[i];
        seg_norm = sqrt(seg_norm);
        log_set(tr, "grad_norm_seg", seg_norm);
    }
    for (int i = 0; i < tr->n_pending; i++) {
        if (!strncmp(name[i], "seg", 3) || tr->pending_w[i] == 0)
            continue;
        if ((st = sd_backward(&tr->tape, 1, &tr->pending[i], &tr->pending_w[i])) || (st = net_grads(p, g->now)))
            return st;
        double d = dist(g->now, g->before, g->n);
        memcpy(g->before, g->now, g->n * sizeof(float));
        if (d == 0)
            continue;
        g->reached++;
        char key[32];
        snprintf(key, sizeof key, "grad_ratio_%s", name[i]);
        if (seg_norm > 0)
            log_set(tr, key, d / seg_norm);
    }
    /* the network's gradient is g_seg + the adaptation terms' (zero at the start) */
    if (g->reached > 1 && seg_norm > 0)
        log_set(tr, "grad_ratio_adapt", dist(g->before, g->seg, g->n) / seg_norm);
    tr->n_pending = 0;
    return SD_OK;
}
