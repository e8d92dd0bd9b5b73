/*
 * runner.h — how the executor gets a step's output made.
 *
 * The planner knows nothing of block devices: it hands each step to a
 * Runner, which writes the step's output at job->tmp_output.  The real one
 * (src/cli/runner_engine.c) calls the engine's img_* functions and
 * exec_step_run(); unit tests use a fake that writes files directly.
 *
 * Contract of run():
 *  - Called from executor worker threads, several at once (one per job):
 *    it must be thread-safe and must not print.
 *  - Writes a complete output at job->tmp_output (a file that does not
 *    exist yet, in the output's directory).  It never writes
 *    job->output or any input: the executor publishes tmp_output
 *    atomically after run() returns 0.
 *  - Returns 0, or -errno with *errp set; on failure the executor removes
 *    tmp_output and any "<tmp_output>.*" scratch file it left beside it.
 *  - Anything it stores that would vary between runs (UUIDs, timestamps)
 *    derives from job->key and job->epoch.
 */
#ifndef IMGPIPE_PLANNER_RUNNER_H
#define IMGPIPE_PLANNER_RUNNER_H

#include <stdint.h>

#include "common/error.h"
#include "planner/graph.h"
#include "planner/sha256.h"

typedef struct RunnerJob {
    const State *state;
    const Node *node;
    const char *project_dir;   /* absolute; the working directory of exec steps */
    const char *output;        /* absolute final output path */
    const char *tmp_output;    /* absolute path to write */
    const char *const *inputs; /* absolute output path of node->inputs[i].node */
    const Sha256 *key;         /* the action key */
    int64_t epoch;             /* SOURCE_DATE_EPOCH */
    const char *log_path;      /* absolute path for the step's own log */
    /* Report progress (bytes or any unit); may be called from any thread. */
    void (*progress)(void *opaque, int64_t done, int64_t total);
    void *progress_opaque;
} RunnerJob;

typedef struct Runner {
    int (*run)(void *opaque, const RunnerJob *job, Error **errp);
    void *opaque;
} Runner;

/*
 * The `exec` step, for runners: run node->argv with ${out}, ${in}, ${inN},
 * ${uuid} substituted, in a scrubbed environment (PATH, HOME and TMPDIR in
 * a fresh temporary directory, LC_ALL=C, TZ=UTC, SOURCE_DATE_EPOCH, the
 * recipe's env), in the project directory, stdin from /dev/null,
 * stdout+stderr to job->log_path.  The child dies with its parent thread
 * (PR_SET_PDEATHSIG).  Fails if the command fails or does not create
 * ${out}.
 */
int exec_step_run(const RunnerJob *job, Error **errp);

/* A UUID string derived from the action key (for ${uuid}); buf[37]. */
void key_uuid(const Sha256 *key, char *buf);

#endif
