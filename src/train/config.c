/* Run configuration: settings as text with their origin (flag, file:line,
 * default), `key = value` files, and the check of a configuration against
 * the shared knobs and the chosen method's. Not here: what the knobs do
 * (train.c and the method files). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "segda/train.h"
#include "io/file.h"

void sd_config_init(sd_config *c) { memset(c, 0, sizeof *c); }

void sd_config_free(sd_config *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].value);
        free(c->e[i].origin);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int find(const sd_config *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key))
            return i;
    return -1;
}

sd_status sd_config_set(sd_config *c, const char *key, const char *value, const char *origin, bool replace)
{
    int i = find(c, key);
    if (i >= 0 && !replace)
        return SD_OK;
    char *v = sd_strdup(value), *o = sd_strdup(origin ? origin : "");
    if (!v || !o) {
        free(v);
        free(o);
        return SD_ERR_NOMEM;
    }
    if (i >= 0) {
        free(c->e[i].value);
        free(c->e[i].origin);
        c->e[i].value = v;
        c->e[i].origin = o;
        return SD_OK;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        sd_config_entry *ne = realloc(c->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            free(v);
            free(o);
            return sd_fail(SD_ERR_NOMEM, "config: out of memory");
        }
        c->e = ne;
        c->cap = cap;
    }
    char *k = sd_strdup(key);
    if (!k) {
        free(v);
        free(o);
        return SD_ERR_NOMEM;
    }
    c->e[c->n++] = (sd_config_entry){k, v, o};
    return SD_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* One configuration line (comment cut, trimmed) at origin: key = value. */
static sd_status parse_line(sd_config *c, sd_config *seen, char *line, const char *origin)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    char *s = trim(line);
    if (!*s)
        return SD_OK;
    char *eq = strchr(s, '=');
    if (!eq)
        return sd_fail(SD_ERR_FORMAT, "%s: expected 'key = value', got '%s'", origin, s);
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1);
    if (!*key)
        return sd_fail(SD_ERR_FORMAT, "%s: empty key", origin);
    /* a key given twice: which of two values was meant cannot be guessed */
    const char *before = sd_config_origin(seen, key);
    if (before)
        return sd_fail(SD_ERR_FORMAT, "%s: key '%s' given twice (first at %s)", origin, key, before);
    sd_status st = sd_config_set(seen, key, "", origin, false);
    return st ? st : sd_config_set(c, key, val, origin, false);
}

sd_status sd_config_parse(sd_config *c, const char *text, size_t len, const char *name)
{
    enum { MAX_LINE = 4094 };
    char line[MAX_LINE + 2], origin[4200];
    sd_config seen;
    sd_config_init(&seen);
    sd_status st = SD_OK;
    size_t i = 0;
    for (int lineno = 1; i < len && !st; lineno++) {
        size_t n = 0;
        snprintf(origin, sizeof origin, "%s:%d", name, lineno);
        for (; i < len && text[i] != '\n'; i++) {
            if (text[i] == 0) {
                st = sd_fail(SD_ERR_FORMAT, "%s: NUL byte in the line (a configuration is text)", origin);
                break;
            }
            if (n == MAX_LINE) {
                st = sd_fail(SD_ERR_FORMAT, "%s: line longer than %d characters", origin, MAX_LINE);
                break;
            }
            line[n++] = text[i];
        }
        i++; /* the newline */
        line[n] = 0;
        if (!st)
            st = parse_line(c, &seen, line, origin);
    }
    sd_config_free(&seen);
    return st;
}

sd_status sd_config_read(sd_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sd_fail(SD_ERR_IO, "%s: not a regular file (a configuration is a file of key = value lines)", path);
    }
    if (sb.st_size > (1 << 24)) {
        fclose(f);
        return sd_fail(SD_ERR_FORMAT, "%s: %lld bytes, more than a configuration's 16 MiB", path,
                       (long long)sb.st_size);
    }
    char *text = sd_malloc((size_t)sb.st_size + 1);
    size_t len = text ? fread(text, 1, (size_t)sb.st_size, f) : 0;
    bool bad = text && ferror(f);
    fclose(f);
    if (!text)
        return SD_ERR_NOMEM;
    sd_status st = bad ? sd_fail(SD_ERR_IO, "%s: read error", path) : sd_config_parse(c, text, len, path);
    free(text);
    return st;
}

const char *sd_config_get(const sd_config *c, const char *key)
{
    int i = find(c, key);
    return i < 0 ? NULL : c->e[i].value;
}

