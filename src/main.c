/* main.c — the imgpipe executable (the command line is in src/cli). */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return imgpipe_main(argc, argv);
}
