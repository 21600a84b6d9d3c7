/* The training driver (src/train/driver.c) with a toy task that records
 * every callback: the order of steps, saves and evaluations (a save before
 * each evaluation, again after one that asks for it), the schedule's rate,
 * evaluation failures survived and counted, stop-after and Ctrl-C stops
 * (state saved once), a failed step's message naming what the checkpoint
 * holds, a resumed start, and summary.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "segda/core.h"
#include "segda/train.h"
#include "train/driver.h"

typedef struct toy {
    char calls[512];       /* "s0 s1 w2 e2 ..." : step it, write done, eval done */
    float lrs[16];
    int64_t nan_at;        /* step `it` returns SD_ERR_NUMERIC (-1: never) */
    int64_t eval_fail_at;  /* evaluation after `done` fails (-1: never) */
    int64_t ctrl_c_at;     /* step `it` requests a stop (-1: never) */
    bool resave;
    int failed_evals;
} toy;

static void add(toy *t, char what, int64_t n)
{
    size_t k = strlen(t->calls);
    snprintf(t->calls + k, sizeof t->calls - k, "%s%c%lld", k ? " " : "", what, (long long)n);
}

static sd_status toy_step(void *ctx, int64_t it, float lr)
{
    toy *t = ctx;
    add(t, 's', it);
    if (it < 16)
        t->lrs[it] = lr;
    if (it == t->ctrl_c_at)
        sd_request_stop();
    if (it == t->nan_at)
        return sd_fail(SD_ERR_NUMERIC, "toy: iteration %lld: loss is NaN", (long long)it + 1);
    return SD_OK;
}

static sd_status toy_eval(void *ctx, int64_t done, bool *resave)
{
    toy *t = ctx;
    add(t, 'e', done);
    *resave = t->resave;
    if (done == t->eval_fail_at)
        return sd_fail(SD_ERR_DATA, "toy: val image 3 unreadable");
    return SD_OK;
}

static void toy_eval_failed(void *ctx, int64_t done, const char *msg)
{
    toy *t = ctx;
    (void)done;
    t->failed_evals += strstr(msg, "val image 3") != NULL;
}

static sd_status toy_save(void *ctx, int64_t done)
{
    add(ctx, 'w', done);
    return SD_OK;
}

static void toy_describe(void *ctx, sd_run_summary *s)
{
    (void)ctx;
    s->task = "toy";
    s->method = "toy";
    s->metric = "score";
    s->final_value = 0.5;
}

static char summary[512];
static sd_lr_schedule sched;

static sd_drive_task task(toy *t, int64_t iters)
{
    memset(t, 0, sizeof *t);
    t->nan_at = t->eval_fail_at = t->ctrl_c_at = -1;
    sched = sd_lr_poly(0.1f, iters, 0.9f);
    return (sd_drive_task){.name = "toy", .ckpt = "toy.ckpt", .summary = summary, .ctx = t, .iters = iters,
                           .log_every = 1000, .sched = &sched, .step = toy_step, .evaluate = toy_eval,
                           .eval_failed = toy_eval_failed, .save = toy_save, .describe = toy_describe};
}

static void test_order_and_rates(void)
{
    toy t;
    sd_drive_task d = task(&t, 5);
    d.eval_every = 2;
    t.resave = true;
    sd_drive_result r;
    CHECK_OK(sd_drive(&d, &r));
    CHECK_MSG(!strcmp(t.calls, "s0 s1 w2 e2 w2 s2 s3 w4 e4 w4 s4 w5 e5 w5"), "calls %s", t.calls);
    for (int i = 0; i < 5; i++)
        CHECK_NEAR(t.lrs[i], 0.1 * pow(1.0 - i / 5.0, 0.9), 1e-6);
    CHECK(r.iterations == 5 && r.last_saved == 5 && !r.stopped && r.eval_failures == 0);
    sd_run_result s;
    CHECK_OK(sd_run_summary_read(summary, &s));
    CHECK(!strcmp(s.status, "ok") && s.iterations == 5 && s.iters == 5 && !strcmp(s.metric, "score"));
    CHECK_NEAR(s.final_value, 0.5, 0);

    /* save-every without evaluations; no evaluate callback: none */
    d = task(&t, 5);
    d.evaluate = NULL;
    d.save_every = 2;
    CHECK_OK(sd_drive(&d, &r));
    CHECK_MSG(!strcmp(t.calls, "s0 s1 w2 s2 s3 w4 s4 w5"), "calls %s", t.calls);
}

