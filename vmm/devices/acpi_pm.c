/*
 * The ACPI fixed hardware vmm offers (ACPI 6.0, 4.8): PM1a_EVT (PM1 status,
 * write 1 to clear, and PM1 enable) and PM1a_CNT (SCI_EN always set, since
 * the FADT's SMI_CMD is 0 and the machine is always in ACPI mode; SLP_TYP in
 * bits 10..12, SLP_EN bit 13, write-only), and the reset register at 0xCF9
 * (RST_CPU, bit 2, as on a PC's reset control register). Writing SLP_EN with
 * SLP_TYP 5 (the DSDT's \_S5) powers the VM off; other sleep types are not
 * offered and are ignored. The guest may access any byte of these registers
 * with any width; nothing it writes can do more than set these few bits.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "vmm/devices/acpi_pm.h"

#define PM1_CNT_SCI_EN (1u << 0)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN (1u << 13)
#define RESET_RST_CPU 0x04

void vmm_pm_init(struct vmm_pm *pm)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
}

bool vmm_pm_port(uint16_t port, unsigned size)
{
	return (port < VMM_PM1A_EVT + VMM_PM_NPORTS && port + size > VMM_PM1A_EVT) ||
	       (port == VMM_PM_RESET_PORT && size == 1);
}

/* The 16-bit register holding byte off (0..5) of the PM1a blocks, and which byte of it. */
static uint16_t *reg(struct vmm_pm *pm, unsigned off)
{
	return off < 2 ? &pm->sts : off < 4 ? &pm->en : &pm->cnt;
}

enum vmm_pm_event vmm_pm_io(struct vmm_pm *pm, uint16_t port, bool write, uint8_t *data, unsigned size)
{
	enum vmm_pm_event ev = VMM_PM_NONE;
	unsigned i;

	pthread_mutex_lock(&pm->lock);
	if (port == VMM_PM_RESET_PORT) {
		if (!write) {
			data[0] = pm->reset;
		} else {
			pm->reset = data[0] & ~RESET_RST_CPU;
			if (data[0] & RESET_RST_CPU)
				ev = VMM_PM_RESET;
		}
		goto out;
	}
	for (i = 0; i < size; i++) {
		unsigned p = port + i, off, shift;
		uint16_t *r, v;

		if (p < VMM_PM1A_EVT || p >= VMM_PM1A_EVT + VMM_PM_NPORTS) {
			if (!write)
				data[i] = 0xff;
			continue;
		}
		off = p - VMM_PM1A_EVT;
		shift = 8 * (off & 1);
		r = reg(pm, off);
		if (!write) {
			v = r == &pm->cnt ? (uint16_t)(*r | PM1_CNT_SCI_EN) : *r;
			data[i] = (uint8_t)(v >> shift);
		} else if (r == &pm->sts) {
			*r = (uint16_t)(*r & ~((unsigned)data[i] << shift));	/* write 1 to clear */
		} else {
			*r = (uint16_t)((*r & ~(0xffu << shift)) | (unsigned)data[i] << shift);
		}
	}
	if (write && (pm->cnt & PM1_CNT_SLP_EN)) {
		/* SLP_EN reads as 0: the write is the request, not a state. */
		pm->cnt = (uint16_t)(pm->cnt & ~PM1_CNT_SLP_EN);
		if (((pm->cnt & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT) == VMM_PM_SLP_TYP_S5)
			ev = VMM_PM_POWER_OFF;
	}
out:
	pthread_mutex_unlock(&pm->lock);
	return ev;
}

/* Suspend and resume: PM1a status, enable and control, and the reset register's last byte. */
size_t vmm_pm_save(struct vmm_pm *pm, void *buf)
{
	uint16_t r[4];

	pthread_mutex_lock(&pm->lock);
	r[0] = pm->sts, r[1] = pm->en, r[2] = pm->cnt, r[3] = pm->reset;
	pthread_mutex_unlock(&pm->lock);
	memcpy(buf, r, sizeof(r));
	return sizeof(r);
}

int vmm_pm_load(struct vmm_pm *pm, const void *buf, size_t len)
{
	uint16_t r[4];

	if (len != sizeof(r))
		return -EINVAL;
	memcpy(r, buf, sizeof(r));
	pthread_mutex_lock(&pm->lock);
	pm->sts = r[0], pm->en = r[1];
	pm->cnt = r[2] & (uint16_t)~PM1_CNT_SLP_EN;	/* write-only: a sleep is never pending */
	pm->reset = (uint8_t)(r[3] & ~RESET_RST_CPU);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}
