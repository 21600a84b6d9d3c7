/* ctypes entry point for tests/py/test_models_torch.py: load a model from a
 * safetensors checkpoint, run one forward (and optionally a loss and backward)
 * and hand back logits, with gradients and updated buffers in a safetensors
 * file the script reads. Compiled into libsegda.so only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/checkpoint.h"
#include "segda/model.h"

#define F32(p) ((float *)(p))
#include "segda/ops.h"

int sd_shim_model_run(const char *ckpt, int n, int h, int w, const float *x, int training, const uint8_t *labels,
                      const char *grads_out, float *logits, int logits_cap, int *shape, float *aux, int aux_cap,
                      float *loss_out);

static void copy_out(const sd_tensor *y, float *dst, int cap, int *shape)
{
    for (int d = 0; d < 4; d++)
        shape[d] = y ? y->shape[d] : 0;
    if (y && dst && (size_t)cap >= y->numel)
        memcpy(dst, y->data, y->numel * sizeof(float));
}

/* labels: [N*h*w] at the logits' resolution (and the aux logits', the same
 * for every model here); loss = CE(main) + 0.4 * CE(aux). Returns 0 on
 * success; the message is in sd_errmsg(). */
int sd_shim_model_run(const char *ckpt, int n, int h, int w, const float *x, int training, const uint8_t *labels,
                      const char *grads_out, float *logits, int logits_cap, int *shape, float *aux, int aux_cap,
                      float *loss_out)
{
    sd_model *m;
    if (sd_model_load(ckpt, true, &m, NULL))
        return 1;
    sd_tape t;
    sd_tape_init(&t, 1);
    int st = 1;
    sd_tensor *in = sd_tensor_wrap(&t, 4, (int[]){n, 3, h, w}, (float *)x);
    sd_model_out out;
    if (!labels)
        sd_tape_no_grad_begin(&t);
    if (sd_model_forward(m, &t, in, training != 0, &out))
        goto done;
    copy_out(out.logits, logits, logits_cap, shape);
    copy_out(out.aux_logits, aux, aux_cap, shape + 4);
    if (labels) {
        sd_tensor *losses[2] = {sd_cross_entropy(&t, out.logits, labels, NULL, 255), NULL};
        float wts[2] = {1.0f, 0.4f};
        int nl = 1;
        if (out.aux_logits) {
            losses[1] = sd_cross_entropy(&t, out.aux_logits, labels, NULL, 255);
            nl = 2;
        }
        if (!losses[0] || (nl == 2 && !losses[1]))
            goto done;
        *loss_out = F32(losses[0]->data)[0] + (nl == 2 ? 0.4f * F32(losses[1]->data)[0] : 0.0f);
        if (sd_backward(&t, nl, losses, wts))
            goto done;
        /* gradients of trainable tensors as "grad:NAME", every buffer as "buf:NAME" */
        sd_params *p = sd_model_params(m);
        sd_ckpt_writer wr;
        sd_ckpt_writer_init(&wr);
        char name[300];
        for (int i = 0; i < p->n; i++) {
            sd_tensor *q = p->tensors[i];
            bool buf = p->groups[p->group_of[i]].is_buffer;
            if (!buf && !q->requires_grad)
                continue;
            snprintf(name, sizeof name, "%s:%s", buf ? "buf" : "grad", q->name);
            if (sd_ckpt_writer_add_tensor(&wr, name, q->ndim, q->shape, buf ? q->data : q->grad)) {
                sd_ckpt_writer_free(&wr);
                goto done;
            }
        }
        int ws = sd_ckpt_writer_save(&wr, grads_out);
        sd_ckpt_writer_free(&wr);
        if (ws)
            goto done;
    }
    st = 0;
done:
    sd_tape_free(&t);
    sd_model_free(m);
    return st;
}
