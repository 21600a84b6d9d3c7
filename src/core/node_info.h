/* What a recorded node ran with, for code that reads a tape as a graph
 * (the ONNX export, src/nn/onnx.c). Each function is defined beside its
 * op in src/core/ops_*.c, where the node's saved state is private, and
 * returns NULL/false for a node of another op. */
#ifndef SEGDA_CORE_NODE_INFO_H
#define SEGDA_CORE_NODE_INFO_H

#include "core/backend.h"
#include "segda/tensor.h"

/* conv2d */
const sd_conv_geom *sd_node_conv_geom(const sd_node *n);
/* conv2d_fused: its geometry, the per-channel scale the frozen BN folded to
 * (NULL: none) and the shift added after it (BN and bias folded; NULL: none),
 * its activation (sd_act) and LeakyReLU slope; in[3] is the residual or NULL */
bool sd_node_conv_fused(const sd_node *n, const sd_conv_geom **g, const float **scale, const float **shift,
                        int *act, float *slope);
/* max_pool2d, avg_pool2d, adaptive_avg_pool2d */
const sd_pool_geom *sd_node_pool_geom(const sd_node *n);
/* batch_norm: the per-channel mean and 1/sqrt(var + eps) it normalised
 * with [channels], and whether they came from the batch (training) */
bool sd_node_norm_stats(const sd_node *n, const float **mean, const float **invstd, bool *batch_stats);
/* resize_bilinear: align_corners; pad2d: reflect (pads: top, bottom,
 * left, right) */
bool sd_node_resize_info(const sd_node *n, bool *flag, int pads[4]);
/* concat: the dimension */
bool sd_node_concat_dim(const sd_node *n, int *dim);

#endif
