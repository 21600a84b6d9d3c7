/* segda predict: not written yet (placeholder so the command table links). */
#include <stdio.h>

#include "cli/cli.h"

int cli_predict(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "segda predict: not implemented yet\n");
    return 2;
}
