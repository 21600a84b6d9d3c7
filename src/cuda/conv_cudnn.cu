/* conv2d and conv_transpose2d, forward and backward, through cuDNN 9's
 * convolution API: descriptors and algorithms chosen once per shape (and
 * thread) and cached; deterministic algorithms unless sd_cuda_fast_algos.
 * f32 runs on FMA math (no TF32, so results stay comparable to the CPU's);
 * bf16 compute rounds x, w, dy to bf16 and runs tensor-core kernels with f32
 * accumulation. Bias and its gradient use the project's kernels. */
#include <string.h>

#include <cuda_bf16.h>
#include <cudnn.h>

#include "cuda/kernels.cuh"

#define PLAN_CACHE 32

struct conv_plan {
    bool used;
    bool fast;
    sd_conv_geom g;
    cudnnTensorDescriptor_t xd, yd; /* the conv's input side [n,cin,h,w] and output side [n,cout,oh,ow] */
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t m_fwd, m_data, m_filter;
    size_t ws_fwd, ws_data, ws_filter;
};

static thread_local cudnnHandle_t handle;
static thread_local conv_plan plans[PLAN_CACHE];
static thread_local int next_evict;

static bool dnn_ok(cudnnStatus_t s, const char *where)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return true;
    sd_fail(SD_ERR_UNSUPPORTED, "cudnn: %s: %s", where, cudnnGetErrorString(s));
    return false;
}

static void plan_free(conv_plan *p)
{
    if (!p->used)
        return;
    cudnnDestroyTensorDescriptor(p->xd);
    cudnnDestroyTensorDescriptor(p->yd);
    cudnnDestroyFilterDescriptor(p->wd);
    cudnnDestroyConvolutionDescriptor(p->cd);
    p->used = false;
}

/* cuDNN's documented non-deterministic algorithms (the rest are
 * deterministic): backward data ALGO_0, backward filter ALGO_0 and ALGO_3 */
static bool nondet(cudnnConvolutionFwdAlgo_t) { return false; }
static bool nondet(cudnnConvolutionBwdDataAlgo_t a) { return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0; }
static bool nondet(cudnnConvolutionBwdFilterAlgo_t a)
{
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

/* The first algorithm in cuDNN's heuristic ranking that succeeded, is
 * deterministic (unless fast ones are allowed) and accepts the math type:
 * f32 runs on FMA math (entries already on FMA first, then any that take it),
 * bf16 on what the heuristic chose. ws(algo, &bytes) asks the workspace with
 * the math type set; an algorithm it refuses is passed over. */
template <class Perf, class Algo, class Ws>
static bool choose(const Perf *perf, int n, bool fast, bool bf, cudnnConvolutionDescriptor_t cd, Ws ws, Algo *algo,
                   cudnnMathType_t *math, size_t *wsz)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS || (!fast && nondet(perf[i].algo)))
                continue;
            if (!bf && pass == 0 && perf[i].mathType != CUDNN_FMA_MATH)
                continue;
            cudnnMathType_t m = bf ? perf[i].mathType : CUDNN_FMA_MATH;
            size_t bytes = 0;
            if (cudnnSetConvolutionMathType(cd, m) != CUDNN_STATUS_SUCCESS ||
                ws(perf[i].algo, &bytes) != CUDNN_STATUS_SUCCESS)
                continue;
            *algo = perf[i].algo, *math = m, *wsz = bytes;
            return true;
        }
    return false;
}

