/*
 * vm.state, a suspended VM in its folder (vmm/vmstate.c): the file format
 * alone, with no KVM and no datastore, so that its parser can be fuzzed
 * (tests/fuzz/fuzz_vmstate.c). What is in it comes from vmm/suspend.c; every
 * byte of it is untrusted on the way back in: any host may have written it,
 * a disk may have damaged it, a user may have copied it from another VM's
 * folder.
 *
 * Layout (x86-64, little-endian; docs/VMM.md, "Suspend and resume"):
 *   header, 512 bytes: "VMMSTAT1", the version, the VM it belongs to
 *     (struct vmm_state_id), when and on which host it was written, the
 *     section count, the file's length, its RAM bytes, crc32c of the header.
 *   sections, back to back: a 24-byte head (tag, index, payload length,
 *     crc32c of the payload, crc32c of the head) and the payload. Guest RAM
 *     is runs of pages that are not all zero, each run a section of its own
 *     (VMM_ST_RAM, index: the run's number) whose payload is the run's guest
 *     physical address (8 bytes) and then its pages, at most 4 MiB of them.
 * The parser reads it front to back, checks every checksum, length, index
 * and address, and that each part a resume needs is there exactly once.
 */
#ifndef VMM_VMSTATE_H
#define VMM_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

#define VMM_STATE_FILE "vm.state"
#define VMM_STATE_TMP "vm.state.new"  /* written here, renamed over vm.state once complete */
#define VMM_STATE_VERSION 1
#define VMM_STATE_HEADER 512
#define VMM_STATE_RUN_MAX (4u << 20)   /* RAM bytes per run */
#define VMM_STATE_DEV_MAX 16384        /* a device section's payload, at most */

/* Sections. Per vCPU (index: the vCPU): */
enum {
	VMM_ST_CPUID = 1, VMM_ST_REGS, VMM_ST_SREGS, VMM_ST_XSAVE, VMM_ST_XCRS, VMM_ST_LAPIC, VMM_ST_MSRS,
	VMM_ST_EVENTS, VMM_ST_MPSTATE, VMM_ST_DEBUGREGS, VMM_ST_TSC_KHZ,
	VMM_ST_CPU_LAST = VMM_ST_TSC_KHZ,
	/* The VM's (index: the interrupt controller 0..2 for IRQCHIP, else 0): */
	VMM_ST_IRQCHIP = 32, VMM_ST_PIT, VMM_ST_CLOCK,
	/* The devices (PCI, VIRTIO, BALLOON index: the PCI slot, 0 for the bus itself; the others 0): */
	VMM_ST_SERIAL = 48, VMM_ST_RTC, VMM_ST_PM, VMM_ST_PCI, VMM_ST_VIRTIO, VMM_ST_BALLOON,
	VMM_ST_RAM = 64,
};

#define VMM_STATE_DEV_RNG 1u
#define VMM_STATE_DEV_BALLOON 2u

/* The VM a file belongs to; a file whose id differs from the VM's is refused (foreign). */
struct vmm_state_id {
	uint8_t uuid[16];         /* the datastore's */
	uint64_t dir_ino, dir_gen;  /* the VM's folder */
	uint64_t mem_size;        /* bytes */
	uint32_t ncpus, ndisks;
	uint32_t devices;         /* VMM_STATE_DEV_* */
	uint32_t pad;
	uint64_t disk_ino[VMM_MAX_DISKS], disk_gen[VMM_MAX_DISKS], disk_size[VMM_MAX_DISKS];
};

/* Where a file is read from or written to (a file of the datastore; memory in the fuzzer and the tests). */
struct vmm_state_io {
	void *ctx;
	uint64_t size;            /* reading: the file's length */
	/* All len bytes at off: 0, or -errno (-ENODATA: fewer were there). */
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	int (*write)(void *ctx, const void *buf, size_t len, uint64_t off);
	/* Called now and then with the bytes done so far (a progress bar); may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
};

/* Writing: begin, put every section, then end writes the header. Each returns 0 or -errno. */
struct vmm_state_writer {
	const struct vmm_state_io *io;
	uint64_t off, ram_bytes;
	uint32_t nsec, nram;
};
void vmm_state_write_begin(struct vmm_state_writer *w, const struct vmm_state_io *io);
int vmm_state_put(struct vmm_state_writer *w, uint32_t tag, uint32_t index, const void *data, size_t len);
/* Guest RAM: every 4 KiB page of mem that is not all zero, in runs. mem_size: a multiple of 4 KiB. */
int vmm_state_put_ram(struct vmm_state_writer *w, const uint8_t *mem, uint64_t mem_size);
int vmm_state_write_end(struct vmm_state_writer *w, const struct vmm_state_id *id, int64_t created_ns,
			const char *host);

/* A parsed file: every section but RAM, whose pages went straight to the guest's memory. */
struct vmm_state_sec {
	uint32_t tag, index;
	size_t len;
	uint8_t *data;
};
struct vmm_state {
	struct vmm_state_id id;
	int64_t created_ns;       /* CLOCK_REALTIME at the suspend */
	char host[64];            /* the host that wrote it */
	uint64_t ram_bytes;
	unsigned nsec;
	struct vmm_state_sec *sec;
};

/*
 * Reads and checks a whole file. With expect, a file made for another VM
 * (another datastore or folder, other disks, memory, vCPUs or devices) is
 * refused before its sections are read. With mem (expect->mem_size bytes,
 * all zero) the RAM runs are read into it; without, they are only checked,
 * through a buffer of its own. out (may be NULL: check only) gets the other
 * sections; vmm_state_free releases them. Returns 0, or -errno with a
 * one-line reason in err (-EINVAL: damaged, -ESTALE: foreign, else I/O).
 */
int vmm_state_parse(const struct vmm_state_io *io, const struct vmm_state_id *expect, uint8_t *mem,
		    struct vmm_state *out, char *err, size_t errlen);
/* Reads only the header (no section): what `vmm list` and the preflight show. Same returns. */
int vmm_state_peek(const struct vmm_state_io *io, struct vmm_state *out, char *err, size_t errlen);
/* The payload of section (tag, index), or NULL; *len its length. */
const void *vmm_state_find(const struct vmm_state *st, uint32_t tag, uint32_t index, size_t *len);
void vmm_state_free(struct vmm_state *st);

#endif
