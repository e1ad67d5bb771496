/*
 * The smallest vmm test guest: entered through the 64-bit boot protocol, it
 * checks that RSI points at a zero page carrying the command line and an e820
 * map, prints "hello" and the command line on the serial port, then powers
 * off. Any check that fails prints "FAIL: ..." instead, and still powers off.
 * With "guest=hang" on the command line it prints "ready" and halts with
 * interrupts off instead (a VM that keeps running, for the lock tests).
 */
#include "guest.h"

void guest_main(const uint8_t *zp);

void guest_main(const uint8_t *zp)
{
	uint32_t cmdline = *(const uint32_t *)(zp + 0x228);
	uint8_t e820 = zp[0x1e8];

	if (zp[0x210] == 0 || e820 < 2 || cmdline == 0 || *(const uint32_t *)(zp + 0x202) != 0x53726448) {
		puts_serial("FAIL: zero page not set up\n");
		poweroff();
	}
	puts_serial("hello\n");
	puts_serial("cmdline: ");
	puts_serial((const char *)(uintptr_t)cmdline);
	puts_serial("\n");
	if (cmdline_has(zp, "guest=hang")) {
		puts_serial("ready\n");
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	poweroff();
}
