/*
 * vm.state's format (vmm/vmstate.h): the writer and the parser. The parser
 * trusts nothing it reads: the header's checksum before any field, each
 * section head's own checksum before its length is used, each payload's
 * before it is kept; lengths against what each tag must hold, indexes against
 * the VM's vCPUs and slots, RAM runs against its memory, in ascending order.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "vmm/devices/pci.h"
#include "vmm/vmstate.h"

#define MAGIC "VMMSTAT1"
#define PAGE 4096u
#define MAX_SECTIONS (1u << 20)
#define MAX_CPUID 256
#define MAX_MSRS 1024

struct header {
	char magic[8];
	uint32_t version, header_size;
	struct vmm_state_id id;
	int64_t created_ns;
	uint32_t nsec, pad;
	uint64_t file_size, ram_bytes;
	char host[64];
	uint8_t zero[VMM_STATE_HEADER - 8 - 8 - sizeof(struct vmm_state_id) - 8 - 8 - 16 - 64 - 4];
	uint32_t crc;             /* crc32c of everything before it */
};

struct sec_head {
	uint32_t tag, index;
	uint64_t len;
	uint32_t crc;             /* of the payload */
	uint32_t hcrc;            /* of the 20 bytes before it */
};

_Static_assert(sizeof(struct header) == VMM_STATE_HEADER, "vm.state header");
_Static_assert(sizeof(struct sec_head) == 24, "vm.state section head");

/* ---- writing ------------------------------------------------------------------- */

void vmm_state_write_begin(struct vmm_state_writer *w, const struct vmm_state_io *io)
{
	*w = (struct vmm_state_writer){ .io = io, .off = VMM_STATE_HEADER };
}

static int put_head(struct vmm_state_writer *w, uint32_t tag, uint32_t index, uint64_t len, uint32_t crc)
{
	struct sec_head h = { .tag = tag, .index = index, .len = len, .crc = crc };
	int ret;

	h.hcrc = base_crc32c(0, &h, offsetof(struct sec_head, hcrc));
	ret = w->io->write(w->io->ctx, &h, sizeof(h), w->off);
	if (ret)
		return ret;
	w->off += sizeof(h);
	w->nsec++;
	return 0;
}

int vmm_state_put(struct vmm_state_writer *w, uint32_t tag, uint32_t index, const void *data, size_t len)
{
	int ret = put_head(w, tag, index, len, base_crc32c(0, data, len));

	if (!ret && len)
		ret = w->io->write(w->io->ctx, data, len, w->off);
	if (!ret)
		w->off += len;
	return ret;
}

static bool page_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (unsigned i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

int vmm_state_put_ram(struct vmm_state_writer *w, const uint8_t *mem, uint64_t mem_size)
{
	uint64_t at = 0;
	int ret;

	while (at < mem_size) {
		uint64_t start, end, gpa;
		uint32_t crc;

		if (page_zero(mem + at)) {
			at += PAGE;
			continue;
		}
		start = at;
		for (end = at + PAGE; end < mem_size && end - start < VMM_STATE_RUN_MAX && !page_zero(mem + end);)
			end += PAGE;
		gpa = start;
		crc = base_crc32c(base_crc32c(0, &gpa, 8), mem + start, end - start);
		ret = put_head(w, VMM_ST_RAM, w->nram, 8 + end - start, crc);
		if (!ret)
			ret = w->io->write(w->io->ctx, &gpa, 8, w->off);
		if (!ret)
			ret = w->io->write(w->io->ctx, mem + start, end - start, w->off + 8);
		if (ret)
			return ret;
		w->off += 8 + end - start;
		w->nram++;
		w->ram_bytes += end - start;
		at = end;
		if (w->io->progress)
			w->io->progress(w->io->ctx, at, mem_size);
	}
	return 0;
}

int vmm_state_write_end(struct vmm_state_writer *w, const struct vmm_state_id *id, int64_t created_ns,
			const char *host)
{
	struct header h;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, 8);
	h.version = VMM_STATE_VERSION;
	h.header_size = VMM_STATE_HEADER;
	h.id = *id;
	h.created_ns = created_ns;
	h.nsec = w->nsec;
	h.file_size = w->off;
	h.ram_bytes = w->ram_bytes;
	snprintf(h.host, sizeof(h.host), "%s", host ? host : "");
	h.crc = base_crc32c(0, &h, offsetof(struct header, crc));
	return w->io->write(w->io->ctx, &h, sizeof(h), 0);
}

