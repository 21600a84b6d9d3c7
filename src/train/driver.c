/* The training driver (driver.h): the loop of every training task.
 * One pass of the loop: a stop check (every rank agrees), the task's step
 * at the schedule's rate, its records, a progress line, then at the
 * iteration's end a save (before an evaluation, so a failed or killed
 * evaluation costs nothing but itself) and the evaluation. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segda/dist.h"
#include "segda/progress.h"
#include "train/driver.h"

/* Rank 0 writes; every rank learns whether it could. */
static sd_status save(const sd_drive_task *t, int64_t done, sd_drive_result *r)
{
    sd_status st = sd_dist_agree(sd_dist_rank() == 0 ? t->save(t->ctx, done) : SD_OK);
    if (!st)
        r->last_saved = done;
    return st;
}

static void progress(const sd_drive_task *t, int64_t it, double t0, float lr)
{
    double el = sd_time_now() - t0, done = (double)(it + 1 - t->start);
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (double)(t->iters - it - 1) / rate : 0;
    char line[1024], eta_s[48];
    /* (in whole minutes as a 64-bit count: a huge --iters gives a huge ETA,
     * never an int's overflow) */
    if (eta < 9.2e18)
        snprintf(eta_s, sizeof eta_s, "%lldm%02ds", (long long)eta / 60, (int)((long long)eta % 60));
    else
        snprintf(eta_s, sizeof eta_s, "%.3gs", eta);
    int n = snprintf(line, sizeof line, "%s: it %lld/%lld  %.2f it/s  ETA %s  lr %.3g", t->name, (long long)it + 1,
                     (long long)t->iters, rate, eta_s, lr);
    if (t->terms && n > 0 && n < (int)sizeof line)
        t->terms(t->ctx, line + n, sizeof line - (size_t)n);
    sd_log(1, "%s\n", line);
}

/* The stop at iteration it (sig: Ctrl-C, else stop_after): state saved. */
static sd_status stop(const sd_drive_task *t, int64_t it, bool sig, sd_drive_result *r)
{
    sd_status st;
    if (r->last_saved != it && (it > 0 || t->save_at_zero) && (st = save(t, it, r)))
        return st;
    bool kept = r->last_saved == it;
    if (kept && sd_dist_rank() == 0)
        sd_log(1, "%s: %s at iteration %lld of %lld; state saved to %s (continue with --resume)\n", t->name,
               sig ? "interrupted" : "stopped", (long long)it, (long long)t->iters, t->ckpt);
    r->stopped = !sig;
    return sig ? sd_fail(SD_ERR_INTERRUPTED, "%s: interrupted at iteration %lld of %lld; %s", t->name, (long long)it,
                         (long long)t->iters, kept ? "state saved (continue with --resume)" : "nothing saved yet")
               : SD_OK;
}

/* Evaluation after `done` iterations; its failure is logged and survived
 * (out of memory ends the run). */
static sd_status evaluate(const sd_drive_task *t, int64_t done, sd_drive_result *r)
{
    bool resave = false;
    sd_status st = t->evaluate(t->ctx, done, &resave);
    if (st == SD_ERR_NOMEM)
        return st;
    if (st) {
        r->eval_failures++;
        if (t->eval_failed)
            t->eval_failed(t->ctx, done, sd_errmsg());
        if (sd_dist_rank() == 0)
            sd_log(1, "%s: evaluation at iteration %lld failed, training goes on: %s\n", t->name, (long long)done,
                   sd_errmsg());
        return SD_OK;
    }
    return resave ? save(t, done, r) : SD_OK;
}

/* The tests of a dead and a hung rank (tests/test_dist.c): the last rank
 * dies (SEGDA_DIST_KILL_AT=N) or hangs (SEGDA_DIST_HANG_AT=N) before
 * iteration N. */
