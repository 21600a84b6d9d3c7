/* ctypes entry point for tests/py/test_gan_torch.py: loads CycleGAN's ResNet
 * generator or the PatchGAN discriminator from a safetensors file, runs one
 * forward and the backward of sum(y * dy), and writes every parameter
 * gradient to a safetensors file the script reads. libsegda.so only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/ops.h"

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
