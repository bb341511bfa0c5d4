# autodeploy: build, test, fuzz and benchmark targets.
#
#   make              build bin/autodeployd
#   make test         install missing Debian packages (as root), build, run every test
#   make unit         build and run the C unit tests only
#   make fuzz         run each libFuzzer target for FUZZ_SECONDS (default 30)
#   make bench        run the benchmarks and print their tables
#   make SANITIZE=1   the same with AddressSanitizer + UndefinedBehaviorSanitizer
#   make TSAN=1       the same with ThreadSanitizer (build/tsan, bin/tsan/autodeployd)
#   make WERROR=1     warnings are errors (CI sets this)

VERSION  := 0.1.0
PKGS     := libmicrohttpd libcurl libcjson libpcre2-8 libcrypto
CC       ?= cc

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
            -Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -MMD -MP -Iinclude $(PKG_CFLAGS) -DAUTODEPLOY_VERSION=\"$(VERSION)\"
LDLIBS   += $(PKG_LIBS) -lpthread -lm
BUILD    := build

ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
BIN      := bin/autodeployd
ifeq ($(SANITIZE),1)
BUILD    := build/san
BIN      := bin/san/autodeployd
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
ifeq ($(SANITIZE),1)
$(error TSAN=1 and SANITIZE=1 cannot be combined: ThreadSanitizer and AddressSanitizer exclude each other)
endif
BUILD    := build/tsan
BIN      := bin/tsan/autodeployd
CFLAGS   += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=thread
endif

SRCS     := $(wildcard src/*.c)
OBJS     := $(SRCS:src/%.c=$(BUILD)/%.o)
LIBOBJS  := $(filter-out $(BUILD)/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 30

.PHONY: all clean test unit unit-bins fuzz-bins deps fuzz bench format format-check
all: $(BIN)

$(BIN): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The console's files are embedded by the assembler (.incbin, src/ui.c): the compiler's
# dependency files do not list them.
$(BUILD)/ui.o: $(wildcard ui/*)

$(BUILD)/tests/%: tests/unit/%.c $(LIBOBJS) tests/unit/testlib.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

unit-bins: $(UNIT_BINS)

# The test command of the README (and of CI): set-up, build (plain, ASan+UBSan,
# ThreadSanitizer, fuzzers), then every phase of tests/run.sh. QUICK=1: unit and integration
# tests of the plain build.
# The four builds use every CPU (BUILD_JOBS): built one file at a time they took two minutes
# of the suite.
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test:
	sh tests/deps.sh
	$(MAKE) -j$(BUILD_JOBS) all unit-bins
ifeq ($(QUICK),1)
	sh tests/run.sh --quick
else
	$(MAKE) -j$(BUILD_JOBS) SANITIZE=1 all unit-bins
	$(MAKE) -j$(BUILD_JOBS) TSAN=1 all unit-bins
	$(MAKE) -j$(BUILD_JOBS) fuzz-bins
	sh tests/run.sh
endif

unit: unit-bins
	sh tests/run.sh --quick --unit-only

fuzz-bins: $(FUZZ_BINS)

deps:
	sh tests/deps.sh

# libFuzzer targets: clang, ASan + UBSan, linked against the same sources (built apart).
FUZZ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -Iinclude $(PKG_CFLAGS) \
               -DAUTODEPLOY_VERSION=\"$(VERSION)\" -fsanitize=fuzzer,address,undefined
build/fuzz/%: tests/fuzz/%.c $(filter-out src/main.c,$(SRCS))
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

fuzz: $(FUZZ_BINS)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

bench: all $(BENCH_BINS)
	sh tests/bench/run.sh $(BUILD) $(BIN)

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/unit/*.h

format-check:
	clang-format --dry-run --Werror src/*.c include/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build bin

-include $(OBJS:.o=.d)

# The main job on a fresh machine: install what is missing, build, and run the whole pipeline
# on loopback (real registry, Marathon emulator, Slack sink, autodeployd); Ctrl-C stops it.
.PHONY: demo
demo:
	sh tests/deps.sh
	$(MAKE) all
	sh examples/demo/demo.sh $(DEMO_ARGS)
