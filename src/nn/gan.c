/* CycleGAN's ResNet generator and 70x70 PatchGAN discriminator (names and
 * layout of junyanz/pytorch-CycleGAN-and-pix2pix, norm 'instance'), their
 * checkpoints, and the maps between [-1, 1] RGB and a segmentation
 * network's input normalisation. Losses and training live in src/da. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "segda/checkpoint.h"
#include "segda/gan.h"

enum { GEN_MAX_BLOCKS = 64 };

typedef struct tconv {
    sd_tensor *w, *b;    /* w [cin, cout, 3, 3] as ConvTranspose2d; b [cout] */
} tconv;

struct sd_gen {
    sd_gen_opts o;
    sd_params params;
    nn_conv stem, down[2], block[GEN_MAX_BLOCKS][2], last;
    tconv up[2];
};

struct sd_patchgan {
    sd_patchgan_opts o;
    sd_params params;
    int n;               /* convs: n_layers + 2 */
    nn_conv conv[12];
    bool norm[12];       /* IN after conv i */
};

sd_gen_opts sd_gen_opts_default(void) { return (sd_gen_opts){.in_ch = 3, .out_ch = 3, .ngf = 64, .n_blocks = 9}; }

sd_patchgan_opts sd_patchgan_opts_default(void) { return (sd_patchgan_opts){.in_ch = 3, .ndf = 64, .n_layers = 3}; }

/* ---- generator ---- */

sd_status sd_gen_create(const sd_gen_opts *o, sd_gen **out)
{
    *out = NULL;
    if (o->in_ch < 1 || o->out_ch < 1 || o->ngf < 1 || o->n_blocks < 0 || o->n_blocks > GEN_MAX_BLOCKS)
        return sd_fail(SD_ERR_ARG, "generator: in %d, out %d channels, ngf %d, %d blocks: expected positive sizes "
                       "and 0..%d blocks", o->in_ch, o->out_ch, o->ngf, o->n_blocks, GEN_MAX_BLOCKS);
    sd_gen *g = calloc(1, sizeof *g);
    if (!g)
        return sd_fail(SD_ERR_NOMEM, "generator: out of memory");
    g->o = *o;
    sd_params_init(&g->params);
    int grp = sd_params_add_group(&g->params, "gen", 1, 1, false);
    nn_builder b = {.p = &g->params, .g_backbone = grp, .g_classifier = grp, .g_norm = grp, .g_buffer = grp};
    int f = o->ngf, idx = 1;   /* idx: the module's index in CycleGAN's nn.Sequential */
    char nm[64];
    nn_conv_decl(&b, &g->stem, grp, "model.1", o->in_ch, f, 7, 1, 0, 1, true);
    idx = 4;
    for (int i = 0; i < 2; i++, idx += 3) {
        snprintf(nm, sizeof nm, "model.%d", idx);
        nn_conv_decl(&b, &g->down[i], grp, nm, f << i, f << (i + 1), 3, 2, 1, 1, true);
    }
    for (int i = 0; i < o->n_blocks; i++, idx++) {
        snprintf(nm, sizeof nm, "model.%d.conv_block.1", idx);
        nn_conv_decl(&b, &g->block[i][0], grp, nm, 4 * f, 4 * f, 3, 1, 0, 1, true);
        snprintf(nm, sizeof nm, "model.%d.conv_block.5", idx);
        nn_conv_decl(&b, &g->block[i][1], grp, nm, 4 * f, 4 * f, 3, 1, 0, 1, true);
    }
    for (int i = 0; i < 2 && !b.st; i++, idx += 3) {
        int cin = f << (2 - i), cout = f << (1 - i);
        snprintf(nm, sizeof nm, "model.%d.weight", idx);
        g->up[i].w = sd_params_declare(&g->params, grp, nm, 4, (int[]){cin, cout, 3, 3});
        snprintf(nm, sizeof nm, "model.%d.bias", idx);
        g->up[i].b = sd_params_declare(&g->params, grp, nm, 1, (int[]){cout});
        if (!g->up[i].w || !g->up[i].b)
            b.st = SD_ERR_ARG;
    }
    snprintf(nm, sizeof nm, "model.%d", idx + 1);   /* after the ReflectionPad2d(3) at idx */
    nn_conv_decl(&b, &g->last, grp, nm, f, o->out_ch, 7, 1, 0, 1, true);
    sd_status st = b.st ? b.st : sd_params_alloc(&g->params);
    if (st) {
        sd_gen_free(g);
        return st;
    }
    sd_gen_init_weights(g, 0);
    *out = g;
    return SD_OK;
}

