/* Safetensors and checkpoints: bit-exact round trips, name matching on load
 * (namespaces, module. prefix, num_batches_tracked), and hostile or damaged
 * files rejected with messages that name the tensor or the byte offset. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/checkpoint.h"
#include "segda/safetensors.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) { return test_path(tmpdir, name); }

/* A parameter set like a tiny model: conv weight + bias in "backbone", a
 * classifier, and BN running stats as buffers. */
static void make_params(sd_params *p, int cout)
{
    sd_params_init(p);
    int bb = sd_params_add_group(p, "backbone", 1, 1, false);
    int cl = sd_params_add_group(p, "classifier", 10, 1, false);
    int bn = sd_params_add_group(p, "bn", 0, 0, true);
    sd_params_declare(p, bb, "conv1.weight", 4, (int[]){cout, 3, 3, 3});
    sd_params_declare(p, bb, "bn1.weight", 1, (int[]){cout});
    sd_params_declare(p, bb, "bn1.bias", 1, (int[]){cout});
    sd_params_declare(p, bn, "bn1.running_mean", 1, (int[]){cout});
    sd_params_declare(p, bn, "bn1.running_var", 1, (int[]){cout});
    sd_params_declare(p, cl, "layer5.conv2d_list.0.weight", 4, (int[]){5, cout, 3, 3});
    sd_params_declare(p, cl, "layer5.conv2d_list.0.bias", 1, (int[]){5});
    sd_params_alloc(p);
}

static void fill_params(sd_params *p, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int g = 0; g < p->n_groups; g++)
        for (size_t i = 0; i < p->groups[g].numel; i++)
            p->groups[g].data[i] = sd_rng_normal(&r) * 3.0f;
    /* values whose bits a careless text/double path would change */
    uint32_t specials[] = {0x80000000u, 0x00000001u, 0x7f7fffffu, 0x3f800001u};
    for (int i = 0; i < 4; i++)
        memcpy(&p->groups[0].data[i], &specials[i], 4);
}

static void write_raw(const char *path, const char *header, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    uint64_t hl = strlen(header);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (uint8_t)(hl >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, hl, f);
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
}

static sd_status parse_raw(const char *header, const void *data, size_t n)
{
    const char *p = tmp_path("raw.safetensors");
    write_raw(p, header, data, n);
    sd_st_file f;
    sd_status st = sd_st_read(p, &f);
    sd_st_free(&f);
    return st;
}

void TEST_round_trip_bit_exact(void);
void TEST_round_trip_bit_exact(void)
{
    sd_params a, b;
    make_params(&a, 4);
    make_params(&b, 4);
    fill_params(&a, 7);
    float mom[6] = {1, -2, 3.5f, 0, 1e-30f, -1e30f};
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_params(&w, "", &a));
    CHECK_OK(sd_ckpt_writer_add_tensor(&w, "opt:momentum", 2, (int[]){2, 3}, mom));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_MODEL, "deeplab-mini"));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_CONFIG, "lr = 2.5e-4\nname = \"quoted\\path\"\t\x01"));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_ITER, "1"));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_ITER, "120000")); /* replaces */
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(sd_ckpt_writer_save(&w, path));
    sd_ckpt_writer_free(&w);
    char tname[64];
    snprintf(tname, sizeof tname, "rt.safetensors.tmp.%d", (int)getpid());
    CHECK(access(tmp_path(tname), F_OK) != 0);

    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    sd_ckpt_report rep;
    CHECK_OK(sd_ckpt_load_params(&c, "", &b, true, &rep));
    CHECK(rep.loaded == a.n && rep.missing == 0 && rep.unexpected == 0 && rep.mismatched == 0);
    for (int g = 0; g < a.n_groups; g++)
        CHECK(!memcmp(a.groups[g].data, b.groups[g].data, a.groups[g].numel * sizeof(float)));
    float mom2[6];
    CHECK_OK(sd_ckpt_read_tensor(&c, "opt:momentum", 6, mom2));
    CHECK(!memcmp(mom, mom2, sizeof mom));
    CHECK(sd_ckpt_read_tensor(&c, "opt:momentum", 5, mom2) == SD_ERR_DATA);
    CHECK_ERR_HAS("'opt:momentum' has 6 elements, expected 5");
    CHECK(sd_ckpt_read_tensor(&c, "opt:nothing", 5, mom2) == SD_ERR_DATA);
    CHECK_ERR_HAS("missing tensor 'opt:nothing'");
    CHECK(sd_ckpt_meta(&c, SD_META_MODEL) && !strcmp(sd_ckpt_meta(&c, SD_META_MODEL), "deeplab-mini"));
    CHECK(sd_ckpt_meta(&c, SD_META_ITER) && !strcmp(sd_ckpt_meta(&c, SD_META_ITER), "120000"));
    CHECK(sd_ckpt_meta(&c, SD_META_CONFIG) &&
          !strcmp(sd_ckpt_meta(&c, SD_META_CONFIG), "lr = 2.5e-4\nname = \"quoted\\path\"\t\x01"));
    CHECK(sd_ckpt_meta(&c, "absent") == NULL);
    /* the file's data section is 8-byte aligned, as other readers expect */
    CHECK(c.st.data_start % 8 == 0);
    sd_ckpt_close(&c);
    sd_params_free(&a);
    sd_params_free(&b);
}

