/*
 * Suspend and resume through the datastore (vmm/suspend.h): what goes into
 * vm.state and in which order, and the file's life in the VM's folder. The
 * format is vmm/vmstate.c's; the CPU state vmm/x86/state.c's; each device's
 * registers its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"
#include "vmm/devices/devices.h"
#include "vmm/devices/pci.h"
#include "vmm/devices/virtio.h"
#include "vmm/kvm.h"
#include "vmm/store.h"
#include "vmm/suspend.h"
#include "vmm/vmstate.h"
#include "vmm/x86/x86.h"

int vmm_state_id_of(struct vmfs *fs, uint64_t dir, const struct vmm_conf *c, const uint64_t *disk_ino,
		    struct vmm_state_id *id)
{
	struct vmfs_info info;
	struct vmfs_stat st;
	int ret;

	memset(id, 0, sizeof(*id));
	ret = vmfs_get_info(fs, &info);
	if (ret)
		return ret;
	memcpy(id->uuid, info.uuid, sizeof(id->uuid));
	ret = vmfs_getattr(fs, dir, &st);
	if (ret)
		return ret;
	id->dir_ino = st.ino;
	id->dir_gen = st.gen;
	id->mem_size = c->mem_mib << 20;
	id->ncpus = c->cpus;
	id->ndisks = c->ndisks;
	id->devices = (c->rng ? VMM_STATE_DEV_RNG : 0) | (c->balloon ? VMM_STATE_DEV_BALLOON : 0);
	for (unsigned i = 0; i < c->ndisks; i++) {
		ret = vmfs_getattr(fs, disk_ino[i], &st);
		if (ret)
			return ret;
		id->disk_ino[i] = st.ino;
		id->disk_gen[i] = st.gen;
		id->disk_size[i] = st.size & ~511ull;
	}
	return 0;
}

/* ---- a file of the datastore as vm.state's I/O ---------------------------------- */

struct file_io {
	struct vmfs *fs;
	uint64_t ino;
	struct tool_progress bar;
};

static int file_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct file_io *f = ctx;
	ssize_t n = vmfs_pread(f->fs, f->ino, buf, len, off);

	return n < 0 ? (int)n : (size_t)n == len ? 0 : -ENODATA;
}

static int file_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct file_io *f = ctx;
	ssize_t n = vmfs_pwrite(f->fs, f->ino, buf, len, off);

	return n < 0 ? (int)n : (size_t)n == len ? 0 : -EIO;
}

static void file_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct file_io *f = ctx;

	(void)total;
	tool_progress_update(&f->bar, done);
}

/* ---- suspend ------------------------------------------------------------------- */

/* Every device's section, by PCI slot: each is a virtio device (vmm run adds no other). */
static int save_devices(struct vmm_suspend *s, struct vmm_state_writer *w)
{
	struct vmm_vm *vm = s->vm;
	uint8_t *buf = malloc(VMM_STATE_DEV_MAX);
	size_t n;
	int ret;

	if (!buf)
		return -ENOMEM;
	n = vmm_serial_save(vm->serial, buf);
	if ((ret = vmm_state_put(w, VMM_ST_SERIAL, 0, buf, n)))
		goto out;
	n = vmm_rtc_save(vm->rtc, buf);
	if ((ret = vmm_state_put(w, VMM_ST_RTC, 0, buf, n)))
		goto out;
	n = vmm_pm_save(&vm->pm, buf);
	if ((ret = vmm_state_put(w, VMM_ST_PM, 0, buf, n)))
		goto out;
	for (unsigned slot = 0; slot <= vm->pci.ndev; slot++) {
		n = vmm_pci_save(&vm->pci, slot, buf);
		if ((ret = vmm_state_put(w, VMM_ST_PCI, slot, buf, n)))
			goto out;
		if (!slot)
			continue;
		n = vmm_virtio_save(vm->pci.dev[slot - 1]->priv, buf);
		if ((ret = vmm_state_put(w, VMM_ST_VIRTIO, slot, buf, n)))
			goto out;
	}
	if (s->balloon) {
		n = vmm_balloon_save(s->balloon, buf);
		ret = vmm_state_put(w, VMM_ST_BALLOON, s->balloon->pci.slot, buf, n);
	}
out:
	free(buf);
	return ret;
}

