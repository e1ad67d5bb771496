/*
 * The CPU side of a suspend (vmm/x86/x86.h): each vCPU's registers, FPU and
 * vector state, LAPIC, MSRs, pending events and run state, and the VM's
 * interrupt controllers, PIT and clock, through KVM's get and set ioctls,
 * as vm.state sections (vmm/vmstate.h). The vCPUs are parked (vmm_vm_pause)
 * or not started yet, so any thread may do it.
 *
 * Order matters, as in Firecracker's and QEMU's restores: KVM_GET_MP_STATE
 * first (it may take pending INIT/SIPI into the state); on the way back the
 * special registers (the APIC base) before the LAPIC, and the LAPIC before
 * the MSRs (a TSC deadline is dropped unless the timer is in that mode),
 * and the pending events last.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/kvm.h"
#include "vmm/vmstate.h"
#include "vmm/x86/x86.h"

#define MAX_MSRS 1024
#define MAX_CPUID 256

struct msrs {
	struct kvm_msrs h;
	struct kvm_msr_entry e[MAX_MSRS];
};

struct cpuid {
	struct kvm_cpuid2 h;
	struct kvm_cpuid_entry2 e[MAX_CPUID];
};

/* The MSRs KVM saves and restores for a guest (KVM_GET_MSR_INDEX_LIST). */
static int msr_list(struct vmm_vm *vm, struct kvm_msr_list **out)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + MAX_MSRS * sizeof(uint32_t));

	if (!l)
		return -ENOMEM;
	l->nmsrs = MAX_MSRS;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int ret = -errno;

		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

/* Every listed MSR this vCPU reads: one at a time, since KVM_GET_MSRS stops at the first it cannot. */
static unsigned get_msrs(int fd, const struct kvm_msr_list *l, struct msrs *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < l->nmsrs && n < MAX_MSRS; i++) {
		struct { struct kvm_msrs h; struct kvm_msr_entry e; } one = { .h.nmsrs = 1, .e.index = l->indices[i] };

		if (ioctl(fd, KVM_GET_MSRS, &one) == 1)
			m->e[n++] = one.e;
	}
	m->h.nmsrs = n;
	return n;
}

static int save_cpu(struct vmm_vm *vm, unsigned c, const struct kvm_msr_list *l, struct vmm_state_writer *w,
		    char *err, size_t errlen)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xsave = NULL;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state *lapic = NULL;
	struct kvm_vcpu_events ev;
	struct msrs *m = NULL;
	struct cpuid *cpuid = NULL;
	uint64_t khz;
	int fd = vm->cpu_fd[c], ret = -ENOMEM, r;
	const char *what = "memory";

	xsave = calloc(1, sizeof(*xsave));
	lapic = calloc(1, sizeof(*lapic));
	m = calloc(1, sizeof(*m));
	cpuid = calloc(1, sizeof(*cpuid));
	if (!xsave || !lapic || !m || !cpuid)
		goto out;
	cpuid->h.nent = MAX_CPUID;
