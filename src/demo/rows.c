/* The rows of the demo's table: the default set, --methods, the --full set
 * (with the lambda sweep and the task-informed GAN rows of issues 18 and
 * 19, the detection-based foreground rows of issue 16) and --rows' subset
 * of it. A row is a name, a method and its knobs
 * ("key=value"; "@row" names another row's checkpoint of the same seed).
 * New rows go here and nowhere else. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "demo/demo_internal.h"
#include "segda/train.h"

static int add_run(demo_row *runs, int n, const char *name, const char *method, int n_extra, ...)
{
    demo_row *r = &runs[n];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->method, sizeof r->method, "%s", method);
    va_list ap;
    va_start(ap, n_extra);
    for (int i = 0; i < n_extra && i < DEMO_MAX_EXTRA; i++)
        r->extra[r->n_extra++] = va_arg(ap, const char *);
    va_end(ap);
    return n + 1;
}

/* ---- --full rows of issues 18 and 19 ----
 * The lambda sweep: each adversarial method at x10 and x100 of its published
 * weights (x1 are the rows above), every such row logging its gradient
 * ratios (--log-grad-ratio 50). The seed's from-scratch comparison:
 * scratch-source is source-only from random weights with the budget of
 * source-base + source-only (the pretrained pair). The task-informed GAN
 * (taskgan) with f = scratch-source: alpha 0 (plain LSGAN/CycleGAN), the task
 * term with 1/5/25/100 % of real train labels, and f fine-tuned on the same
 * labelled images (finetune chooses the subset as taskgan does, by seed).
 * taskgan trains a small generator (ngf 16, 3 residual blocks, PatchGAN ndf
 * 16) on whole images so that a CPU demo stays within its budget. */
static const int demo_label_pct[4] = {1, 5, 25, 100};
static char demo_crop_kv[48], demo_labels_kv[4][48];

bool demo_row_is_fused(const demo_row *r)
{
    return !strcmp(r->method, DEMO_FUSED);
}

bool demo_row_from_random(const demo_row *r)
{
    return !strcmp(r->name, "scratch-source") || !strcmp(r->method, "taskgan");
}

/* The values that depend on the benchmark: taskgan's crop (whole images;
 * multiples of 4) and the label counts of each share. */
static void demo_rows_set_bench(int w, int h, int n_real)
{
    snprintf(demo_crop_kv, sizeof demo_crop_kv, "crop=%dx%d", w / 4 * 4, h / 4 * 4);
    for (int k = 0; k < 4; k++) {
        int n = (int)floor(demo_label_pct[k] / 100.0 * n_real + 0.5);
        snprintf(demo_labels_kv[k], sizeof demo_labels_kv[k], "target-labels=%d", n < 1 ? 1 : n);
    }
}

