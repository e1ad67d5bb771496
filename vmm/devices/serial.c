/*
 * An 8250 UART (the PC's COM1 at port 0x3F8), enough for a console: bytes the
 * guest writes to the transmit register go to the output fd at once, the line
 * status always reports the transmitter empty, and the other registers hold
 * what the guest wrote so Linux's probe (scratch register, loopback via MCR)
 * finds a UART. No input and no interrupts yet.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "vmm/vmm_i.h"

#define UART_RX_TX 0
#define UART_IER 1
#define UART_IIR_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NO_INT 0x01
#define UART_MCR_LOOP 0x10

struct vmm_serial {
	int fd;
	uint8_t ier, lcr, mcr, scr, dll, dlm;
};

int vmm_serial_new(int out_fd, struct vmm_serial **out)
{
	struct vmm_serial *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->fd = out_fd;
	s->dll = 12;	/* 9600 baud until the guest sets it */
	*out = s;
	return 0;
}

void vmm_serial_free(struct vmm_serial *s)
{
	free(s);
}

static void emit(struct vmm_serial *s, uint8_t ch)
{
	ssize_t n;

	do
		n = write(s->fd, &ch, 1);
	while (n < 0 && errno == EINTR);
	/* A closed stdout loses the console, not the guest. */
}

void vmm_serial_io(struct vmm_serial *s, unsigned off, bool write, uint8_t *data)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	if (write) {
		uint8_t v = *data;

		switch (off) {
		case UART_RX_TX:
			if (dlab)
				s->dll = v;
			else if (!(s->mcr & UART_MCR_LOOP))
				emit(s, v);
			break;
		case UART_IER:
			if (dlab)
				s->dlm = v;
			else
				s->ier = v & 0x0f;
			break;
		case UART_LCR: s->lcr = v; break;
		case UART_MCR: s->mcr = v & 0x1f; break;
		case UART_SCR: s->scr = v; break;
		default: break;	/* FCR, LSR, MSR: nothing to keep */
		}
		return;
	}
	switch (off) {
	case UART_RX_TX: *data = dlab ? s->dll : 0; break;
	case UART_IER: *data = dlab ? s->dlm : s->ier; break;
	case UART_IIR_FCR: *data = UART_IIR_NO_INT; break;
	case UART_LCR: *data = s->lcr; break;
	case UART_MCR: *data = s->mcr; break;
	case UART_LSR: *data = UART_LSR_THRE | UART_LSR_TEMT; break;
	case UART_MSR:
		/* In loopback, MCR's DTR/RTS/OUT1/OUT2 read back as DSR/CTS/RI/DCD. */
		if (s->mcr & UART_MCR_LOOP)
			*data = (uint8_t)(((s->mcr & 1) << 5) | ((s->mcr & 2) << 3) | ((s->mcr & 0xc) << 4));
		else
			*data = 0xb0;	/* DCD, DSR, CTS: a cable is there */
		break;
	case UART_SCR: *data = s->scr; break;
	default: *data = 0xff; break;
	}
}