#define GET(req, arg, name)                          \
	if (ioctl(fd, req, arg) < 0) {               \
		ret = -errno;                        \
		what = name;                         \
		goto out;                            \
	}
	GET(KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
	GET(KVM_GET_REGS, &regs, "KVM_GET_REGS");
	GET(KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	GET(KVM_GET_XSAVE, xsave, "KVM_GET_XSAVE");
	GET(KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
	GET(KVM_GET_DEBUGREGS, &dregs, "KVM_GET_DEBUGREGS");
	GET(KVM_GET_LAPIC, lapic, "KVM_GET_LAPIC");
	get_msrs(fd, l, m);
	GET(KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS");
	GET(KVM_GET_CPUID2, &cpuid->h, "KVM_GET_CPUID2");
#undef GET
	r = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	khz = r > 0 ? (uint64_t)r : 0;
	what = "writing";
	if ((ret = vmm_state_put(w, VMM_ST_MPSTATE, c, &mp, sizeof(mp))) ||
	    (ret = vmm_state_put(w, VMM_ST_REGS, c, &regs, sizeof(regs))) ||
	    (ret = vmm_state_put(w, VMM_ST_SREGS, c, &sregs, sizeof(sregs))) ||
	    (ret = vmm_state_put(w, VMM_ST_XSAVE, c, xsave, sizeof(*xsave))) ||
	    (ret = vmm_state_put(w, VMM_ST_XCRS, c, &xcrs, sizeof(xcrs))) ||
	    (ret = vmm_state_put(w, VMM_ST_DEBUGREGS, c, &dregs, sizeof(dregs))) ||
	    (ret = vmm_state_put(w, VMM_ST_LAPIC, c, lapic, sizeof(*lapic))) ||
	    (ret = vmm_state_put(w, VMM_ST_MSRS, c, m->e, m->h.nmsrs * sizeof(m->e[0]))) ||
	    (ret = vmm_state_put(w, VMM_ST_EVENTS, c, &ev, sizeof(ev))) ||
	    (ret = vmm_state_put(w, VMM_ST_CPUID, c, cpuid->e, cpuid->h.nent * sizeof(cpuid->e[0]))) ||
	    (ret = vmm_state_put(w, VMM_ST_TSC_KHZ, c, &khz, sizeof(khz))))
		goto out;
	ret = 0;
out:
	if (ret)
		snprintf(err, errlen, "vCPU %u: %s: %s", c, what, strerror(-ret));
	free(xsave);
	free(lapic);
	free(m);
	free(cpuid);
	return ret;
}

int vmm_x86_save_state(struct vmm_vm *vm, struct vmm_state_writer *w, char *err, size_t errlen)
{
	struct kvm_msr_list *l = NULL;
	struct kvm_clock_data clock;
	struct kvm_pit_state2 pit;
	int ret;

	ret = msr_list(vm, &l);
	if (ret) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
		return ret;
	}
	for (unsigned c = 0; c < vm->ncpus && !ret; c++)
		ret = save_cpu(vm, c, l, w, err, errlen);
	free(l);
	if (ret)
		return ret;
	for (unsigned i = 0; i < 3; i++) {
		struct kvm_irqchip chip = { .chip_id = i };

		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			ret = -errno;
			snprintf(err, errlen, "KVM_GET_IRQCHIP %u: %s", i, strerror(errno));
			return ret;
		}
		if ((ret = vmm_state_put(w, VMM_ST_IRQCHIP, i, &chip, sizeof(chip))))
			goto write_failed;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
		ret = -errno;
		snprintf(err, errlen, "the PIT or the clock: %s", strerror(errno));
		return ret;
	}
	if ((ret = vmm_state_put(w, VMM_ST_PIT, 0, &pit, sizeof(pit))) ||
	    (ret = vmm_state_put(w, VMM_ST_CLOCK, 0, &clock, sizeof(clock))))
		goto write_failed;
	return 0;
write_failed:
	snprintf(err, errlen, "writing: %s", strerror(-ret));
	return ret;
}

/*
 * The guest saw the CPUID it was started with: this host's KVM must offer
 * every feature bit of it in the leaves that name instructions (1, 7,
 * 0xD's subleaf 1, 0x80000001), or the guest could meet an instruction
 * this CPU lacks. The rest (cache and topology leaves) is taken as saved.
 */
static int check_cpuid(struct vmm_vm *vm, const struct kvm_cpuid_entry2 *e, unsigned n, char *err, size_t errlen)
{
	struct cpuid *host = calloc(1, sizeof(*host));
	int ret = 0;

	if (!host)
		return -ENOMEM;
	host->h.nent = MAX_CPUID;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, &host->h) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	for (unsigned i = 0; i < n && !ret; i++) {
		uint32_t f = e[i].function;
		bool feat = f == 1 || f == 7 || f == 0x80000001 || (f == 0xd && e[i].index == 1);

		if (!feat)
			continue;
		for (unsigned k = 0; k < host->h.nent; k++) {
			const struct kvm_cpuid_entry2 *h = &host->e[k];
			uint32_t miss_c, miss_d, miss_b;

			if (h->function != f || h->index != e[i].index)
				continue;
			/*
			 * Not features: leaf 1's EBX (APIC ID) and ECX bit 31
			 * (hypervisor) are vmm's own; KVM keeps the bits that
			 * mirror the guest's control registers (leaf 1 ECX 27
			 * OSXSAVE, EDX 9 APIC enabled, leaf 7 ECX 4 OSPKE).
			 */
			miss_b = f == 1 ? 0 : e[i].ebx & ~h->ebx;
			miss_c = e[i].ecx & ~h->ecx & (f == 1 ? ~(1u << 31 | 1u << 27) : f == 7 ? ~(1u << 4) : ~0u);
			miss_d = e[i].edx & ~h->edx & (f == 1 ? ~(1u << 9) : ~0u);
			if (miss_b | miss_c | miss_d) {
				ret = -ENOTSUP;
				snprintf(err, errlen, "this host's CPU lacks features the guest was started with (CPUID "
					 "0x%x: ebx %08x ecx %08x edx %08x)", f, miss_b, miss_c, miss_d);
			}
			break;
		}
	}
out:
	free(host);
	return ret;
}

