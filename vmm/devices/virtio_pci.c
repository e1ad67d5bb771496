/*
 * The virtio 1.x PCI transport ("modern" only, virtio spec 4.1) and the split
 * virtqueue (spec 2.7). BAR0 holds, 4 KiB apart: the common configuration, the
 * ISR byte, the device configuration and the notification area (multiplier
 * 0: one doorbell for all queues). The guest owns every ring and descriptor,
 * so every index is taken modulo the queue size and every buffer is checked
 * against guest RAM by vmm_gpa() before use. Interrupts are MSI-X when the
 * driver enables it (spec 4.1.4.7: a vector for the configuration and one per
 * queue; the table at BAR0 + 0x1800, the PBA at + 0x1C00; KVM_SIGNAL_MSI),
 * else INTx: a used buffer sets ISR bit 0 and asserts INTA# (level-triggered);
 * the guest's read of the ISR returns and clears it and deasserts the line
 * (spec 4.1.4.5). All of it runs under the device's lock, since several vCPUs
 * may touch it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/base.h"
#include "vmm/devices/pci.h"
#include "vmm/devices/virtio.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"

#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define OFF_COMMON 0x0000
#define OFF_ISR 0x1000
#define OFF_DEVICE 0x2000
#define OFF_NOTIFY 0x3000
#define OFF_MSIX_TABLE 0x1800
#define OFF_MSIX_PBA 0x1c00
#define NOTIFY_MULT 4		/* queue q's doorbell at OFF_NOTIFY + 4 q */
#define NO_VECTOR 0xffff
#define MSIX_CTRL_ENABLE 0x80	/* in the high byte of Message Control */
#define MSIX_CTRL_MASKALL 0x40
#define MSIX_ENTRY_MASKED 1u
#define QUEUE_MAX 256

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

static void add_cap(uint8_t *cfg, unsigned *at, uint8_t type, uint32_t off, uint32_t len, bool notify)
{
	uint8_t *c = cfg + *at, n = notify ? 20 : 16;

	c[0] = 0x09;		/* vendor-specific */
	c[1] = 0;		/* next: patched by the caller */
	c[2] = n;
	c[3] = type;
	c[4] = 0;		/* BAR0 */
	put32(c + 8, off);
	put32(c + 12, len);
	if (notify)
		put32(c + 16, NOTIFY_MULT);	/* notify_off_multiplier */
	*at += n;
}

/* The value of the common-configuration field at off (spec 4.1.4.3), and its width in *w. */
static uint64_t common_get(struct vmm_virtio *v, unsigned off, unsigned *w)
{
	struct vmm_virtq *q = v->qselect < v->nqueues ? &v->q[v->qselect] : NULL;

	*w = 4;
	switch (off) {
	case 0x00: return v->dfselect;
	case 0x04: return v->dfselect < 2 ? (uint32_t)(v->features >> (32 * v->dfselect)) : 0;
	case 0x08: return v->gfselect;
	case 0x0c: return v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0;
	case 0x10: *w = 2; return v->config_vec;
	case 0x12: *w = 2; return v->nqueues;
	case 0x14: *w = 1; return v->status;
	case 0x15: *w = 1; return 0;
	case 0x16: *w = 2; return v->qselect;
	case 0x18: *w = 2; return q ? q->size : 0;
	case 0x1a: *w = 2; return q ? v->queue_vec[v->qselect] : NO_VECTOR;
	case 0x1c: *w = 2; return q ? q->enabled : 0;
	case 0x1e: *w = 2; return v->qselect;	/* queue_notify_off */
	case 0x20: *w = 8; return q ? q->desc : 0;
	case 0x28: *w = 8; return q ? q->driver : 0;
	case 0x30: *w = 8; return q ? q->device : 0;
	default: *w = 0; return 0;
	}
}

/*
 * Binds each enabled queue's kick_fd to its doorbell while the driver runs
 * and the BAR decodes, unbinds every bound one otherwise (a reset, a moved
 * BAR). A queue whose binding fails keeps the exit path. Under v->lock.
 */
