/*
 * Token buckets (see ratelimit.h). Tokens accrue at rate per second up to one
 * second's worth; time that did not yet make a whole token is kept (last_ns
 * moves only by the time the whole tokens took), so slow rates are exact.
 * Invariant: tokens <= rate for a limited bucket; it is below zero only after
 * a request larger than rate, and then no request goes until it is back to
 * what that request needs.
 */
#include "vmm/ratelimit.h"

#define NS 1000000000ull
#define RATE_MAX (1ull << 62)	/* tokens + rate cannot overflow */
#define LEN_MAX (1ull << 62)

void vmm_bucket_set(struct vmm_bucket *b, uint64_t rate, uint64_t now_ns)
{
	if (rate > RATE_MAX)
		rate = RATE_MAX;
	b->rate = rate;
	b->tokens = (int64_t)rate;
	b->last_ns = now_ns;
}

static void refill(struct vmm_bucket *b, uint64_t now_ns)
{
	uint64_t room;
	unsigned __int128 add;

	if (!b->rate || now_ns <= b->last_ns)
		return;
	room = (uint64_t)((int64_t)b->rate - b->tokens);
	add = (unsigned __int128)(now_ns - b->last_ns) * b->rate / NS;
	if (add >= room) {
		b->tokens = (int64_t)b->rate;
		b->last_ns = now_ns;
		return;
	}
	if (!add)
		return;	/* not a whole token yet: keep the time */
	b->tokens += (int64_t)add;
	b->last_ns += (uint64_t)(add * NS / b->rate);
}

/* Nanoseconds until b holds what a request of n needs, 0 when it does now. */
static uint64_t wait_ns(const struct vmm_bucket *b, uint64_t n, uint64_t now_ns)
{
	int64_t need;
	uint64_t missing, ns;

	if (!b->rate)
		return 0;
	need = (int64_t)(n < b->rate ? n : b->rate);
	if (b->tokens >= need)
		return 0;
	missing = (uint64_t)(need - b->tokens);
	/* The missing tokens accrue from last_ns on, not from now. */
	ns = (uint64_t)(((unsigned __int128)missing * NS + b->rate - 1) / b->rate);
	if (b->last_ns + ns <= now_ns)
		return 1;
	return b->last_ns + ns - now_ns;
}

uint64_t vmm_limiter_take(struct vmm_limiter *l, uint64_t len, uint64_t now_ns)
{
	uint64_t wb, wo;

	refill(&l->bytes, now_ns);
	refill(&l->ops, now_ns);
	wb = wait_ns(&l->bytes, len, now_ns);
	wo = wait_ns(&l->ops, 1, now_ns);
	if (wb || wo)
		return wb > wo ? wb : wo;
	if (l->bytes.rate)
		l->bytes.tokens -= (int64_t)(len < LEN_MAX ? len : LEN_MAX);
	if (l->ops.rate)
		l->ops.tokens -= 1;
	return 0;
}
