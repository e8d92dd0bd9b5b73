/*
 * opts.h — QemuOpts-style option strings and typed option tables.
 *
 * Syntax (as qemu's QemuOpts): "key=value,key2=value2,flag".
 *   - ",," inside a key or value is a literal comma;
 *   - a bare "key" means key=on ("nokey" is NOT treated as key=off: qemu
 *     deprecated that; we reject it as an unknown key unless the table has it);
 *   - with an implied key, a first element without '=' is that key's value
 *     (e.g. "--object secret,id=s0" has implied key "qom-type");
 *   - repeated keys accumulate; lookups return the LAST occurrence, so
 *     several `-o` arguments joined with ',' behave like qemu-img's.
 *
 * OptDesc tables drive `-o help`, validation and the "Formatting ..." line.
 */
#ifndef IMGPIPE_COMMON_OPTS_H
#define IMGPIPE_COMMON_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/util.h"

typedef enum {
    OPT_STRING,
    OPT_BOOL,
    OPT_NUMBER,
    OPT_SIZE,
} OptType;

/* One option a driver accepts.  Tables end with an entry whose name is NULL. */
typedef struct OptDesc {
    const char *name;
    OptType type;
    const char *help;
    const char *def_value_str; /* default shown in the "Formatting" line, or NULL */
} OptDesc;

typedef struct Opts {
    char **keys;
    char **values;
    size_t n, alloc;
} Opts;

#define OPTS_INIT        \
    {                    \
        NULL, NULL, 0, 0 \
    }
void opts_init(Opts *o);
void opts_release(Opts *o);
void opts_copy(Opts *dst, const Opts *src); /* dst must be initialised; appends */

/* Parse str and append its pairs to o.  On error o keeps what it had. */
int opts_parse(Opts *o, const char *str, const char *implied_key, Error **errp);
/* Append key=value (does not remove earlier occurrences). */
void opts_add(Opts *o, const char *key, const char *value);
/* Remove every occurrence of key, then append key=value. */
void opts_set(Opts *o, const char *key, const char *value);
/* Remove every occurrence; returns how many were removed. */
int opts_del(Opts *o, const char *key);
/* Last value for key, or NULL. */
const char *opts_get(const Opts *o, const char *key);
/* True if str contains an element "help" or "?" (qemu's has_help_option). */
bool opts_has_help(const char *str);

/*
 * Typed getters with qemu's error texts.  *out = def when the key is absent.
 *   bool:   on/off, yes/no, true/false, y/n   -> "Parameter 'K' expects 'on' or 'off'"
 *   number: unsigned decimal or 0x-hex        -> "Parameter 'K' expects a number"
 *   size:   parse_size()                      -> "Parameter 'K' expects a non-negative number below
 * 2^64..."
 */
int opts_get_bool(const Opts *o, const char *key, bool def, bool *out, Error **errp);
int opts_get_number(const Opts *o, const char *key, uint64_t def, uint64_t *out, Error **errp);
int opts_get_size(const Opts *o, const char *key, uint64_t def, uint64_t *out, Error **errp);
int parse_opt_bool(const char *name, const char *value, bool *out, Error **errp);

/* Find a descriptor by name in a NULL-terminated table (NULL if absent). */
const OptDesc *optdesc_find(const OptDesc *desc, const char *name);
/*
 * Check every key of o against the tables (any of the NULL-terminated
 * `descs`, itself NULL-terminated) and parse every value by its type.
 * Error: "Invalid parameter 'K'" (qemu's text), or the typed-getter text.
 */
int opts_validate(const Opts *o, const OptDesc *const *descs, Error **errp);
/* "Supported options:\n  name=<type>    - help\n..." sorted by name, as qemu-img. */
void optdesc_print_help(StrBuf *sb, const OptDesc *const *descs);

#endif
