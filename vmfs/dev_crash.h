/*
 * The crash engine's plan API (vmfs/dev_crash.c), for power-cut tests: arm a
 * "crash" device with the write at which the power goes and what survives,
 * cut now, and read what happened. Tests include it beside vmfs/dev_i.h; the
 * rest of vmfs does not need it.
 */
#ifndef VMFS_DEV_CRASH_H
#define VMFS_DEV_CRASH_H

#include "vmfs/dev_i.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * The "crash" engine, for power-cut tests (after SQLite's crash VFS). Reads see
 * every write, including those not yet flushed. Writes and zero ranges wait in
 * memory, in order, until dev_flush applies them to the file and fdatasyncs
 * (dev_close applies them too: closing is not a power cut). Writes are counted
 * from open (each request of a batch or queue counts once, so does each
 * dev_zero_range); the plan's Nth write cuts the power: that write joins the
 * unflushed ones, of which the mode decides what lands on the file, and from
 * then on every call on the device fails with -EIO. Requests complete at
 * submission; one mutex serialises the device.
 *
 * dev_open with engine "crash" (or VMFS_IO_ENGINE=crash) reads a plan from
 *   VMFS_CRASH_AFTER_WRITES=N   the cut (0 or unset: never)
 *   VMFS_CRASH_MODE=drop|tear|prefix|reorder   (VMFS_CRASH_TEAR=1 means tear)
 *   VMFS_CRASH_SEED=S           chooses what a tear or reorder keeps
 * so that tests can arm a device that libvmfs opens on its own.
 */
enum dev_crash_mode {
	DEV_CRASH_DROP,      /* every unflushed write is lost */
	DEV_CRASH_TEAR,      /* ... except a random sector-granular part of the last one */
	DEV_CRASH_PREFIX,    /* an in-order prefix of them lands whole, the next one torn */
	DEV_CRASH_REORDER,   /* each lands whole, torn or not at all, independently */
};

struct dev_crash_plan {
	uint64_t after_writes;    /* cut at this write since open (1-based); 0: never */
	enum dev_crash_mode mode;
	uint64_t seed;
};

struct dev_crash_stats {
	uint64_t writes;          /* writes and zero ranges seen since open */
	uint64_t flushes;         /* dev_flush calls that applied the pending writes */
	uint64_t pending;         /* writes not yet flushed (at the cut: before it) */
	uint64_t landed;          /* at the cut: unflushed writes that landed whole */
	uint64_t torn;            /* at the cut: unflushed writes that landed in part */
	bool crashed;             /* the cut happened: every call fails with -EIO */
};

/* Replaces the plan (the count since open goes on). -EINVAL unless the engine is "crash". */
int dev_crash_arm(struct vmfs_dev *dev, const struct dev_crash_plan *plan);
/* Cuts the power now, as if the next write were the planned one. -EINVAL unless "crash". */
int dev_crash_now(struct vmfs_dev *dev);
/* Fills st for a crash device; -EINVAL for another engine. */
int dev_crash_get_stats(struct vmfs_dev *dev, struct dev_crash_stats *st);
/*
 * The counters of the last crash device this process closed (for tests that
 * reach the device only through libvmfs). false when none was closed yet.
 */
bool dev_crash_last_closed(struct dev_crash_stats *st);

#endif
