/*
 * The deterministic simulator of tests/unit/test_lockmgr.c (see sim.h).
 *
 * The simulator is single-threaded: each simulated host is two ucontext
 * fibers (a worker and a renewer, as a real host has a renewal thread), and
 * every lk_io call of a fiber is a scheduling point. Fibers were chosen over
 * a step-driven core so that the code under test is the production code,
 * unmodified and blocking as it is in production. Time is virtual: one global
 * real time, and a clock per host with its own offset and a rate within the
 * 1% drift bound. An I/O takes a random latency up to the io_timeout bound on
 * its host's clock; each sector of it lands (write) or is sampled (read) at a
 * random instant between submission and completion, so I/Os of different
 * hosts interleave, reorder and tear across sectors. Hosts crash (their
 * in-flight writes still land; from then on their I/O has no effect and they
 * are fenced, and the code unwinds without touching the disk before the host
 * reboots as a new incarnation) and pause (not scheduled while virtual time
 * passes). The same PRNG seed gives the same run.
 *
 * The checker runs after every step: no two hosts that are not fenced may
 * believe they hold conflicting locks on one resource, or the same bucket
 * mutex; a counter kept on the disk and incremented under an EX lock must
 * never lose an update; recovery must only ever be asked for a host that is
 * crashed or fenced. Tests with a deliberately broken protocol (no delta
 * delay, no Disk Paxos phase 1) must make it report a violation.
 */
#include "tests/unit/lockmgr/sim.h"
#include "base/base.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif


#define SIM_MAX_HOSTS 6
#define SIM_MAX_BUCKETS 4
#define SIM_MAX_BELIEFS 4
#define SIM_STACK (512u << 10)

struct sim;
struct shost;

/*
 * Fiber switches: on x86-64 a few instructions saving the callee-saved
 * registers and the stack pointer (swapcontext makes a sigprocmask system call
 * at every switch, which was most of the simulator's run time); elsewhere
 * ucontext.
 */
#if defined(__x86_64__) && !defined(SIM_UCONTEXT)
#define SIM_ASM_SWITCH 1
void sim_switch(void **save_sp, void *load_sp);
__asm__(".text\n"
	".globl sim_switch\n"
	".type sim_switch, @function\n"
	"sim_switch:\n"
	"\tpushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq %rsi, %rsp\n"
	"\tpopq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n"
	"\tret\n"
	".size sim_switch, .-sim_switch\n");
#endif

struct fiber {
#ifdef SIM_ASM_SWITCH
	void *sp;
#else
	ucontext_t ctx;
#endif
	void *stack;
	bool done;
	struct shost *host;
	void (*fn)(struct shost *);
	void *fake_stack;
};

enum ev_type { EV_WAKE, EV_PART };

struct io_op {
	struct shost *host;
	bool write;
	uint64_t off;
	size_t len;
	uint8_t *buf;           /* read: the caller's buffer; write: our copy */
	uint8_t *part_of;       /* per sector: which of the two instants moves it */
	unsigned parts_left;
	bool counter;           /* the workload's counter write */
	bool failed;            /* lands, but its host is told -EIO */
	uint64_t expect;        /* the value its host read */
};

struct event {
	uint64_t t, seq;
	enum ev_type type;
	struct fiber *f;
	struct io_op *op;
	unsigned part;
};

struct belief {
	uint64_t res;
	enum lk_mode mode;
};

struct shost {
	struct sim *sim;
	unsigned id;
	uint64_t clk_t0;        /* clock: local = clk_l0 + (T - clk_t0) * (1 + ppm / 1e6) */
	uint64_t clk_l0;
	int64_t ppm;            /* changes now and then, always within the drift bound */
	struct lk_io io;
	bool crashed;
	uint64_t paused_until;
	struct lk_host *lk;     /* the current incarnation, NULL between */
	unsigned slot;
	uint64_t gen;
	struct fiber *worker, *renewer;
	bool renew_stop;
	struct belief bel[SIM_MAX_BELIEFS];
	unsigned nbel;
	bool mutex[SIM_MAX_BUCKETS];
	uint64_t counter_read;
	uint64_t rng;
};

