/* segda demo end to end on a tiny benchmark (needs SEGDA_BIN): the pretrain
 * stage, source-base, every --full row with its dependencies (FDA's
 * self-supervised row on the checkpoints of the three single-band rows, the
 * adabn rows on the checkpoints of their methods),
 * results.json in the asked shape (with each run's configuration, version,
 * precision, device), report.md, no "±" in a one-seed table, issue 16's detection-based
 * foreground rows (a detector per seed, rows scored with its masks). A few iterations each: this
 * checks the plumbing, not the numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "segda/draw.h"
#include "segda/image.h"
#include "segda/labels.h"
#include "util.h"

static char dir[256];
static const char *bin;


/* The results.json entry of a method (seed 1), or NULL. */
static const char *entry(const char *json, const char *method)
{
    char key[96];
    snprintf(key, sizeof key, "{\"method\": \"%s\", \"seed\": 1,", method);
    return strstr(json, key);
}

/* Whether dir/rel exists. */
static bool exists(const char *rel)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return access(path, F_OK) == 0;
}

/* A number after `key` in text (NAN when absent or null). */
static double num_after(const char *text, const char *key)
{
    const char *p = text ? strstr(text, key) : NULL;
    if (!p || !strncmp(p + strlen(key), "null", 4))
        return NAN;
    return atof(p + strlen(key));
}

/* Issue 16's rows: the background pseudo-label row's configuration, and
 * each "+det" row's detector measures in [0, 1]; its unfused map scored as
 * the network's own run scored it (source-base's summary.json, the
 * selftrain-stuff-psgt row), and the fused one equal to it when no mask
 * was painted (a 2-step detector scores about 1/9: none reaches 0.5). */
static void check_det_rows(const char *json)
{
    const char *ps = entry(json, "selftrain-stuff-psgt");
    CHECK(ps && strstr(ps, "\"init\": \"source-base\"") && strstr(ps, "\"pseudo-classes\": \"stuff\"") &&
          strstr(ps, "\"portion\": \"1\"") && strstr(ps, "\"portion-max\": \"1\"") && strstr(ps, "\"rounds\": \"1\""));
    char path[512];
    snprintf(path, sizeof path, "%s/runs/source-base-s1/summary.json", dir);
    char *sum = test_slurp(path, NULL);
    const double base = num_after(sum, "\"final\": {\"miou_19\": ");
    free(sum);
    const char *rows[2] = {"source-base+det", "selftrain-stuff-psgt+det"};
    const double own[2] = {base, num_after(ps, "\"miou_19\": ")};
    for (int k = 0; k < 2; k++) {
        const char *e = entry(json, rows[k]);
        const char *d = e ? strstr(e, "\"detector\": {") : NULL;
        const char *next = e ? strstr(e + 1, "{\"method\": ") : NULL;
        CHECK_MSG(d && (!next || d < next), "%s has no detector measures", rows[k]);
        if (!d)
            continue;
        CHECK(strstr(e, k ? "\"iters\": 0, \"init\": \"selftrain-stuff-psgt\"" : "\"iters\": 0, \"init\": \"source-base\"") == strstr(e, "\"iters\""));
        double ap = num_after(d, "\"ap\": "), ap50 = num_after(d, "\"ap50\": "), iiou = num_after(d, "\"iiou\": ");
        double plain = num_after(d, "\"unfused_miou_19\": "), fused = num_after(e, "\"miou_19\": ");
        int painted = (int)num_after(d, "\"painted\": "), dets = (int)num_after(d, "\"detections\": ");
        CHECK_MSG(ap >= 0 && ap <= 1 && ap50 >= ap && ap50 <= 1 && (isnan(iiou) || (iiou >= 0 && iiou <= 1)),
                  "%s: AP %g, AP50 %g, iIoU %g", rows[k], ap, ap50, iiou);
        CHECK_MSG(fabs(plain - own[k]) < 1e-6, "%s: unfused mIoU %g, its network's run %g", rows[k], plain, own[k]);
        CHECK_MSG(dets > 0 && painted == 0 && fused == plain, "%s: %d detections, %d painted, mIoU %g vs %g unfused",
                  rows[k], dets, painted, fused, plain);
        CHECK(strstr(d, "\"unfused_iiou\": ") && strstr(e, "\"method\": \"det-fuse\"") &&
              strstr(e, "/runs/detect-s1/detector.safetensors\""));
    }
    /* the detector: the benchmark's recipe at the images' size (64x32), on
     * the 8 sim images and 8 simple scenes linked into one folder; the
     * benchmark itself gets no simple scenes (its files are untouched) */
    snprintf(path, sizeof path, "%s/runs/detect-s1.cfg", dir);
    char *cfg = test_slurp(path, NULL);
    CHECK_MSG(cfg && strstr(cfg, "min-size = 32\n") && strstr(cfg, "max-size = 64\n") && strstr(cfg, "anchor-size = 8\n") &&
              strstr(cfg, "box-batch = 128\n") && strstr(cfg, "warmup = 100\n") && strstr(cfg, "lr = 0.0025\n") &&
              strstr(cfg, "bn = auto\n") &&
              strstr(cfg, "iters = 2\n"), "detect-s1.cfg: %s", cfg ? cfg : "(none)");
    free(cfg);
    snprintf(path, sizeof path, "%s/runs/detect-s1/log.csv", dir);
    char *log = test_slurp(path, NULL);
    CHECK(log && strstr(log, "\n1,") && strstr(log, "\n2,") && !strstr(log, "\n3,"));
    free(log);
    CHECK(exists("detect-data/images/v00008.png") && exists("detect-data/instances/s00008.png") &&
          !exists("detect-data/images/v00009.png") && !exists("bench/simple") &&
          exists("bench-simple/simple/instances/00008.png"));
}

