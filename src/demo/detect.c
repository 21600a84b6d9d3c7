/* The detection-based foreground chain of issue 16 in the demo (README "The
 * instance detector"; tools/measure_detect.sh runs it by hand): the
 * detector's training set (sim and VEIS-like simple scenes in one folder),
 * its job per seed (`segda train --method detect` with the benchmark's
 * recipe), and the "+det" rows, scored here without training: the seed's
 * detector runs once on real val (its instances in cityscapesScripts'
 * format, scored for AP), and the row's network's map is scored with and
 * without those masks painted over (sd_fuse_detections with its defaults,
 * as `segda eval --pred P --instances I --fuse-out F` paints them), iIoU
 * included. This process does the scoring whatever the runner, so both
 * runners give the same rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo_internal.h"
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/eval_inst.h"
#include "segda/fuse.h"
#include "segda/infer.h"
#include "segda/instances.h"
#include "segda/model.h"
#include "segda/tensor.h"
#include "segda/train.h"

/* The detector's recipe on the benchmark (README "Small images and
 * speed"): the images' own size, anchors 8..128, 128 sampled proposals,
 * trained BN (--bn auto from random weights), lr 0.0025 after a 100-step
 * warm-up (0.005 diverged with trained BN: mask loss to NaN by step 35), a
 * checkpoint every 25 steps. */
enum { DET_ANCHOR = 8, DET_BOX_BATCH = 128, DET_WARMUP = 100, DET_SAVE_EVERY = 25 };
#define DET_LR 0.0025f

/* Links dir/SUB/<prefix>NNNNN.png -> rel/SUB/NNNNN.png for the n images of
 * a GTA5-layout folder (rel: relative to dir/SUB). */
static sd_status link_set(const char *dir, const char *rel, const char *prefix, int n)
{
    static const char *const subs[3] = {"images", "labels", "instances"};
    char target[700], path[700];
    for (int k = 0; k < 3; k++)
        for (int i = 1; i <= n; i++) {
            snprintf(target, sizeof target, "%s/%s/%05d.png", rel, subs[k], i);
            snprintf(path, sizeof path, "%.500s/%s/%s%05d.png", dir, subs[k], prefix, i);
            if (symlink(target, path))
                return sd_fail(SD_ERR_IO, "%s: cannot link it to %s", path, target);
        }
    return SD_OK;
}

sd_status demo_det_data(const demo_setup *ds, const char *bench, const sd_synth_opts *have, int n_simple,
                        const char *out, char *data_dir, size_t cap)
{
    char path[700];
    const char *simple_rel = "../../bench/simple";
    sd_status st = SD_OK;
    if (have->n_simple > 0) {
        n_simple = have->n_simple;   /* the benchmark's own (segda synth --simple-scenes) */
    } else {
        /* the same scenes `segda synth --simple-scenes` would write into the
         * benchmark (their own stream of the same seed and size) */
        sd_synth_opts so;
        sd_synth_opts_init(&so);
        so.n_sim = so.n_real = so.n_real_val = 0;
        so.n_simple = n_simple;
        so.w = have->w, so.h = have->h, so.seed = have->seed;
        so.quiet = true;
        snprintf(path, sizeof path, "%.600s/bench-simple", out);
        sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
        demo_emit(ds, &ev, "demo: the detector's simple scenes in %s (%d, %dx%d)\n", path, n_simple, so.w, so.h);
        if ((st = sd_synth_ensure(path, &so, NULL)))
            return st;
        simple_rel = "../../bench-simple/simple";
    }
    (void)bench;   /* bench is OUT/bench: the links are relative to OUT */
    snprintf(data_dir, cap, "%.600s/detect-data", out);
    if ((st = sd_remove_tree(data_dir)))
        return st;
    for (int k = 0; k < 3 && !st; k++) {
        snprintf(path, sizeof path, "%.600s/%s", data_dir, k == 0 ? "images" : k == 1 ? "labels" : "instances");
        st = sd_mkdir_p(path);
    }
    if (!st)
        st = link_set(data_dir, "../../bench/sim", "s", have->n_sim);
    if (!st)
        st = link_set(data_dir, simple_rel, "v", n_simple);
    return st ? sd_fail_prefix(st, "demo: the detector's training set") : SD_OK;
}

