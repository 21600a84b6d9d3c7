/* The demo as a library function (segda/demo.h): sd_demo_run with the
 * in-process runner gives what `segda demo` (the process runner, two child
 * processes at once) gives for the same options and thread counts: the
 * same table on stdout, gap lines included (the gap measures run through
 * sd_gap_run in-process), and the same results.json but each run's
 * wall-clock seconds. Options by name (sd_demo_opts_set) name a bad option
 * and value. Needs SEGDA_BIN for the command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "segda/demo.h"
#include "util.h"

static char dir[256];
static const char *bin;

/* "seconds": N.N -> "seconds": X, in place */
static void mask_seconds(char *s)
{
    for (char *p = s ? strstr(s, "\"seconds\": ") : NULL; p; p = strstr(p + 1, "\"seconds\": ")) {
        char *v = p + 11, *e = v;
        while ((*e >= '0' && *e <= '9') || *e == '.')
            e++;
        *v = 'X';
        memmove(v + 1, e, strlen(e) + 1);
    }
}

typedef struct seen {
    char table[8192];
    int starts, done, iters, gap_done;
} seen;

static int on_event(void *ctx, const sd_demo_event *ev)
{
    seen *s = ctx;
    if (ev->kind == SD_DEMO_EV_TABLE)
        snprintf(s->table + strlen(s->table), sizeof s->table - strlen(s->table), "%s", ev->text);
    s->starts += ev->kind == SD_DEMO_EV_START && ev->task != SD_DEMO_TASK_GAP;
    s->done += ev->kind == SD_DEMO_EV_DONE && ev->task == SD_DEMO_TASK_TRAIN;
    s->gap_done += ev->kind == SD_DEMO_EV_DONE && ev->task == SD_DEMO_TASK_GAP;
    s->iters += ev->kind == SD_DEMO_EV_ITER;
    return 0;
}

/* `segda demo --out dir ARGS` (the process runner), then sd_demo_run with
 * the same options o (in-process): the same results.json but the seconds
 * (holding `want`), the same table (holding `table_has`). */
static void check_both_runners(const char *args, sd_demo_opts *o, seen *s, const char *want, const char *table_has)
{
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd, "%s demo --out %s %s > %s/cli.out 2> %s/cli.err", bin, dir, args, dir, dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "segda demo failed (%d), see %s/cli.err", rc, dir);
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *cli_json = test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/cli.out", dir);
    char *cli_out = test_slurp(path, NULL);
    o->out = dir;
    o->seeds = 1, o->pretrain_iters = 3, o->iters = 2, o->adapt_iters = 2, o->jobs = 2, o->threads = 1;
    CHECK_OK(sd_demo_run(o, NULL, on_event, s));
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *lib_json = test_slurp(path, NULL);
    mask_seconds(cli_json);
    mask_seconds(lib_json);
    CHECK_MSG(cli_json && lib_json && !strcmp(cli_json, lib_json) && strstr(lib_json, want),
              "results.json differ:\n%s\n---\n%s", cli_json ? cli_json : "(none)", lib_json ? lib_json : "(none)");
    CHECK_MSG(cli_out && !strcmp(cli_out, s->table) && strstr(s->table, table_has), "table differs:\n%s\n---\n%s",
              cli_out ? cli_out : "(none)", s->table);
    free(cli_json);
    free(lib_json);
    free(cli_out);
}

static void TEST_inprocess_equals_process_runner(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s synth --out %s/bench --n-sim 8 --n-real 200 --n-real-val 4 --size 64x32 --crops 4 --crop-size 32 "
             "--threads 1 --quiet",
             bin, dir);
    CHECK(system(cmd) == 0);
    sd_demo_opts o;
    sd_demo_opts_init(&o);
    o.methods = "fda";
    seen s = {.starts = 0};
    check_both_runners("--methods fda --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --jobs 2 --threads 1", &o,
                       &s, "\"method\": \"fda\"", "gap source-only layer4");
    /* pretrain, source-base, oracle, source-only, fda; every training
     * iteration (2 + 4 + 2 + 2); the 8 gap measures */
    CHECK_MSG(s.starts == 5 && s.done == 4 && s.iters == 10 && s.gap_done == 8, "starts %d, done %d, iters %d, gap %d",
              s.starts, s.done, s.iters, s.gap_done);
}

/* The detection-based foreground rows (issue 16) either way: the detector
 * trained in this process (sd_detect_train) or as a child `segda train
 * --method detect`, and the "+det" row scored by the demo itself, give the
 * same results.json and table. (After the test above: its benchmark.) */
static void TEST_det_rows_inprocess_equals_process_runner(void)
{
    sd_demo_opts o;
    sd_demo_opts_init(&o);
    CHECK_OK(sd_demo_opts_set(&o, "rows", "source-base+det"));
    CHECK_OK(sd_demo_opts_set(&o, "det-iters", "2"));
    CHECK_OK(sd_demo_opts_set(&o, "simple_scenes", "8"));
    o.no_gap = true;
    seen s = {.starts = 0};
    check_both_runners("--rows source-base+det --seeds 1 --pretrain-iters 3 --iters 2 --adapt-iters 2 --det-iters 2 "
                       "--simple-scenes 8 --jobs 2 --threads 1 --no-gap",
                       &o, &s, "\"ap50\": ", "detection-based foreground");
    /* pretrain, detect, source-base, oracle, source-only, source-base+det;
     * DONE of the three training runs and the scored row; iterations of the
     * segmentation runs (2 + 4 + 2) */
    CHECK_MSG(s.starts == 6 && s.done == 4 && s.iters == 8, "starts %d, done %d, iters %d", s.starts, s.done, s.iters);
}

static void TEST_options_by_name(void)
{
    sd_demo_opts o;
    sd_demo_opts_init(&o);
    CHECK_OK(sd_demo_opts_set(&o, "adapt_iters", "7"));
    CHECK_OK(sd_demo_opts_set(&o, "--no-gap", "true"));
    CHECK_OK(sd_demo_opts_set(&o, "lr", "0.02"));
    CHECK(o.adapt_iters == 7 && o.no_gap && !strcmp(o.lr, "0.02"));
    CHECK(sd_demo_opts_set(&o, "--iters", "1e3") == SD_ERR_ARG && strstr(sd_errmsg(), "--iters '1e3', expected an integer"));
    CHECK(sd_demo_opts_set(&o, "lr", "0") == SD_ERR_ARG && strstr(sd_errmsg(), "lr '0'"));
    CHECK(sd_demo_opts_set(&o, "bogus", "1") == SD_ERR_ARG && strstr(sd_errmsg(), "unknown demo option 'bogus'"));
    CHECK(o.iters == 0);
    o.rows = "fda-ssl,no-such-row";
    CHECK(sd_demo_check(&o) == SD_ERR_ARG && strstr(sd_errmsg(), "'no-such-row' is not a row of --full"));
    o.rows = NULL;
    o.methods = "fda,nope";
    CHECK(sd_demo_check(&o) == SD_ERR_ARG && strstr(sd_errmsg(), "unknown method 'nope'"));
    sd_error_clear();
}

int main(void)
{
    RUN(TEST_options_by_name);
    bin = getenv("SEGDA_BIN");
    if (!bin) {
        printf("SKIP TEST_inprocess_equals_process_runner (no SEGDA_BIN)\n");
        return check_total_failed_ ? 1 : 0;
    }
    snprintf(dir, sizeof dir, "/tmp/segda-demolib-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(TEST_inprocess_equals_process_runner);
    RUN(TEST_det_rows_inprocess_equals_process_runner);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!check_total_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_total_failed_ ? 1 : 0;
}
