/* Tensors, the step arena, the define-by-run autograd tape and parameter
 * groups. Ops live in ops.h; this header holds only the objects they act on.
 *
 * Ownership, in one paragraph: a tensor's bytes belong to its device's
 * backend (allocated, freed and copied by it); code outside the ops reaches
 * them only through sd_tensor_to_host / sd_tensor_from_host (or, on the CPU,
 * sd_tensor_host). A parameter's data and gradient live in the flat buffers
 * of its sd_params set (one data buffer and one grad buffer per group, so
 * optimisers and checkpoints make one pass / one write); every other tensor
 * of a training step (activations, their gradients, op scratch) lives in the
 * tape's storage arena and dies at sd_tape_reset, or earlier under no_grad
 * when sd_tensor_release hands it back. Nothing returned by an op is freed by
 * the caller. */
#ifndef SEGDA_TENSOR_H
#define SEGDA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_MAX_DIMS 4

typedef enum sd_device { SD_DEVICE_CPU = 0, SD_DEVICE_CUDA, SD_DEVICE_COUNT } sd_device;
/* Storage and compute dtypes. Stored tensors are f32 on the CPU backend
 * (master weights, gradients, optimiser state and activations); bf16 is the
 * compute dtype of convolutions under --precision bf16 (sd_tape.compute);
 * f16 is reserved. */
typedef enum sd_dtype { SD_DTYPE_F32 = 0, SD_DTYPE_BF16, SD_DTYPE_F16, SD_DTYPE_COUNT } sd_dtype;
size_t sd_dtype_size(sd_dtype d);

struct sd_node;

typedef struct sd_tensor {
    int ndim;
    int shape[SD_MAX_DIMS];  /* NCHW for images; unused trailing dims are 1 */
    size_t numel;
    sd_dtype dtype;
    sd_device device;
    void *data;              /* [numel] of dtype on device, contiguous row-major; owned by the
                              * device's backend: host code copies (sd_tensor_to_host) */
    void *grad;              /* [numel] f32 on device, or NULL: allocated zeroed on first accumulation */
    bool requires_grad;
    bool owned;              /* its storage is the tape's (not a parameter's or a wrapped buffer) */
    bool released;           /* its storage went back to the arena (sd_tensor_release) */
    struct sd_node *node;    /* the op that made it; NULL for leaves */
    const char *name;        /* parameters only: the PyTorch-style name */
} sd_tensor;

/* ---- arena: bump allocation in chunks, reset per step, chunks kept ---- */
typedef struct sd_arena_chunk sd_arena_chunk;
typedef struct sd_arena_block { void *p; size_t bytes; } sd_arena_block;
typedef struct sd_arena {
    sd_arena_chunk *head;
    size_t chunk_size;       /* default chunk size; bigger requests get their own */
    size_t used, peak;       /* bytes live since reset, and the high-water mark */
    size_t held;             /* bytes of the chunks it holds (what it costs in memory) */
    sd_device device;        /* whose backend allocates the chunks */
    sd_arena_block *freed;   /* free blocks below the chunks' tops (sd_arena_give_back), reused best-fit */
    int n_freed, cap_freed;
} sd_arena;

/* Host memory (chunk_size 0: 64 MiB chunks). */
void sd_arena_init(sd_arena *a, size_t chunk_size);
/* Chunks from dev's backend: tensor storage of a tape on that device. */
void sd_arena_init_on(sd_arena *a, size_t chunk_size, sd_device dev);
void *sd_arena_alloc(sd_arena *a, size_t bytes);  /* 64-byte aligned, uninitialised; NULL + message on OOM */
void *sd_arena_calloc(sd_arena *a, size_t bytes);
/* Returns a block of this arena before the reset, for later allocations
 * (merged with free neighbours; no_grad inference keeps memory flat this way). */
void sd_arena_give_back(sd_arena *a, void *p, size_t bytes);
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
    sd_arena arena;              /* host: nodes, saved op state, tensor headers */
    sd_arena store;              /* on device: tensor data, gradients and kernel scratch */
    sd_device device;            /* where the tape's tensors live */
    sd_node **nodes;
    int n_nodes, cap_nodes;
    int no_grad;                 /* > 0: ops record nothing */
    bool training;               /* dropout / batch-norm statistics mode */
    sd_dtype compute;            /* dtype convolutions compute in (SD_DTYPE_F32 default; BF16:
                                  * bf16 inputs, f32 accumulation and f32 outputs) */
    sd_rng rng;                  /* dropout and other stochastic ops */
    sd_status status;            /* first failure since reset (SD_OK if none) */
} sd_tape;

/* The compute dtype new tapes take (--precision): f32 (the default) or bf16.
 * bf16 where the CPU cannot compute it natively is SD_ERR_UNSUPPORTED with a
 * message saying so, and the precision stays f32, unless emulate: then the
 * convolutions round their inputs to bf16 and run the f32 kernels (bf16's
 * numbers without its speed, to measure its accuracy on any CPU). */
sd_status sd_set_precision(sd_dtype d, bool emulate);
sd_dtype sd_precision(void);
/* "f32", "bf16" or "bf16-emulated" (*emulate set) -> dtype; anything else
 * SD_ERR_ARG naming what is accepted. */
sd_status sd_dtype_parse(const char *s, sd_dtype *out, bool *emulate);
const char *sd_dtype_name(sd_dtype d);
const char *sd_device_name(sd_device d);
/* The backends this build has: "cpu" or "cpu cuda". */
const char *sd_backends_built(void);
/* Lines on the devices found: the CPU's model and threads; each CUDA device
 * with its memory, or "no CUDA device" (and why). Returns the length. */
