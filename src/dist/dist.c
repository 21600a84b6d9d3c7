/* The MPI glue of data-parallel runs (dist.h): the only file that includes
 * mpi.h. Sums go through rank 0 in rank order so that the result's bits
 * never depend on MPI's choice of reduction algorithm; a single process, or
 * a build without MPI (SD_HAVE_MPI unset), makes every call a no-op.
 * Not here: which buffers a run reduces (src/train/loop.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "segda/dist.h"
#ifdef SD_HAVE_NCCL
#include "cuda/nccl_glue.h"   /* (plain C: the CUDA and NCCL headers stay in src/cuda) */
static bool g_nccl;           /* the NCCL communicator is up: CUDA buffers are summed by NCCL */
#endif

#ifdef SD_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 0;
#ifdef SD_HAVE_MPI
static bool g_active;   /* MPI_Init was called by us */
static bool g_broken;   /* a wait timed out: requests are left pending, finalize would hang */
static double g_timeout = 600;  /* seconds a rank waits for the others (SEGDA_DIST_TIMEOUT) */
#define SUM_TAG 0x5d
#define TIMED_OUT (-1)
/* SEGDA_DIST_STATS=1: each rank prints at exit how many collectives of each
 * kind it made and how long it waited in them (wall seconds), to see what a
 * data-parallel step spends on communication. */
enum { ST_SUM_F32, ST_SUM_F64, ST_SUM_U64, ST_AGREE, ST_ANY, ST_BCAST, ST_BARRIER, ST_KINDS };
static const char *const st_name[ST_KINDS] = {"sum f32", "sum f64", "sum u64", "agree", "any", "bcast", "barrier"};
static struct { long calls, waits; double bytes, wait_s; } g_st[ST_KINDS];
static int g_kind;           /* the kind the waits in progress count towards */
static bool g_stats;
static double g_t_init;
#define COUNT(KIND, BYTES) (g_kind = (KIND), g_st[KIND].calls++, g_st[KIND].bytes += (double)(BYTES))
#endif

bool sd_dist_compiled(void)
{
#ifdef SD_HAVE_MPI
    return true;
#else
    return false;
#endif
}

const char *sd_dist_describe(void)
{
#ifdef SD_HAVE_MPI
    static char buf[128];
    if (!buf[0]) {
#if defined(OMPI_MAJOR_VERSION)
        int k = snprintf(buf, sizeof buf, "MPI: Open MPI %d.%d.%d (MPI %d.%d)", OMPI_MAJOR_VERSION,
                         OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION, MPI_VERSION, MPI_SUBVERSION);
#else
        int k = snprintf(buf, sizeof buf, "MPI: MPI %d.%d", MPI_VERSION, MPI_SUBVERSION);
#endif
#ifdef SD_HAVE_NCCL
        snprintf(buf + k, sizeof buf - (size_t)k, ", %s", sd_nccl_version());
#else
        (void)k;
#endif
    }
    return buf;
#else
    return "built without MPI";
#endif
}

int sd_dist_rank(void) { return g_rank; }
int sd_dist_size(void) { return g_size; }

#ifdef SD_HAVE_MPI

