/* Checkpoints: parameter sets, extra named tensors (optimiser state) and
 * string metadata in one safetensors file, written atomically (PATH.tmp,
 * fsync, rename, fsync of the directory). Loading matches tensors to
 * parameters by name and reports every missing, unexpected or mis-shaped one.
 *
 * Names: the model's tensors carry no prefix, so a checkpoint's model part is
 * itself a PyTorch-style state dict. Every other set lives in a namespace,
 * a prefix ending in ':' ("disc:", "disc_aux:", "opt:"); model parameter
 * names never contain ':'. A load reports unexpected tensors only within the
 * namespaces it was asked to load, so predict can read a training checkpoint
 * that also holds discriminators without complaint. */
#ifndef SEGDA_CHECKPOINT_H
#define SEGDA_CHECKPOINT_H

#include <stdbool.h>

#include "segda/model.h"
#include "segda/optim.h"
#include "segda/safetensors.h"
#include "segda/tensor.h"

/* Metadata keys segda writes and reads. */
#define SD_META_MODEL "model"            /* "deeplabv2-resnet101" */
#define SD_META_CLASSES "classes"        /* "19" */
#define SD_META_NORM "norm"              /* "caffe" | "imagenet" */
#define SD_META_AUX "aux"                /* "0" | "1" */
#define SD_META_ASPP2 "aspp_two_branch"  /* "0" | "1" */
#define SD_META_OS "output_stride"       /* "8" | "16" | "0" */
#define SD_META_ITER "iteration"
#define SD_META_METHOD "method"
#define SD_META_CONFIG "config"          /* the training config, as text */
#define SD_META_FORMAT "format"          /* "segda" for files segda wrote; "pt" for converted ones */
#define SD_META_DET_MIN_SIZE "det_min_size" /* detector input: short side */
#define SD_META_DET_MAX_SIZE "det_max_size" /* detector input: long side at most */
#define SD_META_DET_ANCHOR "det_anchor_size" /* detector anchors on P2 (doubling per level) */
#define SD_META_DET_BN "det_bn"              /* detector backbone BN in training: frozen or train */

/* ---- writing ---- */
typedef struct sd_ckpt_writer {
    int n, cap;
    sd_st_entry *entries;
    char **names;              /* owned copies of the full names */
    int n_meta, cap_meta;
    char **keys, **values;
    int n_copies;
    float **copies;            /* host copies of device tensors (--device cuda), freed with the writer */
} sd_ckpt_writer;

void sd_ckpt_writer_init(sd_ckpt_writer *w);
void sd_ckpt_writer_free(sd_ckpt_writer *w);
/* Adds every tensor of p (trainable, frozen and buffers) as prefix+name.
 * prefix: "" for the model, else a namespace ending in ':'. CPU data is read
 * at save time, not copied now; a device's is copied to the host now, so the
 * file is the same whatever device wrote it (and loads on any). */
sd_status sd_ckpt_writer_add_params(sd_ckpt_writer *w, const char *prefix, const sd_params *p);
/* An extra tensor (optimiser state, ...): name should carry a namespace. */
sd_status sd_ckpt_writer_add_tensor(sd_ckpt_writer *w, const char *name, int ndim, const int *shape,
                                    const float *data);
sd_status sd_ckpt_writer_set_meta(sd_ckpt_writer *w, const char *key, const char *value);
/* An optimiser's state, so that a resumed run continues it exactly: each
 * state buffer as a 1-D tensor ns+"<group>.<slot>" (sd_optim_state_at) and
 * the per-group step counts as metadata steps_key ("12,12,0"). ns is a
 * namespace or a sub-prefix inside one ("opt:", "opt:disc."). Data is read
 * at save time. */
sd_status sd_ckpt_writer_add_optim(sd_ckpt_writer *w, sd_optim *o, const char *ns, const char *steps_key);
sd_status sd_ckpt_writer_save(sd_ckpt_writer *w, const char *path);

/* ---- reading ---- */
typedef struct sd_ckpt {
    sd_st_file st;
    bool *used;                /* [st.n] matched by a load */
} sd_ckpt;

sd_status sd_ckpt_open(const char *path, sd_ckpt *c);
void sd_ckpt_close(sd_ckpt *c);
const char *sd_ckpt_meta(const sd_ckpt *c, const char *key);   /* NULL if absent */

typedef struct sd_ckpt_report {
    int missing, unexpected, mismatched, loaded;
} sd_ckpt_report;

/* Copies every tensor prefix+name of the file into p's parameter `name`
 * (converting F16/BF16/F64 to f32). A file name may also carry a "module."
 * prefix (DataParallel) after the namespace. Each missing, unexpected (in the
 * same namespace) or mis-shaped tensor is logged as a warning naming it;
 * "num_batches_tracked" tensors are ignored. strict: any of them fails the
 * load (the message names the first and counts the rest). rep may be NULL. */
sd_status sd_ckpt_load_params(sd_ckpt *c, const char *prefix, sd_params *p, bool strict, sd_ckpt_report *rep);
/* Every load refuses a non-finite weight (SD_ERR_NUMERIC naming the tensor). */
/* A network's weights (no namespace) for --init: a file whose metadata names
 * another model than `model` (NULL: any), or with mis-shaped tensors, is
 * SD_ERR_DATA naming the model or the first few tensors; missing and
 * unexpected tensors are warnings. partial: loads what fits, whatever the
 * model name, and says how many were skipped. rep may be NULL. */
sd_status sd_ckpt_load_weights(sd_ckpt *c, sd_params *p, const char *model, bool partial, sd_ckpt_report *rep);
/* Reads one extra tensor into dst[numel]; SD_ERR_DATA naming it when absent
 * or of another size. */
sd_status sd_ckpt_read_tensor(sd_ckpt *c, const char *name, size_t numel, float *dst);
bool sd_ckpt_has(const sd_ckpt *c, const char *name);
/* Reads back into o (built on the same parameter set) what
 * sd_ckpt_writer_add_optim wrote with the same ns and steps_key. SD_ERR_DATA
 * naming the file and the tensor or metadata key that is missing, mis-sized
 * or malformed. */
sd_status sd_ckpt_read_optim(sd_ckpt *c, sd_optim *o, const char *ns, const char *steps_key);

/* ---- models (src/nn/model_io.c) ---- */
/* Adds the model's tensors (no namespace) and the metadata that rebuilds it:
 * model, classes, aux, aspp_two_branch, output_stride, norm, format. */
sd_status sd_ckpt_writer_add_model(sd_ckpt_writer *w, sd_model *m, sd_norm norm);
/* Model options and normalisation from a checkpoint's metadata. Where keys
 * are absent (converted or foreign files) they are inferred from the tensors:
 * classes from the classifier's shape, aux from layer6/aux_classifier/aux
 * tensors, two-branch ASPP from a missing third branch, norm from the model's
 * default. o->name points into c (valid while c is open). */
sd_status sd_ckpt_model_opts(const sd_ckpt *c, sd_model_opts *o, sd_norm *norm);
/* Opens path, builds the model it describes and loads its weights (strict:
 * any missing/unexpected/mis-shaped tensor fails; otherwise mis-shaped ones
 * still do, naming the first few, and missing/unexpected are warnings).
 * Non-finite weights fail naming the tensor. norm may be NULL. The model
 * ends on sd_device_selected() (--device; the CPU unless selected). */
sd_status sd_model_load(const char *path, bool strict, sd_model **out, sd_norm *norm);
/* Writes the model alone (for predict/eval), atomically. */
sd_status sd_model_save(sd_model *m, sd_norm norm, const char *path);

#endif
