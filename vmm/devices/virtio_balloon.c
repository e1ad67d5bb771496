/*
 * virtio-balloon (virtio spec 5.5), the inflate and deflate queues only: each
 * page frame number the guest puts on the inflate queue (little-endian u32,
 * 4 KiB pages) is checked against guest RAM and given back to the host with
 * madvise(MADV_DONTNEED), so it reads as zeros when the guest touches it
 * again; deflated pages need nothing (they fault back in). The target
 * (num_pages) is 0 for now: there is no host-side control yet, and the
 * guest's writes to "actual" are not kept.
 */
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"
#include "vmm/vmm_i.h"

#define BALLOON_PAGE 4096u

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
	(void)v;
	(void)off;
	memset(data, 0, len);	/* num_pages = 0, actual = 0 */
}

static const struct vmm_virtio_ops balloon_ops = { .notify = balloon_notify, .config = balloon_config };

int vmm_balloon_new(struct vmm_vm *vm, struct vmm_pci *bus, struct vmm_virtio **out)
{
	return vmm_virtio_new(vm, bus, 5, 2, &balloon_ops, out);
}
