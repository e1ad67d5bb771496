/*
 * The virtio 1.x PCI transport and the split virtqueue (vmm/devices/virtio_pci.c),
 * for the virtio devices to build on: a device embeds or allocates a struct
 * vmm_virtio, gives it ops, and takes buffers with vmm_virtq_pop, each chain
 * checked to lie in guest RAM, and returns them with vmm_virtq_push. Every
 * register access and ops call runs under v->lock.
 */
#ifndef VMM_DEVICES_VIRTIO_H
#define VMM_DEVICES_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/devices/pci.h"

struct vmm_vm;

struct vmm_virtq {
	uint16_t size;
	bool enabled;
	uint64_t desc, driver, device;
	uint16_t last_avail;
	int kick_fd;              /* the device's eventfd for this queue's doorbell, or -1 (vmm_virtio_set_kick) */
	uint64_t doorbell;        /* the guest address KVM signals kick_fd for, 0: none bound */
};

/* Queues a device may have: virtio-blk has one per vCPU. */
#define VMM_VIRTIO_MAX_QUEUES 32

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
	/* MSI-X: vector 0..nqueues (the table's size) or 0xffff (none) for the configuration and each queue. */
	unsigned msix_cap;        /* offset of the capability in pci.cfg */
	uint16_t config_vec, queue_vec[VMM_VIRTIO_MAX_QUEUES];
	struct {
		uint32_t addr_lo, addr_hi, data, ctrl;
		int irqfd, gsi;   /* the vector's irqfd and its GSI (-1: none yet), with VMM_CAP_IRQFD */
		bool stale;       /* the guest rewrote the message since the route was set */
	} msix[VMM_VIRTIO_MAX_QUEUES + 1];
	uint64_t msix_pending;    /* the PBA: bit n for vector n */
	/* How the guest and the device signalled each other (vmm run --timings): */
	uint64_t exit_notifies;   /* doorbell writes that came as MMIO exits */
	uint64_t irqfd_irqs, ioctl_irqs;   /* interrupts sent by an irqfd write, and by an ioctl (KVM_SIGNAL_MSI, KVM_IRQ_LINE) */
	uint64_t resets;          /* counts device resets: work begun before one is dropped */
	const struct vmm_virtio_ops *ops;
	uint64_t features;        /* offered */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint16_t qselect;
	unsigned nqueues;
	struct vmm_virtq q[VMM_VIRTIO_MAX_QUEUES];
	void *priv;
};

/* Sets up v as a modern virtio-pci device of type (2: block) and adds it to bus. */
int vmm_virtio_init(struct vmm_virtio *v, struct vmm_vm *vm, struct vmm_pci *bus, unsigned type,
		    unsigned nqueues, uint64_t features, const struct vmm_virtio_ops *ops);

/*
 * Gives queue q an eventfd (the device's; -1: none) for its doorbell: while
 * the driver runs (DRIVER_OK) and the kernel has ioeventfd, a guest write to
 * the queue's doorbell signals fd in the kernel, with no exit to vmm; else
 * ops->notify runs on the vCPU's exit as before. Before vmm_pci_add's BAR
 * decoding starts, i.e. right after vmm_virtio_init.
 */
void vmm_virtio_set_kick(struct vmm_virtio *v, unsigned q, int fd);
/* Releases what vmm_virtio_init set up beside the struct (irqfds, doorbells). */
void vmm_virtio_release(struct vmm_virtio *v);

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
/* The same without the interrupt, for a batch: vmm_virtq_notify once after it. */
void vmm_virtq_put(struct vmm_virtio *v, unsigned q, uint16_t head, uint32_t written);
/* Interrupts the driver for queue q unless it asked for none (VIRTQ_AVAIL_F_NO_INTERRUPT). */
void vmm_virtq_notify(struct vmm_virtio *v, unsigned q);
/*
 * While the device drains queue q it asks the driver not to notify
 * (VIRTQ_USED_F_NO_NOTIFY); before it sleeps it asks again and looks once
 * more: vmm_virtq_quiet returns true when the ring is empty with
 * notifications on, false when new chains came meanwhile.
 */
void vmm_virtq_busy(struct vmm_virtio *v, unsigned q);
bool vmm_virtq_quiet(struct vmm_virtio *v, unsigned q);
/*
 * Interrupts the driver for queue q, or for a configuration change when q is
 * -1: through q's MSI-X vector when MSI-X is enabled (pending while masked,
 * nothing for no vector), else ISR bit 0 (or 1) and INTA#, which drops when
 * the guest reads the ISR. Caller holds v->lock.
 */
void vmm_virtio_interrupt(struct vmm_virtio *v, int q);

/*
 * Suspend and resume (a vm.state section per device, vmm/suspend.c): save
 * returns the bytes put in buf (at most VMM_STATE_DEV_MAX); load refuses
 * (-EINVAL) a wrong length or a value this device cannot hold, then sets
 * the registers, rebinds the doorbells and raises a pending INTx line.
 * The device's own threads must be quiet meanwhile.
 */
size_t vmm_virtio_save(struct vmm_virtio *v, void *buf);
int vmm_virtio_load(struct vmm_virtio *v, const void *buf, size_t len);

#endif
