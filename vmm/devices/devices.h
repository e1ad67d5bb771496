/*
 * The devices vmm gives a guest, as the rest of vmm creates and drives them:
 * the legacy port devices the exit loop (vmm/kvm.c) hands accesses to (the
 * COM1 UART, the CMOS clock) and the virtio devices `vmm run` adds to the PCI
 * bus (block, rng, balloon). Each is opaque here; each keeps its registers
 * under a lock of its own, since several vCPUs and its own threads touch it.
 */
#ifndef VMM_DEVICES_DEVICES_H
#define VMM_DEVICES_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmfs;
struct vmm_pci;
struct vmm_virtio;
struct vmm_vm;

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

/* The CMOS clock at ports 0x70 (index) and 0x71 (data): the host's UTC time, no interrupts. */
struct vmm_rtc;
int vmm_rtc_new(struct vmm_rtc **out);
void vmm_rtc_free(struct vmm_rtc *r);
/* Port access at offset 0 or 1 from 0x70, one byte. */
void vmm_rtc_io(struct vmm_rtc *r, unsigned off, bool write, uint8_t *data);

/*
 * A virtio-blk device of size bytes, read-only or not, with one queue per
 * vCPU. Each queue's requests run on an I/O thread of its own, many in
 * flight, which waits (not spins) while the disk's rate limit lacks tokens;
 * the guest's doorbell only wakes it. The guest may find and set up the
 * device at once; its requests wait in the ring until vmm_blk_attach gives
 * the device its file, ino of fs (borrowed), once the cluster is joined
 * and the file locked (vmm/join.c). Any thread.
 */
struct vmm_blk;
int vmm_blk_new(struct vmm_vm *vm, struct vmm_pci *bus, uint64_t size, bool readonly, struct vmm_blk **out);
void vmm_blk_attach(struct vmm_blk *b, struct vmfs *fs, uint64_t ino);
/* Stops and joins the I/O thread; NULL is a no-op. */
void vmm_blk_free(struct vmm_blk *b);
struct vmm_blk_stats {
	uint64_t bytes_per_s, ops_per_s;      /* the limits, 0: none */
	uint64_t reads, writes, read_bytes, written_bytes, throttled;
	/* The I/O path: queues, the most requests one queue had in flight, doorbells that were MMIO exits, interrupts by irqfd and by ioctl. */
	uint64_t queues, max_inflight, exit_notifies, irqfd_irqs, ioctl_irqs;
	uint64_t first_io_ns;                 /* base_mono_ns() of the guest's first request, 0: none yet */
	uint64_t attach_ns;                   /* base_mono_ns() of vmm_blk_attach, 0: not yet */
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

/*
 * Suspend and resume (vm.state sections, vmm/suspend.c): save returns the
 * bytes put in buf (at most VMM_STATE_DEV_MAX); load refuses (-EINVAL) a
 * wrong length or a value the device cannot hold. The UART drops what the
 * host typed and the guest had not read; the clock keeps the host's time.
 * The balloon's target and "actual" go with its virtio registers.
 */
size_t vmm_serial_save(struct vmm_serial *s, void *buf);
int vmm_serial_load(struct vmm_serial *s, const void *buf, size_t len);
size_t vmm_rtc_save(struct vmm_rtc *r, void *buf);
int vmm_rtc_load(struct vmm_rtc *r, const void *buf, size_t len);
size_t vmm_balloon_save(struct vmm_virtio *v, void *buf);
int vmm_balloon_load(struct vmm_virtio *v, const void *buf, size_t len);

/*
 * A disk goes quiet for a suspend: its queues stop taking chains, finish
 * what they have in flight (answered in the used ring), and give back a
 * chain they popped but had not started (it stays in the ring for the
 * resumed guest). vmm_blk_quiesce returns once every queue is quiet;
 * vmm_blk_unquiesce lets them go on (a suspend that failed). Any thread.
 */
void vmm_blk_quiesce(struct vmm_blk *b);
void vmm_blk_unquiesce(struct vmm_blk *b);
/* The disk's virtio device (its registers go into vm.state). */
struct vmm_virtio *vmm_blk_virtio(struct vmm_blk *b);

#endif
