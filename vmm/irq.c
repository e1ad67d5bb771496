/*
 * Interrupt routing, irqfd and ioeventfd (vmm/irq.h). KVM_SET_GSI_ROUTING
 * replaces the whole table, so the table lives here, the wiring that
 * KVM_CREATE_IRQCHIP sets up for GSIs 0..23 first (the PIC's pins for ISA
 * IRQs 0..15, the IOAPIC's for all 24, as Documentation/virt/kvm/api.rst and
 * KVM's default routing have them), then one MSI entry per irqfd. The table
 * is rewritten under its lock whenever an entry changes: only when a guest
 * driver programs an MSI-X vector, never per interrupt.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/irq.h"
#include "vmm/kvm.h"

#define IRQCHIP_PIC_MASTER 0
#define IRQCHIP_PIC_SLAVE 1
#define IRQCHIP_IOAPIC 2
#define GSI_LEGACY 24             /* 0..23: the irqchips' pins */
#define MAX_ROUTES 1024

struct vmm_irq {
	pthread_mutex_t lock;
	unsigned n, next_gsi;
	struct kvm_irq_routing_entry e[MAX_ROUTES];
};

static int commit(struct vmm_vm *vm)
{
	struct vmm_irq *r = vm->irq;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + r->n * sizeof(t->entries[0]));
	int ret = 0;

	if (!t)
		return -ENOMEM;
	t->nr = r->n;
	memcpy(t->entries, r->e, r->n * sizeof(r->e[0]));
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

static void chip(struct vmm_irq *r, unsigned gsi, unsigned irqchip, unsigned pin)
{
	r->e[r->n++] = (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
						       .u.irqchip = { .irqchip = irqchip, .pin = pin } };
}

int vmm_irq_probe(struct vmm_vm *vm)
{
	const char *off = getenv("VMM_NO_EVENTFD");
	struct vmm_irq *r;
	unsigned gsi;
	int max;

	vm->caps = 0;
	if (off && strcmp(off, "0") && *off)
		return 0;
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0)
		vm->caps |= VMM_CAP_IOEVENTFD;
	max = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (max <= GSI_LEGACY || ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	for (gsi = 0; gsi < GSI_LEGACY; gsi++) {
		if (gsi < 16)
			chip(r, gsi, gsi < 8 ? IRQCHIP_PIC_MASTER : IRQCHIP_PIC_SLAVE, gsi % 8);
		chip(r, gsi, IRQCHIP_IOAPIC, gsi);
	}
	r->next_gsi = GSI_LEGACY;
	vm->irq = r;
	if (commit(vm)) {
		/* The irqchips keep KVM's own table; interrupts go by ioctl. */
		vmm_irq_release(vm);
		return 0;
	}
	vm->caps |= VMM_CAP_IRQFD;
	return 0;
}

void vmm_irq_release(struct vmm_vm *vm)
{
	if (!vm->irq)
		return;
	pthread_mutex_destroy(&vm->irq->lock);
	free(vm->irq);
	vm->irq = NULL;
}

static void msi(struct kvm_irq_routing_entry *e, unsigned gsi, uint64_t addr, uint32_t data)
{
	*e = (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
					     .u.msi = { .address_lo = (uint32_t)addr,
							.address_hi = (uint32_t)(addr >> 32), .data = data } };
}

int vmm_irq_msi_new(struct vmm_vm *vm, int fd, uint64_t addr, uint32_t data)
{
	struct vmm_irq *r = vm->irq;
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd };
	int ret;

	if (!r)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&r->lock);
	if (r->n == MAX_ROUTES) {
		pthread_mutex_unlock(&r->lock);
		return -ENOSPC;
	}
	irqfd.gsi = r->next_gsi;
	msi(&r->e[r->n++], r->next_gsi, addr, data);
	ret = commit(vm);
	if (!ret && ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		ret = -errno;
	if (ret) {
		r->n--;
		commit(vm);
	} else {
		ret = (int)r->next_gsi++;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int vmm_irq_msi_set(struct vmm_vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct vmm_irq *r = vm->irq;
	unsigned i;
	int ret = -ENOENT;

	if (!r)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->n; i++) {
		if (r->e[i].gsi == (unsigned)gsi && r->e[i].type == KVM_IRQ_ROUTING_MSI) {
			msi(&r->e[i], (unsigned)gsi, addr, data);
			ret = commit(vm);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int vmm_ioeventfd(struct vmm_vm *vm, uint64_t gpa, unsigned len, int fd, bool assign)
{
	struct kvm_ioeventfd io = { .addr = gpa, .len = len, .fd = fd,
				    .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN };

	if (!(vm->caps & VMM_CAP_IOEVENTFD))
		return -EOPNOTSUPP;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}