const char *sd_config_origin(const sd_config *c, const char *key)
{
    int i = find(c, key);
    return i < 0 ? NULL : c->e[i].origin;
}

int64_t sd_config_int(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && *v ? strtoll(v, NULL, 10) : 0;
}

double sd_config_float(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && *v ? strtod(v, NULL) : 0.0;
}

static int parse_bool(const char *v)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        return 1;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off") || !*v)
        return 0;
    return -1;
}

bool sd_config_bool(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && parse_bool(v) == 1;
}

const char *sd_config_str(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v ? v : "";
}

sd_status sd_config_write(const sd_config *c, const char *path)
{
    char tmp[4096];
    io_tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", tmp, strerror(errno));
    fprintf(f, "# segda train: resolved configuration (segda train --config THIS_FILE repeats the run)\n");
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s = %s\n", c->e[i].key, c->e[i].value);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    return SD_OK;
}

sd_status sd_parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return sd_fail(SD_ERR_ARG, "'%s': expected a size WxH (e.g. 256x128)", s);
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (end == p || *end || a <= 0 || b <= 0 || a > 65536 || b > 65536)
        return sd_fail(SD_ERR_ARG, "'%s': expected a size WxH with positive sides (e.g. 256x128)", s);
    *w = (int)a;
    *h = (int)b;
    return SD_OK;
}

sd_status sd_parse_pair(const char *s, int *a, int *b)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end != ',')
        return sd_fail(SD_ERR_ARG, "'%s': expected two counts A,B (e.g. 1,1)", s);
    const char *p = end + 1;
    long y = strtol(p, &end, 10);
    if (end == p || *end || x < 0 || y < 0 || x > 4096 || y > 4096)
        return sd_fail(SD_ERR_ARG, "'%s': expected two counts A,B >= 0 (e.g. 1,1)", s);
    *a = (int)x;
    *b = (int)y;
    return SD_OK;
}

static const sd_knob *knob_in(const sd_knob *k, const char *key)
{
    for (; k && k->key; k++)
        if (!strcmp(k->key, key))
            return k;
    return NULL;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static sd_status check_value(const sd_knob *k, const char *v, const char *origin)
{
    switch (k->type) {
    case SD_KNOB_INT:
    case SD_KNOB_FLOAT: {
        char what[4400];
        int64_t i;
        double d;
        snprintf(what, sizeof what, "%s: %s", origin, k->key);
        sd_status st = k->type == SD_KNOB_INT ? sd_parse_i64(v, INT64_MIN, INT64_MAX, what, &i)
                                              : sd_parse_double(v, -DBL_MAX, DBL_MAX, what, &d);
        if (st)
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected %s", origin, k->key, v,
                           k->type == SD_KNOB_INT ? "an integer" : "a finite number");
        break;
    }
    case SD_KNOB_BOOL:
        if (parse_bool(v) < 0)
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected true or false", origin, k->key, v);
        break;
    case SD_KNOB_STR:
        if (k->choices && *v && !choice_ok(k->choices, v))
            return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected one of %s", origin, k->key, v, k->choices);
        break;
    default:
        break;
    }
    return SD_OK;
}

/* bn = auto becomes a mode here, so config.txt records the one used: the
 * old freeze-bn spelling when given, else train from scratch (no --init),
 * else the method's published recipe, else frozen (the DeepLab-v2 practice). */
static sd_status resolve_bn(sd_config *cfg, const sd_method *m)
{
    const char *bn = sd_config_str(cfg, "bn"), *fb = sd_config_get(cfg, "freeze-bn");
    char origin[400];
    if (fb) {
        const char *want = parse_bool(fb) == 1 ? "frozen" : "train";
        if (strcmp(bn, "auto") && strcmp(bn, want))
            return sd_fail(SD_ERR_ARG, "%s: freeze-bn = %s means bn = %s, but %s: bn = %s; give one of them",
                           sd_config_origin(cfg, "freeze-bn"), fb, want, sd_config_origin(cfg, "bn"), bn);
        snprintf(origin, sizeof origin, "%s (freeze-bn)", sd_config_origin(cfg, "freeze-bn"));
        return sd_config_set(cfg, "bn", want, origin, true);
    }
    if (strcmp(bn, "auto"))
        return SD_OK;
    /* from scratch nothing is pretrained: frozen statistics (0 and 1) would
     * never normalise, so BN trains whatever the method's recipe */
    const char *init = sd_config_get(cfg, "init");
    if (!init || !*init)
        return sd_config_set(cfg, "bn", "train", "no --init (from scratch)", true);
    snprintf(origin, sizeof origin, "method %s", m->name);
    return sd_config_set(cfg, "bn", m->bn_default ? m->bn_default : "frozen", origin, true);
}

