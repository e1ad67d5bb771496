/*
 * The optional hardware watchdog (/dev/watchdog): opened at join with a
 * timeout of the fence interval, petted after each good renewal, disarmed by
 * the magic close on a clean leave. It backs A4 and H4 of docs/LOCKING.md
 * ("Without a watchdog"): a host that stops renewing is reset rather than
 * trusted to stop writing.
 */
#include "lockmgr/lockmgr_i.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <sys/ioctl.h>
#include <unistd.h>

void lm_watchdog_pet(struct lk_host *h)
{
	if (h->wd_fd >= 0 && write(h->wd_fd, "\0", 1) != 1) {
		/* nothing to do: a watchdog that misses pets resets the machine, which is safe */
	}
}

/* 0, or -errno: a host asked to run with a watchdog does not run without one. */
int lm_watchdog_open(struct lk_host *h, const char *path)
{
	int secs = (int)base_max(1u, h->t.fence_ms / 1000);

	h->wd_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (h->wd_fd < 0)
		return -errno;
	/* fire no later than the fence deadline after the last pet (best effort: a file has no ioctl) */
	(void)ioctl(h->wd_fd, WDIOC_SETTIMEOUT, &secs);
	lm_watchdog_pet(h);
	return 0;
}

/* The magic close before lk_leave's host_free closes the file: a clean leave disarms the watchdog. */
void lm_watchdog_disarm(struct lk_host *h)
{
	if (h->wd_fd >= 0 && write(h->wd_fd, "V", 1) != 1) {
		/* the watchdog stays armed: the machine resets, which is safe */
	}
}
