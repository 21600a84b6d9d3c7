/* segda eval: scores prediction folders or checkpoints on a dataset split as
 * the official Cityscapes evaluator does, and prints the protocol block and
 * the papers' table; --csv/--json write the same numbers. The metrics and
 * writers are in src/eval/, the forward passes in src/nn/infer.c. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/files.h"
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/eval_inst.h"
#include "segda/detect.h"
#include "segda/fuse.h"
#include "segda/gan.h"
#include "segda/infer.h"
#include "segda/progress.h"

#define MAX_SETS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda eval --pred DIR [--pred DIR2 ...] --data SPEC [options]\n"
            "       segda eval --model CKPT [--model CKPT2 ...] --data SPEC [options]\n"
            "       segda eval --instances DIR --data SPEC\n"
            "\n"
            "Scores segmentations with the official Cityscapes formulas: one confusion matrix\n"
            "per prediction set over the whole split, at the ground truth's full resolution,\n"
            "pixels with ignored ground truth not counted; class IoU, category IoU,\n"
            "mIoU-19/16/13, pixel and mean class accuracy. Where the dataset has instance\n"
            "files (*_gtFine_instanceIds.png; gta5: ROOT/instances/), also the 8 thing\n"
            "classes' iIoU (cityscapesScripts' instance-weighted IoU; its average instance\n"
            "sizes scaled from 2048x1024 to the ground truth's size).\n"
            "\n"
            "  --pred DIR          folder of prediction PNGs (searched recursively). Cityscapes:\n"
            "                      the file name must contain CITY_SSSSSS_FFFFFF; other datasets:\n"
            "                      STEM.png. Two candidates for one sample is an error.\n"
            "  --model CKPT        checkpoint to run (several allowed: one table row each);\n"
            "                      A,B,C: an ensemble of one model's checkpoints scored on the\n"
            "                      mean of their softmax (FDA's multi-band transfer)\n"
            "  --data SPEC         gta5:ROOT, synthia:ROOT, cityscapes:ROOT[:SPLIT], folder:ROOT\n"
            "  --split NAME        split to score (default: val for Cityscapes)\n"
            "  --labelids          predictions hold Cityscapes label ids (0..33, as the test\n"
            "                      server takes them) instead of trainIds (0..18, 255 = none)\n"
            "  --skip-missing      skip samples that lack a prediction (in any set) and count them\n"
            "  --instances DIR     instance predictions in cityscapesScripts' format (per image a\n"
            "                      .txt naming the stem, lines \"mask.png labelID confidence\");\n"
            "                      prints AP and AP50 of evalInstanceLevelSemanticLabeling\n"
            "  --fuse-out DIR      with one --pred and --instances: paint the instance masks over\n"
            "                      the segmentation (detection-based foreground, Saleh et al. 2018:\n"
            "                      masks by decreasing score, one more than --fuse-overlap already\n"
            "                      painted is dropped, else its free pixels take its class), write\n"
            "                      DIR/STEM_trainIds.png and score those\n"
            "  --detector D        with --model: paint detector D's masks (Mask R-CNN) over each\n"
            "                      model's map before scoring, as --fuse-out does\n"
            "  --fuse-score T      paint masks scored >= T (default 0.5)\n"
            "  --fuse-overlap T    drop a mask more than T of which is already painted (default 0.5)\n"
            "  --fuse-clear-things thing labels outside every painted mask become 255 (no class):\n"
            "                      things come from the detector only (default: kept)\n"
            "  --protocol 19|16|13|camvid table columns and main mean (default 19; 16 for a 16-class\n"
            "                      SYNTHIA model, printed with mIoU-13 beside it; camvid on camvid: data,\n"
            "                      its 10 shared classes; JSON/CSV have all)\n"
            "\n"
            "With --model: each image is resized to the network size, normalised as the\n"
            "checkpoint says, and the network's logits (not probabilities) are upsampled\n"
            "bilinearly to the ground truth's full resolution and argmaxed.\n"
            "  --size WxH          network input size (default: each image's own size;\n"
            "                      the field uses 1024x512 for Cityscapes). PIL bicubic resize\n"
            "  --flip              also run the mirrored image\n"
            "  --scales LIST       scales of the network size to run (default 1), e.g. 0.75,1,1.25\n"
            "  --translate G       first translate each image with generator G (e.g. taskgan's\n"
            "                      G_S, real -> sim; 8-bit, as `segda translate` writes it)\n"
            "                      (with --flip/--scales the raw logits of all passes are\n"
            "                      averaged on the scale-1 output grid before upsampling)\n"
            "  --align-corners[=B] bilinear upsampling of logits: true (default, as the\n"
            "                      AdaptSegNet/ADVENT evaluation code; the same default as\n"
            "                      train and predict) or =false\n"
            "\n"
            "  --name NAME         row name (repeat once per --pred/--model; default: the path)\n"
            "  --csv FILE          write the results as CSV (fractions)\n"
            "  --json FILE         write the results as JSON (fractions, null = absent)\n"
            "  --allow-unknown-ids read ground-truth ids outside the table as ignored\n"
            "  --lanemarking-as-road SYNTHIA ground truth: lane markings (id 22) count as road (CBST/CRST)\n"
            "  --threads N         images read in parallel / CPU threads for --model\n"
            "  --device D          cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P       f32 (default), bf16 or bf16-emulated: the convolutions' compute dtype for --model\n"
            "                      (default: all cores)\n"
            "  --progress          draw the progress bar even when stderr is not a terminal\n"
            "  --quiet             no progress bar\n"
            "  -h, --help          this help\n");
}

/* The field's default split for scoring is Cityscapes val; a split named in
 * the spec (cityscapes:ROOT:train) is kept. */
