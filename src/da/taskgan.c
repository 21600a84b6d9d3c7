/* Task-informed GAN translation (Mütze, Rottmann, Gottschalk; seed 004): the
 * real (target) images are translated into the synthetic (source) domain,
 * where a segmentation network f trained on sim alone works; f is never
 * retrained. Stage 1 is CycleGAN (G_S: real->sim, G_R: sim->real, PatchGAN
 * D_S and D_R, LSGAN, cycle and identity L1, image pools). Stage 2, from
 * iteration stage2-at, fine-tunes G_S alone with
 *   L_GS(I) = (1 - alpha) ||D_S(G_S(I)) - 1||^2 + alpha gamma CE(f(G_S(I)), l_r)
 * while D_S keeps training. f is the run's model: loaded from --task-model,
 * every group frozen and run in eval mode, so gradients reach G_S through it
 * but its bytes never change. Networks are in src/nn/gan.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/ops.h"

enum { POOL_MAX = 1000 };

static const sd_knob knobs[] = {
    {"task-model", SD_KNOB_STR, "", NULL, "the segmentation network f trained on the source domain (frozen)"},
    {"alpha", SD_KNOB_FLOAT, "0.5", NULL, "stage 2: share of the task term (0 = plain LSGAN fine-tuning of G_S)"},
    {"gamma", SD_KNOB_FLOAT, "1", NULL, "stage 2: scale of the task term's cross-entropy"},
    {"stage2-at", SD_KNOB_INT, "-1", NULL, "iteration where stage 2 (G_S with the task term) starts; -1 = iters/2, "
                                          "iters = CycleGAN only"},
    {"target-labels", SD_KNOB_INT, "0", NULL, "labelled real images for the task term, chosen by seed as finetune "
                                              "chooses them (0: use label-fraction)"},
    {"label-fraction", SD_KNOB_FLOAT, "1", NULL, "share of the real train images that are labelled (with "
                                                 "target-labels 0)"},
    {"lambda-cycle", SD_KNOB_FLOAT, "10", NULL, "stage 1: cycle-consistency L1 weight (CycleGAN's lambda_A = lambda_B)"},
    {"lambda-identity", SD_KNOB_FLOAT, "0.5", NULL, "stage 1: identity L1 weight as a fraction of lambda-cycle "
                                                    "(CycleGAN's default 0.5; 0 = off)"},
    {"pool-size", SD_KNOB_INT, "50", NULL, "image pool of generated images the discriminators see (0 = none)"},
    {"lr-gan", SD_KNOB_FLOAT, "0.0002", NULL, "Adam lr of generators and discriminators (betas 0.5, 0.999)"},
    {"lr-hold", SD_KNOB_FLOAT, "0.5", NULL, "share of iters at constant lr; then linear decay to 0"},
    {"gen-ngf", SD_KNOB_INT, "64", NULL, "generator base width ngf"},
    {"gen-blocks", SD_KNOB_INT, "9", NULL, "generator residual blocks (9: resnet_9blocks)"},
    {"disc-ndf", SD_KNOB_INT, "64", NULL, "PatchGAN base width ndf"},
    {NULL, 0, NULL, NULL, NULL},
};

/* CycleGAN's ImagePool as a buffer set the run saves, so resume replays it */
typedef struct pool {
    sd_params p;
    sd_tensor **img;       /* [size] of [3, h, w] */
    sd_tensor *count;      /* [1] images stored so far */
    int size, h, w;
} pool;

typedef struct taskgan {
    sd_gen *gs, *gr;
    sd_patchgan *ds, *dr;
    pool ps, pr;
    float alpha, gamma, l_cyc, l_idt;
    int64_t stage2;
    bool *labelled;        /* [target images] */
    int n_labelled;
} taskgan;

static void pool_free(pool *pl)
{
    sd_params_free(&pl->p);
    free(pl->img);
}