static conv_plan *plan_get(const sd_conv_geom *g)
{
    if (!handle && !dnn_ok(cudnnCreate(&handle), "cudnnCreate"))
        return NULL;
    for (int i = 0; i < PLAN_CACHE; i++)
        if (plans[i].used && plans[i].fast == sd_cuda_fast_algos && !memcmp(&plans[i].g, g, sizeof *g))
            return &plans[i];
    conv_plan *p = &plans[next_evict];
    next_evict = (next_evict + 1) % PLAN_CACHE;
    plan_free(p);
    memset(p, 0, sizeof *p);
    p->g = *g;
    p->fast = sd_cuda_fast_algos;
    bool bf = g->compute == SD_DTYPE_BF16;
    cudnnDataType_t dt = bf ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    cudnnMathType_t math = bf ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    if (!dnn_ok(cudnnCreateTensorDescriptor(&p->xd), "descriptor"))
        return NULL;
    cudnnCreateTensorDescriptor(&p->yd);
    cudnnCreateFilterDescriptor(&p->wd);
    cudnnCreateConvolutionDescriptor(&p->cd);
    p->used = true;
    int on, oc, ohh, oww;
    bool ok = dnn_ok(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, dt, g->n, g->cin, g->h, g->w), "x") &&
              dnn_ok(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, dt, g->n, g->cout, g->oh, g->ow), "y") &&
              dnn_ok(cudnnSetFilter4dDescriptor(p->wd, dt, CUDNN_TENSOR_NCHW, g->cout, g->cin / g->groups, g->kh,
                                                g->kw),
                     "w") &&
              dnn_ok(cudnnSetConvolution2dDescriptor(p->cd, g->ph, g->pw, g->sh, g->sw, g->dh, g->dw,
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                     "conv") &&
              dnn_ok(cudnnSetConvolutionGroupCount(p->cd, g->groups), "groups") &&
              dnn_ok(cudnnSetConvolutionMathType(p->cd, math), "math") &&
              dnn_ok(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &on, &oc, &ohh, &oww), "output dims");
    if (ok && (on != g->n || oc != g->cout || ohh != g->oh || oww != g->ow)) {
        sd_fail(SD_ERR_SHAPE, "cudnn: conv output %dx%dx%dx%d, the op expects %dx%dx%dx%d", on, oc, ohh, oww, g->n,
                g->cout, g->oh, g->ow);
        ok = false;
    }
    cudnnConvolutionFwdAlgoPerf_t pf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t pd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t pw[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int nf = 0, nd = 0, nw = 0;
    ok = ok &&
         dnn_ok(cudnnGetConvolutionForwardAlgorithm_v7(handle, p->xd, p->wd, p->cd, p->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &nf, pf),
                "forward algorithm") &&
         dnn_ok(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, p->wd, p->yd, p->cd, p->xd,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &nd, pd),
                "backward-data algorithm") &&
         dnn_ok(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, p->xd, p->yd, p->cd, p->wd,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &nw, pw),
                "backward-filter algorithm");
    if (ok) {
        auto ws_f = [p](cudnnConvolutionFwdAlgo_t a, size_t *b) {
            return cudnnGetConvolutionForwardWorkspaceSize(handle, p->xd, p->wd, p->cd, p->yd, a, b);
        };
        auto ws_d = [p](cudnnConvolutionBwdDataAlgo_t a, size_t *b) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, p->wd, p->yd, p->cd, p->xd, a, b);
        };
        auto ws_w = [p](cudnnConvolutionBwdFilterAlgo_t a, size_t *b) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, p->xd, p->yd, p->cd, p->wd, a, b);
        };
        if (!choose(pf, nf, p->fast, bf, p->cd, ws_f, &p->fwd, &p->m_fwd, &p->ws_fwd) ||
            !choose(pd, nd, p->fast, bf, p->cd, ws_d, &p->bwd_data, &p->m_data, &p->ws_data) ||
            !choose(pw, nw, p->fast, bf, p->cd, ws_w, &p->bwd_filter, &p->m_filter, &p->ws_filter)) {
            sd_fail(SD_ERR_UNSUPPORTED,
                    "cudnn: no %salgorithm for conv %dx%dx%dx%d -> %d, %dx%d kernel, groups %d%s",
                    p->fast ? "" : "deterministic ", g->n, g->cin, g->h, g->w, g->cout, g->kh, g->kw, g->groups,
                    bf ? " (bf16)" : "");
            ok = false;
        }
    }
    if (!ok) {
        plan_free(p);
        return NULL;
    }
    return p;
}

/* ---- bf16 conversions ---- */

__global__ static void k_to_bf16(size_t n, const float *x, __nv_bfloat16 *y)
{
    SD_GRID_LOOP(i, n) y[i] = __float2bfloat16(x[i]);
}

__global__ static void k_from_bf16(size_t n, const __nv_bfloat16 *x, float *y, bool acc)
{
    SD_GRID_LOOP(i, n)
    {
        float v = __bfloat162float(x[i]);
        y[i] = acc ? y[i] + v : v;
    }
}

static const void *to_bf16(int slot, const float *x, size_t n)
{
    __nv_bfloat16 *d = (__nv_bfloat16 *)sd_cuda_scratch(slot, (n ? n : 1) * sizeof(__nv_bfloat16));
    if (d)
        SD_LAUNCH(k_to_bf16, n, n, x, d);
    return d;
}

static bool from_bf16(const void *x, float *y, size_t n, bool acc)
{
    SD_LAUNCH(k_from_bf16, n, n, (const __nv_bfloat16 *)x, y, acc);
    return cudaPeekAtLastError() == cudaSuccess;
}

