/* ONNX export of a segmentation model (src/nn/onnx.c). */
#ifndef SEGDA_ONNX_H
#define SEGDA_ONNX_H

#include "segda/model.h"

/* Writes m as an ONNX model (opset 13, IR 7) for a fixed input of w x h:
 * graph input "input" [1, 3, h, w], the image normalised as `norm` says
 * (also in the metadata as segda.norm, with segda.model); output "logits",
 * the network's main output as sd_model_forward computes it in eval mode
 * (running BN statistics). Conv, BatchNormalization, Relu, MaxPool,
 * AveragePool, GlobalAveragePool, Resize, Pad, Concat, Add, ... An op with
 * no ONNX counterpart (or adaptive pooling with unequal windows at this
 * size) fails with SD_ERR_ARG naming the node, its op and its shape. The
 * file appears only when complete. */
sd_status sd_model_export_onnx(sd_model *m, sd_norm norm, int w, int h, const char *path);

#endif
