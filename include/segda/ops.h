/* Differentiable ops. Each takes the step's tape first, returns a new tensor
 * (NULL on failure, with the message on the tape and in sd_errmsg), and
 * records a node when any input requires grad outside a no_grad region.
 * A NULL input makes an op return NULL, so a forward pass can be checked
 * once at its end. Shapes are NCHW. Layouts of weights follow PyTorch:
 * conv2d weight [Cout, Cin/groups, kh, kw], conv_transpose2d weight
 * [Cin, Cout/groups, kh, kw]. */
#ifndef SEGDA_OPS_H
#define SEGDA_OPS_H

#include "segda/tensor.h"

/* ---- convolution and pooling ---- */
typedef struct sd_conv_opts {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dil_h, dil_w;
    int groups;
    int out_pad_h, out_pad_w;  /* conv_transpose2d only */
} sd_conv_opts;
/* stride 1, no padding, dilation 1, one group */
sd_conv_opts sd_conv_opts_default(void);
sd_conv_opts sd_conv_opts_make(int stride, int pad, int dil);

sd_tensor *sd_conv2d(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b /* or NULL */, sd_conv_opts o);

/* What conv2d_fused applies to the convolution's output, in that output:
 * an eval-mode batch norm (running statistics: frozen BN, or inference),
 * a residual added, then an activation. Every field may be absent. */
typedef enum sd_act { SD_ACT_NONE = 0, SD_ACT_RELU, SD_ACT_LEAKY_RELU } sd_act;
typedef struct sd_conv_post {
    sd_tensor *bn_mean, *bn_var;      /* [Cout] running statistics; NULL: no batch norm */
    sd_tensor *bn_weight, *bn_bias;   /* [Cout] or NULL (affine=false) */
    float bn_eps;
    sd_tensor *residual;              /* the output's shape, or NULL */
    sd_act act;
    float slope;                      /* LeakyReLU's negative slope, >= 0 */
} sd_conv_post;
/* act(bn_eval(conv2d(x, w, b)) + residual) as one op with one output: the
 * tape keeps that output alone (the backward needs nothing else), where
 * conv2d, batch_norm, add and relu keep four tensors; one pass over it
 * instead of four. Gradients reach x, w, b and the residual; the batch
 * norm's tensors must not require grad when recorded (a trained BN is
 * conv2d + batch_norm). Matches the unfused ops to float rounding (the BN
 * is folded into a per-channel scale and shift). */
sd_tensor *sd_conv2d_fused(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o,
                           const sd_conv_post *post);
/* Output size (H-1)*stride - 2*pad + dil*(k-1) + out_pad + 1; out_pad must be
 * < stride (PyTorch also accepts out_pad < dilation; segda does not). */
sd_tensor *sd_conv_transpose2d(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o);

typedef struct sd_pool_opts {
    int kh, kw, stride_h, stride_w, pad_h, pad_w;
    bool ceil_mode;
    bool count_include_pad;    /* avg pool only (PyTorch default true) */
} sd_pool_opts;
/* count_include_pad true, as PyTorch's default. Output sizes follow PyTorch,
 * ceil mode included (a last window starting in the right padding is dropped);
 * padding must be <= kernel/2. */
sd_pool_opts sd_pool_opts_make(int k, int stride, int pad, bool ceil_mode);
sd_tensor *sd_max_pool2d(sd_tape *t, sd_tensor *x, sd_pool_opts o);
sd_tensor *sd_avg_pool2d(sd_tape *t, sd_tensor *x, sd_pool_opts o);
/* Bin i covers [floor(i*in/out), ceil((i+1)*in/out)), as PyTorch. */
sd_tensor *sd_adaptive_avg_pool2d(sd_tape *t, sd_tensor *x, int out_h, int out_w);
/* RoIAlign as torchvision.ops.roi_align: x [N,C,H,W], k rois of 5 host
 * floats (batch index, x1, y1, x2, y2 in input-image coordinates; scale maps
 * them onto x) -> [k,C,out_h,out_w]. Each bin averages sampling x sampling
 * bilinear samples (sampling <= 0: ceil(roi size / bins) per axis);
 * aligned shifts by half a pixel (torchvision's aligned=True; Mask R-CNN's
 * MultiScaleRoIAlign uses aligned=false, sampling 2). Gradient to x only
 * (rois are constants, as in torchvision); k >= 1 and batch indices < N. */