void sd_gen_free(sd_gen *g)
{
    if (!g)
        return;
    sd_params_free(&g->params);
    free(g);
}

/* CycleGAN's init_weights('normal', gain 0.02) for every conv's weight and
 * bias 0; the weights are drawn in declaration order from one stream. */
static void init_normal_params(sd_params *p, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++) {
        sd_tensor *x = p->tensors[i];
        if (x->ndim == 4)
            nn_init_normal(x, 0.02f, &r);
        else
            nn_init_const(x, 0.0f);
    }
}

void sd_gen_init_weights(sd_gen *g, uint64_t seed) { init_normal_params(&g->params, seed); }
sd_params *sd_gen_params(sd_gen *g) { return &g->params; }
const sd_gen_opts *sd_gen_options(const sd_gen *g) { return &g->o; }

static sd_tensor *inorm(sd_tape *t, sd_tensor *x) { return sd_instance_norm(t, x, NULL, NULL, 1e-5f); }
static sd_tensor *rpad(sd_tape *t, sd_tensor *x, int p) { return sd_pad2d(t, x, p, p, p, p, true); }

sd_tensor *sd_gen_forward(sd_gen *g, sd_tape *t, sd_tensor *x)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || x->shape[1] != g->o.in_ch || x->shape[2] < SD_GEN_MIN_SIZE || x->shape[3] < SD_GEN_MIN_SIZE)
        return sd_tape_fail(t, SD_ERR_SHAPE, "generator: input %s, expected [N, %d, H, W] with H, W >= %d (two "
                            "stride-2 downsamplings, then reflection padding by 1)", sd_shape_str(x), g->o.in_ch,
                            SD_GEN_MIN_SIZE);
    nn_ctx c = {.t = t, .training = true};
    sd_tensor *h = sd_relu(t, inorm(t, nn_conv_fwd(&c, &g->stem, rpad(t, x, 3))));
    for (int i = 0; i < 2; i++)
        h = sd_relu(t, inorm(t, nn_conv_fwd(&c, &g->down[i], h)));
    for (int i = 0; i < g->o.n_blocks; i++) {
        sd_tensor *r = sd_relu(t, inorm(t, nn_conv_fwd(&c, &g->block[i][0], rpad(t, h, 1))));
        r = inorm(t, nn_conv_fwd(&c, &g->block[i][1], rpad(t, r, 1)));
        h = sd_add(t, h, r);
    }
    sd_conv_opts up = sd_conv_opts_make(2, 1, 1);
    up.out_pad_h = up.out_pad_w = 1;
    for (int i = 0; i < 2; i++)
        h = sd_relu(t, inorm(t, sd_conv_transpose2d(t, h, g->up[i].w, g->up[i].b, up)));
    return sd_tanh(t, nn_conv_fwd(&c, &g->last, rpad(t, h, 3)));
}

/* ---- PatchGAN ---- */

