/* segda predict: segment one image or every image under a directory with a
 * checkpoint and write NAME_trainIds.png (+ _color, _overlay, _labelIds);
 * video input or output goes through predict_video.c with the same
 * per-image code. The inference itself is sd_infer_probs (src/nn/infer.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/files.h"
#include "cli/cli.h"
#include "cli/predict.h"
#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/detect.h"
#include "segda/fuse.h"
#include "segda/progress.h"
#include "io/video.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda predict --model CKPT --input IMG|DIR|VIDEO --out DIR|OUT.mp4 [options]\n"
            "\n"
            "Writes OUT/NAME_trainIds.png for every input image NAME.png/.jpg (directories\n"
            "are searched recursively and their subfolders mirrored under OUT, so a/x.png\n"
            "and b/x.png give OUT/a/x_* and OUT/b/x_*; NAME keeps the input's base name;\n"
            "two inputs with one NAME in one folder, x.png and x.jpg, are refused).\n"
            "Video (when segda is built with FFmpeg's libraries): --input VIDEO (any file that\n"
            "is not .png/.jpg) writes OUT/VIDEO_000001_trainIds.png ... per frame (and the\n"
            "PNGs below); --out OUT.mp4 (.mkv, .avi, .mov, .webm, .m4v) writes a video of the\n"
            "colour maps (--overlay: blended over the frames) at the input's frame rate and\n"
            "size, H.264 (MPEG-4 part 2 where FFmpeg lacks an H.264 encoder), from a VIDEO or\n"
            "from a folder of frames in sorted-name order; each frame is segmented as the\n"
            "same image would be. The video appears only when complete.\n"
            "  --fps N[/D]        frame rate of a video made from image files (default 25)\n"
            "  --detector D       also run the instance detector D (Mask R-CNN, segda models) and paint\n"
            "                     its masks over the map (detection-based foreground, Saleh et al.\n"
            "                     2018; include/segda/fuse.h): masks by decreasing score,\n"
            "  --fuse-score T     painted when scored >= T (default 0.5),\n"
            "  --fuse-overlap T   dropped when more than T of the mask is already painted (0.5)\n"
            "  --fuse-clear-things thing labels outside every painted mask become 255\n"
            "  --instances-out DIR with --detector: also DIR/NAME.txt + DIR/NAME_K.png, the\n"
            "                     detections in cityscapesScripts' format (segda eval --instances)\n"
            "  --translate G      first translate each image with generator G (e.g. taskgan's G_S,\n"
            "                     real -> sim; as `segda translate` writes it), then segment that\n"
            "                     translation\n"
            "  --size WxH         resize images to WxH for the network (output keeps the input size)\n"
            "  --color            also NAME_color.png in the Cityscapes palette\n"
            "  --overlay          also NAME_overlay.png: the colours blended over the image\n"
            "  --labelids         also NAME_labelIds.png (Cityscapes label ids, for the test server)\n"
            "  --flip             average with the mirrored image\n"
            "  --scales LIST      average over scales of the network size, e.g. 0.75,1,1.25\n"
            "  --window WxH       sliding-window inference with windows of WxH network pixels\n"
            "  --overlap F        window overlap fraction (default 0.33)\n"
            "  --align-corners[=B] upsample logits with align_corners (default true, as the\n"
            "                     AdaptSegNet/ADVENT evaluation code, train and eval; =false: PyTorch's default)\n"
            "  --strict           fail on any missing, unexpected or mis-shaped checkpoint tensor\n"
            "  --threads N        CPU threads (default: all cores)\n"
            "  --precision P      f32 (default), bf16 or bf16-emulated: the convolutions' compute dtype\n"
            "  --quiet            no progress bar\n"
            "  --help             this text\n"
            "The checkpoint's metadata gives the model, classes and input normalisation.\n");
}


/* The image as 8-bit interleaved grey/RGB/RGBA. */
static sd_status to_u8(sd_image *img)
{
    if (img->depth == 8)
        return SD_OK;
    size_t n = (size_t)img->w * img->h * img->c;
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    const uint16_t *s = img->data;
    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)(s[i] >> 8);
    free(img->data);
    img->data = d;
    img->depth = 8;
    return SD_OK;
}

