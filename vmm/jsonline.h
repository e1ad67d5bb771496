/*
 * A parser for one line of the control socket: a flat JSON object whose
 * values are strings without escapes or unsigned decimal integers, e.g.
 * {"cmd":"rate","disk":0,"bytes_per_s":1048576}. Tested in tests/unit/test_vmm.c.
 */
#ifndef VMM_JSONLINE_H
#define VMM_JSONLINE_H

#include <stdbool.h>
#include <stdint.h>

#define VMM_JSON_MAX_KEYS 8

struct vmm_json_kv {
	char key[32];
	char str[64];             /* the value when !is_num */
	uint64_t num;             /* the value when is_num */
	bool is_num;
};

/*
 * Parses the NUL-terminated line p into kv[0..*n) (at most VMM_JSON_MAX_KEYS
 * pairs). Returns 0, or -EINVAL when p is anything else: not one object,
 * nested values, escapes or control characters in strings, a key of 32 bytes
 * or a string of 64 or more, a number above UINT64_MAX, bytes after the '}'.
 */
int vmm_json_parse(const char *p, struct vmm_json_kv *kv, unsigned *n);
/* The first pair named key, or NULL. */
const struct vmm_json_kv *vmm_json_find(const struct vmm_json_kv *kv, unsigned n, const char *key);

#endif
