/* Tensors, the step arena, the define-by-run autograd tape and parameter
 * groups. Ops live in ops.h; this header holds only the objects they act on.
 *
 * Ownership, in one paragraph: a parameter's data and gradient live in the
 * flat buffers of its sd_params set (one data buffer and one grad buffer per
 * group, so optimisers and checkpoints make one pass / one write); every other
 * tensor of a training step (activations, their gradients, op scratch) lives
 * in the tape's arena and dies at sd_tape_reset. Nothing returned by an op is
 * freed by the caller. */
#ifndef SEGDA_TENSOR_H
#define SEGDA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_MAX_DIMS 4

typedef enum sd_device { SD_DEVICE_CPU = 0, SD_DEVICE_CUDA, SD_DEVICE_COUNT } sd_device;
/* bf16 storage is reserved for mixed precision; every op today takes f32. */
typedef enum sd_dtype { SD_DTYPE_F32 = 0, SD_DTYPE_BF16, SD_DTYPE_COUNT } sd_dtype;

struct sd_node;

typedef struct sd_tensor {
    int ndim;
    int shape[SD_MAX_DIMS];  /* NCHW for images; unused trailing dims are 1 */
    size_t numel;
    sd_dtype dtype;
    sd_device device;
    float *data;             /* [numel], contiguous row-major */
    float *grad;             /* [numel] or NULL: allocated zeroed on first accumulation */
    bool requires_grad;
    struct sd_node *node;    /* the op that made it; NULL for leaves */
    const char *name;        /* parameters only: the PyTorch-style name */
} sd_tensor;

/* ---- arena: bump allocation in chunks, reset per step, chunks kept ---- */
typedef struct sd_arena_chunk sd_arena_chunk;
typedef struct sd_arena {
    sd_arena_chunk *head;
    size_t chunk_size;       /* default chunk size; bigger requests get their own */
    size_t used, peak;       /* bytes handed out since reset, and the high-water mark */
} sd_arena;

void sd_arena_init(sd_arena *a, size_t chunk_size);
void *sd_arena_alloc(sd_arena *a, size_t bytes);  /* 64-byte aligned, uninitialised; NULL + message on OOM */
void *sd_arena_calloc(sd_arena *a, size_t bytes);
void sd_arena_reset(sd_arena *a);
void sd_arena_free(sd_arena *a);

/* ---- the tape ---- */
typedef void (*sd_backward_fn)(struct sd_node *n);

typedef struct sd_node {
    const char *op;              /* "conv2d", ... for messages and debugging */
    sd_backward_fn backward;     /* accumulates out->grad into in[i]->grad (+=) */
    sd_tensor *out;
    sd_tensor *in[4];
    int n_in;
    unsigned wants;              /* bit i: in[i] required grad when the op was recorded; freezing
                                  * or unfreezing afterwards does not change what this node feeds */
    void *saved;                 /* op-specific state, allocated in the arena */
} sd_node;

typedef struct sd_tape {
    sd_arena arena;
    sd_node **nodes;
    int n_nodes, cap_nodes;
    int no_grad;                 /* > 0: ops record nothing */
    bool training;               /* dropout / batch-norm statistics mode */
    sd_dtype compute;            /* dtype convolutions compute in (SD_DTYPE_F32 default; BF16:
                                  * bf16 inputs, f32 accumulation and f32 outputs) */
    sd_rng rng;                  /* dropout and other stochastic ops */
    sd_status status;            /* first failure since reset (SD_OK if none) */
} sd_tape;

sd_status sd_tape_init(sd_tape *t, uint64_t seed);
void sd_tape_free(sd_tape *t);
/* Forgets every node and activation of the step; parameters are untouched. */
void sd_tape_reset(sd_tape *t);
void sd_tape_no_grad_begin(sd_tape *t);
void sd_tape_no_grad_end(sd_tape *t);

/* Seeds d(loss_i)/d(loss_i) = weight_i for each scalar loss and walks the tape
 * once in reverse, accumulating into every tensor that requires grad.
 * Activation gradients are cleared afterwards, so a later backward over other
 * losses of the same tape (e.g. the discriminator's) starts clean; parameter
 * gradients keep accumulating until sd_params_zero_grad. */
