/*
 * Unit tests for the parts of vmm that need no /dev/kvm: the token buckets
 * (vmm/ratelimit.h) on a fake clock (the first second's burst, waits computed
 * to the nanosecond, refill capped at one second's worth, a request larger
 * than the bucket going into debt, both buckets taken or neither, unlimited
 * buckets, slow rates that keep the time of partial tokens) and the control
 * socket's line parser (vmm/jsonline.h: what it takes, and the hostile lines
 * it refuses), vm.conf's ctl= line (vmm/config.c) and the ACPI PM ports
 * (vmm/devices/acpi_pm.c: S5 by any access width, what must not power off,
 * the reset register) and vm.state (vmm/vmstate.c: written and read back
 * byte for byte; damaged, cut, lengthened, foreign and ill-formed files
 * refused with their reason). Every expected value is written out.
 */
#include "vmm/config.h"
#include "vmm/ctl.h"
#include "encrypt/encrypt.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/ha.h"
#include "snapshot/snapshot.h"
#include "vmm/jsonline.h"
#include "vmm/ratelimit.h"
#include "vmm/devices/pci.h"
#include "vmm/vmstate.h"
#include "tests/fuzz/vmstate_seed.h"

#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS 1000000ull
#define S 1000000000ull

START_TEST(bytes_burst_then_wait)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1000, 0);	/* 1000 bytes/s */
	ck_assert_uint_eq(vmm_limiter_take(&l, 600, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 400, 0), 0);
	/* empty: one byte takes 1 ms */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 0), 1 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 0), 100 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 40 * MS), 60 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 100, 100 * MS), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 100 * MS), 1 * MS);
	/* a long idle time refills one second's worth, no more */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1000, 100 * S), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 100 * S), 1 * MS);
}
END_TEST

START_TEST(large_request_borrows)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1000, 0);
	/* 5000 bytes need a full bucket, then leave 4000 of debt */
	ck_assert_uint_eq(vmm_limiter_take(&l, 500, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 5000, 0), 500 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 5000, 500 * MS), 0);
	ck_assert_int_eq(l.bytes.tokens, -4000);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 500 * MS), 4001 * MS);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1, 4501 * MS), 0);
}
END_TEST

START_TEST(ops_and_bytes_together)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.bytes, 1 << 20, 0);
	vmm_bucket_set(&l.ops, 2, 0);	/* 2 operations/s */
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 0);
	/* out of operations: nothing is taken from the byte bucket */
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 0), 500 * MS);
	ck_assert_int_eq(l.bytes.tokens, (1 << 20) - 8192);
	ck_assert_uint_eq(vmm_limiter_take(&l, 4096, 500 * MS), 0);
	/* out of bytes (and operations): the longer wait wins */
	ck_assert_uint_eq(vmm_limiter_take(&l, 1 << 20, 500 * MS), 500 * MS);
}
END_TEST

START_TEST(unlimited)
{
	struct vmm_limiter l = { 0 };
	int i;

	for (i = 0; i < 1000; i++)
		ck_assert_uint_eq(vmm_limiter_take(&l, 1ull << 40, 0), 0);
	vmm_bucket_set(&l.ops, 1, 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 1ull << 40, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 1 * S);
	vmm_bucket_set(&l.ops, 0, 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
}
END_TEST

START_TEST(slow_rate_keeps_partial_time)
{
	struct vmm_limiter l = { 0 };

	vmm_bucket_set(&l.ops, 3, 0);	/* a token every 333.33 ms */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 0), 333333334);
	/* polling early adds nothing and does not lose the elapsed time */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 200 * MS), 133333334);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 333333334), 0);
	/* the next token came 333333333 ns after the first: none lost to rounding */
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 666666667), 0);
	ck_assert_uint_eq(vmm_limiter_take(&l, 0, 666666667), 333333333);
}
END_TEST

