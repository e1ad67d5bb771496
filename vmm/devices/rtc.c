/*
 * The PC's CMOS clock (an MC146818 at ports 0x70/0x71), enough for Linux to
 * read the wall-clock time at boot: the time registers come from the host's
 * clock (UTC) at each read, in BCD or binary as register B says; register A
 * never shows an update in progress, D says the RAM and time are valid.
 * Writes to the time registers are ignored (the host's clock is the clock);
 * the other bytes of the 128-byte RAM keep what the guest writes. No alarm,
 * periodic or update interrupts (IRQ 8 stays quiet).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/devices/devices.h"

#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_WEEKDAY 0x06
#define RTC_MDAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_CENTURY 0x32
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02

struct vmm_rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
};

int vmm_rtc_new(struct vmm_rtc **out)
{
	struct vmm_rtc *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->ram[RTC_REG_A] = 0x26;		/* 32.768 kHz, 1024 Hz rate, no update in progress */
	r->ram[RTC_REG_B] = RTC_B_24H;		/* BCD, 24-hour, no interrupts */
	r->ram[RTC_REG_D] = 0x80;		/* valid RAM and time */
	*out = r;
	return 0;
}

void vmm_rtc_free(struct vmm_rtc *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Seconds, minutes, hours, weekday, day, month, year, century: from the host (1, 3, 5 are alarms). */
static bool is_time_reg(unsigned i)
{
	return i == RTC_SECONDS || i == RTC_MINUTES || i == RTC_HOURS || (i >= RTC_WEEKDAY && i <= RTC_YEAR) ||
	       i == RTC_CENTURY;
}

/* The time register i from the host clock, coded as register B asks. */
static uint8_t time_reg(const struct vmm_rtc *r, unsigned i)
{
	time_t now = time(NULL);
	struct tm tm;
	unsigned v;

	gmtime_r(&now, &tm);
	switch (i) {
	case RTC_SECONDS: v = (unsigned)tm.tm_sec; break;
	case RTC_MINUTES: v = (unsigned)tm.tm_min; break;
	case RTC_HOURS: v = (unsigned)tm.tm_hour; break;
	case RTC_WEEKDAY: v = (unsigned)tm.tm_wday + 1; break;
	case RTC_MDAY: v = (unsigned)tm.tm_mday; break;
	case RTC_MONTH: v = (unsigned)tm.tm_mon + 1; break;
	case RTC_YEAR: v = (unsigned)(tm.tm_year + 1900) % 100; break;
	case RTC_CENTURY: v = (unsigned)(tm.tm_year + 1900) / 100; break;
	default: return 0;
	}
	if (r->ram[RTC_REG_B] & RTC_B_DM_BINARY)
		return (uint8_t)v;
	return (uint8_t)((v / 10) << 4 | v % 10);
}

void vmm_rtc_io(struct vmm_rtc *r, unsigned off, bool write, uint8_t *data)
{
	unsigned i;

	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		/* Bit 7 is the NMI mask on a PC: kept out of the index. */
		if (write)
			r->index = *data & 0x7f;
		else
			*data = 0xff;
		pthread_mutex_unlock(&r->lock);
		return;
	}
	i = r->index;
	if (write) {
		if (i == RTC_REG_B)
			r->ram[i] = (uint8_t)((*data & (RTC_B_DM_BINARY | RTC_B_24H)) | RTC_B_24H);
		else if (!is_time_reg(i) && i != RTC_REG_A && i != RTC_REG_C && i != RTC_REG_D)
			r->ram[i] = *data;
	} else if (is_time_reg(i)) {
		*data = time_reg(r, i);
	} else {
		*data = r->ram[i];
	}
	pthread_mutex_unlock(&r->lock);
}

/* Suspend and resume: the index register and the CMOS bytes (the time is the host's, read at each access). */
size_t vmm_rtc_save(struct vmm_rtc *r, void *buf)
{
	uint8_t *b = buf;

	pthread_mutex_lock(&r->lock);
	b[0] = r->index;
	memcpy(b + 1, r->ram, sizeof(r->ram));
	pthread_mutex_unlock(&r->lock);
	return 1 + sizeof(r->ram);
}

int vmm_rtc_load(struct vmm_rtc *r, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	if (len != 1 + sizeof(r->ram))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->index = b[0] & 0x7f;
	memcpy(r->ram, b + 1, sizeof(r->ram));
	pthread_mutex_unlock(&r->lock);
	return 0;
}
