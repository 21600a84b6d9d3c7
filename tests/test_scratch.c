/* From-scratch training defaults (issue 19): without --init, BN trains
 * (freeze-bn auto) and the classifier takes the backbone's lr (head-lr-mult
 * auto); with --init the DeepLab-v2 practice stays. deeplab-mini at lr 0.01
 * from scratch must keep finite losses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/checkpoint.h"
#include "segda/model.h"
#include "segda/synth.h"
#include "segda/train.h"
#include "util.h"

static char bench[256], src_spec[300], tgt_spec[300];

static sd_status run(const char *name, int n_extra, const char *const *extra)
{
    char out[400];
    snprintf(out, sizeof out, "%s/run-%s", bench, name);
    sd_config c;
    test_train_cfg(&c, "source-only", src_spec, tgt_spec, out, n_extra, extra);
    sd_config_set(&c, "model", "deeplab-mini", "test", false);
    sd_status st = sd_train_run(&c);
    sd_config_free(&c);
    return st;
}

/* Whether every running_var of a checkpoint is still exactly 1 (BN never
 * updated its statistics). */
static bool bn_untouched(const char *path)
{
    sd_model *m = NULL;
    if (sd_model_load(path, false, &m, NULL))
        return false;
    sd_params *p = sd_model_params(m);
    bool untouched = true;
    int n = 0;
    for (int i = 0; i < p->n; i++)
        if (strstr(p->tensors[i]->name, "running_var")) {
            n++;
            for (size_t k = 0; k < p->tensors[i]->numel; k++)
                untouched &= F32(p->tensors[i]->data)[k] == 1.0f;
        }
    sd_model_free(m);
    return n > 0 && untouched;
}

static void test_scratch_defaults(void)
{
    const char *a[] = {"iters=12", "lr=0.01", "batch=2,0"};
    CHECK_OK(run("scratch", 3, a));
    char log[512], ck[512], cfg[512];
    snprintf(log, sizeof log, "%s/run-scratch/log.jsonl", bench);
    snprintf(ck, sizeof ck, "%s/run-scratch/last.safetensors", bench);
    snprintf(cfg, sizeof cfg, "%s/run-scratch/config.txt", bench);
    double v[16];
    int n = test_log_terms(log, "seg", v, 16);
    CHECK(n == 12);
    for (int i = 0; i < n; i++)
        CHECK_MSG(isfinite(v[i]) && v[i] < 10, "seg loss %g at iteration %d", v[i], i + 1);
    CHECK(!bn_untouched(ck));   /* BN learned statistics */
    char *txt = test_slurp(cfg, NULL);
    /* config.txt records what "auto" resolved to from scratch */
    CHECK_MSG(txt && strstr(txt, "bn = train") && strstr(txt, "head-lr-mult = 1\n"), "config.txt:\n%s",
              txt ? txt : "(none)");
    free(txt);
    /* from that checkpoint (--init), BN stays frozen as DeepLab-v2 trains it */
    char init[600];
    snprintf(init, sizeof init, "init=%s", ck);
    const char *b[] = {"iters=2", "lr=0.001", "batch=1,0", init};
    CHECK_OK(run("init", 4, b));
    snprintf(cfg, sizeof cfg, "%s/run-init/config.txt", bench);
    txt = test_slurp(cfg, NULL);
    CHECK(txt && strstr(txt, "bn = frozen") && strstr(txt, "head-lr-mult = 10\n")); /* and with --init */
    free(txt);
    snprintf(ck, sizeof ck, "%s/run-init/last.safetensors", bench);
    sd_model *m0 = NULL, *m1 = NULL;
    char ck0[512];
    snprintf(ck0, sizeof ck0, "%s/run-scratch/last.safetensors", bench);
    CHECK_OK(sd_model_load(ck0, false, &m0, NULL));
    CHECK_OK(sd_model_load(ck, false, &m1, NULL));
    if (m0 && m1) {
        sd_params *p0 = sd_model_params(m0), *p1 = sd_model_params(m1);
        int g = sd_model_group(m0, "bn");
        CHECK(g >= 0 && !memcmp(p0->groups[g].data, p1->groups[g].data, p0->groups[g].numel * sizeof(float)));
    }
    sd_model_free(m0);
    sd_model_free(m1);
    const char *bad[] = {"iters=1", "head-lr-mult=-1"};
    CHECK(run("bad", 2, bad) == SD_ERR_ARG);
    CHECK_ERR_HAS("head-lr-mult");
}

int main(void)
{
    test_tiny_bench("scratch", 8, 2, bench, src_spec, tgt_spec);
    RUN(test_scratch_defaults);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bench);
    TESTS_DONE();
}
