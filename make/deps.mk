# Dependencies: Debian packages only, installed by make/install_deps.sh.
# Every build first makes sure they are there; the stamp is redone when the list changes.

DEPS_STAMP := build/.deps-stamp

$(DEPS_STAMP): make/install_deps.sh
	@mkdir -p $(dir $@)
	@bash make/install_deps.sh
	@touch $@

.PHONY: deps
deps:
	@bash make/install_deps.sh
	@echo "deps: all Debian packages present"

# Libraries the build links; all come from the packages above.
DEP_LIBS := -lzmq -lprotobuf-lite -ldmlc -lzstd -llz4 -lxxhash -lprometheus-cpp-pull \
            -lprometheus-cpp-core -pthread
TEST_LIBS := -lgtest -lgtest_main -pthread
