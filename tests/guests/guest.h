/*
 * What vmm's freestanding test guests share: port I/O, PCI configuration
 * reads and writes, the serial console, the zero page's command line, and the
 * power-off path the guests use on failure (the i8042 reset command, 0xFE to
 * port 0x64; the acpi guest checks the ACPI one).
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

/* N of "cpus=N" on the command line, 0 when there is none. */
static inline unsigned cmdline_cpus(const uint8_t *zp)
{
	const char *s = (const char *)(uintptr_t)*(const uint32_t *)(zp + 0x228);
	unsigned n = 0;

	for (; s && *s; s++)
		if (s[0] == 'c' && s[1] == 'p' && s[2] == 'u' && s[3] == 's' && s[4] == '=')
			for (s += 5; *s >= '0' && *s <= '9'; s++)
				n = n * 10 + (unsigned)(*s - '0');
	return n;
}

/* The byte sum of len bytes at p: a table whose checksum is right sums to 0. */
static inline uint8_t sum(const volatile uint8_t *p, unsigned len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

static inline __attribute__((noreturn)) void poweroff(void)
{
	for (;;) {
		outb(0x64, 0xfe);
		__asm__ volatile("hlt");
	}
}

static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
/* PCI configuration mechanism #1: a dword of bus 0, slot, function 0. */
static inline uint32_t cfg_read(unsigned slot, unsigned off)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	return inl(0xcfc);
}
static inline void cfg_write(unsigned slot, unsigned off, uint32_t v)
{
	outl(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc));
	outl(0xcfc, v);
}

static inline void put_dec(uint64_t v)
{
	char b[24];
	int i = 23;

	b[i] = 0;
	do
		b[--i] = (char)('0' + v % 10);
	while ((v /= 10) && i > 0);
	puts_serial(b + i);
}

static inline __attribute__((noreturn)) void fail(const char *why)
{
	puts_serial("FAIL: ");
	puts_serial(why);
	puts_serial("\n");
	poweroff();
}

#endif
