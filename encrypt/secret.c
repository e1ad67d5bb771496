/*
 * Where secrets come from: a key file, a passphrase file, a passphrase typed
 * at the terminal with echo off, or a key program (a KMS client, a TPM
 * unsealer) whose standard output is the key. Every byte is read straight
 * into locked memory (struct enc_secret); none passes through argv, the
 * environment or a stdio buffer, and a program's output goes through a pipe
 * that only this process reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "encrypt/encrypt.h"

#define KEYCMD_TIMEOUT_MS 30000

static struct enc_secret *secret_new(void)
{
	struct enc_secret *s = enc_secure_alloc(sizeof(*s));

	if (s)
		s->len = 0;
	return s;
}

int enc_secret_from_buf(const void *buf, size_t len, struct enc_secret **out)
{
	struct enc_secret *s;

	if (!len || len > ENC_SECRET_MAX)
		return -EINVAL;
	s = secret_new();
	if (!s)
		return -ENOMEM;
	memcpy(s->buf, buf, len);
	s->len = len;
	*out = s;
	return 0;
}

/*
 * Reads fd to its end into s (at most ENC_SECRET_MAX bytes: -EFBIG past
 * them). With a deadline (ms > 0) waits with poll, -ETIME when it passes.
 */
static int read_all(int fd, struct enc_secret *s, int ms)
{
	uint64_t end = ms > 0 ? base_mono_ns() + (uint64_t)ms * 1000000 : 0;

	for (;;) {
		ssize_t n;

		if (end) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint64_t now = base_mono_ns();
			int r;

			if (now >= end)
				return -ETIME;
			r = poll(&p, 1, (int)((end - now) / 1000000 + 1));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ETIME;
		}
		if (s->len == ENC_SECRET_MAX) {
			uint8_t c;
			n = read(fd, &c, 1);
			if (n == 0)
				return 0;
			if (n > 0)
				return -EFBIG;
		} else {
			n = read(fd, s->buf + s->len, ENC_SECRET_MAX - s->len);
			if (n == 0)
				return 0;
			if (n > 0) {
				s->len += (size_t)n;
				continue;
			}
		}
		if (errno != EINTR)
			return -errno;
	}
}

/* A passphrase loses one trailing "\n" (and a "\r" before it). */
static void chomp(struct enc_secret *s)
{
	if (s->len && s->buf[s->len - 1] == '\n')
		s->len--;
	if (s->len && s->buf[s->len - 1] == '\r')
		s->len--;
}

int enc_secret_from_file(const char *path, enum enc_secret_kind kind, struct enc_secret **out, char *errbuf,
			 size_t errlen)
{
	const char *what = kind == ENC_SECRET_KEYFILE ? "key file" : "passphrase file";
	struct enc_secret *s = secret_new();
	int fd, ret;

	if (!s)
		return base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) : dup(0);
	if (fd < 0) {
		ret = base_set_err(errbuf, errlen, -errno, "%s '%s': %s", what, path, strerror(errno));
		goto err;
	}
	ret = read_all(fd, s, 0);
	close(fd);
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "%s '%s': %s", what, path,
				   ret == -EFBIG ? "larger than 8 KiB" : strerror(-ret));
		goto err;
	}
	if (kind == ENC_SECRET_PASSPHRASE)
		chomp(s);
	if (!s->len) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "%s '%s' is empty", what, path);
		goto err;
	}
	if (kind == ENC_SECRET_KEYFILE && s->len < ENC_KEY_LEN) {
		ret = base_set_err(errbuf, errlen, -EINVAL,
				   "key file '%s' holds %zu bytes, at least %u are needed (a short secret is a passphrase: use a passphrase file)",
				   path, s->len, ENC_KEY_LEN);
		goto err;
	}
	*out = s;
	return 0;
err:
	enc_secret_free(s);
	return ret;
}

/* Reads one line from the terminal fd with echo off into s. */
static int tty_line(int fd, const char *prompt, struct enc_secret *s)
{
	struct termios old, quiet;
	int ret = 0;

	if (tcgetattr(fd, &old))
		return -errno;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet))
		return -errno;
	s->len = 0;
	for (;;) {
		uint8_t c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		if (s->len == ENC_SECRET_MAX) {
			ret = -EFBIG;
			continue;
		}
		s->buf[s->len++] = c;
	}
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		ret = ret ? ret : -errno;
	return ret;
}

