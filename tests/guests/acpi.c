/*
 * A vmm test guest for the ACPI tables, which takes nothing on trust: it
 * finds the RSDP the way Linux does (the "RSD PTR " signature on a 16-byte
 * boundary in 0xE0000..0xFFFFF), checks both of its checksums, walks the XSDT
 * (and the RSDT, which must list the same tables) to the FADT and the MADT,
 * checks every table's checksum, the FACS and the DSDT the FADT points at;
 * counts the MADT's enabled processors against "cpus=N" on the command line
 * and finds its IOAPIC; reads \_S5 and \_SB.PCI0._PRT out of the DSDT's AML
 * and checks each PCI slot's interrupt line against its _PRT entry. Then it
 * makes writes vmm must ignore (a sleep type that is not S5, a reset write
 * without RST_CPU, a 4-byte write across PM1a_CNT) and powers off by writing
 * SLP_TYP(S5) | SLP_EN to PM1a_CNT, or with "acpi=reset" on the command line
 * by writing RESET_VALUE to RESET_REG. If it is still running after that it
 * prints "FAIL: ..." and powers off through the i8042, as on any failure.
 */
#include "guest.h"

void guest_main(const uint8_t *zp);

#define PM1_SLP_EN (1u << 13)
#define PM1_SCI_EN (1u << 0)

typedef const volatile uint8_t *tbl;

