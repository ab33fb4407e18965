# Slackline: build, test, install. `make help` lists the targets.
# Builds use every core unless told otherwise (make -j1).
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif
include make/config.mk
include make/deps.mk
# deps.mk defines the first rule; a plain `make` still builds the library.
.DEFAULT_GOAL := all

# ---- variant and folders --------------------------------------------------------------------
VARIANT := $(strip $(if $(filter 1,$(DEBUG)),debug) $(if $(filter 1,$(ASAN)),asan) \
             $(if $(filter 1,$(TSAN)),tsan) $(if $(filter 1,$(UBSAN)),ubsan) \
             $(if $(filter 1,$(USE_KEY32)),key32))
BUILD := build$(if $(VARIANT),/$(subst $(eval) ,-,$(VARIANT)))
GEN := $(BUILD)/gen
OBJ := $(BUILD)/obj

# ---- output: one short line a step; make V=1 prints the full commands ----------------------
# $(call say,CXX,file) prints "CXX file" and silences the command after it; with V=1 it is empty.
V ?= 0
say = $(if $(filter 1,$(V)),,@printf '%-6s %s\n' '$(1)' '$(2)';)

# ---- flags ----------------------------------------------------------------------------------
OPT := $(if $(filter 1,$(DEBUG)),-O0,-O2)
SAN := $(if $(filter 1,$(ASAN)),-fsanitize=address -fno-omit-frame-pointer) \
       $(if $(filter 1,$(TSAN)),-fsanitize=thread) \
       $(if $(filter 1,$(UBSAN)),-fsanitize=undefined -fno-sanitize-recover=undefined)
SAN += $(if $(strip $(SAN)),-DPS_NO_TARGET_CLONES)
KEYDEF := $(if $(filter 1,$(USE_KEY32)),-DPS_USE_KEY32=1)
CXXFLAGS += -std=c++17 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fPIC -pthread \
            $(SAN) $(KEYDEF) -Iinclude -Isrc -Itests -I$(GEN) -MMD -MP
LDFLAGS += $(SAN)