/* Launchers export these to every process they start (Open MPI, PMI, PMIx). */
static bool launched_by_mpirun(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

static sd_status mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return sd_fail(SD_ERR_IO, "rank %d: %s failed: %s (did another rank of the job die?)", g_rank, what, msg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Waits for n nonblocking requests, sleeping between polls: MPI's own
 * blocking calls spin at 100% CPU, which on a machine whose cores are all
 * busy (ranks of 1 thread each, other jobs) takes the CPU from the very rank
 * being waited for. It spins for the first SPIN_S seconds (a collective whose
 * ranks arrive together), then sleeps half the time waited so far (5 us to
 * MAX_SLEEP_NS) between polls: a wait overshoots its end by at most half its
 * length and 1 ms, with few wake-ups (each costs CPU that a busy machine's
 * other work needs); the thread's timer slack is set to 1 us at start, so
 * short sleeps are not stretched by the default 50 us (SyncBN's many short
 * collectives).
 * Whether it sleeps at all is decided at the first wait, as Open MPI decides
 * whether to yield: ranks that fit the machine (ranks on this node x threads
 * per rank <= online cores) poll without sleeping, since each has its own
 * core and a sleep only adds its overshoot to every collective (2 ranks of 1
 * thread on 2 cores: 1.84x one process spinning, 1.52x sleeping); more
 * ranks or threads than cores sleep. SEGDA_DIST_SPIN=1 or 0 forces either.
 * After g_timeout seconds it gives up: TIMED_OUT, r[i] != MPI_REQUEST_NULL
 * for the requests still open (a rank that hangs; a dead one makes Open MPI
 * end the job first). */
#define SPIN_S 20e-6
#define MAX_SLEEP_NS 1000000
static int g_spin = -1;      /* -1: not decided yet (SEGDA_DIST_SPIN unset) */
static int g_node_size = 1;  /* ranks on this machine */
static int wait_all(int n, MPI_Request *r)
{
    double t0 = now_s(), t;
    if (g_spin < 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        g_spin = (long)g_node_size * sd_threads() <= cores;
    }
    g_st[g_kind].waits++;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS || done) {
            g_st[g_kind].wait_s += now_s() - t0;
            return rc;
        }
        if ((t = now_s() - t0) < SPIN_S)
            continue;
        if (g_timeout > 0 && t > g_timeout) {
            g_st[g_kind].wait_s += t;
            g_broken = true;
            return TIMED_OUT;
        }
        if (g_spin)
            continue;
        long ns = (long)(0.5e9 * t);
        ns = ns < 5000 ? 5000 : ns > MAX_SLEEP_NS ? MAX_SLEEP_NS : ns;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
    }
}

static int wait_req(MPI_Request *r) { return wait_all(1, r); }

static sd_status wait_fail(int rc, const char *what)
{
    if (rc != TIMED_OUT)
        return mpi_fail(rc, what);
    return sd_fail(SD_ERR_IO, "rank %d: no answer from the other ranks for %g s in %s (one of them hangs or died; "
                   "SEGDA_DIST_TIMEOUT sets the limit)", g_rank, g_timeout, what);
}

/* Whether a sum or status of n values of esize bytes goes to every rank
 * directly (each rank sends its buffer to every other one and adds all of
 * them in rank order itself: one round trip, the same bits everywhere) or
 * through rank 0 (gathered, added, broadcast: two round trips, but rank 0
 * alone receives N buffers). The direct exchange moves N(N-1) buffers in
 * all, so it is used for a few ranks or small buffers (SyncBN's per-channel
 * sums, statuses); SEGDA_DIST_VIA_ROOT=1 forces the path through rank 0
 * (set it for every rank: -x with mpirun; the ranks must agree on the path). */
static bool g_via_root;
static bool direct(size_t n, size_t esize)
{
    return !g_via_root && (g_size <= 4 || n * esize * (size_t)g_size <= 65536);
}

/* all[rank * n] := every rank's buf[n], on rank 0 (every_rank false) or on
 * every rank; point to point, so that a rank that never sends is named. */
