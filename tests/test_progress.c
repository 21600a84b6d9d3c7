/* The progress line (progress.h) when stderr is not a terminal (a log file):
 * nothing for a short job, then a line every 5 s, and a last line only when
 * a line was drawn; --progress (ON) draws at once. Time is simulated by
 * moving the bar's clock origin back. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "segda/progress.h"

static char out[4096];

/* A bar writing to a memory stream as if stderr were a file. */
static FILE *as_log(sd_progress *p, sd_progress_mode mode)
{
    sd_progress_init(p, "check", "img", 10, mode);
    p->tty = false;
    p->quiet_start = mode == SD_PROGRESS_AUTO;
    p->last_draw = p->quiet_start ? p->t0 : -1e30;
    memset(out, 0, sizeof out);
    p->f = fmemopen(out, sizeof out - 1, "w");
    return p->f;
}

static int lines(void)
{
    int n = 0;
    for (const char *s = out; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_short_job_prints_nothing(void)
{
    sd_progress p;
    FILE *f = as_log(&p, SD_PROGRESS_AUTO);
    for (int i = 1; i <= 10; i++)
        sd_progress_update(&p, i);
    sd_progress_finish(&p);
    fflush(f);
    CHECK_MSG(out[0] == 0, "printed \"%s\"", out);
    fclose(f);
}

static void test_long_job_a_line_every_5s(void)
{
    sd_progress p;
    FILE *f = as_log(&p, SD_PROGRESS_AUTO);
    sd_progress_update(&p, 1);
    p.t0 -= 6;
    p.last_draw -= 6; /* 6 s later */
    sd_progress_update(&p, 3);
    sd_progress_update(&p, 4); /* within 5 s of the last line: nothing */
    fflush(f);
    CHECK_MSG(lines() == 1 && strstr(out, "check [") && strstr(out, "3/10") && !strchr(out, '\r'),
              "printed \"%s\"", out);
    p.last_draw -= 5;
    sd_progress_update(&p, 7);
    sd_progress_finish(&p);
    fflush(f);
    CHECK_MSG(lines() == 3 && strstr(out, "7/10") && strstr(out, "4/10") == NULL, "printed \"%s\"", out);
    fclose(f);
}

static void test_forced_draws_at_once(void)
{
    sd_progress p;
    FILE *f = as_log(&p, SD_PROGRESS_ON);
    sd_progress_update(&p, 1);
    sd_progress_finish(&p);
    fflush(f);
    CHECK_MSG(lines() == 2 && strstr(out, "1/10"), "printed \"%s\"", out);
    fclose(f);
}

int main(void)
{
    RUN(test_short_job_prints_nothing);
    RUN(test_long_job_a_line_every_5s);
    RUN(test_forced_draws_at_once);
    TESTS_DONE();
}
