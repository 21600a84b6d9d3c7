/* Option-value parsing and usage errors for src/cli/cmd_*.c (see args.h).
 * Library code never gets here: only the CLI prints usage. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "segda/dist.h"
#include "segda/tensor.h"
#include "segda/core.h"

/* The library's number parser (core.h) under the CLI's bool interface:
 * the callers name the option in their own usage message. */
bool cli_parse_long(const char *s, long lo, long hi, long *out)
{
    int64_t v;
    if (sd_parse_i64(s, lo, hi, "option", &v))
        return false;
    *out = (long)v;
    return true;
}

bool cli_parse_seed(const char *s, uint64_t *out)
{
    return sd_parse_u64(s, "--seed", out) == SD_OK;
}

bool cli_parse_int(const char *s, int lo, int hi, int *out)
{
    return sd_parse_int(s, lo, hi, "option", out) == SD_OK;
}

bool cli_parse_float(const char *s, float lo, float hi, float *out)
{
    return sd_parse_float(s, lo, hi, "option", out) == SD_OK;
}

bool cli_parse_size(const char *s, int *w, int *h)
{
    int a, b, n = 0;
    if (sscanf(s, "%dx%d%n", &a, &b, &n) != 2 || s[n] || a < 8 || b < 8 || a > 16384 || b > 16384)
        return false;
    *w = a;
    *h = b;
    return true;
}

int cli_usage_error(const char *cmd, void (*usage)(FILE *), const char *fmt, ...)
{
    fprintf(stderr, "segda %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return 2;
}

int cli_bad_option(const char *cmd, void (*usage)(FILE *), char **argv)
{
    /* getopt_long has moved optind past the offending word */
    return cli_usage_error(cmd, usage, "unknown option or missing value: %s", argv[optind - 1]);
}

bool cli_parse_scales(const char *s, float *scales, int max, int *n)
{
    *n = 0;
    for (;;) {
        char *end;
        float v = strtof(s, &end);
        if (end == s || !(v >= 0.1f && v <= 4.0f) || *n == max || (*end && *end != ','))
            return false;
        scales[(*n)++] = v;
        if (!*end)
            return true;
        s = end + 1;
    }
}

static struct sigaction prev_sigint;

static void on_sigint(int sig)
{
    (void)sig;
    sd_request_stop();
}

void cli_catch_interrupt(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &prev_sigint);
}

void cli_release_interrupt(void) { sigaction(SIGINT, &prev_sigint, NULL); }

int cli_precision(const char *cmd, void (*usage)(FILE *), const char *value)
{
    sd_dtype d;
    bool emulate;
    if (sd_dtype_parse(value, &d, &emulate) != SD_OK)
        return cli_usage_error(cmd, usage, "--precision '%s': expected f32, bf16 or bf16-emulated", value);
    if (sd_set_precision(d, emulate) != SD_OK)
        fprintf(stderr, "segda %s: warning: %s\n", cmd, sd_errmsg());
    return 0;
}

int cli_device(const char *cmd, void (*usage)(FILE *), const char *value)
{
    sd_device d;
    int index;
    if (sd_device_parse(value, &d, &index) != SD_OK)
        return cli_usage_error(cmd, usage, "--device '%s': expected cpu, cuda or cuda:N", value);
    if (sd_dist_device_select(value) != SD_OK) {   /* (under mpirun: one GPU per rank) */
        fprintf(stderr, "segda %s: --%s\n", cmd, sd_errmsg());
        return 1;
    }
    return 0;
}

bool cli_parse_bool(const char *s, bool *out)
{
    if (!s || !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "True") || !strcmp(s, "yes")) {
        *out = true;
        return true;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "False") || !strcmp(s, "no")) {
        *out = false;
        return true;
    }
    return false;
}