static sd_status collect_named(const void *send, void *all, int n, MPI_Datatype t, size_t esize, bool every_rank,
                               const char *what)
{
    if (g_rank != 0 && !every_rank) {
        MPI_Request r;
        int rc = MPI_Isend(send, n, t, 0, SUM_TAG, MPI_COMM_WORLD, &r);
        if (rc == MPI_SUCCESS)
            rc = wait_req(&r);
        if (rc == TIMED_OUT)
            return sd_fail(SD_ERR_IO, "rank %d: rank 0 took no %s for %g s (it hangs or died; "
                           "SEGDA_DIST_TIMEOUT sets the limit)", g_rank, what, g_timeout);
        return rc == MPI_SUCCESS ? SD_OK : mpi_fail(rc, "MPI_Isend (sum)");
    }
    memcpy((char *)all + esize * (size_t)n * g_rank, send, esize * (size_t)n);
    /* r[2k]: the receive from rank k, r[2k + 1]: the send to it (every_rank) */
    MPI_Request *r = malloc(sizeof *r * 2 * (size_t)g_size);
    if (!r)
        return sd_fail(SD_ERR_NOMEM, "dist: out of memory");
    int rc = MPI_SUCCESS;
    for (int k = 0; k < 2 * g_size; k++)
        r[k] = MPI_REQUEST_NULL;
    for (int k = 0; k < g_size && rc == MPI_SUCCESS; k++)
        if (k != g_rank)
            rc = MPI_Irecv((char *)all + esize * (size_t)n * k, n, t, k, SUM_TAG, MPI_COMM_WORLD, &r[2 * k]);
    for (int k = 0; k < g_size && rc == MPI_SUCCESS && every_rank; k++)
        if (k != g_rank)
            rc = MPI_Isend(send, n, t, k, SUM_TAG, MPI_COMM_WORLD, &r[2 * k + 1]);
    if (rc == MPI_SUCCESS)
        rc = wait_all(2 * g_size, r);
    sd_status st = SD_OK;
    if (rc == TIMED_OUT) {
        char who[256] = "";
        size_t len = 0;
        for (int k = 0; k < g_size && len < sizeof who - 16; k++) {
            int got = 0, sent = 0;   /* (MPI_Testall leaves the requests as they were) */
            if (k == g_rank || (MPI_Test(&r[2 * k], &got, MPI_STATUS_IGNORE) == MPI_SUCCESS && got &&
                                MPI_Test(&r[2 * k + 1], &sent, MPI_STATUS_IGNORE) == MPI_SUCCESS && sent))
                continue;
            len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", len ? ", " : "", k);
        }
        st = sd_fail(SD_ERR_IO, "rank %d: no %s from rank %s for %g s (it hangs or died; SEGDA_DIST_TIMEOUT sets "
                     "the limit)", g_rank, what, who, g_timeout);
    } else if (rc != MPI_SUCCESS) {
        st = mpi_fail(rc, every_rank ? "MPI_Irecv/MPI_Isend (sum)" : "MPI_Irecv (sum)");
    }
    free(r);
    return st;
}

static int bcast_wait(void *buf, int n, MPI_Datatype t, int root)
{
    MPI_Request r;
    int rc = MPI_Ibcast(buf, n, t, root, MPI_COMM_WORLD, &r);
    return rc != MPI_SUCCESS ? rc : wait_req(&r);
}

static int allreduce_wait(const void *send, void *recv, int n, MPI_Datatype t, MPI_Op op)
{
    MPI_Request r;
    int rc = MPI_Iallreduce(send, recv, n, t, op, MPI_COMM_WORLD, &r);
    return rc != MPI_SUCCESS ? rc : wait_req(&r);
}

sd_status sd_dist_init(int *argc, char ***argv)
{
    if (g_active || !launched_by_mpirun())
        return SD_OK;
    int provided = 0;
    /* loader threads and OpenMP workers never call MPI: the main thread does */
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return sd_fail(SD_ERR_IO, "MPI_Init_thread failed (code %d)", rc);
    g_active = true;
    const char *t = getenv("SEGDA_DIST_TIMEOUT");
    if (t && *t)
        g_timeout = strtod(t, NULL);
    const char *stats = getenv("SEGDA_DIST_STATS");
    g_stats = stats && *stats && strcmp(stats, "0");
    const char *via = getenv("SEGDA_DIST_VIA_ROOT");
    g_via_root = via && *via && strcmp(via, "0");
    const char *spin = getenv("SEGDA_DIST_SPIN");
    g_spin = spin && *spin ? strcmp(spin, "0") != 0 : -1;
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);   /* (this thread: the one that waits) */
    g_t_init = now_s();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;   /* the ranks sharing this machine: the local rank picks its GPU */
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &g_local);
        MPI_Comm_size(node, &g_node_size);
        MPI_Comm_free(&node);
    }
    return SD_OK;
}