sd_status cli_predict_read(const char *path, sd_image *img)
{
    sd_status st = sd_image_read(path, img, false);
    if (!st && (st = to_u8(img)))
        sd_image_free(img);
    return st;
}

sd_status cli_predict_pixels(const cli_predict_ctx *c, const uint8_t *px, int w, int h, int ch, uint8_t *pred,
                             const char *what, const char *inst_name)
{
    int C = sd_model_options(c->m)->classes;
    size_t hw = (size_t)w * h;
    float *probs = malloc((size_t)C * hw * sizeof *probs);
    uint8_t *tx = c->gen ? malloc(3 * hw) : NULL;
    sd_status st = SD_OK;
    if (!probs || (c->gen && !tx))
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d prediction", what, w, h);
    else if (c->gen && (st = sd_gen_translate_rgb(c->gen, c->t, px, w, h, ch, tx)))
        sd_fail_prefix(st, "%s", what);
    else if ((st = sd_infer_probs(c->m, c->t, tx ? tx : px, w, h, tx ? 3 : ch, c->io, probs)))
        sd_fail_prefix(st, "%s", what);
    if (!st) {
        sd_probs_argmax(probs, C, w, h, pred, NULL);
        sd_class_set_to_train_ids(C, pred, hw);   /* a 16-class (SYNTHIA) model writes trainIds too */
    }
    if (!st && c->det) {                          /* --detector: masks painted over the map */
        uint8_t *rgb = malloc(3 * hw);            /* the detector takes the input image as RGB */
        if (!rgb)
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", what);
        else {
            for (size_t i = 0; i < hw; i++)
                for (int k = 0; k < 3; k++)
                    rgb[3 * i + k] = px[i * ch + (ch >= 3 ? k : 0)];
            if ((st = sd_fuse_detect(c->det, rgb, w, h, pred, &c->fuse, inst_name ? c->inst_dir : NULL, inst_name,
                                     NULL, NULL)))
                sd_fail_prefix(st, "%s", what);
            free(rgb);
        }
    }
    free(tx);
    free(probs);
    return st;
}

void cli_predict_paint(const cli_predict_ctx *c, const uint8_t *px, int ch, const uint8_t *pred, size_t hw,
                       uint8_t *rgb)
{
    for (size_t i = 0; i < hw; i++)
        for (int k = 0; k < 3; k++) {
            int v = px[i * ch + (ch >= 3 ? k : 0)];
            rgb[3 * i + k] = c->overlay ? (uint8_t)((v + c->pal[pred[i]][k] + 1) / 2) : c->pal[pred[i]][k];
        }
}

sd_status cli_predict_write(const cli_predict_ctx *c, const char *stem, const uint8_t *px, int w, int h, int ch,
                            const uint8_t *pred)
{
    size_t hw = (size_t)w * h;
    uint8_t *aux = malloc(3 * hw);
    if (!aux)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", stem);
    sd_status st = SD_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s", stem);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        if ((st = cli_mkdir_p(path)))
            goto done;
    }
    snprintf(path, sizeof path, "%s_trainIds.png", stem);
    sd_image out = {.w = w, .h = h, .c = 1, .depth = 8, .data = (uint8_t *)pred};
    if ((st = sd_png_write(path, &out)))
        goto done;
    if (c->color) {
        snprintf(path, sizeof path, "%s_color.png", stem);
        if ((st = sd_png_write_palette(path, pred, w, h, c->pal, 256)))
            goto done;
    }
    if (c->overlay) {
        cli_predict_paint(c, px, ch, pred, hw, aux);
        snprintf(path, sizeof path, "%s_overlay.png", stem);
        sd_image ov = {.w = w, .h = h, .c = 3, .depth = 8, .data = aux};
        if ((st = sd_png_write(path, &ov)))
            goto done;
    }
    if (c->labelids) {
        for (size_t i = 0; i < hw; i++)
            aux[i] = (uint8_t)(pred[i] < SD_NUM_CLASSES ? sd_class_label_id[pred[i]] : 0);
        snprintf(path, sizeof path, "%s_labelIds.png", stem);
        sd_image li = {.w = w, .h = h, .c = 1, .depth = 8, .data = aux};
        if ((st = sd_png_write(path, &li)))
            goto done;
    }
