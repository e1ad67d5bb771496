/*
 * Private declarations shared by the parts of vmm, the KVM monitor: the VM
 * configuration (vm.conf), the datastore side (VM folders on libvmfs), the
 * KVM side (guest memory, vCPUs, the exit loop) and the devices on the port
 * I/O bus. Nothing here is exported beyond vmm/; only main() exits.
 */
#ifndef VMM_VMM_I_H
#define VMM_VMM_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmfs/vmfs.h"

#define VMM_MAX_DISKS 8
#define VMM_MAX_CPUS 32
#define VMM_NAME_MAX 64
#define VMM_CMDLINE_MAX 2048
#define VMM_CTL_PATH_MAX 108      /* sizeof(sockaddr_un.sun_path), with its NUL */
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
	bool rng;                 /* devices=virtio-rng */
	bool balloon;             /* devices=virtio-balloon */
	char ctl[VMM_CTL_PATH_MAX];  /* ctl=: the control socket's host path, "" when none */
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
 * last component must not exist yet (-EEXIST). *ino is the last directory;
 * *made counts the directories it made (the last *made components of path),
 * for vmm_store_rmdirs to undo; on failure it removes them itself (*made is
 * then 0, or what it could not remove).
 */
int vmm_store_mkdirs(struct vmfs *fs, const char *path, bool last_new, uint64_t *ino, unsigned *made);
/* Removes the last n components of path, deepest first; each must be an empty directory. */
int vmm_store_rmdirs(struct vmfs *fs, const char *path, unsigned n);
/* Creates an empty regular file name in dir (-EEXIST if it is there). */
int vmm_store_new_file(struct vmfs *fs, uint64_t dir, const char *name, uint64_t *ino);
/* Sets a file's size: growing leaves a hole (a thin disk). */
int vmm_store_set_size(struct vmfs *fs, uint64_t ino, uint64_t size);
/* Creates name in dir holding buf. */
int vmm_store_write(struct vmfs *fs, uint64_t dir, const char *name, const void *buf, size_t len);
/* Creates name in dir with the contents of host file src_fd; sparse skips all-zero 1 MiB chunks. */
int vmm_store_copy_in(struct vmfs *fs, uint64_t dir, const char *name, int src_fd, bool sparse);

/* ---- PCI (vmm/devices/pci.c) ------------------------------------------------ */

#define VMM_PCI_MAX_DEV 16
#define VMM_PCI_MMIO_BASE 0xd0000000u
#define VMM_PCI_BAR_SIZE 0x4000u

struct vmm_pci_dev {
	uint8_t cfg[256];         /* the type-0 header and capabilities, little-endian */
	uint32_t bar_addr;        /* BAR0: 32-bit memory, VMM_PCI_BAR_SIZE bytes */
	unsigned slot;            /* set by vmm_pci_add */
	uint8_t gsi;              /* the IOAPIC pin its INTA# is wired to (VMM_PCI_GSI_BASE..) */
	bool irq_level;           /* INTA# asserted; under the bus's irq_lock */
	/* An access of len (1..8) bytes at off < VMM_PCI_BAR_SIZE, off + len inside the BAR. */
	void (*mmio)(struct vmm_pci_dev *d, uint64_t off, bool write, uint8_t *data, unsigned len);
	/* A configuration write of size bytes at off >= 0x40 (the capabilities); NULL: read-only. */
	void (*cfg_write)(struct vmm_pci_dev *d, unsigned off, const uint8_t *data, unsigned size);
	void *priv;
};

/*
 * Slot 0 holds a host bridge (Linux's conf1 probe looks for one); devices sit
 * in slots 1..VMM_PCI_MAX_DEV, INTA# of slot s wired to IOAPIC pin
 * VMM_PCI_GSI_BASE + (s - 1) % 8, level-triggered, active high (the MP table
 * says so). Devices on one pin share it: the pin is the OR of their lines.
 */
#define VMM_PCI_GSI_BASE 16
#define VMM_PCI_NGSI 8

struct vmm_pci {
	struct vmm_vm *vm;        /* for KVM_IRQ_LINE */
	pthread_mutex_t irq_lock;
	uint32_t addr;            /* the last value written to 0xCF8 */
	unsigned ndev;
	struct vmm_pci_dev *dev[VMM_PCI_MAX_DEV];
};

/* ---- ACPI power management ports (vmm/devices/acpi_pm.c) ------------------- */

/*
 * The FADT's fixed-hardware registers (x86/acpi.c describes them): PM1a_EVT
 * (status and enable, 2 bytes each) and PM1a_CNT (2 bytes) in ports
 * VMM_PM1A_EVT..+5, and the reset register (the PC's 0xCF9). The SCI is ISA
 * IRQ 9; nothing raises it (there are no fixed events to report).
 */
