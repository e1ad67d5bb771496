/*
 * Private declarations shared by the parts of vmm, the KVM monitor: the VM
 * configuration (vm.conf), the datastore side (VM folders on libvmfs), the
 * KVM side (guest memory, vCPUs, the exit loop) and the devices on the port
 * I/O bus. Nothing here is exported beyond vmm/; only main() exits.
 */
#ifndef VMM_VMM_I_H
#define VMM_VMM_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs.h"

#define VMM_MAX_DISKS 8
#define VMM_MAX_CPUS 32
#define VMM_NAME_MAX 64
#define VMM_CMDLINE_MAX 2048
/* Guest RAM lies below the 32-bit PCI hole for now (see docs/VMM.md). */
#define VMM_MEM_MIN_MIB 16
#define VMM_MEM_MAX_MIB 3072

/* ---- vm.conf ------------------------------------------------------------- */

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

/* ---- the VM folder on a datastore (vmm/store.c) ---------------------------- */

/*
 * Reads the folder's vm.conf. Returns 0, -ENOENT when dir has no vm.conf,
 * -EFBIG when it is larger than 64 KiB, -EINVAL (err says why) when it does
 * not parse, or another -errno from libvmfs.
 */
int vmm_store_read_conf(struct vmfs *fs, uint64_t dir, struct vmm_conf *c, char *err, size_t errlen);
/* Reads a whole file of the folder into a new buffer (*buf, caller frees); at most max bytes, else -EFBIG. */
int vmm_store_read_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t max, void **buf,
			size_t *len);

/*
 * Resolves an absolute path, making missing directories. With last_new the
 * last component must not exist yet (-EEXIST). *ino is the last directory.
 */
int vmm_store_mkdirs(struct vmfs *fs, const char *path, bool last_new, uint64_t *ino);
/* Creates an empty regular file name in dir (-EEXIST if it is there). */
int vmm_store_new_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t *ino);
/* Sets a file's size: growing leaves a hole (a thin disk). */
int vmm_store_set_size(struct vmfs *fs, uint64_t ino, uint64_t size);
/* Creates name in dir holding buf. */
int vmm_store_write(struct vmfs *fs, uint64_t dir, const char *name, const void *buf, size_t len);
/* Creates name in dir with the contents of host file src_fd; sparse skips all-zero 1 MiB chunks. */
int vmm_store_copy_in(struct vmfs *fs, uint64_t dir, const char *name, int src_fd, bool sparse);

/* ---- guest memory and vCPUs (vmm/kvm.c) ------------------------------------ */

struct vmm_vm {
	int kvm_fd, vm_fd;
	uint8_t *mem;             /* guest physical 0 .. mem_size, mapped here */
	uint64_t mem_size;
	unsigned ncpus;
	int cpu_fd[VMM_MAX_CPUS];
	struct kvm_run *run[VMM_MAX_CPUS];
	size_t run_size;
	struct vmm_serial *serial;
	int exit_code;            /* set when the guest powers off or fails */
	bool done;
	bool aps_started;         /* vCPU threads run: release leaves mappings to exit */
};

/* Opens /dev/kvm, creates the VM with mem_mib of RAM and ncpus vCPUs. err says why on failure. */
int vmm_vm_init(struct vmm_vm *vm, uint64_t mem_mib, unsigned ncpus, char *err, size_t errlen);
void vmm_vm_release(struct vmm_vm *vm);
/*
 * Runs every vCPU until the guest powers off (returns 0 and vm->exit_code) or
 * something fails (-errno, err says why). vCPU 0 runs on the calling thread.
 */
int vmm_vm_run(struct vmm_vm *vm, char *err, size_t errlen);

/*
 * Returns a pointer to guest physical [gpa, gpa + len) when that range is all
 * RAM, else NULL. Every guest-supplied address goes through here.
 */
void *vmm_gpa(struct vmm_vm *vm, uint64_t gpa, uint64_t len);

/* ---- x86 boot (vmm/x86/boot.c) --------------------------------------------- */

/*
 * Loads a bzImage (64-bit boot protocol, version 2.12 or later with
 * XLF_KERNEL_64) and an optional initrd into guest memory, writes the zero
 * page, command line, e820 map, GDT and identity page tables, and sets vCPU
 * 0's registers to the 64-bit entry point. Returns 0, or -EINVAL / -E2BIG with
 * a one-line reason in err. The kernel and initrd buffers are borrowed.
 */
int vmm_x86_boot(struct vmm_vm *vm, const void *kernel, size_t klen, const void *initrd, size_t ilen,
		 const char *cmdline, char *err, size_t errlen);

/* ---- devices (vmm/devices/) ------------------------------------------------- */

/* The 8250 UART at port 0x3F8 (COM1): output goes to fd. */
struct vmm_serial;
int vmm_serial_new(int out_fd, struct vmm_serial **out);
void vmm_serial_free(struct vmm_serial *s);
/* Port access at offset 0..7 from 0x3F8; size is 1 (wider accesses read 0xff, ignore writes). */
void vmm_serial_io(struct vmm_serial *s, unsigned off, bool write, uint8_t *data);

#endif