done:
    free(aux);
    return st;
}

/* Where input `in` writes its outputs: OUT/REL/STEM, REL the folder of `in`
 * below the --input directory (empty for a single file), STEM its name
 * without extension. Mirroring keeps a/x.png and b/x.png apart. */
static void out_stem(const char *input_dir, const char *in, const char *outdir, char *buf, size_t cap)
{
    const char *rel = in;
    size_t n = input_dir ? strlen(input_dir) : 0;
    if (input_dir && !strncmp(in, input_dir, n) && in[n] == '/')
        rel = in + n + 1;
    else {
        const char *slash = strrchr(in, '/');
        rel = slash ? slash + 1 : in;
    }
    snprintf(buf, cap, "%s/%s", outdir, rel);
    char *slash = strrchr(buf, '/'), *dot = strrchr(buf, '.');
    if (dot && dot > slash)
        *dot = 0;
}

typedef struct stem_ref {
    const char *stem, *input;
} stem_ref;

static int cmp_stem(const void *a, const void *b)
{
    return strcmp(((const stem_ref *)a)->stem, ((const stem_ref *)b)->stem);
}

/* Refuses inputs that would write the same output (x.png beside x.jpg),
 * naming both, before anything is written: one would silently overwrite
 * the other. */
static sd_status check_collisions(char **stems, char **inputs, int n)
{
    stem_ref *r = malloc(sizeof *r * (size_t)(n ? n : 1));
    if (!r)
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        r[i] = (stem_ref){stems[i], inputs[i]};
    qsort(r, (size_t)n, sizeof *r, cmp_stem);
    sd_status st = SD_OK;
    for (int i = 1; i < n && !st; i++)
        if (!strcmp(r[i - 1].stem, r[i].stem))
            st = sd_fail(SD_ERR_ARG, "inputs %s and %s would both write %s_trainIds.png; rename or move one of them",
                         r[i - 1].input, r[i].input, r[i].stem);
    free(r);
    return st;
}

static sd_status predict_one(const cli_predict_ctx *c, const char *in, const char *stem)
{
    sd_image img;
    sd_status st = cli_predict_read(in, &img);
    if (st)
        return st;
    uint8_t *pred = malloc((size_t)img.w * img.h);
    if (!pred)
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d prediction", in, img.w, img.h);
    const char *base = strrchr(stem, '/');
    if (!st && !(st = cli_predict_pixels(c, img.data, img.w, img.h, img.c, pred, in, base ? base + 1 : stem)))
        st = cli_predict_write(c, stem, img.data, img.w, img.h, img.c, pred);
    free(pred);
    sd_image_free(&img);
    return st;
}

