/* ctypes entry point for tests/py/test_gan_torch.py: loads CycleGAN's ResNet
 * generator or the PatchGAN discriminator from a safetensors file, runs one
 * forward and the backward of sum(y * dy), and writes every parameter
 * gradient to a safetensors file the script reads. libsegda.so only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/ops.h"
#include "segda/optim.h"

int sd_shim_gan_run(const char *ckpt, int kind, int ndf, int n_layers, int n, int h, int w, const float *x,
                    const float *dy, float *y, int y_cap, int *shape, const char *grads_out);

/* kind 0: generator (shape and block count read from the file, by name, as
 * `segda translate` does); kind 1: PatchGAN with ndf and n_layers. Returns
 * 0 on success; the message is in sd_errmsg(). dy must have y's size. */
int sd_shim_gan_run(const char *ckpt, int kind, int ndf, int n_layers, int n, int h, int w, const float *x,
                    const float *dy, float *y, int y_cap, int *shape, const char *grads_out)
{
    sd_gen *g = NULL;
    sd_patchgan *d = NULL;
    sd_params *p;
    if (kind == 0) {
        if (sd_gen_load(ckpt, &g))
            return 1;
        p = sd_gen_params(g);
    } else {
        sd_patchgan_opts o = sd_patchgan_opts_default();
        o.ndf = ndf;
        o.n_layers = n_layers;
        sd_ckpt c;
        if (sd_patchgan_create(&o, &d))
            return 1;
        p = sd_patchgan_params(d);
        if (sd_ckpt_open(ckpt, &c)) {
            sd_patchgan_free(d);
            return 1;
        }
        int st = sd_ckpt_load_params(&c, "", p, true, NULL);
        sd_ckpt_close(&c);
        if (st) {
            sd_patchgan_free(d);
            return 1;
        }
    }
    sd_tape t;
    sd_tape_init(&t, 1);
    int rc = 1;
    sd_tensor *in = sd_tensor_wrap(&t, 4, (int[]){n, 3, h, w}, (float *)x);
    sd_tensor *out = g ? sd_gen_forward(g, &t, in) : sd_patchgan_forward(d, &t, in);
    if (!out)
        goto done;
    for (int k = 0; k < 4; k++)
        shape[k] = out->shape[k];
    if ((size_t)y_cap < out->numel || sd_tensor_to_host(out, y))
        goto done;
    sd_tensor *loss = sd_sum(&t, sd_mul(&t, out, sd_tensor_wrap(&t, 4, out->shape, (float *)dy)));
    if (!loss || sd_backward1(&t, loss))
        goto done;
    sd_ckpt_writer wr;
    sd_ckpt_writer_init(&wr);
    char name[300];
    int st = 0;
    for (int i = 0; i < p->n && !st; i++) {
        sd_tensor *q = p->tensors[i];
        const float *gr = sd_tensor_host_grad(q);   /* a CPU-only test: no copy */
        snprintf(name, sizeof name, "grad:%s", q->name);
        st = gr ? sd_ckpt_writer_add_tensor(&wr, name, q->ndim, q->shape, gr) : 1;
    }
    if (!st)
        st = sd_ckpt_writer_save(&wr, grads_out);
    sd_ckpt_writer_free(&wr);
    rc = st != 0;
done:
    sd_tape_free(&t);
    sd_gen_free(g);
    sd_patchgan_free(d);
    return rc;
}

/* taskgan's stage-2 generator step as src/da/taskgan.c builds it
 * (sd_taskgan_g_losses): D_S and f frozen, loss (1 - alpha) adv + alpha
 * gamma ce, Adam (betas 0.5, 0.999) on G_S, `steps` times on the same batch.
 * losses[2s], losses[2s+1]: adv and ce before step s. Writes the updated
 * G_S to out_path. Returns 0; 2 when D_S or f received any gradient. */
int sd_shim_taskgan_step(const char *gen_path, const char *disc_path, int ndf, int n_layers, const char *f_path,
                         int n, int h, int w, const float *x, const uint8_t *labels, float alpha, float gamma,
                         float lr, int steps, float *losses, const char *out_path);

static bool any_grad(sd_params *p)
{
    for (int i = 0; i < p->n; i++) {
        const float *g = sd_tensor_host_grad(p->tensors[i]);
        for (size_t k = 0; g && k < p->tensors[i]->numel; k++)
            if (g[k] != 0.0f)
                return true;
    }
    return false;
}

int sd_shim_taskgan_step(const char *gen_path, const char *disc_path, int ndf, int n_layers, const char *f_path,
                         int n, int h, int w, const float *x, const uint8_t *labels, float alpha, float gamma,
                         float lr, int steps, float *losses, const char *out_path)
{
    sd_gen *g = NULL;
    sd_patchgan *d = NULL;
    sd_model *f = NULL;
    sd_norm norm = SD_NORM_IMAGENET;
    sd_patchgan_opts po = sd_patchgan_opts_default();
    po.ndf = ndf;
    po.n_layers = n_layers;
    sd_ckpt c;
    int rc = 1;
    sd_optim opt = {0};
    bool have_opt = false;
    if (sd_gen_load(gen_path, &g) || sd_patchgan_create(&po, &d) || sd_model_load(f_path, true, &f, &norm))
        goto out;
    if (sd_ckpt_open(disc_path, &c))
        goto out;
    int st = sd_ckpt_load_params(&c, "", sd_patchgan_params(d), true, NULL);
    sd_ckpt_close(&c);
    if (st)
        goto out;
    sd_params *dp = sd_patchgan_params(d), *fp = sd_model_params(f), *gp = sd_gen_params(g);
    for (int i = 0; i < dp->n_groups; i++)
        sd_params_set_frozen(dp, i, true);
    for (int i = 0; i < fp->n_groups; i++)
        if (!fp->groups[i].is_buffer)
            sd_params_set_frozen(fp, i, true);
    sd_optim_opts oo = sd_optim_opts_adam(0.5f, 0.999f);
    if (sd_optim_init(&opt, gp, &oo))
        goto out;
    have_opt = true;
    sd_tape t;
    sd_tape_init(&t, 1);
    for (int s = 0; s < steps; s++) {
        sd_tape_reset(&t);
        sd_params_zero_grad(gp);
        sd_tensor *in = sd_tensor_wrap(&t, 4, (int[]){n, 3, h, w}, (float *)x), *y, *adv, *ce;
        if (sd_taskgan_g_losses(&t, g, d, f, norm, in, labels, &y, &adv, &ce))
            break;
        losses[2 * s] = sd_tensor_item(adv);
        losses[2 * s + 1] = sd_tensor_item(ce);
        sd_tensor *ls[2] = {adv, ce};
        float wt[2] = {1.0f - alpha, alpha * gamma};
        if (sd_backward(&t, 2, ls, wt))
            break;
        if (any_grad(dp) || any_grad(fp)) {
            rc = 2;
            break;
        }
        if (sd_optim_step(&opt, lr))
            break;
        if (s == steps - 1)
            rc = sd_gen_save(g, out_path) ? 1 : 0;
    }
    sd_tape_free(&t);
out:
    if (have_opt)
        sd_optim_free(&opt);
    sd_gen_free(g);
    sd_patchgan_free(d);
    sd_model_free(f);
    return rc;
}
