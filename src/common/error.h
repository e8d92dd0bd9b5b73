/*
 * error.h — the Error convention (after QEMU's include/qapi/error.h).
 *
 * Control-plane functions (open, create, check, amend, recipe loading...)
 * return int (0 or -errno) and take `Error **errp` as their last argument.
 * On failure they set *errp to one human-readable message.  Callers add
 * context on the way up with error_prepend(); only the CLI prints it, once,
 * as "imgpipe: <message>".
 *
 * Rules:
 *  - errp may be NULL: the error is then dropped.
 *  - The first error wins: setting an error on a non-NULL *errp keeps the
 *    first one (a second failure is a consequence, not the cause).
 *  - Messages are lower-case-first when they are ours, name the thing first
 *    ("'base.qcow2': backing file loop"), and end without a full stop.
 *    Messages that mirror qemu-img's keep qemu-img's exact wording.
 */
#ifndef IMGPIPE_COMMON_ERROR_H
#define IMGPIPE_COMMON_ERROR_H

#include <stdarg.h>

#define IMGPIPE_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef struct Error {
    char *msg;
    int err; /* positive errno behind the message, or 0 */
} Error;

/* Set *errp to a new error built from fmt. */
void error_setg(Error **errp, const char *fmt, ...) IMGPIPE_PRINTF(2, 3);
/* Same, appending ": strerror(errnum)" (errnum positive or negative). */
void error_setg_errno(Error **errp, int errnum, const char *fmt, ...) IMGPIPE_PRINTF(3, 4);
/* Prefix an existing error's message: "<fmt>" + old message. No-op if unset. */
void error_prepend(Error **errp, const char *fmt, ...) IMGPIPE_PRINTF(2, 3);
/* Move src into *dst (or free it if dst is NULL or already set). */
void error_propagate(Error **dst, Error *src);
void error_free(Error *err);
/* Free *errp and reset it to NULL. */
void error_free_and_clear(Error **errp);
const char *error_get_pretty(const Error *err);
/* -errno for the error (or -EINVAL if it carries none). */
int error_to_ret(const Error *err);

#endif
