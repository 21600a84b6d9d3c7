/* The image files a command is given (one file, or a folder searched
 * recursively) and mkdir -p: shared by predict and translate, which write
 * one output per input under mirrored subfolders. */
#ifndef SEGDA_CLI_FILES_H
#define SEGDA_CLI_FILES_H

#include "segda/core.h"

typedef struct cli_files {
    char **v;   /* [n] malloc'd paths, sorted */
    int n, cap;
    bool dir;   /* input was a folder (paths are input/REL), not one file */
} cli_files;

/* input itself when it is a file, else every .png/.jpg/.jpeg below the folder
 * input (hidden entries skipped, 16 levels at most), sorted by path. Errors
 * name input: unreadable, or SD_ERR_DATA when no image is found. */
sd_status cli_files_images(const char *input, cli_files *l);
/* The part of l->v[i] below the input folder ("a/x.png"), or its base name
 * when the input was one file. */
const char *cli_files_rel(const cli_files *l, const char *input, int i);
void cli_files_free(cli_files *l);


#endif