sd_tensor *sd_roi_align(sd_tape *t, sd_tensor *x, int k, const float *rois, int out_h, int out_w, float scale,
                        int sampling, bool aligned);
/* Rows of x (viewed flat as [numel/block, block]) picked by n host indices:
 * [n, block]. Gradient back to the picked rows (repeats add up). Mask R-CNN
 * takes sampled anchors' logits, positive boxes' class-specific deltas and
 * each RoI's own class mask this way. */
sd_tensor *sd_gather(sd_tape *t, sd_tensor *x, int n, const int32_t *idx, int block);

/* ---- normalisation ---- */
/* Batch norm over N,H,W. training: batch statistics, and running stats
 * updated as PyTorch does (unbiased variance, running = (1-m)*running + m*batch).
 * !training: running statistics (this is also "frozen BN" when the affine
 * parameters' group is frozen). weight/bias may be NULL (affine=false).
 * x may be [N, C] or [N, C, ...]; running stats may be NULL in training
 * (PyTorch's track_running_stats=False). */
/* Synchronised batch norm (data parallel, SyncBN): with a sum function set,
 * batch_norm in training mode sums its per-channel statistics (forward:
 * sum of x and count, then sum of squared deviations) and its backward's
 * sums of dy and dy*xhat over the processes with it, so every process
 * normalises with the statistics of the whole global batch and back-
 * propagates through them. fn is a collective (dist.h's sd_dist_sum_f64)
 * that every process reaches in the same order, which data parallelism
 * guarantees (the same model and method on every rank). CPU tensors only;
 * NULL (the default) restores per-process statistics. Process-wide. */
typedef sd_status (*sd_norm_sum_fn)(double *buf, size_t n);
void sd_batch_norm_set_sync(sd_norm_sum_fn fn);
sd_tensor *sd_batch_norm(sd_tape *t, sd_tensor *x, sd_tensor *weight, sd_tensor *bias,
                         sd_tensor *running_mean, sd_tensor *running_var,
                         bool training, float momentum, float eps);
/* Statistics per (n, c) over H*W, always from x (PyTorch's InstanceNorm2d default). */
sd_tensor *sd_instance_norm(sd_tape *t, sd_tensor *x, sd_tensor *weight, sd_tensor *bias, float eps);

/* ---- element-wise ---- */
sd_tensor *sd_relu(sd_tape *t, sd_tensor *x);
sd_tensor *sd_leaky_relu(sd_tape *t, sd_tensor *x, float slope);
sd_tensor *sd_tanh(sd_tape *t, sd_tensor *x);
sd_tensor *sd_sigmoid(sd_tape *t, sd_tensor *x);
/* Inverted dropout (kept values scaled by 1/(1-p)), masks drawn from t->rng.
 * Returns x itself when !t->training or p == 0; p outside [0,1] is an error. */
sd_tensor *sd_dropout(sd_tape *t, sd_tensor *x, float p);
/* Binary ops: b broadcasts over any dims where it has size 1 (e.g. [1,C,1,1]
 * or [N,1,H,W] against [N,C,H,W]). */
sd_tensor *sd_add(sd_tape *t, sd_tensor *a, sd_tensor *b);
sd_tensor *sd_sub(sd_tape *t, sd_tensor *a, sd_tensor *b);
sd_tensor *sd_mul(sd_tape *t, sd_tensor *a, sd_tensor *b);
sd_tensor *sd_scale(sd_tape *t, sd_tensor *x, float s);        /* s * x */
sd_tensor *sd_add_scalar(sd_tape *t, sd_tensor *x, float s);   /* x + s */
/* y = x^p element-wise, for a real exponent p (FDA's robust entropy, eta 2.5);
 * backward dx += dy * p * x^(p-1). Meant for x > 0: at x = 0 the value is
 * 0 (p > 0) but the gradient is infinite when p < 1, and negative x gives
 * NaN unless p is an integer (C's powf). A non-finite p is an error. */
