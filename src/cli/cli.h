/*
 * cli.h — the command-line front end: one function per `imgpipe` command.
 *
 * Each takes the arguments after the command name (argv[0] is the command
 * name itself) and returns the process exit status.  These are the only
 * functions that print to stdout/stderr or decide exit codes.
 */
#ifndef IMGPIPE_CLI_CLI_H
#define IMGPIPE_CLI_CLI_H

/* The whole command line: dispatch on argv[1] (src/cli/dispatch.c). */
int imgpipe_main(int argc, char **argv);

/* imgpipe run <qemu-img command line>  (src/engine/qemu_img.c) */
int cli_run(int argc, char **argv);

/* The pipeline (src/cli/cli_pipeline.c) */
int cli_build(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_clean(int argc, char **argv);
int cli_gc(int argc, char **argv);

#endif
