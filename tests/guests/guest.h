/*
 * What vmm's freestanding test guests share: port I/O, the serial console, the
 * zero page's command line and the power-off path vmm documents (the i8042
 * reset command, 0xFE to port 0x64).
 */
#ifndef TESTS_GUESTS_GUEST_H
#define TESTS_GUESTS_GUEST_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

#define COM1 0x3f8

static inline void putc_serial(char ch)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)ch);
}

static inline void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

/* True when the command line the zero page points at contains word. */
static inline int cmdline_has(const uint8_t *zp, const char *word)
{
	const char *s = (const char *)(uintptr_t)*(const uint32_t *)(zp + 0x228), *p, *q;

	for (; s && *s; s++) {
		for (p = s, q = word; *q && *p == *q; p++, q++)
			;
		if (!*q)
			return 1;
	}
	return 0;
}

static inline __attribute__((noreturn)) void poweroff(void)
{
	for (;;) {
		outb(0x64, 0xfe);
		__asm__ volatile("hlt");
	}
}

#endif