sd_tensor *sd_pow_scalar(sd_tape *t, sd_tensor *x, float p);
sd_tensor *sd_detach(sd_tape *t, sd_tensor *x);                /* shares data, no gradient */
sd_tensor *sd_grad_reverse(sd_tape *t, sd_tensor *x, float lambda); /* fwd x, bwd -lambda*g */

/* ---- shape ---- */
sd_tensor *sd_concat(sd_tape *t, int n, sd_tensor *const *xs, int dim);   /* any dim: 0 (N), 1 (C), 2 (H), 3 (W) */
sd_tensor *sd_slice(sd_tape *t, sd_tensor *x, int dim, int start, int end); /* [start, end) along dim */
/* Shares x's data; one entry of shape may be -1 (inferred). */
sd_tensor *sd_reshape(sd_tape *t, sd_tensor *x, int ndim, const int *shape);
sd_tensor *sd_pad2d(sd_tape *t, sd_tensor *x, int top, int bottom, int left, int right, bool reflect);
/* Resize to out_h x out_w. Bilinear follows PyTorch's F.interpolate exactly for
 * both align_corners settings (antialias off); nearest uses floor(dst*in/out). */
sd_tensor *sd_resize_bilinear(sd_tape *t, sd_tensor *x, int out_h, int out_w, bool align_corners);
sd_tensor *sd_resize_nearest(sd_tape *t, sd_tensor *x, int out_h, int out_w);
sd_tensor *sd_flip_w(sd_tape *t, sd_tensor *x);                /* horizontal flip */

/* ---- channel-wise ---- */
sd_tensor *sd_softmax(sd_tape *t, sd_tensor *x);               /* over dim 1 */
sd_tensor *sd_log_softmax(sd_tape *t, sd_tensor *x);           /* over dim 1 */

/* ---- reductions and losses (all return a [1] tensor unless said) ---- */
sd_tensor *sd_sum(sd_tape *t, sd_tensor *x);
sd_tensor *sd_mean(sd_tape *t, sd_tensor *x);
/* 2-D cross-entropy of logits [N,C,H,W] against labels [N*H*W] (u8 class
 * indices; `ignore` never counts). Optional class weights [C] as PyTorch's
 * `weight=`: mean = sum(w_y * nll) / sum(w_y) over valid pixels. With no valid
 * pixel the loss is 0 and its gradient 0, never NaN. */
sd_tensor *sd_cross_entropy(sd_tape *t, sd_tensor *logits, const uint8_t *labels,
                            const float *class_weights, int ignore);
/* Same, with a per-pixel weight [N*H*W] (pseudo-label confidence, ROAD-style
 * region weights); loss = sum(pw*w_y*nll) / count of valid pixels. */
sd_tensor *sd_cross_entropy_pixel_weighted(sd_tape *t, sd_tensor *logits, const uint8_t *labels,
                                           const float *pixel_weights, int ignore);
/* Mean BCE-with-logits against a constant target (the adversarial losses). */
sd_tensor *sd_bce_logits_const(sd_tape *t, sd_tensor *x, float target);
sd_tensor *sd_bce_logits(sd_tape *t, sd_tensor *x, sd_tensor *target);  /* target: no gradient */
sd_tensor *sd_mse_const(sd_tape *t, sd_tensor *x, float target);        /* LS-GAN */
sd_tensor *sd_mse(sd_tape *t, sd_tensor *a, sd_tensor *b);/* SUM over elements of smooth-L1(x - target) as PyTorch's
 * F.smooth_l1_loss(..., beta, reduction="sum") (Mask R-CNN's box losses
 * divide it themselves); target gets no gradient; beta > 0. */
sd_tensor *sd_smooth_l1(sd_tape *t, sd_tensor *x, sd_tensor *target, float beta);
/* Per-pixel normalised entropy map [N,1,H,W] of softmax(logits):
 * -sum_c p log p / log C. */
sd_tensor *sd_entropy_map(sd_tape *t, sd_tensor *logits);
/* Self-information map [N,C,H,W]: -p log p / log C (AdvEnt's input to D). */
sd_tensor *sd_self_information(sd_tape *t, sd_tensor *logits);
/* Mean over positions of the L2 norm over channels of a-b (ROAD distillation);
 * a and b have one shape [N,C,H,W]. */
sd_tensor *sd_l2_feature_distance(sd_tape *t, sd_tensor *a, sd_tensor *b);

#endif
