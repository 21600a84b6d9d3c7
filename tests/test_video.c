/* Video through FFmpeg's libraries (src/io/video.c) and `segda predict` on
 * video (src/cli/predict_video.c): a lossless FFV1 video of five scene
 * frames decodes back bit for bit; predicting the video writes per-frame
 * trainIds equal to predicting the same frames as PNG images; an .mp4 out
 * keeps frame count, size and frame rate and holds the overlays (lossy:
 * mean error bounded); a folder of frames makes a video at --fps; an
 * undecodable or truncated file and a frame of another size fail naming the
 * file, leaving no output behind. A build without FFmpeg prints SKIP and
 * checks that predict says what video needs. Needs $SEGDA_BIN. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "io/video.h"
#include "segda/image.h"
#include "segda/labels.h"
#include "segda/checkpoint.h"
#include "segda/model.h"

enum { NF = 5 };

static const char *bin;
static char dir[300], bench[256];
static sd_image frames[NF];

static const char *P(const char *name)
{
    return test_path(dir, name);
}

/* Every frame of a video file; returns the count (-1 on error). */
static int read_all(const char *path, uint8_t **out, int cap, int *w, int *h, int *fn, int *fd)
{
    sd_video_reader *r;
    int64_t total;
    if (sd_video_reader_open(path, &r, w, h, fn, fd, &total))
        return -1;
    int n = 0;
    for (;;) {
        uint8_t *rgb = malloc((size_t)*w * *h * 3);
        bool got = false;
        if (!rgb || sd_video_reader_next(r, rgb, &got) || !got) {
            free(rgb);
            break;
        }
        if (n < cap)
            out[n] = rgb;
        else
            free(rgb);
        n++;
    }
    sd_video_reader_close(r);
    return n;
}

/* mean |a - b| over n bytes */
static double mean_abs(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += abs((int)a[i] - (int)b[i]);
    return s / (double)n;
}

static void setup(void)
{
    char src[300], tgt[300];
    test_tiny_bench("video", NF, 1, bench, src, tgt);
    snprintf(dir, sizeof dir, "%s/v", bench);
    CHECK(test_sh("mkdir -p '%s/frames' && ls '%s'/real/leftImg8bit/train/*/*.png | sort | head -%d > '%s/list'", dir,
                  bench, NF, dir) == 0);
    char *list = test_slurp(P("list"), NULL);
    CHECK(list != NULL);
    char *save = NULL, *line = list ? strtok_r(list, "\n", &save) : NULL;
    for (int i = 0; i < NF && line; i++, line = strtok_r(NULL, "\n", &save)) {
        CHECK_OK(sd_image_read(line, &frames[i], false));
        char name[64];
        snprintf(name, sizeof name, "frames/f%d.png", i);
        CHECK_OK(sd_png_write(P(name), &frames[i]));
    }
    free(list);
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    sd_model *m = NULL;
    CHECK_OK(sd_model_create(&o, &m));
    if (m) {
        sd_model_init_weights(m, 7);
        CHECK_OK(sd_model_save(m, SD_NORM_IMAGENET, P("m.safetensors")));
        sd_model_free(m);
    }
}

/* The lossless video of the frames decodes back bit for bit, with its rate. */
void TEST_lossless_roundtrip(void);
void TEST_lossless_roundtrip(void)
{
    int w = frames[0].w, h = frames[0].h;
    sd_video_writer *wr;
    const char *codec = NULL;
    CHECK_OK(sd_video_writer_open(P("in.mkv"), w, h, 12, 1, true, &wr, &codec));
    CHECK_MSG(codec && strstr(codec, "ffv1"), "codec %s", codec ? codec : "(none)");
    CHECK(access(P("in.mkv"), F_OK) != 0);   /* nothing at the path before finish */
    for (int i = 0; i < NF; i++)
        CHECK_OK(sd_video_writer_add(wr, frames[i].data));
    CHECK_OK(sd_video_writer_finish(wr));
    uint8_t *got[NF + 2] = {0};
    int gw = 0, gh = 0, fn = 0, fd = 0;
    int n = read_all(P("in.mkv"), got, NF + 2, &gw, &gh, &fn, &fd);
    CHECK_MSG(n == NF, "%d frames decoded, %d written", n, NF);
    CHECK(gw == w && gh == h && fn == 12 && fd == 1);
    for (int i = 0; i < NF && i < n; i++)
        CHECK_MSG(!memcmp(got[i], frames[i].data, (size_t)w * h * 3), "frame %d differs", i);
    for (int i = 0; i < NF + 2; i++)
        free(got[i]);
}