static sd_status pool_init(pool *pl, int size, int h, int w)
{
    sd_params_init(&pl->p);
    pl->size = size;
    pl->h = h;
    pl->w = w;
    pl->img = calloc((size_t)(size ? size : 1), sizeof *pl->img);
    if (!pl->img)
        return sd_fail(SD_ERR_NOMEM, "taskgan: out of memory for the image pool");
    int g = sd_params_add_group(&pl->p, "pool", 0, 0, true);
    char nm[32];
    for (int i = 0; i < size; i++) {
        snprintf(nm, sizeof nm, "img.%d", i);
        if (!(pl->img[i] = sd_params_declare(&pl->p, g, nm, 3, (int[]){3, h, w})))
            return SD_ERR_ARG;
    }
    if (!(pl->count = sd_params_declare(&pl->p, g, "count", 1, (int[]){1})))
        return SD_ERR_ARG;
    return sd_params_alloc(&pl->p);
}

/* CycleGAN's ImagePool.query: while the pool fills, each image goes in and
 * out as it is; then with probability 1/2 a random stored image is returned
 * and replaced by the new one, else the new one is returned. */
static sd_tensor *pool_query(sd_trainer *tr, pool *pl, sd_tensor *fake, sd_rng *r)
{
    if (!fake || pl->size == 0)
        return fake;
    sd_tape *t = &tr->tape;
    if (fake->shape[1] != 3 || fake->shape[2] != pl->h || fake->shape[3] != pl->w)
        return sd_tape_fail(t, SD_ERR_SHAPE, "taskgan: generated batch %s, the image pool holds [3, %d, %d]",
                            sd_shape_str(fake), pl->h, pl->w);
    size_t per = (size_t)3 * pl->h * pl->w;
    int n = fake->shape[0];
    float *in = sd_arena_alloc(&t->arena, n * per * sizeof *in), *out = sd_arena_alloc(&t->arena, n * per * sizeof *out);
    if (!in || !out)
        return sd_tape_fail(t, SD_ERR_NOMEM, "taskgan: out of memory querying the image pool");
    float cnt;
    if (sd_tensor_to_host(fake, in) || sd_tensor_to_host(pl->count, &cnt))
        return sd_tape_fail(t, SD_ERR_ARG, "taskgan: image pool: %s", sd_errmsg());
    int c = (int)cnt;
    sd_status st = SD_OK;
    for (int k = 0; k < n && !st; k++) {
        float *src = in + k * per, *dst = out + k * per;
        if (c < pl->size) {
            st = sd_tensor_from_host(pl->img[c++], src);
            memcpy(dst, src, per * sizeof *dst);
        } else if (sd_rng_uniform(r) > 0.5f) {
            int id = sd_rng_int(r, pl->size);
            if (!(st = sd_tensor_to_host(pl->img[id], dst)))
                st = sd_tensor_from_host(pl->img[id], src);
        } else {
            memcpy(dst, src, per * sizeof *dst);
        }
    }
    cnt = (float)c;
    if (st || sd_tensor_from_host(pl->count, &cnt))
        return sd_tape_fail(t, SD_ERR_ARG, "taskgan: image pool: %s", sd_errmsg());
    return sd_tensor_wrap(t, 4, fake->shape, out);
}

static void free_state(void *state)
{
    taskgan *g = state;
    sd_gen_free(g->gs);
    sd_gen_free(g->gr);
    sd_patchgan_free(g->ds);
    sd_patchgan_free(g->dr);
    pool_free(&g->ps);
    pool_free(&g->pr);
    free(g->labelled);
    free(g);
}

static void set_frozen(sd_params *p, bool frozen)
{
    for (int i = 0; i < p->n_groups; i++)
        if (!p->groups[i].is_buffer)
            sd_params_set_frozen(p, i, frozen);
}

/* f from --task-model into the run's model: same architecture and classes,
 * every tensor of the model present; then frozen for good. */
