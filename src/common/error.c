/* error.c — see error.h. */
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static void error_setv(Error **errp, int errnum, const char *fmt, va_list ap)
{
    if (!errp || *errp) {
        return;
    }
    Error *e = xzalloc(sizeof(*e));
    char *msg = xvasprintf(fmt, ap);
    if (errnum) {
        int pos = errnum < 0 ? -errnum : errnum;
        e->msg = xasprintf("%s: %s", msg, strerror(pos));
        free(msg);
        e->err = pos;
    } else {
        e->msg = msg;
    }
    *errp = e;
}

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, 0, fmt, ap);
    va_end(ap);
}

void error_setg_errno(Error **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, errnum, fmt, ap);
    va_end(ap);
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    if (!errp || !*errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *prefix = xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = xasprintf("%s%s", prefix, (*errp)->msg);
    free(prefix);
    free((*errp)->msg);
    (*errp)->msg = msg;
}

void error_propagate(Error **dst, Error *src)
{
    if (!src) {
        return;
    }
    if (!dst || *dst) {
        error_free(src);
        return;
    }
    *dst = src;
}

void error_free(Error *err)
{
    if (err) {
        free(err->msg);
        free(err);
    }
}

void error_free_and_clear(Error **errp)
{
    if (errp) {
        error_free(*errp);
        *errp = NULL;
    }
}

const char *error_get_pretty(const Error *err)
{
    return err ? err->msg : "";
}

int error_to_ret(const Error *err)
{
    return err && err->err ? -err->err : -EINVAL;
}
