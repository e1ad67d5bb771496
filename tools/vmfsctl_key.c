/*
 * vmfsctl key list|add|remove: the keyslots of an encrypted datastore
 * (docs/ENCRYPTION.md). list reads the key area without a key and writes
 * nothing. add and remove open the datastore read-write with a key that
 * opens some keyslot (so a host without the key cannot lock others out) and
 * join the cluster, whose metadata lock orders them against other hosts.
 * Exit codes: 0 done, 1 failed, 2 bad usage, 3 the key or passphrase given
 * opens no keyslot.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "tools/vmfsctl.h"

void key_usage(FILE *f)
{
	fprintf(f, "       vmfsctl key list [--json] DEVICE        the keyslots (no key needed)\n"
		   "       vmfsctl key add DEVICE [KEY] [NEW] [--slot N] [--label TEXT] [--kdf SPEC]\n"
		   "       vmfsctl key remove DEVICE SLOT [KEY]\n"
		   "       vmfsctl key change DEVICE [KEY] [NEW] [--drop-others]\n"
		   "                              a new datastore key: every file key resealed, online;\n"
		   "                              the slots KEY opens are rewrapped (or replaced by NEW)\n"
		   "         KEY: --key-file F | --passphrase-file F | --keycmd PROG (else a prompt):\n"
		   "              what opens the datastore now\n"
		   "         NEW: --new-key-file F | --new-passphrase-file F | --new-keycmd PROG (else a\n"
		   "              prompt, asked twice): what the new keyslot opens with\n"
		   "         --kdf argon2id[:t=N,m=SIZE,p=N] | hkdf-sha256 (default: argon2id t=3,m=256M,p=2\n"
		   "              for a passphrase, hkdf-sha256 for a key file)\n");
}

int key_exit(int ret)
{
	return ret == -EKEYREJECTED ? 3 : 1;
}

static int key_get(const struct enc_secret_src *src, struct enc_secret **out)
{
	enum enc_secret_kind kind;
	char err[256];
	int ret = enc_secret_get(src, "Passphrase: ", false, out, &kind, err, sizeof(err));

	if (ret)
		tool_err("%s", err);
	return ret;
}

static int cmd_key_list(int argc, char **argv)
{
	struct enc_slot_info info[ENC_SLOTS];
	const char *dev = NULL;
	struct vmfs *fs;
	bool json = false, first = true;
	char err[256];
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] != '-' && !dev)
			dev = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!dev) {
		usage(stderr);
		return 2;
	}
	fs = open_readonly(dev);
	if (!fs)
		return 1;
	ret = vmfs_key_list(fs, info, err, sizeof(err));
	vmfs_close(fs);
	if (ret) {
		tool_err("%s: %s", dev, err);
		return 1;
	}
	if (json)
		printf("[");
	else
		printf("%-5s %-12s %-28s %-6s %-20s %s\n", "SLOT", "KDF", "PARAMETERS", "EPOCH", "CREATED (UTC)",
		       "LABEL");
	for (int i = 0; i < (int)ENC_SLOTS; i++) {
		const struct enc_slot_info *s = &info[i];
		char params[64] = "-", when[32] = "-";
		time_t t;
		struct tm tm;

		if (!s->active)
			continue;
		if (s->kdf.kdf == ENC_KDF_ARGON2ID)
			snprintf(params, sizeof(params), "t=%u,m=%uK,p=%u", s->kdf.t_cost, s->kdf.m_kib, s->kdf.parallel);
		t = (time_t)(s->created_ns / 1000000000);
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		if (json) {
			printf("%s{\"slot\":%d,\"kdf\":\"%s\",\"t_cost\":%u,\"m_kib\":%u,\"parallel\":%u,\"epoch\":%u,"
			       "\"created_ns\":%lld,\"label\":",
			       first ? "" : ",", i, s->kdf.kdf == ENC_KDF_ARGON2ID ? "argon2id" : "hkdf-sha256",
			       s->kdf.t_cost, s->kdf.m_kib, s->kdf.parallel, s->epoch, (long long)s->created_ns);
			tool_json_str(s->label);
			printf("}");
		} else {
			printf("%-5d %-12s %-28s %-6u %-20s %s\n", i,
			       s->kdf.kdf == ENC_KDF_ARGON2ID ? "argon2id" : "hkdf-sha256", params, s->epoch, when,
			       s->label);
		}
		first = false;
	}
	if (json)
		printf("]\n");
	return 0;
}

/* Opens dev read-write with the key src names; NULL with *code set after saying why. */
static struct vmfs *open_with_key(const char *dev, const struct enc_secret_src *src, int *code)
{
	struct vmfs_open_opts oo = { 0 };
	struct enc_secret *s = NULL;
	struct vmfs *fs = NULL;
	char err[320];
	int ret;

	*code = 1;
	if (key_get(src, &s))
		return NULL;
	oo.secret = s;
	ret = vmfs_open(dev, &oo, &fs, err, sizeof(err));
	enc_secret_free(s);
	if (ret) {
		tool_err("%s", err);
		*code = key_exit(ret);
		return NULL;
	}
	return fs;
}

