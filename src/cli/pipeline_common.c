/*
 * pipeline_common.c — option parsing and project loading for the pipeline
 * commands (see pipeline_common.h).
 */
#include "cli/pipeline_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/recipe.h"

int report_error(Error *err)
{
    fprintf(stderr, "imgpipe: %s\n", error_get_pretty(err));
    error_free(err);
    return 1;
}

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "imgpipe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return -1;
}

static int parse_option(PipeArgs *a, int c, unsigned allowed, const char *usage)
{
    int64_t n;
    switch (c) {
    case 'f': a->recipe = optarg; return 0;
    case 'D':
        a->defines = xrealloc(a->defines, (a->n_defines + 1) * sizeof(char *));
        a->defines[a->n_defines++] = optarg;
        return 0;
    case 'j':
        if (parse_int64(optarg, &n) < 0 || n < 1 || n > 1024) {
            return usage_error(usage, "invalid -j value '%s'", optarg);
        }
        a->jobs = (int)n;
        return 0;
    case 'k': a->keep_going = true; return 0;
    case 'P':
        if (buildprog_mode_parse(optarg) < 0) {
            return usage_error(usage, "invalid --progress mode '%s' (auto, tty, plain, json, none)",
                               optarg);
        }
        a->progress = (ProgressMode)buildprog_mode_parse(optarg);
        return 0;
    case 'J': a->json = true; return 0;
    case 'F':
        if (strcmp(optarg, "dot") && strcmp(optarg, "json")) {
            return usage_error(usage, "invalid --format '%s' (dot or json)", optarg);
        }
        a->format = optarg;
        return 0;
    case 'd':
        if (!strcmp(optarg, "explain")) {
            a->d_explain = true;
        } else if (!strcmp(optarg, "stats")) {
            a->d_stats = true;
        } else {
            return usage_error(usage, "unknown debug mode '%s' (explain, stats)", optarg);
        }
        return 0;
    }
    return usage_error(usage, "%s", "invalid option");
}

static bool option_allowed(int c, unsigned allowed)
{
    switch (c) {
    case 'j': return allowed & PA_JOBS;
    case 'k': return allowed & PA_KEEP;
    case 'P': return allowed & PA_PROGRESS;
    case 'J': return allowed & PA_JSON;
    case 'F': return allowed & PA_FORMAT;
    case 'd': return allowed & PA_DEBUG;
    default: return true;
    }
}

int pipe_args_parse(PipeArgs *a, int argc, char **argv, unsigned allowed, const char *usage)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},     {"define", required_argument, NULL, 'D'},
        {"jobs", required_argument, NULL, 'j'},     {"keep-going", no_argument, NULL, 'k'},
        {"progress", required_argument, NULL, 'P'}, {"json", no_argument, NULL, 'J'},
        {"format", required_argument, NULL, 'F'},   {"debug", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->recipe = "imgpipe.yaml";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    a->jobs = cores > 0 ? (int)cores : 1;
    a->format = "dot";
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "f:D:j:kd:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        if (c == '?' || !option_allowed(c, allowed)) {
            const char *opt = argv[optind - 1];
            return usage_error(usage, "unknown option '%s'", opt);
        }
        if (parse_option(a, c, allowed, usage) < 0) {
            return -1;
        }
    }
    a->targets = argv + optind;
    a->n_targets = (size_t)(argc - optind);
    return 0;
}

void pipe_args_release(PipeArgs *a)
{
    free(a->defines);
}

static int parse_epoch(int64_t *epoch, Error **errp)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    *epoch = 0; /* unset: the Unix epoch, so that builds are reproducible by default */
    if (s && *s && (parse_int64(s, epoch) < 0 || *epoch < 0)) {
        error_setg(errp, "invalid SOURCE_DATE_EPOCH '%s'", s);
        return -EINVAL;
    }
    return 0;
}

int project_open(Project *p, const PipeArgs *a, bool with_cache, Error **errp)
{
    memset(p, 0, sizeof(*p));
    int ret = parse_epoch(&p->epoch, errp);
    if (ret < 0) {
        return ret;
    }
    char *real = realpath(a->recipe, NULL);
    if (!real) {
        error_setg_errno(errp, errno, "cannot open recipe '%s'", a->recipe);
        return -ENOENT;
    }
    char *dir = path_dirname(real);
    state_init(&p->state, dir);
    p->state_ready = true;
    ret = recipe_load(&p->state, a->recipe, a->defines, a->n_defines, errp);
    if (ret == 0 && with_cache) {
        char *cdir = xasprintf("%s/.imgpipe", dir);
        char *db = xasprintf("%s/cache.db", cdir);
        ret = mkdir_p(cdir, errp);
        if (ret == 0) {
            ret = cache_open(db, &p->cache, errp);
        }
        free(db);
        free(cdir);
    }
    free(dir);
    free(real);
    return ret;
}

void project_close(Project *p)
{
    cache_close(p->cache);
    if (p->state_ready) {
        state_release(&p->state);
    }
    memset(p, 0, sizeof(*p));
}

static Node *find_target(Project *p, const char *name)
{
    Node *n = state_lookup(&p->state, name);
    char *rel = NULL;
    if (n || path_normalize_project(p->state.project_dir, name, &rel) < 0) {
        return n;
    }
    for (size_t i = 0; i < p->state.n_nodes && !n; i++) {
        if (!strcmp(p->state.nodes[i]->output, rel)) {
            n = p->state.nodes[i];
        }
    }
    free(rel);
    return n;
}

int project_targets(Project *p, char **names, size_t n, Node ***out, Error **errp)
{
    *out = xcalloc(n + 1, sizeof(Node *));
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = find_target(p, names[i]);
        if (!(*out)[i]) {
            error_setg(errp, "unknown target '%s'", names[i]);
            free(*out);
            *out = NULL;
            return -ENOENT;
        }
    }
    return 0;
}
