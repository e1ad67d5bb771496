/*
 * A 16550A UART (the PC's COM1 at port 0x3F8, ISA IRQ 4), enough for a
 * console: bytes the guest writes to the transmit register go to the output
 * fd at once, so the transmitter is always empty; bytes from the input fd
 * fill a 16-byte receive FIFO through a reader thread, which waits while the
 * FIFO is full (the guest's reads make room). Interrupts follow the 8250:
 * "received data" while the FIFO holds bytes and IER.ERBFI is set, "THR
 * empty" after a transmit or when IER.ETBEI is set, cleared by reading IIR;
 * the line to IRQ 4 is the pending interrupt gated by MCR.OUT2, as on a PC.
 * The registers are kept under one lock: vCPUs and the reader share them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices/devices.h"
#include "vmm/kvm.h"

#define UART_RX_TX 0
#define UART_IER 1
#define UART_IIR_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_IIR_NO_INT 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_FIFO 0xc0
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RCVR 0x02
#define UART_LCR_DLAB 0x80
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define SERIAL_IRQ 4
#define RX_FIFO 16

struct vmm_serial {
	struct vmm_vm *vm;
	int out_fd, in_fd;
	pthread_mutex_t lock;
	pthread_cond_t room;      /* the reader waits here while the FIFO is full */
	pthread_t reader;
	bool reader_started, stopping;
	int stop_pipe[2];         /* wakes the reader out of poll() */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending, irq_level;
	uint8_t rx[RX_FIFO];
	unsigned rx_head, rx_count;
};

static uint8_t iir(const struct vmm_serial *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;

	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return fifo | UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thre_pending)
		return fifo | UART_IIR_THRI;
	return fifo | UART_IIR_NO_INT;
}

/* Drives IRQ 4 from the pending interrupt; KVM sees an edge on 0 -> 1. Caller holds the lock. */
static void update_irq(struct vmm_serial *s)
{
	bool level = !(iir(s) & UART_IIR_NO_INT) && (s->mcr & UART_MCR_OUT2);

	if (level != s->irq_level) {
		s->irq_level = level;
		vmm_vm_irq_line(s->vm, SERIAL_IRQ, level);
	}
}

