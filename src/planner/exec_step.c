/*
 * exec_step.c — the `exec` step: an external command that writes an image
 * from declared inputs (see runner.h for the contract).
 *
 * The environment is rebuilt from scratch, so that a build does not depend
 * on who runs it: the same PATH everywhere (a recipe may set its own in
 * `env:`), HOME and TMPDIR in a fresh directory under .imgpipe/tmp, C
 * locale, UTC, SOURCE_DATE_EPOCH.  Everything is prepared before fork();
 * the child only calls async-signal-safe functions before execve().
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/runner.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void key_uuid(const Sha256 *key, char *buf)
{
    Sha256Ctx *h = sha256_new();
    Sha256 d;
    sha256_update(h, "imgpipe-uuid", 12);
    sha256_update(h, key->b, sizeof(key->b));
    sha256_final(h, &d);
    d.b[6] = (uint8_t)((d.b[6] & 0x0f) | 0x40); /* version 4 layout, derived */
    d.b[8] = (uint8_t)((d.b[8] & 0x3f) | 0x80);
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             d.b[0], d.b[1], d.b[2], d.b[3], d.b[4], d.b[5], d.b[6], d.b[7], d.b[8], d.b[9],
             d.b[10], d.b[11], d.b[12], d.b[13], d.b[14], d.b[15]);
}

/* The value of a runtime placeholder, or NULL if it is not one. */
static const char *placeholder(const RunnerJob *job, const char *name, size_t len, const char *uuid,
                               Error **errp)
{
    if (len == 3 && !memcmp(name, "out", 3)) {
        return job->tmp_output;
    }
    if (len == 4 && !memcmp(name, "uuid", 4)) {
        return uuid;
    }
    if (len >= 2 && !memcmp(name, "in", 2)) {
        size_t idx = 0;
        for (size_t i = 2; i < len; i++) {
            idx = idx * 10 + (size_t)(name[i] - '0');
        }
        if (idx < job->node->n_inputs) {
            return job->inputs[idx];
        }
        error_setg(errp, "'${%.*s}': the step has %zu input image(s)", (int)len, name,
                   job->node->n_inputs);
    }
    return NULL;
}

static int substitute(const RunnerJob *job, const char *arg, const char *uuid, char **out,
                      Error **errp)
{
    StrBuf sb = STRBUF_INIT;
    sb_add(&sb, "");
    for (const char *p = arg; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            sb_addc(&sb, '$');
            p += 2;
            continue;
        }
        const char *end = p[0] == '$' && p[1] == '{' ? strchr(p, '}') : NULL;
        const char *val = end ? placeholder(job, p + 2, (size_t)(end - p - 2), uuid, errp) : NULL;
        if (end && !val) {
            sb_release(&sb);
            return -EINVAL;
        }
        if (val) {
            sb_add(&sb, val);
            p = end + 1;
        } else {
            sb_addc(&sb, *p++);
        }
    }
    *out = sb_detach(&sb);
    return 0;
}

static void env_set(char ***env, size_t *n, const char *name, const char *value)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < *n; i++) {
        if (!strncmp((*env)[i], name, len) && (*env)[i][len] == '=') {
            free((*env)[i]);
            (*env)[i] = xasprintf("%s=%s", name, value);
            return;
        }
    }
    *env = xrealloc(*env, (*n + 2) * sizeof(char *));
    (*env)[(*n)++] = xasprintf("%s=%s", name, value);
    (*env)[*n] = NULL;
}

static char **build_env(const RunnerJob *job, const char *home)
{
    char **env = NULL;
    size_t n = 0;
    char epoch[32], key[SHA256_HEX_LEN + 1];
    snprintf(epoch, sizeof(epoch), "%lld", (long long)job->epoch);
    sha256_to_hex(job->key, key);
    env_set(&env, &n, "PATH", DEFAULT_PATH);
    env_set(&env, &n, "HOME", home);
    env_set(&env, &n, "TMPDIR", home);
    env_set(&env, &n, "LC_ALL", "C");
    env_set(&env, &n, "TZ", "UTC");
    env_set(&env, &n, "SOURCE_DATE_EPOCH", epoch);
    env_set(&env, &n, "IMGPIPE_OUT", job->tmp_output);
    env_set(&env, &n, "IMGPIPE_ACTION_KEY", key);
    for (size_t i = 0; i < job->node->n_params; i++) {
        const Param *p = &job->node->params[i];
        if (!strncmp(p->key, "env.", 4)) {
            env_set(&env, &n, p->key + 4, p->value);
        }
    }
    return env;
}