static void doorbells(struct vmm_virtio *v)
{
	bool on = (v->status & 4) && v->bus && vmm_pci_decodes(&v->pci);
	unsigned i;

	for (i = 0; i < v->nqueues; i++) {
		struct vmm_virtq *q = &v->q[i];
		uint64_t at = (uint64_t)v->pci.bar_addr + OFF_NOTIFY + NOTIFY_MULT * i;

		if (q->doorbell && (!on || !q->enabled || q->doorbell != at)) {
			vmm_ioeventfd(v->vm, q->doorbell, 2, q->kick_fd, false);
			q->doorbell = 0;
		}
		if (on && q->enabled && q->kick_fd >= 0 && !q->doorbell && !vmm_ioeventfd(v->vm, at, 2, q->kick_fd, true))
			q->doorbell = at;
	}
}

static void reset(struct vmm_virtio *v)
{
	unsigned i;

	v->isr = 0;
	v->resets++;
	v->config_vec = NO_VECTOR;
	for (i = 0; i < VMM_VIRTIO_MAX_QUEUES; i++)
		v->queue_vec[i] = NO_VECTOR;
	if (v->bus)
		vmm_pci_set_irq(v->bus, &v->pci, false);
	v->status = 0;
	doorbells(v);
	v->driver_features = 0;
	v->dfselect = v->gfselect = 0;
	v->qselect = 0;
	for (i = 0; i < v->nqueues; i++) {
		int fd = v->q[i].kick_fd;

		v->q[i] = (struct vmm_virtq){ .size = QUEUE_MAX, .kick_fd = fd };
	}
}

static void common_set(struct vmm_virtio *v, unsigned off, uint64_t val, unsigned len)
{
	struct vmm_virtq *q = v->qselect < v->nqueues ? &v->q[v->qselect] : NULL;
	uint64_t *addr = NULL;

	switch (off) {
	case 0x00: v->dfselect = (uint32_t)val; return;
	case 0x08: v->gfselect = (uint32_t)val; return;
	/* A vector the table does not have reads back as NO_VECTOR (spec 4.1.5.1.2). */
	case 0x10: v->config_vec = val < v->nqueues + 1u ? (uint16_t)val : NO_VECTOR; return;
	case 0x1a:
		if (q)
			v->queue_vec[v->qselect] = val < v->nqueues + 1u ? (uint16_t)val : NO_VECTOR;
		return;
	case 0x0c:
		if (v->gfselect < 2) {
			uint64_t mask = 0xffffffffull << (32 * v->gfselect);
			v->driver_features = (v->driver_features & ~mask) | ((val << (32 * v->gfselect)) & mask);
			v->driver_features &= v->features;
		}
		return;
	case 0x14:
		if ((uint8_t)val == 0) {
			reset(v);
		} else {
			v->status = (uint8_t)val;
			doorbells(v);
		}
		return;
	case 0x16: v->qselect = (uint16_t)val; return;
	case 0x18:
		/* A power of two up to QUEUE_MAX, else the queue stays unusable. */
		if (q && !q->enabled)
			q->size = (val && val <= QUEUE_MAX && !(val & (val - 1))) ? (uint16_t)val : 0;
		return;
	case 0x1c:
		if (q && val == 1) {
			q->enabled = q->size != 0;
			doorbells(v);
		}
		return;
	case 0x20: case 0x24: addr = q ? &q->desc : NULL; break;
	case 0x28: case 0x2c: addr = q ? &q->driver : NULL; break;
	case 0x30: case 0x34: addr = q ? &q->device : NULL; break;
	default: return;
	}
	if (!addr || (q && q->enabled))
		return;
	if (len == 8)
		*addr = val;
	else if (off & 4)
		*addr = (*addr & 0xffffffffull) | (val << 32);
	else
		*addr = (*addr & ~0xffffffffull) | (uint32_t)val;
}

static bool msix_enabled(const struct vmm_virtio *v)
{
	return v->pci.cfg[v->msix_cap + 3] & MSIX_CTRL_ENABLE;
}

/*
 * Delivers vector n through its irqfd: the route is made on the first send
 * and rewritten after the guest changed the message, so a send is one
 * eventfd write. False when there is no irqfd (the caller uses the ioctl).
 */