static void dist_test_hook(int64_t it)
{
    if (sd_dist_size() < 2 || sd_dist_rank() != sd_dist_size() - 1)
        return;
    const char *kill_at = getenv("SEGDA_DIST_KILL_AT"), *hang_at = getenv("SEGDA_DIST_HANG_AT");
    bool hang = hang_at && *hang_at;
    int64_t at = hang ? strtoll(hang_at, NULL, 10) : kill_at && *kill_at ? strtoll(kill_at, NULL, 10) : -1;
    while (at == it + 1) {
        if (!hang)
            raise(SIGKILL);
        sleep(1);
    }
}

sd_status sd_drive(const sd_drive_task *t, sd_drive_result *r)
{
    memset(r, 0, sizeof *r);
    r->ran = true;
    r->last_saved = t->start > 0 ? t->start : -1;
    double t0 = sd_time_now(), last_print = 0;
    sd_status st = SD_OK;
    if (t->start > 0 && sd_dist_rank() == 0)
        sd_log(1, "%s: resuming at iteration %lld of %lld\n", t->name, (long long)t->start, (long long)t->iters);
    int64_t it;
    for (it = t->start; it < t->iters; it++) {
        /* a stop seen by one rank stops them all at the same iteration */
        bool sig = sd_dist_size() > 1 ? sd_dist_any(sd_stop_requested()) : sd_stop_requested();
        if (sig || (t->stop_after > 0 && it == t->stop_after && it > t->start)) {
            st = stop(t, it, sig, r);
            break;
        }
        dist_test_hook(it);
        float lr = t->sched ? sd_lr_at(t->sched, it) : 0.0f;
        if ((st = t->step(t->ctx, it, lr))) {
            if (t->record)
                t->record(t->ctx, it, lr, sd_time_now() - t0, true);
            if (st == SD_ERR_NUMERIC) {
                if (r->last_saved >= 0)
                    sd_fail_prefix(st, "%s: training stopped, %s holds iteration %lld (continue with --resume)",
                                   t->name, t->ckpt, (long long)r->last_saved);
                else
                    sd_fail_prefix(st, "%s: training stopped, nothing written yet", t->name);
            }
            break;
        }
        if (t->record)
            t->record(t->ctx, it, lr, sd_time_now() - t0, false);
        double now = sd_time_now();
        int64_t done = it + 1;
        bool last = done == t->iters;
        if (t->log_every > 0 ? (done % t->log_every == 0 || last) : (now - last_print >= 2.0 || last)) {
            if (sd_dist_rank() == 0)
                progress(t, it, t0, lr);
            last_print = now;
        }
        bool do_eval = t->evaluate && ((t->eval_every > 0 && done % t->eval_every == 0) || last);
        if ((do_eval || last || (t->save_every > 0 && done % t->save_every == 0)) && (st = save(t, done, r)))
            break;
        if (do_eval && (st = evaluate(t, done, r)))
            break;
    }
    r->iterations = it;
    r->seconds = sd_time_now() - t0;
    sd_drive_write_summary(t, st, r);
    return st;
}

void sd_drive_write_summary(const sd_drive_task *t, sd_status st, const sd_drive_result *r)
{
    if (!t->summary || sd_dist_rank() != 0)
        return;
    char msg[1100] = "";
    if (!st && r->stopped)
        snprintf(msg, sizeof msg, "stopped after iteration %lld (stop-after); continue with --resume",
                 (long long)r->iterations);
    else if (st)
        snprintf(msg, sizeof msg, "%s", sd_errmsg());
    sd_run_summary s = {
        .status = !st && !r->stopped ? "ok" : !st || st == SD_ERR_INTERRUPTED ? "interrupted" : "failed",
        .message = msg,
        .iterations = r->iterations,
        .iters = t->iters,
        .seconds = r->seconds,
        .eval_failures = r->eval_failures,
        .final_value = NAN,
        .best_value = NAN,
        .best_iteration = -1,
    };
    if (t->describe)
        t->describe(t->ctx, &s);
    /* the run's own error stays the caller's message */
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", sd_errmsg());
    if (sd_run_summary_write(t->summary, &s))
        sd_log(0, "%s: could not write %s: %s\n", t->name, t->summary, sd_errmsg());
    if (st)
        sd_fail(st, "%s", keep);
}
