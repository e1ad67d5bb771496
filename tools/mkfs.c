/*
 * mkfs.vmfs: creates a vmfs datastore on a block device or a regular file.
 * Exit codes as mkfs(8): 0 success, 1 anything else (bad usage included).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mkfs.vmfs [-f] [-L LABEL] [-b BLOCKSIZE] [-H HOSTS] [-J JOURNALSIZE] [-T I,D,F,IO] [--size SIZE] DEVICE\n"
		   "  -s, --size SIZE          create or grow a sparse file of SIZE (e.g. 256M, 16T)\n"
		   "  -L, --label LABEL        datastore label (up to 63 bytes)\n"
		   "  -b, --block-size SIZE    file block size, 64K..4M, power of two (default 1M)\n"
		   "  -H, --hosts N            host slots, 1..2048 (default 2048)\n"
		   "  -J, --journal-size SIZE  per-host journal (default: 1/64 of the datastore, 4M..32M)\n"
		   "  -f, --force              overwrite an existing filesystem\n"
		   "  -U, --uuid UUID          datastore UUID (default: random)\n"
		   "  -T, --timing I,D,F,IO    cluster timings in ms: heartbeat interval, dead after,\n"
		   "                           fence after, I/O timeout (default 1000,8000,5000,2000)\n"
		   "  -q, --quiet              print nothing on success\n"
		   "      --encrypt            encrypt the datastore (docs/ENCRYPTION.md); keyslot 0 takes\n"
		   "                           the key from one of the next three, else a passphrase\n"
		   "                           asked twice on the terminal\n"
		   "      --key-file FILE      a key file (at least 32 bytes, e.g. from /dev/urandom)\n"
		   "      --passphrase-file FILE  a passphrase, one line\n"
		   "      --keycmd PROG        a program that prints the key (a KMS or TPM client)\n"
		   "      --kdf SPEC           argon2id[:t=N,m=SIZE,p=N] (passphrases; default t=3,m=256M,p=2)\n"
		   "                           or hkdf-sha256 (key files; their default)\n"
		   "      --key-label TEXT     a description of keyslot 0 (up to 64 bytes)\n"
		   "  -h, --help               print this help and exit\n"
		   "      --version            print the version and exit\n"
		   "exit: 0 created, 1 anything else (bad usage included)\n");
}

static bool parse_uuid(const char *s, uint8_t out[16])
{
	unsigned n = 0;

	for (; *s && n < 32; s++) {
		int v;
		if (*s == '-')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
			v = (*s | 0x20) - 'a' + 10;
		else
			return false;
		if (n % 2 == 0)
			out[n / 2] = (uint8_t)(v << 4);
		else
			out[n / 2] |= (uint8_t)v;
		n++;
	}
	return n == 32 && !*s;
}

/*
 * --size makes a missing file: it is made here (O_EXCL), and its device and
 * inode kept in *made, so that a mkfs that fails afterwards removes that file
 * and nothing else; a file that was there before is never removed. Returns
 * 1 made, 0 already there (or not asked to make it), -1 with a message.
 */