static void TEST_full_tiny(void)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd,
             "%s synth --out %s/bench --n-sim 8 --n-real 200 --n-real-val 4 --size 64x32 --crops 4 --crop-size 32 "
             "--threads 1 --quiet",
             bin, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "%s demo --out %s --full --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --jobs 2 --threads 1 "
             "--no-gap --det-iters 2 --simple-scenes 8 > %s/demo.out 2> %s/demo.err",
             bin, dir, dir, dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "segda demo failed (%d), see %s/demo.err", rc, dir);

    snprintf(path, sizeof path, "%s/results.json", dir);
    char *json = test_slurp(path, NULL);
    CHECK(json != NULL);
    if (!json)
        return;
    static const char *rows[] = {"oracle",         "source-only",    "bn-control",   "adabn",         "feature-adv",
                                 "adaptseg",       "adaptseg-multi", "adaptseg-ls",  "road",          "road-distill",
                                 "road-spatial",   "minent",         "advent",       "fda",           "fda-b01",
                                 "fda-b09",        "fda-ssl",        "fda+adabn",    "minent+adabn",  "adaptseg+adabn",
                                 "selftrain-cbst", "selftrain-stuff", "selftrain-mt", "finetune-75",  "finetune-200",
                                 /* issue 18's lambda sweep, issue 19's rows */
                                 "adaptseg-x10", "adaptseg-x100", "advent-x10", "advent-x100", "feature-adv-x10",
                                 "feature-adv-x100", "road-x10", "road-x100", "bn-control-bs", "adaptseg-bs", "advent-bs", "scratch-source", "taskgan-a0",
                                 "taskgan-1pct", "taskgan-5pct", "taskgan-25pct", "taskgan-100pct",
                                 "scratch-ft-1pct", "scratch-ft-5pct", "scratch-ft-25pct", "scratch-ft-100pct",
                                 /* issue 16's */
                                 "selftrain-stuff-psgt", "source-base+det", "selftrain-stuff-psgt+det"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *e = entry(json, rows[i]);
        CHECK_MSG(e != NULL, "results.json has no seed-1 entry for %s", rows[i]);
        if (!e)
            continue;
        const char *m = strstr(e, "\"miou_19\": ");
        double v = m ? atof(m + 11) : -1;
        CHECK_MSG(v >= 0 && v <= 1, "%s: miou_19 %g not a fraction", rows[i], v);
        CHECK(strstr(e, "\"class_iou\": {\"road\": ") != NULL);
    }
    /* the oracle starts from the pretrained backbone, the rows from source-base */
    const char *o = entry(json, "oracle");
    CHECK(o && strstr(o, "\"init\": \"pretrain\"") == strstr(o, "\"init\""));
    const char *f = entry(json, "fda");
    CHECK(f && strstr(f, "\"init\": \"source-base\"") == strstr(f, "\"init\""));
    const char *fa = entry(json, "fda+adabn");
    CHECK(fa && strstr(fa, "\"iters\": 2, \"init\": \"fda\"") == strstr(fa, "\"iters\""));
    /* each entry carries what produced it: the run's resolved settings, the
     * segda version, precision and device (checked on the fda entry, whose
     * next entry starts after it) */
    const char *next = f ? strstr(f + 1, "{\"method\": ") : NULL;
    const char *cf = f ? strstr(f, "\"config\": {") : NULL;
    CHECK_MSG(cf && (!next || cf < next), "fda's results.json entry has no config");
    CHECK(cf && strstr(cf, "\"beta\": \"0.05\"") && strstr(cf, "\"method\": \"fda\"") &&
          strstr(cf, "\"bn\": \"train\""));
    CHECK(f && strstr(f, "\"segda_version\": \"") && strstr(f, "\"precision\": \"f32\"") &&
          strstr(f, "\"device\": \"cpu\""));
    /* adaptseg's lambda-adv as used (0 in the knob means the published 0.001) */
    const char *as = entry(json, "adaptseg");
    CHECK(as && strstr(as, "\"lambda-adv\": \"0.001\""));
    check_det_rows(json);
    free(json);
    /* one seed: no spread to print ("± 0.0" would claim one) */
    snprintf(path, sizeof path, "%s/demo.out", dir);
    char *table = test_slurp(path, NULL);
    CHECK_MSG(table && strstr(table, "mIoU-19") && !strstr(table, "±"), "a one-seed table prints ±:\n%s",
              table ? table : "(none)");
    free(table);

    /* fda-ssl's configuration names the three single-band checkpoints of its seed */
    snprintf(path, sizeof path, "%s/runs/fda-ssl-s1.cfg", dir);
    char *cfg = test_slurp(path, NULL);
    CHECK(cfg != NULL);
    if (cfg) {
        char want[1024];
        snprintf(want, sizeof want,
                 "pseudo-from = %s/runs/fda-b01-s1/last.safetensors,%s/runs/fda-s1/last.safetensors,"
                 "%s/runs/fda-b09-s1/last.safetensors",
                 dir, dir, dir);
        CHECK_MSG(strstr(cfg, want) != NULL, "fda-ssl config lacks '%s'", want);
        CHECK(strstr(cfg, "init = ") != NULL);
        free(cfg);
    }
    /* an "X+adabn" row re-estimates BN on X's checkpoint of its seed */
    snprintf(path, sizeof path, "%s/runs/fda+adabn-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    CHECK(cfg != NULL);
    if (cfg) {
        char want[600];
        snprintf(want, sizeof want, "init = %s/runs/fda-s1/last.safetensors", dir);
        CHECK_MSG(strstr(cfg, want) != NULL, "fda+adabn config lacks '%s'", want);
        CHECK(strstr(cfg, "method = adabn") != NULL);
        free(cfg);
    }
    snprintf(path, sizeof path, "%s/runs/fda-ssl-s1/pseudo-fda.bin", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/runs/pretrain.safetensors", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/runs/source-base-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    CHECK(cfg && strstr(cfg, "warmup = 100") && strstr(cfg, "pretrain.safetensors"));
    free(cfg);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *rep = test_slurp(path, NULL);
    CHECK(rep && strstr(rep, "| fda-ssl |") && strstr(rep, "pretrained") && strstr(rep, "(curve-advent.svg)"));
    /* the sweep rows' gradient ratios, the translated-examples figure */
    CHECK_MSG(rep && strstr(rep, "## Gradient ratios") && strstr(rep, "| adaptseg-x100 | adv |") &&
              strstr(rep, "| feature-adv | adapt |") && strstr(rep, "| road-x10 | dist |"),
              "report.md lacks the gradient-ratio rows");
    CHECK(rep && strstr(rep, "![translated](translated.svg)"));
    /* the "+det" rows: in the table and the detector's table, no curves */
    CHECK(rep && strstr(rep, "| source-base+det |") && strstr(rep, "## Detection-based foreground") &&
          strstr(rep, "| selftrain-stuff-psgt+det | ") && !strstr(rep, "curve-source-base+det"));
    free(rep);
    snprintf(path, sizeof path, "%s/translated.svg", dir);
    char *svg = test_slurp(path, NULL);
    CHECK(svg && strstr(svg, ">G_S(real)</text>") && strstr(svg, ">ground truth</text>") &&
          strstr(svg, "data:image/png;base64,iVBORw0KGgo"));
    free(svg);
    /* the x100 row runs at 100x the published weight; scratch-source has no --init
     * and the budget of source-base + source-only; taskgan's f is scratch-source
     * (1 % of 200 real train images: 2 labelled), finetune's labels the same count */
    snprintf(path, sizeof path, "%s/runs/adaptseg-x100-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    CHECK(cfg && strstr(cfg, "lambda-adv = 0.1\n") && strstr(cfg, "log-grad-ratio = 50"));
    free(cfg);
    snprintf(path, sizeof path, "%s/runs/minent-s1.cfg", dir);   /* as in the default set */
    cfg = test_slurp(path, NULL);
    CHECK(cfg && !strstr(cfg, "log-grad-ratio"));
    free(cfg);
    snprintf(path, sizeof path, "%s/runs/scratch-source-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    CHECK(cfg && !strstr(cfg, "init = ") && strstr(cfg, "iters = 4\n") && strstr(cfg, "method = source-only"));
    free(cfg);
    snprintf(path, sizeof path, "%s/runs/taskgan-1pct-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    char want[600];
    snprintf(want, sizeof want, "task-model = %s/runs/scratch-source-s1/last.safetensors", dir);
    CHECK_MSG(cfg && strstr(cfg, want) && strstr(cfg, "target-labels = 2\n") && strstr(cfg, "crop = 64x32"),
              "taskgan-1pct config: %s", cfg ? cfg : "(none)");
    free(cfg);
    snprintf(path, sizeof path, "%s/runs/scratch-ft-1pct-s1.cfg", dir);
    cfg = test_slurp(path, NULL);
    snprintf(want, sizeof want, "init = %s/runs/scratch-source-s1/last.safetensors", dir);
    CHECK(cfg && strstr(cfg, want) && strstr(cfg, "target-labels = 2\n"));
    free(cfg);
    /* the loss curves are segda plot's charts: ticks, legend, the val mIoU panel */
    snprintf(path, sizeof path, "%s/curve-advent.svg", dir);
    svg = test_slurp(path, NULL);
    CHECK(svg && strstr(svg, "class=\"ytick-label\"") && strstr(svg, "class=\"xtick-label\"") &&
          strstr(svg, ">seed 1 seg<") && strstr(svg, ">mIoU-19 (%)<") && strstr(svg, "data-name=\"seed 1\""));
    free(svg);
    /* examples.png: titled columns over 4 rows of 64x32 images, the class legend under them */
    snprintf(path, sizeof path, "%s/examples.png", dir);
    sd_image ex;
    CHECK_OK(sd_image_read(path, &ex, false));
    const int head = SD_FONT_H + 6, legend_y = head + 4 * (32 + 4);
    int black = 0, found = 0;
    for (int y = 0; y < head && ex.data; y++)
        for (int x = 0; x < ex.w; x++)
            black += !memcmp((uint8_t *)ex.data + ((size_t)y * ex.w + x) * 3, "\0\0\0", 3);
    for (int c = 0; c < SD_NUM_CLASSES && ex.data; c++) {
        bool seen = false;
        for (int y = legend_y; y < ex.h && !seen; y++)
            for (int x = 0; x < ex.w && !seen; x++)
                seen = !memcmp((uint8_t *)ex.data + ((size_t)y * ex.w + x) * 3, sd_class_colors[c], 3);
        found += seen;
    }
    CHECK_MSG(black > 100 && found == SD_NUM_CLASSES && ex.h >= legend_y + 2 * (SD_FONT_H + 2),
              "header text pixels %d, legend colours %d of 19, height %d", black, found, ex.h);
    sd_image_free(&ex);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text ? strstr(text, what) : NULL; p; p = strstr(p + 1, what))
        n++;
    return n;
}

/* --resume after TEST_full_tiny: every run is kept; a row whose run
 * directory is gone runs again (to the same result: training is
 * deterministic) while the others stay kept. */
static void TEST_resume_keeps_finished_runs(void)
{
    char cmd[1024], path[512];
    const char *args = "--full --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --jobs 2 --threads 1 --no-gap "
                       "--det-iters 2 --simple-scenes 8";
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *before = test_slurp(path, NULL);
    snprintf(cmd, sizeof cmd, "%s demo --out %s %s --resume > %s/demo2.out 2> %s/demo2.err", bin, dir, args, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/demo2.err", dir);
    char *err = test_slurp(path, NULL);
    CHECK_MSG(count(err, "kept from an earlier run") == 49,
              "%d runs kept, expected 49 (47 trained rows + source-base + detect; the 2 \"+det\" rows are scored again)",
              count(err, "kept from an earlier run"));
    free(err);
    snprintf(cmd, sizeof cmd, "rm -rf %s/runs/fda-s1", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s demo --out %s %s --resume > %s/demo3.out 2> %s/demo3.err", bin, dir, args, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/demo3.err", dir);
    err = test_slurp(path, NULL);
    CHECK(count(err, "kept from an earlier run") == 48);
    CHECK(count(err, "started fda (seed 1") == 1);
    free(err);
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *after = test_slurp(path, NULL);
    const char *a = before ? strstr(strstr(before, "\"method\": \"fda\""), "\"miou_19\"") : NULL;
    const char *b = after ? strstr(strstr(after, "\"method\": \"fda\""), "\"miou_19\"") : NULL;
    CHECK(a && b && atof(a + 11) == atof(b + 11));
    free(before);
    free(after);
}

/* --resume over a run that has its final checkpoint but no summary.json (a
 * demo killed after the run's last iteration, before the summary was
 * written): the run is redone, to the same result, the others kept. (It
 * used to be resumed at its last iteration, which does nothing and leaves
 * no final evaluation: the row FAILED.) */
static void TEST_resume_without_summary(void)
{
    char cmd[1024], path[512];
    const char *args = "--full --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --jobs 2 --threads 1 --no-gap "
                       "--det-iters 2 --simple-scenes 8";
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *before = test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/runs/minent-s1/summary.json", dir);
    CHECK(unlink(path) == 0);
    snprintf(path, sizeof path, "%s/runs/minent-s1/last.safetensors", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(cmd, sizeof cmd, "%s demo --out %s %s --resume > %s/demo5.out 2> %s/demo5.err", bin, dir, args, dir, dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "demo --resume failed (%d), see %s/demo5.err", rc, dir);
    snprintf(path, sizeof path, "%s/demo5.err", dir);
    char *err = test_slurp(path, NULL);
    CHECK_MSG(count(err, "kept from an earlier run") == 48 && count(err, "started minent (seed 1") == 1 &&
              count(err, "FAILED") == 0, "%s", err ? err : "(none)");
    free(err);
    snprintf(path, sizeof path, "%s/runs/minent-s1/summary.json", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *after = test_slurp(path, NULL);
    const char *a = before ? strstr(before, "\"method\": \"minent\"") : NULL;
    const char *b = after ? strstr(after, "\"method\": \"minent\"") : NULL;
    a = a ? strstr(a, "\"miou_19\"") : NULL;
    b = b ? strstr(b, "\"miou_19\"") : NULL;
    CHECK(a && b && atof(a + 11) == atof(b + 11) && atof(a + 11) > 0);
    free(before);
    free(after);
}

/* `segda demo --rows ROWS --resume` over the tiny runs (as `tag`): its
 * exit status, results.json and stderr (*json, *err: malloc'd). */
static int demo_rows(const char *rows, const char *tag, char **json, char **err)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd,
             "%s demo --out %s --rows %s --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --jobs 2 "
             "--threads 1 --no-gap --det-iters 2 --simple-scenes 8 --resume > %s/%s.out 2> %s/%s.err",
             bin, dir, rows, dir, tag, dir, tag);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/results.json", dir);
    *json = test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/%s.err", dir, tag);
    *err = test_slurp(path, NULL);
    return rc;
}

/* --rows after the runs above: only the named rows of --full and the rows
 * they start from (fda-ssl's pseudo-labels come from the three fda rows),
 * every run kept from the earlier demo. */
static void TEST_rows_subset(void)
{
    char cmd[1024], *json, *err;
    CHECK(demo_rows("fda-ssl", "demo4", &json, &err) == 0);
    static const char *want[] = {"oracle", "source-only", "fda", "fda-b01", "fda-b09", "fda-ssl"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK_MSG(json && entry(json, want[i]), "row %s missing", want[i]);
    CHECK(json && !entry(json, "road") && !entry(json, "adabn") && !entry(json, "taskgan-a0"));
    CHECK_MSG(count(err, "kept from an earlier run") == 7, "%d runs kept, expected 7 (6 rows + source-base)",
              count(err, "kept from an earlier run"));
    free(json);
    free(err);
    /* a "+det" row pulls in the detector and the run it paints over
     * (source-base: not a row), nothing else */
    CHECK(demo_rows("source-base+det", "demo6", &json, &err) == 0);
    CHECK(json && entry(json, "oracle") && entry(json, "source-only") && entry(json, "source-base+det") &&
          !entry(json, "selftrain-stuff-psgt") && !entry(json, "fda"));
    CHECK_MSG(count(err, "kept from an earlier run") == 4 && count(err, "detect           seed 1") == 1,
              "expected oracle, source-only, source-base and detect kept:\n%s", err ? err : "(none)");
    free(json);
    free(err);
    snprintf(cmd, sizeof cmd, "%s demo --out %s/x --rows fda-ssl,no-such-row 2>/dev/null", bin, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
}

/* --pretrain-precision: the one pretraining in its own precision, every
 * other run in --precision's (a separate folder: a changed precision is a
 * new demo), recorded in the runs' summaries and in report.md. */
static void TEST_pretrain_precision(void)
{
    char cmd[3000], path[600];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/pp && ln -sfn %s/bench %s/pp/bench && %s demo --out %s/pp --methods fda --seeds 1 "
             "--pretrain-iters 2 --iters 2 --adapt-iters 2 --jobs 1 --threads 1 --no-gap --precision bf16-emulated "
             "--pretrain-precision f32 > %s/pp.out 2> %s/pp.err",
             dir, dir, dir, bin, dir, dir, dir);
    CHECK_MSG(system(cmd) == 0, "segda demo failed, see %s/pp.err", dir);
    snprintf(path, sizeof path, "%s/pp/runs/pretrain.safetensors.summary.json", dir);
    char *pre = test_slurp(path, NULL);
    CHECK_MSG(pre && strstr(pre, "\"precision\": \"f32\""), "pretraining: %s", pre ? pre : "(none)");
    free(pre);
    snprintf(path, sizeof path, "%s/pp/runs/source-base-s1/summary.json", dir);
    char *sb = test_slurp(path, NULL);
    CHECK_MSG(sb && strstr(sb, "precision = bf16-emulated"), "source-base: %s", sb ? sb : "(none)");
    free(sb);
    snprintf(path, sizeof path, "%s/pp/report.md", dir);
    char *rep = test_slurp(path, NULL);
    CHECK(rep && strstr(rep, "at 64 px, f32, val top-1"));
    free(rep);
    /* --resume with the pretraining's precision changed would keep rows
     * made from the old backbone: refused, by name, nothing removed */
    snprintf(cmd, sizeof cmd,
             "%s demo --out %s/pp --methods fda --seeds 1 --pretrain-iters 2 --iters 2 --adapt-iters 2 --jobs 1 "
             "--threads 1 --no-gap --precision bf16-emulated --resume > %s/pp2.out 2>&1",
             bin, dir, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 1);
    snprintf(path, sizeof path, "%s/pp2.out", dir);
    char *msg = test_slurp(path, NULL);
    CHECK_MSG(msg && strstr(msg, "pretrain.safetensors: pretrained in f32, but this demo pretrains in bf16-emulated"),
              "%s", msg ? msg : "(none)");
    free(msg);
    snprintf(path, sizeof path, "%s/pp/runs/fda-s1/summary.json", dir);
    CHECK(access(path, F_OK) == 0);
}

static void TEST_bad_usage(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s demo --out %s/x --pretrain-iters -1 2>/dev/null", bin, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "%s demo --out %s/x --methods no-such-method 2>/dev/null", bin, dir);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    /* numbers are parsed whole, with ranges, and the message names the
     * option ("abc" was atoi's 0: the default, silently) */
    char err[300], cmd2[1024];
    snprintf(err, sizeof err, "%s/usage.err", dir);
    snprintf(cmd2, sizeof cmd2, "%s demo --out %s/x --iters abc --jobs -1 2>%s", bin, dir, err);
    CHECK(WEXITSTATUS(system(cmd2)) == 2);
    char *msg = test_slurp(err, NULL);
    CHECK_MSG(msg && strstr(msg, "--iters 'abc', expected an integer"), "stderr: %s", msg ? msg : "(none)");
    free(msg);
    snprintf(cmd2, sizeof cmd2, "%s demo --out %s/x --lr 0 2>%s", bin, dir, err);
    CHECK(WEXITSTATUS(system(cmd2)) == 2);
    msg = test_slurp(err, NULL);
    CHECK(msg && strstr(msg, "--lr '0'"));
    free(msg);
    snprintf(cmd2, sizeof cmd2, "%s demo --out %s/x --pretrain-precision fp8 2>%s", bin, dir, err);
    CHECK(WEXITSTATUS(system(cmd2)) == 2);
    msg = test_slurp(err, NULL);
    CHECK(msg && strstr(msg, "pretrain-precision 'fp8': expected f32, bf16 or bf16-emulated"));
    free(msg);
}

int main(void)
{
    bin = getenv("SEGDA_BIN");
    if (!bin) {
        printf("SKIP TEST_full_tiny (no SEGDA_BIN)\nSKIP TEST_bad_usage (no SEGDA_BIN)\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/segda-demo-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(TEST_full_tiny);
    RUN(TEST_resume_keeps_finished_runs);
    RUN(TEST_resume_without_summary);
    RUN(TEST_rows_subset);
    RUN(TEST_pretrain_precision);
    RUN(TEST_bad_usage);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!check_total_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_total_failed_ ? 1 : 0;
}
