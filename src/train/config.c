/* Run configuration: the shared knobs and the check of a configuration
 * against them and the chosen method's. Not here: the store and the file
 * format (config_file.c), what the knobs do (loop.c and the method files). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "segda/train.h"
#include "io/file.h"

static const sd_knob *knob_in(const sd_knob *k, const char *key)
{
    for (; k && k->key; k++)
        if (!strcmp(k->key, key))
            return k;
    return NULL;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static sd_status check_value(const sd_knob *k, const char *v, const char *origin)
{
    switch (k->type) {
    case SD_KNOB_INT:
    case SD_KNOB_FLOAT: {
        char what[4400];
        int64_t i;
        double d;
        snprintf(what, sizeof what, "%s: %s", origin, k->key);
        sd_status st = k->type == SD_KNOB_INT ? sd_parse_i64(v, INT64_MIN, INT64_MAX, what, &i)
                                              : sd_parse_double(v, -DBL_MAX, DBL_MAX, what, &d);
        if (st)
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected %s", origin, k->key, v,
                           k->type == SD_KNOB_INT ? "an integer" : "a finite number");
        break;
    }
    case SD_KNOB_BOOL:
        if (sd_config_parse_bool(v) < 0)
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected true or false", origin, k->key, v);
        break;
    case SD_KNOB_STR:
        if (k->choices && *v && !choice_ok(k->choices, v))
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected one of %s", origin, k->key, v, k->choices);
        break;
    default:
        break;
    }
    return SD_OK;
}

/* bn = auto becomes a mode here, so config.txt records the one used: the
 * old freeze-bn spelling when given, else train from scratch (no --init),
 * else the method's published recipe, else frozen (the DeepLab-v2 practice). */
static sd_status resolve_bn(sd_config *cfg, const sd_method *m)
{
    const char *bn = sd_config_str(cfg, "bn"), *fb = sd_config_get(cfg, "freeze-bn");
    char origin[400];
    if (fb) {
        const char *want = sd_config_parse_bool(fb) == 1 ? "frozen" : "train";
        if (strcmp(bn, "auto") && strcmp(bn, want))
            return sd_fail(SD_ERR_ARG, "%s: freeze-bn = %s means bn = %s, but %s: bn = %s; give one of them",
                           sd_config_origin(cfg, "freeze-bn"), fb, want, sd_config_origin(cfg, "bn"), bn);
        snprintf(origin, sizeof origin, "%s (freeze-bn)", sd_config_origin(cfg, "freeze-bn"));
        return sd_config_set(cfg, "bn", want, origin, true);
    }
    if (strcmp(bn, "auto"))
        return SD_OK;
    /* from scratch nothing is pretrained: frozen statistics (0 and 1) would
     * never normalise, so BN trains whatever the method's recipe */
    const char *init = sd_config_get(cfg, "init");
    if (!init || !*init)
        return sd_config_set(cfg, "bn", "train", "no --init (from scratch)", true);
    snprintf(origin, sizeof origin, "method %s", m->name);
    return sd_config_set(cfg, "bn", m->bn_default ? m->bn_default : "frozen", origin, true);
}

sd_status sd_train_resolve(sd_config *cfg, const sd_method **method)
{
    const char *mname = sd_config_get(cfg, "method");
    if (!mname || !*mname)
        return sd_fail(SD_ERR_ARG, "no method given (--method or 'method = ...'; see segda train --help)");
    const sd_method *m = sd_method_find(mname);
    if (!m)
        return sd_fail(SD_ERR_ARG, "%s: unknown method '%s'", sd_config_origin(cfg, "method"), mname);
    const sd_knob *shared = sd_train_knobs();
    int nm;
    const sd_method *const *all = sd_method_list(&nm);
    for (int i = 0; i < cfg->n; i++) {
        const sd_config_entry *e = &cfg->e[i];
        if (!strcmp(e->key, "method"))
            continue;
        const sd_knob *k = knob_in(shared, e->key);
        if (!k)
            k = knob_in(m->knobs, e->key);
        if (!k) {
            for (int j = 0; j < nm; j++)
                if (all[j] != m && knob_in(all[j]->knobs, e->key))
                    return sd_fail(SD_ERR_ARG, "%s: '%s' is a setting of method %s, not of %s", e->origin,
                                   e->key, all[j]->name, m->name);
            return sd_fail(SD_ERR_ARG, "%s: unknown key '%s'", e->origin, e->key);
        }
        sd_status st = check_value(k, e->value, e->origin);
        if (st)
            return st;
    }
    /* (a knob without a default, e.g. the freeze-bn alias, stays absent) */
    for (const sd_knob *k = shared; k->key; k++)
        if (k->def && sd_config_set(cfg, k->key, k->def, "default", false))
            return SD_ERR_NOMEM;
    for (const sd_knob *k = m->knobs; k && k->key; k++)
        if (k->def && sd_config_set(cfg, k->key, k->def, "default", false))
            return SD_ERR_NOMEM;
    sd_status st = resolve_bn(cfg, m);
    if (st)
        return st;
    *method = m;
    return SD_OK;
}

