/*
 * guest-io: the load generator bench/vmm runs inside its guests (a static
 * binary in their initramfs: fio links some sixty libraries). It drives a
 * block device with O_DIRECT through Linux AIO (io_submit, io_getevents),
 * QD requests in flight at once, as fio's libaio engine does, and prints one
 * JSON line shaped like vmfs-bench's: {"mode":...,"bs":...,"qd":...,"mbps":...,"iops":...}.
 *
 *   guest-io DEVICE MODE BS QD SECONDS
 *   MODE: seqread | seqwrite | randread | randwrite
 *
 * Sequential modes walk the device from 0, each request taking the next BS
 * and wrapping at the end; random ones pick BS-aligned offsets (xorshift).
 * It runs for SECONDS, then waits for what is in flight. Writes carry a
 * non-zero pattern, so a thin disk cannot keep them as holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif
#define MAX_QD 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t size_arg(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return v;
}

int main(int argc, char **argv)
{
	static struct iocb cb[MAX_QD];
	static bool busy[MAX_QD];
	struct iocb *one[1];
	struct io_event ev[MAX_QD];
	aio_context_t ctx = 0;
	uint64_t bs, qd, secs, size = 0, next = 0, rng = 0x9E3779B97F4A7C15ull, done = 0;
	unsigned inflight = 0, i;
	bool rnd, wr;
	double t0, end;
	int fd;

	if (argc != 6 || !(bs = size_arg(argv[3])) || bs % 512 || !(qd = strtoull(argv[4], NULL, 10)) || qd > MAX_QD ||
	    !(secs = strtoull(argv[5], NULL, 10))) {
		fprintf(stderr, "usage: guest-io DEVICE seqread|seqwrite|randread|randwrite BS QD SECONDS\n");
		return 2;
	}
	rnd = !strncmp(argv[2], "rand", 4);
	wr = strstr(argv[2], "write") != NULL;
	fd = open(argv[1], (wr ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) || size < bs) {
		fprintf(stderr, "guest-io: %s: %s\n", argv[1], fd < 0 ? strerror(errno) : "too small");
		return 1;
	}
	size -= size % bs;
	if (syscall(SYS_io_setup, qd, &ctx)) {
		perror("guest-io: io_setup");
		return 1;
	}
	for (i = 0; i < qd; i++) {
		void *buf;

		if (posix_memalign(&buf, 4096, bs))
			return 1;
		memset(buf, 0x5a + i, bs);
		cb[i] = (struct iocb){ .aio_fildes = (uint32_t)fd, .aio_lio_opcode = wr ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,
				       .aio_buf = (uint64_t)(uintptr_t)buf, .aio_nbytes = bs, .aio_data = i };
	}
	t0 = now();
	end = t0 + (double)secs;
	for (;;) {
		bool go = now() < end;
		int n;

		while (go && inflight < qd) {
			struct iocb *c = NULL;

			for (i = 0; i < qd && !c; i++)
				if (!busy[i])
					c = &cb[i];
			if (rnd) {
				rng ^= rng << 13;
				rng ^= rng >> 7;
				rng ^= rng << 17;
				c->aio_offset = (int64_t)((rng % (size / bs)) * bs);
			} else {
				c->aio_offset = (int64_t)next;
				next = next + bs >= size ? 0 : next + bs;
			}
			busy[c - cb] = true;
			one[0] = c;
			if (syscall(SYS_io_submit, ctx, 1, one) != 1) {
				perror("guest-io: io_submit");
				return 1;
			}
			inflight++;
		}
		if (!inflight)
			break;
		n = (int)syscall(SYS_io_getevents, ctx, 1, MAX_QD, ev, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("guest-io: io_getevents");
			return 1;
		}
		for (i = 0; i < (unsigned)n; i++) {
			if (ev[i].res != (int64_t)bs) {
				fprintf(stderr, "guest-io: an I/O returned %lld\n", (long long)ev[i].res);
				return 1;
			}
			busy[ev[i].data] = false;
			inflight--;
			done++;
		}
	}
	t0 = now() - t0;
	printf("{\"mode\":\"%s\",\"bs\":%llu,\"qd\":%llu,\"mbps\":%.1f,\"iops\":%.0f,\"seconds\":%.2f}\n", argv[2],
	       (unsigned long long)bs, (unsigned long long)qd, (double)done * (double)bs / t0 / 1e6, (double)done / t0, t0);
	return 0;
}
