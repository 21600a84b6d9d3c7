/* The segda subcommands. Each returns the process exit code: 0 success,
 * 1 a failure of the work (message printed), 2 bad usage. Only src/cli/
 * prints usage or chooses exit codes. */
#ifndef SEGDA_CLI_H
#define SEGDA_CLI_H

int cli_synth(int argc, char **argv);
int cli_check_data(int argc, char **argv);
int cli_models(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_train(int argc, char **argv);
/* segda train --method detect (cmd_detect.c) */
int cli_detect_train(int argc, char **argv);
int cli_pretrain(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_gap(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_translate(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_plot(int argc, char **argv);

/* Prints "segda CMD: <sd_errmsg()>" to stderr and returns 1. */
int cli_fail(const char *cmd);

#endif
