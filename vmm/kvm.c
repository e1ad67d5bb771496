/*
 * The KVM side of vmm: the VM with its RAM (one anonymous mapping at guest
 * physical 0), the in-kernel irqchip and PIT, the vCPUs, and the exit loop
 * that hands port I/O and MMIO to the devices. vCPU 0 runs on the caller's
 * thread; the others each on their own, waiting in the kernel for the guest's
 * startup IPI. An ACPI power off (S5 into PM1a_CNT, devices/acpi_pm.c), the
 * FADT's reset register or the i8042 reset command (0xFE to port 0x64) ends
 * the VM with exit code 0 (docs/VMM.md, "Running", says why). Every guest
 * physical address is checked against RAM by vmm_gpa() before it is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "vmm/config.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/devices.h"
#include "vmm/devices/pci.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"

#define PORT_COM1 0x3f8
#define PORT_CMOS 0x70
#define PORT_I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe
#define TSS_ADDR 0xfffbd000ull

void vmm_vm_irq_line(struct vmm_vm *vm, unsigned gsi, bool level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	/* Fails only for a GSI we never wire up; the guest just misses the interrupt. */
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		fprintf(stderr, "vmm: KVM_IRQ_LINE %u: %s\n", gsi, strerror(errno));
}

void vmm_vm_signal_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data };

	/* 0: the guest's LAPIC took nothing (a bad address); the guest just misses it. */
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		fprintf(stderr, "vmm: KVM_SIGNAL_MSI: %s\n", strerror(errno));
}

/* The console reads stdin unless it is a terminal owned by another process group (a background job). */
static int console_input_fd(void)
{
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) != getpgrp())
		return -1;
	return STDIN_FILENO;
}

void *vmm_gpa(struct vmm_vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > vm->mem_size || len > vm->mem_size - gpa)
		return NULL;
	return vm->mem + gpa;
}

/*
 * What KVM supports, with what a guest expects of its own vCPU: leaf 1 names
 * its initial APIC ID and sets the hypervisor bit (so Linux finds KVM's leaves
 * at 0x40000000 and uses kvmclock instead of calibrating the TSC), and the
 * topology leaves 0xB/0x1F name its x2APIC ID.
 */
static int set_cpuid(struct vmm_vm *vm, int fd, unsigned id)
{
	unsigned n = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
	int ret = 0;

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = n;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		ret = -errno;
		goto out;
	}
	for (unsigned i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00ffffffu) | id << 24;
			e->ecx |= 1u << 31;
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = id;
		}
	}
	if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
out:
	free(cpuid);
	return ret;
}

int vmm_vm_init(struct vmm_vm *vm, uint64_t mem_mib, unsigned ncpus, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	unsigned i;
	int ret, mmap_size;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vmm_pci_init(&vm->pci, vm);
	vmm_pm_init(&vm->pm);
	pthread_mutex_init(&vm->state_lock, NULL);
	base_cond_init_mono(&vm->state_cond);
	for (i = 0; i < VMM_MAX_CPUS; i++)
		vm->cpu_fd[i] = -1;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		return ret;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: KVM API version is not %d", KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_release;
	}
	/* KVM_CREATE_VM may be interrupted (seen with several vmm starting at once): ask again, as QEMU does. */
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		goto err_release;
	}
	vm->mem_size = mem_mib << 20;
	vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		ret = -errno;
		snprintf(err, errlen, "guest memory of %llu MiB: %s", (unsigned long long)mem_mib, strerror(errno));
		goto err_release;
	}
	/*
	 * No child ever needs guest RAM (and KVM's pages must not go
	 * copy-on-write); it also keeps the RAM its own mapping in
	 * /proc/PID/smaps, which bench/vmm reads to tell vmm's memory from the guest's.
	 */
	madvise(vm->mem, vm->mem_size, MADV_DONTFORK);
	region.memory_size = vm->mem_size;
	region.userspace_addr = (uint64_t)(uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 || ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		snprintf(err, errlen, "setting up the VM: %s", strerror(errno));
		goto err_release;
	}
	ret = vmm_irq_probe(vm);
	if (ret) {
		snprintf(err, errlen, "interrupt routing: %s", strerror(-ret));
		goto err_release;
	}
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		ret = -EINVAL;
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto err_release;
	}
	vm->run_size = (size_t)mmap_size;
	for (i = 0; i < ncpus; i++) {
		vm->cpu_fd[i] = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (vm->cpu_fd[i] < 0) {
			ret = -errno;
			snprintf(err, errlen, "vCPU %u: %s", i, strerror(errno));
			goto err_release;
		}
		vm->ncpus = i + 1;
		vm->run[i] = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->cpu_fd[i], 0);
		if (vm->run[i] == MAP_FAILED) {
			vm->run[i] = NULL;
			ret = -errno;
			snprintf(err, errlen, "vCPU %u: mmap: %s", i, strerror(errno));
			goto err_release;
		}
		ret = set_cpuid(vm, vm->cpu_fd[i], i);
		if (ret) {
			snprintf(err, errlen, "vCPU %u: CPUID: %s", i, strerror(-ret));
			goto err_release;
		}
	}
	ret = vmm_serial_new(vm, STDOUT_FILENO, console_input_fd(), &vm->serial);
	if (ret) {
		snprintf(err, errlen, "serial port: %s", strerror(-ret));
		goto err_release;
	}
	ret = vmm_rtc_new(&vm->rtc);
	if (ret) {
		snprintf(err, errlen, "CMOS clock: %s", strerror(-ret));
		goto err_release;
	}
	return 0;

