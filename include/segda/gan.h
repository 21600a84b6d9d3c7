/* Image-to-image translation networks: CycleGAN's ResNet generator and the
 * 70x70 PatchGAN discriminator (Zhu et al. 2017, junyanz/pytorch-CycleGAN-
 * and-pix2pix with norm 'instance', no dropout), their checkpoints, and the
 * bridge between the generators' image convention (RGB in [-1, 1]) and a
 * segmentation network's input normalisation (norm.h). Training recipes are
 * in src/da/taskgan.c; segmentation networks in model.h.
 *
 * Parameter names are CycleGAN's nn.Sequential indices ("model.1.weight",
 * "model.10.conv_block.1.weight", ...), so a published latest_net_G.pth
 * converted to safetensors loads by name. */
#ifndef SEGDA_GAN_H
#define SEGDA_GAN_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/norm.h"
#include "segda/tensor.h"

/* ---- ResNet generator ----
 * ReflectionPad 3, 7x7 conv in_ch->ngf, IN, ReLU; two 3x3 stride-2 convs
 * (ngf->2ngf->4ngf) with IN+ReLU; n_blocks residual blocks (reflect pad 1,
 * 3x3 conv, IN, ReLU, reflect pad 1, 3x3 conv, IN, + skip); two 3x3
 * stride-2 transposed convs (padding 1, output padding 1) with IN+ReLU;
 * ReflectionPad 3, 7x7 conv ngf->out_ch, tanh. Every conv has a bias
 * (CycleGAN's use_bias with instance norm); IN has no affine parameters and
 * no running statistics (InstanceNorm2d's defaults), eps 1e-5.
 * Output size: 4*ceil(ceil(H/2)/2) (H itself when H is a multiple of 4). */
typedef struct sd_gen_opts {
    int in_ch, out_ch;   /* 3, 3 */
    int ngf;             /* 64 */
    int n_blocks;        /* 9 (CycleGAN's resnet_9blocks); 6 is resnet_6blocks */
} sd_gen_opts;
sd_gen_opts sd_gen_opts_default(void);

/* The smallest input side the generator accepts: its residual blocks
 * reflect-pad a map of ceil(ceil(H/2)/2) by 1, which needs at least 2. */
#define SD_GEN_MIN_SIZE 5

typedef struct sd_gen sd_gen;
sd_status sd_gen_create(const sd_gen_opts *o, sd_gen **out);
void sd_gen_free(sd_gen *g);
/* CycleGAN's init_weights('normal', 0.02): conv weights N(0, 0.02), biases 0. */
void sd_gen_init_weights(sd_gen *g, uint64_t seed);
/* x [N, in_ch, H, W] in [-1, 1] -> [N, out_ch, H', W'] in (-1, 1). H, W below
 * SD_GEN_MIN_SIZE: SD_ERR_SHAPE naming the shape and the minimum. */
sd_tensor *sd_gen_forward(sd_gen *g, sd_tape *t, sd_tensor *x);
sd_params *sd_gen_params(sd_gen *g);
const sd_gen_opts *sd_gen_options(const sd_gen *g);

/* ---- PatchGAN discriminator ----
 * n_layers = 3 gives the 70x70 receptive field: 4x4 convs with stride
 * 2, 2, 2, 1, 1 and padding 1, widths in_ch->ndf->2ndf->4ndf->8ndf->1,
 * LeakyReLU 0.2 after all but the last, IN on all but the first and last.
 * Output: one raw score per patch (LSGAN takes no sigmoid). */
typedef struct sd_patchgan_opts {
    int in_ch;           /* 3 */
    int ndf;             /* 64 */
    int n_layers;        /* 3 */
} sd_patchgan_opts;
sd_patchgan_opts sd_patchgan_opts_default(void);

typedef struct sd_patchgan sd_patchgan;
sd_status sd_patchgan_create(const sd_patchgan_opts *o, sd_patchgan **out);
void sd_patchgan_free(sd_patchgan *d);
void sd_patchgan_init_weights(sd_patchgan *d, uint64_t seed);   /* as the generator's */
/* Inputs too small to leave one patch: SD_ERR_SHAPE naming the minimum. */
sd_tensor *sd_patchgan_forward(sd_patchgan *d, sd_tape *t, sd_tensor *x);
sd_params *sd_patchgan_params(sd_patchgan *d);
/* The smallest square input side that leaves at least one patch. */
int sd_patchgan_min_size(const sd_patchgan_opts *o);

/* ---- checkpoints ----
 * A generator file holds the tensors under their CycleGAN names and the
 * metadata format "segda", kind "generator", ngf, n_blocks. */
sd_status sd_gen_save(sd_gen *g, const char *path);
/* Builds the generator a file describes (ngf from model.1.weight, the block
 * count from the model.K.conv_block tensors where metadata is absent, as in
 * converted CycleGAN files) and loads it strictly. The tensors are looked
 * for without a namespace, then under "gen_s:" (a taskgan run's
 * last.safetensors). A segmentation network's checkpoint, or any file
 * without the generator's tensors, is SD_ERR_FORMAT naming the file and
 * what was expected. The generator ends on sd_device_selected(). */
sd_status sd_gen_load(const char *path, sd_gen **out);
/* Whether an open safetensors file looks like a generator: holds
 * "model.1.weight" (4-D) under the namespace prefix ("" or "gen_s:"). */
struct sd_ckpt;
bool sd_ckpt_is_generator(const struct sd_ckpt *c, const char *prefix);

/* ---- images between conventions ----
 * The generators see RGB scaled to [-1, 1] (CycleGAN's Normalize(0.5, 0.5));
 * a segmentation network sees its own normalisation (Caffe BGR minus mean,
 * or torchvision's). Both maps are per-channel affine (with the channel
 * order swapped for Caffe) and differentiable, so a task loss on the
 * segmentation network reaches the generator. */
sd_tensor *sd_gen_to_norm(sd_tape *t, sd_tensor *y, sd_norm norm);    /* [-1, 1] RGB -> normalised */
sd_tensor *sd_gen_from_norm(sd_tape *t, sd_tensor *x, sd_norm norm);  /* normalised -> [-1, 1] RGB */

/* Translates one 8-bit image (px [h][w][c], c = 1/2 grey, 3 RGB, 4 RGBA; grey
 * repeated, alpha dropped) through g into out [h][w][3] RGB: the image is reflect-padded to a multiple of 4 so the
 * output covers it exactly, then cropped back. Sides below 8 are
 * SD_ERR_SHAPE naming the size and the minimum. Runs under no_grad on t,
 * resetting it. */
sd_status sd_gen_translate_rgb(sd_gen *g, sd_tape *t, const uint8_t *px, int w, int h, int c, uint8_t *out);
/* The same on a normalised network input x [N, 3, H, W] (norm): returns
 * G(x) in the same normalisation and size, for `eval/predict --translate`
 * and taskgan's evaluation. */
sd_tensor *sd_gen_translate_norm(sd_gen *g, sd_tape *t, sd_tensor *x, sd_norm norm);
#define SD_GEN_MIN_IMAGE 8

#endif
