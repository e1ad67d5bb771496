/*
 * vmfs-bench: drives one file of a datastore through libvmfs's asynchronous
 * queue (io_uring underneath) at a given depth, as fio does for a raw device,
 * and prints one JSON line: {"mode":..., "bs":..., "qd":..., "mbps":..., "iops":...}.
 *
 *   vmfs-bench DEVICE PATH MODE BS QD SIZE SECONDS [--key-file F]
 *   MODE: prefill | seqwrite | seqread | randread | randwrite | thinwrite | extent
 *
 * prefill writes PATH whole (1 MiB at a time); thinwrite creates PATH anew as a
 * sparse file of SIZE and writes each BS block once in random order. extent
 * opens the datastore read-only and prints where PATH's first SIZE bytes lie on
 * the device: {"dev_off":..., "contiguous":true|false} (bench/io then measures
 * the raw file on those very bytes).
 *
 * With VMFS_BENCH_HUGETLB=1 the I/O buffers come from reserved huge pages
 * (MAP_HUGETLB), as fio's --mem=shmhuge gives fio's: a 1 MiB transfer from
 * 4 KiB pages is as many segments as its pages happen to be scattered, and
 * past the device's max_segments (254 on virtio-blk) the block layer splits it
 * in two requests. bench/io gives both sides the same memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/cli.h"
#include "vmfs/vmfs.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Prints where [0, size) of ino lies on the device, checked BS at a time. */
static int print_extent(struct vmfs *fs, uint64_t ino, uint64_t bs, uint64_t size)
{
	struct vmfs_bmap_info first, b;
	bool contiguous = true;
	int ret = vmfs_bmap(fs, ino, 0, &first);

	if (ret)
		return ret;
	contiguous = !first.hole;
	for (uint64_t off = bs; contiguous && off < size; off += bs) {
		ret = vmfs_bmap(fs, ino, off, &b);
		if (ret)
			return ret;
		contiguous = !b.hole && b.dev_off == first.dev_off + off;
	}
	printf("{\"mode\":\"extent\",\"dev_off\":%llu,\"contiguous\":%s}\n",
	       (unsigned long long)first.dev_off, contiguous ? "true" : "false");
	return 0;
}

static int open_file(struct vmfs *fs, const char *path, bool fresh, uint64_t size, uint64_t *ino)
{
	const char *slash = strrchr(path, '/');
	char dir[1024];
	uint64_t d;
	struct vmfs_stat st;
	int ret;

	if (!slash || slash - path >= (long)sizeof(dir))
		return -EINVAL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = 0;
	ret = vmfs_resolve(fs, dir[0] ? dir : "/", &d);
	if (ret)
		return ret;
	if (fresh)
		vmfs_unlink(fs, d, slash + 1);
	ret = vmfs_lookup(fs, d, slash + 1, &st);
	if (ret == -ENOENT)
		ret = vmfs_mknod(fs, d, slash + 1, S_IFREG | 0644, 0, 0, &st);
	if (ret)
		return ret;
	*ino = st.ino;
	if (fresh) {
		struct vmfs_stat in = { .size = size };
		ret = vmfs_setattr(fs, st.ino, &in, VMFS_SET_SIZE, NULL);
	}
	return ret;
}