static const char *default_split(const char *spec)
{
    if (strncmp(spec, "cityscapes:", 11) && strncmp(spec, "camvid:", 7))
        return NULL;
    const char *c = strrchr(spec, ':');
    if (!strcmp(c, ":train") || !strcmp(c, ":val") || !strcmp(c, ":test"))
        return NULL;
    return "val";
}

#define MAX_ENSEMBLE 8

/* One checkpoint (or ensemble) being scored: sd_eval_logits calls
 * model_logits per sample. */
typedef struct eval_model {
    sd_model *m[MAX_ENSEMBLE];
    sd_infer_opts io[MAX_ENSEMBLE];   /* each member's normalisation */
    int n;
    sd_tape tape;
    sd_gen *gen;                      /* --translate: images go through it first; or NULL */
} eval_model;

/* In place over c of x [c][hw]. */
static void softmax_planes(float *x, int c, size_t hw)
{
    for (size_t i = 0; i < hw; i++) {
        float mx = x[i];
        for (int k = 1; k < c; k++)
            mx = fmaxf(mx, x[k * hw + i]);
        double sum = 0;
        for (int k = 0; k < c; k++)
            sum += x[k * hw + i] = expf(x[k * hw + i] - mx);
        for (int k = 0; k < c; k++)
            x[k * hw + i] = (float)(x[k * hw + i] / sum);
    }
}

/* One model: its logits. An ensemble: the mean of the members' softmax on
 * their common output grid, which the scorer upsamples and argmaxes as it
 * does logits (bilinear is linear, so this is the argmax of the upsampled
 * mean probability). */
static sd_status model_logits(void *ctx, const sd_sample *s, float **logits, int *c, int *h, int *w)
{
    eval_model *em = ctx;
    *c = sd_model_options(em->m[0])->classes;
    const uint8_t *px = s->image;
    uint8_t *tx = NULL;
    if (em->gen) {
        if (!(tx = malloc((size_t)3 * s->w * s->h)))
            return sd_fail(SD_ERR_NOMEM, "out of memory translating a %dx%d image", s->w, s->h);
        sd_status st = sd_gen_translate_rgb(em->gen, &em->tape, s->image, s->w, s->h, 3, tx);
        if (st) {
            free(tx);
            return sd_fail_prefix(st, "sample %d", s->index);
        }
        px = tx;
    }
    sd_status st = sd_infer_logits(em->m[0], &em->tape, px, s->w, s->h, 3, &em->io[0], logits, w, h);
    if (st || em->n == 1) {
        free(tx);
        return st;
    }
    size_t hw = (size_t)*w * *h;
    softmax_planes(*logits, *c, hw);
    for (int k = 1; k < em->n && !st; k++) {
        float *o;
        int ow, oh;
        if ((st = sd_infer_logits(em->m[k], &em->tape, px, s->w, s->h, 3, &em->io[k], &o, &ow, &oh)))
            break;
        if (ow != *w || oh != *h)
            st = sd_fail(SD_ERR_ARG, "ensemble member %d has a %dx%d output grid, member 1 %dx%d", k + 1, ow, oh,
                         *w, *h);
        else
            softmax_planes(o, *c, hw);
        for (size_t i = 0; !st && i < (size_t)*c * hw; i++)
            (*logits)[i] += o[i];
        free(o);
    }
    free(tx);
    for (size_t i = 0; !st && i < (size_t)*c * hw; i++)
        (*logits)[i] /= (float)em->n;
    if (st) {
        free(*logits);
        *logits = NULL;
    }
    return st;
}