sd_status sd_patchgan_create(const sd_patchgan_opts *o, sd_patchgan **out)
{
    *out = NULL;
    if (o->in_ch < 1 || o->ndf < 1 || o->n_layers < 1 || o->n_layers > 10)
        return sd_fail(SD_ERR_ARG, "patchgan: %d input channels, ndf %d, %d layers: expected positive sizes and "
                       "1..10 layers", o->in_ch, o->ndf, o->n_layers);
    sd_patchgan *d = calloc(1, sizeof *d);
    if (!d)
        return sd_fail(SD_ERR_NOMEM, "patchgan: out of memory");
    d->o = *o;
    sd_params_init(&d->params);
    int grp = sd_params_add_group(&d->params, "disc", 1, 1, false);
    nn_builder b = {.p = &d->params, .g_backbone = grp, .g_classifier = grp, .g_norm = grp, .g_buffer = grp};
    char nm[64];
    int idx = 0, cin = o->in_ch, mult = 1;
    d->n = o->n_layers + 2;
    for (int i = 0; i < d->n; i++) {
        /* CycleGAN's NLayerDiscriminator: widths ndf * min(2^i, 8), stride 2
         * up to n_layers - 1, then one stride-1 conv, then the 1-channel one */
        int cout = i == d->n - 1 ? 1 : o->ndf * mult;
        int stride = i < o->n_layers ? 2 : 1;
        snprintf(nm, sizeof nm, "model.%d", idx);
        nn_conv_decl(&b, &d->conv[i], grp, nm, cin, cout, 4, stride, 1, 1, true);
        d->norm[i] = i > 0 && i < d->n - 1;
        idx += d->norm[i] ? 3 : 2;
        cin = cout;
        mult = mult * 2 > 8 ? 8 : mult * 2;
    }
    sd_status st = b.st ? b.st : sd_params_alloc(&d->params);
    if (st) {
        sd_patchgan_free(d);
        return st;
    }
    sd_patchgan_init_weights(d, 0);
    *out = d;
    return SD_OK;
}

void sd_patchgan_free(sd_patchgan *d)
{
    if (!d)
        return;
    sd_params_free(&d->params);
    free(d);
}

void sd_patchgan_init_weights(sd_patchgan *d, uint64_t seed) { init_normal_params(&d->params, seed); }
sd_params *sd_patchgan_params(sd_patchgan *d) { return &d->params; }

static int patch_out(const sd_patchgan_opts *o, int s)
{
    for (int i = 0; i < o->n_layers + 2; i++)
        s = (s + 2 - 4) / (i < o->n_layers ? 2 : 1) + 1;
    return s;
}

int sd_patchgan_min_size(const sd_patchgan_opts *o)
{
    int s = 4;
    while (patch_out(o, s) < 1 && s < 1 << 20)
        s++;
    return s;
}

sd_tensor *sd_patchgan_forward(sd_patchgan *d, sd_tape *t, sd_tensor *x)
{
    if (!x)
        return NULL;
    int min = sd_patchgan_min_size(&d->o);
    if (x->ndim != 4 || x->shape[1] != d->o.in_ch || x->shape[2] < min || x->shape[3] < min)
        return sd_tape_fail(t, SD_ERR_SHAPE, "patchgan: input %s, expected [N, %d, H, W] with H, W >= %d",
                            sd_shape_str(x), d->o.in_ch, min);
    nn_ctx c = {.t = t, .training = true};
    for (int i = 0; i < d->n; i++) {
        x = nn_conv_fwd(&c, &d->conv[i], x);
        if (d->norm[i])
            x = inorm(t, x);
        if (i + 1 < d->n)
            x = sd_leaky_relu(t, x, 0.2f);
    }
    return x;
}

/* ---- checkpoints ---- */

static int find_tensor(const sd_ckpt *c, const char *prefix, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    for (int i = 0; i < c->st.n; i++)
        if (!strcmp(c->st.tensors[i].name, full))
            return i;
    return -1;
}

bool sd_ckpt_is_generator(const sd_ckpt *c, const char *prefix)
{
    int i = find_tensor(c, prefix, "model.1.weight");
    return i >= 0 && c->st.tensors[i].ndim == 4 && c->st.tensors[i].shape[2] == 7;
}

sd_status sd_gen_save(sd_gen *g, const char *path)
{
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    char buf[32];
    sd_status st = sd_ckpt_writer_add_params(&w, "", &g->params);
    if (!st) {
        sd_ckpt_writer_set_meta(&w, SD_META_FORMAT, "segda");
        sd_ckpt_writer_set_meta(&w, "kind", "generator");
        snprintf(buf, sizeof buf, "%d", g->o.ngf);
        sd_ckpt_writer_set_meta(&w, "ngf", buf);
        snprintf(buf, sizeof buf, "%d", g->o.n_blocks);
        sd_ckpt_writer_set_meta(&w, "n_blocks", buf);
        st = sd_ckpt_writer_save(&w, path);
    }
    sd_ckpt_writer_free(&w);
    return st;
}

