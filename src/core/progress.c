/* The progress bar: label, bar, count, rate and ETA, redrawn in place on a
 * terminal and at most every 0.1 s (a line every 5 s when not a terminal, so
 * logs stay short and a long job still shows it is alive). No threads; call
 * from the loop that owns the count. */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "segda/progress.h"

double sd_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sd_progress_init(sd_progress *p, const char *label, const char *unit, int64_t total,
                      sd_progress_mode mode)
{
    memset(p, 0, sizeof *p);
    p->f = stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->unit = unit ? unit : "it";
    p->total = total > 0 ? total : 0;
    p->tty = isatty(fileno(stderr));
    p->enabled = mode != SD_PROGRESS_OFF;
    p->quiet_start = mode == SD_PROGRESS_AUTO && !p->tty;
    p->t0 = sd_time_now();
    p->last_draw = p->quiet_start ? p->t0 : -1e30;
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void draw(sd_progress *p, double now, bool final)
{
    double el = now - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32], ela[32];
    fmt_duration(ela, sizeof ela, el);
    if (p->total && rate > 0)
        fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    else
        snprintf(eta, sizeof eta, "--:--");
    p->lines++;
    fprintf(p->f, "%s%s", p->tty ? "\r" : "", p->label);
    if (p->total) {
        enum { W = 30 };
        int fill = (int)((double)W * (double)p->done / (double)p->total);
        fill = fill < 0 ? 0 : fill > W ? W : fill;
        char bar[W + 1];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(W - fill));
        bar[W] = 0;
        fprintf(p->f, " [%s] %lld/%lld", bar, (long long)p->done, (long long)p->total);
    } else {
        fprintf(p->f, " %lld", (long long)p->done);
    }
    fprintf(p->f, " %.2f %s/s %s", rate, p->unit, ela);
    if (!final && p->total)
        fprintf(p->f, " ETA %s", eta);
    fprintf(p->f, p->tty ? "\033[K" : "\n");
    if (final && p->tty)
        fputc('\n', p->f);
    fflush(p->f);
}

void sd_progress_update(sd_progress *p, int64_t done)
{
    p->done = done;
    if (!p->enabled)
        return;
    double now = sd_time_now();
    if (now - p->last_draw < (p->tty ? 0.1 : 5.0))
        return;
    p->last_draw = now;
    draw(p, now, false);
}

void sd_progress_finish(sd_progress *p)
{
    if (!p->enabled || (p->quiet_start && !p->lines))
        return;
    draw(p, sd_time_now(), true);
    p->enabled = false;
}