#define VMM_PM1A_EVT 0x600
#define VMM_PM1A_CNT 0x604
#define VMM_PM_NPORTS 6
#define VMM_PM_SCI_IRQ 9
#define VMM_PM_RESET_PORT 0xcf9
#define VMM_PM_RESET_VALUE 0x06
#define VMM_PM_SLP_TYP_S5 5       /* \_S5 in the DSDT */

struct vmm_pm {
	pthread_mutex_t lock;     /* vCPUs may touch the registers at once */
	uint16_t sts, en, cnt;
	uint8_t reset;            /* the last byte written to the reset register */
};

enum vmm_pm_event { VMM_PM_NONE, VMM_PM_POWER_OFF, VMM_PM_RESET };

void vmm_pm_init(struct vmm_pm *pm);
/* True when an access of size bytes at port touches the PM1a blocks or the reset register. */
bool vmm_pm_port(uint16_t port, unsigned size);
/*
 * One port access (size 1, 2 or 4 bytes, guest-chosen; bytes outside the
 * registers read all ones and ignore writes). Returns VMM_PM_POWER_OFF when
 * the guest wrote SLP_EN with SLP_TYP S5 into PM1a_CNT, VMM_PM_RESET when it
 * wrote the reset value's RST_CPU bit to the reset register, else VMM_PM_NONE.
 */
enum vmm_pm_event vmm_pm_io(struct vmm_pm *pm, uint16_t port, bool write, uint8_t *data, unsigned size);

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
	struct vmm_rtc *rtc;
	struct vmm_pci pci;
	struct vmm_pm pm;
	int exit_code;            /* set when the guest powers off or fails */
	bool done;
	bool aps_started;         /* AP threads exist (vmm_vm_run joins them before it returns) */
	/* Pause, resume and stop from the control socket (under state_lock): */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	bool pause_req, stop_req;
	unsigned live, parked;    /* vCPU threads in their loop, and of those parked */
	pthread_t thread[VMM_MAX_CPUS];
	bool has_thread[VMM_MAX_CPUS];
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
 * Parks every vCPU outside KVM_RUN and returns once they all are (or the VM
 * ended); vmm_vm_resume lets them go on. vmm_vm_stop ends the VM as a power
 * off would (exit code 0). Any thread but a vCPU's; they may block.
 */
void vmm_vm_pause(struct vmm_vm *vm);
void vmm_vm_resume(struct vmm_vm *vm);
void vmm_vm_stop(struct vmm_vm *vm);
/* True while paused. */
bool vmm_vm_paused(struct vmm_vm *vm);

/*
 * Sets the level of interrupt line gsi (0..23: ISA IRQs 0..15 reach the PIC
 * and the IOAPIC, 16..23 the IOAPIC only) through KVM_IRQ_LINE. An edge is a
 * change from 0 to 1. Any thread may call it.
 */
void vmm_vm_irq_line(struct vmm_vm *vm, unsigned gsi, bool level);
/* Sends a message-signalled interrupt (KVM_SIGNAL_MSI); any thread. */
void vmm_vm_signal_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data);

/*
 * Returns a pointer to guest physical [gpa, gpa + len) when that range is all
 * RAM, else NULL. Every guest-supplied address goes through here.
 */
void *vmm_gpa(struct vmm_vm *vm, uint64_t gpa, uint64_t len);

/* ---- x86 boot (vmm/x86/boot.c) --------------------------------------------- */

/*
 * Checks a kernel before anything is written for it: a bzImage (boot flag and
 * "HdrS" at 0x202), boot protocol 2.12 or later with XLF_KERNEL_64, a setup
 * that leaves a kernel in its klen bytes, and a command line it takes. head
 * holds the file's first hlen bytes (VMM_BZ_HEADER_LEN are enough). Returns 0
 * or -EINVAL with a one-line reason in err. vmm_x86_boot checks the same.
 */
#define VMM_BZ_HEADER_LEN 0x290
int vmm_x86_check_kernel(const void *head, size_t hlen, uint64_t klen, const char *cmdline, char *err,
			 size_t errlen);

/*
 * Loads a bzImage (64-bit boot protocol, version 2.12 or later with
 * XLF_KERNEL_64) and an optional initrd into guest memory, writes the zero
 * page, command line, e820 map, MP table, GDT and identity page tables, and sets vCPU
 * 0's registers to the 64-bit entry point. Returns 0, or -EINVAL / -E2BIG with
 * a one-line reason in err. The kernel and initrd buffers are borrowed.
 */
int vmm_x86_boot(struct vmm_vm *vm, const void *kernel, size_t klen, const void *initrd, size_t ilen,
		 const char *cmdline, char *err, size_t errlen);

