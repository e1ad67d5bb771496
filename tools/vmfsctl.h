/*
 * vmfsctl's own header: what its command files (tools/vmfsctl_*.c) share with
 * tools/vmfsctl.c.
 */
#ifndef VMFS_TOOLS_VMFSCTL_H
#define VMFS_TOOLS_VMFSCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "vmfs/vmfs.h"

void usage(FILE *f);
/* Opens DEVICE read-only (no cluster join, nothing written); NULL after saying why. */
struct vmfs *open_readonly(const char *dev);
/*
 * Opens DEVICE, read-only or joining the cluster, with the key the command
 * line named (if any); NULL after saying why, with exit_code set (3: no
 * keyslot opens with the key, else 1).
 */
struct vmfs *open_store(const char *dev, bool readonly);
extern int exit_code;

/* tools/vmfsctl_snap.c: vmfsctl snapshot ..., vmfsctl clone ... */
void snap_usage(FILE *f);
int cmd_snapshot(int argc, char **argv);
int cmd_clone(int argc, char **argv);

/* DEVICE given as a directory: a vmfs mount (its mountpoint, or a directory in it). */
bool is_mount(const char *dev);

/* tools/vmfsctl_rekey.c: vmfsctl rekey --deep ... */
void rekey_usage(FILE *f);
int cmd_rekey(int argc, char **argv);

/* tools/vmfsctl_key.c: vmfsctl key ... */
void key_usage(FILE *f);
int cmd_key(int argc, char **argv);
/* The exit code for a failed open or key call: 3 when no keyslot opened, else 1. */
int key_exit(int ret);

/* tools/vmfsctl_image.c: vmfsctl import ..., vmfsctl export ... */
void image_usage(FILE *f);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
