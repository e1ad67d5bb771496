/*
 * lockmgr.pml: lockmgr's protocols as spin models (docs/LOCKING.md), checked
 * by tests/e2e/lockmgr-spin.sh. One of two models is chosen at preprocessing:
 *
 *   -DJOIN   the delta-lease slot claim (H1): J joiners race for one free
 *            slot on a discrete clock; every I/O completes within IO ticks of
 *            its submission, a read samples and a write lands at any tick in
 *            between. The claim is written only if the re-read took at most
 *            EPS ticks; the read-back comes DELAY ticks after the claim
 *            completed. Assertion: at most one joiner believes it holds the slot.
 *
 *   -DMUTEX  (default) one bucket's mutex (M1-M5): N hosts, Disk Paxos
 *            instances numbered by lver (a leader record written only by
 *            an instance's winner; one dblock {mbal, bal, inp, lver} per host),
 *            the learner and outbid rules of mutex_acquire(), a double-buffered
 *            table update in the critical section (T2) and a crash of any one
 *            host at any point. A crashed host is dead to the others at once:
 *            the timing argument (H5) that its writes have all landed and it
 *            has stopped by the time it is judged dead is taken as given here.
 *            Assertions: no two live hosts in the critical section; the newest
 *            valid table copy always holds every completed update.
 *
 * Mutants that spin must reject: -DMUTANT_SHORT_DELAY (JOIN: the read-back
 * waits only IO ticks) and -DMUTANT_NO_PHASE1 (MUTEX: ballots skip phase 1).
 * Ballots, instances and crashes are bounded so the state space is finite; a
 * host that runs out of ballots stops (safety only: runs use pan -E).
 */

#ifdef JOIN

#ifndef J
#define J 3
#endif
#define IO 2
#define EPS 1
#ifdef MUTANT_SHORT_DELAY
#define DELAY IO
#else
#define DELAY (IO + EPS + 1)    /* lk_join_delay_ms(): past eps + io_timeout */
#endif
#define START_MAX 3
#define MAXT 20
#define NONE 255

byte now = 0;
byte slot = 0;                  /* 0 free, else joiner + 1 */
byte dl[J];                     /* deadline of a joiner's I/O in flight, NONE if none */
bool joined[J];

active proctype ticker()
{
	/* time moves on only while no I/O in flight would overrun its bound */
end:	do
	:: atomic { now < MAXT && dl[0] > now && dl[1] > now && dl[J - 1] > now -> now++ }
	od
}

proctype joiner(byte me)
{
	byte t0, t1, t2, v, q;

	now <= START_MAX;
	/* re-read the slot: sampled at some tick before its completion */
	atomic { t0 = now; dl[me] = t0 + IO };
	v = slot;
	atomic {
		t1 = now;
		dl[me] = NONE;
		if
		:: v != 0 || t1 - t0 > EPS -> goto done       /* taken, or re-read too slow */
		:: else -> dl[me] = t1 + IO                      /* claim submitted at t1 */
		fi
	};
	slot = me + 1;                                           /* the claim lands */
	atomic { t2 = now; dl[me] = NONE };                      /* and completes */
	now >= t2 + DELAY;
	atomic { dl[me] = now + IO };
	v = slot;                                                /* read back */
	atomic {
		dl[me] = NONE;
		if
		:: v == me + 1 ->
			joined[me] = true;
			for (q : 0 .. J - 1) {
				assert(q == me || !joined[q])
			}
		:: else -> skip
		fi
	};
done:	skip
}

init
{
	byte i;

	atomic {
		for (i : 0 .. J - 1) {
			dl[i] = NONE
		}
		for (i : 0 .. J - 1) {
			run joiner(i)
		}
	}
}

#else   /* MUTEX */

#ifndef N
#define N 3
#endif
#ifndef MAXLVER
#define MAXLVER 4       /* instances */
#endif
#ifndef MAXBAL
#define MAXBAL (6 * N)  /* ballots: a host out of them stops */
#endif
#ifndef ACQ
#define ACQ 2           /* critical sections per host */
#endif

typedef dblk {
	byte mbal;
	byte bal;
	byte inp;       /* vote: host + 1, 0 none */
	byte lver;
};

dblk disk[N];
byte ld_lver = 0;       /* leader record */
byte ld_owner = 0;
bool ld_rel = true;
bool crashed[N];
bool cs[N];
byte tseq[2];           /* table copies: sequence, value, well formed */
byte tval[2];
bool tok[2];
byte committed = 0;     /* ghost: table updates completed */

#define MAX(a, b) ((a) > (b) -> (a) : (b))

/*
 * One read of dblock q in a phase of a ballot for target with ballot mbal, as
 * one step with the local bookkeeping it feeds (only the read touches shared
 * state): abort when q is in a later instance or holds a higher ballot,
 * remember the vote of highest ballot, note q as a rival of the latest
 * instance seen.
 */
inline scan_one(q)
{
	atomic {
		if
		:: disk[q].lver > target ->
			hint = MAX(hint, disk[q].lver); aborted = true
		:: disk[q].lver == target && disk[q].mbal > mbal ->
			hintm = MAX(hintm, disk[q].mbal); aborted = true
		:: disk[q].lver == target && disk[q].mbal <= mbal && disk[q].inp != 0 && disk[q].bal > bestbal ->
			bestbal = disk[q].bal; bestinp = disk[q].inp
		:: else -> skip
		fi;
		if
		:: disk[q].lver > rivl -> rivl = disk[q].lver; riv = 0; riv = riv | (1 << q)
		:: disk[q].lver == rivl -> riv = riv | (1 << q)
		:: else -> skip
		fi
	}
}

