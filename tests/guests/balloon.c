/*
 * A vmm test guest for virtio-balloon: fills two 4 KiB pages with a pattern,
 * puts the first one's frame number on the inflate queue and checks that it
 * now reads as zeros (the host gave it back) while the second still holds
 * the pattern. Prints "balloon ok" or "FAIL: ...", then powers off.
 */
#include "virtio.h"

void guest_main(const uint8_t *zp);

static uint8_t pages[2][4096] __attribute__((aligned(4096)));
static uint32_t pfns[1];

void guest_main(const uint8_t *zp)
{
	unsigned i;

	(void)zp;
	for (i = 0; i < 4096; i++)
		pages[0][i] = pages[1][i] = 0x5a;
	virtio_setup(5, 0);
	pfns[0] = (uint32_t)((uintptr_t)pages[0] >> 12);
	ring_desc[0] = (struct desc){ (uint64_t)(uintptr_t)pfns, sizeof(pfns), 0, 0 };
	virtq_run(1);
	for (i = 0; i < 4096; i++)
		if (pages[0][i] != 0)
			fail("an inflated page still holds its data");
	for (i = 0; i < 4096; i++)
		if (pages[1][i] != 0x5a)
			fail("a page next to the inflated one lost its data");
	puts_serial("balloon ok\n");
	poweroff();
}
