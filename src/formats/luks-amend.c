/*
 * luks-amend.c — adding and erasing key slots (qemu-img amend), with
 * qemu 7.2's QCryptoBlockAmendOptionsLUKS semantics and messages:
 *
 *   state=active   new-secret=ID [keyslot=N] [iter-time=MS]
 *                  unlock with the open's key-secret, store the master key
 *                  in slot N (default: the first inactive one); an active
 *                  slot is only overwritten with --force.
 *   state=inactive keyslot=N [old-secret=ID] | old-secret=ID
 *                  erase slot N (checking it holds old-secret when given),
 *                  or every slot old-secret opens; erasing the last active
 *                  slot needs --force.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "formats/luks-int.h"

typedef struct AmendParams {
    bool active;
    const char *new_secret, *old_secret;
    bool has_keyslot, has_iter_time;
    int64_t keyslot;
    uint64_t iter_time;
} AmendParams;

static const char *aopt(const Opts *o, const char *prefix, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return opts_get(o, key);
}

static int parse_amend(const Opts *o, const char *prefix, AmendParams *p, Error **errp)
{
    memset(p, 0, sizeof(*p));
    const char *state = aopt(o, prefix, "state");
    if (!state) {
        error_setg(errp, "Parameter 'state' is missing");
        return -EINVAL;
    }
    if (strcmp(state, "active") && strcmp(state, "inactive")) {
        error_setg(errp, "Parameter 'state' does not accept value '%s'", state);
        return -EINVAL;
    }
    p->active = !strcmp(state, "active");
    p->new_secret = aopt(o, prefix, "new-secret");
    p->old_secret = aopt(o, prefix, "old-secret");
    const char *ks = aopt(o, prefix, "keyslot"), *it = aopt(o, prefix, "iter-time");
    p->has_keyslot = ks != NULL;
    p->has_iter_time = it != NULL;
    uint64_t u;
    if (ks && (parse_int64(ks, &p->keyslot) < 0 && parse_uint64(ks, &u) < 0)) {
        error_setg(errp, "Parameter 'keyslot' expects a number");
        return -EINVAL;
    }
    p->iter_time = LUKS_DEFAULT_ITER_MS;
    if (it && parse_uint64(it, &p->iter_time) < 0) {
        error_setg(errp, "Parameter 'iter-time' expects a number");
        return -EINVAL;
    }
    return 0;
}

static int count_active(const LuksVolume *v)
{
    int n = 0;
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        n += v->hdr.slots[i].active == LUKS_SLOT_ENABLED;
    }
    return n;
}

static int check_slot_index(int64_t slot, Error **errp)
{
    if (slot < 0 || slot >= LUKS_NUM_SLOTS) {
        error_setg(errp, "Invalid keyslot %d specified, must be between 0 and %d", (int)slot,
                   LUKS_NUM_SLOTS - 1);
        return -EINVAL;
    }
    return 0;
}

static int add_keyslot(LuksVolume *v, const LuksIO *io, const AmendParams *p, bool force,
                       Error **errp)
{
    if (!p->new_secret) {
        error_setg(errp, "'new-secret' is required to activate a keyslot");
        return -EINVAL;
    }
    if (p->old_secret) {
        error_setg(errp, "'old-secret' must not be given when activating keyslots");
        return -EINVAL;
    }
    int slot = -1;
    if (p->has_keyslot) {
        if (check_slot_index(p->keyslot, errp) < 0) {
            return -EINVAL;
        }
        slot = (int)p->keyslot;
    }
    for (int i = 0; slot < 0 && i < LUKS_NUM_SLOTS; i++) {
        slot = v->hdr.slots[i].active == LUKS_SLOT_ENABLED ? -1 : i;
    }
    if (slot < 0) {
        error_setg(errp, "Can't add a keyslot - all keyslots are in use");
        return -ENOSPC;
    }
    if (!force && v->hdr.slots[slot].active == LUKS_SLOT_ENABLED) {
        error_setg(errp, "Refusing to overwrite active keyslot %d - please erase it first", slot);
        return -EBUSY;
    }
    size_t old_len = 0, new_len = 0;
    char *old_pw = luks_secret_get(v->secret_id ? v->secret_id : "", &old_len, errp);
    if (!old_pw) {
        return -EINVAL;
    }
    uint8_t mk[LUKS_MAX_KEY_BYTES];
    int ret = luks_find_key(v, io, old_pw, old_len, mk, errp);
    char *new_pw = ret < 0 ? NULL : luks_secret_get(p->new_secret, &new_len, errp);
    if (ret == 0 && !new_pw) {
        ret = -EINVAL;
    }
    if (ret == 0) {
        ret = luks_store_key(v, io, slot, new_pw, new_len, mk, p->iter_time, NULL, errp);
    }
    explicit_bzero(mk, sizeof(mk));
    secret_store_free((uint8_t *)old_pw, old_len);
    secret_store_free((uint8_t *)new_pw, new_len);
    return ret;
}

static int erase_one(LuksVolume *v, const LuksIO *io, int slot, const char *old_pw, size_t old_len,
                     bool force, Error **errp)
{
    if (old_pw) {
        uint8_t mk[LUKS_MAX_KEY_BYTES];
        int rv = luks_load_key(v, io, slot, old_pw, old_len, mk, errp);
        explicit_bzero(mk, sizeof(mk));
        if (rv < 0) {
            return rv;
        }
        if (rv == 0) {
            error_setg(errp,
                       "Given keyslot %d doesn't contain the given old password for erase "
                       "operation",
                       slot);
            return -EACCES;
        }
    }
    if (!force && v->hdr.slots[slot].active != LUKS_SLOT_ENABLED) {
        error_setg(errp, "Given keyslot %d is already erased (inactive) ", slot);
        return -EINVAL;
    }
    if (!force && count_active(v) == 1) {
        error_setg(errp,
                   "Attempt to erase the only active keyslot %d which will erase all the data "
                   "in the image irreversibly - refusing operation",
                   slot);
        return -EINVAL;
    }
    return luks_erase_key(v, io, slot, errp);
}

static int erase_matching(LuksVolume *v, const LuksIO *io, const char *old_pw, size_t old_len,
                          bool force, Error **errp)
{
    bool match[LUKS_NUM_SLOTS] = {false};
    int n = 0;
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        uint8_t mk[LUKS_MAX_KEY_BYTES];
        int rv = luks_load_key(v, io, i, old_pw, old_len, mk, errp);
        explicit_bzero(mk, sizeof(mk));
        if (rv < 0) {
            return rv;
        }
        match[i] = rv == 1;
        n += rv == 1;
    }
    if (n == 0) {
        error_setg(errp, "No keyslots match given (old) password for erase operation");
        return -EACCES;
    }
    if (!force && n == count_active(v)) {
        error_setg(errp, "All the active keyslots match the (old) password that was given and "
                         "erasing them will erase all the data in the image irreversibly - "
                         "refusing operation");
        return -EINVAL;
    }
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        int ret = match[i] ? luks_erase_key(v, io, i, errp) : 0;
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static int erase_keyslots(LuksVolume *v, const LuksIO *io, const AmendParams *p, bool force,
                          Error **errp)
{
    if (p->new_secret) {
        error_setg(errp, "'new-secret' must not be given when erasing keyslots");
        return -EINVAL;
    }
    if (p->has_iter_time) {
        error_setg(errp, "'iter-time' must not be given when erasing keyslots");
        return -EINVAL;
    }
    size_t old_len = 0;
    char *old_pw = NULL;
    if (p->old_secret && !(old_pw = luks_secret_get(p->old_secret, &old_len, errp))) {
        return -EINVAL;
    }
    int ret;
    if (p->has_keyslot) {
        ret = check_slot_index(p->keyslot, errp);
        if (ret == 0) {
            ret = erase_one(v, io, (int)p->keyslot, old_pw, old_len, force, errp);
        }
    } else if (old_pw) {
        ret = erase_matching(v, io, old_pw, old_len, force, errp);
    } else {
        error_setg(errp, "To erase keyslot(s), either explicit keyslot index or the password "
                         "currently contained in them must be given");
        ret = -EINVAL;
    }
    secret_store_free((uint8_t *)old_pw, old_len);
    return ret;
}

int luks_volume_amend(LuksVolume *v, const LuksIO *io, const Opts *o, const char *prefix,
                      bool force, Error **errp)
{
    AmendParams p;
    int ret = parse_amend(o, prefix, &p, errp);
    if (ret < 0) {
        return ret;
    }
    return p.active ? add_keyslot(v, io, &p, force, errp) : erase_keyslots(v, io, &p, force, errp);
}
