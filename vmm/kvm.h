/*
 * The VM itself (vmm/kvm.c): /dev/kvm, guest RAM at guest physical 0, the
 * in-kernel irqchip and PIT, the vCPU threads and their exit loop, which hands
 * port I/O and MMIO to the devices. struct vmm_vm is what every other part
 * borrows. Guest-supplied addresses reach host memory only through vmm_gpa;
 * pause, resume and stop go through state_lock.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/pci.h"

struct kvm_run;
struct vmm_irq;
struct vmm_rtc;
struct vmm_serial;

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
	unsigned caps;            /* VMM_CAP_* (vmm/irq.h): what KVM does for the devices */
	struct vmm_irq *irq;      /* the GSI routing table, when VMM_CAP_IRQFD */
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

#endif
