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
# FFTW3: FDA's spectra (src/da/fda.c); LAPACKE (over OpenBLAS's LAPACK): the
# gap tool's PCA (src/gap/pca.c)
LDLIBS   += -lfftw3 -llapacke

# MPI (data-parallel training, src/dist/dist.c) when Open MPI's pkg-config
# file or mpicc is found; MPI=0 builds without it. `tools/deps.sh mpi`
# installs it (make test does).
MPI ?= auto
ifneq ($(MPI),0)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
endif
ifneq ($(strip $(MPI_LIBS)),)
$(BUILD)/obj/src/dist/dist.o: override CFLAGS += $(patsubst -I%,-isystem %,$(MPI_CFLAGS)) -DSD_HAVE_MPI
LDLIBS   += $(MPI_LIBS)
else
$(info segda: built without MPI (no ompi-c pkg-config file or mpicc; `tools/deps.sh mpi` installs Open MPI))
endif

# FFmpeg's libraries (video in `segda predict`, src/io/video.c) when
# pkg-config finds them; VIDEO=0 builds without (video then fails, saying
# what it needs). tools/deps.sh installs them.
VIDEO ?= auto
ifneq ($(VIDEO),0)
AV_LIBS   := $(shell pkg-config --libs libavformat libavcodec libswscale libavutil 2>/dev/null)
AV_CFLAGS := $(shell pkg-config --cflags libavformat libavcodec libswscale libavutil 2>/dev/null)
endif
ifneq ($(strip $(AV_LIBS)),)
$(BUILD)/obj/src/io/video.o: override CFLAGS += $(patsubst -I%,-isystem %,$(AV_CFLAGS)) -DSD_HAVE_FFMPEG
LDLIBS   += $(AV_LIBS)
else
$(info segda: built without video (pkg-config finds no libavformat/libavcodec/libswscale/libavutil; tools/deps.sh installs them))
endif

LIB_DIRS := core cpu nn optim io data train da eval gap bench dist
LIB_DIRS += demo   # the demo as a library function (src/demo, include/segda/demo.h)
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard src/$(d)/*.c))

# CUDA backend (src/cuda): built when nvcc and cuDNN's header are found under
# CUDA_HOME; CUDA=0 forces a CPU-only build, CUDA=1 fails without them.
# Only src/core/backend.c sees SEGDA_HAVE_CUDA; only src/cuda sees CUDA headers.
CUDA      ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
# sm_80 (A100) and sm_90 (H100) code, plus sm_90 PTX the driver can JIT for newer GPUs
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
ifeq ($(CUDA),0)
HAVE_CUDA :=
else
HAVE_CUDA := $(shell test -x $(NVCC) && test -f $(CUDA_HOME)/include/cudnn.h && echo 1)
ifeq ($(CUDA)$(HAVE_CUDA),1)
$(error CUDA=1 but $(NVCC) or $(CUDA_HOME)/include/cudnn.h is missing)
endif
endif
ifeq ($(HAVE_CUDA),1)
CUDA_SRC := $(wildcard src/cuda/*.c)
CU_SRC   := $(wildcard src/cuda/*.cu)
LIB_SRC  += $(CUDA_SRC)
CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
# rpath: the libraries are found at run time without LD_LIBRARY_PATH
LDLIBS   += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcudnn -lcublas -lcudart -lstdc++
$(BUILD)/obj/src/core/backend.o: override CFLAGS += -DSEGDA_HAVE_CUDA
$(CUDA_SRC:%.c=$(BUILD)/obj/%.o): override CFLAGS += -I$(CUDA_HOME)/include
NVCCFLAGS ?= -O2 -g
override NVCCFLAGS += -std=c++17 $(NVCC_ARCH) -Iinclude -Isrc -Werror all-warnings -Xcompiler -Wall,-Wextra,-fPIC
# NCCL (data-parallel sums of CUDA buffers, src/cuda/nccl.c) when nccl.h and
# libnccl are found beside CUDA or in /usr(/local) and MPI is built in (the
# unique id travels over MPI); NCCL=0 leaves it out.
NCCL ?= auto
ifneq ($(NCCL),0)
NCCL_INC := $(firstword $(foreach d,$(CUDA_HOME)/include /usr/local/include /usr/include,$(if $(wildcard $(d)/nccl.h),$(d))))
NCCL_LIB := $(firstword $(foreach d,$(CUDA_LIBDIR) /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu,$(if $(wildcard $(d)/libnccl.so*),$(d))))
endif
ifneq ($(and $(NCCL_INC),$(NCCL_LIB),$(strip $(MPI_LIBS))),)
$(BUILD)/obj/src/cuda/nccl.o $(BUILD)/obj/src/dist/dist.o: override CFLAGS += -DSD_HAVE_NCCL -isystem $(NCCL_INC)
LDLIBS   += -L$(NCCL_LIB) -Wl,-rpath,$(NCCL_LIB) -lnccl
endif
endif
CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard bench/bench_*.c)
SHIM_SRC := $(wildcard tests/shim*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CU_OBJ)
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
PC_PRIVATE = $(filter-out -fopenmp,$(LDLIBS)) -lgomp

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

$(BUILD)/obj/%.o: %.cu src/cuda/cuda_internal.h src/cuda/kernels.cuh src/core/ops.def src/core/backend.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libsegda.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The shared library serves the PyTorch parity tests (loaded with ctypes).
# tests/shim*.c hold flat entry points for those scripts.
$(BUILD)/libsegda.so: $(LIB_OBJ) $(SHIM_SRC:%.c=$(BUILD)/obj/%.o)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/segda: $(CLI_OBJ) $(BUILD)/libsegda.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsegda.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/check.h tests/backend_compare.h $(BUILD)/libsegda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsegda.a $(LDLIBS)

# The CUDA kernels compiled for the host (src/cuda/emulate.h) and checked
# against the CPU's: builds and runs without a GPU or the CUDA toolkit.
EMU_OBJ := $(patsubst src/cuda/%.cu,$(BUILD)/emu/%.o,src/cuda/elementwise.cu src/cuda/loss.cu src/cuda/spatial.cu) \
           $(BUILD)/emu/cuda_emulate.o
EMU_CXXFLAGS = -std=c++17 -DSD_CUDA_EMULATE $(OPT) -g $(SAN) -Wall -Wextra -Werror -Iinclude -Isrc \
               -include $(BUILD)/emu/names.h
EMU_DEPS := src/cuda/emulate.h src/cuda/kernels.cuh src/cuda/cuda_internal.h src/core/backend.h $(BUILD)/emu/names.h
# sd_cuda_<kernel> -> sd_emu_<kernel> for every kernel of the registry
$(BUILD)/emu/names.h: src/core/ops.def
	@mkdir -p $(dir $@)
	sed -n 's/^SD_KERNEL(\([a-z0-9_]*\),.*/#define sd_cuda_\1 sd_emu_\1/p' $< > $@
