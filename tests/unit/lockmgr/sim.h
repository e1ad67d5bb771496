/*
 * The deterministic lockmgr simulator of test_lockmgr (lockmgr/sim.c): many
 * hosts of the real lockmgr code on one simulated shared disk, in one thread,
 * checked after every step. sim_seed() runs one seed with the given
 * parameters; the Check tests in test_lockmgr.c choose the parameters and the
 * seeds. Also the helpers both files use: REQUIRE, the time units, the PRNG.
 */
#ifndef VMFS_TESTS_LOCKMGR_SIM_H
#define VMFS_TESTS_LOCKMGR_SIM_H

#include "lockmgr/lockmgr.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#define MS ((uint64_t)1000000)

/*
 * For hot paths (the simulator, the memory disk): Check records the place of
 * every ck_assert that passes with a write(2), which cost more than the
 * simulation; this reaches Check only on failure.
 */
#define REQUIRE(cond) do { if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); } while (0)
#define SEC (1000 * MS)

static inline uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static inline uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi)  /* [lo, hi] */
{
	return lo + rng_next(s) % (hi - lo + 1);
}


struct sim_params {
	unsigned hosts, nslots, nbuckets;
	uint32_t ss;
	struct lk_timing tim;
	uint64_t run_ns;        /* workers take no new operation after this */
	unsigned crash_permille, pause_permille;
	unsigned faults;
	bool joins_together;    /* all hosts join at once (the delta-lease race) */
	unsigned ioerr_one_in;  /* one I/O in this many fails (LK_SIM_IOERR, default 20000) */
};

struct sim_stats {
	uint64_t steps, events, ios, io_errors, locks_ok, locks_busy, locks_fenced, unlocks, increments, joins, join_fail,
		crashes, pauses, fenced_found, recoveries, mutexes, end_ns;
};

/*
 * Runs one seed; returns false with the violation printed (verbose, or when
 * total is given) if the checker objected. Adds the run's counts to *total
 * (may be NULL). Only the calling thread runs; aborts the Check test on a
 * broken simulator invariant (REQUIRE).
 */
bool sim_seed(uint64_t seed, const struct sim_params *p, bool verbose, struct sim_stats *total);

#endif