/*
 * Writes the MP table (floating pointer at 0xF0000, reserved in e820) for
 * vm's vCPUs and the PCI devices on vm->pci: add the devices first. Returns 0
 * or -E2BIG with err saying why. Called by vmm_x86_boot.
 */
int vmm_x86_mptable(struct vmm_vm *vm, char *err, size_t errlen);

/*
 * Writes the ACPI tables (RSDP at 0xE0000, reserved in e820; XSDT, RSDT, FADT,
 * FACS, MADT, DSDT) for vm's vCPUs and PCI devices: add the devices first.
 * Returns 0 or -E2BIG with err saying why. Called by vmm_x86_boot.
 */
int vmm_x86_acpi(struct vmm_vm *vm, char *err, size_t errlen);

/* ---- devices (vmm/devices/) ------------------------------------------------- */

/*
 * The 8250 UART at port 0x3F8 (COM1) on ISA IRQ 4: output goes to out_fd,
 * input comes from in_fd (-1: none) through a reader thread of its own. fd
 * are borrowed. vmm_serial_free stops and joins the reader.
 */
struct vmm_serial;
int vmm_serial_new(struct vmm_vm *vm, int out_fd, int in_fd, struct vmm_serial **out);
void vmm_serial_free(struct vmm_serial *s);
/* Port access at offset 0..7 from 0x3F8; size is 1 (wider accesses read 0xff, ignore writes). */
void vmm_serial_io(struct vmm_serial *s, unsigned off, bool write, uint8_t *data);

/* Sets up the bus of vm (no devices yet). */
void vmm_pci_init(struct vmm_pci *bus, struct vmm_vm *vm);
/* The CMOS clock at ports 0x70 (index) and 0x71 (data): the host's UTC time, no interrupts. */
struct vmm_rtc;
int vmm_rtc_new(struct vmm_rtc **out);
void vmm_rtc_free(struct vmm_rtc *r);
/* Port access at offset 0 or 1 from 0x70, one byte. */
void vmm_rtc_io(struct vmm_rtc *r, unsigned off, bool write, uint8_t *data);

/* Puts d (borrowed: it must outlive the bus) in the next free slot and gives BAR0 and INTA# their places. */
int vmm_pci_add(struct vmm_pci *bus, struct vmm_pci_dev *d);
/* Asserts or deasserts d's INTA#; the IOAPIC pin follows the OR of the devices on it. Any thread. */
void vmm_pci_set_irq(struct vmm_pci *bus, struct vmm_pci_dev *d, bool level);
/* Port 0xCF8 (4 bytes) and 0xCFC..0xCFF (1, 2 or 4 bytes). */
void vmm_pci_io(struct vmm_pci *bus, uint16_t port, bool write, uint8_t *data, unsigned size);
/* An MMIO access: false when no enabled BAR holds it. */
bool vmm_pci_mmio(struct vmm_pci *bus, uint64_t gpa, bool write, uint8_t *data, unsigned len);

/* ---- virtio over PCI and virtio-blk (vmm/devices/virtio_pci.c, virtio_blk.c) ---- */

struct vmm_virtq {
	uint16_t size;
	bool enabled;
	uint64_t desc, driver, device;
	uint16_t last_avail;
};

struct vmm_virtio;
struct vmm_virtio_ops {
	/* Handles every new available chain of queue q. */
	void (*notify)(struct vmm_virtio *v, unsigned q);
	/* Device-specific configuration: reads, and writes when config_write is set (else ignored). */
	void (*config)(struct vmm_virtio *v, uint64_t off, uint8_t *data, unsigned len);
	void (*config_write)(struct vmm_virtio *v, uint64_t off, const uint8_t *data, unsigned len);
};

struct vmm_virtio {
	struct vmm_pci_dev pci;
	struct vmm_vm *vm;
	struct vmm_pci *bus;
	/* Held around every register access and ops call: vCPUs may touch the device at once. */
	pthread_mutex_t lock;
	uint8_t isr;              /* bit 0: a used ring changed, bit 1: configuration changed */
	/* MSI-X: vector 0..VMM_VIRTIO_MSIX-1 or 0xffff (none) for the configuration and each queue. */
	unsigned msix_cap;        /* offset of the capability in pci.cfg */
	uint16_t config_vec, queue_vec[2];
	struct { uint32_t addr_lo, addr_hi, data, ctrl; } msix[3];
	uint8_t msix_pending;     /* the PBA: bit n for vector n */
	uint64_t resets;          /* counts device resets: work begun before one is dropped */
	const struct vmm_virtio_ops *ops;
	uint64_t features;        /* offered */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint16_t qselect;
	unsigned nqueues;
	struct vmm_virtq q[2];
	void *priv;
};

