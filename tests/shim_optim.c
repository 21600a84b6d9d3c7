/* Flat entry point for tests/py/test_optim.py (ctypes): runs an optimiser
 * over a fixed four-group layout so the script can compare with torch.optim.
 * Layout: group 0 "backbone" [n0] lr x1 wd x1; group 1 "classifier" [n1]
 * lr x10 wd x0.5; group 2 "frozen" [n2], never updated. */
#include <string.h>

#include "segda/optim.h"

int sd_shim_optim_run(int kind, float momentum, float wd, float b1, float b2, float eps,
                      float base_lr, int max_iters, float power, int steps, int n0, int n1, int n2,
                      const float *w0, const float *grads, float *w_out, float *state_out);

/* grads: [steps][n0+n1+n2]; w_out: [n0+n1+n2]; state_out: first state slot
 * of groups 0 and 1 ([n0+n1]). Returns 0 on success. */
int sd_shim_optim_run(int kind, float momentum, float wd, float b1, float b2, float eps,
                      float base_lr, int max_iters, float power, int steps, int n0, int n1, int n2,
                      const float *w0, const float *grads, float *w_out, float *state_out)
{
    sd_params p;
    sd_params_init(&p);
    int g0 = sd_params_add_group(&p, "backbone", 1.0f, 1.0f, false);
    int g1 = sd_params_add_group(&p, "classifier", 10.0f, 0.5f, false);
    int g2 = sd_params_add_group(&p, "frozen", 1.0f, 1.0f, false);
    int s0[1] = {n0}, s1[1] = {n1}, s2[1] = {n2};
    sd_params_declare(&p, g0, "w0", 1, s0);
    sd_params_declare(&p, g1, "w1", 1, s1);
    sd_params_declare(&p, g2, "w2", 1, s2);
    sd_params_set_frozen(&p, g2, true);
    if (sd_params_alloc(&p) != SD_OK)
        return 1;
    int n = n0 + n1 + n2, ns[3] = {n0, n1, n2};
    memcpy(p.groups[0].data, w0, (size_t)n0 * sizeof(float));
    memcpy(p.groups[1].data, w0 + n0, (size_t)n1 * sizeof(float));
    memcpy(p.groups[2].data, w0 + n0 + n1, (size_t)n2 * sizeof(float));
    sd_optim_opts o = kind == 0 ? sd_optim_opts_sgd(momentum, wd) : sd_optim_opts_adam(b1, b2);
    o.weight_decay = wd;
    if (kind == 1)
        o.eps = eps;
    sd_optim opt;
    if (sd_optim_init(&opt, &p, &o) != SD_OK) {
        sd_params_free(&p);
        return 2;
    }
    sd_lr_schedule sch = sd_lr_poly(base_lr, max_iters, power);
    for (int it = 0; it < steps; it++) {
        const float *g = grads + (size_t)it * (size_t)n;
        for (int k = 0, off = 0; k < 3; off += ns[k], k++)
            memcpy(p.groups[k].grad, g + off, (size_t)ns[k] * sizeof(float));
        if (sd_optim_step(&opt, sd_lr_at(&sch, it)) != SD_OK)
            return 3;
    }
    for (int k = 0, off = 0; k < 3; off += ns[k], k++)
        memcpy(w_out + off, p.groups[k].data, (size_t)ns[k] * sizeof(float));
    /* plain SGD keeps no state: report zeros */
    memset(state_out, 0, (size_t)(n0 + n1) * sizeof(float));
    if (opt.state[0][0])
        memcpy(state_out, opt.state[0][0], (size_t)n0 * sizeof(float));
    if (opt.state[1][0])
        memcpy(state_out + n0, opt.state[1][0], (size_t)n1 * sizeof(float));
    sd_optim_free(&opt);
    sd_params_free(&p);
    return 0;
}