sd_status sd_backward(sd_tape *t, int n_losses, sd_tensor *const *losses, const float *weights);
static inline sd_status sd_backward1(sd_tape *t, sd_tensor *loss)
{
    return sd_backward(t, 1, &loss, NULL);
}

/* ---- tensors made on the tape ---- */
sd_tensor *sd_tensor_new(sd_tape *t, int ndim, const int *shape);        /* uninitialised */
sd_tensor *sd_tensor_zeros(sd_tape *t, int ndim, const int *shape);
sd_tensor *sd_tensor_new4(sd_tape *t, int n, int c, int h, int w);      /* uninitialised */
/* Wraps caller-owned memory (e.g. a batch) as a leaf without gradient. */
sd_tensor *sd_tensor_wrap(sd_tape *t, int ndim, const int *shape, float *data);
/* Shape as text for messages: "[2,3,65,65]"; returns a per-thread buffer slot. */
const char *sd_shape_str(const sd_tensor *x);
bool sd_shape_eq(const sd_tensor *a, const sd_tensor *b);
float *sd_tensor_grad(sd_tape *t, sd_tensor *x);  /* the grad buffer, allocated zeroed if absent */

/* Helpers for op implementations (src/core/ops_*.c). */
bool sd_tape_wants_grad(const sd_tape *t, int n, sd_tensor *const *in);
sd_node *sd_tape_record(sd_tape *t, const char *op, sd_backward_fn bw, sd_tensor *out,
                        int n_in, sd_tensor *const *in);
/* in[k]'s gradient buffer if in[k] required grad when n was recorded, else NULL:
 * what every backward accumulates into. */
static inline float *sd_node_grad(const sd_node *n, int k)
{
    return (n->wants >> k) & 1u ? n->in[k]->grad : NULL;
}
/* Records a failure on the tape (the first one wins) and returns NULL, so
 * `return sd_tape_fail(t, SD_ERR_SHAPE, "conv2d: ...")` ends an op. Ops given
 * a NULL input return NULL at once, keeping the first message. */
sd_tensor *sd_tape_fail(sd_tape *t, sd_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- parameters ---- */
/* Groups split a model's parameters by how they train: DeepLab's backbone
 * (lr x1) and classifier (lr x10), a discriminator with its own optimiser,
 * batch-norm running statistics (buffers, never trained). */
typedef struct sd_param_group {
    char name[32];
    float lr_mult;             /* multiplies the schedule's learning rate */
    float wd_mult;             /* multiplies weight decay (0 for buffers) */
    bool frozen;               /* parameters of a frozen group do not require grad */
    bool is_buffer;            /* running statistics: saved, never optimised */
    size_t numel;
    float *data;               /* [numel] flat buffer; params point into it */
    float *grad;               /* [numel] or NULL for buffers */
} sd_param_group;

typedef struct sd_params {
    int n_groups;
    sd_param_group groups[8];
    int n, cap;
    sd_tensor **tensors;       /* [n] parameter tensors, in declaration order (stable pointers) */
    int *group_of;             /* [n] group index of each tensor */
    bool allocated;
} sd_params;

void sd_params_init(sd_params *p);
void sd_params_free(sd_params *p);
int sd_params_add_group(sd_params *p, const char *name, float lr_mult, float wd_mult, bool is_buffer);
/* Declares a parameter; its data pointer is valid only after sd_params_alloc
 * (the tensor pointer itself is stable). The name is copied. Returns NULL +
 * message on a duplicate name. */
sd_tensor *sd_params_declare(sd_params *p, int group, const char *name, int ndim, const int *shape);
sd_status sd_params_alloc(sd_params *p);   /* lays out the flat buffers, data zeroed */
sd_tensor *sd_params_find(sd_params *p, const char *name);
void sd_params_zero_grad(sd_params *p);
void sd_params_set_frozen(sd_params *p, int group, bool frozen);
size_t sd_params_count(const sd_params *p, bool trainable_only);

#endif