static const char *env_get(char **env, const char *name)
{
    size_t len = strlen(name);
    for (; *env; env++) {
        if (!strncmp(*env, name, len) && (*env)[len] == '=') {
            return *env + len + 1;
        }
    }
    return NULL;
}

/* Resolve the program through the step's PATH (not ours). */
static char *find_program(const char *prog, const char *project_dir, const char *path)
{
    if (strchr(prog, '/')) {
        return path_join(project_dir, prog);
    }
    char *copy = xstrdup(path ? path : DEFAULT_PATH);
    char *found = NULL;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char *cand = xasprintf("%s/%s", dir, prog);
        if (access(cand, X_OK) == 0) {
            found = cand;
        } else {
            free(cand);
        }
    }
    free(copy);
    return found;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 ? 0 : 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The last non-empty line of the log, for the error message. */
static char *log_tail(const char *log_path)
{
    FILE *f = fopen(log_path, "r");
    char line[512], last[512] = "";
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) {
            memcpy(last, line, sizeof(last));
        }
    }
    if (f) {
        fclose(f);
    }
    return xstrdup(last);
}

static int wait_child(pid_t pid, const RunnerJob *job, const char *prog, Error **errp)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            error_setg_errno(errp, errno, "waitpid");
            return -errno;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    char *tail = log_tail(job->log_path);
    if (WIFSIGNALED(status)) {
        error_setg(errp, "'%s' killed by signal %d (log: %s)%s%s", prog, WTERMSIG(status),
                   job->log_path, *tail ? ": " : "", tail);
    } else {
        error_setg(errp, "'%s' failed with exit status %d (log: %s)%s%s", prog, WEXITSTATUS(status),
                   job->log_path, *tail ? ": " : "", tail);
    }
    free(tail);
    return -EIO;
}

static int spawn(const RunnerJob *job, const char *prog, char **argv, char **env, Error **errp)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int log = open(job->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (devnull < 0 || log < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", job->log_path);
        if (devnull >= 0) {
            close(devnull);
        }
        return -EIO;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        dup2(devnull, 0);
        dup2(log, 1);
        dup2(log, 2);
        if (chdir(job->project_dir) < 0) {
            _exit(126);
        }
        execve(prog, argv, env);
        _exit(127);
    }
    close(devnull);
    close(log);
    if (pid < 0) {
        error_setg_errno(errp, errno, "fork");
        return -errno;
    }
    return wait_child(pid, job, argv[0], errp);
}

int exec_step_run(const RunnerJob *job, Error **errp)
{
    const Node *n = job->node;
    char uuid[37];
    key_uuid(job->key, uuid);
    char **argv = xcalloc(n->argc + 1, sizeof(char *));
    int ret = 0;
    for (size_t i = 0; i < n->argc && ret == 0; i++) {
        ret = substitute(job, n->argv[i], uuid, &argv[i], errp);
    }
    char *tmproot = xasprintf("%s/.imgpipe/tmp", job->project_dir);
    char *home = xasprintf("%s/%s.XXXXXX", tmproot, n->name);
    if (ret == 0 && (ret = mkdir_p(tmproot, errp)) == 0 && !mkdtemp(home)) {
        ret = -errno;
        error_setg_errno(errp, errno, "cannot create '%s'", home);
    }
    char **env = ret == 0 ? build_env(job, home) : NULL;
    char *prog = ret == 0 ? find_program(argv[0], job->project_dir, env_get(env, "PATH")) : NULL;
    if (ret == 0 && !prog) {
        error_setg(errp, "'%s': command not found in PATH", argv[0]);
        ret = -ENOENT;
    }
    if (ret == 0) {
        ret = spawn(job, prog, argv, env, errp);
    }
    if (env) {
        remove_tree(home);
    }
    for (size_t i = 0; env && env[i]; i++) {
        free(env[i]);
    }
    for (size_t i = 0; i < n->argc; i++) {
        free(argv[i]);
    }
    free(env);
    free(argv);
    free(prog);
    free(home);
    free(tmproot);
    return ret;
}