/* ---- the shared knobs (the method files add their own) ---- */

static const sd_knob shared_knobs[] = {
    {"source", SD_KNOB_STR, "", NULL, "source training set (gta5:DIR, synthia:DIR, cityscapes:DIR, folder:DIR)"},
    {"target", SD_KNOB_STR, "", NULL, "target set (its train split for training, its val split for evaluation)"},
    {"val", SD_KNOB_STR, "", NULL, "target validation set (default: the target spec with split val)"},
    {"model", SD_KNOB_STR, "deeplab-mini", NULL, "segmentation network (segda models lists them)"},
    {"classes", SD_KNOB_STR, "19", "19|16", "class set: 19 Cityscapes trainIds, or SYNTHIA's 16 (the mIoU-16 "
                                            "classes; evaluated and selected by mIoU-16)"},
    {"lanemarking-as-road", SD_KNOB_BOOL, "false", NULL, "SYNTHIA labels: lane markings (id 22) are road (CBST/CRST)"},
    {"out", SD_KNOB_STR, "", NULL, "run directory"},
    {"init", SD_KNOB_STR, "", NULL, "checkpoint to start from (pretrained backbone or a trained model)"},
    {"partial-init", SD_KNOB_BOOL, "false", NULL, "--init loads the tensors that fit from a checkpoint of another "
                                                  "model or class count, listing what it skipped"},
    {"iters", SD_KNOB_INT, "1000", NULL, "iterations (the poly schedule reaches 0 here)"},
    {"stop-after", SD_KNOB_INT, "0", NULL, "stop and save after this many iterations, as an interrupt would (0 = run all)"},
    {"batch", SD_KNOB_STR, "1,1", NULL, "source,target images per iteration"},
    {"crop", SD_KNOB_STR, "", NULL, "training crop WxH (default: whole images)"},
    {"source-size", SD_KNOB_STR, "", NULL, "resize source images to WxH before cropping (PIL bicubic, labels "
                                           "nearest; default: as stored)"},
    {"target-size", SD_KNOB_STR, "", NULL, "resize target images to WxH before cropping and for evaluation"},
    {"lr", SD_KNOB_FLOAT, "2.5e-4", NULL, "base learning rate of the segmentation network (classifier x10 with --init: head-lr-mult)"},
    {"lr-d", SD_KNOB_FLOAT, "1e-4", NULL, "base learning rate of discriminators (Adam)"},
    {"optimizer", SD_KNOB_STR, "sgd", "sgd|adam", "optimiser of the segmentation network"},
    {"momentum", SD_KNOB_FLOAT, "0.9", NULL, "SGD momentum"},
    {"weight-decay", SD_KNOB_FLOAT, "5e-4", NULL, "weight decay of the segmentation network"},
    {"power", SD_KNOB_FLOAT, "0.9", NULL, "poly schedule power"},
    {"warmup", SD_KNOB_INT, "0", NULL, "linear warm-up iterations"},
    {"seed", SD_KNOB_INT, "1", NULL, "seed of weights, batches and augmentation"},
    {"eval-every", SD_KNOB_INT, "0", NULL, "evaluate on target val every K iterations and at the end (0 = never)"},
    {"save-every", SD_KNOB_INT, "0", NULL, "save last.safetensors every K iterations (0 = at evaluations and the end)"},
    {"val-limit", SD_KNOB_INT, "0", NULL, "evaluate on the first N val images only (0 = all)"},
    {"eval-size", SD_KNOB_STR, "", NULL, "network input size for evaluation (default: target-size, else as stored)"},
    {"align-corners", SD_KNOB_BOOL, "true", NULL, "bilinear upsampling of logits with align_corners (AdaptSegNet)"},
    {"flip", SD_KNOB_BOOL, "false", NULL, "random horizontal flips"},
    {"bn", SD_KNOB_STR, "auto", "auto|frozen|batch-stats|train", "backbone batch norm: frozen (running statistics, "
                                  "affine fixed), batch-stats (batch statistics, running ones updated, affine fixed: "
                                  "the AdaptSegNet/ADVENT/FDA code), train; auto: the method's published recipe with --init, "
                                  "train without (from scratch BN must learn its statistics)"},
    {"freeze-bn", SD_KNOB_BOOL, NULL, NULL, "old spelling: true = bn frozen, false = bn train"},
    {"head-lr-mult", SD_KNOB_FLOAT, "0", NULL, "classifier lr multiplier; 0 = auto: 10 with --init (DeepLab's new "
                                               "head on a pretrained backbone), 1 from scratch"},
    {"aux", SD_KNOB_STR, "auto", "auto|on|off", "auxiliary classifier (auto: when the method is multi-level)"},
    {"threads", SD_KNOB_INT, "0", NULL, "threads (0 = all cores)"},
    {"ranks", SD_KNOB_INT, "1", NULL, "processes of a data-parallel run: set from mpirun -np and recorded (--batch is "
                                      "per rank; N ranks of batch b equal one process of batch N*b)"},
    {"sync-bn", SD_KNOB_BOOL, "true", NULL, "with several ranks and BN on batch statistics (--bn batch-stats or "
                                            "train): batch norm "
                                            "uses the whole batch's statistics (SyncBN); false: each rank's own, "
                                            "running statistics averaged after every iteration"},
    {"precision", SD_KNOB_STR, "f32", "f32|bf16|bf16-emulated", "compute dtype of the convolutions (bf16: f32 master weights, "
                                                  "gradients, optimiser state, losses and BN statistics)"},
    {"device", SD_KNOB_STR, "cpu", NULL, "cpu, cuda or cuda:N: where tensors live and ops run (checkpoints load on either)"},
    {"workers", SD_KNOB_INT, "2", NULL, "loader threads reading batches ahead (0 = in the training thread); "
                                        "batches are the same for any number"},
    {"skip-bad", SD_KNOB_BOOL, "false", NULL, "replace unreadable samples by the next readable one (counted and "
                                              "listed) instead of stopping"},
    {"log-every", SD_KNOB_INT, "0", NULL, "progress line every N iterations (0 = every 2 s)"},
    {"tb", SD_KNOB_BOOL, "true", NULL, "TensorBoard event file in RUNDIR/tb/ (losses, lr, validation mIoU and class "
                                       "IoUs, image strips): tensorboard --logdir RUNDIR/tb"},
    {"tb-images-every", SD_KNOB_INT, "500", NULL, "TensorBoard image strip (input, prediction, label; entropy for "
                                                  "entropy methods) every N iterations and at the last (0 = none)"},
    {"log-grad-ratio", SD_KNOB_INT, "0", NULL, "every N iterations (0 = never) log grad_ratio_<term> in log.jsonl: "
                                               "the term's gradient norm on the network over the segmentation "
                                               "terms' (separate backward passes)"},
    {"resume", SD_KNOB_BOOL, "false", NULL, "continue the run in --out from its last.safetensors"},
    {"resume-force", SD_KNOB_BOOL, "false", NULL, "with --resume, accept settings that differ from the run's "
                                                  "(listed in log.jsonl)"},
    {"config", SD_KNOB_STR, "", NULL, "configuration file of key = value lines"},
    {NULL, 0, NULL, NULL, NULL},
};

const sd_knob *sd_train_knobs(void) { return shared_knobs; }
