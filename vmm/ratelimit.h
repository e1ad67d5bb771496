/*
 * Token buckets for per-disk I/O rate limits, as Firecracker has them: one
 * bucket for bytes per second and one for operations per second. The clock
 * is the caller's (nanoseconds, monotonic), so the logic is tested with a
 * fake one (tests/unit/test_vmm.c). Not thread-safe: the caller locks.
 */
#ifndef VMM_RATELIMIT_H
#define VMM_RATELIMIT_H

#include <stdint.h>

struct vmm_bucket {
	uint64_t rate;            /* tokens per second; 0: unlimited */
	int64_t tokens;           /* below 0 after a request larger than one second's worth */
	uint64_t last_ns;         /* when tokens was last brought up to date */
};

struct vmm_limiter {
	struct vmm_bucket bytes, ops;
};

/*
 * Sets a bucket's rate (0: unlimited) and fills it: a bucket holds at most one
 * second's worth of tokens, which is also the largest burst.
 */
void vmm_bucket_set(struct vmm_bucket *b, uint64_t rate, uint64_t now_ns);

/*
 * Takes an operation of len bytes from both buckets, or from neither: returns
 * 0 when it may go now, else how many nanoseconds to wait before asking
 * again. A request needs min(its size, one second's worth) tokens at hand;
 * a larger one then leaves the bucket in debt, so big requests are not
 * starved and the long-run rate still holds.
 */
uint64_t vmm_limiter_take(struct vmm_limiter *l, uint64_t len, uint64_t now_ns);

#endif