static int make_file(const char *path, struct stat *made)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0 || fstat(fd, made)) {
		tool_err("%s: cannot create it: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 1;
}

/* Removes the file make_file made, if path still names it. */
static void unmake_file(const char *path, const struct stat *made)
{
	struct stat st;

	if (!lstat(path, &st) && st.st_dev == made->st_dev && st.st_ino == made->st_ino && unlink(path))
		tool_err("%s: cannot remove the file made for the datastore: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },   { "label", required_argument, NULL, 'L' },
		{ "block-size", required_argument, NULL, 'b' }, { "hosts", required_argument, NULL, 'H' },
		{ "journal-size", required_argument, NULL, 'J' }, { "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },        { "uuid", required_argument, NULL, 'U' },
		{ "timing", required_argument, NULL, 'T' },  { "help", no_argument, NULL, 'h' },
		{ "encrypt", no_argument, NULL, 'E' },      { "key-file", required_argument, NULL, 'K' },
		{ "passphrase-file", required_argument, NULL, 'P' }, { "keycmd", required_argument, NULL, 'C' },
		{ "kdf", required_argument, NULL, 'D' },    { "key-label", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
	};
	struct enc_secret_src src = { 0 };
	struct enc_secret *secret = NULL;
	struct enc_kdf_params kdf;
	bool encrypt = false, kdf_set = false;
	struct vmfs_mkfs_opts o = { 0 };
	struct vmfs_open_opts oo = { .readonly = true };
	struct vmfs_info info;
	struct vmfs *fs;
	char err[256] = "", sz[32], uuid[37];
	bool quiet = false;
	uint8_t uuid_bytes[16];
	struct stat made_st;
	uint64_t v;
	int c, ret, made;

	tool_name = "mkfs.vmfs";
	while ((c = getopt_long(argc, argv, "s:L:b:H:J:U:T:fqh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (base_parse_size(optarg, &o.size) || !o.size) {
				tool_err("invalid size '%s'", optarg);
				return 1;
			}
			break;
		case 'L':
			o.label = optarg;
			break;
		case 'b':
			if (base_parse_size(optarg, &v) || v > UINT32_MAX) {
				tool_err("invalid block size '%s'", optarg);
				return 1;
			}
			o.block_size = (uint32_t)v;
			break;
		case 'H':
			if (!tool_parse_u64(optarg, &v) || v == 0 || v > 2048) {
				tool_err("invalid host count '%s' (1..2048)", optarg);
				return 1;
			}
			o.host_slots = (uint32_t)v;
			break;
		case 'J':
			if (base_parse_size(optarg, &o.journal_size) || !o.journal_size) {
				tool_err("invalid journal size '%s'", optarg);
				return 1;
			}
			break;
		case 'U':
			if (!parse_uuid(optarg, uuid_bytes)) {
				tool_err("invalid UUID '%s'", optarg);
				return 1;
			}
			o.uuid = uuid_bytes;
			break;
		case 'T': {
			unsigned t[4];
			char end;
			if (sscanf(optarg, "%u,%u,%u,%u%c", &t[0], &t[1], &t[2], &t[3], &end) != 4 ||
			    !t[0] || !t[1] || !t[2] || !t[3] || t[0] > 600000 || t[1] > 600000 || t[2] > 600000 ||
			    t[3] > 600000) {
				tool_err("invalid timing '%s' (INTERVAL,DEAD,FENCE,IO_TIMEOUT in ms)", optarg);
				return 1;
			}
			o.hb_interval_ms = t[0];
			o.hb_dead_ms = t[1];
			o.fence_ms = t[2];
			o.io_timeout_ms = t[3];
			break;
		}
		case 'f':
			o.force = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'E':
			encrypt = true;
			break;
		case 'K':
			src.key_file = optarg;
			break;
		case 'P':
			src.passphrase_file = optarg;
			break;
		case 'C':
			src.keycmd = optarg;
			break;
		case 'D':
			if (enc_kdf_parse(optarg, &kdf, err, sizeof(err))) {
				tool_err("%s", err);
				return 1;
			}
			kdf_set = true;
			break;
		case 'l':
			o.key_label = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			tool_version();
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 1;
	}
	if (!encrypt && (enc_secret_src_set(&src) || kdf_set || o.key_label)) {
		tool_err("key options without --encrypt");
		return 1;
	}
	if (encrypt) {
		ret = enc_secret_get(&src, "Passphrase for the new datastore: ", true, &secret, &o.key_kind, err,
				     sizeof(err));
		if (ret) {
			tool_err("%s", err);
			return 1;
		}
		o.secret = secret;
		o.kdf = kdf_set ? &kdf : NULL;
	}
	made = o.size ? make_file(argv[optind], &made_st) : 0;
	if (made < 0) {
		enc_secret_free(secret);
		return 1;
	}
	ret = vmfs_mkfs(argv[optind], &o, err, sizeof(err));
	enc_secret_free(secret);
	if (ret) {
		tool_err("%s", err[0] ? err : strerror(-ret));
		if (made)
			unmake_file(argv[optind], &made_st);
		return 1;
	}
	if (quiet)
		return 0;
	ret = vmfs_open(argv[optind], &oo, &fs, err, sizeof(err));
	if (ret) {
		tool_err("created, but cannot read it back: %s", err);
		return 1;
	}
	vmfs_get_info(fs, &info);
	base_uuid_fmt(info.uuid, uuid);
	printf("created vmfs datastore on %s\n", argv[optind]);
	printf("  uuid %s, label '%s', size %s\n", uuid, info.label, base_fmt_size(info.size, sz, sizeof(sz)));
	printf("  %llu file blocks of %u KiB, %u host slots, %llu KiB journal per host\n",
	       (unsigned long long)info.data_blocks, info.block_size >> 10, info.host_slots,
	       (unsigned long long)(info.journal_size >> 10));
	if (info.encrypted)
		printf("  encrypted (AES-256-XTS), keyslot 0 %s\n",
		       o.key_kind == ENC_SECRET_KEYFILE ? "opens with the key given" : "opens with the passphrase given");
	vmfs_close(fs);
	return 0;
}