/* Sets up v as a modern virtio-pci device of type (2: block) and adds it to bus. */
int vmm_virtio_init(struct vmm_virtio *v, struct vmm_vm *vm, struct vmm_pci *bus, unsigned type,
		    unsigned nqueues, uint64_t features, const struct vmm_virtio_ops *ops);

/* Allocates and sets up a virtio-pci device without feature bits of its own; *out is freed with free(). */
int vmm_virtio_new(struct vmm_vm *vm, struct vmm_pci *bus, unsigned type, unsigned nqueues,
		   const struct vmm_virtio_ops *ops, struct vmm_virtio **out);

/*
 * One descriptor chain, checked: every buffer lies in guest RAM, the chain has
 * at most the queue's size of descriptors, no loops, no indirect tables yet.
 */
struct vmm_virtio_buf {
	uint8_t *p;
	uint32_t len;
	bool device_writes;
};
#define VMM_VIRTIO_MAX_BUFS 128
/* Pops the next available chain of queue q into bufs: 1 with its head in *head, 0 when none, -EINVAL when malformed. */
int vmm_virtq_pop(struct vmm_virtio *v, unsigned q, struct vmm_virtio_buf *bufs, unsigned *nbufs, uint16_t *head);
/* Returns chain head to the used ring with written bytes and interrupts the guest (ISR bit 0, INTA#). */
void vmm_virtq_push(struct vmm_virtio *v, unsigned q, uint16_t head, uint32_t written);
/*
 * Interrupts the driver for queue q, or for a configuration change when q is
 * -1: through q's MSI-X vector when MSI-X is enabled (pending while masked,
 * nothing for no vector), else ISR bit 0 (or 1) and INTA#, which drops when
 * the guest reads the ISR. Caller holds v->lock.
 */
void vmm_virtio_interrupt(struct vmm_virtio *v, int q);

/*
 * A virtio-blk device on file ino of fs (borrowed), size bytes, read-only or
 * not. Requests run on an I/O thread of its own, which waits (not spins) while
 * the disk's rate limit lacks tokens; the vCPU's notify only wakes it.
 */
struct vmm_blk;
int vmm_blk_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmfs *fs, uint64_t ino, uint64_t size,
		bool readonly, struct vmm_blk **out);
/* Stops and joins the I/O thread; NULL is a no-op. */
void vmm_blk_free(struct vmm_blk *b);
struct vmm_blk_stats {
	uint64_t bytes_per_s, ops_per_s;      /* the limits, 0: none */
	uint64_t reads, writes, read_bytes, written_bytes, throttled;
};
/* Sets the disk's limits (0: unlimited); any thread. */
void vmm_blk_set_limit(struct vmm_blk *b, uint64_t bytes_per_s, uint64_t ops_per_s);
void vmm_blk_get_stats(struct vmm_blk *b, struct vmm_blk_stats *st);

/* A virtio-rng device fed by getrandom(2); *out is freed with free(). */
int vmm_rng_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmm_virtio **out);
/* A virtio-balloon device: inflated pages go back to the host (MADV_DONTNEED); *out is freed with free(). */
int vmm_balloon_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmm_virtio **out);
/* Asks the guest to hold pages 4 KiB pages in the balloon (a configuration change interrupt); any thread. */
void vmm_balloon_set_target(struct vmm_virtio *v, uint32_t pages);
/* The target and the guest's "actual" (pages it says the balloon holds). */
void vmm_balloon_get(struct vmm_virtio *v, uint32_t *target, uint32_t *actual);

/* ---- the control socket (vmm/ctl.c) ---------------------------------------- */

/* What the control socket acts on; all borrowed, and they must outlive it. */
struct vmm_ctl_target {
	struct vmm_vm *vm;
	const struct vmm_conf *conf;
	struct vmm_blk **blk;     /* one per vm.conf disk, in order */
	unsigned nblk;
	struct vmm_virtio *balloon;  /* NULL when the VM has none */
};

/*
 * Listens on a new Unix socket at path (it must not exist, or be a stale socket
 * that refuses connections, left by a killed vmm: that one is replaced) and serves JSON
 * lines on a thread of its own. Returns 0, or -errno with err saying why.
 */
struct vmm_ctl;
int vmm_ctl_new(const char *path, const struct vmm_ctl_target *t, struct vmm_ctl **out, char *err, size_t errlen);
/* Stops the thread, removes the socket; NULL is a no-op. */
void vmm_ctl_free(struct vmm_ctl *c);
/*
 * The client: sends one request line to the socket at path and puts the
 * reply line (without its newline) in reply. Waits at most 30 s for it.
 */
int vmm_ctl_request(const char *path, const char *request, char *reply, size_t len, char *err, size_t errlen);

#endif
