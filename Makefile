# vmfs: plain GNU make. `make` builds into build/; see README.md for the targets.
CC      ?= gcc
BUILD   ?= build
PKGS    := fuse3 liburing libzstd openssl libxxhash blkid
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror
CPPFLAGS += -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -laio -lpthread -lm
ALL_CFLAGS = $(CPPFLAGS) $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)

BASE_SRC := $(wildcard base/*.c)
VMFS_SRC := $(wildcard vmfs/*.c)
LIB_SRC  := $(BASE_SRC) $(VMFS_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libvmfs.a

TOOLS    := mkfs.vmfs fsck.vmfs vmfs-mount vmfsctl
TOOL_BIN := $(addprefix $(BUILD)/bin/,$(TOOLS))
BENCH_BIN := $(BUILD)/bin/vmfs-bench
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test unit e2e check-asan demo bench clean
all: $(TOOL_BIN) $(BENCH_BIN) $(UNIT_BIN)

deps:
	@./scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/mkfs.vmfs: $(BUILD)/obj/tools/mkfs.o $(BUILD)/obj/tools/common.o $(LIB)
$(BUILD)/bin/fsck.vmfs: $(BUILD)/obj/tools/fsck.o $(BUILD)/obj/tools/common.o $(LIB)
$(BUILD)/bin/vmfs-mount: $(BUILD)/obj/tools/mount.o $(BUILD)/obj/tools/common.o $(LIB)
$(BUILD)/bin/vmfsctl: $(BUILD)/obj/tools/vmfsctl.o $(BUILD)/obj/tools/common.o $(LIB)
$(BUILD)/bin/vmfs-bench: $(BUILD)/obj/bench/vmfs-bench.o $(BUILD)/obj/tools/common.o $(LIB)
$(BUILD)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $^ -o $@ $(LDLIBS) $(shell pkg-config --libs check)

# The test runner installs what is missing, builds, runs unit and end-to-end
# tests and prints one closing line "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ./tests/run-all.sh

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  EXTRA_CFLAGS="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1 ./tests/run-all.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@./scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@./bench/io

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
