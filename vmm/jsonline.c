/*
 * The one JSON shape the control socket takes (see jsonline.h): a flat
 * object of string and unsigned integer values on one line. It is untrusted
 * input: every string is bounded, numbers are checked for overflow, and
 * anything else (escapes, nesting, signs, fractions, trailing bytes) is
 * refused rather than guessed at.
 */
#include <errno.h>
#include <string.h>

#include "vmm/jsonline.h"

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* A string without escapes into buf; NULL when malformed or too long. */
static const char *parse_str(const char *p, char *buf, size_t len)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' || (unsigned char)*p < 0x20 || n + 1 >= len)
			return NULL;
		buf[n++] = *p;
	}
	if (*p != '"')
		return NULL;
	buf[n] = 0;
	return p + 1;
}

int vmm_json_parse(const char *p, struct vmm_json_kv *kv, unsigned *n)
{
	*n = 0;
	p = skip_ws(p);
	if (*p++ != '{')
		return -EINVAL;
	p = skip_ws(p);
	if (*p == '}')
		return *skip_ws(p + 1) ? -EINVAL : 0;
	for (;;) {
		struct vmm_json_kv *e = &kv[*n];

		if (*n == VMM_JSON_MAX_KEYS)
			return -EINVAL;
		p = parse_str(p, e->key, sizeof(e->key));
		if (!p)
			return -EINVAL;
		p = skip_ws(p);
		if (*p++ != ':')
			return -EINVAL;
		p = skip_ws(p);
		e->is_num = *p >= '0' && *p <= '9';
		if (e->is_num) {
			e->num = 0;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (e->num > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
					return -EINVAL;
				e->num = e->num * 10 + (uint64_t)(*p - '0');
			}
		} else {
			p = parse_str(p, e->str, sizeof(e->str));
			if (!p)
				return -EINVAL;
		}
		(*n)++;
		p = skip_ws(p);
		if (*p == '}')
			return *skip_ws(p + 1) ? -EINVAL : 0;
		if (*p++ != ',')
			return -EINVAL;
		p = skip_ws(p);
	}
}

const struct vmm_json_kv *vmm_json_find(const struct vmm_json_kv *kv, unsigned n, const char *key)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return &kv[i];
	return NULL;
}
