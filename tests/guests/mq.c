/*
 * A vmm test guest for virtio-blk's multiqueue path, polled: it negotiates
 * VIRTIO_BLK_F_MQ, checks num_queues against "cpus=N" on the command line
 * (vmm gives one queue per vCPU), and sets up every queue with its own ring
 * of RING entries and its own doorbell (queue_notify_off times the notify
 * capability's multiplier). Then, on all queues at once, it posts NREQ
 * 4 KiB writes per queue (each to its own sector range, a pattern naming
 * queue and request), rings each doorbell once, and spins until every used
 * ring has them all, each with status OK, each head once; then the same
 * with reads, whose data must match. Request i of queue q sits at sectors
 * 8 (q NREQ + i) .. + 7, so the host can check the bytes through libvmfs.
 *
 * Completions also come by MSI-X, one vector per queue, with interrupts
 * off: the guest takes none, but reads its LAPIC's IRR to see each queue's
 * message arrive at the vector it programmed (0x60 + q for the writes).
 * Between the two bursts it moves BAR0 (decoding off, a new address,
 * decoding on) and reprograms each queue's message to vector 0x70 + q, so
 * the reads' completions must reach the new vectors through the new BAR:
 * vmm must rebind its doorbells and rewrite its MSI routes (the host checks
 * vmm's counters: no doorbell exit with eventfds).
 * It prints one line per step and "mq ok", or "FAIL: ...", then powers off.
 */
#include "virtio.h"
#include "apic.h"

void guest_main(const uint8_t *zp);

#define MAXQ 4
#define RING 128
#define NREQ 32

struct queue {
	struct desc desc[RING] __attribute__((aligned(4096)));
	struct { uint16_t flags, idx, ring[RING]; } avail __attribute__((aligned(4096)));
	volatile struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[RING]; } used __attribute__((aligned(4096)));
	struct { uint32_t type, reserved; uint64_t sector; } hdr[NREQ];
	volatile uint8_t status[NREQ];
	volatile uint8_t *doorbell;
	uint16_t seen;
};
static struct queue qs[MAXQ] __attribute__((aligned(4096)));
static volatile uint8_t *msix_table;
static unsigned msix_cap;
static uint8_t data[MAXQ][NREQ][4096] __attribute__((aligned(4096)));

static uint8_t pattern(unsigned q, unsigned i, unsigned j)
{
	return (uint8_t)(q * 61 + i * 7 + j * 13 + 1);
}

static void setup(unsigned *nq_out, unsigned want)
{
	unsigned q, nq;

	virtio_find(2, 1u << 12);	/* VIRTIO_BLK_F_MQ */
	nq = R16(devcfg, 34);
	puts_serial("mq: num_queues ");
	put_dec(nq);
	puts_serial(", notify multiplier ");
	put_dec(notify_mult);
	puts_serial("\n");
	if (nq != want || R16(common, 0x12) != nq)
		fail("num_queues is not one per vCPU");
	if (nq > MAXQ)
		nq = MAXQ;
	for (q = 0; q < nq; q++) {
		W16(common, 0x16, (uint16_t)q);
		if (R16(common, 0x18) < RING)
			fail("a queue is too small");
		W16(common, 0x18, RING);
		W32(common, 0x20, (uint32_t)(uintptr_t)qs[q].desc);
		W32(common, 0x24, 0);
		W32(common, 0x28, (uint32_t)(uintptr_t)&qs[q].avail);
		W32(common, 0x2c, 0);
		W32(common, 0x30, (uint32_t)(uintptr_t)&qs[q].used);
		W32(common, 0x34, 0);
		qs[q].doorbell = notify + R16(common, 0x1e) * notify_mult;
		W16(common, 0x1c, 1);
	}
	W8(common, 0x14, 15);
	*nq_out = nq;
}

/* MSI-X entry q: a fixed message to LAPIC 0 at vector vec, unmasked (the mask set around the change). */
static void msix_message(unsigned q, uint32_t vec)
{
	W32(msix_table, 16 * q + 12, 1);
	W32(msix_table, 16 * q, 0xfee00000u);
	W32(msix_table, 16 * q + 4, 0);
	W32(msix_table, 16 * q + 8, vec);
	W32(msix_table, 16 * q + 12, 0);
}

/* Queue q's completions go to MSI-X entry q at vector 0x60 + q; MSI-X on, interrupts stay off. */
static void msix_setup(unsigned nq)
{
	uint32_t bar = cfg_read(virtio_slot, 0x10) & ~0xfu;
	unsigned q;

	for (msix_cap = cfg_read(virtio_slot, 0x34) & 0xff; msix_cap;
	     msix_cap = (cfg_read(virtio_slot, msix_cap) >> 8) & 0xff)
		if ((cfg_read(virtio_slot, msix_cap) & 0xff) == 0x11)
			break;
	if (!msix_cap || ((cfg_read(virtio_slot, msix_cap) >> 16) & 0x7ff) < nq)
		fail("no MSI-X capability with a vector per queue");
	msix_table = (volatile uint8_t *)(uintptr_t)(bar + (cfg_read(virtio_slot, msix_cap + 4) & ~7u));
	apic_init();	/* messages are taken into the IRR only by a software-enabled LAPIC */
	for (q = 0; q < nq; q++) {
		msix_message(q, 0x60 + q);
		W16(common, 0x16, (uint16_t)q);
		W16(common, 0x1a, (uint16_t)q);
		if (R16(common, 0x1a) != q)
			fail("a queue did not take its MSI-X vector");
	}
	cfg_write(virtio_slot, msix_cap, cfg_read(virtio_slot, msix_cap) | 1u << 31);
}