static void *reader_main(void *arg)
{
	struct vmm_serial *s = arg;
	struct pollfd p[2] = { { .fd = s->in_fd, .events = POLLIN }, { .events = POLLIN } };
	uint8_t buf[RX_FIFO];
	ssize_t n, i;

	p[1].fd = s->stop_pipe[0];
	for (;;) {
		/* Read no more than the FIFO has room for: the rest waits in the fd. */
		pthread_mutex_lock(&s->lock);
		while (!s->stopping && s->rx_count == RX_FIFO)
			pthread_cond_wait(&s->room, &s->lock);
		n = RX_FIFO - s->rx_count;
		pthread_mutex_unlock(&s->lock);
		if (s->stopping)
			break;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		n = read(s->in_fd, buf, (size_t)n);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;	/* end of input: the console stays output-only */
		pthread_mutex_lock(&s->lock);
		for (i = 0; i < n && s->rx_count < RX_FIFO; i++)
			s->rx[(s->rx_head + s->rx_count++) % RX_FIFO] = buf[i];
		update_irq(s);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int vmm_serial_new(struct vmm_vm *vm, int out_fd, int in_fd, struct vmm_serial **out)
{
	struct vmm_serial *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int failed, ret;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->out_fd = out_fd;
	s->in_fd = in_fd;
	s->dll = 12;	/* 9600 baud until the guest sets it */
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->room, NULL);
	if (in_fd >= 0) {
		if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
			ret = -errno;
			vmm_serial_free(s);
			return ret;
		}
		/* The reader takes no signals: SIGTERM and friends must reach vCPU 0 (see kvm.c). */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		failed = pthread_create(&s->reader, NULL, reader_main, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (failed) {
			vmm_serial_free(s);
			return -EAGAIN;
		}
		s->reader_started = true;
	}
	*out = s;
	return 0;
}

void vmm_serial_free(struct vmm_serial *s)
{
	if (!s)
		return;
	if (s->reader_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->room);
		pthread_mutex_unlock(&s->lock);
		while (write(s->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
			;
		pthread_join(s->reader, NULL);
	}
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void emit(struct vmm_serial *s, uint8_t ch)
{
	ssize_t n;

	do
		n = write(s->out_fd, &ch, 1);
	while (n < 0 && errno == EINTR);
	/* A closed stdout loses the console, not the guest. */
}

static void io_locked(struct vmm_serial *s, unsigned off, bool write, uint8_t *data)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v;

	if (write) {
		v = *data;
		switch (off) {
		case UART_RX_TX:
			if (dlab) {
				s->dll = v;
				break;
			}
			if (!(s->mcr & UART_MCR_LOOP))
				emit(s, v);
			s->thre_pending = true;	/* sent at once: the register is empty again */
			break;
		case UART_IER:
			if (dlab) {
				s->dlm = v;
				break;
			}
			/* Enabling ETBEI with the register empty raises "THR empty" at once. */
			if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
				s->thre_pending = true;
			s->ier = v & 0x0f;
			break;
		case UART_IIR_FCR:
			s->fcr = v & UART_FCR_ENABLE;
			if (v & UART_FCR_CLEAR_RCVR) {
				s->rx_count = 0;
				pthread_cond_signal(&s->room);
			}
			break;
		case UART_LCR: s->lcr = v; break;
		case UART_MCR: s->mcr = v & 0x1f; break;
		case UART_SCR: s->scr = v; break;
		default: break;	/* LSR, MSR: nothing to keep */
		}
		return;
	}
	switch (off) {
	case UART_RX_TX:
		if (dlab) {
			*data = s->dll;
		} else if (s->rx_count) {
			*data = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_FIFO;
			s->rx_count--;
			pthread_cond_signal(&s->room);
		} else {
			*data = 0;
		}
		break;
	case UART_IER: *data = dlab ? s->dlm : s->ier; break;
	case UART_IIR_FCR:
		*data = iir(s);
		/* Reading IIR while it reports "THR empty" clears that interrupt. */
		if ((*data & 0x0f) == UART_IIR_THRI)
			s->thre_pending = false;
		break;
	case UART_LCR: *data = s->lcr; break;
	case UART_MCR: *data = s->mcr; break;
	case UART_LSR: *data = UART_LSR_THRE | UART_LSR_TEMT | (s->rx_count ? UART_LSR_DR : 0); break;
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

void vmm_serial_io(struct vmm_serial *s, unsigned off, bool write, uint8_t *data)
{
	pthread_mutex_lock(&s->lock);
	io_locked(s, off, write, data);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

/* Suspend and resume: the registers; what the host typed and the guest had not read yet is dropped. */
struct serial_state {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre_pending;
};

size_t vmm_serial_save(struct vmm_serial *s, void *buf)
{
	struct serial_state st;

	pthread_mutex_lock(&s->lock);
	st = (struct serial_state){ .ier = s->ier, .lcr = s->lcr, .mcr = s->mcr, .scr = s->scr, .dll = s->dll,
				    .dlm = s->dlm, .fcr = s->fcr, .thre_pending = s->thre_pending };
	pthread_mutex_unlock(&s->lock);
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

int vmm_serial_load(struct vmm_serial *s, const void *buf, size_t len)
{
	struct serial_state st;

	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	pthread_mutex_lock(&s->lock);
	s->ier = st.ier & 0x0f;
	s->lcr = st.lcr;
	s->mcr = st.mcr & 0x1f;
	s->scr = st.scr;
	s->dll = st.dll;
	s->dlm = st.dlm;
	s->fcr = st.fcr & UART_FCR_ENABLE;
	s->thre_pending = st.thre_pending != 0;
	s->rx_count = 0;
	update_irq(s);
	pthread_cond_signal(&s->room);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