sd_status sd_gen_load(const char *path, sd_gen **out)
{
    *out = NULL;
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return st;
    const char *prefix = sd_ckpt_is_generator(&c, "") ? "" : sd_ckpt_is_generator(&c, "gen_s:") ? "gen_s:" : NULL;
    if (!prefix) {
        const char *m = sd_ckpt_meta(&c, SD_META_MODEL);
        if (m)
            st = sd_fail(SD_ERR_FORMAT, "%s: a segmentation network checkpoint (model '%.60s'), expected a "
                         "generator (CycleGAN ResNet generator: tensors model.1.weight ...)", path, m);
        else
            st = sd_fail(SD_ERR_FORMAT, "%s: no generator tensors (model.1.weight, a 7x7 conv, with or without "
                         "the gen_s: namespace of a taskgan run), expected a CycleGAN ResNet generator", path);
        sd_ckpt_close(&c);
        return st;
    }
    sd_gen_opts o = sd_gen_opts_default();
    const sd_st_tensor *stem = &c.st.tensors[find_tensor(&c, prefix, "model.1.weight")];
    o.ngf = (int)stem->shape[0];
    o.in_ch = (int)stem->shape[1];
    o.n_blocks = 0;
    char nm[64];
    for (;;) {
        snprintf(nm, sizeof nm, "model.%d.conv_block.1.weight", 10 + o.n_blocks);
        if (find_tensor(&c, prefix, nm) < 0 || o.n_blocks == GEN_MAX_BLOCKS)
            break;
        o.n_blocks++;
    }
    snprintf(nm, sizeof nm, "model.%d.weight", 10 + o.n_blocks + 7);
    int li = find_tensor(&c, prefix, nm);
    if (li >= 0 && c.st.tensors[li].ndim == 4)
        o.out_ch = (int)c.st.tensors[li].shape[0];
    sd_gen *g = NULL;
    if (!(st = sd_gen_create(&o, &g)))
        st = sd_ckpt_load_params(&c, prefix, &g->params, true, NULL);
    if (!st)   /* read on the CPU, then to the device of the run (--device), as sd_model_load */
        st = sd_params_to_device(&g->params, sd_device_selected());
    if (st) {
        sd_gen_free(g);
        g = NULL;
        if (!strstr(sd_errmsg(), path))
            sd_fail_prefix(st, "%s", path);
    }
    sd_ckpt_close(&c);
    *out = g;
    return st;
}

/* ---- conventions ---- */

/* y_out[c] = a[c] * x[src(c)] + b[c], with src swapping R and B when swap. */
static sd_tensor *channel_affine(sd_tape *t, sd_tensor *x, const float a[3], const float b[3], bool swap)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || x->shape[1] != 3)
        return sd_tape_fail(t, SD_ERR_SHAPE, "image convention: input %s, expected [N, 3, H, W]", sd_shape_str(x));
    sd_tensor *ch[3];
    for (int c = 0; c < 3; c++) {
        int s = swap ? 2 - c : c;
        ch[c] = sd_add_scalar(t, sd_scale(t, sd_slice(t, x, 1, s, s + 1), a[c]), b[c]);
    }
    return sd_concat(t, 3, ch, 1);
}

sd_tensor *sd_gen_to_norm(sd_tape *t, sd_tensor *y, sd_norm norm)
{
    const sd_norm_params *p = sd_norm_params_of(norm);
    if (!p)
        return sd_tape_fail(t, SD_ERR_ARG, "image convention: unknown normalisation %d", (int)norm);
    /* rgb255 = (y + 1) * 127.5; out = (rgb255 * scale - mean) / std */
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        a[c] = 127.5f * p->scale / p->std[c];
        b[c] = (127.5f * p->scale - p->mean[c]) / p->std[c];
    }
    return channel_affine(t, y, a, b, p->bgr);
}

