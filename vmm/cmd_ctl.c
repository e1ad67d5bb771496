/*
 * vmm ctl SOCKET COMMAND [ARGS]: the client of a running VM's control socket
 * (vmm/ctl.c). The arguments are checked here and turned into one JSON
 * request line; the reply line goes to stdout as it came.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/cli.h"
#include "vmm/cmd.h"
#include "vmm/ctl.h"

/* vmm ctl SOCKET COMMAND [ARGS]: one request, the reply on stdout; exit 0 when it says "ok":true. */
int vmm_cmd_ctl(int argc, char **argv)
{
	char req[512], reply[8192], err[300];
	uint64_t a, b, d;
	const char *cmd;

	if (argc < 3) {
		vmm_usage(stderr);
		return 2;
	}
	cmd = argv[2];
	if (argc == 3 && (!strcmp(cmd, "status") || !strcmp(cmd, "pause") || !strcmp(cmd, "resume") ||
			  !strcmp(cmd, "stop") || !strcmp(cmd, "suspend") || !strcmp(cmd, "rekey"))) {
		snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	} else if (argc == 4 && !strcmp(cmd, "balloon")) {
		if (!tool_parse_u64(argv[3], &a)) {
			tool_err("balloon '%s': want a number of 4 KiB pages", argv[3]);
			return 2;
		}
		snprintf(req, sizeof(req), "{\"cmd\":\"balloon\",\"pages\":%llu}", (unsigned long long)a);
	} else if (argc == 4 && (!strcmp(cmd, "snapshot") || !strcmp(cmd, "revert"))) {
		if (strlen(argv[3]) > 255 || strpbrk(argv[3], "\"\\/@")) {
			tool_err("%s '%s': want a name of 1..255 bytes without '\"', '\\', '/' or '@'", cmd, argv[3]);
			return 2;
		}
		snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"name\":\"%s\"}", cmd, argv[3]);
	} else if (argc == 6 && !strcmp(cmd, "rate")) {
		if (!tool_parse_u64(argv[3], &d) || !tool_parse_u64(argv[4], &a) || !tool_parse_u64(argv[5], &b)) {
			tool_err("rate: want DISK BYTES_PER_S OPS_PER_S as numbers (0: unlimited)");
			return 2;
		}
		snprintf(req, sizeof(req), "{\"cmd\":\"rate\",\"disk\":%llu,\"bytes_per_s\":%llu,\"ops_per_s\":%llu}",
			 (unsigned long long)d, (unsigned long long)a, (unsigned long long)b);
	} else {
		tool_err("ctl: unknown command or wrong arguments '%s' (want status, pause, resume, stop, "
			 "suspend, balloon PAGES, rate DISK BYTES_PER_S OPS_PER_S, snapshot NAME, rekey or revert NAME)", cmd);
		return 2;
	}
	if (vmm_ctl_request(argv[1], req, reply, sizeof(reply), err, sizeof(err))) {
		tool_err("%s", err);
		return 1;
	}
	printf("%s\n", reply);
	if (strncmp(reply, "{\"ok\":true", 10)) {
		tool_err("ctl %s: refused: %s", cmd, reply);
		return 1;
	}
	return 0;
}