void TEST_namespaces(void);
void TEST_namespaces(void)
{
    sd_params m, d, m2, d2;
    make_params(&m, 3);
    make_params(&d, 2);
    make_params(&m2, 3);
    make_params(&d2, 2);
    fill_params(&m, 1);
    fill_params(&d, 2);
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_params(&w, "", &m));
    CHECK_OK(sd_ckpt_writer_add_params(&w, "disc:", &d));
    CHECK(sd_ckpt_writer_add_params(&w, "disc.", &d) == SD_ERR_ARG);
    CHECK_ERR_HAS("namespace 'disc.'");
    const char *path = tmp_path("ns.safetensors");
    CHECK_OK(sd_ckpt_writer_save(&w, path));
    sd_ckpt_writer_free(&w);
    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    sd_ckpt_report rep;
    /* the model alone: discriminator tensors are not "unexpected" */
    CHECK_OK(sd_ckpt_load_params(&c, "", &m2, true, &rep));
    CHECK(rep.unexpected == 0 && rep.loaded == m.n);
    CHECK_OK(sd_ckpt_load_params(&c, "disc:", &d2, true, &rep));
    CHECK(rep.unexpected == 0 && rep.loaded == d.n);
    CHECK(!memcmp(d.groups[0].data, d2.groups[0].data, d.groups[0].numel * 4));
    CHECK(!memcmp(m.groups[1].data, m2.groups[1].data, m.groups[1].numel * 4));
    sd_ckpt_close(&c);
    sd_params_free(&m);
    sd_params_free(&d);
    sd_params_free(&m2);
    sd_params_free(&d2);
}

/* A PyTorch-style file: DataParallel "module." names, num_batches_tracked
 * (I64), one extra and one mis-shaped tensor, one missing. */
void TEST_load_report(void);
void TEST_load_report(void)
{
    sd_params p;
    make_params(&p, 4);
    float w1[4 * 27], g[4], bb[4], rm[4], rv[4], cls[5 * 3 * 9], extra[2];
    for (int i = 0; i < 4 * 27; i++)
        w1[i] = (float)i;
    for (int i = 0; i < 4; i++) {
        g[i] = 1 + i;
        bb[i] = -i;
        rm[i] = 0.5f * i;
        rv[i] = 2 + i;
    }
    memset(cls, 0, sizeof cls);
    extra[0] = extra[1] = 9;
    sd_st_entry e[] = {
        {"module.conv1.weight", 4, {4, 3, 3, 3}, w1},
        {"module.bn1.weight", 1, {4}, g},
        {"module.bn1.bias", 1, {4}, bb},
        {"module.bn1.running_mean", 1, {4}, rm},
        {"module.bn1.running_var", 1, {4}, rv},
        {"module.bn1.num_batches_tracked", 0, {0}, extra},
        {"layer5.conv2d_list.0.weight", 4, {5, 3, 3, 3}, cls},   /* model has 4 input channels */
        {"layer9.weight", 1, {2}, extra},
    };
    const char *path = tmp_path("pt.safetensors");
    CHECK_OK(sd_st_write(path, 8, e, 0, NULL, NULL));
    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    sd_ckpt_report rep;
    sd_log_set_level(0);
    CHECK_OK(sd_ckpt_load_params(&c, "", &p, false, &rep));
    CHECK(rep.loaded == 5);
    CHECK(rep.missing == 1);      /* layer5.conv2d_list.0.bias */
    CHECK(rep.mismatched == 1);   /* layer5.conv2d_list.0.weight */
    CHECK(rep.unexpected == 1);   /* layer9.weight; num_batches_tracked ignored */
    sd_tensor *x = sd_params_find(&p, "conv1.weight");
    CHECK(F32(x->data)[0] == 0.0f && F32(x->data)[107] == 107.0f);
    CHECK(F32(sd_params_find(&p, "bn1.running_var")->data)[3] == 5.0f);
    CHECK(sd_ckpt_load_params(&c, "", &p, true, &rep) == SD_ERR_DATA);
    CHECK_ERR_HAS("1 missing, 1 unexpected, 1 mis-shaped");
    CHECK_ERR_HAS("first: tensor 'layer5.conv2d_list.0.weight' has shape [5,3,3,3] in the checkpoint, the model expects [5,4,3,3]");
    sd_log_set_level(1);
    sd_ckpt_close(&c);

    /* a file for another model entirely fails even when not strict */
    sd_st_entry other[] = {{"features.0.weight", 1, {2}, extra}};
    CHECK_OK(sd_st_write(path, 1, other, 0, NULL, NULL));
    CHECK_OK(sd_ckpt_open(path, &c));
    sd_log_set_level(0);
    CHECK(sd_ckpt_load_params(&c, "", &p, false, &rep) == SD_ERR_DATA);
    sd_log_set_level(1);
    CHECK_ERR_HAS("no tensor matches");
    sd_ckpt_close(&c);
    sd_params_free(&p);
}