void demo_det_job(demo_job *j, const demo_setup *ds, const char *data_dir, int seed, int iters, int w, int h)
{
    j->seed = seed;
    j->iters = iters;
    snprintf(j->rundir, sizeof j->rundir, "%.480s/detect-s%d", ds->runs_dir, seed);
    snprintf(j->log, sizeof j->log, "%.500s/detect-s%d.log", ds->runs_dir, seed);
    snprintf(j->cfg, sizeof j->cfg, "%.500s/detect-s%d.cfg", ds->runs_dir, seed);
    snprintf(j->det_data, sizeof j->det_data, "gta5:%.590s", data_dir);
    sd_detect_train_opts *d = &j->detect;
    *d = sd_detect_train_opts_default();
    d->data = j->det_data;
    d->out_dir = j->rundir;
    d->iters = iters;
    d->lr = DET_LR;
    d->warmup_iters = DET_WARMUP;
    d->det.min_size = w < h ? w : h;
    d->det.max_size = w < h ? h : w;
    d->det.anchor_size = DET_ANCHOR;
    d->det.box_batch = DET_BOX_BATCH;
    d->save_every = DET_SAVE_EVERY;
    d->seed = (uint64_t)seed;
}

/* The detector's instances on every labelled image of vd, in dir (once per
 * seed: a later row of the seed finds its completion marker; a detector
 * that trains again clears the folder, jobs.c). */
static sd_status val_instances(const sd_dataset *vd, const char *ckpt, const char *dir)
{
    char mark[700];
    snprintf(mark, sizeof mark, "%.600s/.complete", dir);
    if (access(mark, F_OK) == 0)
        return SD_OK;
    sd_detector *det = NULL;
    sd_status st = sd_remove_tree(dir);
    if (!st && !(st = sd_mkdir_p(dir)))
        st = sd_detector_load(ckpt, &det);
    sd_fuse_opts fo;
    sd_fuse_opts_init(&fo);
    for (int i = 0; i < vd->n && !st; i++) {
        sd_sample s;
        if (!vd->samples[i].label_path || (st = sd_dataset_read(vd, i, &s)))
            continue;
        uint8_t *scratch = sd_calloc((size_t)s.w * s.h, 1);   /* the map it would paint: not needed */
        st = scratch ? sd_fuse_detect(det, s.image, s.w, s.h, scratch, &fo, dir, s.stem, NULL, NULL)
                     : sd_fail(SD_ERR_NOMEM, "%s: out of memory", s.stem);
        free(scratch);
        sd_sample_free(&s);
    }
    sd_detector_free(det);
    FILE *f = st ? NULL : fopen(mark, "w");
    if (!st && (!f || fclose(f)))
        st = sd_fail(SD_ERR_IO, "%s: cannot write", mark);
    return st;
}

/* The network seg's map of every labelled image of vd, scored as it is
 * (pass 0) and with the instances of lists painted over (pass 1): IoUs of
 * both, iIoU of both, the masks painted. */
static sd_status score_maps(const sd_dataset *vd, const char *seg, char **lists, demo_job *j)
{
    sd_model *m = NULL;
    sd_norm norm;
    sd_status st = sd_model_load(seg, false, &m, &norm);
    if (st)
        return st;
    sd_infer_opts io = sd_infer_opts_default(norm);   /* align_corners, as the runs' evaluation */
    sd_fuse_opts fo;
    sd_fuse_opts_init(&fo);
    sd_tape tape;
    st = sd_tape_init_on(&tape, 0, sd_device_selected());
    sd_confusion cm[2];
    sd_iiou ii[2];
    sd_confusion_init(&cm[0]), sd_confusion_init(&cm[1]);
    bool started = false;
    for (int i = 0; i < vd->n && !st; i++) {
        sd_sample s;
        if (!vd->samples[i].label_path || (st = sd_dataset_read(vd, i, &s)))
            continue;
        float *lg = NULL;
        int lw, lh, np = 0;
        uint8_t *map = sd_malloc((size_t)s.lw * s.lh);
        sd_instances in = {0};
        sd_inst_preds pr = {0};
        st = map ? sd_infer_logits(m, &tape, s.image, s.w, s.h, 3, &io, &lg, &lw, &lh)
                 : sd_fail(SD_ERR_NOMEM, "%s: out of memory", s.stem);
        if (!st)
            st = sd_upsample_argmax(lg, sd_model_options(m)->classes, lh, lw, s.lh, s.lw, io.align_corners, map);
        if (!st && !(st = sd_dataset_read_instances(vd, i, &in)) && !started) {
            sd_iiou_init(&ii[0], in.w, in.h), sd_iiou_init(&ii[1], in.w, in.h);
            started = true;
        }
        for (int pass = 0; pass < 2 && !st; pass++) {
            if (pass == 1 && !(st = sd_inst_preds_read(lists[i], s.lw, s.lh, &pr)))
                st = sd_fuse_detections(map, s.lw, s.lh, pr.v, pr.n, &fo, &np);
            if (!st)
                st = sd_confusion_add(&cm[pass], s.label, map, s.lw, s.lh, SD_PRED_TRAIN_IDS, s.stem);
            if (!st)
                st = sd_iiou_add(&ii[pass], &in, map, s.stem);
        }
        j->det.painted += np;
        sd_inst_preds_free(&pr);
        sd_instances_free(&in);
        free(map);
        free(lg);
        sd_sample_free(&s);
    }
    sd_tape_free(&tape);
    sd_model_free(m);
    if (st)
        return sd_fail_prefix(st, "%s", seg);
    sd_eval_result r[2];
    double v[SD_NUM_THING_CLASSES], mean[2];
    for (int pass = 0; pass < 2; pass++) {
        sd_eval_compute(&cm[pass], &r[pass]);
        sd_iiou_compute(&ii[pass], &cm[pass], v, &mean[pass]);
    }
    j->miou = r[1].miou[SD_PROTOCOL_19];
    memcpy(j->class_iou, r[1].class_iou, sizeof j->class_iou);
    j->det.iiou = mean[1];
    j->det.plain_miou = r[0].miou[SD_PROTOCOL_19];
    j->det.plain_iiou = mean[0];
    return SD_OK;
}

