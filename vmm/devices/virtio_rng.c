/*
 * virtio-rng (virtio spec 5.4): one queue whose buffers the device fills with
 * bytes from getrandom(2). Buffers the device may only read, or a chain the
 * guest broke, complete with nothing written.
 */
#include <string.h>
#include <sys/random.h>

#include "vmm/devices/devices.h"
#include "vmm/devices/pci.h"
#include "vmm/devices/virtio.h"
#include "vmm/kvm.h"

static void rng_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_virtio_buf bufs[VMM_VIRTIO_MAX_BUFS];
	unsigned n, i;
	uint16_t head;
	int ret;

	while ((ret = vmm_virtq_pop(v, q, bufs, &n, &head)) == 1) {
		uint32_t written = 0;

		for (i = 0; i < n; i++) {
			ssize_t got;

			if (!bufs[i].device_writes)
				break;
			got = getrandom(bufs[i].p, bufs[i].len, 0);
			if (got < 0)
				break;
			written += (uint32_t)got;
			if ((uint32_t)got < bufs[i].len)
				break;
		}
		vmm_virtq_push(v, q, head, written);
	}
	if (ret < 0)
		v->status |= 0x40;	/* DEVICE_NEEDS_RESET */
}

static void rng_config(struct vmm_virtio *v, uint64_t off, uint8_t *data, unsigned len)
{
	(void)v;
	(void)off;
	memset(data, 0, len);	/* no configuration space */
}

static const struct vmm_virtio_ops rng_ops = { .notify = rng_notify, .config = rng_config };

int vmm_rng_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmm_virtio **out)
{
	return vmm_virtio_new(vm, bus, 4, 1, &rng_ops, out);
}