int enc_secret_prompt(const char *prompt, bool confirm, struct enc_secret **out, char *errbuf, size_t errlen)
{
	struct enc_secret *s = secret_new(), *again = confirm ? secret_new() : NULL;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY), ret;

	if (!s || (confirm && !again)) {
		ret = base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a passphrase");
		goto out;
	}
	if (fd < 0 || !isatty(fd)) {
		ret = base_set_err(errbuf, errlen, -ENOTTY,
				   "no terminal to ask for a passphrase on: give a key file, a passphrase file or a key program");
		goto out;
	}
	ret = tty_line(fd, prompt, s);
	if (!ret && confirm)
		ret = tty_line(fd, "Verify passphrase: ", again);
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "reading the passphrase: %s",
				   ret == -EFBIG ? "longer than 8 KiB" : strerror(-ret));
		goto out;
	}
	if (!s->len) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "empty passphrase");
		goto out;
	}
	if (confirm && (again->len != s->len || memcmp(again->buf, s->buf, s->len))) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "the passphrases do not match");
		goto out;
	}
	*out = s;
	s = NULL;
out:
	if (fd >= 0)
		close(fd);
	enc_secret_free(s);
	enc_secret_free(again);
	return ret;
}

int enc_secret_from_cmd(const char *prog, struct enc_secret **out, char *errbuf, size_t errlen)
{
	struct enc_secret *s = secret_new();
	int p[2], status = 0, ret;
	pid_t pid;

	if (!s)
		return base_set_err(errbuf, errlen, -ENOMEM, "cannot lock memory for a key");
	if (pipe2(p, O_CLOEXEC)) {
		ret = base_set_err(errbuf, errlen, -errno, "key program: pipe: %s", strerror(errno));
		goto err;
	}
	pid = fork();
	if (pid < 0) {
		ret = base_set_err(errbuf, errlen, -errno, "key program: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		goto err;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", prog, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ret = read_all(p[0], s, KEYCMD_TIMEOUT_MS);
	close(p[0]);
	if (ret)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret) {
		ret = base_set_err(errbuf, errlen, ret, "key program '%s': %s", prog,
				   ret == -ETIME  ? "gave no key within 30 s"
				   : ret == -EFBIG ? "printed more than 8 KiB"
						   : strerror(-ret));
		goto err;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		ret = base_set_err(errbuf, errlen, -EIO, "key program '%s' failed (%s %d)", prog,
				   WIFEXITED(status) ? "exit" : "signal",
				   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		goto err;
	}
	if (s->len < ENC_KEY_LEN) {
		ret = base_set_err(errbuf, errlen, -EINVAL, "key program '%s' printed %zu bytes, at least %u are needed",
				   prog, s->len, ENC_KEY_LEN);
		goto err;
	}
	*out = s;
	return 0;
err:
	enc_secret_free(s);
	return ret;
}

bool enc_secret_src_set(const struct enc_secret_src *src)
{
	return src->key_file || src->passphrase_file || src->keycmd;
}

int enc_secret_get(const struct enc_secret_src *src, const char *prompt, bool confirm, struct enc_secret **out,
		   enum enc_secret_kind *kind, char *errbuf, size_t errlen)
{
	if ((src->key_file != NULL) + (src->passphrase_file != NULL) + (src->keycmd != NULL) > 1)
		return base_set_err(errbuf, errlen, -EINVAL,
				    "give one of a key file, a passphrase file and a key program, not several");
	*kind = src->passphrase_file || (!src->key_file && !src->keycmd) ? ENC_SECRET_PASSPHRASE : ENC_SECRET_KEYFILE;
	if (src->key_file)
		return enc_secret_from_file(src->key_file, ENC_SECRET_KEYFILE, out, errbuf, errlen);
	if (src->passphrase_file)
		return enc_secret_from_file(src->passphrase_file, ENC_SECRET_PASSPHRASE, out, errbuf, errlen);
	if (src->keycmd)
		return enc_secret_from_cmd(src->keycmd, out, errbuf, errlen);
	if (!prompt)
		return base_set_err(errbuf, errlen, -ENOKEY, "no key given");
	return enc_secret_prompt(prompt, confirm, out, errbuf, errlen);
}

int enc_secret_src_take(int *argc, char **argv, struct enc_secret_src *src, char *errbuf, size_t errlen)
{
	static const char *const names[] = { "--key-file", "--passphrase-file", "--keycmd" };
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char **dst = NULL, *val = NULL;

		if (!strcmp(argv[i], "--")) { /* the rest are operands */
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		for (unsigned k = 0; k < 3 && !dst; k++) {
			size_t n = strlen(names[k]);
			if (strncmp(argv[i], names[k], n) || (argv[i][n] && argv[i][n] != '='))
				continue;
			dst = k == 0 ? &src->key_file : k == 1 ? &src->passphrase_file : &src->keycmd;
			if (argv[i][n] == '=')
				val = argv[i] + n + 1;
			else if (i + 1 < *argc)
				val = argv[++i];
		}
		if (!dst) {
			argv[out++] = argv[i];
			continue;
		}
		if (!val || !*val)
			return base_set_err(errbuf, errlen, -EINVAL, "%s needs a value", argv[i]);
		*dst = val;
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}