static sd_status load_task_model(sd_trainer *tr, const char *path)
{
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return sd_fail_prefix(st, "--task-model");
    const sd_model_opts *cur = sd_model_options(tr->model);
    sd_model_opts mo;
    sd_norm norm = tr->norm;
    sd_ckpt_report rep = {0};
    if (sd_ckpt_is_generator(&c, "") && !sd_ckpt_meta(&c, SD_META_MODEL))
        st = sd_fail(SD_ERR_FORMAT, "--task-model %s: a generator checkpoint (CycleGAN ResNet generator), expected "
                     "a segmentation network trained on the source domain (e.g. RUN/best.safetensors of source-only)",
                     path);
    else if ((st = sd_ckpt_model_opts(&c, &mo, &norm)))
        sd_fail_prefix(st, "--task-model");
    else if (strcmp(mo.name, cur->name))
        st = sd_fail(SD_ERR_ARG, "--task-model %s: a %s network, but --model is %s (give --model %s)", path, mo.name,
                     cur->name, mo.name);
    else if (mo.classes != cur->classes)
        st = sd_fail(SD_ERR_ARG, "--task-model %s: %d classes, expected %d (the trainIds the labels use)", path,
                     mo.classes, cur->classes);
    else if (!(st = sd_ckpt_load_params(&c, "", tr->params, false, &rep)) && (rep.missing || rep.mismatched))
        st = sd_fail(SD_ERR_DATA, "--task-model %s: %d tensors of %s missing and %d mis-shaped (see the warnings)",
                     path, rep.missing, cur->name, rep.mismatched);
    sd_ckpt_close(&c);
    if (st)
        return st;
    tr->norm = norm;
    set_frozen(tr->params, true);
    return SD_OK;
}

/* The same seeded draw as finetune's labelled subset (sd_train_target_subset),
 * so "f fine-tuned on the same labels" compares like with like. */
static sd_status choose_labelled(sd_trainer *tr, taskgan *g)
{
    int n_t = sd_train_target_count(tr);
    int64_t n = sd_config_int(tr->cfg, "target-labels");
    double frac = sd_config_float(tr->cfg, "label-fraction");
    if (n < 0 || n > n_t)
        return sd_fail(SD_ERR_ARG, "%s: target-labels = %lld, expected 0..%d (the target set's images)",
                       sd_config_origin(tr->cfg, "target-labels"), (long long)n, n_t);
    if (!(frac >= 0 && frac <= 1))
        return sd_fail(SD_ERR_ARG, "%s: label-fraction = %g, expected 0..1", sd_config_origin(tr->cfg, "label-fraction"),
                       frac);
    if (n == 0)
        n = frac > 0 ? (int64_t)fmax(1.0, floor(frac * n_t + 0.5)) : 0;
    g->n_labelled = (int)n;
    g->labelled = calloc((size_t)(n_t ? n_t : 1), sizeof *g->labelled);
    int *all = malloc((size_t)(n_t ? n_t : 1) * sizeof *all);
    if (!g->labelled || !all) {
        free(all);
        return sd_fail(SD_ERR_NOMEM, "taskgan: out of memory");
    }
    for (int i = 0; i < n_t; i++)
        all[i] = i;
    sd_rng r = sd_rng_fork(tr->seed, 0x5b5e7ULL);
    for (int i = 0; i < n; i++) {
        int j = i + sd_rng_int(&r, n_t - i), t = all[i];
        all[i] = all[j];
        all[j] = t;
        g->labelled[all[i]] = true;
    }
    free(all);
    return SD_OK;
}

static uint64_t stream_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static sd_status add_module(sd_trainer *tr, const char *prefix, sd_params *p, const sd_lr_schedule *sched)
{
    sd_optim_opts o = sd_optim_opts_adam(0.5f, 0.999f);
    sd_status st = sd_train_add_module(tr, prefix, p, sched ? &o : NULL, sched ? sched->base_lr : 0);
    if (!st && sched)
        tr->mods[tr->n_mods - 1].sched = *sched;
    return st;
}