static int load_cpu(struct vmm_vm *vm, unsigned c, const struct vmm_state *st, char *err, size_t errlen)
{
	const struct kvm_cpuid_entry2 *ce;
	const struct kvm_msr_entry *me;
	struct kvm_vcpu_events ev;
	struct cpuid *cpuid = NULL;
	struct msrs *m = NULL;
	const uint64_t *khz;
	size_t len, clen, mlen;
	int fd = vm->cpu_fd[c], ret, r;
	const char *what = "memory";

	ce = vmm_state_find(st, VMM_ST_CPUID, c, &clen);
	me = vmm_state_find(st, VMM_ST_MSRS, c, &mlen);
	ret = check_cpuid(vm, ce, (unsigned)(clen / sizeof(*ce)), err, errlen);
	if (ret)
		return ret;
	cpuid = calloc(1, sizeof(*cpuid));
	m = calloc(1, sizeof(*m));
	ret = -ENOMEM;
	if (!cpuid || !m)
		goto out;
	cpuid->h.nent = (uint32_t)(clen / sizeof(*ce));
	memcpy(cpuid->e, ce, clen);
	m->h.nmsrs = (uint32_t)(mlen / sizeof(*me));
	memcpy(m->e, me, mlen);
	memcpy(&ev, vmm_state_find(st, VMM_ST_EVENTS, c, &len), sizeof(ev));
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | KVM_VCPUEVENT_VALID_SHADOW;
	/* The TSC's rate: the guest's, where this host's KVM can scale to it. */
	khz = vmm_state_find(st, VMM_ST_TSC_KHZ, c, &len);
	r = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	if (*khz && r > 0 && (uint64_t)r != *khz && ioctl(fd, KVM_SET_TSC_KHZ, (unsigned long)*khz) < 0 && c == 0)
		fprintf(stderr, "vmm: the guest's TSC ran at %llu kHz, this host's at %d kHz and KVM cannot scale it: "
			"its clock may drift\n", (unsigned long long)*khz, r);
#define SET(req, arg, name)                          \
	if (ioctl(fd, req, arg) < 0) {               \
		ret = -errno;                        \
		what = name;                         \
		goto out;                            \
	}
	SET(KVM_SET_CPUID2, &cpuid->h, "KVM_SET_CPUID2");
	SET(KVM_SET_MP_STATE, vmm_state_find(st, VMM_ST_MPSTATE, c, &len), "KVM_SET_MP_STATE");
	SET(KVM_SET_REGS, vmm_state_find(st, VMM_ST_REGS, c, &len), "KVM_SET_REGS");
	SET(KVM_SET_SREGS, vmm_state_find(st, VMM_ST_SREGS, c, &len), "KVM_SET_SREGS");
	SET(KVM_SET_XSAVE, vmm_state_find(st, VMM_ST_XSAVE, c, &len), "KVM_SET_XSAVE");
	SET(KVM_SET_XCRS, vmm_state_find(st, VMM_ST_XCRS, c, &len), "KVM_SET_XCRS");
	SET(KVM_SET_DEBUGREGS, vmm_state_find(st, VMM_ST_DEBUGREGS, c, &len), "KVM_SET_DEBUGREGS");
	SET(KVM_SET_LAPIC, vmm_state_find(st, VMM_ST_LAPIC, c, &len), "KVM_SET_LAPIC");
#undef SET
	r = ioctl(fd, KVM_SET_MSRS, &m->h);
	if (r < 0 || (uint32_t)r != m->h.nmsrs) {
		ret = r < 0 ? -errno : -ENOTSUP;
		snprintf(err, errlen, "vCPU %u: this host's KVM refuses MSR 0x%x of the guest's", c,
			 r < 0 ? 0 : m->e[r].index);
		goto out_said;
	}
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
		ret = -errno;
		what = "KVM_SET_VCPU_EVENTS";
		goto out;
	}
	ret = 0;
out:
	if (ret)
		snprintf(err, errlen, "vCPU %u: %s: %s", c, what, strerror(-ret));
out_said:
	free(cpuid);
	free(m);
	return ret;
}

int vmm_x86_load_state(struct vmm_vm *vm, const struct vmm_state *st, char *err, size_t errlen)
{
	struct kvm_clock_data clock;
	size_t len;
	int ret = 0;

	for (unsigned i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, vmm_state_find(st, VMM_ST_IRQCHIP, i, &len)) < 0) {
			ret = -errno;
			snprintf(err, errlen, "KVM_SET_IRQCHIP %u: %s", i, strerror(errno));
			return ret;
		}
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, vmm_state_find(st, VMM_ST_PIT, 0, &len)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_PIT2: %s", strerror(errno));
		return ret;
	}
	/* The guest's clock goes on from where it stopped (kvmclock); no flags: KVM takes none but REALTIME. */
	memcpy(&clock, vmm_state_find(st, VMM_ST_CLOCK, 0, &len), sizeof(clock));
	clock.flags = 0;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_CLOCK: %s", strerror(errno));
		return ret;
	}
	for (unsigned c = 0; c < vm->ncpus && !ret; c++)
		ret = load_cpu(vm, c, st, err, errlen);
	return ret;
}