int cli_predict(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},  {"input", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},    {"size", required_argument, 0, 's'},
        {"color", no_argument, 0, 'c'},        {"overlay", no_argument, 0, 'v'},
        {"labelids", no_argument, 0, 'l'},     {"flip", no_argument, 0, 'f'},
        {"scales", required_argument, 0, 'S'}, {"window", required_argument, 0, 'w'},
        {"overlap", required_argument, 0, 'O'}, {"align-corners", optional_argument, 0, 'a'},
        {"strict", no_argument, 0, 'x'},       {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'P'}, {"translate", required_argument, 0, 'T'},
        {"fps", required_argument, 0, 'F'},
        {"detector", required_argument, 0, 'D'}, {"fuse-score", required_argument, 0, 'K'},
        {"fuse-overlap", required_argument, 0, 'G'}, {"instances-out", required_argument, 0, 'I'},
        {"fuse-clear-things", no_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *input = NULL, *outdir = NULL, *translate = NULL, *detector = NULL, *inst_dir = NULL;
    sd_fuse_opts fuse;
    sd_fuse_opts_init(&fuse);
    bool color = false, overlay = false, labelids = false, strict = false, quiet = false;
    sd_infer_opts io = sd_infer_opts_default(SD_NORM_IMAGENET);
    optind = 1;
    opterr = 0;
    int ch, threads, fps_num = 25, fps_den = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'T': translate = optarg; break;
        case 'D': detector = optarg; break;
        case 'I': inst_dir = optarg; break;
        case 'C': fuse.clear_things = true; break;
        case 'K':
        case 'G':
            if (!cli_parse_float(optarg, 0.0f, 1.0f, ch == 'K' ? &fuse.score_thresh : &fuse.overlap_thresh))
                return cli_usage_error("predict", usage, "--%s '%s', expected 0..1",
                                       ch == 'K' ? "fuse-score" : "fuse-overlap", optarg);
            break;
        case 'F': {
            char *end;
            long num = strtol(optarg, &end, 10), den = 1;
            if (*end == '/')
                den = strtol(end + 1, &end, 10);
            if (*end || num < 1 || num > 1000000 || den < 1 || den > 1000000)
                return cli_usage_error("predict", usage, "--fps '%s', expected N or N/D (positive integers)", optarg);
            fps_num = (int)num;
            fps_den = (int)den;
            break;
        }
        case 'i': input = optarg; break;
        case 'o': outdir = optarg; break;
        case 's':
            if (!cli_parse_size(optarg, &io.net_w, &io.net_h))
                return cli_usage_error("predict", usage, "--size '%s', expected WxH (8..16384)", optarg);
            break;
        case 'w':
            if (!cli_parse_size(optarg, &io.win_w, &io.win_h))
                return cli_usage_error("predict", usage, "--window '%s', expected WxH (8..16384)", optarg);
            break;
        case 'O':
            if (!cli_parse_float(optarg, 0.0f, 0.9f, &io.overlap))
                return cli_usage_error("predict", usage, "--overlap '%s', expected 0..0.9", optarg);
            break;
        case 'S':
            if (!cli_parse_scales(optarg, io.scales, SD_INFER_MAX_SCALES, &io.n_scales))
                return cli_usage_error("predict", usage,
                                       "--scales '%s', expected up to %d numbers in 0.1..4 separated by commas",
                                       optarg, SD_INFER_MAX_SCALES);
            break;
        case 'c': color = true; break;
        case 'v': overlay = true; break;
        case 'l': labelids = true; break;
        case 'f': io.flip = true; break;
        case 'a':
            if (!cli_parse_bool(optarg, &io.align_corners))
                return cli_usage_error("predict", usage, "--align-corners=%s, expected true or false", optarg);
            break;
        case 'x': strict = true; break;
        case 'q': quiet = true; break;
        case 't':
            if (!cli_parse_int(optarg, 0, 1024, &threads))
                return cli_usage_error("predict", usage, "--threads '%s', expected 0..1024", optarg);
            sd_set_threads(threads);
            break;
        case 'P':
            if (cli_precision("predict", usage, optarg))
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("predict", usage, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("predict", usage, "unexpected argument '%s'", argv[optind]);
    if (!model || !input || !outdir)
        return cli_usage_error("predict", usage, "--model, --input and --out are required");

    if (inst_dir && !detector)
        return cli_usage_error("predict", usage, "--instances-out needs --detector");
    bool in_video = cli_predict_is_video_input(input), out_video = sd_video_path(outdir);
    if (inst_dir && (in_video || out_video))
        return cli_usage_error("predict", usage, "--instances-out writes per-image files; not with a video");
    if (out_video && (color || labelids))
        return cli_usage_error("predict", usage, "--color and --labelids write PNGs; a video --out holds the colour "
                                                 "maps (--overlay: blended over the frames)");
    cli_files files = {0};
    sd_status st = in_video ? SD_OK : cli_files_images(input, &files);
    /* input "DIR/" and "DIR" mirror the same way */
    char input_dir[4096];
    snprintf(input_dir, sizeof input_dir, "%s", input);
    for (size_t n = strlen(input_dir); n > 1 && input_dir[n - 1] == '/'; n--)
        input_dir[n - 1] = 0;
    char **stems = st ? NULL : calloc((size_t)files.n + 1, sizeof *stems);
    if (!st && !stems)
        st = sd_fail(SD_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < files.n; i++) {
        char buf[8192];
        out_stem(files.dir ? input_dir : NULL, files.v[i], outdir, buf, sizeof buf);
        if (!(stems[i] = strdup(buf)))
            st = sd_fail(SD_ERR_NOMEM, "out of memory");
    }
    if (!st && !out_video)
        st = check_collisions(stems, files.v, files.n);

    sd_model *m = NULL;
    sd_norm norm = SD_NORM_IMAGENET;
    if (!st)
        st = sd_model_load(model, strict, &m, &norm);
    sd_gen *gen = NULL;
    if (!st && translate)
        st = sd_gen_load(translate, &gen);
    sd_detector *det = NULL;
    if (!st && detector)
        st = sd_detector_load(detector, &det);
    if (!st && inst_dir)
        st = cli_mkdir_p(inst_dir);
    int mc = m ? sd_model_options(m)->classes : 0;
    if (!st && labelids && mc != SD_NUM_CLASSES && mc != SD_NUM_CLASSES_SYNTHIA)
        st = sd_fail(SD_ERR_ARG, "--labelids needs a %d- or %d-class model; %s has %d classes", SD_NUM_CLASSES,
                     SD_NUM_CLASSES_SYNTHIA, model, mc);
    /* only once the inputs and the model are good, so a mistake leaves no empty directory */
    if (!st && !out_video && mkdir(outdir, 0755) != 0 && errno != EEXIST)
        st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", outdir, strerror(errno));
    io.norm = norm;
    /* trainId colours, then black for everything else (255 = ignore) */
    uint8_t pal[256][3];
    memset(pal, 0, sizeof pal);
    memcpy(pal, sd_class_colors, sizeof sd_class_colors);

    sd_tape t;
    sd_tape_init(&t, 0);
    cli_predict_ctx ctx = {.m = m, .gen = gen, .t = &t, .io = &io, .color = color, .overlay = overlay,
                           .labelids = labelids, .quiet = quiet, .pal = (const uint8_t(*)[3])pal,
                           .fps_num = fps_num, .fps_den = fps_den, .det = det, .fuse = fuse, .inst_dir = inst_dir};
    if (!st && (in_video || out_video)) {
        st = cli_predict_video(&ctx, input, in_video ? NULL : files.v, files.n, outdir);
    } else {
        sd_progress pr;
        sd_progress_init(&pr, "predict", "img", files.n, quiet ? SD_PROGRESS_OFF : SD_PROGRESS_AUTO);
        for (int i = 0; !st && i < files.n; i++) {
            st = predict_one(&ctx, files.v[i], stems[i]);
            sd_progress_update(&pr, i + 1);
        }
        sd_progress_finish(&pr);
    }
    sd_tape_free(&t);
    sd_gen_free(gen);
    sd_detector_free(det);
    sd_model_free(m);
    for (int i = 0; stems && i < files.n; i++)
        free(stems[i]);
    free(stems);
    cli_files_free(&files);
    if (st)
        return cli_fail("predict");
    return 0;
}