sd_status sd_train_resolve(sd_config *cfg, const sd_method **method)
{
    const char *mname = sd_config_get(cfg, "method");
    if (!mname || !*mname)
        return sd_fail(SD_ERR_ARG, "no method given (--method or 'method = ...'; see segda train --help)");
    const sd_method *m = sd_method_find(mname);
    if (!m)
        return sd_fail(SD_ERR_ARG, "%s: unknown method '%s'", sd_config_origin(cfg, "method"), mname);
    const sd_knob *shared = sd_train_knobs();
    int nm;
    const sd_method *const *all = sd_method_list(&nm);
    for (int i = 0; i < cfg->n; i++) {
        const sd_config_entry *e = &cfg->e[i];
        if (!strcmp(e->key, "method"))
            continue;
        const sd_knob *k = knob_in(shared, e->key);
        if (!k)
            k = knob_in(m->knobs, e->key);
        if (!k) {
            for (int j = 0; j < nm; j++)
                if (all[j] != m && knob_in(all[j]->knobs, e->key))
                    return sd_fail(SD_ERR_ARG, "%s: '%s' is a setting of method %s, not of %s", e->origin,
                                   e->key, all[j]->name, m->name);
            return sd_fail(SD_ERR_ARG, "%s: unknown key '%s'", e->origin, e->key);
        }
        sd_status st = check_value(k, e->value, e->origin);
        if (st)
            return st;
    }
    /* (a knob without a default, e.g. the freeze-bn alias, stays absent) */
    for (const sd_knob *k = shared; k->key; k++)
        if (k->def && sd_config_set(cfg, k->key, k->def, "default", false))
            return SD_ERR_NOMEM;
    for (const sd_knob *k = m->knobs; k && k->key; k++)
        if (k->def && sd_config_set(cfg, k->key, k->def, "default", false))
            return SD_ERR_NOMEM;
    sd_status st = resolve_bn(cfg, m);
    if (st)
        return st;
    *method = m;
    return SD_OK;
}

/* ---- the shared knobs (the method files add their own) ---- */

