/* Models in checkpoints: the metadata that rebuilds a model, inference of
 * that metadata from the tensors of converted files, and load/save of a
 * model alone. The file format itself is src/io/safetensors.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "segda/checkpoint.h"
#include "segda/detect.h"
#include "segda/gan.h"

sd_status sd_ckpt_writer_add_model(sd_ckpt_writer *w, sd_model *m, sd_norm norm)
{
    const sd_model_opts *o = sd_model_options(m);
    char buf[32];
    sd_status st = sd_ckpt_writer_add_params(w, "", sd_model_params(m));
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_MODEL, o->name);
    snprintf(buf, sizeof buf, "%d", o->classes);
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_CLASSES, buf);
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_AUX, o->aux ? "1" : "0");
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_ASPP2, o->aspp_two_branch ? "1" : "0");
    snprintf(buf, sizeof buf, "%d", o->output_stride);
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_OS, buf);
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_NORM, sd_norm_name(norm));
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_FORMAT, "segda");
    return st;
}

static sd_status meta_int(const sd_ckpt *c, const char *key, int lo, int hi, int *out)
{
    const char *v = sd_ckpt_meta(c, key);
    if (!v)
        return SD_OK;
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return sd_fail(SD_ERR_FORMAT, "%s: metadata \"%s\" is \"%.40s\", expected an integer in %d..%d", c->st.path,
                       key, v, lo, hi);
    *out = (int)x;
    return SD_OK;
}

static bool has_prefix_tensor(const sd_ckpt *c, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < c->st.n; i++) {
        const char *nm = c->st.tensors[i].name;
        if (!strncmp(nm, "module.", 7))
            nm += 7;
        if (!strncmp(nm, prefix, n))
            return true;
    }
    return false;
}

static int find_any(const sd_ckpt *c, const char *name)
{
    char buf[256];
    int i = sd_st_find(&c->st, name);
    if (i >= 0)
        return i;
    snprintf(buf, sizeof buf, "module.%s", name);
    return sd_st_find(&c->st, buf);
}

sd_status sd_ckpt_model_opts(const sd_ckpt *c, sd_model_opts *o, sd_norm *norm)
{
    const char *name = sd_ckpt_meta(c, SD_META_MODEL);
    if (!name && sd_ckpt_is_generator(c, ""))
        return sd_fail(SD_ERR_FORMAT, "%s: a generator checkpoint (CycleGAN ResNet generator: tensors model.N.*), "
                       "expected a segmentation network (give it to --translate or segda translate instead)",
                       c->st.path);
    if (name && !strcmp(name, SD_DETECTOR_MODEL))
        return sd_fail(SD_ERR_FORMAT, "%s: a detector checkpoint (%s), expected a segmentation network (give the "
                       "detector to --detector instead)", c->st.path, name);
    if (!name)
        return sd_fail(SD_ERR_FORMAT, "%s: no \"model\" in the metadata (convert with tools/pth2safetensors.py --model NAME)",
                       c->st.path);
    *o = sd_model_opts_default(name);
    static const char *const cls_names[] = {"layer6.conv2d_list.0.weight", "layer5.conv2d_list.0.weight",
                                            "classifier.conv2d_list.0.weight", "classifier.4.weight",
                                            "cls.4.weight"};
    if (!sd_ckpt_meta(c, SD_META_CLASSES))
        for (int k = 0; k < 5; k++) {
            int i = find_any(c, cls_names[k]);
            if (i >= 0 && c->st.tensors[i].ndim == 4) {
                o->classes = (int)c->st.tensors[i].shape[0];
                break;
            }
        }
    int aux = -1, two = -1, os = 0;
    sd_status st;
    if ((st = meta_int(c, SD_META_CLASSES, 1, 1000, &o->classes)) || (st = meta_int(c, SD_META_AUX, 0, 1, &aux)) ||
        (st = meta_int(c, SD_META_ASPP2, 0, 1, &two)) || (st = meta_int(c, SD_META_OS, 0, 16, &os)))
        return st;
    /* multi-level DeepLab-v2: layer5 (on layer3) beside layer6 (on layer4) */
    o->aux = aux >= 0 ? aux == 1
                      : (has_prefix_tensor(c, "layer5.") && has_prefix_tensor(c, "layer6.")) ||
                            has_prefix_tensor(c, "aux_classifier.") || has_prefix_tensor(c, "aux.");
    if (two >= 0)
        o->aspp_two_branch = two == 1;
    else
        o->aspp_two_branch = (find_any(c, "layer5.conv2d_list.0.weight") >= 0 &&
                              find_any(c, "layer5.conv2d_list.2.weight") < 0) ||
                             (find_any(c, "classifier.conv2d_list.0.weight") >= 0 &&
                              find_any(c, "classifier.conv2d_list.2.weight") < 0);
    o->output_stride = os;
    if (norm) {
        const char *nv = sd_ckpt_meta(c, SD_META_NORM);
        if (nv) {
            int n = sd_norm_parse(nv);
            if (n < 0)
                return sd_fail(SD_ERR_FORMAT, "%s: metadata \"norm\" is \"%.40s\", expected caffe or imagenet",
                               c->st.path, nv);
            *norm = (sd_norm)n;
        } else {
            *norm = sd_model_default_norm(name);
        }
    }
    return SD_OK;
}

/* Whether the file holds every tensor of p under its own name and shape. */
static bool ckpt_covers(const sd_ckpt *c, const sd_params *p)
{
    for (int i = 0; i < p->n; i++) {
        const sd_tensor *x = p->tensors[i];
        int k = sd_st_find(&c->st, x->name);
        if (k < 0 || c->st.tensors[k].ndim != x->ndim)
            return false;
        for (int d = 0; d < x->ndim; d++)
            if (c->st.tensors[k].shape[d] != x->shape[d])
                return false;
    }
    return true;
}

sd_status sd_model_load(const char *path, bool strict, sd_model **out, sd_norm *norm)
{
    *out = NULL;
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return st;
    sd_model_opts o;
    sd_model *m = NULL;
    if (!(st = sd_ckpt_model_opts(&c, &o, norm)) && !(st = nn_model_create_zeroed(&o, &m))) {
        /* Initialising costs seconds for a ResNet-101 and is wasted when the
         * file has every tensor; otherwise the ones it lacks keep their
         * initial values, as after sd_model_create. */
        if (!ckpt_covers(&c, sd_model_params(m)))
            sd_model_init_weights(m, 0);
        st = strict ? sd_ckpt_load_params(&c, "", sd_model_params(m), true, NULL)
                    : sd_ckpt_load_weights(&c, sd_model_params(m), NULL, false, NULL);
        if (!st)   /* read on the CPU, then to the device of the run (--device) */
            st = sd_params_to_device(sd_model_params(m), sd_device_selected());
    }
    if (st && m) {
        sd_model_free(m);
        m = NULL;
    }
    if (st && !strstr(sd_errmsg(), path))
        sd_fail_prefix(st, "%s", path);
    sd_ckpt_close(&c);
    *out = m;
    return st;
}

sd_status sd_model_save(sd_model *m, sd_norm norm, const char *path)
{
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    sd_status st = sd_ckpt_writer_add_model(&w, m, norm);
    if (!st)
        st = sd_ckpt_writer_save(&w, path);
    sd_ckpt_writer_free(&w);
    return st;
}
