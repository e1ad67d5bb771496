/*
 * vm.conf: the VM's configuration, a text file of key=value lines inside the
 * VM folder. Keys: name, memory (MiB), cpus, kernel, initrd, cmdline, disk
 * (repeated, "FILE" or "FILE:ro"), devices (a comma-separated list of extra
 * devices: "virtio-rng", "virtio-balloon"; may be empty), ctl (the control
 * socket's host path; empty for none), ha ("restart": vmm agent restarts the
 * VM on another host when its host dies; "off", the default). Blank lines and lines starting with '#' are
 * skipped. The file is untrusted input: every value is checked here and a bad
 * one is refused with the line number, never guessed at.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "vmm/config.h"

bool vmm_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n >= VMM_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

bool vmm_ctl_path_ok(const char *path)
{
	char buf[VMM_CTL_PATH_MAX], *p, *save = NULL;

	/* Another host may have written vm.conf: no relative path, no "..", no odd bytes. */
	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return false;
	strcpy(buf, path);
	for (p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save))
		if (!vmm_name_ok(p))
			return false;
	return path[strlen(path) - 1] != '/' && !strstr(path, "//");
}

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int set_name(char *dst, const char *val, const char *key, unsigned line, char *err, size_t errlen)
{
	if (!vmm_name_ok(val)) {
		snprintf(err, errlen, "line %u: %s '%.64s' is not a file name in the VM folder", line, key, val);
		return -EINVAL;
	}
	strcpy(dst, val);
	return 0;
}

static int parse_line(struct vmm_conf *c, char *key, char *val, unsigned line, char *err, size_t errlen)
{
	uint64_t v;

	if (!strcmp(key, "name")) {
		if (!vmm_name_ok(val)) {
			snprintf(err, errlen, "line %u: bad VM name '%.64s'", line, val);
			return -EINVAL;
		}
		strcpy(c->name, val);
	} else if (!strcmp(key, "memory")) {
		if (parse_u64(val, &v) || v < VMM_MEM_MIN_MIB || v > VMM_MEM_MAX_MIB) {
			snprintf(err, errlen, "line %u: memory '%.32s' (want MiB, %u..%u)", line, val,
				 VMM_MEM_MIN_MIB, VMM_MEM_MAX_MIB);
			return -EINVAL;
		}
		c->mem_mib = v;
	} else if (!strcmp(key, "cpus")) {
		if (parse_u64(val, &v) || v < 1 || v > VMM_MAX_CPUS) {
			snprintf(err, errlen, "line %u: cpus '%.32s' (want 1..%u)", line, val, VMM_MAX_CPUS);
			return -EINVAL;
		}
		c->cpus = (unsigned)v;
	} else if (!strcmp(key, "kernel")) {
		return set_name(c->kernel, val, key, line, err, errlen);
	} else if (!strcmp(key, "initrd")) {
		if (!*val) {
			c->initrd[0] = 0;
			return 0;
		}
		return set_name(c->initrd, val, key, line, err, errlen);
	} else if (!strcmp(key, "cmdline")) {
		if (strlen(val) >= VMM_CMDLINE_MAX) {
			snprintf(err, errlen, "line %u: cmdline longer than %u bytes", line, VMM_CMDLINE_MAX - 1);
			return -EINVAL;
		}
		strcpy(c->cmdline, val);
	} else if (!strcmp(key, "disk")) {
		struct vmm_disk_conf *d;
		char *opt = strchr(val, ':');

		if (c->ndisks == VMM_MAX_DISKS) {
			snprintf(err, errlen, "line %u: more than %u disks", line, VMM_MAX_DISKS);
			return -EINVAL;
		}
		d = &c->disks[c->ndisks];
		if (opt) {
			*opt++ = 0;
			if (strcmp(opt, "ro")) {
				snprintf(err, errlen, "line %u: disk option '%.32s' (want 'ro')", line, opt);
				return -EINVAL;
			}
			d->readonly = true;
		}
		if (set_name(d->file, val, key, line, err, errlen))
			return -EINVAL;
		c->ndisks++;
	} else if (!strcmp(key, "devices")) {
		char *save = NULL, *d;

		c->rng = c->balloon = false;
		for (d = strtok_r(val, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
			if (!strcmp(d, "virtio-rng")) {
				c->rng = true;
			} else if (!strcmp(d, "virtio-balloon")) {
				c->balloon = true;
			} else {
				snprintf(err, errlen, "line %u: unknown device '%.32s' (want virtio-rng, virtio-balloon)",
					 line, d);
				return -EINVAL;
			}
		}
	} else if (!strcmp(key, "ctl")) {
		if (*val && !vmm_ctl_path_ok(val)) {
			snprintf(err, errlen, "line %u: ctl '%.64s' (want an absolute path under %u bytes, "
				 "parts of [A-Za-z0-9._-], no '..')", line, val, VMM_CTL_PATH_MAX);
			return -EINVAL;
		}
		strcpy(c->ctl, val);
	} else if (!strcmp(key, "ha")) {
		if (strcmp(val, "restart") && strcmp(val, "off")) {
			snprintf(err, errlen, "line %u: ha '%.32s' (want restart or off)", line, val);
			return -EINVAL;
		}
		c->ha_restart = !strcmp(val, "restart");
	} else {
		snprintf(err, errlen, "line %u: unknown key '%.32s'", line, key);
		return -EINVAL;
	}
	return 0;
}

int vmm_conf_parse(struct vmm_conf *c, const char *text, size_t len, char *err, size_t errlen)
{
	char buf[VMM_CMDLINE_MAX + 64];
	unsigned line = 0;
	size_t pos = 0;

	memset(c, 0, sizeof(*c));
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (nl ? (size_t)(nl - text) : len) - pos;
		char *eq;

		line++;
		if (n >= sizeof(buf)) {
			snprintf(err, errlen, "line %u: longer than %zu bytes", line, sizeof(buf) - 1);
			return -EINVAL;
		}
		memcpy(buf, text + pos, n);
		buf[n] = 0;
		pos += n + 1;
		if (memchr(buf, 0, n)) {
			snprintf(err, errlen, "line %u: NUL byte", line);
			return -EINVAL;
		}
		if (!buf[0] || buf[0] == '#')
			continue;
		eq = strchr(buf, '=');
		if (!eq) {
			snprintf(err, errlen, "line %u: no '=' (want key=value)", line);
			return -EINVAL;
		}
		*eq = 0;
		if (parse_line(c, buf, eq + 1, line, err, errlen))
			return -EINVAL;
	}
	if (!c->name[0] || !c->mem_mib || !c->cpus || !c->kernel[0]) {
		snprintf(err, errlen, "missing %s", !c->name[0] ? "name" : !c->mem_mib ? "memory" :
			 !c->cpus ? "cpus" : "kernel");
		return -EINVAL;
	}
	return 0;
}

