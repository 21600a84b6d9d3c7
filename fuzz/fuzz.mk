# `make fuzz`: builds fuzz/fuzz_image.c with libFuzzer + ASan/UBSan (clang)
# and runs it for FUZZ_TIME seconds from the seeds in fuzz/corpus. New inputs
# go to $(FUZZ_BUILD)/corpus; a crash leaves crash-* files there and fails.
# The toolchain comes from `tools/deps.sh fuzz` (clang, libclang-rt-dev for
# libFuzzer and the sanitizers, libomp-dev for -fopenmp).
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60
FUZZ_CC    ?= clang
FUZZ_SRC   := fuzz/fuzz_image.c src/io/image.c src/io/file.c src/core/error.c src/core/rng.c

.PHONY: fuzz-deps fuzz-safetensors
fuzz-deps:
	@tools/deps.sh fuzz

fuzz: $(FUZZ_BUILD)/fuzz_image
	@mkdir -p $(FUZZ_BUILD)/corpus
	cd $(FUZZ_BUILD) && ./fuzz_image -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 \
	  -timeout=10 -print_final_stats=1 corpus ../fuzz/corpus

$(FUZZ_BUILD)/fuzz_image: $(FUZZ_SRC) include/segda/image.h include/segda/core.h | fuzz-deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -Iinclude -Isrc \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(FUZZ_SRC) -lpng -ljpeg -lopenblas -lm

# safetensors header parser (models engineer): `make fuzz` runs it after fuzz_image.
FUZZ_ST_SRC := fuzz/fuzz_safetensors.c src/io/safetensors.c src/io/file.c src/core/error.c src/core/rng.c
fuzz: fuzz-safetensors
fuzz-safetensors: $(FUZZ_BUILD)/fuzz_safetensors
	@mkdir -p $(FUZZ_BUILD)/corpus_safetensors
	cd $(FUZZ_BUILD) && ./fuzz_safetensors -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 \
	  -timeout=10 -print_final_stats=1 corpus_safetensors ../fuzz/corpus_safetensors
$(FUZZ_BUILD)/fuzz_safetensors: $(FUZZ_ST_SRC) include/segda/safetensors.h include/segda/core.h | fuzz-deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -Iinclude -Isrc \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(FUZZ_ST_SRC) -lopenblas -lm

# configuration text and mapping.txt (issue 17): `make fuzz` runs them too.
FUZZ_CFG_SRC := fuzz/fuzz_config.c src/train/config_file.c src/core/util.c src/io/file.c src/core/error.c src/core/rng.c
FUZZ_MAP_SRC := fuzz/fuzz_mapping.c src/data/label_map.c src/core/util.c src/core/error.c src/core/rng.c
.PHONY: fuzz-config fuzz-mapping
fuzz: fuzz-config fuzz-mapping
fuzz-config: $(FUZZ_BUILD)/fuzz_config
	@mkdir -p $(FUZZ_BUILD)/corpus_config
	cd $(FUZZ_BUILD) && ./fuzz_config -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 \
	  -timeout=10 -print_final_stats=1 corpus_config ../fuzz/corpus_config
fuzz-mapping: $(FUZZ_BUILD)/fuzz_mapping
	@mkdir -p $(FUZZ_BUILD)/corpus_mapping
	cd $(FUZZ_BUILD) && ./fuzz_mapping -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 \
	  -timeout=10 -print_final_stats=1 corpus_mapping ../fuzz/corpus_mapping
$(FUZZ_BUILD)/fuzz_config $(FUZZ_BUILD)/fuzz_mapping: $(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_CFG_SRC) $(FUZZ_MAP_SRC) include/segda/core.h include/segda/train.h include/segda/labels.h | fuzz-deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -Iinclude -Isrc \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(FUZZ_$(if $(filter config,$*),CFG,MAP)_SRC) -lopenblas -lm