static void print_stats(void)
{
    struct rusage ru, me;
    getrusage(RUSAGE_SELF, &ru);
    getrusage(RUSAGE_THREAD, &me);   /* (the main thread: the one that computes and calls MPI) */
#define RU_S(u) ((double)(u).ru_utime.tv_sec + 1e-6 * (double)(u).ru_utime.tv_usec + (double)(u).ru_stime.tv_sec + \
                 1e-6 * (double)(u).ru_stime.tv_usec)
    double wait = 0;
    for (int k = 0; k < ST_KINDS; k++)
        wait += g_st[k].wait_s;
    fprintf(stderr, "dist stats rank %d: %.2f s since MPI start, %.2f s CPU (process), %.2f s CPU (main thread), "
            "%.2f s waiting in MPI, %ld/%ld voluntary/involuntary context switches\n", g_rank, now_s() - g_t_init,
            RU_S(ru), RU_S(me), wait, ru.ru_nvcsw, ru.ru_nivcsw);
#undef RU_S
    for (int k = 0; k < ST_KINDS; k++)
        if (g_st[k].calls)
            fprintf(stderr, "dist stats rank %d:   %-7s %7ld calls %9.1f MB %8ld waits %8.3f s\n", g_rank,
                    st_name[k], g_st[k].calls, g_st[k].bytes / 1e6, g_st[k].waits, g_st[k].wait_s);
}

void sd_dist_finalize(void)
{
    if (!g_active)
        return;
#ifdef SD_HAVE_NCCL
    if (g_nccl)
        sd_nccl_free();
    g_nccl = false;
#endif
    if (g_stats)
        print_stats();
    if (g_broken)
        MPI_Abort(MPI_COMM_WORLD, 1); /* the others would wait in MPI_Finalize for the lost rank */
    MPI_Finalize();
    g_active = false;
    g_rank = 0;
    g_size = 1;
}

void sd_dist_abort(int code)
{
    if (g_active)
        MPI_Abort(MPI_COMM_WORLD, code);
}

/* Sums chunks of at most CHUNK values (memory: size x CHUNK) in rank order:
 * every rank itself after a direct exchange, or rank 0, which then
 * broadcasts them. */
#define CHUNK ((size_t)1 << 20)

#define DEFINE_SUM(NAME, T, MPI_T, KIND)                                                                   \
    sd_status NAME(T *buf, size_t n)                                                                       \
    {                                                                                                      \
        if (g_size == 1 || n == 0)                                                                         \
            return SD_OK;                                                                                  \
        COUNT(KIND, sizeof(T) * n);                                                                        \
        size_t cn = n < CHUNK ? n : CHUNK;                                                                 \
        bool every = direct(cn, sizeof(T));                                                                \
        T *all = NULL;                                                                                     \
        if ((g_rank == 0 || every) && !(all = malloc(sizeof(T) * cn * (size_t)g_size)))                    \
            return sd_fail(SD_ERR_NOMEM, "dist: cannot allocate %zu x %d values for a sum", cn, g_size);   \
        sd_status st = SD_OK;                                                                              \
        for (size_t off = 0; off < n && !st; off += cn) {                                                  \
            int m = (int)(n - off < cn ? n - off : cn);                                                    \
            if ((st = collect_named(buf + off, all, m, MPI_T, sizeof(T), every, "sum (gradients)")))       \
                break;                                                                                     \
            int rc;                                                                                        \
            if (g_rank == 0 || every)                                                                      \
                for (int i = 0; i < m; i++) {                                                              \
                    T s = all[i];                                                                          \
                    for (int r = 1; r < g_size; r++)                                                       \
                        s += all[(size_t)r * m + i];                                                       \
                    buf[off + i] = s;                                                                      \
                }                                                                                          \
            if (!every && (rc = bcast_wait(buf + off, m, MPI_T, 0)) != MPI_SUCCESS)                        \
                st = wait_fail(rc, "MPI_Ibcast (sum)");                                                    \
        }                                                                                                  \
        free(all);                                                                                         \
        return st;                                                                                         \
    }

