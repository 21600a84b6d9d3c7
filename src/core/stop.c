/* The process-wide stop request: a SIGINT handler sets it, the training
 * loops (train, pretrain) poll it at iteration boundaries, save and return.
 * Installing the handler is the CLI's business (src/cli/args.c). */
#include <signal.h>

#include "segda/core.h"

/* sig_atomic_t, volatile: the only kind of object a handler may write. */
static volatile sig_atomic_t stop_flag;

void sd_request_stop(void) { stop_flag = 1; }
bool sd_stop_requested(void) { return stop_flag != 0; }
void sd_stop_clear(void) { stop_flag = 0; }
