/*
 * plan.h — decide, for every wanted node, whether its output is up to date
 * and if not, why (ninja's DependencyScan with `-d explain`).
 *
 * A node is CLEAN when its action key equals the recorded one and its
 * output is the recorded output (same fingerprint, or same digest after a
 * rehash); DIRTY when it must run; WAITING when an input will be rebuilt,
 * so that its key is unknown until that input finishes (the executor then
 * calls plan_evaluate(); an unchanged input digest makes it CLEAN: early
 * cutoff).  Sources are CLEAN once hashed.
 *
 * Planning reads no image content when nothing changed: every digest comes
 * from the cache through an unchanged stat fingerprint.
 */
#ifndef IMGPIPE_PLANNER_PLAN_H
#define IMGPIPE_PLANNER_PLAN_H

#include <stdint.h>

#include "common/error.h"
#include "planner/cache.h"
#include "planner/digest.h"
#include "planner/graph.h"

typedef struct Plan {
    State *s;
    Cache *cache;
    int64_t epoch; /* SOURCE_DATE_EPOCH hashed into keys */
    Node **order;  /* wanted nodes, inputs before dependents */
    size_t n_order;
    int n_sources, n_clean, n_dirty, n_waiting;
    DigestStats stats;
} Plan;

/*
 * Plan the closure of targets (all nodes if n_targets is 0).  Fails if an
 * input file cannot be hashed or the cache cannot be written.
 */
int plan_init(Plan *p, State *s, Cache *c, Node *const *targets, size_t n_targets, int64_t epoch,
              Error **errp);
void plan_release(Plan *p);

/*
 * Decide n, whose inputs all have known digests: sets n->key, n->status
 * (CLEAN or DIRTY), n->reason and, if CLEAN, n->digest.
 */
int plan_evaluate(Plan *p, Node *n, Error **errp);

/* "up-to-date", "will-run", "source", ... for n->status (plan/graph output). */
const char *plan_status_name(const Node *n);

#endif