static int cmd_key_add(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key-file", required_argument, NULL, 'k' },     { "passphrase-file", required_argument, NULL, 'p' },
		{ "keycmd", required_argument, NULL, 'c' },       { "new-key-file", required_argument, NULL, 'K' },
		{ "new-passphrase-file", required_argument, NULL, 'P' }, { "new-keycmd", required_argument, NULL, 'C' },
		{ "slot", required_argument, NULL, 's' },         { "label", required_argument, NULL, 'l' },
		{ "kdf", required_argument, NULL, 'd' },          { NULL, 0, NULL, 0 },
	};
	struct enc_secret_src src = { 0 }, nsrc = { 0 };
	struct enc_kdf_params kdf;
	struct enc_secret *ns = NULL;
	enum enc_secret_kind kind;
	const char *label = NULL;
	bool kdf_set = false;
	struct vmfs *fs;
	char err[320];
	uint64_t v;
	int c, want = -1, slot = -1, code, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': src.key_file = optarg; break;
		case 'p': src.passphrase_file = optarg; break;
		case 'c': src.keycmd = optarg; break;
		case 'K': nsrc.key_file = optarg; break;
		case 'P': nsrc.passphrase_file = optarg; break;
		case 'C': nsrc.keycmd = optarg; break;
		case 'l': label = optarg; break;
		case 's':
			if (!tool_parse_u64(optarg, &v) || v >= ENC_SLOTS) {
				tool_err("bad keyslot '%s' (0..%u)", optarg, ENC_SLOTS - 1);
				return 2;
			}
			want = (int)v;
			break;
		case 'd':
			if (enc_kdf_parse(optarg, &kdf, err, sizeof(err))) {
				tool_err("%s", err);
				return 2;
			}
			kdf_set = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return 2;
	}
	fs = open_with_key(argv[optind], &src, &code);
	if (!fs)
		return code;
	ret = enc_secret_get(&nsrc, "New passphrase: ", true, &ns, &kind, err, sizeof(err));
	if (!ret)
		ret = vmfs_key_add(fs, ns, kind, kdf_set ? &kdf : NULL, label, want, &slot, err, sizeof(err));
	enc_secret_free(ns);
	if (ret)
		tool_err("%s: %s", argv[optind], err);
	else
		printf("keyslot %d added\n", slot);
	vmfs_close(fs);
	return ret ? 1 : 0;
}

static int cmd_key_remove(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key-file", required_argument, NULL, 'k' }, { "passphrase-file", required_argument, NULL, 'p' },
		{ "keycmd", required_argument, NULL, 'c' },   { NULL, 0, NULL, 0 },
	};
	struct enc_secret_src src = { 0 };
	struct vmfs *fs;
	char err[320];
	uint64_t v;
	int c, code, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': src.key_file = optarg; break;
		case 'p': src.passphrase_file = optarg; break;
		case 'c': src.keycmd = optarg; break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	if (!tool_parse_u64(argv[optind + 1], &v) || v >= ENC_SLOTS) {
		tool_err("bad keyslot '%s' (0..%u)", argv[optind + 1], ENC_SLOTS - 1);
		return 2;
	}
	fs = open_with_key(argv[optind], &src, &code);
	if (!fs)
		return code;
	ret = vmfs_key_remove(fs, (int)v, err, sizeof(err));
	if (ret)
		tool_err("%s: %s", argv[optind], err);
	else
		printf("keyslot %d removed\n", (int)v);
	vmfs_close(fs);
	return ret ? 1 : 0;
}

static void change_progress(void *ctx, uint64_t files)
{
	(void)ctx;
	if (isatty(STDERR_FILENO) && files % 64 == 0)
		fprintf(stderr, "\rresealing file keys: %llu", (unsigned long long)files);
}

static int cmd_key_change(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key-file", required_argument, NULL, 'k' },     { "passphrase-file", required_argument, NULL, 'p' },
		{ "keycmd", required_argument, NULL, 'c' },       { "new-key-file", required_argument, NULL, 'K' },
		{ "new-passphrase-file", required_argument, NULL, 'P' }, { "new-keycmd", required_argument, NULL, 'C' },
		{ "drop-others", no_argument, NULL, 'D' },       { NULL, 0, NULL, 0 },
	};
	struct enc_secret_src src = { 0 }, nsrc = { 0 };
	struct enc_secret *s = NULL, *ns = NULL;
	enum enc_secret_kind kind, nkind = ENC_SECRET_PASSPHRASE;
	struct vmfs_open_opts oo = { 0 };
	struct vmfs_info info;
	bool drop = false;
	struct vmfs *fs = NULL;
	char err[400];
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': src.key_file = optarg; break;
		case 'p': src.passphrase_file = optarg; break;
		case 'c': src.keycmd = optarg; break;
		case 'K': nsrc.key_file = optarg; break;
		case 'P': nsrc.passphrase_file = optarg; break;
		case 'C': nsrc.keycmd = optarg; break;
		case 'D': drop = true; break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return 2;
	}
	ret = enc_secret_get(&src, "Passphrase: ", false, &s, &kind, err, sizeof(err));
	if (!ret && enc_secret_src_set(&nsrc))
		ret = enc_secret_get(&nsrc, NULL, false, &ns, &nkind, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		goto out;
	}
	oo.secret = s;
	ret = vmfs_open(argv[optind], &oo, &fs, err, sizeof(err));
	if (ret) {
		tool_err("%s", err);
		goto out;
	}
	ret = vmfs_key_change(fs, s, ns, nkind, drop, change_progress, NULL, err, sizeof(err));
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r");
	if (ret) {
		tool_err("%s: %s", argv[optind], err);
	} else {
		vmfs_get_info(fs, &info);
		printf("datastore key changed: epoch %u, %u keyslot%s\n", info.key_epoch, info.keyslots,
		       info.keyslots == 1 ? "" : "s");
	}
out:
	if (fs && vmfs_close(fs) && !ret)
		ret = -EIO;
	enc_secret_free(s);
	enc_secret_free(ns);
	return ret ? key_exit(ret) : 0;
}

int cmd_key(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "change"))
		return cmd_key_change(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "list"))
		return cmd_key_list(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "add"))
		return cmd_key_add(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "remove"))
		return cmd_key_remove(argc - 1, argv + 1);
	usage(stderr);
	return 2;
}