/* ---- reading ------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static int read_at(const struct vmm_state_io *io, void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	int ret;

	if (off > io->size || len > io->size - off)
		return fail(err, errlen, -EINVAL, "truncated: %llu bytes, wanted %llu at %llu",
			    (unsigned long long)io->size, (unsigned long long)len, (unsigned long long)off);
	ret = io->read(io->ctx, buf, len, off);
	if (ret == -ENODATA)
		return fail(err, errlen, -EINVAL, "truncated at %llu", (unsigned long long)off);
	if (ret)
		return fail(err, errlen, ret, "reading at %llu: %s", (unsigned long long)off, strerror(-ret));
	return 0;
}

static int read_header(const struct vmm_state_io *io, struct header *h, char *err, size_t errlen)
{
	int ret;

	if (io->size < VMM_STATE_HEADER)
		return fail(err, errlen, -EINVAL, "truncated: %llu bytes, not even a header",
			    (unsigned long long)io->size);
	ret = read_at(io, h, sizeof(*h), 0, err, errlen);
	if (ret)
		return ret;
	if (memcmp(h->magic, MAGIC, 8))
		return fail(err, errlen, -EINVAL, "not a suspended VM's state (no VMMSTAT1 magic)");
	if (h->crc != base_crc32c(0, h, offsetof(struct header, crc)))
		return fail(err, errlen, -EINVAL, "its header is damaged (checksum)");
	if (h->version != VMM_STATE_VERSION || h->header_size != VMM_STATE_HEADER)
		return fail(err, errlen, -EINVAL, "version %u, this vmm reads version %u", h->version,
			    VMM_STATE_VERSION);
	if (h->file_size != io->size)
		return fail(err, errlen, -EINVAL, "%s: %llu bytes, its header says %llu",
			    h->file_size > io->size ? "truncated" : "has bytes past its end",
			    (unsigned long long)io->size, (unsigned long long)h->file_size);
	if (h->nsec > MAX_SECTIONS)
		return fail(err, errlen, -EINVAL, "its header is damaged (%u sections)", h->nsec);
	h->host[sizeof(h->host) - 1] = 0;
	return 0;
}

static void fill_out(struct vmm_state *out, const struct header *h)
{
	memset(out, 0, sizeof(*out));
	out->id = h->id;
	out->created_ns = h->created_ns;
	out->ram_bytes = h->ram_bytes;
	memcpy(out->host, h->host, sizeof(out->host));
}

int vmm_state_peek(const struct vmm_state_io *io, struct vmm_state *out, char *err, size_t errlen)
{
	struct header h;
	int ret = read_header(io, &h, err, errlen);

	if (!ret)
		fill_out(out, &h);
	return ret;
}

/* Each difference from the VM as it is now, said the way an operator would look for it. */
static int check_id(const struct vmm_state_id *f, const struct vmm_state_id *e, char *err, size_t errlen)
{
	unsigned i;

	if (memcmp(f->uuid, e->uuid, sizeof(f->uuid)))
		return fail(err, errlen, -ESTALE, "written on another datastore");
	if (f->dir_ino != e->dir_ino || f->dir_gen != e->dir_gen)
		return fail(err, errlen, -ESTALE, "it belongs to another VM's folder (copied here?)");
	if (f->mem_size != e->mem_size)
		return fail(err, errlen, -ESTALE, "suspended with %llu MiB of memory, vm.conf now says %llu",
			    (unsigned long long)(f->mem_size >> 20), (unsigned long long)(e->mem_size >> 20));
	if (f->ncpus != e->ncpus)
		return fail(err, errlen, -ESTALE, "suspended with %u vCPUs, vm.conf now says %u", f->ncpus, e->ncpus);
	if (f->ndisks != e->ndisks)
		return fail(err, errlen, -ESTALE, "suspended with %u disks, vm.conf now says %u", f->ndisks, e->ndisks);
	if (f->devices != e->devices)
		return fail(err, errlen, -ESTALE, "vm.conf's devices= changed since the suspend");
	for (i = 0; i < f->ndisks && i < VMM_MAX_DISKS; i++) {
		if (f->disk_ino[i] != e->disk_ino[i] || f->disk_gen[i] != e->disk_gen[i])
			return fail(err, errlen, -ESTALE, "disk %u is not the file it was at the suspend", i);
		if (f->disk_size[i] != e->disk_size[i])
			return fail(err, errlen, -ESTALE, "disk %u was resized since the suspend (%llu bytes then, %llu now)",
				    i, (unsigned long long)f->disk_size[i], (unsigned long long)e->disk_size[i]);
	}
	return 0;
}