static sd_status init(sd_trainer *tr, void **state)
{
    taskgan *g = calloc(1, sizeof *g);
    if (!g)
        return sd_fail(SD_ERR_NOMEM, "taskgan: out of memory");
    *state = g;
    const sd_config *cfg = tr->cfg;
    const char *fpath = sd_config_str(cfg, "task-model");
    if (!*fpath)
        return sd_fail(SD_ERR_ARG, "taskgan needs --task-model CKPT: the segmentation network trained on the source "
                       "domain that guides the generator");
    sd_status st = load_task_model(tr, fpath);
    if (st)
        return st;
    g->alpha = (float)sd_config_float(cfg, "alpha");
    g->gamma = (float)sd_config_float(cfg, "gamma");
    g->l_cyc = (float)sd_config_float(cfg, "lambda-cycle");
    g->l_idt = (float)sd_config_float(cfg, "lambda-identity");
    g->stage2 = sd_config_int(cfg, "stage2-at");
    if (g->stage2 < 0)
        g->stage2 = tr->iters / 2;
    if (!(g->alpha >= 0 && g->alpha <= 1) || !(g->gamma >= 0) || !(g->l_cyc >= 0) || !(g->l_idt >= 0))
        return sd_fail(SD_ERR_ARG, "taskgan: alpha %g (expected 0..1), gamma %g, lambda-cycle %g, lambda-identity "
                       "%g (expected >= 0)", g->alpha, g->gamma, g->l_cyc, g->l_idt);
    int pool_size = (int)sd_config_int(cfg, "pool-size");
    if (pool_size < 0 || pool_size > POOL_MAX)
        return sd_fail(SD_ERR_ARG, "%s: pool-size = %d, expected 0..%d", sd_config_origin(cfg, "pool-size"), pool_size,
                       POOL_MAX);
    sd_gen_opts go = sd_gen_opts_default();
    go.ngf = (int)sd_config_int(cfg, "gen-ngf");
    go.n_blocks = (int)sd_config_int(cfg, "gen-blocks");
    sd_patchgan_opts po = sd_patchgan_opts_default();
    po.ndf = (int)sd_config_int(cfg, "disc-ndf");
    /* the pools hold fixed-size images and G's output covers its input
     * exactly only at multiples of 4 */
    int min = sd_patchgan_min_size(&po);
    if (tr->crop_w <= 0 || tr->crop_w % 4 || tr->crop_h % 4 || tr->crop_w < min || tr->crop_h < min)
        return sd_fail(SD_ERR_ARG, "taskgan needs --crop WxH with W and H multiples of 4 and at least %d (the "
                       "PatchGAN's smallest input); got '%s'", min, sd_config_str(cfg, "crop"));
    if ((st = sd_gen_create(&go, &g->gs)) || (st = sd_gen_create(&go, &g->gr)) ||
        (st = sd_patchgan_create(&po, &g->ds)) || (st = sd_patchgan_create(&po, &g->dr)) ||
        (st = pool_init(&g->ps, pool_size, tr->crop_h, tr->crop_w)) ||
        (st = pool_init(&g->pr, pool_size, tr->crop_h, tr->crop_w)))
        return st;
    sd_gen_init_weights(g->gs, tr->seed ^ stream_of("gen_s:"));
    sd_gen_init_weights(g->gr, tr->seed ^ stream_of("gen_r:"));
    sd_patchgan_init_weights(g->ds, tr->seed ^ stream_of("disc_s:"));
    sd_patchgan_init_weights(g->dr, tr->seed ^ stream_of("disc_r:"));
    /* CycleGAN: constant lr, then linear decay to 0 */
    sd_lr_schedule sched = sd_lr_poly((float)sd_config_float(cfg, "lr-gan"), tr->iters, 1.0f);
    sched.hold_iters = (int64_t)(sd_config_float(cfg, "lr-hold") * (double)tr->iters);
    tr->sched = sched;   /* what the log's "lr" shows; f's optimiser has only frozen groups */
    if ((st = add_module(tr, "gen_s:", sd_gen_params(g->gs), &sched)) ||
        (st = add_module(tr, "gen_r:", sd_gen_params(g->gr), &sched)) ||
        (st = add_module(tr, "disc_s:", sd_patchgan_params(g->ds), &sched)) ||
        (st = add_module(tr, "disc_r:", sd_patchgan_params(g->dr), &sched)) ||
        (st = add_module(tr, "pool_s:", &g->ps.p, NULL)) || (st = add_module(tr, "pool_r:", &g->pr.p, NULL)))
        return st;
    return choose_labelled(tr, g);
}

