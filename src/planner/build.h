/*
 * build.h — the executor: run the DIRTY nodes of a Plan in dependency
 * order on a pool of -j threads (after ninja's build.h).
 *
 * Each step runs under an exclusive lock on its output
 * (.imgpipe/locks/NAME.lock), writes a temporary file beside the output,
 * which is fsync'ed, renamed into place and only then recorded in the
 * cache.  When a step finishes, its dependents that were WAITING are
 * evaluated again: if the new output has the old digest their keys are
 * unchanged and they are not run (early cutoff).
 *
 * Failure: the first failed step stops new work (running steps finish);
 * with keep_going only the failed step's dependents are skipped.
 */
#ifndef IMGPIPE_PLANNER_BUILD_H
#define IMGPIPE_PLANNER_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "planner/plan.h"
#include "planner/runner.h"

typedef enum BuildEventKind {
    BUILD_EV_STARTED,  /* a step began running */
    BUILD_EV_PROGRESS, /* progress_done/progress_total of a running step */
    BUILD_EV_FINISHED, /* output published and recorded */
    BUILD_EV_FAILED,   /* message says why */
    BUILD_EV_CUTOFF,   /* a waiting node turned out up to date */
    BUILD_EV_SKIPPED,  /* not run: an input failed, or the build stopped */
} BuildEventKind;

typedef struct BuildEvent {
    BuildEventKind kind;
    const Node *node;
    int done;  /* steps finished so far (incl. this one) */
    int total; /* steps that may run in this build */
    int64_t progress_done, progress_total;
    int64_t duration_ns;
    int64_t bytes;       /* FINISHED: size of the output */
    bool unchanged;      /* FINISHED: same digest as the previous output */
    const char *message; /* FAILED: the error; CUTOFF/SKIPPED: the reason */
} BuildEvent;

/* Receives events from any thread (the sink serialises itself). */
typedef struct BuildEvents {
    void (*fn)(void *opaque, const BuildEvent *ev);
    void *opaque;
} BuildEvents;

typedef struct BuildConfig {
    int jobs;        /* >= 1 */
    bool keep_going; /* -k */
    const Runner *runner;
    const BuildEvents *events; /* may be NULL */
} BuildConfig;

typedef struct BuildStats {
    int total; /* DIRTY + WAITING at the start */
    int run;   /* steps that ran and succeeded */
    int failed;
    int cutoff; /* WAITING nodes found up to date */
    int skipped;
    int adopted; /* built meanwhile by another imgpipe process */
} BuildStats;

/*
 * Run plan's DIRTY/WAITING nodes.  Returns 0 if every wanted node is up to
 * date at the end, -EIO if a step failed (each failure was reported as a
 * BUILD_EV_FAILED event; *errp holds the first), or another -errno.
 */
int build_run(Plan *plan, const BuildConfig *cfg, BuildStats *stats, Error **errp);

#endif
