/* segda gap: not written yet (placeholder so the command table links). */
#include <stdio.h>

#include "cli/cli.h"

int cli_gap(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "segda gap: not implemented yet\n");
    return 2;
}