static bool msix_irqfd(struct vmm_virtio *v, unsigned n)
{
	uint64_t addr = (uint64_t)v->msix[n].addr_hi << 32 | v->msix[n].addr_lo, one = 1;
	int gsi;

	if (!(v->vm->caps & VMM_CAP_IRQFD))
		return false;
	if (v->msix[n].gsi < 0) {
		if (v->msix[n].irqfd < 0)
			v->msix[n].irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->msix[n].irqfd < 0)
			return false;
		gsi = vmm_irq_msi_new(v->vm, v->msix[n].irqfd, addr, v->msix[n].data);
		if (gsi < 0)
			return false;
		v->msix[n].gsi = gsi;
		v->msix[n].stale = false;
	} else if (v->msix[n].stale) {
		if (vmm_irq_msi_set(v->vm, v->msix[n].gsi, addr, v->msix[n].data))
			return false;
		v->msix[n].stale = false;
	}
	return write(v->msix[n].irqfd, &one, sizeof(one)) == sizeof(one);
}

/* Sends vector n, or leaves it pending in the PBA while it or the function is masked. */
static void msix_send(struct vmm_virtio *v, unsigned n)
{
	if ((v->msix[n].ctrl & MSIX_ENTRY_MASKED) || (v->pci.cfg[v->msix_cap + 3] & MSIX_CTRL_MASKALL)) {
		v->msix_pending |= 1ull << n;
		return;
	}
	v->msix_pending &= ~(1ull << n);
	if (msix_irqfd(v, n)) {
		v->irqfd_irqs++;
		return;
	}
	v->ioctl_irqs++;
	vmm_vm_signal_msi(v->vm, (uint64_t)v->msix[n].addr_hi << 32 | v->msix[n].addr_lo, v->msix[n].data);
}

/* After an unmask: what was held back goes now. */
static void msix_flush(struct vmm_virtio *v)
{
	unsigned n;

	for (n = 0; n < v->nqueues + 1u; n++)
		if (v->msix_pending & (1ull << n))
			msix_send(v, n);
}

void vmm_virtio_interrupt(struct vmm_virtio *v, int q)
{
	uint16_t vec;

	if (msix_enabled(v)) {
		vec = q < 0 ? v->config_vec : v->queue_vec[q];
		if (vec != NO_VECTOR)
			msix_send(v, vec);
		return;
	}
	v->isr |= q < 0 ? 2 : 1;
	v->ioctl_irqs++;
	vmm_pci_set_irq(v->bus, &v->pci, true);
}

/* The MSI-X table (16 bytes an entry, dword access) and the PBA. */
static void msix_mmio(struct vmm_virtio *v, uint64_t off, bool write, uint8_t *data, unsigned len)
{
	unsigned n = (unsigned)(off - OFF_MSIX_TABLE) / 16, f = (unsigned)(off % 16);
	uint32_t val, *field;

	if (off >= OFF_MSIX_PBA) {
		if (!write) {
			memset(data, 0, len);
			if (off >= OFF_MSIX_PBA && off < OFF_MSIX_PBA + 8)
				for (unsigned i = 0; i < len && off - OFF_MSIX_PBA + i < 8; i++)
					data[i] = (uint8_t)(v->msix_pending >> (8 * (off - OFF_MSIX_PBA + i)));
		}
		return;
	}
	if (n >= v->nqueues + 1u || len != 4 || (f & 3)) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	field = f == 0 ? &v->msix[n].addr_lo : f == 4 ? &v->msix[n].addr_hi : f == 8 ? &v->msix[n].data : &v->msix[n].ctrl;
	if (!write) {
		val = cpu_to_le32(*field);
		memcpy(data, &val, 4);
		return;
	}
	memcpy(&val, data, 4);
	*field = le32_to_cpu(val);
	if (f != 12)
		v->msix[n].stale = true;
	if (f == 12) {
		v->msix[n].ctrl &= MSIX_ENTRY_MASKED;
		msix_flush(v);
	}
}