/* Each frame's trainIds from the video equal `segda predict` on that frame
 * as a PNG image. */
void TEST_predict_frames_equal_images(void);
void TEST_predict_frames_equal_images(void)
{
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --threads 1 --quiet", bin, P("m.safetensors"),
                  P("in.mkv"), P("pv")) == 0);
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --threads 1 --quiet", bin, P("m.safetensors"),
                  P("frames"), P("pi")) == 0);
    int classes[256] = {0}, distinct = 0;
    for (int i = 0; i < NF; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "pv/in_%06d_trainIds.png", i + 1);
        snprintf(b, sizeof b, "pi/f%d_trainIds.png", i);
        sd_image x = {0}, y = {0};
        CHECK_OK(sd_image_read(P(a), &x, false));
        CHECK_OK(sd_image_read(P(b), &y, false));
        bool same = x.data && y.data && x.w == y.w && x.h == y.h && x.c == 1 && y.c == 1 &&
                    !memcmp(x.data, y.data, (size_t)x.w * x.h);
        CHECK_MSG(same, "frame %d: %s differs from %s", i, a, b);
        for (int k = 0; x.data && k < x.w * x.h; k++)
            distinct += !classes[((uint8_t *)x.data)[k]]++;
        sd_image_free(&x);
        sd_image_free(&y);
    }
    CHECK_MSG(distinct >= 2, "%d distinct classes: the comparison would not see a difference", distinct);
    CHECK(access(P("pv/in_000006_trainIds.png"), F_OK) != 0);   /* five frames, five outputs */
}

/* The overlay video: five frames of the input's size and rate, each close
 * to the overlay of its PNG prediction. */
void TEST_predict_video_out(void);
void TEST_predict_video_out(void)
{
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --overlay --threads 1 --quiet", bin,
                  P("m.safetensors"), P("in.mkv"), P("out.mp4")) == 0);
    uint8_t *got[NF + 2] = {0};
    int w = 0, h = 0, fn = 0, fd = 0;
    int n = read_all(P("out.mp4"), got, NF + 2, &w, &h, &fn, &fd);
    CHECK_MSG(n == NF, "%d frames in out.mp4, expected %d", n, NF);
    CHECK_MSG(w == frames[0].w && h == frames[0].h && fn == 12 && fd == 1, "%dx%d at %d/%d", w, h, fn, fd);
    size_t hw = (size_t)w * h;
    uint8_t *want = malloc(3 * hw);
    for (int i = 0; i < NF && i < n && want && w == frames[0].w && h == frames[0].h; i++) {
        char a[64];
        snprintf(a, sizeof a, "pv/in_%06d_trainIds.png", i + 1);
        sd_image p = {0};
        CHECK_OK(sd_image_read(P(a), &p, false));
        for (size_t k = 0; p.data && k < hw; k++)
            for (int c = 0; c < 3; c++) {
                uint8_t id = ((uint8_t *)p.data)[k];
                int col = id < SD_NUM_CLASSES ? sd_class_colors[id][c] : 0;
                want[3 * k + c] = (uint8_t)((((uint8_t *)frames[i].data)[3 * k + c] + col + 1) / 2);
            }
        double e = mean_abs(got[i], want, 3 * hw);
        CHECK_MSG(e < 8, "frame %d: mean |decoded - overlay| %.2f (H.264 at CRF 18 stays well below 8)", i, e);
        /* and it is not the frame itself */
        CHECK_MSG(mean_abs(got[i], frames[i].data, 3 * hw) > e, "frame %d: closer to the input than the overlay", i);
        sd_image_free(&p);
    }
    free(want);
    for (int i = 0; i < NF + 2; i++)
        free(got[i]);
    /* a folder of frames in name order at --fps 7: the colour maps */
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --fps 7 --threads 1 --quiet", bin,
                  P("m.safetensors"), P("frames"), P("maps.mkv")) == 0);
    uint8_t *maps[NF + 2] = {0};
    n = read_all(P("maps.mkv"), maps, NF + 2, &w, &h, &fn, &fd);
    CHECK_MSG(n == NF && fn == 7 && fd == 1, "%d frames at %d/%d", n, fn, fd);
    /* each decoded colour map, read back as the nearest class colour,
     * agrees with its PNG prediction (4:2:0 chroma blurs class edges of
     * these 64x32 frames, hence 85%, not every pixel) */
    sd_image p = {0};
    for (int i = 0; i < NF && n == NF; i++) {
        char a[64];
        snprintf(a, sizeof a, "pi/f%d_trainIds.png", i);
        CHECK_OK(sd_image_read(P(a), &p, false));
        size_t agree = 0;
        for (size_t k = 0; p.data && (size_t)p.w * p.h == hw && k < hw; k++) {
            int best = 0, bd = 1 << 30;
            for (int c = 0; c < SD_NUM_CLASSES; c++) {
                int d = 0;
                for (int j = 0; j < 3; j++)
                    d += (maps[i][3 * k + j] - sd_class_colors[c][j]) * (maps[i][3 * k + j] - sd_class_colors[c][j]);
                if (d < bd) {
                    bd = d;
                    best = c;
                }
            }
            agree += best == ((uint8_t *)p.data)[k];
        }
        fprintf(stderr, "  maps.mkv frame %d: %zu of %zu pixels decode to their class\n", i, agree, hw);
        CHECK_MSG(agree >= hw * 17 / 20, "frame %d of maps.mkv: %zu of %zu pixels decode to their class", i, agree, hw);
        sd_image_free(&p);
    }
    sd_image_free(&p);
    for (int i = 0; i < NF + 2; i++)
        free(maps[i]);
}

