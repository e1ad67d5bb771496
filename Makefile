# vmfs: plain GNU make. `make` builds into build/; see README.md for the targets.
CC      ?= gcc
BUILD   ?= build
PKGS    := fuse3 liburing libzstd openssl libargon2 libxxhash blkid
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror
CPPFLAGS += -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -laio -lpthread -lm
ALL_CFLAGS = $(CPPFLAGS) $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)

BASE_SRC := $(wildcard base/*.c)
LOCK_SRC := $(wildcard lockmgr/*.c)
VMFS_SRC := $(wildcard vmfs/*.c vmfs/*/*.c)
ENC_SRC  := $(wildcard encrypt/*.c)
SNAP_SRC := $(wildcard snapshot/*.c)
LIB_SRC  := $(BASE_SRC) $(LOCK_SRC) $(ENC_SRC) $(VMFS_SRC) $(SNAP_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libvmfs.a
# The shared library, for programs built against an installed vmfs (make
# install, pkg-config vmfs): the same objects (compiled position-independent),
# only the public API exported (vmfs/libvmfs.map), soname libvmfs.so.MAJOR.
VERSION   := $(shell sed -n 's/^\#define VMFS_VERSION "\(.*\)"/\1/p' base/version.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SHLIB    := $(BUILD)/libvmfs.so.$(VERSION)
LIB_LIBS := $(shell pkg-config --libs liburing libzstd openssl libargon2 libxxhash blkid 2>/dev/null) -laio -lpthread -lm
$(LIB_OBJ): ALL_CFLAGS += -fPIC -fno-semantic-interposition

TOOLS    := mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl mount.vmfs
# vmm, the KVM monitor: vmm/ and its subfolders (x86/, devices/); all but main.o also
# go into an archive the unit tests link (they pull in only what they use)
VMM_SRC  := $(wildcard vmm/*.c vmm/*/*.c)
VMM_OBJ  := $(VMM_SRC:%.c=$(BUILD)/obj/%.o)
VMM_LIB  := $(BUILD)/libvmm.a
TOOL_BIN := $(addprefix $(BUILD)/bin/,$(TOOLS))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bin/%,$(wildcard bench/*.c))
# what bench/vmm runs inside its guests: static, no library to carry into an initramfs
GUEST_IO := $(BUILD)/bench/guest-io
# freestanding test guests for vmm (tests/guests/): bzImage-shaped flat binaries
GUEST_NAMES := $(basename $(notdir $(wildcard tests/guests/*.c)))
GUEST_BIN := $(GUEST_NAMES:%=$(BUILD)/tests/guests/%.bzImage)
GUEST_CFLAGS := -O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -mno-red-zone -mgeneral-regs-only \
	-fno-asynchronous-unwind-tables $(WARN) -std=gnu11
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# helper programs of the end-to-end tests (not Check suites: run-all.sh runs only files in tests/)
TEST_TOOL_SRC := $(wildcard tests/tools/*.c)
TEST_TOOL_BIN := $(TEST_TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)

.PHONY: all deps kit test unit e2e check-asan crash-long fsck-long flip-long sigkill-long demo bench clean
all: $(TOOL_BIN) $(BUILD)/bin/vmm $(BENCH_BIN) $(GUEST_IO) $(UNIT_BIN) $(TEST_TOOL_BIN) $(GUEST_BIN)

deps:
	@./scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHLIB): $(LIB_OBJ) vmfs/libvmfs.map
	$(CC) -shared -Wl,-soname,libvmfs.so.$(SOVERSION) -Wl,--version-script=vmfs/libvmfs.map -Wl,-z,defs \
	  $(CFLAGS) $(LIB_OBJ) -o $@ $(LIB_LIBS)
shared: $(SHLIB)

# A tool is tools/<name>.c plus its own tools/<name>_*.c; a benchmark is bench/<name>.c.
tool_obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/$(1).c tools/$(1)_*.c))
$(BUILD)/bin/mkfs.vmfs: $(call tool_obj,mkfs) $(LIB)
$(BUILD)/bin/fsck.vmfs: $(call tool_obj,fsck) $(LIB)
$(BUILD)/bin/vmfs-mount: $(call tool_obj,mount) $(LIB)
# systemd's readiness protocol (sd_notify) for vmfs-mount -f under Type=notify: the mount daemon only
$(BUILD)/bin/vmfs-mount: LDLIBS += $(shell pkg-config --libs libsystemd 2>/dev/null)
$(BUILD)/bin/vmfsctl: $(call tool_obj,vmfsctl) $(LIB)
$(BUILD)/bin/mount.vmfs: $(call tool_obj,mount8) $(LIB)
$(BUILD)/bin/vmm: $(VMM_OBJ) $(LIB)
$(BENCH_BIN): $(BUILD)/bin/%: $(BUILD)/obj/bench/%.o $(LIB)
$(BUILD)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $^ -o $@ $(LDLIBS)

# (without EXTRA_CFLAGS: a sanitizer build cannot link statically, and it runs in a guest)
$(GUEST_IO): bench/guest/io.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -static $< -o $@

$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $^ -o $@ $(LDLIBS)

$(VMM_LIB): $(filter-out $(BUILD)/obj/vmm/main.o,$(VMM_OBJ))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# A unit test is tests/unit/test_<name>.c plus the files of its own folder
# tests/unit/<name>/ (a simulator, a model), linked against the libraries.
# (unit_dir_obj keeps '%' out of the prerequisite: make would put the stem there)
unit_dir_obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/$(patsubst test_%,%,$(1))/*.c))
.SECONDEXPANSION:
.SECONDARY: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/*.c tests/unit/*/*.c tests/tools/*.c))
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $$(call unit_dir_obj,$$*) $(VMM_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $^ -o $@ $(LDLIBS) $(shell pkg-config --libs check)

# The qcow2 reader of vmfsctl import (tools/vmfsctl_qcow2.c) inflates with
# zlib; its unit test and the e2e test's driver (tests/tools/qcow2-cat) link it.
QCOW2_LIBS := $(shell pkg-config --libs zlib 2>/dev/null)
$(BUILD)/bin/vmfsctl $(BUILD)/tests/test_qcow2 $(BUILD)/tests/tools/qcow2-cat: LDLIBS += $(QCOW2_LIBS)
$(BUILD)/tests/test_qcow2 $(BUILD)/tests/tools/qcow2-cat: $(BUILD)/obj/tools/vmfsctl_qcow2.o

$(BUILD)/tests/guests/%.elf: tests/guests/%.c tests/guests/head.S tests/guests/guest.h tests/guests/virtio.h tests/guests/apic.h tests/guests/guest.ld
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -nostdlib -static -no-pie -Wl,-T,tests/guests/guest.ld -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
	  tests/guests/head.S $< -o $@
$(BUILD)/tests/guests/%.bzImage: $(BUILD)/tests/guests/%.elf
	objcopy -O binary $< $@
	chmod -x $@

# The Linux test kit (tests/e2e/linux.sh): Debian's kernel, its modules and
# busybox-static, downloaded with apt-get and extracted (not installed) into
# $(BUILD)/kit once; later runs reuse it. The test makes it too when missing.
kit:
	@./scripts/linux-kit.sh $(BUILD)/kit

# The test runner installs what is missing, builds, runs unit and end-to-end
# tests and prints one closing line "N passed, N failed". It builds on every
# core, the sanitized fuzz programs the flip, fuzz-smoke and fsck-property
# tests run included (each would otherwise build them on one core, beside
# another test): 42 s here, against 80 s.
test: deps
	@$(MAKE) --no-print-directory -j$$(nproc) all fuzz-build
	@BUILD=$(BUILD) ./tests/run-all.sh

# Sanitized code runs 2-3x slower: a unit binary gets 1500 s (test_crash needs
# about 11 minutes beside another test), not make test's 600.
check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  EXTRA_CFLAGS="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 UNIT_TIMEOUT=1500 ./tests/run-all.sh

# Power cuts at many more points than make test runs (tests/unit/test_crash.c,
# several workload seeds): about 15 minutes on 2 cores, then the snapshot
# workload's (case snap_cuts) at CRASH_SNAP_POINTS (5000, about 10 minutes), and
# the same on an encrypted datastore (case enc_cuts) at CRASH_ENC_POINTS (3000).
# CRASH_POINTS=N to change.
crash-long: deps
	@$(MAKE) --no-print-directory all
	@CRASH_POINTS=$${CRASH_POINTS:-20000} CK_RUN_CASE=power_cuts VMFS_BIN=$(BUILD)/bin ./$(BUILD)/tests/test_crash
	@CRASH_SNAP_POINTS=$${CRASH_SNAP_POINTS:-5000} CK_RUN_CASE=snap_cuts VMFS_BIN=$(BUILD)/bin ./$(BUILD)/tests/test_crash
	@CRASH_ENC_POINTS=$${CRASH_ENC_POINTS:-3000} CK_RUN_CASE=enc_cuts VMFS_BIN=$(BUILD)/bin ./$(BUILD)/tests/test_crash

# fsck's promise under random bit flips (tests/e2e/fsck-property.sh) over many more
# trials than make test runs: FSCK_TRIALS (6000) on the seed images and a third as
# many on the issue's datastore, about 20 minutes on 2 cores, on FSCK_SEED (a new
# one each run, printed; set it to replay a run).
fsck-long: deps
	@$(MAKE) --no-print-directory all
	@FSCK_TRIALS=$${FSCK_TRIALS:-6000} FSCK_SEED=$${FSCK_SEED:-$$(date +%s)} VMFS_BIN=$(CURDIR)/$(BUILD)/bin \
	  VMFS_TOP=$(CURDIR) bash tests/e2e/fsck-property.sh

# The byte-flip walk (tests/e2e/flip.sh) over many more images than make test's 250:
# FLIP_ITERATIONS (20000) on FLIP_SEED (a new one each run, printed; set it to replay).
flip-long: deps
	@$(MAKE) --no-print-directory all
	@FLIP_ITERATIONS=$${FLIP_ITERATIONS:-20000} FLIP_SEED=$${FLIP_SEED:-$$(date +%s)} VMFS_BIN=$(CURDIR)/$(BUILD)/bin \
	  VMFS_TOP=$(CURDIR) bash tests/e2e/flip.sh

# SIGKILL of a mount daemon mid-workload (tests/e2e/sigkill.sh) over many more
# rounds than make test's 10: SIGKILL_ROUNDS (200).
sigkill-long: deps
	@$(MAKE) --no-print-directory all
	@SIGKILL_ROUNDS=$${SIGKILL_ROUNDS:-200} VMFS_BIN=$(CURDIR)/$(BUILD)/bin VMFS_TOP=$(CURDIR) bash tests/e2e/sigkill.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@./scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@./bench/io
	@./bench/fsck
	@./bench/cluster
	@./bench/vmm
	@./bench/ha
	@./bench/snap
	@./bench/enc
	@./bench/image

# Fuzzing (tests/fuzz/): libFuzzer harnesses, one per on-disk parser, built with
# clang and ASan/UBSan into build-fuzz/; `make fuzz` runs each for FUZZ_SECONDS
# on a working corpus seeded from tests/fuzz/corpus/. The flip driver (a walk
# over images with random bytes flipped, tests/e2e/flip.sh) is built there too.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_harness.c tests/fuzz/fuzz_common.c,\
		$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(CPPFLAGS) $(WARN) -O1 -g $(FUZZ_SAN)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_common.o
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/bin/fuzz_%)
FUZZ_TOOLS   := $(FUZZ_BUILD)/bin/vmfs-flip $(FUZZ_BUILD)/bin/fuzz-mkseeds $(FUZZ_BUILD)/bin/fuzz-mkseeds-vmstate

.PHONY: fuzz fuzz-build fuzz-seeds
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o) $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_harness.o
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/bin/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_harness.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)

# vm.conf's parser (vmm/config.c) needs no image: no fuzz_harness.o, no libvmfs
$(FUZZ_BUILD)/bin/fuzz_vmconf: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_vmconf.o $(FUZZ_BUILD)/obj/vmm/config.o
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@

# the key area and file keys (encrypt/): no image either
$(FUZZ_BUILD)/bin/fuzz_keys: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_keys.o $(ENC_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) \
		$(BASE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)

# vm.state's parser (vmm/vmstate.c) and the writer of its seeds: no image, no libvmfs
FUZZ_VMSTATE_OBJ := $(FUZZ_BUILD)/obj/vmm/vmstate.o $(BASE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_BUILD)/bin/fuzz_vmstate: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_vmstate.o $(FUZZ_VMSTATE_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ -lm

# qcow2 images (tools/vmfsctl_qcow2.c, vmfsctl import's reader): no libvmfs
$(FUZZ_BUILD)/bin/fuzz_qcow2: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_qcow2.o $(FUZZ_BUILD)/obj/tools/vmfsctl_qcow2.o
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(shell pkg-config --libs libzstd zlib 2>/dev/null)

$(FUZZ_BUILD)/bin/vmfs-flip: $(FUZZ_BUILD)/obj/tests/fuzz/flip.o $(FUZZ_LIB_OBJ)
$(FUZZ_BUILD)/bin/fuzz-mkseeds: $(FUZZ_BUILD)/obj/tests/fuzz/mkseeds.o $(FUZZ_LIB_OBJ)
$(FUZZ_BUILD)/bin/fuzz-mkseeds-vmstate: $(FUZZ_BUILD)/obj/tests/fuzz/mkseeds_vmstate.o $(FUZZ_VMSTATE_OBJ)
$(FUZZ_TOOLS):
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) $^ -o $@ $(LDLIBS)

fuzz-build: $(FUZZ_BIN) $(FUZZ_TOOLS)

# Rewrites the seed corpus from a freshly built image, and vm.state's from its writer (commit the result).
fuzz-seeds: fuzz-build
	$(FUZZ_BUILD)/bin/fuzz-mkseeds tests/fuzz/corpus
	$(FUZZ_BUILD)/bin/fuzz-mkseeds-vmstate tests/fuzz/corpus/vmstate

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/artifacts; \
	  echo "== fuzz_$$n for $(FUZZ_SECONDS) s"; \
	  VMFS_IO_ENGINE=sync $(FUZZ_BUILD)/bin/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n- \
	    $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n; \
	done

clean:
	rm -rf build build-asan build-fuzz

# make install [PREFIX=/usr/local] [DESTDIR=]: the tools where Debian puts a
# filesystem's (mkfs.vmfs, fsck.vmfs, mount.vmfs in sbin, so mkfs -t, fsck -t
# and mount -t find them), vmm in bin, libvmfs (static and shared) with its
# headers and vmfs.pc, the man pages, bash completion and systemd units.
# make uninstall removes exactly those.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
COMPDIR    ?= $(PREFIX)/share/bash-completion/completions
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INST_SBIN  := mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl mount.vmfs
INST_HDRS  := vmfs/vmfs.h encrypt/encrypt.h encrypt/encrypt_format.h base/base.h
INST_MAN   := $(wildcard docs/man/*.[178])
INST_COMP  := $(wildcard docs/completion/*)
INST_UNITS := $(wildcard docs/systemd/*.service)
.PHONY: install uninstall shared
install: $(addprefix $(BUILD)/bin/,$(INST_SBIN) vmm) $(LIB) $(SHLIB)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCLUDEDIR)/vmfs/vmfs $(DESTDIR)$(INCLUDEDIR)/vmfs/encrypt $(DESTDIR)$(INCLUDEDIR)/vmfs/base
	install -m 0755 $(addprefix $(BUILD)/bin/,$(INST_SBIN)) $(DESTDIR)$(SBINDIR)
	install -m 0755 $(BUILD)/bin/vmm $(DESTDIR)$(BINDIR)
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)
	install -m 0755 $(SHLIB) $(DESTDIR)$(LIBDIR)
	ln -sf libvmfs.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libvmfs.so.$(SOVERSION)
	ln -sf libvmfs.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libvmfs.so
	for h in $(INST_HDRS); do install -m 0644 $$h $(DESTDIR)$(INCLUDEDIR)/vmfs/$$h || exit 1; done
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
	  -e 's|@LIBS@|$(LIB_LIBS)|' vmfs/vmfs.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/vmfs.pc
	for m in $(INST_MAN); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
	  install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s || exit 1; done
	$(if $(INST_COMP),install -d $(DESTDIR)$(COMPDIR) && install -m 0644 $(INST_COMP) $(DESTDIR)$(COMPDIR))
	$(if $(INST_UNITS),install -d $(DESTDIR)$(UNITDIR) && \
	  for u in $(INST_UNITS); do sed 's|@SBINDIR@|$(SBINDIR)|g; s|@BINDIR@|$(BINDIR)|g' $$u \
	    >$(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(INST_SBIN)) $(DESTDIR)$(BINDIR)/vmm
	rm -f $(DESTDIR)$(LIBDIR)/libvmfs.a $(DESTDIR)$(LIBDIR)/libvmfs.so $(DESTDIR)$(LIBDIR)/libvmfs.so.$(SOVERSION) \
	  $(DESTDIR)$(LIBDIR)/libvmfs.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/vmfs.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/vmfs
	rm -f $(foreach m,$(INST_MAN),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -f $(addprefix $(DESTDIR)$(COMPDIR)/,$(notdir $(INST_COMP))) $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(INST_UNITS)))

-include $(shell find $(BUILD)/obj $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