/* Configuration writes to the capabilities: only MSI-X's enable and function mask bits. */
static void cfg_write(struct vmm_pci_dev *d, unsigned off, const uint8_t *data, unsigned size)
{
	struct vmm_virtio *v = d->priv;
	unsigned i, hi = v->msix_cap + 3;

	pthread_mutex_lock(&v->lock);
	for (i = 0; i < size; i++) {
		if (off + i == hi) {
			d->cfg[hi] = (uint8_t)((d->cfg[hi] & 0x3f) | (data[i] & (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL)));
			/* INTx is off while MSI-X is on; a masked function may now send what it held. */
			if (msix_enabled(v)) {
				v->isr = 0;
				vmm_pci_set_irq(v->bus, &v->pci, false);
				msix_flush(v);
			}
		}
	}
	pthread_mutex_unlock(&v->lock);
}

static void mmio_locked(struct vmm_virtio *v, uint64_t off, bool write, uint8_t *data, unsigned len)
{
	uint64_t val = 0;
	unsigned w;

	if (off >= OFF_NOTIFY && off < OFF_NOTIFY + 0x1000) {
		/* The doorbell names the queue (the value written is its index too, spec 4.1.5.2). */
		if (write && len >= 2 && (off - OFF_NOTIFY) % NOTIFY_MULT == 0) {
			uint64_t q = (off - OFF_NOTIFY) / NOTIFY_MULT;
			if (q < v->nqueues && v->q[q].enabled && (v->status & 4)) {	/* DRIVER_OK */
				v->exit_notifies++;
				v->ops->notify(v, (unsigned)q);
			}
		}
		if (!write)
			memset(data, 0, len);
		return;
	}
	if (off >= OFF_DEVICE && off < OFF_DEVICE + 0x1000) {
		if (!write)
			v->ops->config(v, off - OFF_DEVICE, data, len);
		else if (v->ops->config_write)
			v->ops->config_write(v, off - OFF_DEVICE, data, len);
		return;
	}
	if (off >= OFF_MSIX_TABLE && off < OFF_MSIX_PBA + 0x400) {
		msix_mmio(v, off, write, data, len);
		return;
	}
	if (off == OFF_ISR) {
		/* Reading the ISR acknowledges the interrupt. */
		if (!write) {
			memset(data, 0, len);
			data[0] = v->isr;
			v->isr = 0;
			vmm_pci_set_irq(v->bus, &v->pci, false);
		}
		return;
	}
	if (off >= OFF_COMMON + 0x38) {
		if (!write)
			memset(data, 0, len);
		return;
	}
	/* 64-bit fields may be written as two 32-bit halves. */
	if (write) {
		memcpy(&val, data, len);
		val = le64_to_cpu(val);
		common_set(v, (unsigned)off, val, len);
		return;
	}
	val = common_get(v, (unsigned)off, &w);
	if (!w && (off & 4)) {
		val = common_get(v, (unsigned)off - 4, &w);
		val = w == 8 ? val >> 32 : 0;
	}
	val = cpu_to_le64(val);
	memset(data, 0, len);
	memcpy(data, &val, len < 8 ? len : 8);
}

static void decode_changed(struct vmm_pci_dev *d)
{
	struct vmm_virtio *v = d->priv;

	pthread_mutex_lock(&v->lock);
	doorbells(v);
	pthread_mutex_unlock(&v->lock);
}

void vmm_virtio_set_kick(struct vmm_virtio *v, unsigned q, int fd)
{
	pthread_mutex_lock(&v->lock);
	v->q[q].kick_fd = fd;
	doorbells(v);
	pthread_mutex_unlock(&v->lock);
}

void vmm_virtio_release(struct vmm_virtio *v)
{
	unsigned i;

	pthread_mutex_lock(&v->lock);
	v->status = 0;
	doorbells(v);
	pthread_mutex_unlock(&v->lock);
	for (i = 0; i <= v->nqueues; i++)
		if (v->msix[i].irqfd >= 0)
			close(v->msix[i].irqfd);	/* closing it unbinds the irqfd */
}

static void mmio(struct vmm_pci_dev *d, uint64_t off, bool write, uint8_t *data, unsigned len)
{
	struct vmm_virtio *v = d->priv;

	pthread_mutex_lock(&v->lock);
	mmio_locked(v, off, write, data, len);
	pthread_mutex_unlock(&v->lock);
}