int vmm_conf_format(const struct vmm_conf *c, char *buf, size_t len)
{
	size_t pos;
	unsigned i;
	int n;

	n = snprintf(buf, len, "name=%s\nmemory=%llu\ncpus=%u\nkernel=%s\ninitrd=%s\ncmdline=%s\ndevices=%s\n",
		     c->name, (unsigned long long)c->mem_mib, c->cpus, c->kernel, c->initrd, c->cmdline,
		     c->rng && c->balloon ? "virtio-rng,virtio-balloon" : c->rng ? "virtio-rng" :
		     c->balloon ? "virtio-balloon" : "");
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	pos = (size_t)n;
	if (c->ha_restart) {
		n = snprintf(buf + pos, len - pos, "ha=restart\n");
		if (n < 0 || (size_t)n >= len - pos)
			return -ENAMETOOLONG;
		pos += (size_t)n;
	}
	if (c->ctl[0]) {
		n = snprintf(buf + pos, len - pos, "ctl=%s\n", c->ctl);
		if (n < 0 || (size_t)n >= len - pos)
			return -ENAMETOOLONG;
		pos += (size_t)n;
	}
	for (i = 0; i < c->ndisks; i++) {
		n = snprintf(buf + pos, len - pos, "disk=%s%s\n", c->disks[i].file, c->disks[i].readonly ? ":ro" : "");
		if (n < 0 || (size_t)n >= len - pos)
			return -ENAMETOOLONG;
		pos += (size_t)n;
	}
	return (int)pos;
}
