/*
 * virtio-balloon (virtio spec 5.5), the inflate and deflate queues only: each
 * page frame number the guest puts on the inflate queue (little-endian u32,
 * 4 KiB pages) is checked against guest RAM and given back to the host with
 * madvise(MADV_DONTNEED), so it reads as zeros when the guest touches it
 * again; deflated pages need nothing (they fault back in). The target
 * (num_pages) comes from the host (vmm ctl balloon PAGES), announced by a
 * configuration change interrupt (ISR bit 1); the guest's "actual" is kept
 * for status. Both live under the device lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "vmm/devices/devices.h"
#include "vmm/devices/pci.h"
#include "vmm/devices/virtio.h"
#include "vmm/kvm.h"

#define BALLOON_PAGE 4096u

struct balloon {
	struct vmm_virtio v;      /* first: free(&b->v) frees it all */
	uint32_t target, actual;
};

static void balloon_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_virtio_buf bufs[VMM_VIRTIO_MAX_BUFS];
	unsigned n, i;
	uint16_t head;
	uint32_t j;
	int ret;

	while ((ret = vmm_virtq_pop(v, q, bufs, &n, &head)) == 1) {
		for (i = 0; q == 0 && i < n; i++) {
			if (bufs[i].device_writes)
				continue;
			for (j = 0; j + 4 <= bufs[i].len; j += 4) {
				uint32_t pfn;
				void *page;

				memcpy(&pfn, bufs[i].p + j, 4);
				page = vmm_gpa(v->vm, (uint64_t)le32_to_cpu(pfn) * BALLOON_PAGE, BALLOON_PAGE);
				if (page)	/* a page outside RAM is skipped, not trusted */
					madvise(page, BALLOON_PAGE, MADV_DONTNEED);
			}
		}
		vmm_virtq_push(v, q, head, 0);
	}
	if (ret < 0)
		v->status |= 0x40;	/* DEVICE_NEEDS_RESET */
}

static void balloon_config(struct vmm_virtio *v, uint64_t off, uint8_t *data, unsigned len)
{
	struct balloon *b = v->priv;
	uint8_t cfg[8];
	uint32_t t = cpu_to_le32(b->target), a = cpu_to_le32(b->actual);

	memcpy(cfg, &t, 4);	/* num_pages */
	memcpy(cfg + 4, &a, 4);	/* actual */
	memset(data, 0, len);
	if (off < sizeof(cfg))
		memcpy(data, cfg + off, off + len <= sizeof(cfg) ? len : sizeof(cfg) - off);
}

/* The driver writes "actual" (offset 4, le32); everything else is read-only. */
static void balloon_config_write(struct vmm_virtio *v, uint64_t off, const uint8_t *data, unsigned len)
{
	struct balloon *b = v->priv;
	uint32_t a;

	if (off == 4 && len == 4) {
		memcpy(&a, data, 4);
		b->actual = le32_to_cpu(a);
	}
}

static const struct vmm_virtio_ops balloon_ops = {
	.notify = balloon_notify, .config = balloon_config, .config_write = balloon_config_write,
};

int vmm_balloon_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmm_virtio **out)
{
	struct balloon *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	b->v.priv = b;
	ret = vmm_virtio_init(&b->v, vm, bus, 5, 2, 0, &balloon_ops);
	if (ret) {
		free(b);
		return ret;
	}
	*out = &b->v;
	return 0;
}

void vmm_balloon_set_target(struct vmm_virtio *v, uint32_t pages)
{
	struct balloon *b = v->priv;

	pthread_mutex_lock(&v->lock);
	b->target = pages;
	if (v->status & 4)	/* DRIVER_OK: tell the driver */
		vmm_virtio_interrupt(v, -1);
	pthread_mutex_unlock(&v->lock);
}

void vmm_balloon_get(struct vmm_virtio *v, uint32_t *target, uint32_t *actual)
{
	struct balloon *b = v->priv;

	pthread_mutex_lock(&v->lock);
	*target = b->target;
	*actual = b->actual;
	pthread_mutex_unlock(&v->lock);
}

size_t vmm_balloon_save(struct vmm_virtio *v, void *buf)
{
	struct balloon *b = v->priv;
	uint32_t st[2];

	pthread_mutex_lock(&v->lock);
	st[0] = b->target, st[1] = b->actual;
	pthread_mutex_unlock(&v->lock);
	memcpy(buf, st, sizeof(st));
	return sizeof(st);
}

int vmm_balloon_load(struct vmm_virtio *v, const void *buf, size_t len)
{
	struct balloon *b = v->priv;
	uint32_t st[2];

	if (len != sizeof(st))
		return -EINVAL;
	memcpy(st, buf, sizeof(st));
	if (st[0] > v->vm->mem_size / BALLOON_PAGE)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	b->target = st[0], b->actual = st[1];
	pthread_mutex_unlock(&v->lock);
	return 0;
}