# ---- library --------------------------------------------------------------------------------
LIB_SRCS := $(sort $(filter-out src/python/%,$(wildcard src/*/*.cc)))
PROTO_SRC := $(GEN)/meta.pb.cc
LIB_OBJS := $(LIB_SRCS:%.cc=$(OBJ)/%.o) $(OBJ)/gen/meta.pb.o

# ---- tests ----------------------------------------------------------------------------------
UNIT_SRCS := $(sort $(wildcard tests/unit/*/*_test.cc))
INTEG_SRCS := $(sort $(wildcard tests/integration/*_test.cc))
# tests/cluster/*.cc: programs the simulated cluster's tests run across its hosts.
PROG_SRCS := $(sort $(filter-out %_test.cc,$(wildcard tests/integration/*.cc tests/cluster/*.cc)))
TEST_BINS := $(UNIT_SRCS:%.cc=$(BUILD)/%) $(INTEG_SRCS:%.cc=$(BUILD)/%)
PROG_BINS := $(PROG_SRCS:%.cc=$(BUILD)/%)
BENCH_BINS := $(patsubst %.cc,$(BUILD)/%,$(wildcard bench/*.cc))
# Demos: every folder demo/<name>/ builds $(BUILD)/demo/<name> from its .cc files (demo/python
# holds scripts: see make/python.mk).
DEMO_NAMES := $(filter-out python,$(notdir $(patsubst %/,%,$(wildcard demo/*/))))
DEMO_BINS := $(DEMO_NAMES:%=$(BUILD)/demo/%)
# Tools: every folder tools/<name>/ builds $(BUILD)/tools/<name> the same way.
TOOL_NAMES := $(notdir $(patsubst %/,%,$(wildcard tools/*/)))
TOOL_BINS := $(TOOL_NAMES:%=$(BUILD)/tools/%)

.PHONY: all lib demos tools test bench lint install clean help
# libFuzzer targets (make fuzz): their own file, make/fuzz.mk.
include make/fuzz.mk

all: lib
lib: $(BUILD)/libps.a $(BUILD)/libps.so $(BUILD)/pkgconfig/ps.pc

help:
	@echo "make [all]      build $(BUILD)/libps.a, libps.so and pkgconfig/ps.pc"
	@echo "make test       build and run every test; ends with 'N passed, M failed'"
	@echo "make demos      build the demos ($(BUILD)/demo/<name>)"
	@echo "make tools      build the tools ($(BUILD)/tools/<name>, e.g. gen_data)"
	@echo "make bench      build and run the benchmarks (build/bench/*.jsonl)"
	@echo "make deps       install the Debian packages the build needs"
	@echo "make lint       check formatting with clang-format"
	@echo "make fuzz       run each libFuzzer target FUZZ_SECONDS (60) and merge into fuzz/corpus/"
	@echo "make install PREFIX=DIR"
	@echo "options: V=1 (full commands) DEBUG=1 ASAN=1 TSAN=1 UBSAN=1 USE_KEY32=1 (see make/config.mk)"

# Generated protobuf code; objects wait for it, since several include meta.pb.h.
$(GEN)/meta.pb.cc $(GEN)/meta.pb.h &: src/message/meta.proto | $(DEPS_STAMP)
	@mkdir -p $(GEN)
	$(call say,PROTOC,$<)protoc --proto_path=src/message --cpp_out=$(GEN) $<

$(OBJ)/%.o: %.cc | $(DEPS_STAMP) $(GEN)/meta.pb.h
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)$(CXX) $(CXXFLAGS) -c $< -o $@

# The key order check runs on every KVWorker call: vectorised (see key_order.cc).
$(OBJ)/src/kv/key_order.o: CXXFLAGS += -O3

$(OBJ)/gen/meta.pb.o: $(GEN)/meta.pb.cc
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)$(CXX) $(CXXFLAGS) -Wno-extra -c $< -o $@

$(BUILD)/libps.a: $(LIB_OBJS)
	@rm -f $@
	$(call say,AR,$@)ar rcs $@ $^

$(BUILD)/libps.so: $(LIB_OBJS)
	$(call say,LD,$@)$(CXX) -shared -o $@ $^ $(LDFLAGS) $(DEP_LIBS)

# ps.pc for the in-tree build: points at this checkout's include/ and $(BUILD)/.
$(BUILD)/pkgconfig/ps.pc: make/ps.pc.in Makefile
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)sed -e 's|@PREFIX@|$(CURDIR)|; s|@INCLUDEDIR@|$${prefix}/include|; s|@LIBDIR@|$${prefix}/$(BUILD)|' \
	    -e 's|@CFLAGS@|$(strip $(KEYDEF) $(SAN))|; s|@LIBS@|$(strip $(SAN))|' $< > $@

# Test binaries link the static library, so they run from any folder. Programs that tests
# start as processes have their own main().
$(PROG_BINS) $(BENCH_BINS): $(BUILD)/%: $(OBJ)/%.o $(BUILD)/libps.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CXX) -o $@ $< $(BUILD)/libps.a $(LDFLAGS) $(DEP_LIBS)

# $(call PROGRAM_RULE,demo,linear) links $(BUILD)/demo/linear from demo/linear/*.cc.
define PROGRAM_RULE
$(BUILD)/$(1)/$(2): $(patsubst %.cc,$(OBJ)/%.o,$(wildcard $(1)/$(2)/*.cc)) $(BUILD)/libps.a
	@mkdir -p $$(dir $$@)
	$$(call say,LD,$$@)$$(CXX) -o $$@ $$(filter %.o,$$^) $(BUILD)/libps.a $$(LDFLAGS) $$(DEP_LIBS)
endef
$(foreach d,$(DEMO_NAMES),$(eval $(call PROGRAM_RULE,demo,$(d))))
$(foreach t,$(TOOL_NAMES),$(eval $(call PROGRAM_RULE,tools,$(t))))

demos: $(DEMO_BINS)
tools: $(TOOL_BINS)

$(BUILD)/tests/%: $(OBJ)/tests/%.o $(BUILD)/libps.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CXX) -o $@ $< $(BUILD)/libps.a $(LDFLAGS) $(TEST_LIBS) $(DEP_LIBS)

test: $(TEST_BINS) $(PROG_BINS) $(DEMO_BINS) $(TOOL_BINS) lib $(if $(FUZZ_CXX),$(FUZZ_BINS))
	@python3 tests/run_tests.py --build-dir $(BUILD)

# Benchmarks: never part of make test. Each prints JSON lines, kept in $(BUILD)/bench/; those
# that compare models over time also get a PNG plot there (bench/plot.py, Debian's matplotlib,
# hence Debian's interpreter).
PLOT := /usr/bin/python3 bench/plot.py
bench: $(BENCH_BINS) $(DEMO_BINS) $(TOOL_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b | tee $$b.jsonl || exit 1; \
	  case $$(basename $$b) in lr_consistency|ssp_staleness|consistency_bench) \
	    $(PLOT) $$(basename $$b) $$b.jsonl $$b.png || exit 1;; esac; done
	@echo "== bench/cluster_lr.py"; mkdir -p $(BUILD)/bench
	@bash -o pipefail -c 'python3 bench/cluster_lr.py --build-dir $(BUILD) | tee $(BUILD)/bench/cluster_lr.jsonl'
	@if grep -q '"trace"' $(BUILD)/bench/cluster_lr.jsonl; then \
	  $(PLOT) cluster_lr $(BUILD)/bench/cluster_lr.jsonl $(BUILD)/bench/cluster_lr.png; fi

lint: | $(DEPS_STAMP)
	@files=$$(git ls-files '*.h' '*.cc'); \
	clang-format --dry-run --Werror $$files && echo "lint: $$(echo $$files | wc -w) files formatted"

# make demo: the logistic regression demo on generated data (kept in $(BUILD)/demo-data/),
# 1 server and 2 workers through the launcher.
DEMO_DATA := $(BUILD)/demo-data
DEMO_GEN := --rows=100000 --features=100000 --nnz=20 --seed=1
.PHONY: demo
demo: $(BUILD)/demo/linear $(DEMO_DATA)/train.libsvm
	@echo "python3 tracker/launch.py -s 1 -n 2 -- $(BUILD)/demo/linear ..."
	@bash -o pipefail -c 'python3 tracker/launch.py -s 1 -n 2 -- $(BUILD)/demo/linear \
	    --data=$(DEMO_DATA)/train.libsvm --test=$(DEMO_DATA)/test.libsvm --l1=2 --trace=on \
	    | tee $(BUILD)/demo-run.log'
	@$(PLOT) demo $(BUILD)/demo-run.log $(BUILD)/demo-objective.png >/dev/null && \
	    echo "make demo: objective against time plotted in $(BUILD)/demo-objective.png"

$(DEMO_DATA)/train.libsvm: $(BUILD)/tools/gen_data
	@mkdir -p $(DEMO_DATA)
	$(call say,GEN,$@)$(BUILD)/tools/gen_data $(DEMO_GEN) --out=$@ --test-rows=20000 --test-out=$(DEMO_DATA)/test.libsvm

install: lib
	install -d $(PREFIX)/include/ps/internal $(PREFIX)/lib/pkgconfig
	install -m 644 include/ps/*.h $(PREFIX)/include/ps/
	install -m 644 include/ps/internal/*.h $(PREFIX)/include/ps/internal/
	install -m 644 $(BUILD)/libps.a $(BUILD)/libps.so $(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@INCLUDEDIR@|$${prefix}/include|; s|@LIBDIR@|$${prefix}/lib|' \
	    -e 's|@CFLAGS@|$(strip $(KEYDEF) $(SAN))|; s|@LIBS@|$(strip $(SAN))|' \
	    make/ps.pc.in > $(PREFIX)/lib/pkgconfig/ps.pc

clean:
	rm -rf build

# Keep objects of test binaries: they are not intermediate files to delete.
.SECONDARY:

# The Python module (make python): its own file, make/python.mk.
include make/python.mk

-include $(shell find build -name '*.d' 2>/dev/null)
