/* segda check-data: not written yet (placeholder so the command table links). */
#include <stdio.h>

#include "cli/cli.h"

int cli_check_data(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "segda check-data: not implemented yet\n");
    return 2;
}