int vmm_virtio_init(struct vmm_virtio *v, struct vmm_vm *vm, struct vmm_pci *bus, unsigned type,
		    unsigned nqueues, uint64_t features, const struct vmm_virtio_ops *ops)
{
	uint8_t *cfg = v->pci.cfg;
	unsigned at = 0x40, prev, i;
	int ret;

	if (nqueues > VMM_VIRTIO_MAX_QUEUES)
		return -EINVAL;
	v->vm = vm;
	v->bus = NULL;		/* no line to lower before vmm_pci_add */
	pthread_mutex_init(&v->lock, NULL);
	v->ops = ops;
	v->nqueues = nqueues;
	v->features = features | (1ull << 32);	/* VIRTIO_F_VERSION_1 */
	for (i = 0; i < nqueues; i++)
		v->q[i].kick_fd = -1;
	reset(v);
	memset(cfg, 0, sizeof(v->pci.cfg));
	put16(cfg + 0x00, 0x1af4);		/* vendor: Red Hat / virtio */
	put16(cfg + 0x02, (uint16_t)(0x1040 + type));
	put16(cfg + 0x06, 0x0010);		/* status: capability list */
	cfg[0x08] = 1;				/* revision: modern */
	cfg[0x0b] = type == 2 ? 0x01 : 0xff;	/* class: mass storage, or other */
	put16(cfg + 0x2c, 0x1af4);
	put16(cfg + 0x2e, (uint16_t)(0x40 + type));
	cfg[0x34] = 0x40;
	prev = at;
	add_cap(cfg, &at, CAP_COMMON, OFF_COMMON, 0x38, false);
	cfg[prev + 1] = (uint8_t)at, prev = at;
	add_cap(cfg, &at, CAP_ISR, OFF_ISR, 1, false);
	cfg[prev + 1] = (uint8_t)at, prev = at;
	add_cap(cfg, &at, CAP_DEVICE, OFF_DEVICE, 0x1000, false);
	cfg[prev + 1] = (uint8_t)at, prev = at;
	add_cap(cfg, &at, CAP_NOTIFY, OFF_NOTIFY, 0x1000, true);
	cfg[prev + 1] = (uint8_t)at;
	/* MSI-X: one vector for the configuration and one per queue, table and PBA in BAR0. */
	v->msix_cap = at;
	cfg[at] = 0x11;
	put16(cfg + at + 2, (uint16_t)nqueues);	/* table size - 1 */
	put32(cfg + at + 4, OFF_MSIX_TABLE);	/* BIR 0 */
	put32(cfg + at + 8, OFF_MSIX_PBA);
	memset(v->msix, 0, sizeof(v->msix));
	for (i = 0; i <= nqueues; i++) {
		v->msix[i].ctrl = MSIX_ENTRY_MASKED;	/* masked at reset, as PCI has it */
		v->msix[i].irqfd = v->msix[i].gsi = -1;
	}
	v->msix_pending = 0;
	v->pci.mmio = mmio;
	v->pci.cfg_write = cfg_write;
	v->pci.decode_changed = decode_changed;
	v->pci.priv = v;
	ret = vmm_pci_add(bus, &v->pci);
	if (!ret)
		v->bus = bus;
	return ret;
}

int vmm_virtio_new(struct vmm_vm *vm, struct vmm_pci *bus, unsigned type, unsigned nqueues,
		   const struct vmm_virtio_ops *ops, struct vmm_virtio **out)
{
	struct vmm_virtio *v = calloc(1, sizeof(*v));
	int ret;

	if (!v)
		return -ENOMEM;
	ret = vmm_virtio_init(v, vm, bus, type, nqueues, 0, ops);
	if (ret) {
		free(v);
		return ret;
	}
	*out = v;
	return 0;
}