$(BUILD)/emu/%.o: src/cuda/%.cu $(EMU_DEPS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@
$(BUILD)/emu/cuda_emulate.o: tests/cuda_emulate.cc $(EMU_DEPS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@
$(BUILD)/tests/test_cuda_emulated: tests/test_cuda_emulated.c tests/backend_compare.h tests/check.h $(EMU_OBJ) $(BUILD)/libsegda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(EMU_OBJ) $(BUILD)/libsegda.a $(LDLIBS) -lstdc++

$(BUILD)/bench/%: bench/%.c $(BUILD)/libsegda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsegda.a $(LDLIBS)

deps:
	@tools/deps.sh $(DEPS_GROUPS)

# make test also installs MPI, so the data-parallel test runs (tests/test_dist.c)
test: DEPS_GROUPS += mpi
# ... and ONNX Runtime in a venv, for tests/py/test_onnx_export.py
test: DEPS_GROUPS += onnxruntime
# ... and cityscapesScripts in a venv, for tests/py/test_eval_inst_official.py
test: DEPS_GROUPS += cityscapes

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
	-OMP_WAIT_POLICY=$(OMP_WAIT_POLICY) SEGDA_CONV=im2col $(BUILD)/segda bench $(filter-out loader,$(or $(WORKLOADS),vgg321 r101 adaptseg r101-infer r101-infer-2k mini)) $(BENCH_RUN) --precision f32 --json $(BENCH_OUT)/segda-f32-im2col.json $(BENCH_ARGS)
	-OMP_WAIT_POLICY=$(OMP_WAIT_POLICY) SEGDA_BUILD=$(BUILD) $(PYTHON) bench/bench_torch.py $(WORKLOADS) $(BENCH_RUN) --precision f32,bf16 \
	  --json $(BENCH_OUT)/torch.json > /dev/null
	@echo
	@$(PYTHON) tools/bench_table.py $(BENCH_OUT)/segda-f32.json $(BENCH_OUT)/segda-bf16.json $(BENCH_OUT)/torch.json \
	  $(BENCH_OUT)/segda-f32-im2col.json

bench-micro: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_SRC:%.c=$(BUILD)/obj/%.d) $(CLI_OBJ:.o=.d) $(SHIM_SRC:%.c=$(BUILD)/obj/%.d)

include fuzz/fuzz.mk
