/*
 * key.h — action keys: what a node's output is a function of.
 *
 * key = SHA-256(preimage), where the preimage is a small line-oriented text
 * (stored in the cache so that `imgpipe explain` can diff it):
 *
 *   imgpipe-action 1            <- IMGPIPE_ACTION_VERSION: bump to rebuild all
 *   kind convert
 *   epoch 0                     <- SOURCE_DATE_EPOCH used for the build
 *   output-format qcow2
 *   param compress=zstd         <- normalized parameters, sorted by key
 *   param format=qcow2
 *   input from sha256:...       <- content digest of each input node, by role
 *   input from.backing sha256:..<- and of the backing chain it points at
 *   file rootfs sha256:...      <- digest of each file/directory input
 *
 * Names of images and absolute paths never appear, so two checkouts in
 * different directories compute the same keys and build bit-identical
 * outputs.  Every line's first two words are its identity ("param size",
 * "input from"); the rest is its value — what explain compares.
 */
#ifndef IMGPIPE_PLANNER_KEY_H
#define IMGPIPE_PLANNER_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "planner/graph.h"
#include "planner/sha256.h"

#define IMGPIPE_ACTION_VERSION 1

/*
 * Write n's preimage into sb.  Inputs whose digest is not known yet are
 * written as "(will be rebuilt)"; returns false in that case (the key would
 * be meaningless), true when the preimage is complete.  n->file_digests
 * must be set if n has FileDeps.
 */
bool key_preimage(const Node *n, int64_t epoch, StrBuf *sb);

/* Compute n->key and n->preimage; false if an input digest is unknown. */
bool key_compute(Node *n, int64_t epoch);

/*
 * Compare two preimages line by line, matching lines by identity.  Appends
 * one line per difference to out ("param size: 1073741824 -> 2147483648",
 * "input from: sha256:ab12.. -> sha256:cd34..", "+ param x=1", "- ...");
 * with brief, only the first difference, as a phrase for a plan reason.
 * Returns the number of differences.
 */
int preimage_diff(const char *old_text, const char *new_text, bool brief, StrBuf *out);

#endif