/* I/O buffers of len bytes, page-aligned; from huge pages when asked to. NULL: none to be had. */
static uint8_t *bufs_alloc(size_t len, bool huge)
{
	void *p;

	if (huge) {
		p = mmap(NULL, base_round_up(len, BASE_HUGE_PAGE), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	return posix_memalign(&p, 4096, len) ? NULL : p;
}

static void bufs_free(uint8_t *p, size_t len, bool huge)
{
	if (!p)
		return;
	if (huge)
		munmap(p, base_round_up(len, BASE_HUGE_PAGE));
	else
		free(p);
}

int main(int argc, char **argv)
{
	struct vmfs_open_opts oo = { .commit_ms = 1000 };
	struct vmfs_aio_req *reqs, **done;
	struct vmfs_aio *q;
	struct vmfs *fs;
	uint64_t bs, qd, size, secs, ino, nblk, issued = 0, completed = 0, bytes = 0, *perm = NULL;
	unsigned *freeslots, nfree;
	uint8_t *bufs;
	char err[256];
	const char *mode;
	bool write, seq, thin, prefill, first, once, huge = getenv("VMFS_BENCH_HUGETLB") != NULL;
	uint64_t fblk = 0;      /* firstwrite: the file's block size */
	double t0, el;
	int ret;

	struct enc_secret_src src = { 0 };
	struct enc_secret *secret = NULL;
	enum enc_secret_kind kind;

	tool_name = "vmfs-bench";
	/* an encrypted datastore's key (--key-file F, --passphrase-file F, --keycmd PROG) */
	if (enc_secret_src_take(&argc, argv, &src, err, sizeof(err)) ||
	    (enc_secret_src_set(&src) && enc_secret_get(&src, NULL, false, &secret, &kind, err, sizeof(err)))) {
		tool_err("%s", err);
		return 2;
	}
	oo.secret = secret;
	if (argc != 8 || base_parse_size(argv[4], &bs) || !tool_parse_u64(argv[5], &qd) ||
	    base_parse_size(argv[6], &size) || !tool_parse_u64(argv[7], &secs) || !bs || !qd || qd > 1024 ||
	    size < bs) {
		fprintf(stderr, "usage: vmfs-bench DEVICE PATH MODE BS QD SIZE SECONDS\n");
		return 2;
	}
	mode = argv[3];
	prefill = !strcmp(mode, "prefill");
	thin = !strcmp(mode, "thinwrite");
	/*
	 * First writes after a snapshot (bench/snap): one pass over an existing,
	 * written file whose blocks a snapshot shares. firstwrite: one BS write
	 * into each file block, in random order, at a random place in the block
	 * (every write is the first into its shared block); seqonce: the file
	 * once, in order.
	 */
	first = !strcmp(mode, "firstwrite");
	once = !strcmp(mode, "seqonce");
	write = prefill || thin || first || once || !strcmp(mode, "seqwrite") || !strcmp(mode, "randwrite");
	seq = prefill || once || !strncmp(mode, "seq", 3);
	oo.readonly = !strcmp(mode, "extent");
	if (!write && strcmp(mode, "seqread") && strcmp(mode, "randread") && !oo.readonly) {
		tool_err("unknown mode '%s'", mode);
		return 2;
	}
	if (prefill)
		bs = 1 << 20;
	/* before the datastore is opened: a run that cannot start leaves it untouched */
	reqs = calloc(qd, sizeof(*reqs));
	done = calloc(qd, sizeof(*done));
	freeslots = calloc(qd, sizeof(*freeslots));
	bufs = bufs_alloc(qd * bs, huge);
	if (!bufs || !reqs || !done || !freeslots) {
		if (!bufs)
			tool_err(huge ? "no huge pages for %llu bytes of buffers (/proc/sys/vm/nr_hugepages)"
				      : "out of memory for %llu bytes of buffers", (unsigned long long)(qd * bs));
		else
			tool_err("out of memory");
		goto err_free;
	}
	ret = vmfs_open(argv[1], &oo, &fs, err, sizeof(err));
	enc_secret_free(secret);
	secret = NULL;
	if (ret) {
		tool_err("%s", err);
		goto err_free;
	}
	ret = open_file(fs, argv[2], thin || prefill, size, &ino);
	if (ret) {
		tool_err("%s: %s", argv[2], strerror(-ret));
		goto err_close;
	}
	if (oo.readonly) {
		ret = print_extent(fs, ino, bs, size);
		if (ret) {
			tool_err("%s: %s", argv[2], strerror(-ret));
			goto err_close;
		}
		goto out_close;
	}
	nblk = size / bs;
	if (first) {
		struct vmfs_stat st;
		ret = vmfs_getattr(fs, ino, &st);
		if (ret || st.size < size || st.blksize < bs) {
			tool_err("%s: firstwrite wants a written file of at least %llu bytes", argv[2],
				 (unsigned long long)size);
			goto err_close;
		}
		fblk = st.blksize;
		nblk = size / fblk;
	}
	if (thin || first) {
		perm = malloc(nblk * sizeof(*perm));
		if (!perm) {
			tool_err("out of memory");
			goto err_close;
		}
		for (uint64_t i = 0; i < nblk; i++)
			perm[i] = i;
		for (uint64_t i = nblk - 1; i > 0; i--) {
			uint64_t j = next_rand() % (i + 1), t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
	}
	for (uint64_t i = 0; i < qd * bs; i++)
		bufs[i] = (uint8_t)(next_rand() | 1);
	for (unsigned i = 0; i < qd; i++)
		freeslots[i] = i;
	nfree = (unsigned)qd;
	ret = vmfs_aio_new(fs, (unsigned)qd, &q);
	if (ret) {
		tool_err("aio queue: %s", strerror(-ret));
		goto err_close;
	}
	t0 = (double)base_mono_ns() / 1e9;
	for (;;) {
		el = (double)base_mono_ns() / 1e9 - t0;
		bool more = (prefill || thin || first || once) ? issued < nblk : el < (double)secs;
		while (more && nfree) {
			unsigned s = freeslots[--nfree];
			uint64_t blk = thin || first ? perm[issued] : seq ? issued % nblk : next_rand() % nblk;
			uint64_t off = first ? blk * fblk + next_rand() % (fblk / bs) * bs : blk * bs;
			reqs[s] = (struct vmfs_aio_req){ .ino = ino, .write = write, .buf = bufs + (size_t)s * bs,
							 .len = bs, .off = off };
			ret = vmfs_aio_submit(q, &reqs[s]);
			if (ret) {
				tool_err("submit: %s", strerror(-ret));
				goto err_aio;
			}
			issued++;
			more = (prefill || thin || first || once) ? issued < nblk : true;
		}
		if (completed == issued && !more)
			break;
		int n = vmfs_aio_reap(q, 1, done, (unsigned)qd);
		if (n < 0) {
			tool_err("reap: %s", strerror(-n));
			goto err_aio;
		}
		for (int i = 0; i < n; i++) {
			if (done[i]->res != (ssize_t)bs) {
				tool_err("I/O at %llu: %s", (unsigned long long)done[i]->off,
					 done[i]->res < 0 ? strerror((int)-done[i]->res) : "short");
				goto err_aio;
			}
			bytes += bs;
			freeslots[nfree++] = (unsigned)(done[i] - reqs);
		}
		completed += (uint64_t)n;
	}
	/*
	 * Timed like fio's O_DIRECT runs, which end without an fsync: the device
	 * has every write (and this host's cache none), but the backing store's
	 * own write-back cache is flushed only after the clock stops.
	 */
	el = (double)base_mono_ns() / 1e9 - t0;
	if (write)
		vmfs_fsync(fs, ino, false);
	vmfs_aio_free(q);
	printf("{\"mode\":\"%s\",\"bs\":%llu,\"qd\":%llu,\"seconds\":%.2f,\"mbps\":%.1f,\"iops\":%.0f}\n", mode,
	       (unsigned long long)bs, (unsigned long long)qd, el, (double)bytes / el / 1e6, (double)completed / el);
out_close:
	ret = vmfs_close(fs) ? 1 : 0;
	goto out_free;

err_aio:
	vmfs_aio_free(q); /* waits for what is in flight: no buffer is written after it is freed */
err_close:
	vmfs_close(fs);
err_free:
	ret = 1;
out_free:
	enc_secret_free(secret);
	bufs_free(bufs, qd * bs, huge);
	free(reqs);
	free(done);
	free(freeslots);
	free(perm);
	return ret;
}
