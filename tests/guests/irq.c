/*
 * A vmm test guest for interrupts, which takes nothing on trust: it finds the
 * MP table the way Linux does (the "_MP_" floating pointer on a 16-byte
 * boundary in 0xF0000..0xFFFFF), checks both checksums, counts the enabled
 * processors against "cpus=N" on the command line, and takes the IOAPIC's
 * address and the pins of virtio-blk's INTA# and of ISA IRQ 4 from it. Then
 * it enables its LAPIC, loads an IDT, programs those two IOAPIC pins as the
 * table says (PCI: level, active high; ISA: edge) and:
 *   - reads sector 0 of virtio-blk twice, each time sleeping in HLT until
 *     the request is done and an interrupt whose handler saw ISR bit 0 came
 *     (vmm completes requests on its I/O thread, so the guest really waits);
 *     the ISR reads 0 afterwards;
 *   - enables the UART's receive interrupt and waits for "ping\n" from vmm's
 *     stdin, then its "THR empty" interrupt.
 * It prints one line per step and "irq ok", or "FAIL: ...", then powers off.
 */
#include "virtio.h"
#include "apic.h"

void guest_main(const uint8_t *zp);

#define VEC_BLK 0x30
#define VEC_COM 0x24
#define VEC_MSI 0x40

static volatile unsigned blk_irqs, msi_irqs, com_irqs, thre_irqs, nrx;
static volatile char rx[8];
static volatile uint8_t *ioapic;

struct mp_info {
	unsigned cpus, bsp;
	int isa_bus, pci_bus;
	uint32_t ioapic_addr;
	const uint8_t *intsrc[64];
	unsigned nintsrc;
};
static struct mp_info mp;

static uint8_t buf[512];

__attribute__((interrupt)) static void blk_handler(struct interrupt_frame *f)
{
	(void)f;
	/* Reading the ISR acknowledges: vmm lowers INTA# here. Bit 0 clear: not ours (a shared line may do that). */
	if (R8(isr, 0) & 1)
		blk_irqs++;
	W32(LAPIC, LAPIC_EOI, 0);
}

__attribute__((interrupt)) static void msi_handler(struct interrupt_frame *f)
{
	(void)f;
	msi_irqs++;
	W32(LAPIC, LAPIC_EOI, 0);
}

__attribute__((interrupt)) static void com_handler(struct interrupt_frame *f)
{
	uint8_t iir = inb(COM1 + 2);

	(void)f;
	com_irqs++;
	if ((iir & 0x0f) == 0x02)
		thre_irqs++;
	while (inb(COM1 + 5) & 1) {
		char c = (char)inb(COM1);

		if (nrx < sizeof(rx))
			rx[nrx++] = c;
	}
	W32(LAPIC, LAPIC_EOI, 0);
}

static void parse_mp(void)
{
	const volatile uint8_t *f = 0, *t, *e;
	uintptr_t a;
	unsigned i, n, len;

	for (a = 0xf0000; a < 0x100000 && !f; a += 16) {
		const volatile uint8_t *p = (const volatile uint8_t *)a;

		if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_')
			f = p;
	}
	if (!f)
		fail("no MP floating pointer in 0xF0000..0xFFFFF");
	if (f[8] != 1 || sum(f, 16) != 0)
		fail("MP floating pointer: bad length or checksum");
	if (f[11] != 0)
		fail("MP floating pointer: a default configuration instead of a table");
	t = (const volatile uint8_t *)(uintptr_t)R32(f, 4);
	if (t[0] != 'P' || t[1] != 'C' || t[2] != 'M' || t[3] != 'P')
		fail("MP configuration table: no PCMP signature");
	len = R16(t, 4);
	if (len < 44 || len > 4096 || sum(t, len) != 0)
		fail("MP configuration table: bad length or checksum");
	if (R32(t, 36) != 0xfee00000u)
		fail("MP configuration table: LAPIC not at 0xFEE00000");
	n = R16(t, 34);
	mp.isa_bus = mp.pci_bus = -1;
	for (i = 0, e = t + 44; i < n; i++) {
		unsigned size = e[0] == 0 ? 20 : 8;

		if (e + size > t + len || e[0] > 4)
			fail("MP configuration table: an entry runs past the end or has an unknown type");
		if (e[0] == 0 && (e[3] & 1)) {
			mp.cpus++;
			if (e[3] & 2)
				mp.bsp++;
		} else if (e[0] == 1 && e[2] == 'I' && e[3] == 'S' && e[4] == 'A') {
			mp.isa_bus = e[1];
		} else if (e[0] == 1 && e[2] == 'P' && e[3] == 'C' && e[4] == 'I') {
			mp.pci_bus = e[1];
		} else if (e[0] == 2 && (e[3] & 1)) {
			mp.ioapic_addr = R32(e, 4);
		} else if (e[0] == 3 && mp.nintsrc < 64) {
			mp.intsrc[mp.nintsrc++] = (const uint8_t *)e;
		}
		e += size;
	}
	if (e != t + len)
		fail("MP configuration table: entries do not fill the base table length");
	if (mp.bsp != 1 || mp.isa_bus < 0 || mp.pci_bus < 0 || !mp.ioapic_addr)
		fail("MP configuration table: no boot processor, ISA bus, PCI bus or IOAPIC");
	/* Linux matches a PCI bus entry's ID against the PCI bus number: ours is bus 0. */
	if (mp.pci_bus != 0)
		fail("MP configuration table: the PCI bus is not bus ID 0");
}

