/*
 * progress.h — how a build reports itself (the BuildEvents sink).
 *
 *   tty    one status line, rewritten: "[done/total] node action rate"
 *   plain  one line per finished step (logs, pipes)
 *   json   one JSON object per line per event, for CI systems:
 *          {"event":"started"|"progress"|"finished"|"failed"|"cutoff"|
 *           "skipped"|"build", "node":..., "action":..., ...}
 * Failures are also printed to stderr as "imgpipe: image 'x': message".
 */
#ifndef IMGPIPE_CLI_PROGRESS_H
#define IMGPIPE_CLI_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "planner/build.h"

typedef enum {
    PROGRESS_AUTO,
    PROGRESS_TTY,
    PROGRESS_PLAIN,
    PROGRESS_JSON,
    PROGRESS_NONE
} ProgressMode;

typedef struct Progress {
    ProgressMode mode;
    FILE *out;
    pthread_mutex_t lock;
    int64_t start_ns;
    int64_t last_draw_ns;
    bool line_open; /* tty: a status line is on screen */
    BuildEvents sink;
} Progress;

/* Parse "auto", "tty", "plain", "json", "none"; -1 if unknown. */
int buildprog_mode_parse(const char *s);
void buildprog_init(Progress *p, ProgressMode mode, FILE *out);
/* Print the final summary (and the "build" JSON event). */
void buildprog_finish(Progress *p, const BuildStats *st, int ret);
void buildprog_release(Progress *p);

#endif