static void free_members(eval_model *em)
{
    for (int k = 0; k < em->n; k++)
        sd_model_free(em->m[k]);
    em->n = 0;
}

/* Scores checkpoint path into cm (setup filled by the runner). */
static sd_status eval_checkpoint(const sd_dataset *ds, const char *path, sd_gen *gen, const sd_infer_opts *io,
                                 bool align_corners, sd_progress_mode progress, sd_confusion *cm, sd_eval_setup *setup,
                                 int *classes, sd_iiou *iiou, sd_fuse_logits_ctx *fuse)
{
    eval_model em = {.n = 0, .gen = gen};
    sd_status st = SD_OK;
    for (const char *p = path; *p && !st;) {   /* A[,B...] */
        size_t len = strcspn(p, ",");
        char one[4096];
        snprintf(one, sizeof one, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if (em.n == MAX_ENSEMBLE) {
            st = sd_fail(SD_ERR_ARG, "%s: more than %d checkpoints in one ensemble", path, MAX_ENSEMBLE);
            break;
        }
        sd_norm norm = SD_NORM_IMAGENET;
        if ((st = sd_model_load(one, false, &em.m[em.n], &norm)))
            break;
        const sd_model_opts *mo = sd_model_options(em.m[em.n++]);
        if (mo->classes != SD_NUM_CLASSES && mo->classes != SD_NUM_CLASSES_SYNTHIA)
            st = sd_fail(SD_ERR_ARG, "%s: the model has %d classes, expected %d (Cityscapes trainIds) or %d "
                         "(SYNTHIA's)", one, mo->classes, SD_NUM_CLASSES, SD_NUM_CLASSES_SYNTHIA);
        else if (mo->classes != sd_model_options(em.m[0])->classes)
            st = sd_fail(SD_ERR_ARG, "%s: %d classes in an ensemble of %d-class models", one, mo->classes,
                         sd_model_options(em.m[0])->classes);
        else if (strcmp(mo->name, sd_model_options(em.m[0])->name))
            st = sd_fail(SD_ERR_ARG, "%s: a %s in an ensemble of %s (members must be one model)", one, mo->name,
                         sd_model_options(em.m[0])->name);
        em.io[em.n - 1] = *io;
        em.io[em.n - 1].norm = norm;
        em.io[em.n - 1].align_corners = align_corners;
    }
    if (st) {
        free_members(&em);
        return st;
    }
    *classes = sd_model_options(em.m[0])->classes;
    sd_tape_init_on(&em.tape, 0, sd_device_selected());
    sd_iiou_logits_ctx ic = {model_logits, &em, ds, align_corners, iiou, false};
    if (fuse) {   /* model -> detector masks painted -> (iIoU) -> scorer */
        fuse->fn = model_logits, fuse->ctx = &em, fuse->align_corners = align_corners;
        ic.fn = sd_fuse_logits_fn, ic.ctx = fuse;
    }
    if (iiou || fuse)
        st = sd_eval_logits(ds, sd_iiou_logits_fn, &ic, align_corners, progress, cm, setup);
    else
        st = sd_eval_logits(ds, model_logits, &em, align_corners, progress, cm, setup);
    if (st)
        sd_fail_prefix(st, "%s", path);
    sd_tape_free(&em.tape);
    free_members(&em);
    return st;
}

/* The iIoU table under the IoU table (dataset with instance files); the
 * values also go into rows (--csv/--json). */
static void print_iiou(sd_eval_row *rows, const sd_confusion *cms, const sd_iiou *iiou, int n)
{
    const char *names[MAX_SETS];
    double v[MAX_SETS][SD_NUM_THING_CLASSES], mean[MAX_SETS];
    for (int d = 0; d < n; d++) {
        names[d] = rows[d].name;
        sd_iiou_compute(&iiou[d], &cms[d], v[d], &mean[d]);
        rows[d].has_iiou = true;
        memcpy(rows[d].iiou, v[d], sizeof v[d]);
        rows[d].iiou_mean = mean[d];
    }
    printf("\n");
    sd_iiou_table_write(stdout, n, names, (const double(*)[SD_NUM_THING_CLASSES])v, mean);
}

/* --instances DIR: AP / AP50 of instance predictions. */
static sd_status eval_instances(const sd_dataset *ds, const char *dir)
{
    sd_ap ap;
    sd_ap_init(&ap);
    int n = 0;
    sd_status st = sd_ap_pred_dir(ds, dir, &ap, &n);
    if (!st) {
        sd_ap_result r;
        sd_ap_compute(&ap, &r);
        printf("dataset: %s, split %s: %d images\n", ds->spec, ds->split, n);
        sd_ap_table_write(stdout, dir, &ap, &r);
        printf("\n");
    }
    sd_ap_free(&ap);
    return st;
}

/* "network logits (input ...; ...)" for the protocol block. */
static void describe_model_input(char *buf, size_t n, const sd_infer_opts *io)
{
    int k = 0;
    if (io->net_w)
        k += snprintf(buf + k, n - k, "network logits (input: image resized to %dx%d, PIL bicubic", io->net_w,
                      io->net_h);
    else
        k += snprintf(buf + k, n - k, "network logits (input: the image at its own size");
    bool multi = io->flip || io->n_scales > 1 || io->scales[0] != 1.0f;
    if (!multi) {
        snprintf(buf + k, n - k, "; one pass)");
        return;
    }
    k += snprintf(buf + k, n - k, "; mean of raw logits over %s", io->flip ? "flip x " : "");
    k += snprintf(buf + k, n - k, "scales");
    for (int i = 0; i < io->n_scales && k < (int)n - 16; i++)
        k += snprintf(buf + k, n - k, "%s%g", i ? "," : " ", io->scales[i]);
    snprintf(buf + k, n - k, " on the scale-1 output grid)");
}

int cli_eval(int argc, char **argv)
{
    enum {
        OPT_LABELIDS = 256, OPT_SKIP, OPT_CSV, OPT_JSON, OPT_PROTOCOL, OPT_ALIGN, OPT_NAME, OPT_LANE,
        OPT_UNKNOWN, OPT_THREADS, OPT_PROGRESS, OPT_QUIET, OPT_SPLIT, OPT_SIZE, OPT_FLIP, OPT_SCALES,
        OPT_TRANSLATE, OPT_INSTANCES, OPT_FUSE_OUT, OPT_FUSE_SCORE, OPT_FUSE_OVERLAP, OPT_DETECTOR, OPT_FUSE_CLEAR,
    };
    static const struct option longopts[] = {
        {"pred", required_argument, 0, 'p'},
        {"model", required_argument, 0, 'm'},
        {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, OPT_SPLIT},
        {"labelids", no_argument, 0, OPT_LABELIDS},
        {"skip-missing", no_argument, 0, OPT_SKIP},
        {"csv", required_argument, 0, OPT_CSV},
        {"json", required_argument, 0, OPT_JSON},
        {"protocol", required_argument, 0, OPT_PROTOCOL},
        {"align-corners", optional_argument, 0, OPT_ALIGN}, {"lanemarking-as-road", no_argument, 0, OPT_LANE},
        {"name", required_argument, 0, OPT_NAME},
        {"allow-unknown-ids", no_argument, 0, OPT_UNKNOWN},
        {"threads", required_argument, 0, OPT_THREADS}, {"precision", required_argument, 0, 'P'}, {"device", required_argument, 0, 'D'},
        {"progress", no_argument, 0, OPT_PROGRESS},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"size", required_argument, 0, OPT_SIZE},
        {"flip", no_argument, 0, OPT_FLIP},
        {"scales", required_argument, 0, OPT_SCALES},
        {"translate", required_argument, 0, OPT_TRANSLATE},
        {"instances", required_argument, 0, OPT_INSTANCES},
        {"fuse-out", required_argument, 0, OPT_FUSE_OUT},
        {"fuse-clear-things", no_argument, 0, OPT_FUSE_CLEAR},
        {"detector", required_argument, 0, OPT_DETECTOR},
        {"fuse-score", required_argument, 0, OPT_FUSE_SCORE},
        {"fuse-overlap", required_argument, 0, OPT_FUSE_OVERLAP},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *preds[MAX_SETS], *models[MAX_SETS], *names[MAX_SETS];
    int n_pred = 0, n_model = 0, n_names = 0;
    const char *spec = NULL, *split = NULL, *csv = NULL, *json = NULL, *translate = NULL, *inst_dir = NULL;
    const char *fuse_out = NULL, *detector = NULL;
    sd_fuse_opts fuse;
    sd_fuse_opts_init(&fuse);
    bool labelids = false, skip_missing = false, align_corners = true, align_given = false;
    bool allow_unknown = false, lanemarking = false;
    int protocol = SD_PROTOCOL_19, threads = 0;
    bool protocol_given = false;
    sd_progress_mode progress = SD_PROGRESS_AUTO;
    sd_infer_opts io = sd_infer_opts_default(SD_NORM_IMAGENET); /* norm: from each checkpoint */
    bool infer_given = false;

    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "p:m:d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
        case 'm':
            if (n_pred + n_model >= MAX_SETS) {
                fprintf(stderr, "segda eval: at most %d prediction sets and models\n", MAX_SETS);
                return 2;
            }
            if (c == 'p')
                preds[n_pred++] = optarg;
            else
                models[n_model++] = optarg;
            break;
        case 'd': spec = optarg; break;
        case OPT_SPLIT: split = optarg; break;
        case OPT_LABELIDS: labelids = true; break;
        case OPT_SKIP: skip_missing = true; break;
        case OPT_CSV: csv = optarg; break;
        case OPT_JSON: json = optarg; break;
        case OPT_PROTOCOL:
            protocol = sd_protocol_parse(optarg);
            if (protocol < 0) {
                fprintf(stderr, "segda eval: --protocol %s: expected 19, 16, 13 or camvid\n", optarg);
                return 2;
            }
            protocol_given = true;
            break;
        case OPT_ALIGN:
            if (!cli_parse_bool(optarg, &align_corners)) {
                fprintf(stderr, "segda eval: --align-corners=%s: expected true or false\n", optarg);
                return 2;
            }
            align_given = true;
            break;
        case OPT_NAME:
            if (n_names >= MAX_SETS) {
                fprintf(stderr, "segda eval: too many --name options\n");
                return 2;
            }
            names[n_names++] = optarg;
            break;
        case OPT_UNKNOWN: allow_unknown = true; break;
        case OPT_LANE: lanemarking = true; break;
        case 'D': {
            int r = cli_device("eval", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'P':
            if (cli_precision("eval", usage, optarg))
                return 2;
            break;
        case OPT_THREADS:
            threads = atoi(optarg);
            if (threads < 1) {
                fprintf(stderr, "segda eval: --threads %s: expected a positive number\n", optarg);
                return 2;
            }
            break;
        case OPT_SIZE:
            if (!cli_parse_size(optarg, &io.net_w, &io.net_h)) {
                fprintf(stderr, "segda eval: --size '%s', expected WxH (8..16384)\n", optarg);
                return 2;
            }
            infer_given = true;
            break;
        case OPT_FLIP: io.flip = infer_given = true; break;
        case OPT_SCALES:
            if (!cli_parse_scales(optarg, io.scales, SD_INFER_MAX_SCALES, &io.n_scales)) {
                fprintf(stderr, "segda eval: --scales '%s', expected up to %d numbers in 0.1..4 separated by commas\n",
                        optarg, SD_INFER_MAX_SCALES);
                return 2;
            }
            infer_given = true;
            break;
        case OPT_TRANSLATE: translate = optarg; break;
        case OPT_INSTANCES: inst_dir = optarg; break;
        case OPT_FUSE_OUT: fuse_out = optarg; break;
        case OPT_DETECTOR: detector = optarg; break;
        case OPT_FUSE_CLEAR: fuse.clear_things = true; break;
        case OPT_FUSE_SCORE:
        case OPT_FUSE_OVERLAP: {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v <= 1)) {
                fprintf(stderr, "segda eval: --%s %s: expected a number in [0, 1]\n",
                        c == OPT_FUSE_SCORE ? "fuse-score" : "fuse-overlap", optarg);
                return 2;
            }
            *(c == OPT_FUSE_SCORE ? &fuse.score_thresh : &fuse.overlap_thresh) = (float)v;
            break;
        }
        case OPT_PROGRESS: progress = SD_PROGRESS_ON; break;
        case OPT_QUIET: progress = SD_PROGRESS_OFF; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "segda eval: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!spec || (n_pred == 0 && n_model == 0 && !inst_dir)) {
        fprintf(stderr, "segda eval: --data and at least one --pred, --model or --instances are required\n");
        usage(stderr);
        return 2;
    }
    if (n_names && n_names != n_pred + n_model) {
        fprintf(stderr, "segda eval: %d --name for %d prediction sets/models (give one per set or none)\n",
                n_names, n_pred + n_model);
        return 2;
    }
    if (detector && !n_model) {
        fprintf(stderr, "segda eval: --detector needs --model (with --pred, fuse instance files with --fuse-out)\n");
        return 2;
    }
    if (fuse_out && (n_pred != 1 || !inst_dir)) {
        fprintf(stderr, "segda eval: --fuse-out needs one --pred and --instances\n");
        return 2;
    }
    if (n_pred && n_model) {
        fprintf(stderr, "segda eval: give either --pred or --model, not both (run them separately)\n");
        return 2;
    }
    if (n_model && (labelids || skip_missing))
        fprintf(stderr, "segda eval: note: --labelids and --skip-missing only apply to --pred\n");
    if (n_pred && infer_given)
        fprintf(stderr, "segda eval: note: --size, --flip and --scales only apply to --model\n");
    if (align_given && !n_model)
        fprintf(stderr, "segda eval: note: --align-corners only applies to --model (predictions "
                        "are scored as they are)\n");
    if (n_model && threads)
        sd_set_threads(threads);
    if (translate && !n_model) {
        fprintf(stderr, "segda eval: --translate needs --model (predictions are scored as they are)\n");
        return 2;
    }
    sd_gen *gen = NULL;
    if (translate && sd_gen_load(translate, &gen))
        return cli_fail("eval");

    sd_dataset ds;
    sd_dataset_opts dopts = {.allow_unknown_ids = allow_unknown, .synthia_lanemarking_as_road = lanemarking};
    if (sd_dataset_open(&ds, spec, split ? split : default_split(spec), &dopts)) {
        sd_gen_free(gen);
        return cli_fail("eval");
    }
    if (!protocol_given && ds.kind == SD_DATASET_CAMVID)
        protocol = SD_PROTOCOL_CAMVID;   /* the classes CamVid shares with the 19 */
    if (inst_dir && eval_instances(&ds, inst_dir)) {
        sd_gen_free(gen);
        sd_dataset_free(&ds);
        return cli_fail("eval");
    }
    if (n_pred + n_model == 0) {
        sd_gen_free(gen);
        sd_dataset_free(&ds);
        return 0;
    }
    bool has_inst = sd_dataset_has_instances(&ds);
    if (fuse_out) {
        if (sd_mkdir_p(fuse_out) ||
            sd_fuse_pred_dirs(&ds, preds[0], labelids ? SD_PRED_LABEL_IDS : SD_PRED_TRAIN_IDS, inst_dir, &fuse,
                              fuse_out)) {
            sd_gen_free(gen);
            sd_dataset_free(&ds);
            return cli_fail("eval");
        }
        printf("fused: %s + instances %s (score >= %g, overlap <= %g%s) -> %s\n", preds[0], inst_dir,
               (double)fuse.score_thresh, (double)fuse.overlap_thresh,
               fuse.clear_things ? ", other thing labels cleared" : "", fuse_out);
        preds[0] = fuse_out;
        labelids = false;
    }

    int n_sets = n_pred + n_model;
    sd_confusion *cms = sd_calloc((size_t)n_sets, sizeof *cms);
    sd_eval_row *rows = sd_calloc((size_t)n_sets, sizeof *rows);
    sd_iiou *iiou = sd_calloc((size_t)n_sets, sizeof *iiou);
    if (!cms || !rows || !iiou) {
        free(cms), free(rows), free(iiou);
        sd_gen_free(gen);
        sd_dataset_free(&ds);
        return cli_fail("eval");
    }
    char dataset_desc[1024], model_desc[512];
    snprintf(dataset_desc, sizeof dataset_desc, "%s (%s, root %s)", ds.spec,
             sd_dataset_kind_name(ds.kind), ds.root);
    describe_model_input(model_desc, sizeof model_desc, &io);
    sd_eval_setup setup = {
        .protocol = (sd_protocol)protocol, .dataset = dataset_desc, .split = ds.split,
        .source = n_model ? model_desc
                  : labelids ? "prediction PNGs (label ids)" : "prediction PNGs (trainIds)",
        .align_corners = -1,
    };
    double t0 = sd_time_now();
    sd_status st = SD_OK;
    sd_fuse_logits_ctx fctx = {.opts = fuse};
    if (detector)
        st = sd_detector_load(detector, &fctx.det);
    if (n_pred) {
        sd_eval_pred_opts po = {
            .dirs = preds, .n_dirs = n_pred,
            .kind = labelids ? SD_PRED_LABEL_IDS : SD_PRED_TRAIN_IDS,
            .skip_missing = skip_missing, .threads = threads, .progress = progress,
        };
        st = sd_eval_pred_dirs(&ds, &po, cms, &setup);
        if (!st && has_inst)
            st = sd_iiou_pred_dirs(&ds, &po, iiou);
    }
    for (int k = 0; !st && k < n_model; k++) {
        int classes = 0;
        st = eval_checkpoint(&ds, models[k], gen, &io, align_corners, progress, &cms[k], &setup, &classes,
                             has_inst ? &iiou[k] : NULL, fctx.det ? &fctx : NULL);
        /* SYNTHIA's 16-class models are scored by mIoU-16 (and mIoU-13 beside it) unless told otherwise */
        if (!st && k == 0 && !protocol_given && classes == SD_NUM_CLASSES_SYNTHIA)
            setup.protocol = (sd_protocol)(protocol = SD_PROTOCOL_16);
    }
    double secs = sd_time_now() - t0;
    int rc = 0;
    if (st) {
        rc = cli_fail("eval");
    } else {
        for (int d = 0; d < n_sets; d++) {
            rows[d].name = n_names ? names[d] : n_pred ? preds[d] : models[d];
            sd_eval_compute(&cms[d], &rows[d].r);
        }
        sd_eval_setup_write(stdout, &setup);
        printf("\n");
        sd_eval_table_write(stdout, (sd_protocol)protocol, rows, n_sets);
        if (has_inst)
            print_iiou(rows, cms, iiou, n_sets);
        sd_log(2, "eval: %lld images in %.1f s\n", (long long)setup.images, secs);
        if (setup.skipped)
            fprintf(stderr, "segda eval: %lld sample%s skipped for lack of a prediction\n",
                    (long long)setup.skipped, setup.skipped == 1 ? "" : "s");
        if (csv && sd_eval_csv_write(csv, rows, n_sets))
            rc = cli_fail("eval");
        if (!rc && json && sd_eval_json_write(json, &setup, rows, n_sets))
            rc = cli_fail("eval");
    }
    free(cms);
    free(rows);
    free(iiou);
    sd_detector_free(fctx.det);
    sd_gen_free(gen);
    sd_dataset_free(&ds);
    return rc;
}