static int demo_full_extra_rows(demo_row *runs, int nr)
{
    static const char *const adversarial[] = {"adaptseg", "advent", "feature-adv", "road"};
    nr = add_run(runs, nr, "adaptseg-x10", "adaptseg", 1, "lambda-adv=0.01");
    nr = add_run(runs, nr, "adaptseg-x100", "adaptseg", 1, "lambda-adv=0.1");
    nr = add_run(runs, nr, "advent-x10", "advent", 3, "mode=advent", "lambda-adv=0.01", "lambda-adv-aux=0.002");
    nr = add_run(runs, nr, "advent-x100", "advent", 3, "mode=advent", "lambda-adv=0.1", "lambda-adv-aux=0.02");
    nr = add_run(runs, nr, "feature-adv-x10", "feature-adv", 1, "lambda-adv=0.1");
    nr = add_run(runs, nr, "feature-adv-x100", "feature-adv", 1, "lambda-adv=1");
    nr = add_run(runs, nr, "road-x10", "road", 2, "lambda-dist=1", "lambda-spatial=0.1");
    nr = add_run(runs, nr, "road-x100", "road", 2, "lambda-dist=10", "lambda-spatial=1");
    /* the official code's BN mode (model.train(), affine frozen: batch
     * statistics) for AdaptSegNet and ADVENT, against the control in the same
     * mode; the demo's other rows train BN */
    nr = add_run(runs, nr, "bn-control-bs", "advent", 5, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0",
                 "levels=single", "bn=batch-stats");
    nr = add_run(runs, nr, "adaptseg-bs", "adaptseg", 1, "bn=batch-stats");
    nr = add_run(runs, nr, "advent-bs", "advent", 2, "mode=advent", "bn=batch-stats");
    /* (not minent and bn-control: they stay bit-identical to the default set's rows) */
    for (int i = 0; i < nr; i++) {
        bool minent = false;
        for (int e = 0; e < runs[i].n_extra; e++)
            minent |= !strcmp(runs[i].extra[e], "mode=minent");
        for (size_t m = 0; m < sizeof adversarial / sizeof *adversarial; m++)
            if (!strcmp(runs[i].method, adversarial[m]) && !minent && runs[i].n_extra < DEMO_MAX_EXTRA)
                runs[i].extra[runs[i].n_extra++] = "log-grad-ratio=50";
    }
    nr = add_run(runs, nr, "scratch-source", "source-only", 0);
    const char *gan[] = {"task-model=@scratch-source", demo_crop_kv, "gen-ngf=16", "gen-blocks=3", "disc-ndf=16"};
    nr = add_run(runs, nr, "taskgan-a0", "taskgan", 6, gan[0], gan[1], gan[2], gan[3], gan[4], "alpha=0");
    char name[32];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "taskgan-%dpct", demo_label_pct[k]);
        nr = add_run(runs, nr, name, "taskgan", 6, gan[0], gan[1], gan[2], gan[3], gan[4], demo_labels_kv[k]);
    }
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "scratch-ft-%dpct", demo_label_pct[k]);
        nr = add_run(runs, nr, name, "finetune", 2, "init=@scratch-source", demo_labels_kv[k]);
    }
    return nr;
}

/* --rows: keeps oracle, source-only, the named rows and, transitively, the
 * rows they name with "@row"; the order of the --full table is kept.
 * Returns the new count, or -1 naming an unknown row. */
static int demo_keep_rows(demo_row *runs, int nr, const char *list)
{
    bool keep[DEMO_MAX_ROWS] = {false};
    keep[0] = keep[1] = true;   /* oracle, source-only */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < nr && strcmp(runs[k].name, tok))
            k++;
        if (k == nr)
            return sd_fail(SD_ERR_ARG, "'%s' is not a row of --full", tok), -1;
        keep[k] = true;
    }
    for (bool grew = true; grew;) {
        grew = false;
        for (int i = 0; i < nr; i++)
            for (int e = 0; keep[i] && e < runs[i].n_extra; e++)
                for (int k = 0; k < nr; k++) {
                    const char *at = strstr(runs[i].extra[e], "@");
                    size_t n = strlen(runs[k].name);
                    for (; at; at = strstr(at + 1, "@"))
                        if (!keep[k] && !strncmp(at + 1, runs[k].name, n) && (at[1 + n] == ',' || !at[1 + n]))
                            keep[k] = grew = true;
                }
    }
    int n = 0;
    for (int i = 0; i < nr; i++)
        if (keep[i])
            runs[n++] = runs[i];
    return n;
}

/* The default set: the strongest rows of the --full table (README "The
 * demo") with the control and MinEnt, whose gain it explains. bn-control is
 * a control, not a method: MinEnt at weight 0, i.e. the source loss with
 * target batches passed through the network in training mode, so BN's
 * running statistics drift part of the way to the target. With BN trained,
 * every method that forwards target batches gets this for free; the row
 * shows how much of a gain it explains. adabn (Li et al.) goes all the way:
 * the statistics of a finished network re-estimated on target images alone,
 * weights untouched; "X+adabn" is that step after method X. */