/* The length a tag's payload must have (fixed), or 0 with *min, *max, *unit for the variable ones. */
static size_t fixed_len(uint32_t tag, size_t *unit, size_t *max)
{
	*unit = 0;
	*max = 0;
	switch (tag) {
	case VMM_ST_REGS: return sizeof(struct kvm_regs);
	case VMM_ST_SREGS: return sizeof(struct kvm_sregs);
	case VMM_ST_XSAVE: return sizeof(struct kvm_xsave);
	case VMM_ST_XCRS: return sizeof(struct kvm_xcrs);
	case VMM_ST_LAPIC: return sizeof(struct kvm_lapic_state);
	case VMM_ST_EVENTS: return sizeof(struct kvm_vcpu_events);
	case VMM_ST_MPSTATE: return sizeof(struct kvm_mp_state);
	case VMM_ST_DEBUGREGS: return sizeof(struct kvm_debugregs);
	case VMM_ST_TSC_KHZ: return 8;
	case VMM_ST_IRQCHIP: return sizeof(struct kvm_irqchip);
	case VMM_ST_PIT: return sizeof(struct kvm_pit_state2);
	case VMM_ST_CLOCK: return sizeof(struct kvm_clock_data);
	case VMM_ST_CPUID: *unit = sizeof(struct kvm_cpuid_entry2); *max = MAX_CPUID * *unit; return 0;
	case VMM_ST_MSRS: *unit = sizeof(struct kvm_msr_entry); *max = MAX_MSRS * *unit; return 0;
	default: *unit = 1; *max = VMM_STATE_DEV_MAX; return 0;	/* devices: each checks its own */
	}
}

/* True when (tag, index) names a section this VM can have. */
static bool known(uint32_t tag, uint32_t index, const struct vmm_state_id *id)
{
	if (tag >= VMM_ST_CPUID && tag <= VMM_ST_CPU_LAST)
		return index < id->ncpus;
	switch (tag) {
	case VMM_ST_IRQCHIP: return index < 3;
	case VMM_ST_PIT: case VMM_ST_CLOCK: case VMM_ST_SERIAL: case VMM_ST_RTC: case VMM_ST_PM: return index == 0;
	case VMM_ST_PCI: return index <= VMM_PCI_MAX_DEV;
	case VMM_ST_VIRTIO: case VMM_ST_BALLOON: return index >= 1 && index <= VMM_PCI_MAX_DEV;
	default: return false;
	}
}

