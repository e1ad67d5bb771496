/*
 * base: the few helpers every vmfs module shares. Little-endian accessors for
 * on-disk fields, crc32c (Castagnoli, as iSCSI and ext4 use), a monotonic clock,
 * size parsing and small arithmetic helpers. Depends on nothing of ours.
 */
#ifndef VMFS_BASE_H
#define VMFS_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <endian.h>

#define base_array_size(a) (sizeof(a) / sizeof((a)[0]))
#define base_min(a, b) ((a) < (b) ? (a) : (b))
#define base_max(a, b) ((a) > (b) ? (a) : (b))
#define BASE_HUGE_PAGE (2u << 20) /* x86-64's huge page: hugetlbfs default and THP */

typedef uint16_t le16;
typedef uint32_t le32;
typedef uint64_t le64;

static inline uint16_t le16_to_cpu(le16 v) { return le16toh(v); }
static inline uint32_t le32_to_cpu(le32 v) { return le32toh(v); }
static inline uint64_t le64_to_cpu(le64 v) { return le64toh(v); }
static inline le16 cpu_to_le16(uint16_t v) { return htole16(v); }
static inline le32 cpu_to_le32(uint32_t v) { return htole32(v); }
static inline le64 cpu_to_le64(uint64_t v) { return htole64(v); }

static inline bool base_is_pow2(uint64_t v) { return v && !(v & (v - 1)); }
static inline uint64_t base_round_up(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }
static inline uint64_t base_div_round_up(uint64_t v, uint64_t d) { return (v + d - 1) / d; }
static inline unsigned base_ilog2(uint64_t v) { return 63 - (unsigned)__builtin_clzll(v); }

/* crc32c of len bytes, continuing from crc (start with 0). */
uint32_t base_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same through the table path always, whatever the CPU (for tests and benchmarks). */
uint32_t base_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
uint64_t base_mono_ns(void);
/* Sleeps ns nanoseconds, through interrupting signals. */
void base_sleep_ns(uint64_t ns);

/*
 * Timed waits on the monotonic clock: base_cond_init_mono() makes a condition
 * variable whose pthread_cond_timedwait() deadlines are CLOCK_MONOTONIC (the
 * default, CLOCK_REALTIME, would take a monotonic deadline as long past and
 * return at once), and base_mono_deadline() gives the deadline ms from now.
 */
#include <pthread.h>
#include <time.h>
int base_cond_init_mono(pthread_cond_t *c);
struct timespec base_mono_deadline(uint64_t ms);
/* Wall-clock time in nanoseconds since the epoch (CLOCK_REALTIME). */
int64_t base_real_ns(void);

/*
 * Parses a size such as "4096", "256M", "1.5G" or "16TiB" (binary units,
 * K/M/G/T/P/E with optional "iB"/"B"). Returns 0, or -EINVAL for anything else
 * and -ERANGE when it does not fit in 64 bits.
 */
int base_parse_size(const char *s, uint64_t *out);

/* Formats bytes as "1.5 GiB" into buf. Returns buf. */
char *base_fmt_size(uint64_t bytes, char *buf, size_t len);
/*
 * Formats bytes exactly, in the largest binary unit that divides them ("10 MiB",
 * "3000 MiB", "1536 KiB", "4097 B"): what a user typed with a K/M/G/T/P
 * suffix comes back in that unit. Returns buf.
 */
char *base_fmt_size_exact(uint64_t bytes, char *buf, size_t len);

/* Fills buf with len random bytes from getrandom(2). Returns 0 or -errno. */
int base_random(void *buf, size_t len);

/*
 * The "errbuf, errlen" convention of the library's constructors: formats the
 * message into buf (nothing when buf is NULL or len 0) and returns ret, so a
 * failure reads `return base_set_err(errbuf, errlen, -EINVAL, "...", ...);`.
 */
int base_set_err(char *buf, size_t len, int ret, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* True when all n bytes at p are zero (a never-written sector, a hole). */
bool base_all_zero(const void *p, size_t n);

/* Formats a 16-byte UUID as 36 characters plus NUL into out. */
void base_uuid_fmt(const uint8_t uuid[16], char out[37]);

#endif
