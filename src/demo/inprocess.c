/* The demo's in-process runner: each run in this process, one after
 * another, as `segda train --config`, `segda pretrain` or `segda gap` would
 * run it in a child (the same configuration, thread count, precision and
 * device; the detector's `segda train --method detect` its options), so the demo gives the same table either way. The run's own
 * output (its progress lines) goes to this process's log (stderr); the
 * job's log file gets the outcome. Training iterations become ITER events. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/demo.h"
#include "segda/detect.h"
#include "segda/tensor.h"
#include "segda/train.h"

typedef struct iter_hook {
    sd_demo_inprocess *st;
    const sd_demo_task *t;
    const char *method;
} iter_hook;

static int on_iteration(void *ctx, const sd_trainer *tr)
{
    iter_hook *h = ctx;
    if (!h->st->progress)
        return 0;
    const char *names[SD_TRAIN_MAX_TERMS];
    double values[SD_TRAIN_MAX_TERMS];
    int n = sd_trainer_term_list(tr, names, values);
    char text[160];
    snprintf(text, sizeof text, "demo: %s (seed %d) it %lld/%lld\n", h->t->name, h->t->seed, (long long)tr->it + 1,
             (long long)tr->iters);
    sd_demo_event ev = {.kind = SD_DEMO_EV_ITER, .text = text, .name = h->t->name, .method = h->method,
                        .task = h->t->kind, .seed = h->t->seed, .iters = (int)tr->iters, .miou = NAN,
                        .seconds = NAN, .it = tr->it + 1, .n_terms = n, .term_names = names, .term_values = values};
    if (h->st->progress(h->st->ctx, &ev))
        h->st->stop = 1;
    return h->st->stop;
}

/* segda train --config FILE [--resume]: the file's keys, then (resume) the
 * run's config.txt, as cmd_train.c reads them. */
static sd_status run_train(sd_demo_inprocess *st, const sd_demo_task *t)
{
    sd_config cfg;
    sd_config_init(&cfg);
    sd_status s = sd_config_set(&cfg, "config", t->config, "--config", true);
    if (!s && t->resume)
        s = sd_config_set(&cfg, "resume", "true", "--resume", true);
    if (!s)
        s = sd_config_read(&cfg, t->config);
    const char *out = s ? NULL : sd_config_get(&cfg, "out");
    if (!s && t->resume) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.txt", out ? out : "");
        s = sd_config_read(&cfg, path);
    }
    if (!s) {
        iter_hook h = {st, t, sd_config_get(&cfg, "method")};
        sd_train_set_progress(on_iteration, &h);
        s = sd_train_run_summary(&cfg, NULL);
        sd_train_set_progress(NULL, NULL);
    }
    sd_config_free(&cfg);
    return s;
}

/* segda pretrain with the task's options; on resume the options the demo
 * does not give come from the checkpoint, as cmd_pretrain.c takes them. */
static sd_status run_pretrain(const sd_demo_task *t)
{
    sd_pretrain_opts o = *t->pretrain;
    char *store = NULL;
    if (o.resume) {
        sd_pretrain_opts s = o;
        if (sd_pretrain_read_opts(o.out, &s, &store))
            return sd_fail_prefix(SD_ERR_ARG, "pretrain --resume");
        o.batch = s.batch, o.lr = s.lr, o.weight_decay = s.weight_decay, o.size = s.size;
        o.scale_min = s.scale_min, o.seed = s.seed, o.save_every = s.save_every, o.momentum = s.momentum;
    }
    sd_status st = sd_pretrain_run(&o, NULL);
    free(store);
    return st;
}

/* segda train --method detect with the task's options */
static sd_status run_detect(const sd_demo_task *t)
{
    float first, last;
    return sd_detect_train(t->detect, &first, &last);
}

static int inprocess_start(void *self, const sd_demo_task *t, int id)
{
    (void)id;
    sd_demo_inprocess *st = self;
    int threads = sd_threads();
    sd_status s = SD_OK;
    sd_dtype d;
    bool emulate;
    sd_device dev;
    int dev_index;
    /* what a child gets from its command line and OMP_NUM_THREADS */
    if (t->precision && !(s = sd_dtype_parse(t->precision, &d, &emulate)))
        s = sd_set_precision(d, emulate);
    if (!s && t->device && !(s = sd_device_parse(t->device, &dev, &dev_index)))
        s = sd_device_select(dev, dev_index);
    sd_set_threads(t->threads);
    if (!s)
        s = t->kind == SD_DEMO_TASK_TRAIN      ? run_train(st, t)
            : t->kind == SD_DEMO_TASK_PRETRAIN ? run_pretrain(t)
            : t->kind == SD_DEMO_TASK_DETECT   ? run_detect(t)
                                               : sd_gap_run(t->gap);
    sd_set_threads(threads);
    FILE *log = fopen(t->log, t->append ? "a" : "w");
    if (log) {
        fprintf(log, "segda demo (in-process): %s %s\n", t->name, s ? "failed" : "done");
        if (s)
            fprintf(log, "%s\n", sd_errmsg());
        fclose(log);
    }
    if (s == SD_ERR_INTERRUPTED)
        st->stop = 1;
    sd_error_clear();
    return s ? SD_DEMO_DONE_FAILED : SD_DEMO_DONE_OK;
}

static sd_status inprocess_wait(void *self, int *id, bool *ok)
{
    (void)self, (void)ok;
    *id = -1;
    return sd_fail(SD_ERR_IO, "demo: the in-process runner has nothing running to wait for");
}

sd_demo_runner sd_demo_runner_inprocess(sd_demo_inprocess *state)
{
    return (sd_demo_runner){.slots = 1, .self = state, .start = inprocess_start, .wait = inprocess_wait};
}
