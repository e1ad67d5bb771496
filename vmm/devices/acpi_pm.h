/*
 * The ACPI fixed hardware (vmm/devices/acpi_pm.c): the FADT's registers
 * (x86/acpi.c describes them), PM1a_EVT (status and enable, 2 bytes each) and
 * PM1a_CNT (2 bytes) in ports VMM_PM1A_EVT..+5, and the reset register (the
 * PC's 0xCF9). The SCI is ISA IRQ 9; nothing raises it (there are no fixed
 * events to report). A guest access can only power off or reset the VM.
 */
#ifndef VMM_DEVICES_ACPI_PM_H
#define VMM_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_PM1A_EVT 0x600
#define VMM_PM1A_CNT 0x604
#define VMM_PM_NPORTS 6
#define VMM_PM_SCI_IRQ 9
#define VMM_PM_RESET_PORT 0xcf9
#define VMM_PM_RESET_VALUE 0x06
#define VMM_PM_SLP_TYP_S5 5       /* \_S5 in the DSDT */

struct vmm_pm {
	pthread_mutex_t lock;     /* vCPUs may touch the registers at once */
	uint16_t sts, en, cnt;
	uint8_t reset;            /* the last byte written to the reset register */
};

enum vmm_pm_event { VMM_PM_NONE, VMM_PM_POWER_OFF, VMM_PM_RESET };

void vmm_pm_init(struct vmm_pm *pm);
/* True when an access of size bytes at port touches the PM1a blocks or the reset register. */
bool vmm_pm_port(uint16_t port, unsigned size);
/*
 * One port access (size 1, 2 or 4 bytes, guest-chosen; bytes outside the
 * registers read all ones and ignore writes). Returns VMM_PM_POWER_OFF when
 * the guest wrote SLP_EN with SLP_TYP S5 into PM1a_CNT, VMM_PM_RESET when it
 * wrote the reset value's RST_CPU bit to the reset register, else VMM_PM_NONE.
 */
enum vmm_pm_event vmm_pm_io(struct vmm_pm *pm, uint16_t port, bool write, uint8_t *data, unsigned size);

/* Suspend and resume (a vm.state section): save returns the bytes put in buf; load -EINVAL on a wrong length. */
size_t vmm_pm_save(struct vmm_pm *pm, void *buf);
int vmm_pm_load(struct vmm_pm *pm, const void *buf, size_t len);

#endif