/* The IOAPIC pin of source IRQ irq on bus; *flags gets the entry's polarity and trigger bits. */
static unsigned mp_pin(int bus, unsigned irq, unsigned *flags)
{
	unsigned i;

	for (i = 0; i < mp.nintsrc; i++) {
		const uint8_t *e = mp.intsrc[i];

		if (e[1] == 0 && e[4] == bus && e[5] == irq) {
			*flags = e[2];
			return e[7];
		}
	}
	fail("MP configuration table: no I/O interrupt entry for a source");
}

static void ioapic_route(unsigned pin, unsigned vec, unsigned flags)
{
	uint32_t lo = vec;

	if ((flags & 0x0c) == 0x0c)
		lo |= 1u << 15;	/* level */
	if ((flags & 0x03) == 0x03)
		lo |= 1u << 13;	/* active low */
	W32(ioapic, 0, 0x10 + 2 * pin + 1);
	W32(ioapic, 0x10, 0);	/* destination: LAPIC 0 */
	W32(ioapic, 0, 0x10 + 2 * pin);
	W32(ioapic, 0x10, lo);
}

/* Waits with interrupts on, in HLT, until *count reaches n; interrupts are off again afterwards. */
static void wait_irqs(volatile unsigned *count, unsigned n)
{
	while (*count < n)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

/*
 * MSI-X on the same device: vector 0 of its table to VEC_MSI, queue 0 on
 * vector 0, one completion by message; then with the entry masked a
 * completion must leave the PBA bit set and no message, and unmasking sends it.
 */
static void msix_test(void)
{
	unsigned cap, i;
	volatile uint8_t *table, *pba;
	uint32_t bar = cfg_read(virtio_slot, 0x10) & ~0xfu;
	uint16_t idx;

	for (cap = cfg_read(virtio_slot, 0x34) & 0xff; cap; cap = (cfg_read(virtio_slot, cap) >> 8) & 0xff)
		if ((cfg_read(virtio_slot, cap) & 0xff) == 0x11)
			break;
	if (!cap)
		fail("no MSI-X capability");
	if (((cfg_read(virtio_slot, cap) >> 16) & 0x7ff) < 1 || (cfg_read(virtio_slot, cap + 4) & 7) ||
	    (cfg_read(virtio_slot, cap + 8) & 7))
		fail("MSI-X: fewer than 2 vectors, or the table or PBA not in BAR0");
	table = (volatile uint8_t *)(uintptr_t)(bar + (cfg_read(virtio_slot, cap + 4) & ~7u));
	pba = (volatile uint8_t *)(uintptr_t)(bar + (cfg_read(virtio_slot, cap + 8) & ~7u));
	W32(table, 0, 0xfee00000u);	/* LAPIC 0, fixed delivery */
	W32(table, 4, 0);
	W32(table, 8, VEC_MSI);
	W32(table, 12, 0);		/* unmasked */
	W16(common, 0x10, 7);		/* config vector 7: not in the table */
	if (R16(common, 0x10) != 0xffff)
		fail("MSI-X: a vector past the table was not refused");
	W16(common, 0x16, 0);
	W16(common, 0x1a, 0);
	if (R16(common, 0x1a) != 0)
		fail("MSI-X: queue 0 did not take vector 0");
	cfg_write(virtio_slot, cap, cfg_read(virtio_slot, cap) | 1u << 31);	/* enable */

	idx = used.idx;
	virtq_submit(blk_desc(0, 0, buf, 1));
	while (used.idx == idx || !msi_irqs)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	if (blk_status != 0 || R8(isr, 0) != 0)
		fail("MSI-X: the read failed, or the ISR was set");

	W32(table, 12, 1);		/* masked */
	idx = used.idx;
	virtq_submit(blk_desc(0, 0, buf, 1));
	while (used.idx == idx)
		;			/* polled: a masked vector sends nothing */
	for (i = 0; i < 1000; i++)
		__asm__ volatile("sti; nop; cli" ::: "memory");
	if (msi_irqs != 1 || !(R8(pba, 0) & 1))
		fail("MSI-X: a masked vector was sent, or not left pending");
	W32(table, 12, 0);		/* unmasked: the pending message goes */
	while (msi_irqs < 2)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	if (R8(pba, 0) & 1)
		fail("MSI-X: the PBA bit stayed set");
	puts_serial("irq: virtio-blk completions by MSI-X, a masked one held in the PBA\n");
}

void guest_main(const uint8_t *zp)
{
	unsigned pin, flags, com_pin, com_flags, i;
	uint16_t idx;

	parse_mp();
	if (mp.cpus != cmdline_cpus(zp))
		fail("MP table: the number of enabled processors is not cpus= from the command line");
	puts_serial("irq: mp table ok, ");
	put_dec(mp.cpus);
	puts_serial(" cpus\n");
	ioapic = (volatile uint8_t *)(uintptr_t)mp.ioapic_addr;

	virtio_setup(2, 0);
	if (!isr)
		fail("no ISR capability");
	pin = mp_pin(mp.pci_bus, virtio_slot << 2, &flags);
	if ((flags & 0x0f) != 0x0d)
		fail("virtio-blk's INTA# is not level-triggered, active high in the MP table");
	if ((cfg_read(virtio_slot, 0x3c) & 0xffff) != (0x100 | pin))
		fail("interrupt line/pin in PCI configuration space disagree with the MP table");
	W32(ioapic, 0, 1);
	if (((R32(ioapic, 0x10) >> 16) & 0xff) < pin)
		fail("IOAPIC has fewer pins than the MP table uses");

	apic_init();	/* the IDT is loaded: gates set now take effect */
	set_gate(VEC_BLK, blk_handler);
	set_gate(VEC_COM, com_handler);
	set_gate(VEC_MSI, msi_handler);
	ioapic_route(pin, VEC_BLK, flags);

	for (i = 1; i <= 2; i++) {
		idx = used.idx;
		blk_irqs = 0;
		virtq_submit(blk_desc(0, 0, buf, 1));
		/* Only interrupts wake the HLT: without one the guest would sleep until vmm's timeout. */
		while (used.idx == idx || !blk_irqs)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		if (blk_status != 0)
			fail("the read by interrupt failed");
	}
	if (R8(isr, 0) != 0)
		fail("ISR not cleared by the read");
	puts_serial("irq: virtio-blk completions by interrupt on IOAPIC pin ");
	put_dec(pin);
	puts_serial("\n");

	msix_test();

	com_pin = mp_pin(mp.isa_bus, 4, &com_flags);
	ioapic_route(com_pin, VEC_COM, com_flags);
	outb(COM1 + 4, 0x0b);	/* DTR, RTS, OUT2 (gates the IRQ) */
	outb(COM1 + 1, 0x01);	/* received data */
	while (nrx < 5)
		wait_irqs(&com_irqs, com_irqs + 1);
	if (rx[0] != 'p' || rx[1] != 'i' || rx[2] != 'n' || rx[3] != 'g' || rx[4] != '\n')
		fail("serial input is not \"ping\\n\"");
	puts_serial("irq: serial input by interrupt on IOAPIC pin ");
	put_dec(com_pin);
	puts_serial(": ping\n");
	outb(COM1 + 1, 0x03);	/* and transmitter empty: fires at once */
	wait_irqs(&thre_irqs, 1);
	outb(COM1 + 1, 0x00);
	puts_serial("irq ok\n");
	poweroff();
}
