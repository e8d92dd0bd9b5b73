/*
 * graph.h — the pipeline's dependency graph (after ninja's graph.h/state.h).
 *
 * One State owns every Node of a loaded recipe: nodes are created by the
 * recipe loader (recipe.c), linked here (names resolved to pointers,
 * dependents recorded), checked for cycles, and then read by the planner,
 * the executor and the CLI.  Nothing else allocates or frees a Node.
 *
 * A Node is one image the recipe declares: a step kind, its parameters in
 * normalized form (sizes in bytes, defaults filled, keys sorted), the nodes
 * it reads (NodeEdge) and the plain files or directories it reads (FileDep).
 * Paths are project-relative ("out/golden.qcow2"): the project directory is
 * the directory of the top-level recipe, so an output tree is relocatable
 * and an action key never contains an absolute path.
 *
 * The planner's per-build state (key, digest, status, reason) lives in the
 * Node too, as ninja keeps `dirty_` in its Node: there is one build per
 * State.
 */
#ifndef IMGPIPE_PLANNER_GRAPH_H
#define IMGPIPE_PLANNER_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "planner/sha256.h"
#include "planner/strmap.h"

typedef enum StepKind {
    STEP_SOURCE,
    STEP_CREATE,
    STEP_CONVERT,
    STEP_RESIZE,
    STEP_AMEND,
    STEP_REBASE,
    STEP_COMMIT,
    STEP_SNAPSHOT,
    STEP_EXEC,
    STEP_KIND_COUNT,
} StepKind;

/* "source", "create", ...; kind must be valid. */
const char *step_kind_name(StepKind kind);
/* STEP_KIND_COUNT if name is not a step kind. */
StepKind step_kind_from_name(const char *name);

/* A position in a recipe file, 1-based; file is owned by the State. */
typedef struct SrcPos {
    const char *file;
    int line;
    int col;
} SrcPos;

/* One normalized parameter: the strings the action key and the runner see. */
typedef struct Param {
    char *key;
    char *value;
} Param;

typedef struct Node Node;

/* An input node: role is "from", "from[1]", "backing" or "base". */
typedef struct NodeEdge {
    char *role;
    char *name; /* as written in the recipe */
    Node *node; /* resolved by state_link() */
    SrcPos pos;
} NodeEdge;

/* A file or directory the step reads (a source image, an exec input). */
typedef struct FileDep {
    char *path; /* project-relative, normalized, no trailing '/' */
    SrcPos pos;
} FileDep;

typedef enum NodeStatus {
    NODE_UNKNOWN = 0,
    NODE_CLEAN,   /* output valid for the current key */
    NODE_DIRTY,   /* must run; reason says why */
    NODE_WAITING, /* an input will be rebuilt: decided when it finishes */
    NODE_RUNNING,
    NODE_BUILT,  /* ran in this build */
    NODE_CUTOFF, /* inputs were rebuilt, but the key came out unchanged */
    NODE_FAILED,
    NODE_SKIPPED, /* not run: an input failed or the build stopped */
} NodeStatus;

struct Node {
    char *name;
    int id; /* index in State.nodes */
    StepKind kind;
    SrcPos pos;
    char *output; /* project-relative path of the output (source: the file) */
    char *format; /* output format; NULL only for a source to be probed */
    char *description;

    Param *params; /* sorted by key */
    size_t n_params;
    NodeEdge *inputs;
    size_t n_inputs;
    FileDep *files;
    size_t n_files;
    char **argv; /* exec: the command template, vars expanded */
    size_t argc;

    Node **outs; /* dependents */
    size_t n_outs, alloc_outs;

    /* ---- per-build state, owned by the planner/executor ---- */
    bool wanted; /* in the closure of the requested targets */
    NodeStatus status;
    char *reason;         /* why it runs (or "up to date") */
    Sha256 *file_digests; /* one per FileDep, valid after plan */
    bool key_valid;
    Sha256 key;
    char *preimage;    /* the text hashed into key */
    bool digest_valid; /* digest of the current output */
    Sha256 digest;
    bool had_digest; /* a previous build recorded old_digest */
    Sha256 old_digest;
    int pending; /* executor: wanted inputs not finished yet */
    int64_t duration_ns;
    int64_t bytes;
};

typedef struct State {
    char *project_dir; /* absolute, no trailing '/' */
    Node **nodes;
    size_t n_nodes, alloc_nodes;
    StrMap by_name;
    char **files; /* interned recipe file names for SrcPos */
    size_t n_files;
} State;

void state_init(State *s, const char *project_dir);
void state_release(State *s);

/* Intern a recipe file name so SrcPos can point at it. */
const char *state_intern_file(State *s, const char *path);

/*
 * Add a node named name.  Fails (and returns NULL) if the name is taken;
 * the error names the previous definition's position.
 */
Node *state_add_node(State *s, const char *name, StepKind kind, SrcPos pos, Error **errp);
Node *state_lookup(const State *s, const char *name);

/* Builders used by the recipe loader.  Strings are copied. */
void node_set_param(Node *n, const char *key, const char *value);
void node_add_input(Node *n, const char *role, const char *name, SrcPos pos);
void node_add_file(Node *n, const char *path, SrcPos pos);
void node_add_arg(Node *n, const char *arg);
/* Record n as a dependent of target (for edges added after state_link). */
void node_link_input(Node *n, Node *target);

/* The value of a normalized parameter, or NULL. */
const char *node_param(const Node *n, const char *key);
/* The input with the given role, or NULL. */
Node *node_input(const Node *n, const char *role);
/*
 * The node whose output this node's output names as its backing file, or
 * NULL: a create's `backing`, inherited through resize/amend/snapshot, a
 * rebase's new backing, a commit's base's.
 */
Node *node_backing(const Node *n);

/*
 * Resolve every NodeEdge name to its node and record dependents.  Fails on
 * the first reference to an unknown node, with its position.
 */
int state_link(State *s, Error **errp);

/*
 * Fail if the graph has a cycle; the message prints the whole cycle:
 * "file:line:col: dependency cycle: a -> b -> c -> a".
 */
int state_check_cycles(State *s, Error **errp);

/*
 * The closure of targets (all nodes if n_targets == 0) in dependency order
 * (every node after its inputs); marks them wanted.  Caller frees the
 * array.  The graph must be acyclic.
 */
Node **state_closure(State *s, Node *const *targets, size_t n_targets, size_t *n_out);

/* "file:line:col" of pos into a new string. */
char *srcpos_str(SrcPos pos);
/* Set errp to "file:line:col: <fmt>". */
void error_setg_pos(Error **errp, SrcPos pos, const char *fmt, ...) IMGPIPE_PRINTF(3, 4);

#endif
