/*
 * progress.c — build progress on a terminal, in logs and as JSON events.
 */
#include "cli/progress.h"

#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"

int buildprog_mode_parse(const char *s)
{
    static const char *const names[] = {"auto", "tty", "plain", "json", "none"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(s, names[i])) {
            return (int)i;
        }
    }
    return -1;
}

static const char *event_name(BuildEventKind k)
{
    static const char *const names[] = {"started", "progress", "finished",
                                        "failed",  "cutoff",   "skipped"};
    return names[k];
}

static void human_rate(char *buf, size_t len, int64_t bytes, int64_t ns)
{
    double secs = ns > 0 ? (double)ns / 1e9 : 0;
    double rate = secs > 0 ? (double)bytes / secs : 0;
    snprintf(buf, len, "%.1f MiB/s", rate / (1024.0 * 1024.0));
}

static void emit_json(Progress *p, const BuildEvent *ev)
{
    JVal *o = json_object();
    json_add_str(o, "event", event_name(ev->kind));
    json_add_str(o, "node", ev->node->name);
    json_add_str(o, "action", step_kind_name(ev->node->kind));
    json_add_str(o, "output", ev->node->output);
    json_add_int(o, "done", ev->done);
    json_add_int(o, "total", ev->total);
    json_add_int(o, "time_ms", (clock_ns() - p->start_ns) / 1000000);
    if (ev->kind == BUILD_EV_PROGRESS) {
        json_add_int(o, "progress_done", ev->progress_done);
        json_add_int(o, "progress_total", ev->progress_total);
    }
    if (ev->kind == BUILD_EV_FINISHED || ev->kind == BUILD_EV_FAILED) {
        json_add_int(o, "duration_ms", ev->duration_ns / 1000000);
    }
    if (ev->kind == BUILD_EV_FINISHED) {
        json_add_int(o, "bytes", ev->bytes);
        json_add_bool(o, "unchanged", ev->unchanged);
    }
    if (ev->message) {
        json_add_str(o, ev->kind == BUILD_EV_FAILED ? "error" : "reason", ev->message);
    }
    StrBuf sb = STRBUF_INIT;
    json_print_compact(&sb, o);
    fprintf(p->out, "%s\n", sb_str(&sb));
    fflush(p->out);
    sb_release(&sb);
    json_free(o);
}

static void emit_plain(Progress *p, const BuildEvent *ev)
{
    const Node *n = ev->node;
    char rate[32];
    switch (ev->kind) {
    case BUILD_EV_FINISHED:
        human_rate(rate, sizeof(rate), ev->bytes, ev->duration_ns);
        fprintf(p->out, "[%d/%d] %s %s -> %s (%.2f s, %s%s)\n", ev->done, ev->total,
                step_kind_name(n->kind), n->name, n->output, (double)ev->duration_ns / 1e9, rate,
                ev->unchanged ? ", unchanged" : "");
        break;
    case BUILD_EV_CUTOFF:
        fprintf(p->out, "[%d/%d] %s: up to date (%s)\n", ev->done, ev->total, n->name, ev->message);
        break;
    case BUILD_EV_FAILED:
        fprintf(p->out, "[%d/%d] FAILED %s %s\n", ev->done, ev->total, step_kind_name(n->kind),
                n->name);
        break;
    default: return;
    }
    fflush(p->out);
}

static void emit_tty(Progress *p, const BuildEvent *ev)
{
    int64_t now = clock_ns();
    if (ev->kind == BUILD_EV_PROGRESS && now - p->last_draw_ns < 100000000) {
        return; /* at most ten redraws a second */
    }
    p->last_draw_ns = now;
    char extra[64] = "";
    if (ev->kind == BUILD_EV_PROGRESS && ev->progress_total > 0) {
        snprintf(extra, sizeof(extra), " %d%%",
                 (int)(100 * ev->progress_done / ev->progress_total));
    } else if (ev->kind == BUILD_EV_FINISHED) {
        human_rate(extra + 1, sizeof(extra) - 1, ev->bytes, ev->duration_ns);
        extra[0] = ' ';
    }
    fprintf(p->out, "\r[%d/%d] %s %s%s\033[K", ev->done, ev->total, ev->node->name,
            step_kind_name(ev->node->kind), extra);
    p->line_open = true;
    if (ev->kind == BUILD_EV_FAILED) {
        fputc('\n', p->out);
        p->line_open = false;
    }
    fflush(p->out);
}

static void on_event(void *opaque, const BuildEvent *ev)
{
    Progress *p = opaque;
    pthread_mutex_lock(&p->lock);
    switch (p->mode) {
    case PROGRESS_JSON: emit_json(p, ev); break;
    case PROGRESS_TTY: emit_tty(p, ev); break;
    case PROGRESS_PLAIN: emit_plain(p, ev); break;
    default: break;
    }
    if (ev->kind == BUILD_EV_FAILED) {
        fprintf(stderr, "imgpipe: image '%s': %s\n", ev->node->name, ev->message);
    }
    pthread_mutex_unlock(&p->lock);
}

void buildprog_init(Progress *p, ProgressMode mode, FILE *out)
{
    memset(p, 0, sizeof(*p));
    if (mode == PROGRESS_AUTO) {
        mode = isatty(fileno(out)) ? PROGRESS_TTY : PROGRESS_PLAIN;
    }
    p->mode = mode;
    p->out = out;
    p->start_ns = clock_ns();
    pthread_mutex_init(&p->lock, NULL);
    p->sink = (BuildEvents){on_event, p};
}

void buildprog_finish(Progress *p, const BuildStats *st, int ret)
{
    pthread_mutex_lock(&p->lock);
    int64_t ms = (clock_ns() - p->start_ns) / 1000000;
    if (p->line_open) {
        fputc('\n', p->out);
        p->line_open = false;
    }
    if (p->mode == PROGRESS_JSON) {
        JVal *o = json_object();
        json_add_str(o, "event", "build");
        json_add_str(o, "status", ret == 0 ? "ok" : "failed");
        json_add_int(o, "total", st->total);
        json_add_int(o, "run", st->run);
        json_add_int(o, "cutoff", st->cutoff);
        json_add_int(o, "failed", st->failed);
        json_add_int(o, "skipped", st->skipped);
        json_add_int(o, "adopted", st->adopted);
        json_add_int(o, "duration_ms", ms);
        StrBuf sb = STRBUF_INIT;
        json_print_compact(&sb, o);
        fprintf(p->out, "%s\n", sb_str(&sb));
        sb_release(&sb);
        json_free(o);
    } else if (p->mode != PROGRESS_NONE) {
        if (st->total == 0) {
            fprintf(p->out, "imgpipe: no work to do\n");
        } else {
            fprintf(p->out,
                    "imgpipe: %d step(s) run, %d up to date after cutoff, %d failed, %d skipped "
                    "(%.2f s)\n",
                    st->run, st->cutoff + st->adopted, st->failed, st->skipped, (double)ms / 1000);
        }
    }
    fflush(p->out);
    pthread_mutex_unlock(&p->lock);
}

void buildprog_release(Progress *p)
{
    pthread_mutex_destroy(&p->lock);
}