err_release:
	vmm_vm_release(vm);
	return ret;
}

void vmm_vm_release(struct vmm_vm *vm)
{
	unsigned i;

	/*
	 * vCPU threads still running (vmm_vm_run failed to join them) may be
	 * inside KVM_RUN, reading their run page and guest memory: those stay
	 * mapped until the process exits.
	 */
	if (vm->aps_started)
		return;
	vmm_serial_free(vm->serial);
	vm->serial = NULL;
	vmm_rtc_free(vm->rtc);
	vm->rtc = NULL;
	for (i = 0; i < vm->ncpus; i++) {
		if (vm->run[i])
			munmap(vm->run[i], vm->run_size);
		if (vm->cpu_fd[i] >= 0)
			close(vm->cpu_fd[i]);
		vm->run[i] = NULL;
		vm->cpu_fd[i] = -1;
	}
	vmm_irq_release(vm);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	vm->mem = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

static void kick(struct vmm_vm *vm, unsigned cpu);

/*
 * The guest powered off or reset itself (vmm has no reboot: either ends the
 * VM, exit code 0). Any vCPU's thread: vCPU 0 may be halted inside KVM_RUN
 * when an AP does it, so it is kicked out to see done.
 */
static void guest_off(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->exit_code = 0;
	vm->done = true;
	kick(vm, 0);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

/* One port access of size bytes; reads of nothing return all ones, as on a PC. */
static void port_io(struct vmm_vm *vm, uint16_t port, bool write, uint8_t *data, unsigned size)
{
	if (vmm_pm_port(port, size)) {
		if (vmm_pm_io(&vm->pm, port, write, data, size) != VMM_PM_NONE)
			guest_off(vm);
		return;
	}
	if (port >= PORT_COM1 && port < PORT_COM1 + 8) {
		if (size == 1) {
			vmm_serial_io(vm->serial, port - PORT_COM1, write, data);
			return;
		}
	} else if ((port == PORT_CMOS || port == PORT_CMOS + 1) && size == 1) {
		vmm_rtc_io(vm->rtc, port - PORT_CMOS, write, data);
		return;
	} else if (port == 0xcf8 || (port >= 0xcfc && port < 0xd00)) {
		vmm_pci_io(&vm->pci, port, write, data, size);
		return;
	} else if (port == PORT_I8042_CMD && write && size == 1 && data[0] == I8042_CMD_RESET) {
		guest_off(vm);
		return;
	} else if (port == PORT_I8042_CMD && !write) {
		/* Status: both buffers empty. Linux's reboot=k polls this port for
		 * "input buffer empty" up to 65536 times before it sends the reset
		 * command; all ones would make it wait out every poll. */
		memset(data, 0, size);
		return;
	}
	if (!write)
		memset(data, 0xff, size);
}

static int handle_io(struct vmm_vm *vm, struct kvm_run *run, char *err, size_t errlen)
{
	unsigned size = run->io.size, i;
	uint64_t bytes = (uint64_t)size * run->io.count;
	uint8_t *data;

	/* KVM fills these, but a bad offset would let us scribble past the mapping. */
	if ((size != 1 && size != 2 && size != 4) || run->io.data_offset > vm->run_size ||
	    bytes > vm->run_size - run->io.data_offset) {
		snprintf(err, errlen, "bad port I/O exit (port 0x%x, size %u, count %u)", run->io.port, size,
			 run->io.count);
		return -EIO;
	}
	data = (uint8_t *)run + run->io.data_offset;
	for (i = 0; i < run->io.count && !vm->done; i++)
		port_io(vm, run->io.port, run->io.direction == KVM_EXIT_IO_OUT, data + (size_t)i * size, size);
	return 0;
}

/*
 * SIGTERM, SIGINT and SIGHUP stop the VM: the handler sets immediate_exit in
 * vCPU 0's run page (KVM_RUN then returns EINTR at once, even when the signal
 * came just before the ioctl) and vmm_vm_run returns with exit code 128 +
 * signal, so main() unlocks the disks and closes the datastore cleanly.
 */
static struct vmm_vm *signal_vm;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
	if (signal_vm)
		signal_vm->run[0]->immediate_exit = 1;
}

/*
 * Pausing: vmm_vm_pause sets pause_req, then immediate_exit in every run page
 * and SIGUSR1 to every vCPU thread (whose handler does nothing: the signal
 * only breaks KVM_RUN with EINTR; immediate_exit covers a signal that lands
 * just before the ioctl). Each vCPU parks in park() until resumed; the pauser
 * waits until parked == live. Stopping is the same kick to vCPU 0, which
 * then ends the VM.
 */
static void on_kick(int sig)
{
	(void)sig;
}

static void kick(struct vmm_vm *vm, unsigned cpu)
{
	vm->run[cpu]->immediate_exit = 1;
	if (vm->has_thread[cpu])
		pthread_kill(vm->thread[cpu], SIGUSR1);
}

void vmm_vm_pause(struct vmm_vm *vm)
{
	unsigned i;

	pthread_mutex_lock(&vm->state_lock);
	vm->pause_req = true;
	for (i = 0; i < vm->ncpus; i++)
		kick(vm, i);
	while (vm->parked < vm->live && !vm->done)
		pthread_cond_wait(&vm->state_cond, &vm->state_lock);
	pthread_mutex_unlock(&vm->state_lock);
}

void vmm_vm_resume(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

void vmm_vm_stop(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->stop_req = true;
	kick(vm, 0);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

bool vmm_vm_paused(struct vmm_vm *vm)
{
	bool p;

	pthread_mutex_lock(&vm->state_lock);
	p = vm->pause_req;
	pthread_mutex_unlock(&vm->state_lock);
	return p;
}

static void park(struct vmm_vm *vm, unsigned cpu)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->state_cond);
	while (vm->pause_req && !vm->stop_req && !vm->done && !(cpu == 0 && stop_signal)) {
		struct timespec ts;

		/*
		 * A stop signal cannot wake a condition variable from its
		 * handler, so vCPU 0 looks at stop_signal every 100 ms.
		 */
		ts = base_mono_deadline(100);
		pthread_cond_timedwait(&vm->state_cond, &vm->state_lock, &ts);
	}
	vm->parked--;
	/* A stop keeps vCPU 0's kick; anything else runs on. */
	if (!(cpu == 0 && (stop_signal || vm->stop_req)))
		vm->run[cpu]->immediate_exit = 0;
	pthread_mutex_unlock(&vm->state_lock);
}

static void set_live(struct vmm_vm *vm, int delta)
{
	pthread_mutex_lock(&vm->state_lock);
	vm->live = (unsigned)((int)vm->live + delta);
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->state_lock);
}

