/* segda demo: the library's demo (sd_demo_run, src/demo/) behind its flags,
 * with the process runner: each run a child `segda train --config`,
 * `segda pretrain` or `segda gap` (fork+exec of this executable), --jobs of
 * them side by side (two one-thread runs beat one two-thread run at these
 * image sizes, and a crash stays in its run). Children are exec'd, never
 * merely forked: OpenMP is not fork-safe. The demo's lines go to stderr,
 * its table to stdout. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/demo.h"
#include "segda/detect.h"
#include "segda/tensor.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda demo [--full] [--out DIR] [options]\n"
            "\n"
            "Generates the built-in sim->real benchmark and real-style object crops,\n"
            "pretrains deeplab-mini's backbone on the crops (segda pretrain: the stand-in for\n"
            "ImageNet weights), trains source-only on sim from it (source-base), then each\n"
            "adaptation method and source-only itself for more iterations from that\n"
            "checkpoint, and the oracle (real labels) from the pretrained backbone for the\n"
            "sum; evaluates each on real val, measures the domain gap (segda gap) for the\n"
            "source-only and the best adapted checkpoint, prints the table (per-class IoU,\n"
            "mIoU-19, gap closed) and writes DIR/results.json and DIR/report.md (gap table,\n"
            "loss curves, example predictions). Runs go side by side as child processes.\n"
            "\n"
            "  --out DIR          where everything goes (default demo-out)\n"
            "  --full             every method, the fine-tuning budgets, 3 seeds (~2 h 20 min, 2 cores,\n"
            "                     before the rows below were added); also the lambda sweep (x10, x100 of\n"
            "                     adaptseg/advent/feature-adv/road, gradient ratios in the report), the\n"
            "                     from-scratch source-only row and the task-informed GAN rows (alpha 0; 1/5/25/\n"
            "                     100%% labels; f fine-tuned on the same labels), and the detection-based\n"
            "                     foreground of Saleh et al.: a Mask R-CNN per seed (segda train --method\n"
            "                     detect on sim + simple scenes), selftrain-stuff-psgt (background pseudo-\n"
            "                     labels), source-base+det and selftrain-stuff-psgt+det (the detector's masks\n"
            "                     painted over those maps; with iIoU and the detector's AP / AP50)\n"
            "  --pretrain-iters N classification pretraining iterations (default %d; 0: start\n"
            "                     from random weights)\n"
            "  --iters N          source-base iterations (default %d; --full %d)\n"
            "  --adapt-iters N    iterations of each row from source-base (default %d; --full %d)\n"
            "  --lr X             LR of source-base and oracle (default 0.01)\n"
            "  --adapt-lr X       LR from source-base (default 0.0025)\n"
            "  --seeds N          seeds per method (default 1; --full 3)\n"
            "  --methods LIST     comma-separated methods instead of the default set\n"
            "  --rows LIST        only these rows of --full (comma-separated row names; oracle,\n"
            "                     source-only and the rows they start from are kept; a \"+det\" row\n"
            "                     also runs the seed's detector and the row it paints over)\n"
            "  --det-iters N      detector steps per seed for the \"+det\" rows (default %d)\n"
            "  --simple-scenes N  VEIS-like simple scenes beside sim for the detector, written to\n"
            "                     DIR/bench-simple unless the benchmark has its own (default %d)\n"
            "  --jobs N           runs at once (default: cores, at most 4)\n"
            "  --threads N        threads per run (default: cores / jobs)\n"
            "  --no-gap           skip the domain-gap measures\n"
            "  --device D         cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P      f32 (default), bf16 or bf16-emulated: every run's convolution compute dtype\n"
            "  --pretrain-precision P\n"
            "                     the pretraining's instead (default: --precision's); all seeds share the\n"
            "                     one pretraining, so --precision bf16 --pretrain-precision f32 compares bf16\n"
            "                     with an f32 demo from the same backbone (--resume refuses a pretraining\n"
            "                     made in another precision)\n"
            "  --resume           go on with an earlier demo in --out: runs it finished with the\n"
            "                     same configuration are kept, unfinished ones continue from\n"
            "                     their last checkpoint, the rest run (without it: all run anew)\n"
            "  -h, --help         this help\n",
            SD_DEMO_PRETRAIN_ITERS, SD_DEMO_ITERS, SD_DEMO_FULL_ITERS, SD_DEMO_ADAPT_ITERS, SD_DEMO_FULL_ADAPT_ITERS,
            SD_DEMO_DET_ITERS, SD_DEMO_SIMPLE_SCENES);
}

/* ---- the process runner ---- */
enum { MAX_ARGS = 48 };

