/*
 * Interrupts for vmm's test guests: an IDT of 64-bit interrupt gates, the
 * local APIC (enabled, the PIC masked as Linux does) and its timer, so a
 * guest can sleep in HLT instead of spinning. Include after guest.h, from
 * one file per guest; handlers are __attribute__((interrupt)) functions that
 * end with lapic_eoi().
 */
#ifndef TESTS_GUESTS_APIC_H
#define TESTS_GUESTS_APIC_H

#include "guest.h"

#define LAPIC ((volatile uint8_t *)0xfee00000ul)
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV 0x3e0
#define VEC_TIMER 0x50

struct interrupt_frame;
struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
};
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr;
static volatile unsigned timer_fired;

static inline void lapic_eoi(void)
{
	*(volatile uint32_t *)(LAPIC + LAPIC_EOI) = 0;
}

static void set_gate(unsigned vec, void (*h)(struct interrupt_frame *))
{
	uint64_t a = (uint64_t)(uintptr_t)h;

	idt[vec] = (struct idt_gate){ (uint16_t)a, 0x10, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0 };
}

__attribute__((interrupt)) static void timer_handler(struct interrupt_frame *f)
{
	(void)f;
	timer_fired = 1;
	lapic_eoi();
}

/*
 * Loads an empty IDT but for the timer's gate (callers add theirs), masks
 * the PIC (KVM's starts unmasked, LINT0 in ExtINT mode: a PC's virtual
 * wire), and software-enables the LAPIC (spurious vector 0xff).
 */
static void apic_init(void)
{
	unsigned i;

	for (i = 0; i < 256; i++)
		idt[i] = (struct idt_gate){ 0 };
	set_gate(VEC_TIMER, timer_handler);
	idtr.limit = sizeof(idt) - 1;
	idtr.base = (uint64_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	*(volatile uint32_t *)(LAPIC + LAPIC_TPR) = 0;
	*(volatile uint32_t *)(LAPIC + LAPIC_SVR) = 0x1ff;
}

/*
 * Sleeps in HLT for about ms milliseconds on the LAPIC timer, one-shot
 * (KVM's APIC bus runs at 1 GHz: divide by 16 gives 62500 counts a ms).
 */
static __attribute__((unused)) void apic_sleep_ms(unsigned ms)
{
	timer_fired = 0;
	*(volatile uint32_t *)(LAPIC + LAPIC_TIMER_DIV) = 0x3;		/* divide by 16 */
	*(volatile uint32_t *)(LAPIC + LAPIC_LVT_TIMER) = VEC_TIMER;	/* one-shot, unmasked */
	*(volatile uint32_t *)(LAPIC + LAPIC_TIMER_INIT) = ms * 62500u;
	while (!timer_fired)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

#endif