START_TEST(json_takes_flat_objects)
{
	struct vmm_json_kv kv[VMM_JSON_MAX_KEYS];
	unsigned n;

	ck_assert_int_eq(vmm_json_parse("{\"cmd\":\"rate\",\"disk\":0,\"bytes_per_s\":18446744073709551615}", kv, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(vmm_json_find(kv, n, "cmd")->str, "rate");
	ck_assert(!vmm_json_find(kv, n, "cmd")->is_num);
	ck_assert(vmm_json_find(kv, n, "disk")->is_num);
	ck_assert_uint_eq(vmm_json_find(kv, n, "disk")->num, 0);
	ck_assert_uint_eq(vmm_json_find(kv, n, "bytes_per_s")->num, UINT64_MAX);
	ck_assert_ptr_null(vmm_json_find(kv, n, "ops_per_s"));
	ck_assert_int_eq(vmm_json_parse("  { \"cmd\" : \"status\" }\r", kv, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(vmm_json_parse("{}", kv, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(json_refuses_the_rest)
{
	static const char *const bad[] = {
		"", "{", "}", "[]", "\"cmd\"", "{\"cmd\"}", "{\"cmd\":}", "{\"cmd\":\"a\",}", "{,}",
		"{\"cmd\":\"a\"} x", "{\"cmd\":\"a\"}{}", "{\"a\":-1}", "{\"a\":1.5}", "{\"a\":1e3}",
		"{\"a\":18446744073709551616}", "{\"a\":true}", "{\"a\":null}", "{\"a\":{\"b\":1}}",
		"{\"a\":[1]}", "{\"a\":\"x\\\"y\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"open}",
		"{\"0123456789012345678901234567890123\":1}",
		"{\"a\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
		"{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}",
	};
	struct vmm_json_kv kv[VMM_JSON_MAX_KEYS];
	unsigned i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(vmm_json_parse(bad[i], kv, &n) == -EINVAL, "took %s", bad[i]);
	/* exactly VMM_JSON_MAX_KEYS pairs still go */
	ck_assert_int_eq(vmm_json_parse("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}", kv, &n), 0);
	ck_assert_uint_eq(n, 8);
}
END_TEST

static int conf(const char *extra, struct vmm_conf *c, char *err, size_t errlen)
{
	char text[4096];

	snprintf(text, sizeof(text), "name=t\nmemory=64\ncpus=1\nkernel=kernel\n%s", extra);
	return vmm_conf_parse(c, text, strlen(text), err, errlen);
}

START_TEST(conf_ha)
{
	struct vmm_conf c;
	char err[200], text[4096];
	int len;

	ck_assert_int_eq(conf("", &c, err, sizeof(err)), 0);
	ck_assert(!c.ha_restart);
	ck_assert_int_eq(conf("ha=restart\n", &c, err, sizeof(err)), 0);
	ck_assert(c.ha_restart);
	len = vmm_conf_format(&c, text, sizeof(text));
	ck_assert_int_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(text, "\nha=restart\n"));
	ck_assert_int_eq(vmm_conf_parse(&c, text, (size_t)len, err, sizeof(err)), 0);
	ck_assert(c.ha_restart);
	ck_assert_int_eq(conf("ha=off\n", &c, err, sizeof(err)), 0);
	ck_assert(!c.ha_restart);
	len = vmm_conf_format(&c, text, sizeof(text));
	ck_assert_ptr_null(strstr(text, "ha="));
	ck_assert_int_eq(conf("ha=always\n", &c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "line 5: ha 'always' (want restart or off)");
	ck_assert_int_eq(conf("ha=\n", &c, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(conf_ctl)
{
	static const char *bad[] = {
		"ctl=relative.sock\n", "ctl=/run/../etc/x\n", "ctl=/run/./x\n", "ctl=/run//x\n", "ctl=/run/x/\n",
		"ctl=/\n", "ctl=/run/a b\n", "ctl=/run/x;rm\n", "ctl=/run/\x01\n",
		/* 108 bytes: one too many for sun_path with its NUL */
		"ctl=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	};
	struct vmm_conf c;
	char err[200], text[4096];
	int len;

	ck_assert_int_eq(conf("", &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.ctl, "");
	ck_assert_int_eq(conf("ctl=/run/vmm/t.sock\n", &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.ctl, "/run/vmm/t.sock");
	/* formatted back, and the same again */
	len = vmm_conf_format(&c, text, sizeof(text));
	ck_assert_int_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(text, "\nctl=/run/vmm/t.sock\n"));
	ck_assert_int_eq(vmm_conf_parse(&c, text, (size_t)len, err, sizeof(err)), 0);
	ck_assert_str_eq(c.ctl, "/run/vmm/t.sock");
	/* empty: none, and not written */
	ck_assert_int_eq(conf("ctl=\n", &c, err, sizeof(err)), 0);
	len = vmm_conf_format(&c, text, sizeof(text));
	ck_assert_ptr_null(strstr(text, "ctl="));
	/* 107 bytes is the longest that fits */
	ck_assert_int_eq(conf("ctl=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"
			      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(c.ctl), 107);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(conf(bad[i], &c, err, sizeof(err)) == -EINVAL, "took %s", bad[i]);
		ck_assert_msg(strstr(err, "line 5: ctl '") == err, "%s: %s", bad[i], err);
	}
}
END_TEST

/* One port access of size bytes of v (little-endian) at port; returns the event. */
static enum vmm_pm_event pm_out(struct vmm_pm *pm, uint16_t port, unsigned size, uint32_t v)
{
	uint8_t d[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	ck_assert(vmm_pm_port(port, size));
	return vmm_pm_io(pm, port, true, d, size);
}

static uint32_t pm_in(struct vmm_pm *pm, uint16_t port, unsigned size)
{
	uint8_t d[4] = { 0 };

	vmm_pm_io(pm, port, false, d, size);
	return d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

START_TEST(pm_ports)
{
	struct vmm_pm pm;

	vmm_pm_init(&pm);
	ck_assert(!vmm_pm_port(0x5fc, 4));
	ck_assert(vmm_pm_port(0x5fe, 4));		/* overlaps PM1a_EVT */
	ck_assert(!vmm_pm_port(0x606, 2));
	ck_assert(!vmm_pm_port(0xcf9, 2));		/* the reset register is one byte */
	/* SCI_EN reads set; SLP_EN reads 0 */
	ck_assert_uint_eq(pm_in(&pm, 0x604, 2), 0x0001);
	/* S1 (not offered), S5 without SLP_EN: nothing */
	ck_assert_int_eq(pm_out(&pm, 0x604, 2, 1u << 10 | 1u << 13), VMM_PM_NONE);
	ck_assert_uint_eq(pm_in(&pm, 0x604, 2), 0x0401);
	ck_assert_int_eq(pm_out(&pm, 0x604, 2, 5u << 10), VMM_PM_NONE);
	ck_assert_uint_eq(pm_in(&pm, 0x604, 2), 0x1401);
	/* a 4-byte write from 0x602: enable gets 0xffff, PM1 control SLP_TYP 7 with SLP_EN: nothing */
	ck_assert_int_eq(pm_out(&pm, 0x602, 4, 0xffffffffu), VMM_PM_NONE);
	ck_assert_uint_eq(pm_in(&pm, 0x602, 2), 0xffff);
	ck_assert_uint_eq(pm_in(&pm, 0x604, 4), 0xffff0000u | 0xdfff);	/* past 0x605: all ones */
	/* status is write 1 to clear; nothing set it */
	ck_assert_uint_eq(pm_in(&pm, 0x600, 2), 0);
	/* S5 | SLP_EN in one 16-bit write, then byte by byte (the high byte carries both) */
	ck_assert_int_eq(pm_out(&pm, 0x604, 2, 5u << 10 | 1u << 13), VMM_PM_POWER_OFF);
	ck_assert_int_eq(pm_out(&pm, 0x604, 1, 0x00), VMM_PM_NONE);
	ck_assert_int_eq(pm_out(&pm, 0x605, 1, (5u << 10 | 1u << 13) >> 8), VMM_PM_POWER_OFF);
	/* reset register: RST_CPU (bit 2) resets, other bits are kept and read back */
	ck_assert_int_eq(pm_out(&pm, 0xcf9, 1, 0x02), VMM_PM_NONE);
	ck_assert_uint_eq(pm_in(&pm, 0xcf9, 1), 0x02);
	ck_assert_int_eq(pm_out(&pm, 0xcf9, 1, 0x06), VMM_PM_RESET);
}
END_TEST

/*
 * vmm ctl snapshot on a control socket whose target has a datastore and a VM
 * folder but no running guest (no /dev/kvm needed): the folder's files get
 * the snapshot in one go, the reply says how long their I/O was held, a
 * duplicate or bad name is refused, and revert is refused while the VM runs.
 */
/* A new 256 MiB datastore in img (a mkstemp template), opened standalone, with an empty folder /vm. */
static struct vmfs *new_store(char *img, struct vmfs_stat *dir)
{
	struct vmfs_mkfs_opts mo = { .size = 256ull << 20, .force = true, .host_slots = 4 };
	struct vmfs_open_opts oo = { .standalone = true };
	char err[256] = "";
	struct vmfs *fs;
	int fd = mkstemp(img);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(vmfs_mkfs(img, &mo, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "vm", 0755, 0, 0, dir), 0);
	return fs;
}

/* ha.state: the two words, a missing file, a torn or foreign one (RUNNING: better restarted than lost). */
START_TEST(ha_state_file)
{
	char img[] = "/var/tmp/vmm-ha-XXXXXX";
	enum vmm_ha_state st = VMM_HA_RUNNING;
	struct vmfs_stat dir, f;
	struct vmfs *fs = new_store(img, &dir);

	ck_assert_int_eq(vmm_ha_read(fs, dir.ino, &st), 0);
	ck_assert_int_eq(st, VMM_HA_STOPPED);
	ck_assert_int_eq(vmm_ha_write(fs, dir.ino, VMM_HA_RUNNING), 0);
	ck_assert_int_eq(vmm_ha_read(fs, dir.ino, &st), 0);
	ck_assert_int_eq(st, VMM_HA_RUNNING);
	ck_assert_int_eq(vmm_ha_write(fs, dir.ino, VMM_HA_STOPPED), 0);
	ck_assert_int_eq(vmm_ha_read(fs, dir.ino, &st), 0);
	ck_assert_int_eq(st, VMM_HA_STOPPED);
	ck_assert_int_eq(vmfs_lookup(fs, dir.ino, VMM_HA_FILE, &f), 0);
	ck_assert_uint_eq(f.size, 8);
	/* torn: a prefix of "stopped\n"; foreign: longer; both read as running */
	ck_assert_int_eq(vmfs_pwrite(fs, f.ino, "stopped\nand more", 16, 0), 16);
	ck_assert_int_eq(vmm_ha_read(fs, dir.ino, &st), 0);
	ck_assert_int_eq(st, VMM_HA_RUNNING);
	/* a longer file is cut back to the word */
	ck_assert_int_eq(vmm_ha_write(fs, dir.ino, VMM_HA_STOPPED), 0);
	ck_assert_int_eq(vmm_ha_read(fs, dir.ino, &st), 0);
	ck_assert_int_eq(st, VMM_HA_STOPPED);
	vmfs_forget(fs, f.ino, 1);
	vmfs_close(fs);
	unlink(img);
}
END_TEST

/* The agent's choice for one VM, from what it sees. */
START_TEST(ha_decide)
{
	struct vmm_ha_view v = { .state = VMM_HA_RUNNING, .need_mib = 64, .free_mib = 100 };

	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_TRY);
	v.mine = true;
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_LEAVE);
	v.mine = false;
	v.disks_held = true;	/* it runs somewhere, or its dead host is not recovered yet */
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_LEAVE);
	v.disks_held = false;
	v.backing_off = true;
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_LEAVE);
	v.backing_off = false;
	v.state = VMM_HA_STOPPED;
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_LEAVE);
	v.state = VMM_HA_RUNNING;
	v.free_mib = 63;
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_NO_MEMORY);
	v.free_mib = 64;
	ck_assert_int_eq(vmm_ha_decide(&v), VMM_HA_TRY);
}
END_TEST

START_TEST(ctl_snapshot)
{
	char img[] = "/var/tmp/vmm-ctl-snap-XXXXXX", sock[64], err[256] = "", reply[1024];
	struct vmm_ctl_target t = { 0 };
	struct vmm_ctl *ctl = NULL;
	struct vmfs_stat dir, st;
	struct vmfs *fs = new_store(img, &dir);
	uint64_t s1, s2;

	ck_assert_int_eq(vmfs_mknod(fs, dir.ino, "disk0.img", S_IFREG | 0644, 0, 0, &st), 0);
	ck_assert_int_eq(vmfs_pwrite(fs, st.ino, "disk", 4, 3 << 20), 4);
	ck_assert_int_eq(vmfs_mknod(fs, dir.ino, "vm.conf", S_IFREG | 0644, 0, 0, &st), 0);
	t.fs = fs;
	t.vm_path = "/vm";
	snprintf(sock, sizeof(sock), "%s.sock", img);
	ck_assert_msg(vmm_ctl_new(sock, &t, &ctl, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(vmm_ctl_request(sock, "{\"cmd\":\"snapshot\",\"name\":\"s1\"}", reply, sizeof(reply), err,
					 sizeof(err)), 0);
	ck_assert_msg(!strncmp(reply, "{\"ok\":true,\"snapshot\":\"s1\",\"io_pause_us\":",
			       strlen("{\"ok\":true,\"snapshot\":\"s1\",\"io_pause_us\":")), "%s", reply);
	ck_assert_int_eq(vmfs_snap_find(fs, st.ino, "s1", &s1), 0);
	ck_assert_int_eq(vmfs_resolve(fs, "/vm/disk0.img", &s2), 0);
	ck_assert_int_eq(vmfs_snap_find(fs, s2, "s1", &s2), 0);
	ck_assert_int_eq(vmm_ctl_request(sock, "{\"cmd\":\"snapshot\",\"name\":\"s1\"}", reply, sizeof(reply), err,
					 sizeof(err)), 0);
	ck_assert_msg(strstr(reply, "\"ok\":false") && strstr(reply, "exists"), "%s", reply);
	ck_assert_int_eq(vmm_ctl_request(sock, "{\"cmd\":\"snapshot\"}", reply, sizeof(reply), err, sizeof(err)), 0);
	ck_assert_msg(strstr(reply, "\"ok\":false"), "%s", reply);
	ck_assert_int_eq(vmm_ctl_request(sock, "{\"cmd\":\"revert\",\"name\":\"s1\"}", reply, sizeof(reply), err,
					 sizeof(err)), 0);
	ck_assert_msg(strstr(reply, "\"ok\":false") && strstr(reply, "running"), "%s", reply);
	vmm_ctl_free(ctl);
	vmfs_close(fs);
	unlink(img);
}
END_TEST

/*
 * vmm ctl rekey on a control socket whose target has an encrypted datastore
 * and a VM folder (no guest): every file of the folder gets a new file key,
 * its blocks move, its bytes read as before; on a datastore without
 * encryption the request is refused with the reason.
 */
START_TEST(ctl_rekey)
{
	struct enc_secret *key = NULL;
	struct vmfs_mkfs_opts mo = { .size = 256ull << 20, .force = true, .host_slots = 4,
				     .key_kind = ENC_SECRET_KEYFILE };
	struct vmfs_open_opts oo = { .standalone = true };
	char img[] = "/var/tmp/vmm-ctl-rekey-XXXXXX", sock[64], err[256] = "", reply[1024];
	static uint8_t data[3 << 20], back[3 << 20];
	struct vmm_ctl_target t = { 0 };
	struct vmm_ctl *ctl = NULL;
	struct vmfs_bmap_info b0, b1;
	struct vmfs_stat dir, st;
	struct vmfs *fs;
	int fd = mkstemp(img);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(enc_secret_from_buf("0123456789abcdef0123456789abcdef", 32, &key), 0);
	for (int pass = 0; pass < 2; pass++) { /* encrypted, then plain */
		mo.secret = oo.secret = pass ? NULL : key;
		ck_assert_msg(vmfs_mkfs(img, &mo, err, sizeof(err)) == 0, "%s", err);
		ck_assert_msg(vmfs_open(img, &oo, &fs, err, sizeof(err)) == 0, "%s", err);
		ck_assert_int_eq(vmfs_mkdir(fs, vmfs_root_ino(fs), "vm", 0755, 0, 0, &dir), 0);
		ck_assert_int_eq(vmfs_mknod(fs, dir.ino, "disk0.img", S_IFREG | 0644, 0, 0, &st), 0);
		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (uint8_t)(i * 7 + i / 4096);
		ck_assert_int_eq(vmfs_pwrite(fs, st.ino, data, sizeof(data), 0), (ssize_t)sizeof(data));
		ck_assert_int_eq(vmfs_mknod(fs, dir.ino, "vm.conf", S_IFREG | 0644, 0, 0, &dir), 0);
		ck_assert_int_eq(vmfs_bmap(fs, st.ino, 1 << 20, &b0), 0);
		t.fs = fs;
		t.vm_path = "/vm";
		snprintf(sock, sizeof(sock), "%s.sock", img);
		ck_assert_msg(vmm_ctl_new(sock, &t, &ctl, err, sizeof(err)) == 0, "%s", err);
		ck_assert_int_eq(vmm_ctl_request(sock, "{\"cmd\":\"rekey\"}", reply, sizeof(reply), err, sizeof(err)), 0);
		if (!pass) {
			static const char want[] = "{\"ok\":true,\"rekeyed\":2,\"directories\":1,\"bytes\":3145728,";

			ck_assert_msg(!strncmp(reply, want, strlen(want)), "%s", reply);
			ck_assert_int_eq(vmfs_bmap(fs, st.ino, 1 << 20, &b1), 0);
			ck_assert_uint_ne(b0.dev_off, b1.dev_off);
		} else {
			ck_assert_msg(strstr(reply, "\"ok\":false") && strstr(reply, "not encrypted"), "%s", reply);
		}
		ck_assert_int_eq(vmfs_pread(fs, st.ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
		ck_assert(!memcmp(back, data, sizeof(data)));
		vmm_ctl_free(ctl);
		vmfs_close(fs);
	}
	enc_secret_free(key);
	unlink(img);
}
END_TEST

/*
 * vm.state (vmm/vmstate.c), in memory: what the writer writes the parser
 * reads back byte for byte; every damaged, cut, lengthened, foreign or
 * ill-formed file is refused with the reason. The files are the VM of
 * tests/fuzz/vmstate_seed.h, whose table says which sections a resume needs.
 */
#define PAGE VMSTATE_SEED_PAGE

/* A file in memory: writes grow it (io.size follows), reads past its end are -ENODATA. */
struct statebuf {
	struct vmm_state_io io;
	uint8_t *p;
	size_t len, cap;
	uint64_t done, total;     /* the last progress call's */
	unsigned progress;        /* how many calls */
};

static int sb_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct statebuf *b = ctx;

	if (off > b->len || len > b->len - off)
		return -ENODATA;
	memcpy(buf, b->p + off, len);
	return 0;
}

static int sb_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct statebuf *b = ctx;
	size_t end = off + len;

	if (end > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		uint8_t *p;

		while (cap < end)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		memset(p + b->cap, 0, cap - b->cap);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + off, buf, len);
	if (end > b->len)
		b->len = end;
	b->io.size = b->len;
	return 0;
}

static void sb_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct statebuf *b = ctx;

	b->done = done;
	b->total = total;
	b->progress++;
}

static void sb_init(struct statebuf *b)
{
	*b = (struct statebuf){ .io = { .ctx = b, .read = sb_read, .write = sb_write, .progress = sb_progress } };
}

/* Cuts the file to len bytes (it stays allocated: sb_write can put them back). */
static void sb_cut(struct statebuf *b, size_t len)
{
	b->len = len;
	b->io.size = len;
}

/*
 * The seeds' VM with ncpus vCPUs and 1 MiB of memory whose pages 0, 7-8 and
 * the last are not zero: into b, its identity into id, the writer as it ended
 * into w.
 */
static void small_file(struct statebuf *b, struct vmm_state_id *id, uint32_t ncpus, struct vmm_state_writer *w)
{
	static const uint32_t pages[] = { 0, 7, 8, VMSTATE_SEED_MEM / PAGE - 1 };
	static uint8_t mem[VMSTATE_SEED_MEM];

	memset(mem, 0, sizeof(mem));
	for (unsigned i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		vmstate_seed_fill(VMM_ST_RAM, pages[i], mem + (size_t)pages[i] * PAGE, PAGE);
	sb_init(b);
	vmstate_seed_id(id, ncpus);
	ck_assert_int_eq(vmstate_seed_write(w, &b->io, id, mem), 0);
	ck_assert_uint_eq(w->nram, 3);
	ck_assert_uint_eq(w->ram_bytes, 4 * PAGE);
}

/*
 * 8 MiB with runs of 1, 2 and 1280 pages and the last page, 2 vCPUs: written,
 * then read back (memory byte for byte, every section, the header), checked
 * only, and peeked. The 5 MiB run is written as one of VMM_STATE_RUN_MAX and
 * one of the rest.
 */
START_TEST(state_round_trip)
{
	static const struct { uint32_t first, n; } runs[] = { { 0, 1 }, { 3, 2 }, { 512, 1280 }, { 2047, 1 } };
	const uint64_t size = 8ull << 20;
	struct vmstate_seed_sec s[VMSTATE_SEED_SECS(2)];
	unsigned n = vmstate_seed_sections(s, 2);
	uint8_t *mem = calloc(1, size), *back = calloc(1, size), want[VMM_STATE_DEV_MAX];
	struct vmm_state_writer w;
	struct vmm_state_id id;
	struct vmm_state st, peek;
	struct statebuf b;
	char err[256] = "";
	uint64_t ram = 0;
	const uint8_t *p;
	size_t len;

	ck_assert(mem && back);
	ck_assert_uint_eq(VMM_STATE_RUN_MAX, 1024 * PAGE);
	for (unsigned r = 0; r < sizeof(runs) / sizeof(runs[0]); r++)
		for (uint32_t pg = runs[r].first; pg < runs[r].first + runs[r].n; pg++, ram += PAGE)
			vmstate_seed_fill(VMM_ST_RAM, pg, mem + (size_t)pg * PAGE, PAGE);
	vmstate_seed_id(&id, 2);
	id.mem_size = size;
	sb_init(&b);
	ck_assert_int_eq(vmstate_seed_write(&w, &b.io, &id, mem), 0);
	ck_assert_uint_eq(w.nram, 5);
	ck_assert_uint_eq(w.ram_bytes, ram);
	ck_assert_uint_eq(w.nsec, n + 5);
	ck_assert_uint_eq(w.off, b.len);
	ck_assert_uint_eq(b.done, size);		/* the last run ends at the last page */
	ck_assert_uint_eq(b.total, size);

	b.progress = 0;
	ck_assert_msg(vmm_state_parse(&b.io, &id, back, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert(!memcmp(back, mem, size));
	ck_assert(!memcmp(&st.id, &id, sizeof(id)));
	ck_assert_int_eq(st.created_ns, VMSTATE_SEED_NS);
	ck_assert_str_eq(st.host, VMSTATE_SEED_HOST);
	ck_assert_uint_eq(st.ram_bytes, ram);
	ck_assert_uint_eq(st.nsec, n);
	for (unsigned i = 0; i < n; i++) {
		p = vmm_state_find(&st, s[i].tag, s[i].index, &len);
		ck_assert_msg(p, "tag %u index %u not found", s[i].tag, s[i].index);
		ck_assert_uint_eq(len, s[i].len);
		vmstate_seed_fill(s[i].tag, s[i].index, want, len);
		ck_assert_msg(!memcmp(p, want, len), "tag %u index %u: other bytes", s[i].tag, s[i].index);
	}
	ck_assert_ptr_null(vmm_state_find(&st, VMM_ST_BALLOON, 1, &len));
	ck_assert_ptr_null(vmm_state_find(&st, VMM_ST_REGS, 2, &len));
	ck_assert_ptr_null(vmm_state_find(&st, VMM_ST_RAM, 0, &len));
	ck_assert_uint_eq(b.progress, 5);		/* a call after each run, the last at the end */
	ck_assert_uint_eq(b.done, b.len);
	vmm_state_free(&st);
	ck_assert_uint_eq(st.nsec, 0);
	ck_assert_ptr_null(st.sec);
	vmm_state_free(NULL);

	/* check only: no memory, no out; then no VM to expect */
	ck_assert_msg(vmm_state_parse(&b.io, &id, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(vmm_state_parse(&b.io, NULL, NULL, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(st.nsec, n);
	ck_assert_uint_eq(st.ram_bytes, ram);
	ck_assert_uint_eq(st.id.ncpus, 2);
	vmm_state_free(&st);
	ck_assert_int_eq(vmm_state_parse(&b.io, NULL, back, NULL, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "no VM to load into");

	/* the header alone */
	ck_assert_msg(vmm_state_peek(&b.io, &peek, err, sizeof(err)) == 0, "%s", err);
	ck_assert(!memcmp(&peek.id, &id, sizeof(id)));
	ck_assert_int_eq(peek.created_ns, VMSTATE_SEED_NS);
	ck_assert_str_eq(peek.host, VMSTATE_SEED_HOST);
	ck_assert_uint_eq(peek.ram_bytes, ram);
	ck_assert_uint_eq(peek.nsec, 0);
	ck_assert_ptr_null(peek.sec);
	free(b.p);
	free(mem);
	free(back);
}
END_TEST

/* Every bit of the header and a bit of every other byte, one at a time: all refused, then the file parses again. */
START_TEST(state_flips_refused)
{
	static uint8_t back[VMSTATE_SEED_MEM];
	struct vmm_state_writer w;
	struct vmm_state_id id;
	struct statebuf b;
	char err[256];
	unsigned flips = 0;
	int ret;

	small_file(&b, &id, 2, &w);
	ck_assert_uint_gt(b.len, 30000);
	for (size_t i = 0; i < b.len; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			if (i >= VMM_STATE_HEADER && bit != i % 8)
				continue;
			b.p[i] ^= 1u << bit;
			err[0] = 0;
			ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
			b.p[i] ^= 1u << bit;
			ck_assert_msg(ret == -EINVAL && err[0], "byte %zu bit %u: %d '%s'", i, bit, ret, err);
			flips++;
		}
	ck_assert_uint_eq(flips, b.len + 7 * VMM_STATE_HEADER);
	ck_assert_msg(vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err)) == 0, "%s", err);
	free(b.p);
}
END_TEST

START_TEST(state_cut_or_longer)
{
	static const uint8_t zeros[4096];
	static uint8_t back[VMSTATE_SEED_MEM];
	struct vmm_state_writer w;
	struct vmm_state_id id;
	struct vmm_state st;
	struct statebuf b;
	char err[256];
	size_t size;
	int ret;

	small_file(&b, &id, 1, &w);
	size = b.len;
	for (size_t n = 0; n < size; n++) {
		sb_cut(&b, n);
		err[0] = 0;
		ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
		ck_assert_msg(ret == -EINVAL && strstr(err, "truncated"), "%zu bytes: %d '%s'", n, ret, err);
		ck_assert_int_eq(vmm_state_peek(&b.io, &st, err, sizeof(err)), -EINVAL);
	}
	/* shorter than io.size says (it shrank under the reader): the read comes up short */
	for (size_t n = 0; n < size; n += 997) {
		b.len = n;
		b.io.size = size;
		err[0] = 0;
		ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
		ck_assert_msg(ret == -EINVAL && strstr(err, "truncated at "), "%zu of %zu bytes: %d '%s'", n, size, ret,
			      err);
	}
	sb_cut(&b, size);
	ck_assert_msg(vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err)) == 0, "%s", err);
	/* bytes past its end: zeros, or a copy of its first section */
	for (size_t extra = 1; extra <= sizeof(zeros); extra *= 8) {
		ck_assert_int_eq(sb_write(&b, zeros, extra, size), 0);
		ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
		ck_assert_msg(ret == -EINVAL && strstr(err, "has bytes past its end"), "%zu more: %d '%s'", extra,
			      ret, err);
		sb_cut(&b, size);
	}
	ck_assert_int_eq(sb_write(&b, b.p + VMM_STATE_HEADER, 24 + sizeof(struct kvm_mp_state), size), 0);
	ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
	ck_assert_msg(ret == -EINVAL && strstr(err, "has bytes past its end"), "%d '%s'", ret, err);
	sb_cut(&b, size);
	/* a header that counts a section fewer (the last page's run: 24 + 8 + 4096 bytes left), or one more */
	w.nsec--;
	ck_assert_int_eq(vmm_state_write_end(&w, &id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
	ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
	ck_assert_msg(ret == -EINVAL && !strcmp(err, "4128 bytes past its last section"), "%d '%s'", ret, err);
	w.nsec += 2;
	ck_assert_int_eq(vmm_state_write_end(&w, &id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
	ret = vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err));
	ck_assert_msg(ret == -EINVAL && strstr(err, "truncated: "), "%d '%s'", ret, err);
	w.nsec--;
	ck_assert_int_eq(vmm_state_write_end(&w, &id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
	ck_assert_msg(vmm_state_parse(&b.io, &id, back, NULL, err, sizeof(err)) == 0, "%s", err);
	free(b.p);
}
END_TEST

/*
 * Each field of the VM's identity that differs from the file's: refused as
 * foreign, saying which. Then headers whose checksum is right but whose sizes
 * no VM has (without a VM to compare with) or whose section count is absurd.
 */
START_TEST(state_foreign)
{
	static const struct {
		size_t off;
		uint8_t x;
		const char *said;
	} change[] = {
		{ offsetof(struct vmm_state_id, uuid) + 15, 0x80, "written on another datastore" },
		{ offsetof(struct vmm_state_id, dir_ino), 1, "it belongs to another VM's folder" },
		{ offsetof(struct vmm_state_id, dir_gen) + 7, 1, "it belongs to another VM's folder" },
		{ offsetof(struct vmm_state_id, mem_size) + 2, 0x20, "suspended with 1 MiB of memory, vm.conf now says 3" },
		{ offsetof(struct vmm_state_id, ncpus), 1, "suspended with 2 vCPUs, vm.conf now says 3" },
		{ offsetof(struct vmm_state_id, ndisks), 1, "suspended with 2 disks, vm.conf now says 3" },
		{ offsetof(struct vmm_state_id, devices), VMM_STATE_DEV_BALLOON, "devices= changed" },
		{ offsetof(struct vmm_state_id, disk_ino) + 8, 1, "disk 1 is not the file it was" },
		{ offsetof(struct vmm_state_id, disk_gen), 0x40, "disk 0 is not the file it was" },
		{ offsetof(struct vmm_state_id, disk_size) + 8, 1,
		  "disk 1 was resized since the suspend (134217728 bytes then, 134217729 now)" },
	};
	struct vmm_state_writer w;
	struct vmm_state_id id, e;
	struct statebuf b;
	char err[256] = "";
	int ret;

	small_file(&b, &id, 2, &w);
	ck_assert_msg(vmm_state_parse(&b.io, &id, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	for (unsigned i = 0; i < sizeof(change) / sizeof(change[0]); i++) {
		e = id;
		((uint8_t *)&e)[change[i].off] ^= change[i].x;
		err[0] = 0;
		ret = vmm_state_parse(&b.io, &e, NULL, NULL, err, sizeof(err));
		ck_assert_msg(ret == -ESTALE && strstr(err, change[i].said), "%s: %d '%s'", change[i].said, ret, err);
	}
	for (unsigned k = 0; k < 3; k++) {
		e = id;
		if (k == 0)
			e.ncpus = VMM_MAX_CPUS + 1;
		else if (k == 1)
			e.ndisks = VMM_MAX_DISKS + 1;
		else
			e.mem_size += PAGE / 2;
		ck_assert_int_eq(vmm_state_write_end(&w, &e, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
		ret = vmm_state_parse(&b.io, NULL, NULL, NULL, err, sizeof(err));
		ck_assert_msg(ret == -EINVAL && !strcmp(err, "its header is damaged (the VM's size)"), "%u: %d '%s'", k,
			      ret, err);
	}
	w.nsec = (1u << 20) + 1;
	ck_assert_int_eq(vmm_state_write_end(&w, &id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
	ret = vmm_state_parse(&b.io, &id, NULL, NULL, err, sizeof(err));
	ck_assert_msg(ret == -EINVAL && !strcmp(err, "its header is damaged (1048577 sections)"), "%d '%s'", ret, err);
	free(b.p);
}
END_TEST

/* A RAM section: index, the payload's length (the gpa's 8 bytes and the pages), the gpa. */
struct ram_run {
	uint32_t index;
	uint64_t len, gpa;
};

/*
 * A file of id written section by section: s[0..n), then runs[0..nruns)
 * (pages of vmstate_seed_fill), the header's RAM bytes theirs plus skew.
 */
static void write_file(struct statebuf *b, const struct vmm_state_id *id, const struct vmstate_seed_sec *s, unsigned n,
		       const struct ram_run *runs, unsigned nruns, uint64_t skew)
{
	static uint8_t buf[8 + 4 * PAGE];
	struct vmm_state_writer w;

	sb_init(b);
	vmm_state_write_begin(&w, &b->io);
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(vmstate_seed_put(&w, &s[i]), 0);
	for (unsigned i = 0; i < nruns; i++) {
		ck_assert_uint_le(runs[i].len, sizeof(buf));
		memcpy(buf, &runs[i].gpa, runs[i].len < 8 ? runs[i].len : 8);
		for (uint64_t at = 8; at < runs[i].len; at += PAGE)
			vmstate_seed_fill(VMM_ST_RAM, (uint32_t)((runs[i].gpa + at - 8) / PAGE), buf + at,
					  runs[i].len - at < PAGE ? runs[i].len - at : PAGE);
		ck_assert_int_eq(vmm_state_put(&w, VMM_ST_RAM, runs[i].index, buf, runs[i].len), 0);
		w.ram_bytes += runs[i].len > 8 ? runs[i].len - 8 : 0;
	}
	w.ram_bytes += skew;
	ck_assert_int_eq(vmm_state_write_end(&w, id, VMSTATE_SEED_NS, VMSTATE_SEED_HOST), 0);
}

/* Parses b for id into memory and without: both -EINVAL saying what (both 0 if what is NULL); frees b's bytes. */
static void expect_refused(struct statebuf *b, const struct vmm_state_id *id, const char *what, const char *which)
{
	static uint8_t mem[VMSTATE_SEED_MEM];
	char err[256] = "";
	int ret;

	for (int with_mem = 0; with_mem < 2; with_mem++) {
		err[0] = 0;
		ret = vmm_state_parse(&b->io, id, with_mem ? mem : NULL, NULL, err, sizeof(err));
		if (!what)
			ck_assert_msg(ret == 0, "%s: %d '%s'", which, ret, err);
		else
			ck_assert_msg(ret == -EINVAL && strstr(err, what), "%s: %d '%s', wanted '%s'", which, ret, err, what);
	}
	free(b->p);
}

/* Sections twice, missing, unknown, for a vCPU the VM does not have, of the wrong length. */
START_TEST(state_structure)
{
	static const struct { uint32_t tag, index; } unknown[] = {
		{ 0, 0 }, { VMM_ST_CPU_LAST + 1, 0 }, { VMM_ST_REGS, 2 }, { VMM_ST_CPUID, 2 }, { VMM_ST_TSC_KHZ, 31 },
		{ VMM_ST_IRQCHIP, 3 }, { VMM_ST_PIT, 1 }, { VMM_ST_CLOCK, 1 }, { VMM_ST_SERIAL, 1 },
		{ VMM_ST_PCI, VMM_PCI_MAX_DEV + 1 }, { VMM_ST_VIRTIO, 0 }, { VMM_ST_BALLOON, VMM_PCI_MAX_DEV + 1 },
		{ VMM_ST_RAM + 1, 0 }, { UINT32_MAX, 0 },
	};
	static const struct { uint32_t tag; size_t len; } bad_len[] = {
		{ VMM_ST_REGS, sizeof(struct kvm_regs) - 1 }, { VMM_ST_XSAVE, sizeof(struct kvm_xsave) + 1 },
		{ VMM_ST_TSC_KHZ, 4 }, { VMM_ST_CPUID, sizeof(struct kvm_cpuid_entry2) + 1 }, { VMM_ST_CPUID, 0 },
		{ VMM_ST_MSRS, 1025 * sizeof(struct kvm_msr_entry) }, { VMM_ST_IRQCHIP, 0 },
		{ VMM_ST_SERIAL, 0 }, { VMM_ST_PCI, VMM_STATE_DEV_MAX + 1 },
	};
	static const struct ram_run run = { 0, 8 + PAGE, 0 };
	struct vmstate_seed_sec s[VMSTATE_SEED_SECS(2) + 1], t[VMSTATE_SEED_SECS(2) + 1];
	unsigned n = vmstate_seed_sections(s, 2), required = 0;
	struct vmm_state_id id;
	struct statebuf b;
	char which[64];

	vmstate_seed_id(&id, 2);
	write_file(&b, &id, s, n, &run, 1, 0);
	expect_refused(&b, &id, NULL, "as written");
	/* a section twice: the last one's copy, right after it */
	for (unsigned k = 0; k < n; k++) {
		memcpy(t, s, sizeof(s));
		memmove(&t[k + 1], &t[k], (n - k) * sizeof(t[0]));
		snprintf(which, sizeof(which), "tag %u index %u twice", s[k].tag, s[k].index);
		write_file(&b, &id, t, n + 1, &run, 1, 0);
		expect_refused(&b, &id, which, which);
	}
	/* each section left out: refused if a resume needs it */
	for (unsigned k = 0; k < n; k++) {
		memcpy(t, s, sizeof(s));
		memmove(&t[k], &t[k + 1], (n - k - 1) * sizeof(t[0]));
		snprintf(which, sizeof(which), "without tag %u index %u", s[k].tag, s[k].index);
		write_file(&b, &id, t, n - 1, &run, 1, 0);
		expect_refused(&b, &id, s[k].required ? "missing" : NULL, which);
		required += s[k].required;
	}
	ck_assert_uint_eq(required, n - 2);	/* all but PCI slot 1's and its virtio device's */
	/* a section this VM cannot have */
	for (unsigned k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
		memcpy(t + 1, s, n * sizeof(s[0]));
		t[0] = (struct vmstate_seed_sec){ unknown[k].tag, unknown[k].index, 8, false };
		snprintf(which, sizeof(which), "unknown tag %u index %u", unknown[k].tag, unknown[k].index);
		write_file(&b, &id, t, n + 1, &run, 1, 0);
		expect_refused(&b, &id, which, which);
	}
	/* the wrong length for its tag */
	for (unsigned k = 0; k < sizeof(bad_len) / sizeof(bad_len[0]); k++) {
		unsigned i = 0;

		memcpy(t, s, sizeof(s));
		while (t[i].tag != bad_len[k].tag)
			i++;
		t[i].len = bad_len[k].len;
		snprintf(which, sizeof(which), "(tag %u): %zu bytes", bad_len[k].tag, bad_len[k].len);
		write_file(&b, &id, t, n, &run, 1, 0);
		expect_refused(&b, &id, which, which);
	}
}
END_TEST

/* RAM runs: good ones land where they say; out of order, overlapping, outside, not of whole pages: refused. */
START_TEST(state_ram_runs)
{
	static const uint64_t last = VMSTATE_SEED_MEM - PAGE;
	static const struct {
		const char *said;         /* NULL: it parses */
		unsigned nruns;
		struct ram_run runs[3];
		uint64_t skew;            /* added to the header's RAM bytes */
	} cases[] = {
		{ NULL, 3, { { 0, 8 + PAGE, 0 }, { 1, 8 + 2 * PAGE, 3 * PAGE }, { 2, 8 + PAGE, last } }, 0 },
		{ NULL, 2, { { 0, 8 + PAGE, 0 }, { 1, 8 + PAGE, PAGE } }, 0 },		/* adjacent */
		{ "RAM run 1 at 0x0: outside the VM's memory or out of order", 2,
		  { { 0, 8 + PAGE, 3 * PAGE }, { 1, 8 + PAGE, 0 } }, 0 },
		{ "RAM run 1 at 0x1000: outside", 2, { { 0, 8 + 2 * PAGE, 0 }, { 1, 8 + PAGE, PAGE } }, 0 },
		{ "RAM run 1 at 0x0: outside", 2, { { 0, 8 + PAGE, 0 }, { 1, 8 + PAGE, 0 } }, 0 },
		{ "RAM run 0 at 0xff000: outside", 1, { { 0, 8 + 2 * PAGE, last } }, 0 },
		{ "RAM run 0 at 0x100000: outside", 1, { { 0, 8 + PAGE, VMSTATE_SEED_MEM } }, 0 },
		{ "RAM run 0 at 0xfffffffffffff000: outside", 1, { { 0, 8 + PAGE, -(uint64_t)PAGE } }, 0 },
		{ "RAM run 0 at 0x800: outside", 1, { { 0, 8 + PAGE, PAGE / 2 } }, 0 },
		{ "RAM run 0: 4105 bytes", 1, { { 0, 9 + PAGE, 0 } }, 0 },
		{ "RAM run 0: 4103 bytes", 1, { { 0, 7 + PAGE, 0 } }, 0 },
		{ "RAM run 0: 8 bytes", 1, { { 0, 8, 0 } }, 0 },
		{ "RAM run 0: 4 bytes", 1, { { 0, 4, 0 } }, 0 },
		{ "RAM run 1 where 0 was due", 1, { { 1, 8 + PAGE, 0 } }, 0 },
		{ "RAM run 0 where 1 was due", 2, { { 0, 8 + PAGE, 0 }, { 0, 8 + PAGE, PAGE } }, 0 },
		{ "its header is damaged (RAM bytes)", 2, { { 0, 8 + PAGE, 0 }, { 1, 8 + PAGE, 2 * PAGE } }, PAGE },
		{ "its header is damaged (RAM bytes)", 1, { { 0, 8 + PAGE, 0 } }, -(uint64_t)PAGE },
	};
	static uint8_t mem[VMSTATE_SEED_MEM], page[PAGE];
	struct vmstate_seed_sec s[VMSTATE_SEED_SECS(2)];
	unsigned n = vmstate_seed_sections(s, 2);
	struct vmm_state_id id;
	struct statebuf b;
	char err[256] = "", which[32];

	vmstate_seed_id(&id, 2);
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		snprintf(which, sizeof(which), "case %u", k);
		write_file(&b, &id, s, n, cases[k].runs, cases[k].nruns, cases[k].skew);
		expect_refused(&b, &id, cases[k].said, which);
	}
	/* the first case's pages, where it put them, and nothing elsewhere */
	write_file(&b, &id, s, n, cases[0].runs, cases[0].nruns, 0);
	ck_assert_msg(vmm_state_parse(&b.io, &id, mem, NULL, err, sizeof(err)) == 0, "%s", err);
	for (uint64_t gpa = 0; gpa < VMSTATE_SEED_MEM; gpa += PAGE) {
		bool set = gpa == 0 || gpa == 3 * PAGE || gpa == 4 * PAGE || gpa == last;

		memset(page, 0, PAGE);
		if (set)
			vmstate_seed_fill(VMM_ST_RAM, (uint32_t)(gpa / PAGE), page, PAGE);
		ck_assert_msg(!memcmp(mem + gpa, page, PAGE), "page at 0x%llx", (unsigned long long)gpa);
	}
	free(b.p);
}
END_TEST

static Suite *vmm_suite(void)
{
	Suite *s = suite_create("vmm");
	TCase *tc = tcase_create("bucket");
	TCase *tj = tcase_create("jsonline");
	TCase *tp = tcase_create("conf_pm");
	TCase *tv = tcase_create("vmstate");

	tcase_add_test(tc, bytes_burst_then_wait);
	tcase_add_test(tc, large_request_borrows);
	tcase_add_test(tc, ops_and_bytes_together);
	tcase_add_test(tc, unlimited);
	tcase_add_test(tc, slow_rate_keeps_partial_time);
	suite_add_tcase(s, tc);
	tcase_add_test(tj, json_takes_flat_objects);
	tcase_add_test(tj, json_refuses_the_rest);
	suite_add_tcase(s, tj);
	tcase_add_test(tp, conf_ctl);
	tcase_add_test(tp, conf_ha);
	tcase_add_test(tp, ha_state_file);
	tcase_add_test(tp, ha_decide);
	tcase_add_test(tp, pm_ports);
	tcase_add_test(tp, ctl_snapshot);
	tcase_add_test(tp, ctl_rekey);
	suite_add_tcase(s, tp);
	tcase_add_test(tv, state_round_trip);
	tcase_add_test(tv, state_flips_refused);
	tcase_add_test(tv, state_cut_or_longer);
	tcase_add_test(tv, state_foreign);
	tcase_add_test(tv, state_structure);
	tcase_add_test(tv, state_ram_runs);
	tcase_set_timeout(tv, 60);	/* the flips parse the file 35000 times: seconds under ASan */
	suite_add_tcase(s, tv);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vmm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
