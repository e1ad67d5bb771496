/*
 * The release of vmfs: what every tool's --version prints, the Makefile's
 * VERSION (the shared library's file name and vmfs.pc) and, by its major
 * number, the library's soname (libvmfs.so.MAJOR).
 */
#ifndef VMFS_BASE_VERSION_H
#define VMFS_BASE_VERSION_H

#define VMFS_VERSION "0.19.0"

#endif