static void test_eval_failure_survived(void)
{
    toy t;
    sd_drive_task d = task(&t, 4);
    d.eval_every = 2;
    t.eval_fail_at = 2;
    t.resave = true;   /* (a failed evaluation saves nothing again) */
    sd_drive_result r;
    CHECK_OK(sd_drive(&d, &r));
    CHECK_MSG(!strcmp(t.calls, "s0 s1 w2 e2 s2 s3 w4 e4 w4"), "calls %s", t.calls);
    CHECK(r.eval_failures == 1 && t.failed_evals == 1 && r.iterations == 4);
    sd_run_result s;
    CHECK_OK(sd_run_summary_read(summary, &s));
    CHECK(!strcmp(s.status, "ok"));
}

static void test_stops(void)
{
    toy t;
    sd_drive_task d = task(&t, 6);
    d.stop_after = 3;
    sd_drive_result r;
    CHECK_OK(sd_drive(&d, &r));
    CHECK_MSG(!strcmp(t.calls, "s0 s1 s2 w3"), "calls %s", t.calls);
    CHECK(r.stopped && r.iterations == 3 && r.last_saved == 3);
    sd_run_result s;
    CHECK_OK(sd_run_summary_read(summary, &s));
    CHECK(!strcmp(s.status, "interrupted") && strstr(s.message, "stopped after iteration 3") && s.iterations == 3);

    /* resumed at 3: no second save of what the checkpoint holds, then on */
    d = task(&t, 6);
    d.start = 3;
    d.stop_after = 3;
    CHECK_OK(sd_drive(&d, &r));
    CHECK_MSG(!strcmp(t.calls, "s3 s4 s5 w6 e6"), "calls %s", t.calls);

    /* Ctrl-C during step 1: saved at 2, SD_ERR_INTERRUPTED */
    sd_stop_clear();
    d = task(&t, 6);
    t.ctrl_c_at = 1;
    CHECK(sd_drive(&d, &r) == SD_ERR_INTERRUPTED);
    sd_stop_clear();
    CHECK_MSG(!strcmp(t.calls, "s0 s1 w2"), "calls %s", t.calls);
    CHECK_ERR_HAS("toy: interrupted at iteration 2 of 6; state saved");
    CHECK_OK(sd_run_summary_read(summary, &s));
    CHECK(!strcmp(s.status, "interrupted") && s.iterations == 2);

    /* at iteration 0 the initial state is saved only when the task asks */
    d = task(&t, 6);
    t.ctrl_c_at = -1;
    sd_request_stop();
    CHECK(sd_drive(&d, &r) == SD_ERR_INTERRUPTED);
    CHECK_MSG(!strcmp(t.calls, ""), "calls %s", t.calls);
    CHECK_ERR_HAS("nothing saved yet");
    d.save_at_zero = true;
    sd_request_stop();
    CHECK(sd_drive(&d, &r) == SD_ERR_INTERRUPTED);
    CHECK_MSG(!strcmp(t.calls, "w0"), "calls %s", t.calls);
    sd_stop_clear();
}

static void test_failed_step(void)
{
    toy t;
    sd_drive_task d = task(&t, 6);
    d.save_every = 2;
    t.nan_at = 3;
    sd_drive_result r;
    CHECK(sd_drive(&d, &r) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("toy.ckpt holds iteration 2");
    CHECK_ERR_HAS("iteration 4: loss is NaN");
    CHECK_MSG(!strcmp(t.calls, "s0 s1 w2 s2 s3"), "calls %s", t.calls);
    CHECK(r.iterations == 3);
    sd_run_result s;
    CHECK_OK(sd_run_summary_read(summary, &s));
    CHECK(!strcmp(s.status, "failed") && strstr(s.message, "loss is NaN") && s.iterations == 3);
    CHECK_ERR_HAS("toy.ckpt holds iteration 2");   /* (the summary kept the caller's message) */

    d = task(&t, 6);
    t.nan_at = 0;
    CHECK(sd_drive(&d, &r) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("nothing written yet");
}

int main(void)
{
    sd_log_set_level(0);
    char dir[] = "/tmp/segda-test-driver-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    snprintf(summary, sizeof summary, "%s/summary.json", dir);
    RUN(test_order_and_rates);
    RUN(test_eval_failure_survived);
    RUN(test_stops);
    RUN(test_failed_step);
    unlink(summary);
    rmdir(dir);
    return 0;
}
