/*
 * runner_engine.h — the real Runner: pipeline steps executed by the
 * engine's img_* functions (and exec_step_run() for `exec`).
 */
#ifndef IMGPIPE_CLI_RUNNER_ENGINE_H
#define IMGPIPE_CLI_RUNNER_ENGINE_H

#include "planner/runner.h"

/* A Runner backed by the engine; engine_init() is called on first use. */
const Runner *runner_engine(void);

#endif
