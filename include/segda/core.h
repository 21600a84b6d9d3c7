/* segda core: status codes, the per-thread error message, logging and the
 * deterministic random number generator. Everything else in libsegda builds
 * on these; nothing here allocates tensors. */
#ifndef SEGDA_CORE_H
#define SEGDA_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every fallible library function returns an sd_status (or NULL) and leaves
 * a message naming what failed and why in a per-thread buffer. Only src/cli/
 * prints messages and chooses exit codes. */
typedef enum sd_status {
    SD_OK = 0,
    SD_ERR_ARG,         /* a bad argument or option value */
    SD_ERR_SHAPE,       /* tensor shapes that do not fit an op */
    SD_ERR_IO,          /* a file could not be opened, read or written */
    SD_ERR_FORMAT,      /* a file's bytes are not what its format promises */
    SD_ERR_DATA,        /* well-formed input with wrong content (label ids, sizes) */
    SD_ERR_NOMEM,       /* an allocation failed */
    SD_ERR_NUMERIC,     /* a NaN or infinity where a finite number is needed */
    SD_ERR_UNSUPPORTED, /* a valid request this build cannot serve (device, dtype) */
    SD_ERR_INTERRUPTED, /* stopped by a signal */
    SD_STATUS_COUNT
} sd_status;

/* Sets the thread's message (printf-style) and returns `st`, so that
 * `return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));` reads well. */
sd_status sd_fail(sd_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with more context ("loading ckpt.st: ..."). */
sd_status sd_fail_prefix(sd_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *sd_errmsg(void);      /* "" when no error was recorded */
const char *sd_status_name(sd_status st);
void sd_error_clear(void);

/* Logging goes to stderr; level 0 quiet, 1 info (default), 2 debug. */
void sd_log_set_level(int level);
int sd_log_level(void);
void sd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counter-based generator (splitmix64 seeding + xoshiro256**): the same
 * seed always gives the same stream on every platform. Streams for worker
 * threads or samples are derived with sd_rng_fork, never shared. */
typedef struct sd_rng {
    uint64_t s[4];
} sd_rng;

void sd_rng_seed(sd_rng *r, uint64_t seed);
sd_rng sd_rng_fork(uint64_t seed, uint64_t stream); /* independent stream `stream` of `seed` */
uint64_t sd_rng_u64(sd_rng *r);
float sd_rng_uniform(sd_rng *r);                 /* [0, 1) */
float sd_rng_normal(sd_rng *r);                  /* N(0, 1) */
int sd_rng_int(sd_rng *r, int n);                /* [0, n) */

/* s as a JSON string literal (quotes, backslashes and control characters
 * escaped; NULL writes ""): the one escaper behind every JSON file segda
 * writes (logs, summaries, reports). */
void sd_json_str(FILE *f, const char *s);
/* v with `digits` significant digits, or null when not finite. */
void sd_json_num(FILE *f, double v, int digits);
/* Walks the JSON document text[0..len) and calls fn for every leaf with its
 * dotted path ("final.class_iou.road", arrays by index "skipped.0"): str
 * for a string (num NAN), else str NULL and num (null: NAN, true 1, false 0).
 * Malformed JSON is SD_ERR_FORMAT naming name and the byte. */
typedef void (*sd_json_leaf_fn)(void *ctx, const char *path, const char *str, double num);
sd_status sd_json_walk(const char *text, size_t len, const char *name, sd_json_leaf_fn fn, void *ctx);

/* The one number parser (src/core/util.c) of CLI options, configuration
 * files, checkpoint metadata and mapping.txt: the whole text must be the
 * number and inside lo..hi; otherwise SD_ERR_ARG with a message that starts
 * with `what` (the option, or FILE:LINE: key) and says what was expected. */
sd_status sd_parse_i64(const char *s, int64_t lo, int64_t hi, const char *what, int64_t *out);
sd_status sd_parse_int(const char *s, int lo, int hi, const char *what, int *out);
sd_status sd_parse_u64(const char *s, const char *what, uint64_t *out);
sd_status sd_parse_double(const char *s, double lo, double hi, const char *what, double *out);
sd_status sd_parse_float(const char *s, float lo, float hi, const char *what, float *out);

/* mkdir -p: every missing folder of dir (a path part that exists and is not
 * a folder is an error naming it). */
sd_status sd_mkdir_p(const char *dir);

/* The one directory lister: the entries of dir (files and folders, no
 * dot-files), sorted by name, that keep(name, is_dir, ctx) accepts (NULL:
 * all). sd_names_free releases the list. */
typedef struct sd_names {
    int n;
    char **v;
} sd_names;
sd_status sd_dir_list(const char *dir, bool (*keep)(const char *name, bool is_dir, void *ctx), void *ctx,
                      sd_names *out);
void sd_names_free(sd_names *l);

/* rm -rf without a shell: path and everything under it (symlinks removed,
 * never followed); a missing path is not an error. */
sd_status sd_remove_tree(const char *path);

/* The first failing job of an OpenMP loop: each job that fails calls
 * sd_first_error_keep with its index (the lowest index's status and message
 * are kept, whatever the thread timing; job is that index, LONG_MAX while
 * none failed, which a loop may read atomically to skip later jobs; count
 * counts the failures); after
 * the loop sd_first_error_raise sets that message on the calling thread (the
 * message is per thread) and returns the status (SD_OK when none failed). */
typedef struct sd_first_error {
    sd_status st;
    long job;
    int count;
    char msg[1024];
} sd_first_error;
void sd_first_error_init(sd_first_error *e);
void sd_first_error_keep(sd_first_error *e, long job, sd_status st);
sd_status sd_first_error_raise(const sd_first_error *e);

/* Allocation helpers that set an SD_ERR_NOMEM message on failure. */
void *sd_malloc(size_t n);
void *sd_calloc(size_t count, size_t size);
char *sd_strdup(const char *s);

/* One stop request for the whole process (src/core/stop.c). A SIGINT
 * handler calls sd_request_stop (it is async-signal-safe); a long-running
 * loop clears the request when it starts and, while it runs, checks
 * sd_stop_requested at each iteration boundary, saves its state and returns
 * SD_ERR_INTERRUPTED. */
void sd_request_stop(void);
bool sd_stop_requested(void);
void sd_stop_clear(void);

/* Number of threads kernels may use (OpenMP and BLAS); 0 = all cores. */
void sd_set_threads(int n);
int sd_threads(void);

#endif