void TEST_truncated(void);
void TEST_truncated(void)
{
    sd_params a;
    make_params(&a, 4);
    fill_params(&a, 3);
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_params(&w, "", &a));
    const char *path = tmp_path("tr.safetensors");
    CHECK_OK(sd_ckpt_writer_save(&w, path));
    sd_ckpt_writer_free(&w);
    struct stat sb;
    stat(path, &sb);
    long full = (long)sb.st_size;
    /* cut inside the data: the message names the last tensor and an offset */
    CHECK(truncate(path, full - 3) == 0);
    sd_ckpt c;
    CHECK(sd_ckpt_open(path, &c) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'layer5.conv2d_list.0.bias'");
    CHECK_ERR_HAS("past the end of the file");
    /* cut inside the header */
    CHECK(truncate(path, 40) == 0);
    CHECK(sd_ckpt_open(path, &c) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("runs past the end of the file");
    CHECK(truncate(path, 5) == 0);
    CHECK(sd_ckpt_open(path, &c) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("too short");
    CHECK(sd_ckpt_open(tmp_path("nope.safetensors"), &c) == SD_ERR_IO);
    CHECK_ERR_HAS("nope.safetensors");
    sd_params_free(&a);
}

void TEST_hostile_headers(void);
void TEST_hostile_headers(void)
{
    uint8_t d[64] = {0};
    /* header length far beyond the file */
    {
        const char *p = tmp_path("huge.safetensors");
        FILE *f = fopen(p, "wb");
        uint8_t lb[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
        fwrite(lb, 1, 8, f);
        fwrite("{}", 1, 2, f);
        fclose(f);
        sd_st_file sf;
        CHECK(sd_st_read(p, &sf) == SD_ERR_FORMAT);
        CHECK_ERR_HAS("exceeds the");
    }
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d, 8) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("header byte");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},,}", d, 8) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("header byte 62: expected '\"'");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"Q8\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a': unsupported dtype \"Q8\"");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a': data_offsets [0, 8] hold 8 bytes, but shape and dtype F32 need 12");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a'");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    d, 12) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'b' (data bytes 4..12) overlaps tensor 'a'");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                    d, 20) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("hole of 4 bytes at file byte");
    CHECK_ERR_HAS("before tensor 'b'");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                    d, 16) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a' appears twice");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 12) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("4 trailing bytes");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", d, 8) ==
          SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a'");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999999]}}", d, 8) ==
          SD_ERR_FORMAT);
    CHECK_ERR_HAS("too large");
    CHECK(parse_raw("{\"__metadata__\":{\"model\":3}}", d, 0) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("value of \"model\" is not a string");
    CHECK(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 0) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("tensor 'a': missing \"data_offsets\"");
    CHECK(parse_raw("{\"a\\u0000b\":{}}", d, 0) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("NUL");
    CHECK(parse_raw("[1,2]", d, 0) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("expected '{'");
    CHECK(parse_raw("{\"__metadata__\":{\"x\":\"unterminated}}", d, 0) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("unterminated string");
    /* accepted: unknown fields skipped, escapes decoded, padding, empty file */
    CHECK_OK(parse_raw("{\"a\\u00e9\\n\":{\"extra\":[1,{\"k\":null}],\"dtype\":\"F32\",\"shape\":[1,2],"
                       "\"data_offsets\":[0,8]}, \"__metadata__\":{\"k\":\"v\\\"\"}}   ",
                       d, 8));
    CHECK_OK(parse_raw("{}", d, 0));
}

void TEST_half_precision(void);
void TEST_half_precision(void)
{
    /* F16: 1, -2, 0.5, 65504, smallest subnormal 2^-24, -0; BF16: 1, -3.5 */
    uint16_t h[6] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000};
    uint16_t bf[2] = {0x3f80, 0xc060};
    uint8_t buf[16];
    memcpy(buf, h, 12);
    memcpy(buf + 12, bf, 4);
    const char *p = tmp_path("half.safetensors");
    write_raw(p,
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}",
              buf, 16);
    sd_st_file f;
    CHECK_OK(sd_st_read(p, &f));
    float out[6];
    CHECK_OK(sd_st_to_f32(&f, sd_st_find(&f, "h"), out));
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 65504.0f);
    CHECK(out[4] == ldexpf(1.0f, -24));
    CHECK(out[5] == 0.0f && signbit(out[5]));
    CHECK_OK(sd_st_to_f32(&f, sd_st_find(&f, "b"), out));
    CHECK(out[0] == 1.0f && out[1] == -3.5f);
    sd_st_free(&f);
}