inline scan_all()
{
	for (q : 0 .. N - 1) {
		if
		:: q != me -> scan_one(q)
		:: else -> skip
		fi
	}
	q = 0
}

proctype host(byte me)
{
	byte hint = 0, hintm = 0, over = 0, known = 0, kown = 0, done = 0;
	byte m, target, mbal, bestbal, bestinp, vote, q, rivl = 0, riv = 0, j, sv, vv;
	bool aborted, waiting;

	/* a crash stops the host between any two of its steps */
	{
	do
	:: done == ACQ -> break
	:: done < ACQ ->
		/* read the leader and decide, in one step (the liveness oracle is !crashed) */
		atomic {
			waiting = false;
			m = MAX(ld_lver, hint);
			if
			:: known > 0 && known > ld_lver && known >= m ->
				if
				:: !crashed[kown] -> waiting = true         /* a live winner will commit */
				:: else -> over = known; known = 0
				fi
			:: else -> skip
			fi;
			if
			:: waiting -> skip
			:: !waiting && m <= over -> target = over + 1
			:: !waiting && m > over && ld_lver == m ->
				if
				:: !ld_rel && ld_owner != me && !crashed[ld_owner] -> waiting = true  /* held */
				:: else -> target = m + 1
				fi
			:: !waiting && m > over && ld_lver != m ->
				/* learner: wait while a live host proposes in m */
				target = m;
				if
				:: disk[me].lver != m && rivl == m ->
					for (j : 0 .. N - 1) {
						if
						:: (riv & (1 << j)) && j != me && !crashed[j] -> waiting = true
						:: else -> skip
						fi
					}
				:: else -> skip
				fi;
				j = 0
			fi;
			m = 0
		};
		if
		:: waiting -> goto again
		:: !waiting && target > MAXLVER -> break
		:: else -> skip
		fi;

		/* ballot(target) */
		atomic {
			if
			:: disk[me].lver == target ->
				mbal = MAX(disk[me].mbal, hintm); bestbal = disk[me].bal; bestinp = disk[me].inp
			:: else ->
				mbal = hintm; bestbal = 0; bestinp = 0
			fi;
			mbal = (mbal / N + 1) * N + me + 1;
			if
			:: bestinp == 0 -> bestbal = 0
			:: else -> skip
			fi;
			aborted = false
		};
		if
		:: mbal > MAXBAL -> break
		:: else -> skip
		fi;
#ifndef MUTANT_NO_PHASE1
		/* phase 1: our new mbal, our old vote kept */
		atomic {
			if
			:: disk[me].lver != target -> disk[me].bal = 0; disk[me].inp = 0
			:: else -> skip
			fi;
			disk[me].mbal = mbal; disk[me].lver = target
		};
		scan_all();
		if
		:: aborted -> goto again
		:: else -> skip
		fi;
#endif
		/* phase 2: our vote (the vote of highest ballot seen, else ourselves) */
		atomic {
			vote = (bestinp == 0 -> me + 1 : bestinp);
			bestinp = 0; bestbal = 0;
			disk[me].mbal = mbal; disk[me].bal = mbal; disk[me].inp = vote; disk[me].lver = target
		};
		scan_all();     /* only for aborts: the value is our vote */
		if
		:: aborted -> goto again
		:: else -> skip
		fi;

		if
		:: vote == me + 1 ->
			/* won: commit the leader, then the critical section */
			atomic { ld_lver = target; ld_owner = me; ld_rel = false };
			atomic {
				cs[me] = true;
				for (j : 0 .. N - 1) {
					assert(j == me || !cs[j] || crashed[j])
				}
			};
			/* table update: read both copies, newest valid wins, write the other */
			atomic {
				if
				:: tok[0] && (!tok[1] || tseq[0] >= tseq[1]) -> j = 0
				:: else -> j = 1
				fi;
				assert(tok[j]);
				sv = tseq[j]; vv = tval[j];
				assert(vv == committed)
			};
			tok[1 - j] = false;                 /* in flight: torn if we crash now */
			atomic { tseq[1 - j] = sv + 1; tval[1 - j] = vv + 1; tok[1 - j] = true; committed++;
				 j = 0; sv = 0; vv = 0 };
			cs[me] = false;
			atomic { ld_lver = target; ld_owner = me; ld_rel = true; done++;     /* release */
				 hint = target; hintm = 0; over = 0; known = 0; kown = 0 }
		:: else ->
			/* another host won target */
			atomic {
				hint = MAX(hint, target);
				if
				:: !crashed[vote - 1] -> known = target; kown = vote - 1
				:: else -> over = target
				fi
			}
		fi;
again:		atomic { vote = 0; mbal = 0; aborted = false }
	od
	} unless { crashed[me] }
}

active proctype crasher()
{
	byte i;

	/* at most one crash, of any host, at any point */
	if
	:: select(i : 0 .. N - 1); crashed[i] = true
	:: skip
	fi
}

init
{
	byte i;

	atomic {
		tok[0] = true;
		tok[1] = true;
		for (i : 0 .. N - 1) {
			run host(i)
		}
	}
}

#endif