/* The three cuDNN calls, on f32 pointers; with bf16 compute the inputs go
 * through bf16 copies and the result through a bf16 buffer added (acc) or
 * written to out. */
enum { DIR_FWD, DIR_DATA, DIR_FILTER };

static bool run(conv_plan *p, int dir, const float *a, const float *b, float *out, bool acc)
{
    const sd_conv_geom *g = &p->g;
    size_t nx = (size_t)g->n * g->cin * g->h * g->w, ny = (size_t)g->n * g->cout * g->oh * g->ow,
           nw = (size_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
    /* element counts of a, b and out per direction */
    size_t na = dir == DIR_FWD ? nx : dir == DIR_DATA ? nw : nx;
    size_t nb = dir == DIR_FWD ? nw : ny;
    size_t no = dir == DIR_FWD ? ny : dir == DIR_DATA ? nx : nw;
    size_t wsz = dir == DIR_FWD ? p->ws_fwd : dir == DIR_DATA ? p->ws_data : p->ws_filter;
    void *ws = sd_cuda_scratch(SD_CUDA_SCR_WS, wsz ? wsz : 1);
    if (!ws)
        return false;
    bool bf = g->compute == SD_DTYPE_BF16;
    const void *da = a, *db = b;
    void *dout = out;
    if (bf) {
        da = to_bf16(SD_CUDA_SCR_BF0, a, na);
        db = to_bf16(SD_CUDA_SCR_BF1, b, nb);
        dout = sd_cuda_scratch(SD_CUDA_SCR_BF3, (no ? no : 1) * sizeof(__nv_bfloat16));
        if (!da || !db || !dout)
            return false;
    }
    float one = 1.0f, beta = acc && !bf ? 1.0f : 0.0f;
    bool ok;
    switch (dir) {
    case DIR_FWD:
        ok = dnn_ok(cudnnSetConvolutionMathType(p->cd, p->m_fwd), "math") &&
             dnn_ok(cudnnConvolutionForward(handle, &one, p->xd, da, p->wd, db, p->cd, p->fwd, ws, wsz, &beta, p->yd,
                                            dout),
                    "forward");
        break;
    case DIR_DATA:
        ok = dnn_ok(cudnnSetConvolutionMathType(p->cd, p->m_data), "math") &&
             dnn_ok(cudnnConvolutionBackwardData(handle, &one, p->wd, da, p->yd, db, p->cd, p->bwd_data, ws, wsz,
                                                 &beta, p->xd, dout),
                    "backward data");
        break;
    default:
        ok = dnn_ok(cudnnSetConvolutionMathType(p->cd, p->m_filter), "math") &&
             dnn_ok(cudnnConvolutionBackwardFilter(handle, &one, p->xd, da, p->yd, db, p->cd, p->bwd_filter, ws, wsz,
                                                   &beta, p->wd, dout),
                    "backward filter");
        break;
    }
    if (ok && bf)
        ok = from_bf16(dout, out, no, acc);
    return ok;
}

extern "C" {

bool sd_cuda_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    conv_plan *p = plan_get(g);
    if (!p || !run(p, DIR_FWD, x, w, y, false))
        return false;
    if (b)
        sd_cuda_add_bias(g->n, g->cout, g->oh * g->ow, b, y);
    return true;
}

bool sd_cuda_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db)
{
    conv_plan *p = plan_get(g);
    if (!p)
        return false;
    if (dx && !run(p, DIR_DATA, w, dy, dx, true))
        return false;
    if (dw && !run(p, DIR_FILTER, x, dy, dw, true))
        return false;
    if (db)
        sd_cuda_channel_sum_acc(g->n, g->cout, g->oh * g->ow, dy, db);
    return true;
}

/* the adjoint: x is the conv's output side, y its input side */
bool sd_cuda_conv_transpose2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    conv_plan *p = plan_get(g);
    if (!p || !run(p, DIR_DATA, w, x, y, false))
        return false;
    if (b)
        sd_cuda_add_bias(g->n, g->cin, g->h * g->w, b, y);
    return true;
}

bool sd_cuda_conv_transpose2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db)
{
    conv_plan *p = plan_get(g);
    if (!p)
        return false;
    if (dx && !run(p, DIR_FWD, dy, w, dx, true))
        return false;
    if (dw && !run(p, DIR_FILTER, dy, x, dw, true))
        return false;
    if (db)
        sd_cuda_channel_sum_acc(g->n, g->cin, g->h * g->w, dy, db);
    return true;
}

} /* extern "C" */
