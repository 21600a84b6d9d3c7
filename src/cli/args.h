/* Option values and usage errors shared by the subcommands: whole-string
 * number parsing with ranges, WxH sizes, the "message, usage, exit 2" path
 * and Ctrl-C handling. Each command keeps its own option table and usage text. */
#ifndef SEGDA_CLI_ARGS_H
#define SEGDA_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Decimal integer in lo..hi, the whole string (no sign games: "-0" is 0). */
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_int(const char *s, int lo, int hi, int *out);
/* A seed: a non-negative decimal integer of up to 64 bits, the whole string. */
bool cli_parse_seed(const char *s, uint64_t *out);
/* A number in lo..hi, the whole string. */
bool cli_parse_float(const char *s, float lo, float hi, float *out);
/* "0.75,1,1.25": up to max numbers in 0.1..4, comma-separated. */
bool cli_parse_scales(const char *s, float *scales, int max, int *n);
/* "WxH" with each side in 8..16384. */
bool cli_parse_size(const char *s, int *w, int *h);
/* The value of a --flag[=B] option: NULL (the bare flag) is true; true/false,
 * 1/0, yes/no. False when s is none of these. */
bool cli_parse_bool(const char *s, bool *out);

/* Prints "segda CMD: <message>" and then the usage to stderr; returns 2, the
 * exit code of bad usage. */
int cli_usage_error(const char *cmd, void (*usage)(FILE *), const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for what getopt_long returned '?' or ':' for (opterr = 0): an
 * unknown option or one missing its value, named from argv. */
int cli_bad_option(const char *cmd, void (*usage)(FILE *), char **argv);

/* --precision VALUE: sets the library's compute precision (sd_set_precision).
 * A name other than f32/bf16 is a usage error (returns 2); bf16 on a CPU
 * without native bf16 prints a warning and runs in f32 (returns 0). */
int cli_precision(const char *cmd, void (*usage)(FILE *), const char *value);

/* --device cpu|cuda|cuda:N: selects the device of the command's tensors
 * (sd_device_select). A malformed value is a usage error (returns 2); a
 * device that is absent prints what was found ("--device cuda:0: no CUDA
 * device: segda devices lists none (...)") and returns 1. */
int cli_device(const char *cmd, void (*usage)(FILE *), const char *value);

/* Ctrl-C while a training loop runs: the handler calls sd_request_stop, so
 * the loop saves its state at the next iteration boundary and returns
 * SD_ERR_INTERRUPTED (the command exits 130). cli_release_interrupt puts
 * back the handler that was there before. Calls must pair, unnested. */
void cli_catch_interrupt(void);
void cli_release_interrupt(void);

#endif
