/*
 * Shared tool helpers: error printing, --help and --version, number parsing
 * and the terminal progress bar.
 */
#include "base/cli.h"
#include "base/version.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tool_name = "vmfs";

/* One write: another thread's message or a guest console on the same pipe cannot land inside the line. */
void tool_err(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n, m;

	n = snprintf(buf, sizeof(buf), "%s: ", tool_name);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1)
		n = 0;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;	/* a longer message is cut, still one line */
	buf[n++] = '\n';
	fwrite(buf, 1, (size_t)n, stderr);
}

void tool_version(void)
{
	printf("%s (vmfs) %s\n", tool_name, VMFS_VERSION);
}

bool tool_help_or_version(const char *arg, void (*help)(FILE *f))
{
	if (!arg)
		return false;
	if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
		help(stdout);
		return true;
	}
	if (!strcmp(arg, "--version")) {
		tool_version();
		return true;
	}
	return false;
}

bool tool_subcommand_help(int argc, char **argv, void (*help)(FILE *f))
{
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help")) {
			help(stdout);
			return true;
		}
	return false;
}

bool tool_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

void tool_progress_init(struct tool_progress *p, const char *label, uint64_t total)
{
	p->label = label;
	p->total = total ? total : 1;
	p->last_pct = UINT64_MAX;
	p->tty = isatty(STDERR_FILENO);
}

void tool_progress_update(struct tool_progress *p, uint64_t done)
{
	uint64_t pct = done >= p->total ? 100 : done * 100 / p->total;
	char bar[41];

	if (!p->tty || pct == p->last_pct)
		return;
	p->last_pct = pct;
	for (unsigned i = 0; i < 40; i++)
		bar[i] = i < pct * 40 / 100 ? '#' : '.';
	bar[40] = 0;
	fprintf(stderr, "\r%s [%s] %3llu%%", p->label, bar, (unsigned long long)pct);
	fflush(stderr);
}

void tool_progress_done(struct tool_progress *p)
{
	if (!p->tty)
		return;
	tool_progress_update(p, p->total);
	fputc('\n', stderr);
}

void tool_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}