DEFINE_SUM(sd_dist_sum_f32, float, MPI_FLOAT, ST_SUM_F32)
DEFINE_SUM(sd_dist_sum_f64, double, MPI_DOUBLE, ST_SUM_F64)

sd_status sd_dist_sum_u64(uint64_t *buf, size_t n)
{
    if (g_size == 1 || n == 0)
        return SD_OK;
    if (n > (size_t)1 << 30)
        return sd_fail(SD_ERR_ARG, "dist: sum of %zu integers in one call", n);
    COUNT(ST_SUM_U64, sizeof *buf * n);
    int rc = allreduce_wait(MPI_IN_PLACE, buf, (int)n, MPI_UINT64_T, MPI_SUM);
    return rc == MPI_SUCCESS ? SD_OK : wait_fail(rc, "MPI_Iallreduce (integer sum)");
}

sd_status sd_dist_bcast(void *buf, size_t bytes, int root)
{
    if (g_size == 1 || bytes == 0)
        return SD_OK;
    COUNT(ST_BCAST, bytes);
    for (size_t off = 0; off < bytes; off += (size_t)1 << 30) {
        size_t m = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        int rc = bcast_wait((char *)buf + off, (int)m, MPI_BYTE, root);
        if (rc != MPI_SUCCESS)
            return wait_fail(rc, "MPI_Ibcast");
    }
    return SD_OK;
}

sd_status sd_dist_barrier(void)
{
    if (g_size == 1)
        return SD_OK;
    COUNT(ST_BARRIER, 0);
    MPI_Request r;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS)
        rc = wait_req(&r);
    return rc == MPI_SUCCESS ? SD_OK : wait_fail(rc, "MPI_Ibarrier");
}

sd_status sd_dist_agree(sd_status st)
{
    if (g_size == 1)
        return st;
    COUNT(ST_AGREE, sizeof(int));
    int *all = malloc(sizeof(int) * (size_t)g_size);
    if (!all) {
        sd_dist_abort(1); /* cannot agree: stopping the job beats a deadlock */
        return sd_fail(SD_ERR_NOMEM, "dist: out of memory");
    }
    /* collected point to point (at rank 0, or at every rank directly), so a
     * rank that never reports is named */
    int mine = (int)st, rc, dec[2] = {-1, SD_OK};   /* the first failing rank and its status */
    char own[2048];
    snprintf(own, sizeof own, "%s", st ? sd_errmsg() : "");
    bool every = direct(1, sizeof(int));
    sd_status gs = collect_named(&mine, all, 1, MPI_INT, sizeof(int), every, "status");
    if ((g_rank == 0 || every) && !gs)
        for (int r = 0; r < g_size && dec[0] < 0; r++)
            if (all[r] != SD_OK) {
                dec[0] = r;
                dec[1] = all[r];
            }
    free(all);
    if (gs)
        return gs;
    if (!every && (rc = bcast_wait(dec, 2, MPI_INT, 0)) != MPI_SUCCESS)
        return wait_fail(rc, "MPI_Ibcast (status)");
    int who = dec[0];
    sd_status agreed = (sd_status)dec[1];
    if (who < 0)
        return SD_OK;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", who == g_rank ? own : "");
    if ((rc = bcast_wait(msg, (int)sizeof msg, MPI_CHAR, who)) != MPI_SUCCESS)
        return wait_fail(rc, "MPI_Ibcast (error message)");
    msg[sizeof msg - 1] = 0;
    if (who == g_rank)
        return sd_fail(st, "%s", own);
    return sd_fail(agreed, "rank %d: %s", who, msg);
}

bool sd_dist_any(bool flag)
{
    if (g_size == 1)
        return flag;
    COUNT(ST_ANY, sizeof(int));
    int mine = flag, any = 0;
    if (allreduce_wait(&mine, &any, 1, MPI_INT, MPI_MAX) != MPI_SUCCESS)
        return true; /* a rank is gone: stopping is the only safe answer */
    return any != 0;
}

#else /* without MPI: one process */