void TEST_write_errors(void);
void TEST_write_errors(void)
{
    float x = 1;
    sd_st_entry e[2] = {{"a", 1, {1}, &x}, {"a", 1, {1}, &x}};
    CHECK(sd_st_write(tmp_path("dup.safetensors"), 2, e, 0, NULL, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("'a' given twice");
    CHECK(sd_st_write("/nonexistent-dir/x.safetensors", 1, e, 0, NULL, NULL) == SD_ERR_IO);
    CHECK_ERR_HAS("/nonexistent-dir/x.safetensors.tmp");
    /* a failed save leaves an existing checkpoint untouched */
    const char *p = tmp_path("keep.safetensors");
    CHECK_OK(sd_st_write(p, 1, e, 0, NULL, NULL));
    e[1].data = NULL;
    e[1].name = "b";
    CHECK(sd_st_write(p, 2, e, 0, NULL, NULL) == SD_ERR_ARG);
    sd_st_file f;
    CHECK_OK(sd_st_read(p, &f));
    CHECK(f.n == 1);
    sd_st_free(&f);
    char tname[64];
    snprintf(tname, sizeof tname, "keep.safetensors.tmp.%d", (int)getpid());
    CHECK(access(tmp_path(tname), F_OK) != 0);
}

/* Another process's temporary (here a directory squatting on the old shared
 * name PATH.tmp, which made every save fail) does not disturb a save: each
 * process writes through a temporary of its own (PATH.tmp.PID). */
void TEST_tmp_name_per_process(void);
void TEST_tmp_name_per_process(void)
{
    float x = 1;
    sd_st_entry e[1] = {{"a", 1, {1}, &x}};
    const char *p = tmp_path("shared.safetensors");
    CHECK(mkdir(tmp_path("shared.safetensors.tmp"), 0755) == 0);
    CHECK(mkdir(tmp_path("shared.safetensors.tmp.1"), 0755) == 0);
    CHECK_OK(sd_st_write(p, 1, e, 0, NULL, NULL));
    sd_st_file f;
    CHECK_OK(sd_st_read(p, &f));
    CHECK(f.n == 1);
    sd_st_free(&f);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda-test-ckpt-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(TEST_round_trip_bit_exact);
    RUN(TEST_namespaces);
    RUN(TEST_load_report);
    RUN(TEST_truncated);
    RUN(TEST_hostile_headers);
    RUN(TEST_half_precision);
    RUN(TEST_write_errors);
    RUN(TEST_tmp_name_per_process);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return 1;
    TESTS_DONE();
}
