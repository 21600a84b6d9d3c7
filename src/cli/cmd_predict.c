/* segda predict: segment one image or every image under a directory with a
 * checkpoint and write NAME_trainIds.png (+ _color, _overlay, _labelIds).
 * The inference itself is sd_infer_probs (src/nn/infer.c). */
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
#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/progress.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda predict --model CKPT --input IMG|DIR --out DIR [options]\n"
            "\n"
            "Writes OUT/NAME_trainIds.png for every input image NAME.png/.jpg (directories\n"
            "are searched recursively and their subfolders mirrored under OUT, so a/x.png\n"
            "and b/x.png give OUT/a/x_* and OUT/b/x_*; NAME keeps the input's base name;\n"
            "two inputs with one NAME in one folder, x.png and x.jpg, are refused).\n"
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

static sd_status predict_one(sd_model *m, sd_gen *gen, sd_tape *t, const sd_infer_opts *io, const char *in, const char *stem,
                             bool color, bool overlay, bool labelids, const uint8_t (*pal)[3])
{
    sd_image img;
    sd_status st = sd_image_read(in, &img, false);
    if (st)
        return st;
    if ((st = to_u8(&img))) {
        sd_image_free(&img);
        return st;
    }
    int C = sd_model_options(m)->classes, w = img.w, h = img.h;
    size_t hw = (size_t)w * h;
    float *probs = malloc((size_t)C * hw * sizeof *probs);
    uint8_t *pred = malloc(hw), *aux = malloc(3 * hw), *tx = gen ? malloc(3 * hw) : NULL;
    if (!probs || !pred || !aux || (gen && !tx)) {
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d prediction", in, w, h);
        goto done;
    }
    if (gen && (st = sd_gen_translate_rgb(gen, t, img.data, w, h, img.c, tx))) {
        sd_fail_prefix(st, "%s", in);
        goto done;
    }
    if ((st = sd_infer_probs(m, t, tx ? tx : img.data, w, h, tx ? 3 : img.c, io, probs))) {
        sd_fail_prefix(st, "%s", in);
        goto done;
    }
    sd_probs_argmax(probs, C, w, h, pred, NULL);
    sd_class_set_to_train_ids(C, pred, hw);   /* a 16-class (SYNTHIA) model writes trainIds too */
    char path[4200];
    snprintf(path, sizeof path, "%s", stem);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        if ((st = sd_mkdir_p(path)))
            goto done;
    }
    snprintf(path, sizeof path, "%s_trainIds.png", stem);
    sd_image out = {.w = w, .h = h, .c = 1, .depth = 8, .data = pred};
    if ((st = sd_png_write(path, &out)))
        goto done;
    if (color) {
        snprintf(path, sizeof path, "%s_color.png", stem);
        if ((st = sd_png_write_palette(path, pred, w, h, pal, 256)))
            goto done;
    }
    if (overlay) {
        const uint8_t *px = img.data;
        for (size_t i = 0; i < hw; i++)
            for (int k = 0; k < 3; k++) {
                int v = px[i * img.c + (img.c >= 3 ? k : 0)];
                aux[3 * i + k] = (uint8_t)((v + pal[pred[i]][k] + 1) / 2);
            }
        snprintf(path, sizeof path, "%s_overlay.png", stem);
        sd_image ov = {.w = w, .h = h, .c = 3, .depth = 8, .data = aux};
        if ((st = sd_png_write(path, &ov)))
            goto done;
    }
    if (labelids) {
        for (size_t i = 0; i < hw; i++)
            aux[i] = (uint8_t)(pred[i] < SD_NUM_CLASSES ? sd_class_label_id[pred[i]] : 0);
        snprintf(path, sizeof path, "%s_labelIds.png", stem);
        sd_image li = {.w = w, .h = h, .c = 1, .depth = 8, .data = aux};
        if ((st = sd_png_write(path, &li)))
            goto done;
    }
done:
    free(tx);
    free(probs);
    free(pred);
    free(aux);
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
        {0, 0, 0, 0},
    };
    const char *model = NULL, *input = NULL, *outdir = NULL, *translate = NULL;
    bool color = false, overlay = false, labelids = false, strict = false, quiet = false;
    sd_infer_opts io = sd_infer_opts_default(SD_NORM_IMAGENET);
    optind = 1;
    opterr = 0;
    int ch, threads;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'T': translate = optarg; break;
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

    cli_files files;
    sd_status st = cli_files_images(input, &files);
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
    if (!st)
        st = check_collisions(stems, files.v, files.n);

    sd_model *m = NULL;
    sd_norm norm = SD_NORM_IMAGENET;
    if (!st)
        st = sd_model_load(model, strict, &m, &norm);
    sd_gen *gen = NULL;
    if (!st && translate)
        st = sd_gen_load(translate, &gen);
    int mc = m ? sd_model_options(m)->classes : 0;
    if (!st && labelids && mc != SD_NUM_CLASSES && mc != SD_NUM_CLASSES_SYNTHIA)
        st = sd_fail(SD_ERR_ARG, "--labelids needs a %d- or %d-class model; %s has %d classes", SD_NUM_CLASSES,
                     SD_NUM_CLASSES_SYNTHIA, model, mc);
    /* only once the inputs and the model are good, so a mistake leaves no empty directory */
    if (!st)
        st = sd_mkdir_p(outdir);
    io.norm = norm;
    /* trainId colours, then black for everything else (255 = ignore) */
    uint8_t pal[256][3];
    memset(pal, 0, sizeof pal);
    memcpy(pal, sd_class_colors, sizeof sd_class_colors);

    sd_tape t;
    sd_tape_init(&t, 0);
    sd_progress pr;
    sd_progress_init(&pr, "predict", "img", files.n, quiet ? SD_PROGRESS_OFF : SD_PROGRESS_AUTO);
    for (int i = 0; !st && i < files.n; i++) {
        st = predict_one(m, gen, &t, &io, files.v[i], stems[i], color, overlay, labelids, (const uint8_t(*)[3])pal);
        sd_progress_update(&pr, i + 1);
    }
    sd_progress_finish(&pr);
    sd_tape_free(&t);
    sd_gen_free(gen);
    sd_model_free(m);
    for (int i = 0; stems && i < files.n; i++)
        free(stems[i]);
    free(stems);
    cli_files_free(&files);
    if (st)
        return cli_fail("predict");
    return 0;
}