/* Writes vm.state.new whole and synced; the caller renames it. */
static int write_state(struct vmm_suspend *s, struct vmfs *fs, uint64_t dir, uint64_t ino, uint64_t *bytes,
		       uint64_t *ram, char *err, size_t errlen)
{
	struct file_io f = { .fs = fs, .ino = ino };
	struct vmm_state_io io = { .ctx = &f, .write = file_write, .progress = file_progress };
	struct vmm_state_writer w;
	struct vmm_state_id id;
	char host[64];
	int ret;

	ret = vmm_state_id_of(fs, dir, s->conf, s->disk_ino, &id);
	if (ret) {
		snprintf(err, errlen, "reading the VM's identity: %s", strerror(-ret));
		return ret;
	}
	vmm_state_write_begin(&w, &io);
	ret = vmm_x86_save_state(s->vm, &w, err, errlen);
	if (ret)
		return ret;
	ret = save_devices(s, &w);
	if (!ret) {
		tool_progress_init(&f.bar, "suspend: writing RAM", s->vm->mem_size);
		ret = vmm_state_put_ram(&w, s->vm->mem, s->vm->mem_size);
		tool_progress_done(&f.bar);
	}
	vmfs_host_name(host, sizeof(host), NULL);
	if (!ret)
		ret = vmm_state_write_end(&w, &id, base_real_ns(), host);
	if (!ret)
		ret = vmfs_fsync(fs, ino, false);
	if (ret) {
		snprintf(err, errlen, "writing %s: %s", VMM_STATE_TMP, strerror(-ret));
		return ret;
	}
	*bytes = w.off;
	*ram = w.ram_bytes;
	return 0;
}

int vmm_suspend(struct vmm_suspend *s, struct vmfs *fs, struct vmm_suspend_result *res, char *err, size_t errlen)
{
	uint64_t t0 = base_mono_ns(), dir, ino = 0;
	bool was_paused = vmm_vm_paused(s->vm);
	unsigned i;
	int ret;

	ret = vmfs_resolve(fs, s->path, &dir);
	if (ret) {
		snprintf(err, errlen, "%s: %s", s->path, strerror(-ret));
		return ret;
	}
	vmm_vm_pause(s->vm);
	if (s->vm->done) {
		snprintf(err, errlen, "the VM has ended");
		return -ESRCH;
	}
	for (i = 0; i < s->nblk; i++)
		vmm_blk_quiesce(s->blk[i]);
	/* A file left by a suspend that died halfway is not anybody's. */
	ret = vmfs_unlink(fs, dir, VMM_STATE_TMP);
	if (ret && ret != -ENOENT)
		snprintf(err, errlen, "%s/%s: %s", s->path, VMM_STATE_TMP, strerror(-ret));
	else if ((ret = vmm_store_new_file(fs, dir, VMM_STATE_TMP, &ino)))
		snprintf(err, errlen, "%s/%s: %s", s->path, VMM_STATE_TMP, strerror(-ret));
	else
		ret = write_state(s, fs, dir, ino, &res->bytes, &res->ram_bytes, err, errlen);
	if (!ret && (ret = vmfs_rename(fs, dir, VMM_STATE_TMP, dir, VMM_STATE_FILE, 0)))
		snprintf(err, errlen, "renaming %s to %s: %s", VMM_STATE_TMP, VMM_STATE_FILE, strerror(-ret));
	if (!ret && (ret = vmfs_sync(fs)))
		snprintf(err, errlen, "syncing the datastore: %s", strerror(-ret));
	if (ret) {
		/* The folder as it was, the VM as it was. */
		if (ino)
			vmfs_unlink(fs, dir, VMM_STATE_TMP);
		for (i = 0; i < s->nblk; i++)
			vmm_blk_unquiesce(s->blk[i]);
		if (!was_paused)
			vmm_vm_resume(s->vm);
		return ret;
	}
	s->suspended = true;
	res->us = (base_mono_ns() - t0) / 1000;
	return 0;
}

/* ---- resume -------------------------------------------------------------------- */

int vmm_resume_check(struct vmfs *ro, uint64_t dir, const struct vmm_state_id *id, uint64_t *ino, uint64_t *gen,
		     char *err, size_t errlen)
{
	struct vmfs_stat st;
	struct file_io f = { .fs = ro };
	struct vmm_state_io io = { .ctx = &f, .read = file_read };
	int ret = vmm_store_lookup(ro, dir, VMM_STATE_FILE, &st);

	if (ret == -ENOENT)
		return 0;
	if (!ret && !S_ISREG(st.mode))
		ret = -EISDIR;
	if (ret) {
		snprintf(err, errlen, "%s", strerror(-ret));
		return ret;
	}
	f.ino = st.ino;
	io.size = st.size;
	ret = vmm_state_parse(&io, id, NULL, NULL, err, errlen);
	if (ret)
		return ret;
	*ino = st.ino;
	*gen = st.gen;
	return 1;
}