sd_tensor *sd_gen_from_norm(sd_tape *t, sd_tensor *x, sd_norm norm)
{
    const sd_norm_params *p = sd_norm_params_of(norm);
    if (!p)
        return sd_tape_fail(t, SD_ERR_ARG, "image convention: unknown normalisation %d", (int)norm);
    /* y[src] = (x[c] * std + mean) / scale / 127.5 - 1; the swap is its own inverse */
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        int s = p->bgr ? 2 - c : c;   /* out channel c (RGB) comes from x channel s */
        a[c] = p->std[s] / (p->scale * 127.5f);
        b[c] = p->mean[s] / (p->scale * 127.5f) - 1.0f;
    }
    return channel_affine(t, x, a, b, p->bgr);
}

/* Reflect-pads x to multiples of 4 (so the generator's output covers it
 * exactly), translates, and crops back. */
static sd_tensor *translate_unit(sd_gen *g, sd_tape *t, sd_tensor *x)
{
    if (!x)
        return NULL;
    int h = x->shape[2], w = x->shape[3];
    if (h < SD_GEN_MIN_IMAGE || w < SD_GEN_MIN_IMAGE)
        return sd_tape_fail(t, SD_ERR_SHAPE, "translate: image %dx%d, expected at least %dx%d (the generator "
                            "downsamples by 4 and reflect-pads)", w, h, SD_GEN_MIN_IMAGE, SD_GEN_MIN_IMAGE);
    int ph = (4 - h % 4) % 4, pw = (4 - w % 4) % 4;
    if (ph || pw)
        x = sd_pad2d(t, x, 0, ph, 0, pw, true);
    sd_tensor *y = sd_gen_forward(g, t, x);
    if (y && (ph || pw))
        y = sd_slice(t, sd_slice(t, y, 2, 0, h), 3, 0, w);
    return y;
}

sd_tensor *sd_gen_translate_norm(sd_gen *g, sd_tape *t, sd_tensor *x, sd_norm norm)
{
    return sd_gen_to_norm(t, translate_unit(g, t, sd_gen_from_norm(t, x, norm)), norm);
}

sd_status sd_gen_translate_rgb(sd_gen *g, sd_tape *t, const uint8_t *px, int w, int h, int c, uint8_t *out)
{
    if (c < 1 || c > 4)
        return sd_fail(SD_ERR_ARG, "translate: %d channels, expected 1 to 4", c);
    if (w < SD_GEN_MIN_IMAGE || h < SD_GEN_MIN_IMAGE)
        return sd_fail(SD_ERR_SHAPE, "translate: image %dx%d, expected at least %dx%d (the generator downsamples "
                       "by 4 and reflect-pads)", w, h, SD_GEN_MIN_IMAGE, SD_GEN_MIN_IMAGE);
    size_t hw = (size_t)w * h;
    float *buf = malloc(3 * hw * sizeof *buf);
    if (!buf)
        return sd_fail(SD_ERR_NOMEM, "translate: out of memory for a %dx%d image", w, h);
    for (size_t i = 0; i < hw; i++)
        for (int k = 0; k < 3; k++)
            buf[k * hw + i] = px[c * i + (c >= 3 ? k : 0)] / 127.5f - 1.0f;
    sd_tape_reset(t);
    sd_tape_no_grad_begin(t);
    sd_tensor *y = translate_unit(g, t, sd_tensor_wrap(t, 4, (int[]){1, 3, h, w}, buf));
    sd_status st = y ? sd_tensor_to_host(y, buf) : (t->status ? t->status : SD_ERR_NOMEM);
    sd_tape_no_grad_end(t);
    sd_tape_reset(t);
    if (!st)
        for (size_t i = 0; i < hw; i++)
            for (int k = 0; k < 3; k++) {
                /* CycleGAN's tensor2im: (y + 1) / 2 * 255, truncated */
                float v = (buf[k * hw + i] + 1.0f) * 127.5f;
                out[3 * i + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(buf);
    return st;
}