/* Whether vector vec waits in the LAPIC's IRR (it stays there: interrupts are off). */
static int irr(unsigned vec)
{
	return (*(volatile uint32_t *)(LAPIC + 0x200 + 0x10 * (vec / 32)) >> (vec % 32)) & 1;
}

/* BAR0 to another address, decoding off meanwhile; every pointer into it follows. */
static void move_bar(unsigned nq)
{
	uint32_t old = cfg_read(virtio_slot, 0x10) & ~0xfu, new = old + 0x800000u, cmd = cfg_read(virtio_slot, 0x04);
	uintptr_t delta = new - old;
	unsigned q;

	cfg_write(virtio_slot, 0x04, cmd & ~2u);
	cfg_write(virtio_slot, 0x10, new);
	cfg_write(virtio_slot, 0x04, cmd);
	if ((cfg_read(virtio_slot, 0x10) & ~0xfu) != new)
		fail("BAR0 did not move");
	common += delta;
	notify += delta;
	devcfg += delta;
	msix_table += delta;
	for (q = 0; q < nq; q++)
		qs[q].doorbell += delta;
}

/* Posts NREQ requests of type (0 read, 1 write) on every queue, rings each doorbell once, waits for all. */
static void batch(unsigned nq, uint32_t type)
{
	unsigned q, i;

	for (q = 0; q < nq; q++) {
		struct queue *Q = &qs[q];

		for (i = 0; i < NREQ; i++) {
			struct desc *d = &Q->desc[3 * i];

			Q->hdr[i].type = type;
			Q->hdr[i].reserved = 0;
			Q->hdr[i].sector = 8ull * (q * NREQ + i);
			Q->status[i] = 0xff;
			d[0] = (struct desc){ (uint64_t)(uintptr_t)&Q->hdr[i], 16, 1, (uint16_t)(3 * i + 1) };
			d[1] = (struct desc){ (uint64_t)(uintptr_t)data[q][i], 4096, (uint16_t)(1 | (type == 0 ? 2 : 0)),
					      (uint16_t)(3 * i + 2) };
			d[2] = (struct desc){ (uint64_t)(uintptr_t)&Q->status[i], 1, 2, 0 };
			Q->avail.ring[(Q->avail.idx + i) % RING] = (uint16_t)(3 * i);
		}
		__sync_synchronize();
		Q->avail.idx = (uint16_t)(Q->avail.idx + NREQ);
	}
	__sync_synchronize();
	for (q = 0; q < nq; q++)
		W16(qs[q].doorbell, 0, (uint16_t)q);
	for (q = 0; q < nq; q++) {
		struct queue *Q = &qs[q];
		uint32_t heads = 0;

		while ((uint16_t)(Q->used.idx - Q->seen) < NREQ)
			;
		for (i = 0; i < NREQ; i++) {
			unsigned id = Q->used.ring[(Q->seen + i) % RING].id;

			if (id % 3 || id / 3 >= NREQ || (heads & (1u << (id / 3))))
				fail("a used ring holds a wrong or repeated head");
			heads |= 1u << (id / 3);
			if (Q->status[id / 3] != 0)
				fail("a request failed");
		}
		Q->seen = (uint16_t)(Q->seen + NREQ);
	}
}

void guest_main(const uint8_t *zp)
{
	unsigned nq, q, i, j;

	setup(&nq, cmdline_cpus(zp));
	msix_setup(nq);
	for (q = 0; q < nq; q++)
		for (i = 0; i < NREQ; i++)
			for (j = 0; j < 4096; j++)
				data[q][i][j] = pattern(q, i, j);
	batch(nq, 1);
	puts_serial("mq: ");
	put_dec(nq * NREQ);
	puts_serial(" writes done\n");
	for (q = 0; q < nq; q++)
		if (!irr(0x60 + q))
			fail("a queue's MSI-X message did not reach the LAPIC");
	puts_serial("mq: each queue's MSI-X message reached the LAPIC\n");
	move_bar(nq);
	for (q = 0; q < nq; q++)
		msix_message(q, 0x70 + q);
	puts_serial("mq: BAR0 moved, the messages reprogrammed\n");
	for (q = 0; q < nq; q++)
		for (i = 0; i < NREQ; i++)
			for (j = 0; j < 4096; j++)
				data[q][i][j] = 0;
	batch(nq, 0);
	for (q = 0; q < nq; q++)
		for (i = 0; i < NREQ; i++)
			for (j = 0; j < 4096; j++)
				if (data[q][i][j] != pattern(q, i, j))
					fail("read back differs");
	puts_serial("mq: ");
	put_dec(nq * NREQ);
	puts_serial(" reads match\n");
	for (q = 0; q < nq; q++)
		if (!irr(0x70 + q))
			fail("a reprogrammed MSI-X message did not reach the LAPIC");
	puts_serial("mq: the reprogrammed messages reached the LAPIC through the moved BAR\n");
	puts_serial("mq ok\n");
	poweroff();
}