static int load_devices(struct vmm_suspend *s, const struct vmm_state *st, char *err, size_t errlen)
{
	struct vmm_vm *vm = s->vm;
	const void *p;
	size_t len;

#define LOAD(call, what)                                                         \
	if (call) {                                                              \
		snprintf(err, errlen, "%s: its saved state does not fit this VM", what); \
		return -EINVAL;                                                  \
	}
	p = vmm_state_find(st, VMM_ST_SERIAL, 0, &len);
	LOAD(vmm_serial_load(vm->serial, p, len), "the serial port");
	p = vmm_state_find(st, VMM_ST_RTC, 0, &len);
	LOAD(vmm_rtc_load(vm->rtc, p, len), "the CMOS clock");
	p = vmm_state_find(st, VMM_ST_PM, 0, &len);
	LOAD(vmm_pm_load(&vm->pm, p, len), "the ACPI PM registers");
	for (unsigned slot = 0; slot <= vm->pci.ndev; slot++) {
		char what[64];

		snprintf(what, sizeof(what), "PCI slot %u", slot);
		p = vmm_state_find(st, VMM_ST_PCI, slot, &len);
		LOAD(!p || vmm_pci_load(&vm->pci, slot, p, len), what);
		if (!slot)
			continue;
		p = vmm_state_find(st, VMM_ST_VIRTIO, slot, &len);
		LOAD(!p || vmm_virtio_load(vm->pci.dev[slot - 1]->priv, p, len), what);
	}
	if (s->balloon) {
		p = vmm_state_find(st, VMM_ST_BALLOON, s->balloon->pci.slot, &len);
		LOAD(!p || vmm_balloon_load(s->balloon, p, len), "the balloon");
	}
#undef LOAD
	return 0;
}

int vmm_resume_load(struct vmm_suspend *s, struct vmfs *ro, uint64_t ino, const struct vmm_state_id *id, char *err,
		    size_t errlen)
{
	struct vmfs_stat vs;
	struct file_io f = { .fs = ro, .ino = ino };
	struct vmm_state_io io = { .ctx = &f, .read = file_read, .progress = file_progress };
	struct vmm_state st;
	int ret;

	ret = vmfs_getattr(ro, ino, &vs);
	if (ret) {
		snprintf(err, errlen, "%s", strerror(-ret));
		return ret;
	}
	io.size = vs.size;
	tool_progress_init(&f.bar, "resume: reading", vs.size);
	ret = vmm_state_parse(&io, id, s->vm->mem, &st, err, errlen);
	tool_progress_done(&f.bar);
	if (ret)
		return ret;
	/* The CPUs first: the interrupt controllers' state is there before a device raises a line again. */
	ret = vmm_x86_load_state(s->vm, &st, err, errlen);
	if (!ret)
		ret = load_devices(s, &st, err, errlen);
	vmm_state_free(&st);
	return ret;
}

int vmm_suspend_describe(struct vmfs *fs, uint64_t dir, char *buf, size_t len)
{
	struct vmfs_stat vs;
	struct file_io f = { .fs = fs };
	struct vmm_state_io io = { .ctx = &f, .read = file_read };
	struct vmm_state st;
	char err[200], when[32];
	time_t t;
	int ret = vmm_store_lookup(fs, dir, VMM_STATE_FILE, &vs);

	if (ret == -ENOENT)
		return 0;
	f.ino = vs.ino;
	io.size = vs.size;
	if (!ret && !(ret = vmm_state_peek(&io, &st, err, sizeof(err)))) {
		t = (time_t)(st.created_ns / 1000000000);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		snprintf(buf, len, "suspended %s on %s, %llu %s", when, st.host,
			 (unsigned long long)(vs.size >= (1u << 20) ? vs.size >> 20 : base_div_round_up(vs.size, 1024)),
			 vs.size >= (1u << 20) ? "MiB" : "KiB");
	} else {
		snprintf(buf, len, "vm.state unreadable: %s", ret == -EINVAL ? err : strerror(-ret));
	}
	return 1;
}

int vmm_resume_claim(struct vmfs *fs, uint64_t dir, uint64_t ino, uint64_t gen)
{
	struct vmfs_stat st;
	int ret = vmm_store_lookup(fs, dir, VMM_STATE_FILE, &st);

	if (ret == -ENOENT || (!ret && (st.ino != ino || st.gen != gen)))
		return -ESTALE;
	if (ret)
		return ret;
	ret = vmfs_unlink(fs, dir, VMM_STATE_FILE);
	if (!ret)
		ret = vmfs_sync(fs);
	return ret;
}
