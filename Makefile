# segda build. `make` builds libsegda.a and the segda command; `make test`
# installs missing Debian packages, builds and runs every test; `make demo`
# runs the main job on the built-in benchmark. BUILD=dir keeps a separate
# build tree (make asan uses build-asan).

BUILD    ?= build
CC       ?= cc
OPT      ?= -O2
PYTHON   ?= /usr/bin/python3
SAN      ?=
CFLAGS   ?= $(OPT) -g
override CFLAGS += $(SAN) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpointer-arith -Werror -fopenmp -fPIC -Iinclude -Isrc -MMD -MP
override LDFLAGS += $(SAN)
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
LDLIBS   += -ldnnl -lopenblas -lpng -ljpeg -llinear -lsvm -lm -lpthread -fopenmp

LIB_DIRS := core cpu nn optim io data da eval gap bench
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard src/$(d)/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard bench/bench_*.c)
SHIM_SRC := $(wildcard tests/shim*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# ---- issue 21 (kept in one block for merging): the flat binding API ----
# (src/api), the clean shared library for installation and Python, and
# `make install`. $(BUILD)/libsegda.so stays the test library (it carries
# tests/shim*.c for the PyTorch parity scripts); the library that is
# installed and that python/segda loads is $(BUILD)/lib/libsegda.so.X.Y.Z,
# built from the library objects only, with the soname libsegda.so.MAJOR.
API_SRC  := $(wildcard src/api/*.c)
LIB_SRC  += $(API_SRC)
LIB_OBJ  += $(API_SRC:%.c=$(BUILD)/obj/%.o)
VERSION  := $(shell sed -n 's/^\#define SD_VERSION "\(.*\)"/\1/p' include/segda/api.h)
SONAME   := libsegda.so.$(firstword $(subst ., ,$(VERSION)))
PUBLIB   := $(BUILD)/lib/libsegda.so.$(VERSION)
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
DESTDIR  ?=
# what a static link against libsegda.a needs (segda.pc's Libs.private)
PC_PRIVATE := -ldnnl -lopenblas -lpng -ljpeg -llinear -lsvm -lm -lpthread -lgomp

.PHONY: install
all: $(BUILD)/lib/libsegda.so

$(PUBLIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(BUILD)/lib/libsegda.so: $(PUBLIB)
	ln -sf $(notdir $(PUBLIB)) $(BUILD)/lib/$(SONAME)
	ln -sf $(SONAME) $@

install: $(BUILD)/segda $(BUILD)/libsegda.a $(PUBLIB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/segda $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(BUILD)/segda $(DESTDIR)$(PREFIX)/bin/segda
	install -m 755 tools/pth2safetensors.py $(DESTDIR)$(PREFIX)/bin/segda-pth2safetensors
	install -m 644 include/segda/*.h $(DESTDIR)$(PREFIX)/include/segda/
	install -m 644 $(BUILD)/libsegda.a $(DESTDIR)$(LIBDIR)/libsegda.a
	install -m 755 $(PUBLIB) $(DESTDIR)$(LIBDIR)/libsegda.so.$(VERSION)
	ln -sf libsegda.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsegda.so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|; s|@PRIVATE@|$(PC_PRIVATE)|' \
	  tools/segda.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/segda.pc
# ---- end of the issue 21 block ----

.PHONY: all deps test check asan demo bench bench-micro fuzz clean
all: $(BUILD)/libsegda.a $(BUILD)/libsegda.so $(BUILD)/segda $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsegda.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The shared library serves the PyTorch parity tests (loaded with ctypes).
# tests/shim*.c hold flat entry points for those scripts.
$(BUILD)/libsegda.so: $(LIB_OBJ) $(SHIM_SRC:%.c=$(BUILD)/obj/%.o)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/segda: $(CLI_OBJ) $(BUILD)/libsegda.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsegda.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libsegda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsegda.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libsegda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsegda.a $(LDLIBS)

deps:
	@tools/deps.sh

# check: build and run the suite without the package step (what test runs after deps)
check: all
	@BUILD=$(BUILD) PYTHON=$(PYTHON) SEGDA_ASAN=$(SEGDA_ASAN) tests/run.sh

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory check

ASAN_ARGS := BUILD=build-asan OPT=-O1 SEGDA_ASAN=1 \
  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
asan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(ASAN_ARGS)
	@$(MAKE) --no-print-directory check $(ASAN_ARGS)

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	$(BUILD)/segda demo --out demo-out

# bench: segda bench (f32 and bf16) and bench/bench_torch.py on the same
# workloads, threads and steps, merged into one table by tools/bench_table.py.
# THREADS, ITERS, WARMUP, WORKLOADS (names, default all) choose the runs;
# BENCH_ARGS adds options to both segda bench runs (e.g. --data SPEC).
# A failed run does not stop the others: the table lists what failed and
# make bench then fails. JSON files stay in BENCH_OUT. Both sides get one OpenMP wait policy (segda's
# default, passive: spinning workers of either side stall the other's work on
# a shared machine). bench-micro: the per-op programs bench/bench_*.c.
THREADS   ?= $(JOBS)
ITERS     ?= 3
WARMUP    ?= 1
WORKLOADS ?=
BENCH_ARGS ?=
BENCH_OUT ?= $(BUILD)/bench-results
OMP_WAIT_POLICY ?= passive
BENCH_RUN := --threads $(THREADS) --iters $(ITERS) --warmup $(WARMUP)
bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@mkdir -p $(BENCH_OUT)
	-OMP_WAIT_POLICY=$(OMP_WAIT_POLICY) $(BUILD)/segda bench $(WORKLOADS) $(BENCH_RUN) --precision f32 --json $(BENCH_OUT)/segda-f32.json $(BENCH_ARGS)
	-OMP_WAIT_POLICY=$(OMP_WAIT_POLICY) $(BUILD)/segda bench $(WORKLOADS) $(BENCH_RUN) --precision bf16 --json $(BENCH_OUT)/segda-bf16.json $(BENCH_ARGS)
	-OMP_WAIT_POLICY=$(OMP_WAIT_POLICY) SEGDA_BUILD=$(BUILD) $(PYTHON) bench/bench_torch.py $(WORKLOADS) $(BENCH_RUN) --precision f32,bf16 \
	  --json $(BENCH_OUT)/torch.json > /dev/null
	@echo
	@$(PYTHON) tools/bench_table.py $(BENCH_OUT)/segda-f32.json $(BENCH_OUT)/segda-bf16.json $(BENCH_OUT)/torch.json

bench-micro: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

include fuzz/fuzz.mk