static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static uint16_t get16(tbl p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(tbl p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(tbl p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static int sig_is(tbl p, const char *sig)
{
	return p[0] == sig[0] && p[1] == sig[1] && p[2] == sig[2] && p[3] == sig[3];
}

/* A table with a standard header at addr: its signature is sig, its length sane and its checksum right. */
static tbl table(uint64_t addr, const char *sig, const char *what)
{
	tbl t = (tbl)(uintptr_t)addr;
	uint32_t len;

	if (!addr || addr >= 0x100000000ull)
		fail(what);
	len = get32(t + 4);
	if (!sig_is(t, sig) || len < 36 || len > 65536 || sum(t, len) != 0)
		fail(what);
	return t;
}

/* Finds Name(NAME, ...) in the AML: the byte after the name (the object's opcode), or NULL. */
static tbl aml_find(tbl aml, uint32_t len, const char *name)
{
	for (uint32_t i = 1; i + 5 < len; i++)
		if (aml[i - 1] == 0x08 && sig_is(aml + i, name))
			return aml + i + 4;
	return 0;
}

/* Skips a PkgLength. */
static tbl pkglen(tbl p)
{
	return p + 1 + (p[0] >> 6);
}

/* Reads one integer term (ZeroOp, OneOp, Byte/Word/DWordConst) and steps past it. */
static uint64_t aml_int(tbl *pp)
{
	tbl p = *pp;

	switch (p[0]) {
	case 0x00: *pp = p + 1; return 0;
	case 0x01: *pp = p + 1; return 1;
	case 0x0a: *pp = p + 2; return p[1];
	case 0x0b: *pp = p + 3; return get16(p + 1);
	case 0x0c: *pp = p + 5; return get32(p + 1);
	}
	fail("DSDT: an integer term vmm does not write");
}

static void put_hex(uint64_t v)
{
	char b[19];
	int i = 18;

	b[i] = 0;
	do
		b[--i] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) && i > 2);
	b[--i] = 'x';
	b[--i] = '0';
	puts_serial(b + i);
}

void guest_main(const uint8_t *zp)
{
	tbl rsdp = 0, xsdt, rsdt, fadt = 0, madt = 0, facs, dsdt, e, p;
	uint32_t nx, i, dsdt_len, cpus = 0, ioapic = 0, ioapic_id = 0, slots = 0, want_cpus = cmdline_cpus(zp);
	uint16_t pm1a_cnt, pm1a_evt, reset_port, typ;
	uint64_t dsdt_addr;

	for (uintptr_t a = 0xe0000; a < 0x100000 && !rsdp; a += 16) {
		tbl r = (tbl)a;

		if (sig_is(r, "RSD ") && sig_is(r + 4, "PTR ") && sum(r, 20) == 0)
			rsdp = r;
	}
	if (!rsdp)
		fail("no RSDP in 0xE0000..0xFFFFF");
	if (rsdp[15] < 2 || get32(rsdp + 20) != 36 || sum(rsdp, 36) != 0)
		fail("RSDP: not revision 2 with a right extended checksum");
	xsdt = table(get64(rsdp + 24), "XSDT", "XSDT: bad signature, length or checksum");
	rsdt = table(get32(rsdp + 16), "RSDT", "RSDT: bad signature, length or checksum");
	nx = (get32(xsdt + 4) - 36) / 8;
	if ((get32(rsdt + 4) - 36) / 4 != nx)
		fail("the RSDT and the XSDT list a different number of tables");
	for (i = 0; i < nx; i++) {
		uint64_t a = get64(xsdt + 36 + 8 * i);
		tbl t = (tbl)(uintptr_t)a;

		if (get32(rsdt + 36 + 4 * i) != a)
			fail("the RSDT and the XSDT list different tables");
		if (sig_is(t, "FACP"))
			fadt = table(a, "FACP", "FADT: bad length or checksum");
		else if (sig_is(t, "APIC"))
			madt = table(a, "APIC", "MADT: bad length or checksum");
	}
	if (!fadt || !madt)
		fail("the XSDT lists no FADT or no MADT");

	/* FADT: FACS, DSDT, PM1a blocks, reset register */
	if (get32(fadt + 4) < 244 || fadt[8] < 3)
		fail("FADT: shorter than revision 3");
	facs = (tbl)(uintptr_t)get32(fadt + 36);
	if (!facs || ((uintptr_t)facs & 63) || !sig_is(facs, "FACS") || get32(facs + 4) < 64)
		fail("FADT: no 64-byte aligned FACS");
	dsdt_addr = get64(fadt + 140);
	if (dsdt_addr && get32(fadt + 40) && dsdt_addr != get32(fadt + 40))
		fail("FADT: DSDT and X_DSDT differ");
	dsdt = table(dsdt_addr ? dsdt_addr : get32(fadt + 40), "DSDT", "DSDT: bad signature, length or checksum");
	dsdt_len = get32(dsdt + 4);
	pm1a_evt = (uint16_t)get32(fadt + 56);
	pm1a_cnt = (uint16_t)get32(fadt + 64);
	if (!pm1a_evt || !pm1a_cnt || fadt[88] < 4 || fadt[89] < 2 || get32(fadt + 56) > 0xffff ||
	    get32(fadt + 64) > 0xffff)
		fail("FADT: no PM1a event and control blocks in port space");
	if (!(get32(fadt + 112) & (1u << 10)) || fadt[116] != 1 || fadt[117] != 8 || get64(fadt + 120) > 0xffff)
		fail("FADT: no 8-bit reset register in port space");
	reset_port = (uint16_t)get64(fadt + 120);
	puts_serial("acpi: RSDP, XSDT, RSDT, FADT, FACS, DSDT and MADT ok\n");

	/* MADT: processors and the IOAPIC */
	for (e = madt + 44; e + 2 <= madt + get32(madt + 4) && e[1] >= 2; e += e[1]) {
		if (e[0] == 0 && e[1] == 8 && (get32(e + 4) & 1)) {
			if (e[3] != cpus)
				fail("MADT: APIC IDs are not 0..N-1 in order");
			cpus++;
		} else if (e[0] == 1 && e[1] == 12) {
			ioapic = get32(e + 4);
			ioapic_id = e[2];
			if (get32(e + 8) != 0)
				fail("MADT: the IOAPIC's GSI base is not 0");
		}
	}
	if (cpus != want_cpus)
		fail("MADT: the number of enabled processors is not cpus=N");
	if (!ioapic)
		fail("MADT: no IOAPIC");
	puts_serial("acpi: MADT: ");
	put_dec(cpus);
	puts_serial(" cpus, IOAPIC id ");
	put_dec(ioapic_id);
	puts_serial(" at ");
	put_hex(ioapic);
	puts_serial("\n");

	/* _PRT: each PCI slot's INTA# on the GSI its interrupt line register names */
	p = aml_find(dsdt + 36, dsdt_len - 36, "_PRT");
	if (!p || p[0] != 0x12)
		fail("DSDT: no _PRT package");
	p = pkglen(p + 1);
	for (uint8_t n = *p++; n; n--) {
		uint64_t addr, pin, gsi;

		if (p[0] != 0x12)
			fail("DSDT: a _PRT entry is not a package");
		p = pkglen(p + 1);
		if (*p++ != 4)
			fail("DSDT: a _PRT entry has not 4 elements");
		addr = aml_int(&p);
		pin = aml_int(&p);
		aml_int(&p);		/* source: 0, a GSI */
		gsi = aml_int(&p);
		if ((addr & 0xffff) != 0xffff || pin != 0 || cfg_read((unsigned)(addr >> 16), 0) == 0xffffffffu ||
		    (cfg_read((unsigned)(addr >> 16), 0x3c) & 0xff) != gsi)
			fail("DSDT: a _PRT entry does not match its slot's interrupt line");
		slots++;
	}
	for (i = 1; i < 32 && cfg_read(i, 0) != 0xffffffffu; i++)
		;
	if (slots != i - 1)
		fail("DSDT: _PRT does not cover every PCI slot");
	puts_serial("acpi: _PRT matches ");
	put_dec(slots);
	puts_serial(" PCI slots\n");

	/* \_S5: Package() { SLP_TYPa, ... } */
	p = aml_find(dsdt + 36, dsdt_len - 36, "_S5_");
	if (!p || p[0] != 0x12)
		fail("DSDT: no \\_S5 package");
	p = pkglen(p + 1) + 1;
	typ = (uint16_t)aml_int(&p);
	if (typ > 7)
		fail("DSDT: \\_S5's SLP_TYPa is not 0..7");

	/* Writes that must not end the VM: S1 (not offered), 0xCF9 without RST_CPU, junk across PM1a_CNT. */
	outw(pm1a_cnt, (uint16_t)((typ == 1 ? 2 : 1) << 10 | PM1_SLP_EN));
	outb(reset_port, 0x02);
	outl(pm1a_cnt, 0xffff0000u);
	if ((inw(pm1a_cnt) & (PM1_SLP_EN | PM1_SCI_EN)) != PM1_SCI_EN)
		fail("PM1a_CNT: SLP_EN does not read 0 or SCI_EN is clear");
	inl(pm1a_evt);
	if (cmdline_has(zp, "acpi=reset")) {
		puts_serial("acpi: resetting through RESET_REG\n");
		outb(reset_port, fadt[128]);
		fail("still running after the write to RESET_REG");
	}
	puts_serial("acpi: S5 is SLP_TYP ");
	put_dec(typ);
	puts_serial(", powering off through PM1a_CNT\n");
	outw(pm1a_cnt, (uint16_t)(typ << 10 | PM1_SLP_EN));
	fail("still running after SLP_TYP(S5) | SLP_EN in PM1a_CNT");
}