int vmm_virtq_pop(struct vmm_virtio *v, unsigned qi, struct vmm_virtio_buf *bufs, unsigned *nbufs, uint16_t *head)
{
	struct vmm_virtq *q = &v->q[qi];
	uint8_t *avail = vmm_gpa(v->vm, q->driver, 4 + 2ull * q->size);
	uint8_t *desc = vmm_gpa(v->vm, q->desc, 16ull * q->size);
	uint16_t idx, i, n = 0;

	if (!avail || !desc)
		return -EINVAL;
	idx = (uint16_t)(avail[2] | avail[3] << 8);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (idx == q->last_avail)
		return 0;
	i = (uint16_t)(avail[4 + 2 * (q->last_avail % q->size)] | avail[5 + 2 * (q->last_avail % q->size)] << 8);
	q->last_avail++;
	*head = i;
	for (;;) {
		uint8_t *d;
		uint64_t addr;
		uint32_t len;
		uint16_t flags;

		if (i >= q->size || n >= q->size || n >= VMM_VIRTIO_MAX_BUFS)
			return -EINVAL;	/* out of range, a loop, or too long */
		d = desc + 16 * i;
		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		addr = le64_to_cpu(addr);
		len = le32_to_cpu(len);
		flags = (uint16_t)(d[12] | d[13] << 8);
		if (flags & DESC_F_INDIRECT)
			return -EINVAL;
		bufs[n].p = vmm_gpa(v->vm, addr, len);
		if (!bufs[n].p)
			return -EINVAL;
		bufs[n].len = len;
		bufs[n].device_writes = flags & DESC_F_WRITE;
		n++;
		if (!(flags & DESC_F_NEXT))
			break;
		i = (uint16_t)(d[14] | d[15] << 8);
	}
	*nbufs = n;
	return 1;
}

void vmm_virtq_put(struct vmm_virtio *v, unsigned qi, uint16_t head, uint32_t written)
{
	struct vmm_virtq *q = &v->q[qi];
	uint8_t *used = vmm_gpa(v->vm, q->device, 4 + 8ull * q->size);
	uint16_t idx;

	if (!used)
		return;
	idx = (uint16_t)(used[2] | used[3] << 8);
	put32(used + 4 + 8 * (idx % q->size), head);
	put32(used + 8 + 8 * (idx % q->size), written);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(used + 2, (uint16_t)(idx + 1));
}

void vmm_virtq_notify(struct vmm_virtio *v, unsigned qi)
{
	struct vmm_virtq *q = &v->q[qi];
	uint8_t *avail = vmm_gpa(v->vm, q->driver, 4);

	/* The used index must be visible before the flag is read (the driver re-enables, then re-checks). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (avail && (avail[0] & 1))	/* VIRTQ_AVAIL_F_NO_INTERRUPT */
		return;
	vmm_virtio_interrupt(v, (int)qi);
}

void vmm_virtq_push(struct vmm_virtio *v, unsigned qi, uint16_t head, uint32_t written)
{
	vmm_virtq_put(v, qi, head, written);
	vmm_virtio_interrupt(v, (int)qi);
}

static void used_flags(struct vmm_virtio *v, unsigned qi, uint16_t flags)
{
	uint8_t *used = vmm_gpa(v->vm, v->q[qi].device, 4);

	if (used)
		put16(used, flags);
}

void vmm_virtq_busy(struct vmm_virtio *v, unsigned qi)
{
	used_flags(v, qi, 1);	/* VIRTQ_USED_F_NO_NOTIFY */
}