/* Undecodable and truncated inputs, and a frame of another size halfway
 * through a folder: a message naming the file, no output file, no
 * temporary left. */
void TEST_bad_input(void);
void TEST_bad_input(void)
{
    CHECK(test_sh("head -c 3000 /dev/urandom > '%s' && head -c 2000 '%s' > '%s'", P("bad.mp4"), P("out.mp4"),
                  P("cut.mp4")) == 0);
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --quiet 2> '%s'", bin, P("m.safetensors"),
                  P("bad.mp4"), P("b.mp4"), P("err")) != 0);
    char *err = test_slurp(P("err"), NULL);
    CHECK_MSG(err && strstr(err, "bad.mp4") && strstr(err, "video"), "message: %s", err ? err : "(none)");
    free(err);
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --quiet 2> '%s'", bin, P("m.safetensors"),
                  P("cut.mp4"), P("c.mp4"), P("err")) != 0);
    err = test_slurp(P("err"), NULL);
    CHECK_MSG(err && strstr(err, "cut.mp4"), "message: %s", err ? err : "(none)");
    free(err);
    /* frames f0..f4 then a larger one: four frames are encoded before it fails */
    sd_image big = {.w = frames[0].w * 2, .h = frames[0].h, .c = 3, .depth = 8};
    big.data = calloc((size_t)big.w * big.h, 3);
    CHECK_OK(sd_png_write(P("frames/g9.png"), &big));
    free(big.data);
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --quiet 2> '%s'", bin, P("m.safetensors"),
                  P("frames"), P("s.mp4"), P("err")) != 0);
    err = test_slurp(P("err"), NULL);
    CHECK_MSG(err && strstr(err, "g9.png") && strstr(err, "frame size"), "message: %s", err ? err : "(none)");
    free(err);
    CHECK(test_sh("rm -f '%s'", P("frames/g9.png")) == 0);
    CHECK(test_sh("cd '%s' && ! ls b.mp4* c.mp4* s.mp4* 2>/dev/null | grep .", dir) == 0);
    /* --color is for PNG outputs */
    CHECK(test_sh("'%s' predict --model '%s' --input '%s' --out '%s' --color 2>/dev/null", bin, P("m.safetensors"),
                  P("in.mkv"), P("x.mp4")) == 2);
}

int main(void)
{
    bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP test_video (no SEGDA_BIN)\n");
        return 0;
    }
    setenv("OMP_NUM_THREADS", "1", 1);
    if (!sd_video_available()) {
        /* the library says what it lacks */
        sd_video_reader *r;
        int w, h, fn, fd;
        CHECK(sd_video_reader_open("x.mp4", &r, &w, &h, &fn, &fd, NULL) != SD_OK);
        CHECK_ERR_HAS("FFmpeg");
        printf("SKIP test_video: segda built without FFmpeg's libraries (tools/deps.sh installs them)\n");
        TESTS_DONE();
    }
    setup();
    RUN(TEST_lossless_roundtrip);
    RUN(TEST_predict_frames_equal_images);
    RUN(TEST_predict_video_out);
    RUN(TEST_bad_input);
    for (int i = 0; i < NF; i++)
        sd_image_free(&frames[i]);
    test_sh("rm -rf '%s'", bench);
    TESTS_DONE();
}