const void *vmm_state_find(const struct vmm_state *st, uint32_t tag, uint32_t index, size_t *len)
{
	for (unsigned i = 0; i < st->nsec; i++)
		if (st->sec[i].tag == tag && st->sec[i].index == index) {
			*len = st->sec[i].len;
			return st->sec[i].data;
		}
	return NULL;
}

void vmm_state_free(struct vmm_state *st)
{
	if (!st)
		return;
	for (unsigned i = 0; i < st->nsec; i++)
		free(st->sec[i].data);
	free(st->sec);
	st->sec = NULL;
	st->nsec = 0;
}

/* A RAM run at off (its head h checked): into mem, or through buf (VMM_STATE_RUN_MAX bytes) to check it. */
static int read_run(const struct vmm_state_io *io, const struct sec_head *h, uint64_t off, const struct vmm_state_id *id,
		    uint8_t *mem, uint8_t *buf, uint64_t *next_gpa, char *err, size_t errlen)
{
	uint64_t gpa, n = h->len - 8;
	uint8_t *to;
	int ret;

	if (h->len < 8 + PAGE || n % PAGE || n > VMM_STATE_RUN_MAX)
		return fail(err, errlen, -EINVAL, "RAM run %u: %llu bytes", h->index, (unsigned long long)h->len);
	ret = read_at(io, &gpa, 8, off, err, errlen);
	if (ret)
		return ret;
	if (gpa % PAGE || gpa < *next_gpa || gpa > id->mem_size || n > id->mem_size - gpa)
		return fail(err, errlen, -EINVAL, "RAM run %u at 0x%llx: outside the VM's memory or out of order",
			    h->index, (unsigned long long)gpa);
	to = mem ? mem + gpa : buf;
	ret = read_at(io, to, n, off + 8, err, errlen);
	if (ret)
		return ret;
	if (base_crc32c(base_crc32c(0, &gpa, 8), to, n) != h->crc)
		return fail(err, errlen, -EINVAL, "RAM run %u at 0x%llx is damaged (checksum)", h->index,
			    (unsigned long long)gpa);
	*next_gpa = gpa + n;
	return 0;
}

/* Every part a resume needs, there once (duplicates were refused as they came). */
static int check_complete(const struct vmm_state *st, const struct vmm_state_id *id, char *err, size_t errlen)
{
	static const uint32_t vm_tags[] = { VMM_ST_PIT, VMM_ST_CLOCK, VMM_ST_SERIAL, VMM_ST_RTC, VMM_ST_PM, VMM_ST_PCI };
	size_t len;

	for (uint32_t c = 0; c < id->ncpus; c++)
		for (uint32_t t = VMM_ST_CPUID; t <= VMM_ST_CPU_LAST; t++)
			if (!vmm_state_find(st, t, c, &len))
				return fail(err, errlen, -EINVAL, "vCPU %u: section %u missing", c, t);
	for (uint32_t i = 0; i < 3; i++)
		if (!vmm_state_find(st, VMM_ST_IRQCHIP, i, &len))
			return fail(err, errlen, -EINVAL, "interrupt controller %u missing", i);
	for (size_t i = 0; i < base_array_size(vm_tags); i++)
		if (!vmm_state_find(st, vm_tags[i], 0, &len))
			return fail(err, errlen, -EINVAL, "section %u missing", vm_tags[i]);
	return 0;
}

int vmm_state_parse(const struct vmm_state_io *io, const struct vmm_state_id *expect, uint8_t *mem,
		    struct vmm_state *out, char *err, size_t errlen)
{
	struct vmm_state st;
	struct header h;
	uint64_t off = VMM_STATE_HEADER, next_gpa = 0, ram = 0, ram_bytes = 0;
	uint8_t *buf = NULL;
	int ret;