size_t sd_devices_describe(char *buf, size_t cap);
/* Why dev cannot hold tensors here ("" when it can): "this build has no cuda
 * backend" or "no CUDA device (...)". */
const char *sd_device_unavailable(sd_device dev);
/* "cpu", "cuda" or "cuda:N" (--device) -> device and index (0 for cpu and
 * plain cuda); anything else SD_ERR_ARG naming what is accepted. */
sd_status sd_device_parse(const char *s, sd_device *dev, int *index);
/* Chooses the device a run's tensors go to (sd_device_selected): fails with
 * SD_ERR_UNSUPPORTED naming the device and what was found ("no CUDA device:
 * segda devices lists none (...)") when it is absent or the index is out of
 * range; on CUDA it makes device N current for this process. */
sd_status sd_device_select(sd_device dev, int index);
sd_device sd_device_selected(void);   /* SD_DEVICE_CPU until a select */
int sd_device_count(sd_device dev);   /* devices of that kind found (cpu: 1) */
int sd_device_selected_index(void);
/* Lets GPU convolutions use non-deterministic, faster cuDNN algorithms
 * (default off: results are the same run after run); a no-op without CUDA. */
void sd_set_nondeterministic_convs(bool on);

sd_status sd_tape_init(sd_tape *t, uint64_t seed);                 /* CPU */
sd_status sd_tape_init_on(sd_tape *t, uint64_t seed, sd_device dev);
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
/* Wraps caller-owned host memory (e.g. a batch) as a leaf without gradient:
 * zero-copy on a CPU tape; on another device a copy in the tape's storage. */
sd_tensor *sd_tensor_wrap(sd_tape *t, int ndim, const int *shape, float *data);
/* A leaf without gradient over storage the caller owns on the tape's device
 * (it must outlive the tensor's use): the trainer's staged inputs. */
sd_tensor *sd_tensor_wrap_device(sd_tape *t, int ndim, const int *shape, void *device_data);
/* Device scratch for an op's kernels, alive until the reset (NULL + tape failed). */
void *sd_tape_scratch(sd_tape *t, size_t bytes, const char *op);
/* Under no_grad, hands x's storage back for reuse by later tensors of the
 * step: call it when x has no further consumer (layer code does, block by
 * block, so inference memory does not grow with depth). Outside no_grad, or
 * for leaves and parameters, it does nothing: the tape may still need x. */
void sd_tensor_release(sd_tape *t, sd_tensor *x);

/* ---- host access: explicit copies, converting the dtype to/from f32 ---- */
sd_status sd_tensor_to_host(const sd_tensor *x, float *dst);          /* numel floats */
sd_status sd_tensor_from_host(sd_tensor *x, const float *src);
sd_status sd_tensor_grad_to_host(const sd_tensor *x, float *dst);     /* zeros when no grad */
float sd_tensor_item(const sd_tensor *x);                             /* element 0 (a loss), NAN on error */
/* The data as a host f32 pointer when x is an f32 CPU tensor, else NULL:
 * for the CPU-only paths (data loading, tests) that would copy for nothing. */
float *sd_tensor_host(const sd_tensor *x);
float *sd_tensor_host_grad(const sd_tensor *x);
/* x's values as host f32: sd_tensor_host(x) on the CPU, else a copy in t's
 * host arena, valid until sd_tape_reset (NULL + tape failed on error): for
 * the host-side steps of methods (pseudo-labels, masks) on any device. */
float *sd_tensor_host_view(sd_tape *t, const sd_tensor *x);
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
    return (n->wants >> k) & 1u ? (float *)n->in[k]->grad : NULL; /* cast: also read by C++ (src/cuda) */
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
    float *data;               /* [numel] f32 flat buffer on the params' device; params point into it */
    float *grad;               /* [numel] or NULL for buffers */
} sd_param_group;

typedef struct sd_params {
    int n_groups;
    sd_param_group groups[8];
    int n, cap;
    sd_tensor **tensors;       /* [n] parameter tensors, in declaration order (stable pointers) */
    int *group_of;             /* [n] group index of each tensor */
    bool allocated;
    sd_device device;          /* whose backend owns the group buffers (CPU by default) */
} sd_params;

void sd_params_init(sd_params *p);
void sd_params_free(sd_params *p);
int sd_params_add_group(sd_params *p, const char *name, float lr_mult, float wd_mult, bool is_buffer);
/* Declares a parameter; its data pointer is valid only after sd_params_alloc
 * (the tensor pointer itself is stable). The name is copied. Returns NULL +
 * message on a duplicate name. */
sd_tensor *sd_params_declare(sd_params *p, int group, const char *name, int ndim, const int *shape);
sd_status sd_params_alloc(sd_params *p);   /* lays out the flat buffers, data zeroed */
/* Moves the group buffers (data, grads; values kept) to dev's backend and
 * repoints the tensors; a no-op when they are there already. Models are
 * built and initialised on the CPU, then moved (--device). */
sd_status sd_params_to_device(sd_params *p, sd_device dev);
/* dst's values := src's, group by group (same groups and sizes: a copy of
 * one model's parameters into another, e.g. a teacher), across devices. */
sd_status sd_params_copy_values(sd_params *dst, const sd_params *src);
sd_tensor *sd_params_find(sd_params *p, const char *name);
void sd_params_zero_grad(sd_params *p);
void sd_params_set_frozen(sd_params *p, int group, bool frozen);
size_t sd_params_count(const sd_params *p, bool trainable_only);

#endif