static int demo_default_rows(demo_row *runs, int nr)
{
    nr = add_run(runs, nr, "adabn", "adabn", 1, "init=@source-only");
    nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
    nr = add_run(runs, nr, "fda+adabn", "adabn", 1, "init=@fda");
    nr = add_run(runs, nr, "bn-control", "advent", 4, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0", "levels=single");
    nr = add_run(runs, nr, "minent", "advent", 2, "mode=minent", "levels=single");
    return nr;
}

/* --full: every method, its variants and the controls. */
static int demo_full_rows(demo_row *runs, int nr)
{
    nr = add_run(runs, nr, "bn-control", "advent", 4, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0", "levels=single");
    nr = add_run(runs, nr, "adabn", "adabn", 1, "init=@source-only");
    nr = add_run(runs, nr, "feature-adv", "feature-adv", 0);
    nr = add_run(runs, nr, "adaptseg", "adaptseg", 0);
    nr = add_run(runs, nr, "adaptseg-multi", "adaptseg", 1, "levels=multi");
    nr = add_run(runs, nr, "adaptseg-ls", "adaptseg", 1, "gan=ls");
    nr = add_run(runs, nr, "road", "road", 0);
    nr = add_run(runs, nr, "road-distill", "road", 1, "spatial=false");
    nr = add_run(runs, nr, "road-spatial", "road", 1, "distill=off");
    nr = add_run(runs, nr, "minent", "advent", 2, "mode=minent", "levels=single");
    nr = add_run(runs, nr, "advent", "advent", 1, "mode=advent");
    nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
    /* FDA's multi-band transfer + self-supervised round: pseudo-labels
     * from the mean softmax of the three single-band models */
    nr = add_run(runs, nr, "fda-b01", "fda", 1, "beta=0.01");
    nr = add_run(runs, nr, "fda-b09", "fda", 1, "beta=0.09");
    nr = add_run(runs, nr, "fda-ssl", "fda", 2, "beta=0.05", "pseudo-from=@fda-b01,@fda,@fda-b09");
    nr = add_run(runs, nr, "fda+adabn", "adabn", 1, "init=@fda");
    nr = add_run(runs, nr, "minent+adabn", "adabn", 1, "init=@minent");
    nr = add_run(runs, nr, "adaptseg+adabn", "adabn", 1, "init=@adaptseg");
    nr = add_run(runs, nr, "selftrain-cbst", "selftrain", 1, "mode=cbst");
    nr = add_run(runs, nr, "selftrain-stuff", "selftrain", 1, "mode=stuff");
    nr = add_run(runs, nr, "selftrain-mt", "selftrain", 1, "mode=mean-teacher");
    nr = add_run(runs, nr, "finetune-75", "finetune", 1, "target-labels=75");
    nr = add_run(runs, nr, "finetune-200", "finetune", 1, "target-labels=200");
    nr = demo_full_extra_rows(runs, nr);
    /* Issue 16 (Saleh et al., ECCV 2018; README "The instance detector"):
     * background pseudo-labels (every stuff prediction of source-base on real
     * train a label, things ignored, one round), and the detection-based
     * foreground: the seed's detector's masks painted over source-base's and
     * that row's maps, scored without training ("@source-base" is the run
     * the rows start from, not a row) */
    nr = add_run(runs, nr, "selftrain-stuff-psgt", "selftrain", 5, "mode=stuff", "pseudo-classes=stuff", "portion=1",
                 "portion-max=1", "rounds=1");
    nr = add_run(runs, nr, "source-base+det", DEMO_FUSED, 1, "seg=@source-base");
    nr = add_run(runs, nr, "selftrain-stuff-psgt+det", DEMO_FUSED, 1, "seg=@selftrain-stuff-psgt");
    return nr;
}

int demo_rows_plan(const sd_demo_opts *o, bool full, int bench_w, int bench_h, int n_real, demo_row *runs)
{
    demo_rows_set_bench(bench_w, bench_h, n_real);
    /* Oracle and source-only are always there. */
    int nr = 0;
    nr = add_run(runs, nr, "oracle", "oracle", 0);
    nr = add_run(runs, nr, "source-only", "source-only", 0);
    if (o->methods) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", o->methods);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok && nr < 30; tok = strtok_r(NULL, ",", &save))
            if (!strcmp(tok, "adabn"))
                nr = add_run(runs, nr, tok, tok, 1, "init=@source-only");
            else if (strcmp(tok, "oracle") && strcmp(tok, "source-only"))
                nr = add_run(runs, nr, tok, tok, 0);
        for (int i = 2; i < nr; i++)
            if (!sd_method_find(runs[i].method))
                return sd_fail(SD_ERR_ARG, "unknown method '%s'", runs[i].method), -1;
        return nr;
    }
    if (!full)
        return demo_default_rows(runs, nr);
    nr = demo_full_rows(runs, nr);
    if (o->rows && (nr = demo_keep_rows(runs, nr, o->rows)) < 0)
        return sd_fail_prefix(SD_ERR_ARG, "--rows '%s'", o->rows), -1;
    return nr;
}