	ret = read_header(io, &h, err, errlen);
	if (ret)
		return ret;
	if (expect && (ret = check_id(&h.id, expect, err, errlen)))
		return ret;
	if (!expect && (h.id.ncpus > VMM_MAX_CPUS || h.id.ndisks > VMM_MAX_DISKS || h.id.mem_size % PAGE))
		return fail(err, errlen, -EINVAL, "its header is damaged (the VM's size)");
	if (mem && !expect)
		return fail(err, errlen, -EINVAL, "no VM to load into");
	fill_out(&st, &h);
	if (!mem) {
		/* a run is never longer than the file */
		buf = malloc(io->size < VMM_STATE_RUN_MAX ? io->size : VMM_STATE_RUN_MAX);
		if (!buf)
			return fail(err, errlen, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < h.nsec; i++) {
		struct sec_head s;
		size_t unit, max, fixed;
		uint8_t *data;

		ret = read_at(io, &s, sizeof(s), off, err, errlen);
		if (ret)
			goto out;
		if (s.hcrc != base_crc32c(0, &s, offsetof(struct sec_head, hcrc))) {
			ret = fail(err, errlen, -EINVAL, "section %u at %llu is damaged (its head's checksum)", i,
				   (unsigned long long)off);
			goto out;
		}
		off += sizeof(s);
		if (s.len > io->size - off) {
			ret = fail(err, errlen, -EINVAL, "truncated in section %u (tag %u)", i, s.tag);
			goto out;
		}
		if (s.tag == VMM_ST_RAM) {
			if (s.index != ram) {
				ret = fail(err, errlen, -EINVAL, "RAM run %u where %llu was due", s.index,
					   (unsigned long long)ram);
				goto out;
			}
			ret = read_run(io, &s, off, &h.id, mem, buf, &next_gpa, err, errlen);
			if (ret)
				goto out;
			ram++;
			ram_bytes += s.len - 8;
			off += s.len;
			if (io->progress)
				io->progress(io->ctx, off, io->size);
			continue;
		}
		if (!known(s.tag, s.index, &h.id)) {
			ret = fail(err, errlen, -EINVAL, "section %u: unknown tag %u index %u", i, s.tag, s.index);
			goto out;
		}
		fixed = fixed_len(s.tag, &unit, &max);
		if (fixed ? s.len != fixed : (s.len == 0 || s.len > max || s.len % unit)) {
			ret = fail(err, errlen, -EINVAL, "section %u (tag %u): %llu bytes", i, s.tag,
				   (unsigned long long)s.len);
			goto out;
		}
		if (vmm_state_find(&st, s.tag, s.index, &unit)) {
			ret = fail(err, errlen, -EINVAL, "section %u: tag %u index %u twice", i, s.tag, s.index);
			goto out;
		}
		data = malloc(s.len);
		if (!data) {
			ret = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		ret = read_at(io, data, s.len, off, err, errlen);
		if (!ret && base_crc32c(0, data, s.len) != s.crc)
			ret = fail(err, errlen, -EINVAL, "section %u (tag %u index %u) is damaged (checksum)", i, s.tag,
				   s.index);
		if (!ret && !(st.nsec % 64)) {
			struct vmm_state_sec *more = realloc(st.sec, (st.nsec + 64) * sizeof(*more));

			if (more)
				st.sec = more;
			else
				ret = fail(err, errlen, -ENOMEM, "out of memory");
		}
		if (ret) {
			free(data);
			goto out;
		}
		st.sec[st.nsec++] = (struct vmm_state_sec){ .tag = s.tag, .index = s.index, .len = s.len, .data = data };
		off += s.len;
	}
	if (off != io->size) {
		ret = fail(err, errlen, -EINVAL, "%llu bytes past its last section",
			   (unsigned long long)(io->size - off));
		goto out;
	}
	if (ram_bytes != h.ram_bytes) {
		ret = fail(err, errlen, -EINVAL, "its header is damaged (RAM bytes)");
		goto out;
	}
	ret = check_complete(&st, &h.id, err, errlen);
out:
	free(buf);
	if (ret || !out)
		vmm_state_free(&st);
	else
		*out = st;
	return ret;
}