static int vcpu_loop(struct vmm_vm *vm, unsigned cpu, char *err, size_t errlen)
{
	struct kvm_run *run = vm->run[cpu];
	int ret;

	while (!vm->done) {
		if (cpu == 0 && stop_signal) {
			vm->done = true;
			vm->exit_code = 128 + stop_signal;
			break;
		}
		if (cpu == 0 && vm->stop_req) {
			vm->done = true;
			vm->exit_code = 0;
			break;
		}
		if (vm->pause_req) {
			/*
			 * The last exit's port or MMIO read reaches the guest's
			 * registers only at the next KVM_RUN: one with
			 * immediate_exit set completes it and returns at once,
			 * so what a suspend saves is whole (KVM's api.rst).
			 */
			run->immediate_exit = 1;
			ioctl(vm->cpu_fd[cpu], KVM_RUN, 0);
			park(vm, cpu);
			continue;
		}
		if (ioctl(vm->cpu_fd[cpu], KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(err, errlen, "vCPU %u: KVM_RUN: %s", cpu, strerror(errno));
			return -errno;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			ret = handle_io(vm, run, err, errlen);
			if (ret)
				return ret;
			break;
		case KVM_EXIT_MMIO:
			/* Outside a device's BAR reads see all ones, writes vanish. */
			if (run->mmio.len > sizeof(run->mmio.data) ||
			    !vmm_pci_mmio(&vm->pci, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data, run->mmio.len))
				if (!run->mmio.is_write)
					memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
			break;
		case KVM_EXIT_SHUTDOWN:
			snprintf(err, errlen, "vCPU %u: triple fault (guest reset without the i8042 reset command)", cpu);
			return -EIO;
		case KVM_EXIT_HLT:
			snprintf(err, errlen, "vCPU %u: halted", cpu);
			return -EIO;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(err, errlen, "vCPU %u: entry failed (hardware reason 0x%llx)", cpu,
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			return -EIO;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(err, errlen, "vCPU %u: KVM internal error %u", cpu, run->internal.suberror);
			return -EIO;
		default:
			snprintf(err, errlen, "vCPU %u: unhandled exit reason %u", cpu, run->exit_reason);
			return -EIO;
		}
	}
	return 0;
}

struct ap_arg {
	struct vmm_vm *vm;
	unsigned cpu;
	char err[200];
	int ret;
};

static void *ap_thread(void *p)
{
	struct ap_arg *a = p;

	a->ret = vcpu_loop(a->vm, a->cpu, a->err, sizeof(a->err));
	set_live(a->vm, -1);
	if (a->ret)
		fprintf(stderr, "vmm: %s\n", a->err);
	return NULL;
}

int vmm_vm_run(struct vmm_vm *vm, char *err, size_t errlen)
{
	static struct ap_arg args[VMM_MAX_CPUS];
	struct sigaction sa = { .sa_handler = on_stop_signal }, ka = { .sa_handler = on_kick };
	sigset_t stop, old;
	pthread_t t;
	unsigned i;
	int ret;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	signal_vm = vm;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &ka, NULL);	/* no SA_RESTART: it breaks KVM_RUN */
	vm->thread[0] = pthread_self();
	vm->has_thread[0] = true;
	/* The vCPU threads inherit a mask without the stop signals: only vCPU 0 takes them. */
	pthread_sigmask(SIG_BLOCK, &stop, &old);

	/*
	 * The other vCPUs sit in KVM_RUN until the guest starts them. When the
	 * VM ends they are kicked out of KVM_RUN (they see done) and joined.
	 */
	set_live(vm, 1);	/* vCPU 0, this thread */
	for (i = 1; i < vm->ncpus; i++) {
		args[i] = (struct ap_arg){ .vm = vm, .cpu = i };
		set_live(vm, 1);
		pthread_mutex_lock(&vm->state_lock);
		ret = pthread_create(&t, NULL, ap_thread, &args[i]);
		if (!ret) {
			vm->thread[i] = t;
			vm->has_thread[i] = true;
		}
		pthread_mutex_unlock(&vm->state_lock);
		if (ret) {
			set_live(vm, -1);
			snprintf(err, errlen, "vCPU %u: cannot start its thread", i);
			ret = -EAGAIN;
			break;
		}
		vm->aps_started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret)
		ret = vcpu_loop(vm, 0, err, errlen);
	pthread_mutex_lock(&vm->state_lock);
	vm->done = true;	/* also after an error: a pauser stops waiting, the APs end */
	vm->live--;
	pthread_cond_broadcast(&vm->state_cond);
	for (i = 1; i < vm->ncpus; i++)
		if (vm->has_thread[i])
			kick(vm, i);
	pthread_mutex_unlock(&vm->state_lock);
	for (i = 1; i < vm->ncpus; i++) {
		if (vm->has_thread[i]) {
			pthread_join(vm->thread[i], NULL);
			vm->has_thread[i] = false;
		}
	}
	vm->aps_started = false;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal_vm = NULL;
	return ret;
}
