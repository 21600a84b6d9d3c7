/* segda translate: every image under a directory through a generator
 * (CycleGAN's ResNet, e.g. taskgan's G_S: real -> sim), written as PNG under
 * the same relative path and name. The network is src/nn/gan.c. */
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
#include "segda/gan.h"
#include "segda/image.h"
#include "segda/progress.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda translate --model G.safetensors --input IMG|DIR --out DIR [options]\n"
            "\n"
            "Runs each .png/.jpg image (directories searched recursively) through the\n"
            "generator and writes OUT/REL/NAME.png, REL the image's directory below --input.\n"
            "The generator: a file saved by segda, a CycleGAN latest_net_G.pth converted to\n"
            "safetensors (tensors model.N.*), or a taskgan run's last.safetensors (its G_S).\n"
            "Images keep their size (reflect-padded to a multiple of 4 for the network, then\n"
            "cropped back); sides below %d pixels are an error.\n"
            "  --threads N        CPU threads (default: all cores)\n"
            "  --quiet            no progress bar\n"
            "  --help             this text\n",
            SD_GEN_MIN_IMAGE);
}



/* the folder out is written into, created with its parents */
static sd_status out_dir(const char *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return SD_OK;
    *slash = 0;
    return sd_mkdir_p(dir);
}

static sd_status translate_one(sd_gen *g, sd_tape *t, const char *in, const char *out)
{
    sd_image img;
    sd_status st = sd_image_read(in, &img, false);
    if (st)
        return st;
    if (img.depth != 8) {   /* 16-bit: the top byte, as predict does */
        size_t n = (size_t)img.w * img.h * img.c;
        uint8_t *d = malloc(n ? n : 1);
        if (!d) {
            sd_image_free(&img);
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory", in);
        }
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)(((const uint16_t *)img.data)[i] >> 8);
        free(img.data);
        img.data = d;
        img.depth = 8;
    }
    uint8_t *rgb = malloc((size_t)3 * img.w * img.h);
    if (!rgb)
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", in);
    else if ((st = sd_gen_translate_rgb(g, t, img.data, img.w, img.h, img.c, rgb)))
        sd_fail_prefix(st, "%s", in);
    else if (!(st = out_dir(out))) {
        sd_image o = {.w = img.w, .h = img.h, .c = 3, .depth = 8, .data = rgb};
        st = sd_png_write(out, &o);
    }
    free(rgb);
    sd_image_free(&img);
    return st;
}

int cli_translate(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *input = NULL, *outdir = NULL;
    bool quiet = false;
    int ch, threads;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'i': input = optarg; break;
        case 'o': outdir = optarg; break;
        case 'q': quiet = true; break;
        case 't':
            if (!cli_parse_int(optarg, 0, 1024, &threads))
                return cli_usage_error("translate", usage, "--threads '%s', expected 0..1024", optarg);
            sd_set_threads(threads);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("translate", usage, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("translate", usage, "unexpected argument '%s'", argv[optind]);
    if (!model || !input || !outdir)
        return cli_usage_error("translate", usage, "--model, --input and --out are required");

    cli_files files;
    sd_status st = cli_files_images(input, &files);
    sd_gen *g = NULL;
    if (!st)
        st = sd_gen_load(model, &g);
    if (!st)
        st = sd_mkdir_p(outdir);
    sd_tape t;
    sd_tape_init(&t, 0);
    sd_progress pr;
    sd_progress_init(&pr, "translate", "img", files.n, quiet ? SD_PROGRESS_OFF : SD_PROGRESS_AUTO);
    for (int i = 0; !st && i < files.n; i++) {
        const char *in = files.v[i];
        char out[4096];
        snprintf(out, sizeof out, "%s/%s", outdir, cli_files_rel(&files, input, i));
        char *dot = strrchr(out, '.');
        if (dot && dot > strrchr(out, '/'))
            snprintf(dot, sizeof out - (size_t)(dot - out), ".png");
        st = translate_one(g, &t, in, out);
        sd_progress_update(&pr, i + 1);
    }
    sd_progress_finish(&pr);
    sd_tape_free(&t);
    sd_gen_free(g);
    cli_files_free(&files);
    return st ? cli_fail("translate") : 0;
}
