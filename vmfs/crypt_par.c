/*
 * The data cipher over the machine's cores: crypt_run splits a large request
 * (PAR_MIN bytes and more) into one part per core on unit boundaries; the
 * caller runs the first part and helper threads the others, and it returns
 * when all are done. One core's AES-256-XTS (about 6.6 GB/s here) is below
 * what a datastore in RAM or a fast NVMe array moves, so a single thread
 * would cap a sequential stream there. The helpers are started on first use,
 * shared by every datastore in the process, joined at exit, and forgotten by
 * a forked child (which starts its own when it needs them).
 */
#include "vmfs/vmfs_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "encrypt/encrypt.h"

#define PAR_MIN (256u << 10)    /* below this, one thread: the hand-off costs more than it saves */
#define PAR_PART (64u << 10)    /* no part smaller */
#define PAR_MAX 8               /* parts at most */

struct par_call {
	unsigned pending;       /* parts the helpers have not finished */
	int ret;
	pthread_cond_t done;
};

struct par_job {
	const struct enc_file *f;
	bool encrypt;
	uint64_t tweak;
	const uint8_t *in;
	uint8_t *out;
	size_t len;
	struct par_call *call;
	struct par_job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct par_job *head, *tail;
	unsigned helpers;       /* started; 0: none yet */
	pthread_t tids[PAR_MAX];
	unsigned cores;
	bool failed;            /* could not start them: one thread it is */
	bool stop;              /* the process exits: helpers end once the queue is empty */
} par = { .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER };

static void *helper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&par.lock);
	for (;;) {
		struct par_job *j;
		int ret;

		while (!par.head && !par.stop)
			pthread_cond_wait(&par.work, &par.lock);
		if (!par.head)
			break; /* stopping; this thread's cipher contexts go with it */
		j = par.head;
		par.head = j->next;
		if (!par.head)
			par.tail = NULL;
		pthread_mutex_unlock(&par.lock);
		ret = crypt_run_serial(j->f, j->encrypt, j->tweak, j->in, j->out, j->len);
		pthread_mutex_lock(&par.lock);
		if (ret && !j->call->ret)
			j->call->ret = ret;
		if (!--j->call->pending)
			pthread_cond_signal(&j->call->done);
	}
	pthread_mutex_unlock(&par.lock);
	return NULL;
}

/* At exit: the helpers finish what is queued and end (their per-thread cipher contexts are freed). */
static void par_exit(void)
{
	unsigned n;

	pthread_mutex_lock(&par.lock);
	par.stop = true;
	n = par.helpers;
	pthread_cond_broadcast(&par.work);
	pthread_mutex_unlock(&par.lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(par.tids[i], NULL);
}

/* In a forked child the helpers are gone: start again from nothing. */
static void par_forget(void)
{
	pthread_mutex_init(&par.lock, NULL);
	pthread_cond_init(&par.work, NULL);
	par.head = par.tail = NULL;
	par.helpers = 0;
	par.failed = false;
	par.stop = false;
}

static void par_once(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	par.cores = n < 1 ? 1 : n > PAR_MAX ? PAR_MAX : (unsigned)n;
	pthread_atfork(NULL, NULL, par_forget);
	atexit(par_exit);
}

/* Starts the helpers if none run yet (under par.lock): false when there are none. */
static bool par_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, par_once);
	if (par.stop)
		return false;
	if (par.helpers || par.failed || par.cores < 2)
		return par.helpers > 0;
	for (unsigned i = 0; i + 1 < par.cores; i++) {
		if (pthread_create(&par.tids[par.helpers], NULL, helper, NULL))
			break;
		par.helpers++;
	}
	par.failed = !par.helpers;
	return par.helpers > 0;
}

int crypt_run(const struct enc_file *f, bool encrypt, uint64_t tweak, const void *in, void *out, size_t len)
{
	struct par_job jobs[PAR_MAX];
	struct par_call call = { .ret = 0 };
	size_t units = len / VMFS_UNIT, per, at;
	unsigned parts;
	int ret;

	if (len < PAR_MIN || len % VMFS_UNIT)
		return crypt_run_serial(f, encrypt, tweak, in, out, len);
	pthread_mutex_lock(&par.lock);
	if (par.head || !par_start()) { /* helpers busy (other threads split their requests): no gain */
		pthread_mutex_unlock(&par.lock);
		return crypt_run_serial(f, encrypt, tweak, in, out, len);
	}
	parts = (unsigned)base_min(par.helpers + 1, len / PAR_PART);
	per = base_div_round_up(units, parts);
	pthread_cond_init(&call.done, NULL);
	/* parts 1.. to the helpers, part 0 here */
	at = per;
	for (unsigned i = 1; i < parts && at < units; i++, at += per) {
		struct par_job *j = &jobs[i];

		*j = (struct par_job){ .f = f, .encrypt = encrypt, .tweak = tweak + at,
				       .in = (const uint8_t *)in + at * VMFS_UNIT, .out = (uint8_t *)out + at * VMFS_UNIT,
				       .len = base_min(per, units - at) * VMFS_UNIT, .call = &call };
		if (par.tail)
			par.tail->next = j;
		else
			par.head = j;
		par.tail = j;
		call.pending++;
	}
	pthread_cond_broadcast(&par.work);
	pthread_mutex_unlock(&par.lock);
	ret = crypt_run_serial(f, encrypt, tweak, in, out, base_min(per, units) * VMFS_UNIT);
	pthread_mutex_lock(&par.lock);
	while (call.pending)
		pthread_cond_wait(&call.done, &par.lock);
	pthread_mutex_unlock(&par.lock);
	pthread_cond_destroy(&call.done);
	return ret ? ret : call.ret;
}
