/*
 * The smallest vmm test guest: entered through the 64-bit boot protocol, it
 * checks that RSI points at a zero page carrying the command line and an e820
 * map, prints "hello" and the command line on the serial port, then powers
 * off. Any check that fails prints "FAIL: ..." instead, and still powers off;
 * so does a CMOS clock (ports 0x70/0x71) that is not valid, BCD and 24-hour
 * with no update in progress and a date in this century.
 * With "guest=hang" on the command line it prints "ready" and halts with
 * interrupts off instead (a VM that keeps running, for the lock tests).
 */
#include "guest.h"

void guest_main(const uint8_t *zp);

static uint8_t cmos(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static int bcd_ok(uint8_t v, unsigned lo, unsigned hi)
{
	unsigned d = (v >> 4) * 10 + (v & 0xf);

	return (v >> 4) < 10 && (v & 0xf) < 10 && d >= lo && d <= hi;
}

void guest_main(const uint8_t *zp)
{
	uint32_t cmdline = *(const uint32_t *)(zp + 0x228);
	uint8_t e820 = zp[0x1e8];

	if (zp[0x210] == 0 || e820 < 2 || cmdline == 0 || *(const uint32_t *)(zp + 0x202) != 0x53726448) {
		puts_serial("FAIL: zero page not set up\n");
		poweroff();
	}
	if (cmos(0x0d) != 0x80 || (cmos(0x0a) & 0x80) || (cmos(0x0b) & 0x06) != 0x02 || !bcd_ok(cmos(0), 0, 59) ||
	    !bcd_ok(cmos(2), 0, 59) || !bcd_ok(cmos(4), 0, 23) || !bcd_ok(cmos(7), 1, 31) || !bcd_ok(cmos(8), 1, 12) ||
	    !bcd_ok(cmos(9), 0, 99) || cmos(0x32) != 0x20) {
		puts_serial("FAIL: CMOS clock not valid\n");
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