struct sim {
	uint64_t seed, rng, now, seq;
	struct sim_params p;
	struct lk_geometry geo;
	uint8_t *disk;
	size_t disk_size;
	uint64_t counter_off;
	uint64_t counter_landed;
	struct event *heap;
	size_t nheap, capheap;
	struct shost hosts[SIM_MAX_HOSTS];
#ifdef SIM_ASM_SWITCH
	void *main_sp;
#else
	ucontext_t main_ctx;
#endif
	const void *main_stack_bottom;
	size_t main_stack_size;
	struct fiber *cur;
	unsigned live_fibers;
	char violation[512];
	bool stopping;          /* after a violation: every host crashed, fibers unwind */
	bool verbose;
	struct sim_stats st;
};

static void sim_violation(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_violation(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->violation[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->violation, sizeof(s->violation), fmt, ap);
	va_end(ap);
}

static void sim_log(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_log(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->verbose)
		return;
	fprintf(stderr, "%10.3f ", (double)s->now / 1e9);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- event heap: (t, seq) order, seq increasing: deterministic ---- */

static bool ev_less(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct event e)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? 2 * s->capheap : 256;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
		REQUIRE(s->heap);
	}
	e.seq = s->seq++;
	i = s->nheap++;
	while (i && ev_less(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct event ev_pop(struct sim *s)
{
	struct event top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_less(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_less(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* ---- fibers ---- */

static struct fiber *fiber_starting;   /* the fiber a first switch enters */

static void fiber_to_main(struct fiber *f, bool dying)
{
	struct sim *s = f->host->sim;
#ifdef SIM_ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &f->fake_stack, s->main_stack_bottom, s->main_stack_size);
#endif
	(void)dying;
#ifdef SIM_ASM_SWITCH
	sim_switch(&f->sp, s->main_sp);
#else
	swapcontext(&f->ctx, &s->main_ctx);
#endif
#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(f->fake_stack, &s->main_stack_bottom, &s->main_stack_size);
#endif
}

static void fiber_run(struct sim *s, struct fiber *f)
{
	void *fake = NULL;

	s->cur = f;
	fiber_starting = f;
#ifdef SIM_ASAN
	__sanitizer_start_switch_fiber(&fake, f->stack, SIM_STACK);
#endif
#ifdef SIM_ASM_SWITCH
	sim_switch(&s->main_sp, f->sp);
#else
	swapcontext(&s->main_ctx, &f->ctx);
#endif
#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	(void)fake;
	s->cur = NULL;
}

static void fiber_entry(unsigned lo, unsigned hi)
{
	struct fiber *f = (struct fiber *)(((uintptr_t)hi << 32) | lo);
	struct sim *s;

	if (!f)
		f = fiber_starting;
	s = f->host->sim;

#ifdef SIM_ASAN
	__sanitizer_finish_switch_fiber(NULL, &s->main_stack_bottom, &s->main_stack_size);
#endif
	f->fn(f->host);
	f->done = true;
	s->live_fibers--;
	fiber_to_main(f, true);
	abort();        /* never resumed */
}

#ifdef SIM_ASM_SWITCH
static void fiber_start(void)
{
	fiber_entry(0, 0);
}
#endif

/* Fiber stacks are kept for reuse: mapping and unmapping one per fiber cost more than running it. */
static void *stack_pool[32];
static unsigned stack_pool_n;

static void *stack_get(void)
{
	void *st;

	if (stack_pool_n)
		return stack_pool[--stack_pool_n];
	st = mmap(NULL, SIM_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(st != MAP_FAILED);
	return st;
}

static void stack_put(void *st)
{
	if (stack_pool_n < base_array_size(stack_pool))
		stack_pool[stack_pool_n++] = st;
	else
		munmap(st, SIM_STACK);
}

static struct fiber *fiber_new(struct shost *h, void (*fn)(struct shost *), uint64_t start)
{
	struct fiber *f = calloc(1, sizeof(*f));
	uintptr_t p = (uintptr_t)f;

	REQUIRE(f);
	f->host = h;
	f->fn = fn;
	f->stack = stack_get();
#ifdef SIM_ASM_SWITCH
	{
		/* six zeroed registers, then fiber_start as the return address, the entry aligned as after a call */
		uintptr_t *top = (uintptr_t *)((uint8_t *)f->stack + SIM_STACK - 64);

		top[6] = (uintptr_t)fiber_start;
		f->sp = top;
		memset(top, 0, 6 * sizeof(*top));
		(void)p;
	}
#else
	getcontext(&f->ctx);
	f->ctx.uc_stack.ss_sp = f->stack;
	f->ctx.uc_stack.ss_size = SIM_STACK;
	f->ctx.uc_link = NULL;
	makecontext(&f->ctx, (void (*)(void))fiber_entry, 2, (unsigned)(p & 0xffffffffu), (unsigned)(p >> 32));
#endif
	h->sim->live_fibers++;
	ev_push(h->sim, (struct event){ .t = start, .type = EV_WAKE, .f = f });
	return f;
}

static void fiber_free(struct fiber *f)
{
	if (!f)
		return;
	stack_put(f->stack);
	free(f);
}

/* The running fiber waits until real time t (later if its host is paused). */
static void fiber_wait_until(struct sim *s, uint64_t t)
{
	struct fiber *f = s->cur;

	ev_push(s, (struct event){ .t = t, .type = EV_WAKE, .f = f });
	fiber_to_main(f, false);
}

/* ---- host clocks ---- */

static uint64_t host_clock(const struct shost *h, uint64_t t)
{
	uint64_t dt = t - h->clk_t0;

	return h->clk_l0 + dt + (uint64_t)((__int128)dt * h->ppm / 1000000);
}

/* A new clock rate from now on; the clock stays continuous and monotonic. */
static void host_set_rate(struct shost *h, uint64_t now, int64_t ppm)
{
	h->clk_l0 = host_clock(h, now);
	h->clk_t0 = now;
	h->ppm = ppm;
}

/* Real duration for a local duration on h's clock (rounded up). */
static uint64_t host_to_real(const struct shost *h, uint64_t local)
{
	return (uint64_t)(((__int128)local * 1000000 + (1000000 + h->ppm) - 1) / (1000000 + h->ppm));
}

/* ---- lk_io of a simulated host ---- */

static uint64_t sim_now(void *ctx)
{
	struct shost *h = ctx;

	if (h->crashed)
		return UINT64_MAX / 2;  /* a crashed host is fenced: its code unwinds */
	return host_clock(h, h->sim->now);
}

static void sim_sleep(void *ctx, uint64_t ns)
{
	struct shost *h = ctx;
	struct sim *s = h->sim;

	fiber_wait_until(s, s->now + host_to_real(h, ns) + 1);
}

static void sim_random(void *ctx, void *buf, size_t len)
{
	struct shost *h = ctx;

	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)rng_next(&h->rng);
}

/* I/O latency on the host's clock: mostly fast, sometimes slow, rarely near the bound. */
static uint64_t sim_latency(struct sim *s, struct shost *h)
{
	uint64_t bound = (uint64_t)s->p.tim.io_timeout_ms * MS, r = rng_next(&s->rng) % 1000;

	if (r < 850)
		return rng_range(&s->rng, 50000, 2 * MS);
	if (r < 985)
		return rng_range(&s->rng, 2 * MS, bound / 10);
	(void)h;
	return rng_range(&s->rng, bound / 10, bound - bound / 40);     /* room for a rate change in flight */
}

static void op_part(struct sim *s, struct io_op *op, unsigned part)
{
	uint32_t ss = s->geo.sector_size;

	for (size_t i = 0; i < op->len / ss; i++) {
		if (op->part_of[i] != part)
			continue;
		if (op->write)
			memcpy(s->disk + op->off + i * ss, op->buf + i * ss, ss);
		else
			memcpy(op->buf + i * ss, s->disk + op->off + i * ss, ss);
	}
	if (--op->parts_left)
		return;
	if (op->write)
		free(op->buf);
	free(op->part_of);
	free(op);
}

static int sim_io(struct shost *h, bool write, uint64_t off, void *buf, size_t len)
{
	struct sim *s = h->sim;
	uint32_t ss = s->geo.sector_size;
	uint64_t lat, t_end, t_at[2];
	struct io_op *op;
	bool failed;

	REQUIRE(off % ss == 0 && len % ss == 0 && len);
	REQUIRE((uintptr_t)buf % 4096 == 0);  /* the lk_io contract (O_DIRECT) */
	REQUIRE(off + len <= s->disk_size);
	if (h->crashed)
		return -EIO;
	s->st.ios++;
	op = calloc(1, sizeof(*op));
	REQUIRE(op);
	op->host = h;
	op->write = write;
	op->off = off;
	op->len = len;
	op->part_of = malloc(len / ss);
	REQUIRE(op->part_of);
	if (write) {
		op->buf = malloc(len);
		REQUIRE(op->buf);
		memcpy(op->buf, buf, len);
		if (off == s->counter_off) {
			op->counter = true;
			op->expect = h->counter_read;
		}
	} else {
		op->buf = buf;
	}
	lat = host_to_real(h, sim_latency(s, h));
	t_end = s->now + lat;
	if (rng_next(&s->rng) % s->p.ioerr_one_in == 0) {
		/* an I/O error: a read returns nothing, a write may or may not have landed */
		s->st.io_errors++;
		if (!write || rng_next(&s->rng) % 2) {
			free(write ? op->buf : NULL);
			free(op->part_of);
			free(op);
			fiber_wait_until(s, t_end);
			return -EIO;
		}
		op->failed = true;
	}
	t_at[0] = rng_range(&s->rng, s->now, t_end);
	t_at[1] = rng_range(&s->rng, s->now, t_end);
	op->parts_left = len / ss > 1 ? 2 : 1;
	for (size_t i = 0; i < len / ss; i++)
		op->part_of[i] = op->parts_left == 2 ? (uint8_t)(rng_next(&s->rng) & 1) : 0;
	for (unsigned p = 0; p < op->parts_left; p++)
		ev_push(s, (struct event){ .t = t_at[p], .type = EV_PART, .op = op, .part = p });
	failed = op->failed;    /* op may be freed by its last part before we resume */
	fiber_wait_until(s, t_end);
	return h->crashed || failed ? -EIO : 0;
}

static int sim_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	return sim_io(ctx, false, off, buf, len);
}

static int sim_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	return sim_io(ctx, true, off, (void *)buf, len);
}

/* ---- the checker ---- */

static bool sim_modes_conflict(enum lk_mode a, enum lk_mode b)
{
	return a == LK_EX || b == LK_EX || a != b;
}

/* A host counts while it runs, is joined and may still write. */
static bool host_counts(struct shost *h)
{
	return !h->crashed && h->lk && lk_write_ok(h->lk);
}

static void sim_check(struct sim *s)
{
	for (unsigned i = 0; i < s->p.hosts; i++) {
		struct shost *a = &s->hosts[i];

		if (!host_counts(a))
			continue;
		for (unsigned j = i + 1; j < s->p.hosts; j++) {
			struct shost *b = &s->hosts[j];

			if (!host_counts(b))
				continue;
			for (unsigned x = 0; x < a->nbel; x++)
				for (unsigned y = 0; y < b->nbel; y++)
					if (a->bel[x].res == b->bel[y].res &&
					    sim_modes_conflict(a->bel[x].mode, b->bel[y].mode))
						sim_violation(s, "hosts %u and %u both hold 0x%" PRIx64
							      " (modes %d, %d) at %.6f s", i, j, a->bel[x].res,
							      a->bel[x].mode, b->bel[y].mode, (double)s->now / 1e9);
			for (unsigned k = 0; k < s->p.nbuckets; k++)
				if (a->mutex[k] && b->mutex[k])
					sim_violation(s, "hosts %u and %u both hold the mutex of bucket %u at %.6f s", i,
						      j, k, (double)s->now / 1e9);
		}
	}
}

static void sim_trace(void *arg, enum lk_trace_event ev, unsigned bucket, uint64_t lver)
{
	struct shost *h = arg;

	if (ev == LK_TRACE_MUTEX_ACQUIRED) {
		REQUIRE((bucket) < (SIM_MAX_BUCKETS));
		h->mutex[bucket] = true;
		h->sim->st.mutexes++;
		sim_check(h->sim);
	} else if (ev == LK_TRACE_MUTEX_RELEASED) {
		h->mutex[bucket] = false;
	} else if (ev == LK_TRACE_RECOVERED) {
		h->sim->st.recoveries++;
	}
	sim_log(h->sim, "host %u: trace %d bucket %u lver %" PRIu64, h->id, ev, bucket, lver);
}

/* The journal replay stand-in: the recovered host must be crashed or fenced; takes a little time. */
static int sim_recover(void *arg, unsigned slot, uint64_t gen)
{
	struct shost *h = arg;
	struct sim *s = h->sim;

	for (unsigned i = 0; i < s->p.hosts; i++) {
		struct shost *o = &s->hosts[i];

		if (o != h && o->lk && o->slot == slot && o->gen == gen && host_counts(o))
			sim_violation(s, "host %u recovers slot %u gen %" PRIu64 " of host %u, which is alive",
				      h->id, slot, gen, i);
	}
	sim_log(s, "host %u: recovering slot %u gen %" PRIu64, h->id, slot, gen);
	sim_sleep(h, rng_range(&h->rng, 1, 300) * MS);
	return 0;
}

/* ---- the workload ---- */

static void belief_add(struct shost *h, uint64_t res, enum lk_mode mode)
{
	REQUIRE((h->nbel) < (SIM_MAX_BELIEFS));
	h->bel[h->nbel++] = (struct belief){ res, mode };
	sim_check(h->sim);
}

static void belief_del(struct shost *h, uint64_t res)
{
	for (unsigned i = 0; i < h->nbel; i++) {
		if (h->bel[i].res == res) {
			h->bel[i] = h->bel[--h->nbel];
			return;
		}
	}
	ck_abort_msg("belief of 0x%" PRIx64 " missing", res);
}

static void renewer_main(struct shost *h)
{
	struct sim *s = h->sim;

	while (!h->renew_stop && !h->crashed) {
		if (lk_renew(h->lk) == -ENOLCK)
			break;
		sim_sleep(h, (uint64_t)s->p.tim.interval_ms * MS);
	}
}

#define RES_COUNTER LK_RES(LK_NS_USER, 1)

/* Under an EX lock: read the counter, write it + 1 if still allowed to write. */
static int counter_increment(struct shost *h)
{
	struct sim *s = h->sim;
	uint32_t ss = s->geo.sector_size;
	uint8_t *buf = aligned_alloc(4096, 4096);
	uint64_t v;
	int rc;

	REQUIRE(buf);
	rc = sim_read(h, s->counter_off, buf, ss);
	if (!rc) {
		memcpy(&v, buf, 8);
		h->counter_read = v;
		v++;
		memcpy(buf, &v, 8);
		rc = lk_write_ok(h->lk) ? sim_write(h, s->counter_off, buf, ss) : -ENOLCK;
	}
	free(buf);
	return rc;
}

static void incarnation(struct shost *h)
{
	struct sim *s = h->sim;
	struct lk_join_opts o = { .hostname = "sim", .recover = sim_recover, .recover_arg = h,
				  .no_renew_thread = true, .trace = sim_trace, .trace_arg = h,
				  .test_faults = s->p.faults };
	char err[256];
	unsigned nops;
	int rc;

	rc = lk_join(&h->io, &s->geo, &s->p.tim, &o, &h->lk, err, sizeof(err));
	if (rc) {
		s->st.join_fail++;
		sim_log(s, "host %u: join failed: %d %s", h->id, rc, err);
		h->lk = NULL;
		return;
	}
	s->st.joins++;
	h->slot = lk_host_slot(h->lk);
	h->gen = lk_host_gen(h->lk);
	sim_log(s, "host %u: joined slot %u gen %" PRIu64, h->id, h->slot, h->gen);
	h->renew_stop = false;
	h->renewer = fiber_new(h, renewer_main, s->now);

	nops = (unsigned)rng_range(&h->rng, 3, 25);
	for (unsigned i = 0; i < nops && s->now < s->p.run_ns && !h->crashed; i++) {
		uint64_t res, ver, r2 = LK_RES(LK_NS_USER, 2 + rng_next(&h->rng) % 3);

		if (rng_next(&h->rng) % 4 == 0) {
			rc = lk_recover_dead(h->lk);
			if (h->crashed || rc == -ENOLCK || lk_fenced(h->lk))
				break;
			if (rc == -EIO)
				continue;
			if (rc < 0) {
				sim_violation(s, "host %u: lk_recover_dead: %d", h->id, rc);
				break;
			}
		}
		unsigned pick = (unsigned)(rng_next(&h->rng) % 20);
		unsigned flags = pick < 14 ? LK_WAIT : pick < 17 ? LK_WAIT_DEAD : 0;
		enum lk_mode mode;

		if (rng_next(&h->rng) % 2) {
			res = RES_COUNTER;
			mode = LK_EX;
		} else {
			res = LK_RES(LK_NS_USER, 2 + rng_next(&h->rng) % 3);
			mode = (enum lk_mode)rng_range(&h->rng, LK_EX, LK_MW);
		}
		rc = lk_lock(h->lk, res, mode, flags, &ver, NULL);
		if (h->crashed)
			break;
		if (rc == -EIO) {       /* an injected error: a host that wrote something fenced itself */
			s->st.locks_fenced += lk_fenced(h->lk);
			if (lk_fenced(h->lk))
				break;
			continue;
		}
		if (rc == -ENOLCK) {
			s->st.locks_fenced++;
			break;
		}
		if (rc == -EBUSY) {
			s->st.locks_busy++;
			continue;
		}
		if (rc) {
			sim_violation(s, "host %u: lk_lock: %d", h->id, rc);
			break;
		}
		s->st.locks_ok++;
		belief_add(h, res, mode);
		if (res == RES_COUNTER && counter_increment(h) == 0)
			s->st.increments++;
		/* sometimes a second lock, never waiting for it (no lock-order deadlock) */
		bool second = r2 != res && rng_next(&h->rng) % 4 == 0 &&
			      lk_lock(h->lk, r2, LK_SH, 0, NULL, NULL) == 0;
		if (second)
			belief_add(h, r2, LK_SH);
		sim_sleep(h, rng_next(&h->rng) % 10 == 0 ? rng_range(&h->rng, 100, 3000) * MS
							  : rng_range(&h->rng, 0, 20) * MS);
		if (second) {
			belief_del(h, r2);
			lk_unlock(h->lk, r2, false, NULL);
		}
		belief_del(h, res);
		rc = lk_unlock(h->lk, res, rng_next(&h->rng) % 3 == 0, NULL);
		s->st.unlocks++;
		if (rc == -ENOLCK || h->crashed || lk_fenced(h->lk))
			break;
		if (rc == -EIO)
			continue;       /* a read failed before anything was written: still held, lk_leave drops it */
		if (rc) {
			sim_violation(s, "host %u: lk_unlock: %d", h->id, rc);
			break;
		}
		sim_sleep(h, rng_range(&h->rng, 0, 30) * MS);
	}
	if (lk_fenced(h->lk) && !h->crashed)
		s->st.fenced_found++;
	h->renew_stop = true;
	while (!h->renewer->done)
		sim_sleep(h, 5 * MS);
	fiber_free(h->renewer);
	h->renewer = NULL;
	h->nbel = 0;
	memset(h->mutex, 0, sizeof(h->mutex));
	lk_leave(h->lk);
	h->lk = NULL;
	memset(h->mutex, 0, sizeof(h->mutex));
}

static void worker_main(struct shost *h)
{
	struct sim *s = h->sim;

	while (s->now < s->p.run_ns && !s->stopping) {
		incarnation(h);
		if (h->crashed && !s->stopping) {       /* reboot: a new incarnation later */
			h->crashed = false;
			h->paused_until = 0;
		}
		sim_sleep(h, rng_range(&h->rng, 10, 3000) * MS);
	}
}

/* ---- running one seed ---- */

static void sim_disturb(struct sim *s)
{
	unsigned r = (unsigned)(rng_next(&s->rng) % 100000);
	struct shost *h = &s->hosts[rng_next(&s->rng) % s->p.hosts];

	if (r >= 99000) {               /* clock rates wander within the bound */
		host_set_rate(h, s->now, (int64_t)rng_range(&s->rng, 0, 19800) - 9900);
		return;
	}
	if (s->now >= s->p.run_ns || !h->lk || h->crashed || s->stopping)
		return;
	if (r < s->p.crash_permille) {
		h->crashed = true;
		s->st.crashes++;
		sim_log(s, "host %u: crash", h->id);
	} else if (r < s->p.crash_permille + s->p.pause_permille && h->paused_until <= s->now) {
		uint64_t len = rng_range(&s->rng, 1, 15) * SEC;

		h->paused_until = s->now + len;
		s->st.pauses++;
		sim_log(s, "host %u: paused %.1f s", h->id, (double)len / 1e9);
	}
}

static void sim_run(struct sim *s)
{
	const uint64_t stuck = s->p.run_ns + 900 * SEC;

	while (s->nheap) {
		struct event e = ev_pop(s);

		REQUIRE((e.t) >= (s->now));
		s->now = e.t;
		s->st.events++;
		if (s->now > stuck && !s->violation[0])
			sim_violation(s, "liveness: fibers still running at %.1f s", (double)s->now / 1e9);
		if (s->violation[0] && !s->stopping) {
			/* stop checking; crash every host so its code unwinds and frees what it holds */
			s->stopping = true;
			for (unsigned i = 0; i < s->p.hosts; i++)
				s->hosts[i].crashed = true;
		}
		if (e.type == EV_PART) {
			struct io_op *op = e.op;

			if (op->counter && e.part == op->part_of[0]) {
				uint64_t cur;

				memcpy(&cur, s->disk + op->off, 8);
				if (cur != op->expect)
					sim_violation(s, "lost update: host %u's counter write of %" PRIu64
						      " lands on %" PRIu64, op->host->id, op->expect + 1, cur);
				s->counter_landed++;
			}
			op_part(s, op, e.part);
			continue;
		}
		if (e.f->host->paused_until > s->now) {
			ev_push(s, (struct event){ .t = e.f->host->paused_until, .type = EV_WAKE, .f = e.f });
			continue;
		}
		s->st.steps++;
		fiber_run(s, e.f);
		if (!s->stopping)
			sim_check(s);
		if (e.f->done && e.f == e.f->host->worker) {
			e.f->host->worker = NULL;
			fiber_free(e.f);
		}
		sim_disturb(s);
	}
}

static void sim_setup(struct sim *s, uint64_t seed, const struct sim_params *p)
{
	uint64_t lock_len, hb_len;

	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	s->p = *p;
	REQUIRE((p->hosts) <= (SIM_MAX_HOSTS));
	REQUIRE((p->nbuckets) <= (SIM_MAX_BUCKETS));
	lock_len = lk_lock_region_size(p->nslots, p->ss, p->nbuckets);
	hb_len = base_round_up((uint64_t)p->nslots * base_max(512u, p->ss), 4096);
	s->geo = (struct lk_geometry){ .sector_size = p->ss, .nslots = p->nslots,
				       .slot_size = base_max(512u, p->ss), .hb_off = 4096,
				       .lock_off = 4096 + hb_len, .lock_len = lock_len };
	s->counter_off = s->geo.lock_off + lock_len;
	s->disk_size = s->counter_off + 4096;
	s->disk = calloc(1, s->disk_size);
	REQUIRE(s->disk);
	for (unsigned i = 0; i < p->hosts; i++) {
		struct shost *h = &s->hosts[i];

		h->sim = s;
		h->id = i;
		h->clk_l0 = rng_range(&s->rng, 0, 1000) * SEC;
		h->clk_t0 = 0;
		h->ppm = (int64_t)rng_range(&s->rng, 0, 19800) - 9900;
		h->io = (struct lk_io){ h, sim_read, sim_write, sim_now, sim_sleep, sim_random };
		h->rng = rng_next(&s->rng) | 1;
	}
}

/* Unscheduled I/O on the simulated disk, for lk_format before the hosts start. */
static int direct_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct sim *s = ctx;

	memcpy(buf, s->disk + off, len);
	return 0;
}

static int direct_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct sim *s = ctx;

	REQUIRE((off + len) <= (s->disk_size));
	memcpy(s->disk + off, buf, len);
	return 0;
}

/* Runs one seed; returns false with s->violation set if the checker objected. */
bool sim_seed(uint64_t seed, const struct sim_params *p, bool verbose, struct sim_stats *total)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct lk_io fmt_io = { .read = direct_read, .write = direct_write };
	bool ok;

	REQUIRE(s);
	sim_setup(s, seed, p);
	s->verbose = verbose;
	fmt_io.ctx = s;
	REQUIRE(lk_format(&fmt_io, &s->geo) == 0);

	for (unsigned i = 0; i < p->hosts; i++) {
		uint64_t start = p->joins_together ? rng_range(&s->rng, 0, 3 * MS)
						   : rng_range(&s->rng, 0, 5 * SEC);

		s->hosts[i].worker = fiber_new(&s->hosts[i], worker_main, start);
	}
	sim_run(s);
	if (!s->violation[0]) {
		uint64_t v;

		memcpy(&v, s->disk + s->counter_off, 8);
		if (v != s->counter_landed)
			sim_violation(s, "counter %" PRIu64 " after %" PRIu64 " increments landed", v,
				      s->counter_landed);
	}
	ok = !s->violation[0];
	if (!ok && verbose)
		fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, s->violation);
	s->st.end_ns = s->now;
	if (total) {
		uint64_t *dst = (uint64_t *)total, *src = (uint64_t *)&s->st;

		for (size_t i = 0; i < sizeof(s->st) / sizeof(uint64_t); i++)
			dst[i] += src[i];
		if (!ok)
			fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, s->violation);
	}
	REQUIRE((s->live_fibers) == (0));
	REQUIRE((s->nheap) == (0));
	free(s->heap);
	free(s->disk);
	free(s);
	return ok;
}