typedef struct proc_runner {
    const char *self;        /* this executable */
    pid_t pid[4096];         /* of each started task's id (0: none) */
    int n_ids;
} proc_runner;

typedef struct argv_buf {
    char *argv[MAX_ARGS + 1];
    char s[MAX_ARGS][600];
    int n;
} argv_buf;

static void arg(argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(argv_buf *a, const char *fmt, ...)
{
    if (a->n >= MAX_ARGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->s[a->n], sizeof a->s[0], fmt, ap);
    va_end(ap);
    a->argv[a->n] = a->s[a->n];
    a->argv[++a->n] = NULL;
}

/* "--flag VALUE"; a NULL string value adds nothing */
static void opt_s(argv_buf *a, const char *flag, const char *v)
{
    if (v) {
        arg(a, "%s", flag);
        arg(a, "%s", v);
    }
}

static void opt_i(argv_buf *a, const char *flag, int v)
{
    arg(a, "%s", flag);
    arg(a, "%d", v);
}

/* A float as a flag's value that parses back to the same float */
#define fmt_g(buf, v) (snprintf(buf, sizeof buf, "%.9g", (double)(v)), buf)

/* The command line of a task: what the in-process runner calls, as a
 * `segda` subcommand. */
static void task_argv(const sd_demo_task *t, argv_buf *a)
{
    char lr[32], mom[32], wd[32];
    arg(a, "segda");
    if (t->kind == SD_DEMO_TASK_TRAIN) {
        arg(a, "train");
        opt_s(a, "--config", t->config);
        if (t->resume)
            arg(a, "--resume");
        return;
    }
    if (t->kind == SD_DEMO_TASK_DETECT) {   /* f32 on the CPU: the command's defaults */
        const sd_detect_train_opts *d = t->detect;
        arg(a, "train");
        opt_s(a, "--method", "detect");
        opt_s(a, "--data", d->data);
        opt_s(a, "--out", d->out_dir);
        opt_i(a, "--iters", (int)d->iters);
        opt_i(a, "--batch", d->batch);
        opt_s(a, "--lr", fmt_g(lr, d->lr));
        opt_s(a, "--momentum", fmt_g(mom, d->momentum));
        opt_s(a, "--weight-decay", fmt_g(wd, d->weight_decay));
        opt_i(a, "--warmup", (int)d->warmup_iters);
        opt_i(a, "--min-size", d->det.min_size);
        opt_i(a, "--max-size", d->det.max_size);
        opt_i(a, "--anchor-size", d->det.anchor_size);
        opt_i(a, "--box-batch", d->det.box_batch);
        opt_i(a, "--save-every", d->save_every);
        opt_s(a, "--init", d->init);
        opt_s(a, "--bn", sd_det_bn_name(d->bn));
        arg(a, "--seed");
        arg(a, "%llu", (unsigned long long)d->seed);
        if (d->resume)
            arg(a, "--resume");
        return;
    }
    if (t->kind == SD_DEMO_TASK_PRETRAIN) {
        const sd_pretrain_opts *p = t->pretrain;
        arg(a, "pretrain");
        opt_s(a, "--data", p->data);
        opt_s(a, "--out", p->out);
        opt_s(a, "--model", p->model);
        opt_i(a, "--iters", p->iters);
        opt_i(a, "--threads", t->threads);
        opt_i(a, "--val-every", p->val_every);
        opt_i(a, "--log-every", p->log_every);
        opt_s(a, "--tb", p->tb);
        if (p->resume)
            arg(a, "--resume");
    } else {
        const sd_gap_run_opts *g = t->gap;
        arg(a, "gap");
        if (g->labels_only)
            arg(a, "--labels-only");
        else if (g->rgb)
            arg(a, "--rgb");
        else {
            opt_s(a, "--model", g->model);
            opt_s(a, "--layer", g->layer);
        }
        opt_s(a, "--a", g->a);
        opt_s(a, "--b", g->b);
        opt_i(a, "--n", g->n_images);
        if (g->pixels)
            opt_i(a, "--pixels", g->pixels);
        opt_s(a, "--out", g->out_dir);
        opt_s(a, "--json", g->json);
    }
    opt_s(a, "--precision", t->precision);
    opt_s(a, "--device", t->device);
}

static int proc_start(void *self, const sd_demo_task *t, int id)
{
    proc_runner *pr = self;
    if (id < 0 || id >= (int)(sizeof pr->pid / sizeof *pr->pid))
        return sd_fail(SD_ERR_ARG, "demo: too many runs"), SD_DEMO_DONE_FAILED;
    argv_buf a = {.n = 0};
    task_argv(t, &a);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return sd_fail(SD_ERR_IO, "fork: %s", strerror(errno)), SD_DEMO_DONE_FAILED;
    if (pid == 0) {
        FILE *lf = fopen(t->log, t->append ? "a" : "w");
        if (lf) {
            dup2(fileno(lf), 1);
            dup2(fileno(lf), 2);
        }
        char th[16];
        snprintf(th, sizeof th, "%d", t->threads);
        setenv("OMP_NUM_THREADS", th, 1);
        execv(pr->self, a.argv);
        fprintf(stderr, "exec %s: %s\n", pr->self, strerror(errno));
        _exit(127);
    }
    pr->pid[id] = pid;
    if (id >= pr->n_ids)
        pr->n_ids = id + 1;
    return SD_DEMO_STARTED;
}

static sd_status proc_wait(void *self, int *id, bool *ok)
{
    proc_runner *pr = self;
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0)
            return sd_fail(SD_ERR_IO, "waitpid: %s", strerror(errno));
        for (int i = 0; i < pr->n_ids; i++)
            if (pr->pid[i] == p) {
                pr->pid[i] = 0;
                *id = i;
                *ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                return SD_OK;
            }
    }
}