/* What produced a "+det" row, as RUNDIR/config.txt (results.json's
 * "config" of the row). */
static sd_status write_row_config(const demo_setup *ds, const demo_job *j, const char *seg, const char *ckpt,
                                  const char *inst)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/config.txt", j->rundir);
    sd_config cfg;
    sd_config_init(&cfg);
    sd_config_set(&cfg, "method", DEMO_FUSED, "demo", true);
    sd_config_set(&cfg, "seg", seg, "demo", true);
    sd_config_set(&cfg, "detector", ckpt, "demo", true);
    sd_config_set(&cfg, "instances", inst, "demo", true);
    sd_config_set(&cfg, "data", ds->tgt, "demo", true);
    sd_config_set(&cfg, "split", "val", "demo", true);
    sd_config_set(&cfg, "fuse-score", "0.5", "demo", true);
    sd_config_set(&cfg, "fuse-overlap", "0.5", "demo", true);
    sd_status st = sd_config_write(&cfg, path);
    sd_config_free(&cfg);
    return st;
}

sd_status demo_det_score(const demo_setup *ds, const demo_job *jobs, demo_job *j)
{
    const demo_job *dj = &jobs[j->det_job];
    const char *seg = "";
    for (int e = 0; e < j->n_extra; e++)
        if (!strncmp(j->extra[e], "seg=", 4))
            seg = j->extra[e] + 4;
    char ckpt[700], inst[700];
    snprintf(ckpt, sizeof ckpt, "%.600s/detector.safetensors", dj->rundir);
    snprintf(inst, sizeof inst, "%.600s/val-instances", dj->rundir);
    memset(&j->det, 0, sizeof j->det);
    int threads = sd_threads();
    sd_set_threads(ds->threads);   /* as the runs' own evaluation */
    sd_dataset vd;
    bool open = false;
    char **lists = NULL;
    sd_ap ap;
    sd_ap_init(&ap);
    sd_status st = demo_set_compute(ds);
    if (!st && !(st = sd_remove_tree(j->rundir)) && !(st = sd_mkdir_p(j->rundir)))
        open = !(st = sd_dataset_open(&vd, ds->tgt, "val", NULL));
    if (!st)
        st = val_instances(&vd, ckpt, inst);
    int n_img = 0;
    if (!st && !(st = sd_ap_pred_dir(&vd, inst, &ap, &n_img))) {
        sd_ap_result r;
        sd_ap_compute(&ap, &r);
        j->det.ap = r.ap_mean, j->det.ap50 = r.ap50_mean;
        for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
            j->det.detections += (int)ap.predictions[k];
    }
    if (!st && !(st = sd_inst_lists_match(&vd, inst, &lists)))
        st = score_maps(&vd, seg, lists, j);
    if (!st)
        st = write_row_config(ds, j, seg, ckpt, inst);
    if (lists)
        sd_inst_lists_free(lists, vd.n);
    sd_ap_free(&ap);
    if (open)
        sd_dataset_free(&vd);
    sd_set_threads(threads);
    FILE *log = fopen(j->log, "w");
    if (log) {
        fprintf(log, "segda demo: %s %s\n", j->name, st ? "failed" : "done");
        if (st)
            fprintf(log, "%s\n", sd_errmsg());
        else
            fprintf(log, "mIoU-19 %.4f (unfused %.4f), iIoU %.4f (unfused %.4f); detector AP %.4f, AP50 %.4f, %d "
                         "detections, %d masks painted\n",
                    j->miou, j->det.plain_miou, j->det.iiou, j->det.plain_iiou, j->det.ap, j->det.ap50,
                    j->det.detections, j->det.painted);
        fclose(log);
    }
    if (st)
        sd_error_clear();
    return st;
}
