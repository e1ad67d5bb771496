/*
 * A vmm test guest for the control socket. It sets up virtio-balloon, says
 * "ctl: ready" and polls the balloon's num_pages until the host sets a target
 * (vmm ctl SOCKET balloon N), writes it back as "actual" and prints it; then
 * it reads sector 0 of virtio-blk four times in a row (the host has set a
 * rate limit of one operation per second, so some of them must wait), says
 * "ctl: done" and halts until vmm is stopped. "FAIL: ..." when a step fails.
 */
#include "virtio.h"

void guest_main(const uint8_t *zp);

static uint8_t buf[512];

void guest_main(const uint8_t *zp)
{
	volatile uint8_t *bcfg;
	uint32_t target;
	unsigned i;

	(void)zp;
	virtio_setup(5, 0);
	bcfg = devcfg;
	puts_serial("ctl: ready\n");
	while (!(target = R32(bcfg, 0)))
		;
	W32(bcfg, 4, target);	/* actual */
	puts_serial("ctl: balloon target ");
	put_dec(target);
	puts_serial("\n");

	virtio_setup(2, 0);
	for (i = 0; i < 4; i++) {
		virtq_run(blk_desc(0, 0, buf, 1));
		if (blk_status != 0)
			fail("a read failed");
	}
	puts_serial("ctl: done\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}
