/*
 * A vmm test guest for several vCPUs: it copies a tiny real-mode trampoline
 * to 0x8000, sends INIT and then a startup IPI (vector 0x08) to all other
 * processors through its LAPIC, as Linux's SMP boot does, and waits until
 * every AP has incremented the counter at 0x8100 (each AP then halts). The
 * number of APs expected is cpus=N on the command line, minus one. Prints
 * "smp: N APs started" and "smp ok", or "FAIL: ..."; then powers off.
 */
#include "guest.h"

void guest_main(const uint8_t *zp);

#define LAPIC ((volatile uint32_t *)0xfee00000ul)
#define ICR_LO (0x300 / 4)
#define ICR_HI (0x310 / 4)
#define SVR (0xf0 / 4)
#define TRAMPOLINE 0x8000ul
#define COUNTER ((volatile uint16_t *)0x8100ul)

/* 16-bit code, CS = 0x0800, DS = 0: lock incw [0x8100]; cli; 1: hlt; jmp 1b */
static const uint8_t trampoline[] = { 0xf0, 0xff, 0x06, 0x00, 0x81, 0xfa, 0xf4, 0xeb, 0xfd };

static void ipi(uint32_t lo)
{
	LAPIC[ICR_HI] = 0;
	LAPIC[ICR_LO] = lo;
	while (LAPIC[ICR_LO] & (1u << 12))	/* delivery pending */
		;
}

void guest_main(const uint8_t *zp)
{
	const char *s = (const char *)(uintptr_t)*(const uint32_t *)(zp + 0x228);
	unsigned want = 0, i;
	unsigned long spins;

	for (; s && *s; s++)
		if (s[0] == 'c' && s[1] == 'p' && s[2] == 'u' && s[3] == 's' && s[4] == '=')
			for (s += 5; *s >= '0' && *s <= '9'; s++)
				want = want * 10 + (unsigned)(*s - '0');
	if (want < 2) {
		puts_serial("FAIL: want cpus=N with N >= 2 on the command line\n");
		poweroff();
	}
	for (i = 0; i < sizeof(trampoline); i++)
		((volatile uint8_t *)TRAMPOLINE)[i] = trampoline[i];
	*COUNTER = 0;
	LAPIC[SVR] = 0x1ff;
	ipi(0x000c4500);		/* INIT, level assert, all excluding self */
	ipi(0x000c4600 | (TRAMPOLINE >> 12));	/* STARTUP, vector 0x08 */
	/* Bounded: an AP that never starts must not hang the test for good. */
	for (spins = 0; *COUNTER < want - 1 && spins < 2000000ul; spins++)
		__asm__ volatile("pause");
	put_dec(*COUNTER);
	puts_serial(" APs started\n");
	if (*COUNTER != want - 1) {
		puts_serial("FAIL: not every AP started\n");
		poweroff();
	}
	puts_serial("smp ok\n");
	poweroff();
}
