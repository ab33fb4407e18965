# Fuzzing: libFuzzer targets built with Debian's clang (clang-14, libclang-rt-14-dev) under
# AddressSanitizer and UndefinedBehaviorSanitizer, into build/fuzz/ whatever the variant.
#   make fuzz [FUZZ_SECONDS=60]   runs each target for FUZZ_SECONDS from the committed corpus
#                                 (fuzz/corpus/<target>/) and merges what it found into it,
#                                 keeping only inputs that add coverage
#   make fuzz-build               builds the targets only (make test replays the corpus)
FUZZ_CXX := $(shell command -v clang++-14 2>/dev/null || command -v clang++ 2>/dev/null)
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := meta_fuzz filter_fuzz ssp_wire_fuzz van_fuzz
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer -pthread -DPS_NO_TARGET_CLONES \
                 $(FUZZ_SAN) $(KEYDEF) -Iinclude -Isrc -I. -I$(GEN) -MMD -MP
FUZZ_LIB_OBJS := $(LIB_SRCS:%.cc=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/meta.pb.o

$(FUZZ_DIR)/obj/%.o: %.cc | $(DEPS_STAMP) $(GEN)/meta.pb.h
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/gen/meta.pb.o: $(GEN)/meta.pb.cc
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -w -c $< -o $@

$(FUZZ_DIR)/libps.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(call say,AR,$@)ar rcs $@ $^

$(FUZZ_BINS): $(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/fuzz/%.o $(FUZZ_DIR)/libps.a
	$(call say,LD,$@)$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libps.a \
	    $(DEP_LIBS)

$(FUZZ_DIR)/make_seeds: $(FUZZ_DIR)/obj/fuzz/make_seeds.o $(FUZZ_DIR)/libps.a
	$(call say,LD,$@)$(FUZZ_CXX) $(FUZZ_SAN) -o $@ $< $(FUZZ_DIR)/libps.a $(DEP_LIBS)

.PHONY: fuzz fuzz-build
ifeq ($(FUZZ_CXX),)
fuzz fuzz-build:
	@echo "fuzz: clang++ is not installed (Debian clang-14 and libclang-rt-14-dev; make deps)"; exit 1
else
fuzz-build: $(FUZZ_BINS) $(FUZZ_DIR)/make_seeds

# Each target fuzzes from the committed corpus and new seeds; then a merge keeps in
# fuzz/corpus/<target>/ only the inputs that add coverage (the corpus stays small).
fuzz: fuzz-build
	@rm -rf $(FUZZ_DIR)/seeds && $(FUZZ_DIR)/make_seeds $(FUZZ_DIR)/seeds
	@for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  mkdir -p fuzz/corpus/$$t $(FUZZ_DIR)/scratch/$$t $(FUZZ_DIR)/seeds/$$t; \
	  $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$t- \
	    $(FUZZ_DIR)/scratch/$$t fuzz/corpus/$$t $(FUZZ_DIR)/seeds/$$t 2>&1 | \
	    grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Test unit written" ; \
	  rm -rf $(FUZZ_DIR)/merged/$$t && mkdir -p $(FUZZ_DIR)/merged/$$t; \
	  $(FUZZ_DIR)/$$t -merge=1 $(FUZZ_DIR)/merged/$$t fuzz/corpus/$$t $(FUZZ_DIR)/scratch/$$t \
	    $(FUZZ_DIR)/seeds/$$t >/dev/null 2>&1 || exit 1; \
	  rm -rf fuzz/corpus/$$t && mv $(FUZZ_DIR)/merged/$$t fuzz/corpus/$$t; \
	  echo "   corpus: $$(ls fuzz/corpus/$$t | wc -l) inputs"; \
	done
endif