bool vmm_virtq_quiet(struct vmm_virtio *v, unsigned qi)
{
	struct vmm_virtq *q = &v->q[qi];
	uint8_t *avail = vmm_gpa(v->vm, q->driver, 4);

	used_flags(v, qi, 0);
	/* The flag must be visible before the index is read: a driver that saw it set did not notify. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !avail || (uint16_t)(avail[2] | avail[3] << 8) == q->last_avail;
}

/*
 * Suspend and resume: the transport's registers, the MSI-X table and
 * pending bits, and each queue's rings and position. The disks are quiet
 * (no chain popped and unanswered) when it is saved. On load each value is
 * checked against the device as it is built now; the irqfd routes are made
 * again at the first interrupt, the doorbells bound again here.
 */
struct virtio_state {
	uint64_t driver_features, msix_pending;
	uint32_t dfselect, gfselect, nqueues;
	uint16_t qselect, config_vec;
	uint8_t status, isr, msix_ctrl, pad;
	uint16_t queue_vec[VMM_VIRTIO_MAX_QUEUES];
	struct {
		uint32_t addr_lo, addr_hi, data, ctrl;
	} msix[VMM_VIRTIO_MAX_QUEUES + 1];
	struct {
		uint64_t desc, driver, device;
		uint16_t size, last_avail;
		uint8_t enabled, pad[3];
	} q[VMM_VIRTIO_MAX_QUEUES];
};

size_t vmm_virtio_save(struct vmm_virtio *v, void *buf)
{
	struct virtio_state st;
	unsigned i;

	memset(&st, 0, sizeof(st));
	pthread_mutex_lock(&v->lock);
	st.driver_features = v->driver_features;
	st.msix_pending = v->msix_pending;
	st.dfselect = v->dfselect;
	st.gfselect = v->gfselect;
	st.nqueues = v->nqueues;
	st.qselect = v->qselect;
	st.config_vec = v->config_vec;
	st.status = v->status;
	st.isr = v->isr;
	st.msix_ctrl = v->pci.cfg[v->msix_cap + 3];
	for (i = 0; i < v->nqueues; i++) {
		st.queue_vec[i] = v->queue_vec[i];
		st.q[i].desc = v->q[i].desc;
		st.q[i].driver = v->q[i].driver;
		st.q[i].device = v->q[i].device;
		st.q[i].size = v->q[i].size;
		st.q[i].last_avail = v->q[i].last_avail;
		st.q[i].enabled = v->q[i].enabled;
	}
	for (i = 0; i <= v->nqueues; i++) {
		st.msix[i].addr_lo = v->msix[i].addr_lo;
		st.msix[i].addr_hi = v->msix[i].addr_hi;
		st.msix[i].data = v->msix[i].data;
		st.msix[i].ctrl = v->msix[i].ctrl;
	}
	pthread_mutex_unlock(&v->lock);
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

static bool vector_ok(const struct vmm_virtio *v, uint16_t vec)
{
	return vec == NO_VECTOR || vec < v->nqueues + 1u;
}

int vmm_virtio_load(struct vmm_virtio *v, const void *buf, size_t len)
{
	struct virtio_state st;
	unsigned i;

	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	if (st.nqueues != v->nqueues || (st.driver_features & ~v->features) || !vector_ok(v, st.config_vec) ||
	    (st.isr & ~3u) || (st.msix_ctrl & 0x3f) != (v->pci.cfg[v->msix_cap + 3] & 0x3f) ||
	    (st.msix_pending >> (v->nqueues + 1)))
		return -EINVAL;
	for (i = 0; i < v->nqueues; i++)
		if (!vector_ok(v, st.queue_vec[i]) || st.q[i].size > QUEUE_MAX ||
		    (st.q[i].size & (st.q[i].size - 1)) || (st.q[i].enabled && !st.q[i].size) || st.q[i].enabled > 1)
			return -EINVAL;
	for (i = 0; i <= v->nqueues; i++)
		if (st.msix[i].ctrl & ~MSIX_ENTRY_MASKED)
			return -EINVAL;
	pthread_mutex_lock(&v->lock);
	v->driver_features = st.driver_features;
	v->msix_pending = st.msix_pending;
	v->dfselect = st.dfselect;
	v->gfselect = st.gfselect;
	v->qselect = st.qselect;
	v->config_vec = st.config_vec;
	v->status = st.status;
	v->isr = st.isr;
	v->pci.cfg[v->msix_cap + 3] = st.msix_ctrl;
	for (i = 0; i < v->nqueues; i++) {
		v->queue_vec[i] = st.queue_vec[i];
		v->q[i].desc = st.q[i].desc;
		v->q[i].driver = st.q[i].driver;
		v->q[i].device = st.q[i].device;
		v->q[i].size = st.q[i].size;
		v->q[i].last_avail = st.q[i].last_avail;
		v->q[i].enabled = st.q[i].enabled;
	}
	for (i = 0; i <= v->nqueues; i++) {
		v->msix[i].addr_lo = st.msix[i].addr_lo;
		v->msix[i].addr_hi = st.msix[i].addr_hi;
		v->msix[i].data = st.msix[i].data;
		v->msix[i].ctrl = st.msix[i].ctrl;
		v->msix[i].stale = true;
	}
	doorbells(v);
	/* INTx: a line left raised is raised again (the IOAPIC's state came back with the irqchip's). */
	if (!msix_enabled(v) && v->isr)
		vmm_pci_set_irq(v->bus, &v->pci, true);
	pthread_mutex_unlock(&v->lock);
	return 0;
}