/* RGB 0..255 batch -> [-1, 1], CycleGAN's Normalize((0.5,)*3, (0.5,)*3) */
static sd_tensor *unit_input(sd_trainer *tr, const sd_batch *b)
{
    size_t n = (size_t)b->n * 3 * b->h * b->w;
    float *buf = sd_arena_alloc(&tr->tape.arena, n * sizeof *buf);
    if (!buf)
        return sd_tape_fail(&tr->tape, SD_ERR_NOMEM, "taskgan: out of memory for a batch");
    for (size_t i = 0; i < n; i++)
        buf[i] = b->image[i] / 127.5f - 1.0f;
    return sd_tensor_wrap(&tr->tape, 4, (int[]){b->n, 3, b->h, b->w}, buf);
}

/* mean |a - b| as relu(d) + relu(-d): exactly PyTorch's L1Loss, whose
 * gradient at d = 0 is 0 as relu's is */
static sd_tensor *l1(sd_tape *t, sd_tensor *a, sd_tensor *b)
{
    sd_tensor *d = sd_sub(t, a, b);
    return sd_mean(t, sd_add(t, sd_relu(t, d), sd_relu(t, sd_scale(t, d, -1.0f))));
}

static sd_tensor *lsgan(sd_trainer *tr, sd_patchgan *d, sd_tensor *x, float target)
{
    return sd_mse_const(&tr->tape, sd_patchgan_forward(d, &tr->tape, x), target);
}

sd_status sd_taskgan_g_losses(sd_tape *t, sd_gen *gs, sd_patchgan *ds, sd_model *f, sd_norm norm, sd_tensor *x,
                              const uint8_t *labels, sd_tensor **y_out, sd_tensor **adv, sd_tensor **ce)
{
    sd_tensor *y = *y_out = sd_gen_forward(gs, t, x);
    *adv = sd_mse_const(t, sd_patchgan_forward(ds, t, y), 1.0f);
    if (!*adv)
        return t->status ? t->status : SD_ERR_ARG;
    if (!ce)
        return SD_OK;
    *ce = NULL;
    sd_model_out out;
    sd_status st = sd_model_forward(f, t, sd_gen_to_norm(t, y, norm), false, &out);
    if (st)
        return st;
    sd_tensor *up = out.logits;
    if (up->shape[2] != x->shape[2] || up->shape[3] != x->shape[3])
        up = sd_resize_bilinear(t, up, x->shape[2], x->shape[3], true);
    *ce = sd_cross_entropy(t, up, labels, NULL, 255);
    return *ce ? SD_OK : (t->status ? t->status : SD_ERR_ARG);
}

/* The batch's labels, with those of images outside the labelled subset
 * ignored (a batch without any gives CE 0, as sd_cross_entropy does) */
static const uint8_t *masked_labels(sd_trainer *tr, taskgan *g)
{
    const sd_batch *b = tr->tgt;
    size_t plane = (size_t)b->h * b->w;
    uint8_t *lab = sd_arena_alloc(&tr->tape.arena, b->n * plane);
    if (!lab)
        return NULL;
    for (int k = 0; k < b->n; k++) {
        if (g->labelled[b->index[k]])
            memcpy(lab + k * plane, b->label + k * plane, plane);
        else
            memset(lab + k * plane, 255, plane);
    }
    return lab;
}