static const sd_knob shared_knobs[] = {
    {"source", SD_KNOB_STR, "", NULL, "source training set (gta5:DIR, synthia:DIR, cityscapes:DIR, folder:DIR)"},
    {"target", SD_KNOB_STR, "", NULL, "target set (its train split for training, its val split for evaluation)"},
    {"val", SD_KNOB_STR, "", NULL, "target validation set (default: the target spec with split val)"},
    {"model", SD_KNOB_STR, "deeplab-mini", NULL, "segmentation network (segda models lists them)"},
    {"classes", SD_KNOB_STR, "19", "19|16", "class set: 19 Cityscapes trainIds, or SYNTHIA's 16 (the mIoU-16 "
                                            "classes; evaluated and selected by mIoU-16)"},
    {"lanemarking-as-road", SD_KNOB_BOOL, "false", NULL, "SYNTHIA labels: lane markings (id 22) are road (CBST/CRST)"},
    {"out", SD_KNOB_STR, "", NULL, "run directory"},
    {"init", SD_KNOB_STR, "", NULL, "checkpoint to start from (pretrained backbone or a trained model)"},
    {"partial-init", SD_KNOB_BOOL, "false", NULL, "--init loads the tensors that fit from a checkpoint of another "
                                                  "model or class count, listing what it skipped"},
    {"iters", SD_KNOB_INT, "1000", NULL, "iterations (the poly schedule reaches 0 here)"},
    {"stop-after", SD_KNOB_INT, "0", NULL, "stop and save after this many iterations, as an interrupt would (0 = run all)"},
    {"batch", SD_KNOB_STR, "1,1", NULL, "source,target images per iteration"},
    {"crop", SD_KNOB_STR, "", NULL, "training crop WxH (default: whole images)"},
    {"source-size", SD_KNOB_STR, "", NULL, "resize source images to WxH before cropping (PIL bicubic, labels "
                                           "nearest; default: as stored)"},
    {"target-size", SD_KNOB_STR, "", NULL, "resize target images to WxH before cropping and for evaluation"},
    {"lr", SD_KNOB_FLOAT, "2.5e-4", NULL, "base learning rate of the segmentation network (classifier x10 with --init: head-lr-mult)"},
    {"lr-d", SD_KNOB_FLOAT, "1e-4", NULL, "base learning rate of discriminators (Adam)"},
    {"optimizer", SD_KNOB_STR, "sgd", "sgd|adam", "optimiser of the segmentation network"},
    {"momentum", SD_KNOB_FLOAT, "0.9", NULL, "SGD momentum"},
    {"weight-decay", SD_KNOB_FLOAT, "5e-4", NULL, "weight decay of the segmentation network"},
    {"power", SD_KNOB_FLOAT, "0.9", NULL, "poly schedule power"},
    {"warmup", SD_KNOB_INT, "0", NULL, "linear warm-up iterations"},
    {"seed", SD_KNOB_INT, "1", NULL, "seed of weights, batches and augmentation"},
    {"eval-every", SD_KNOB_INT, "0", NULL, "evaluate on target val every K iterations and at the end (0 = never)"},
    {"save-every", SD_KNOB_INT, "0", NULL, "save last.safetensors every K iterations (0 = at evaluations and the end)"},
    {"val-limit", SD_KNOB_INT, "0", NULL, "evaluate on the first N val images only (0 = all)"},
    {"eval-size", SD_KNOB_STR, "", NULL, "network input size for evaluation (default: target-size, else as stored)"},
    {"align-corners", SD_KNOB_BOOL, "true", NULL, "bilinear upsampling of logits with align_corners (AdaptSegNet)"},
    {"flip", SD_KNOB_BOOL, "false", NULL, "random horizontal flips"},
    {"bn", SD_KNOB_STR, "auto", "auto|frozen|batch-stats|train", "backbone batch norm: frozen (running statistics, "
                                  "affine fixed), batch-stats (batch statistics, running ones updated, affine fixed: "
                                  "the AdaptSegNet/ADVENT/FDA code), train; auto: the method's published recipe with --init, "
                                  "train without (from scratch BN must learn its statistics)"},
    {"freeze-bn", SD_KNOB_BOOL, NULL, NULL, "old spelling: true = bn frozen, false = bn train"},
    {"head-lr-mult", SD_KNOB_FLOAT, "0", NULL, "classifier lr multiplier; 0 = auto: 10 with --init (DeepLab's new "
                                               "head on a pretrained backbone), 1 from scratch"},
    {"aux", SD_KNOB_STR, "auto", "auto|on|off", "auxiliary classifier (auto: when the method is multi-level)"},
    {"threads", SD_KNOB_INT, "0", NULL, "threads (0 = all cores)"},
    {"ranks", SD_KNOB_INT, "1", NULL, "processes of a data-parallel run: set from mpirun -np and recorded (--batch is "
                                      "per rank; N ranks of batch b equal one process of batch N*b)"},
    {"sync-bn", SD_KNOB_BOOL, "true", NULL, "with several ranks and BN on batch statistics (--bn batch-stats or "
                                            "train): batch norm "
                                            "uses the whole batch's statistics (SyncBN); false: each rank's own, "
                                            "running statistics averaged after every iteration"},
    {"precision", SD_KNOB_STR, "f32", "f32|bf16|bf16-emulated", "compute dtype of the convolutions (bf16: f32 master weights, "
                                                  "gradients, optimiser state, losses and BN statistics)"},
    {"workers", SD_KNOB_INT, "2", NULL, "loader threads reading batches ahead (0 = in the training thread); "
                                        "batches are the same for any number"},
    {"skip-bad", SD_KNOB_BOOL, "false", NULL, "replace unreadable samples by the next readable one (counted and "
                                              "listed) instead of stopping"},
    {"log-every", SD_KNOB_INT, "0", NULL, "progress line every N iterations (0 = every 2 s)"},
    {"resume", SD_KNOB_BOOL, "false", NULL, "continue the run in --out from its last.safetensors"},
    {"resume-force", SD_KNOB_BOOL, "false", NULL, "with --resume, accept settings that differ from the run's "
                                                  "(listed in log.jsonl)"},
    {"config", SD_KNOB_STR, "", NULL, "configuration file of key = value lines"},
    {NULL, 0, NULL, NULL, NULL},
};

const sd_knob *sd_train_knobs(void) { return shared_knobs; }