/* The demo's lines on stderr, its table on stdout. */
static int print_event(void *ctx, const sd_demo_event *ev)
{
    (void)ctx;
    if (ev->kind == SD_DEMO_EV_TABLE) {
        fputs(ev->text, stdout);
        fflush(stdout);
    } else if (ev->kind != SD_DEMO_EV_ITER) {
        fputs(ev->text, stderr);
    }
    return 0;
}

int cli_demo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"full", no_argument, NULL, 'f'},
        {"iters", required_argument, NULL, 'i'},   {"adapt-iters", required_argument, NULL, 'a'},
        {"seeds", required_argument, NULL, 's'},   {"methods", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"jobs", required_argument, NULL, 'j'},
        {"lr", required_argument, NULL, 'l'},      {"adapt-lr", required_argument, NULL, 'L'},
        {"no-gap", no_argument, NULL, 'G'},        {"help", no_argument, NULL, 'h'},
        {"pretrain-iters", required_argument, NULL, 'p'}, {"resume", no_argument, NULL, 'R'},
        {"rows", required_argument, NULL, 'r'},
        {"precision", required_argument, NULL, 'P'}, {"device", required_argument, 0, 'D'},
        {"pretrain-precision", required_argument, NULL, 'Q'},
        {"det-iters", required_argument, NULL, 'd'}, {"simple-scenes", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    sd_demo_opts o;
    sd_demo_opts_init(&o);
    int c, idx;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'D': {
            int r = cli_device("demo", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'P':
            if (cli_precision("demo", usage, optarg))
                return 2;
            /* f32 when bf16 fell back (cli_precision warned) */
            o.precision = sd_precision() == SD_DTYPE_F32 ? "f32" : strcmp(optarg, "bf16-emulated") ? "bf16" : optarg;
            break;
        case '?':
        case ':': return cli_bad_option("demo", usage, argv);
        default: {
            char key[40];
            snprintf(key, sizeof key, "--%s", opts[idx].name);
            if (sd_demo_opts_set(&o, key, optarg ? optarg : "true"))
                return cli_usage_error("demo", usage, "%s", sd_errmsg());
        }
        }
    }
    if (optind < argc)
        return cli_usage_error("demo", usage, "unexpected argument '%s'", argv[optind]);
    if (sd_demo_check(&o)) {
        fprintf(stderr, "segda demo: %s\n", sd_errmsg());
        return 2;
    }
    /* (the device: as cli_device selected it) */
    static proc_runner pr;
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "segda demo: cannot find its own executable (/proc/self/exe)\n");
        return 1;
    }
    self[sl] = 0;
    pr.self = self;
    /* slots 0: --jobs at once (default: cores, at most 4) */
    sd_demo_runner runner = {.slots = 0, .self = &pr,
                             .start = proc_start, .wait = proc_wait};
    sd_status st = sd_demo_run(&o, &runner, print_event, NULL);
    if (st == SD_ERR_ARG)
        return fprintf(stderr, "segda demo: %s\n", sd_errmsg()), 2;
    return st ? cli_fail("demo") : 0;
}
