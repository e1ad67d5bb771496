/*
 * vm.conf, the VM's configuration (vmm/config.c), and the limits every part
 * of vmm sizes its tables by. The text is untrusted input (any host may have
 * written it): vmm_conf_parse checks every value against these limits, so a
 * struct vmm_conf that parsed holds only plain file names and values in range.
 */
#ifndef VMM_CONFIG_H
#define VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_MAX_DISKS 8
#define VMM_MAX_CPUS 32
#define VMM_NAME_MAX 64
#define VMM_CMDLINE_MAX 2048
#define VMM_CTL_PATH_MAX 108      /* sizeof(sockaddr_un.sun_path), with its NUL */
/* Guest RAM lies below the 32-bit PCI hole for now (see docs/VMM.md). */
#define VMM_MEM_MIN_MIB 16
#define VMM_MEM_MAX_MIB 3072

struct vmm_disk_conf {
	char file[VMM_NAME_MAX];  /* a file name inside the VM folder */
	bool readonly;
};

struct vmm_conf {
	char name[VMM_NAME_MAX];
	uint64_t mem_mib;
	unsigned cpus;
	char kernel[VMM_NAME_MAX];    /* file name inside the VM folder */
	char initrd[VMM_NAME_MAX];    /* "" when none */
	char cmdline[VMM_CMDLINE_MAX];
	unsigned ndisks;
	struct vmm_disk_conf disks[VMM_MAX_DISKS];
	bool rng;                 /* devices=virtio-rng */
	bool balloon;             /* devices=virtio-balloon */
	char ctl[VMM_CTL_PATH_MAX];  /* ctl=: the control socket's host path, "" when none */
	bool ha_restart;          /* ha=restart: vmm agent restarts it elsewhere when its host dies */
};

/*
 * Parses vm.conf text (len bytes, not NUL-terminated) into c. Returns 0, or
 * -EINVAL with a one-line reason ("line 3: unknown key 'foo'") in err.
 */
int vmm_conf_parse(struct vmm_conf *c, const char *text, size_t len, char *err, size_t errlen);
/* Formats c as vm.conf text into buf. Returns the length, or -ENAMETOOLONG when it does not fit. */
int vmm_conf_format(const struct vmm_conf *c, char *buf, size_t len);
/* Checks a name for a VM or a file in its folder: 1..63 bytes of [A-Za-z0-9._-], not "." or "..". */
bool vmm_name_ok(const char *name);
/* Checks a control socket path: absolute, under VMM_CTL_PATH_MAX bytes, each component a vmm_name_ok name. */
bool vmm_ctl_path_ok(const char *path);

#endif
