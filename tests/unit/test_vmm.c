/*
 * Unit tests for the parts of vmm that need no /dev/kvm: the token buckets
 * (vmm/ratelimit.h) on a fake clock (the first second's burst, waits computed
 * to the nanosecond, refill capped at one second's worth, a request larger
 * than the bucket going into debt, both buckets taken or neither, unlimited
 * buckets, slow rates that keep the time of partial tokens) and the control
 * socket's line parser (vmm/jsonline.h: what it takes, and the hostile lines
 * it refuses), vm.conf's ctl= line (vmm/config.c) and the ACPI PM ports
 * (vmm/devices/acpi_pm.c: S5 by any access width, what must not power off,
 * the reset register). Every expected value is written out.
 */
#include "vmm/config.h"
#include "vmm/ctl.h"
#include "encrypt/encrypt.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/ha.h"
#include "snapshot/snapshot.h"
#include "vmm/jsonline.h"
#include "vmm/ratelimit.h"

#include <check.h>
#include <errno.h>
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

static Suite *vmm_suite(void)
{
	Suite *s = suite_create("vmm");
	TCase *tc = tcase_create("bucket");
	TCase *tj = tcase_create("jsonline");
	TCase *tp = tcase_create("conf_pm");

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
