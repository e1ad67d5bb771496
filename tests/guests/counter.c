/*
 * A vmm test guest that counts on its disk, for HA restart and suspend: it
 * reads its record from sector 0 ("HACOUNT1", the boot id of the instance
 * that wrote it, a counter), prints where it resumes, then forever: adds one
 * to the counter, writes the record with its own boot id (a TSC reading at
 * boot, so each start differs), flushes, prints "count N" every tenth, and
 * sleeps about 100 ms in HLT on the LAPIC timer (so a guest that waits costs
 * its host nothing). A write or flush that fails prints "counter: write
 * failed at N" and the guest keeps trying, as a guest whose disk went away
 * would. It polls its queue but sleeps between polls while a request waits
 * (vmm holds the first ones until its cluster join is done).
 */
#include "virtio.h"
#include "apic.h"

void guest_main(const uint8_t *zp);

struct record {
	char magic[8];
	uint64_t boot_id, counter;
};
static uint8_t sector[512] __attribute__((aligned(512)));

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* One request, waited for with naps: returns its status byte. */
static uint8_t request(uint32_t type, uint64_t s, uint8_t *data, int device_writes)
{
	uint16_t idx = used.idx;

	virtq_submit(blk_desc(type, s, data, device_writes));
	while (used.idx == idx)
		apic_sleep_ms(5);
	return blk_status;
}

static void put_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char b[17];
	int i;

	for (i = 15; i >= 0; i--, v >>= 4)
		b[i] = digits[v & 15];
	b[16] = 0;
	puts_serial(b);
}

void guest_main(const uint8_t *zp)
{
	struct record *r = (struct record *)sector;
	uint64_t id = rdtsc(), counter = 0;

	(void)zp;
	apic_init();
	virtio_setup(2, 0);
	if (request(0, 0, sector, 1) != 0)
		fail("read of sector 0");
	if (!__builtin_memcmp(r->magic, "HACOUNT1", 8)) {
		counter = r->counter;
		puts_serial("counter: boot id ");
		put_hex(id);
		puts_serial(" resumes at ");
		put_dec(counter);
		puts_serial(" after boot id ");
		put_hex(r->boot_id);
		puts_serial("\n");
	} else {
		puts_serial("counter: boot id ");
		put_hex(id);
		puts_serial(" starts at 0\n");
	}
	for (;;) {
		counter++;
		__builtin_memcpy(r->magic, "HACOUNT1", 8);
		r->boot_id = id;
		r->counter = counter;
		if (request(1, 0, sector, 0) != 0 || request(4, 0, 0, 0) != 0) {
			puts_serial("counter: write failed at ");
			put_dec(counter);
			puts_serial("\n");
			counter--;
		} else if (counter % 10 == 0) {
			puts_serial("count ");
			put_dec(counter);
			puts_serial("\n");
		}
		apic_sleep_ms(100);
	}
}
