/*
 * fault_main.c — imgpipe-faulty: the imgpipe binary with the fault filter
 * installed from IMGPIPE_FAULT (see fault_file.h for the syntax), for the
 * crash and I/O-error tests.  It also prints the operation count at exit
 * when IMGPIPE_FAULT_COUNT is set ("fault-count: N" for the spec's op, and
 * "fault-counts: write=W flush=F"), so a test can size its sweeps.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fault_file.h"

int imgpipe_main(int argc, char **argv);

static void report_count(void)
{
    fprintf(stderr, "fault-count: %ld\n", fault_count());
    fprintf(stderr, "fault-counts: write=%ld flush=%ld\n", fault_count_of(FAULT_ON_WRITE),
            fault_count_of(FAULT_ON_FLUSH));
}

int main(int argc, char **argv)
{
    const char *s = getenv("IMGPIPE_FAULT");
    if (s) {
        FaultSpec spec;
        if (fault_parse(s, &spec) < 0) {
            fprintf(stderr, "imgpipe-faulty: bad IMGPIPE_FAULT '%s'\n", s);
            return 2;
        }
        fault_install(&spec);
        if (getenv("IMGPIPE_FAULT_COUNT")) {
            atexit(report_count);
        }
    }
    return imgpipe_main(argc, argv);
}