sd_status sd_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return SD_OK;
}
void sd_dist_finalize(void) {}
void sd_dist_abort(int code) { (void)code; }
sd_status sd_dist_sum_f32(float *buf, size_t n)
{
    (void)buf;
    (void)n;
    return SD_OK;
}
sd_status sd_dist_sum_f64(double *buf, size_t n)
{
    (void)buf;
    (void)n;
    return SD_OK;
}
sd_status sd_dist_sum_u64(uint64_t *buf, size_t n)
{
    (void)buf;
    (void)n;
    return SD_OK;
}
sd_status sd_dist_bcast(void *buf, size_t bytes, int root)
{
    (void)buf;
    (void)bytes;
    (void)root;
    return SD_OK;
}
sd_status sd_dist_barrier(void) { return SD_OK; }
sd_status sd_dist_agree(sd_status st) { return st; }
bool sd_dist_any(bool flag) { return flag; }

#endif

/* ---- device buffers (--device cuda): NCCL, or through the host ---- */

int sd_dist_local_rank(void) { return g_local; }

sd_status sd_dist_device_select(const char *spec)
{
    sd_device dev;
    int index;
    sd_status st = sd_device_parse(spec, &dev, &index);
    if (st)
        return st;
    int n = sd_device_count(dev);
    if (dev == SD_DEVICE_CUDA && !strchr(spec, ':') && g_size > 1 && n > 0)
        index = g_local % n;
    return sd_device_select(dev, index);
}

sd_status sd_dist_device_init(sd_device dev)
{
    if (g_size == 1 || dev == SD_DEVICE_CPU)
        return SD_OK;
#ifdef SD_HAVE_NCCL
    /* SEGDA_NCCL=0: sums through the host over MPI (two ranks sharing one
     * GPU, which NCCL refuses; a suspected NCCL problem) */
    const char *use = getenv("SEGDA_NCCL");
    if (dev == SD_DEVICE_CUDA && !g_nccl && !(use && !strcmp(use, "0"))) {
        /* rank 0's unique id reaches the others over MPI (ncclCommInitRank's usual bootstrap) */
        char id[SD_NCCL_ID_BYTES] = {0};
        sd_status st = sd_dist_agree(g_rank == 0 ? sd_nccl_unique_id(id) : SD_OK);
        if (!st)
            st = sd_dist_bcast(id, sizeof id, 0);
        if (!st)
            st = sd_dist_agree(sd_nccl_init(id, g_rank, g_size));
        g_nccl = st == SD_OK;
        return st;
    }
#endif
    return SD_OK;
}

const char *sd_dist_device_path(sd_device dev)
{
    if (dev == SD_DEVICE_CPU)
        return "MPI";
#ifdef SD_HAVE_NCCL
    if (g_nccl && dev == SD_DEVICE_CUDA)
        return "NCCL";
#endif
    return "MPI through host copies";
}

sd_status sd_dist_mean_f32_on(float *buf, size_t n, sd_device dev)
{
    if (g_size == 1 || n == 0)
        return SD_OK;
#ifdef SD_HAVE_NCCL
    if (g_nccl && dev == SD_DEVICE_CUDA)
        return sd_nccl_mean(buf, n);
#endif
    const sd_backend *be = dev == SD_DEVICE_CPU ? NULL : sd_backend_for(dev);
    if (dev != SD_DEVICE_CPU && !be)
        return sd_fail(SD_ERR_UNSUPPORTED, "dist: buffer on %s: %s", sd_device_name(dev), sd_device_unavailable(dev));
    float *h = buf;
    if (be) {
        if (!(h = malloc(n * sizeof *h)))
            return sd_fail(SD_ERR_NOMEM, "dist: out of memory staging %zu floats", n);
        be->copy_to_host(h, buf, n * sizeof *h);
    }
    sd_status st = sd_dist_sum_f32(h, n);
    if (!st) {
        const float nr = (float)g_size;
        for (size_t i = 0; i < n; i++)
            h[i] /= nr;
        if (be)
            be->copy_from_host(buf, h, n * sizeof *h);
    }
    if (be)
        free(h);
    return st;
}
