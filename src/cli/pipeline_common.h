/*
 * pipeline_common.h — what the pipeline commands share: option parsing,
 * opening a project (recipe + cache), resolving targets.
 */
#ifndef IMGPIPE_CLI_PIPELINE_COMMON_H
#define IMGPIPE_CLI_PIPELINE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/progress.h"
#include "common/error.h"
#include "planner/cache.h"
#include "planner/graph.h"

/* Which options a command accepts. */
enum {
    PA_JOBS = 1 << 0,     /* -j N */
    PA_KEEP = 1 << 1,     /* -k */
    PA_PROGRESS = 1 << 2, /* --progress=MODE */
    PA_JSON = 1 << 3,     /* --json */
    PA_FORMAT = 1 << 4,   /* --format=dot|json */
    PA_DEBUG = 1 << 5,    /* -d explain|stats */
};

typedef struct PipeArgs {
    const char *recipe; /* -f, default "imgpipe.yaml" */
    char **defines;     /* -D name=value */
    size_t n_defines;
    int jobs;
    bool keep_going;
    ProgressMode progress;
    bool json;
    const char *format;
    bool d_explain, d_stats;
    char **targets;
    size_t n_targets;
} PipeArgs;

/*
 * Parse argv (argv[0] is the command name).  Returns 0, 1 after --help was
 * printed, or -1 after a usage error was printed.
 */
int pipe_args_parse(PipeArgs *a, int argc, char **argv, unsigned allowed, const char *usage);
void pipe_args_release(PipeArgs *a);

typedef struct Project {
    State state;
    Cache *cache;
    bool state_ready;
    int64_t epoch;
} Project;

/* Load the recipe (and open the cache if with_cache). */
int project_open(Project *p, const PipeArgs *a, bool with_cache, Error **errp);
void project_close(Project *p);

/* Resolve target names (or output paths) to nodes; caller frees *out. */
int project_targets(Project *p, char **names, size_t n, Node ***out, Error **errp);

/* Print "imgpipe: <message>" for err and free it; returns 1. */
int report_error(Error *err);

#endif
