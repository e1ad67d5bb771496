/*
 * Helpers shared by the vmfs command-line tools: one-line error messages in the
 * "prog: what: why" form, --help and --version, strict number parsing, and a
 * progress bar shown only when stderr is a terminal.
 */
#ifndef VMFS_TOOLS_COMMON_H
#define VMFS_TOOLS_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern const char *tool_name;

/* Prints "tool_name: message" and a newline on stderr. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "tool_name (vmfs) VERSION" and a newline on stdout: every tool's --version. */
void tool_version(void);

/*
 * For the tools whose first argument is a command (vmfsctl, vmm): when arg is
 * -h or --help, prints help(stdout); when it is --version, tool_version().
 * Returns true when it was one of them (the caller then exits 0). arg may be NULL.
 */
bool tool_help_or_version(const char *arg, void (*help)(FILE *f));
/* `TOOL COMMAND ... --help`: prints help(stdout) and returns true when an argument after the command is --help. */
bool tool_subcommand_help(int argc, char **argv, void (*help)(FILE *f));

/* Prints s on stdout as a JSON string (quoted, escaped). */
void tool_json_str(const char *s);

/* Parses an unsigned decimal; false on junk, sign or overflow. */
bool tool_parse_u64(const char *s, uint64_t *out);

/* Progress on a terminal: "label  [#####.....]  42%". Silent when stderr is not a tty. */
struct tool_progress {
	const char *label;
	uint64_t total, last_pct;
	bool tty;
};
void tool_progress_init(struct tool_progress *p, const char *label, uint64_t total);
void tool_progress_update(struct tool_progress *p, uint64_t done);
void tool_progress_done(struct tool_progress *p);

#endif