static sd_status step(sd_trainer *tr, void *state)
{
    taskgan *g = state;
    sd_tape *t = &tr->tape;
    sd_status st;
    bool s2 = tr->it >= g->stage2;
    sd_rng r = sd_rng_fork(tr->seed, 0x7a5c9a0000ULL + (uint64_t)tr->it);   /* the pools' draws */
    sd_train_log_value(tr, "stage", s2 ? 2 : 1);
    /* generators' step: discriminators frozen; stage 2 trains G_S alone */
    set_frozen(sd_patchgan_params(g->ds), true);
    set_frozen(sd_patchgan_params(g->dr), true);
    set_frozen(sd_gen_params(g->gr), s2);
    sd_tensor *xr = unit_input(tr, tr->tgt), *xs = unit_input(tr, tr->src);
    sd_tensor *fake_s = NULL, *fake_r = NULL;
    if (!s2) {
        fake_s = sd_gen_forward(g->gs, t, xr);
        fake_r = sd_gen_forward(g->gr, t, xs);
        if ((st = sd_train_loss(tr, "g_adv_s", lsgan(tr, g->ds, fake_s, 1.0f), 1.0f)) ||
            (st = sd_train_loss(tr, "g_adv_r", lsgan(tr, g->dr, fake_r, 1.0f), 1.0f)) ||
            (st = sd_train_loss(tr, "cycle_r", l1(t, sd_gen_forward(g->gr, t, fake_s), xr), g->l_cyc)) ||
            (st = sd_train_loss(tr, "cycle_s", l1(t, sd_gen_forward(g->gs, t, fake_r), xs), g->l_cyc)))
            return st;
        if (g->l_idt > 0 &&
            ((st = sd_train_loss(tr, "idt_s", l1(t, sd_gen_forward(g->gs, t, xs), xs), g->l_cyc * g->l_idt)) ||
             (st = sd_train_loss(tr, "idt_r", l1(t, sd_gen_forward(g->gr, t, xr), xr), g->l_cyc * g->l_idt))))
            return st;
    } else {
        bool task = g->alpha * g->gamma > 0;
        const uint8_t *lab = task ? masked_labels(tr, g) : NULL;
        if (task && !lab)
            return sd_fail(SD_ERR_NOMEM, "taskgan: out of memory for labels");
        sd_tensor *adv, *ce;
        if ((st = sd_taskgan_g_losses(t, g->gs, g->ds, tr->model, tr->norm, xr, lab, &fake_s, &adv, task ? &ce : NULL)))
            return sd_fail_prefix(st, "iteration %lld: taskgan generator loss", (long long)tr->it + 1);
        if ((st = sd_train_loss(tr, "g_adv_s", adv, 1.0f - g->alpha)) ||
            (task && (st = sd_train_loss(tr, "task_ce", ce, g->alpha * g->gamma))))
            return st;
    }
    if ((st = sd_train_backward(tr)))
        return st;
    /* discriminators: real 1, pooled fakes 0, each half (CycleGAN's 0.5) */
    set_frozen(sd_patchgan_params(g->ds), false);
    if ((st = sd_train_loss(tr, "d_s_real", lsgan(tr, g->ds, xs, 1.0f), 0.5f)) ||
        (st = sd_train_loss(tr, "d_s_fake", lsgan(tr, g->ds, pool_query(tr, &g->ps, sd_detach(t, fake_s), &r), 0.0f),
                            0.5f)))
        return st;
    if (!s2) {
        set_frozen(sd_patchgan_params(g->dr), false);
        if ((st = sd_train_loss(tr, "d_r_real", lsgan(tr, g->dr, xr, 1.0f), 0.5f)) ||
            (st = sd_train_loss(tr, "d_r_fake",
                                lsgan(tr, g->dr, pool_query(tr, &g->pr, sd_detach(t, fake_r), &r), 0.0f), 0.5f)))
            return st;
    }
    return SD_OK;   /* the loop runs this backward and steps every optimiser; f's groups are frozen */
}

static sd_tensor *eval_input(sd_trainer *tr, void *state, sd_tensor *x)
{
    taskgan *g = state;
    return sd_gen_translate_norm(g->gs, &tr->tape, x, tr->norm);
}

const sd_method sd_method_taskgan = {
    .name = "taskgan",
    .summary = "task-informed GAN: CycleGAN real<->sim, then G_S fine-tuned through a frozen sim-trained f "
               "(--task-model); evaluates f(G_S(real))",
    .knobs = knobs,
    .needs_target = true,
    .target_labels = true,
    .source_batches = true,
    .init = init,
    .step = step,
    .eval_input = eval_input,
    .free = free_state,
};
