# The Python module `slackline` (src/python/): a pybind11 extension for Debian's Python, built
# into $(BUILD)/python/slackline/. Included from the Makefile.
#   make python                          build it
#   make install-python PREFIX=DIR       install it (also done by make install)
# PYTHON names the interpreter to build for: Debian's, whose python3-numpy and pybind11 the
# deps install. Another CPython 3 with numpy and pybind11 works too: make python PYTHON=...

PYTHON ?= /usr/bin/python3
PY_SRCS := $(sort $(wildcard src/python/*.cc))
PY_OBJS := $(PY_SRCS:%.cc=$(OBJ)/%.o)
PY_PKG := $(BUILD)/python/slackline
# Lazy: evaluated only when the module is built, after the deps are installed.
PY_INCLUDES = $(shell $(PYTHON) -m pybind11 --includes)
PY_EXT := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
PY_SITE = $(shell $(PYTHON) -c 'import sys; print("lib/python%d.%d/dist-packages" % sys.version_info[:2])')
PY_MODULE = $(PY_PKG)/_core$(PY_EXT)

.PHONY: python install-python
python: $(PY_MODULE) $(PY_PKG)/__init__.py

$(PY_OBJS): CXXFLAGS += $(PY_INCLUDES) -fvisibility=hidden

# The extension links the static library: it needs nothing of this checkout at run time.
$(PY_MODULE): $(PY_OBJS) $(BUILD)/libps.a
	@mkdir -p $(PY_PKG)
	$(call say,LD,$@)$(CXX) -shared -o $@ $(PY_OBJS) $(BUILD)/libps.a $(LDFLAGS) $(DEP_LIBS)

$(PY_PKG)/__init__.py: src/python/slackline/__init__.py
	@mkdir -p $(PY_PKG)
	$(call say,CP,$@)cp $< $@

test: python

install: install-python
install-python: python
	install -d $(PREFIX)/$(PY_SITE)/slackline
	install -m 644 $(PY_MODULE) $(PY_PKG)/__init__.py $(PREFIX)/$(PY_SITE)/slackline/

# tests/run_tests.py runs the module's suites (tests/python/) under this interpreter; in a
# sanitizer build, with the sanitizer's runtime preloaded (the interpreter is not built with it,
# and TSAN's runtime cannot be loaded with the module: its static TLS is taken by then). ASAN
# needs libstdc++ after it: else its interceptor of C++ throws finds no real one and aborts.
test: export PS_PYTHON := $(PYTHON)
test: export PS_PYTHON_PRELOAD := $(if $(filter 1,$(ASAN)),$(shell $(CXX) \
    -print-file-name=libasan.so) $(shell $(CXX) -print-file-name=libstdc++.so))$(if \
    $(filter 1,$(TSAN)),$(shell $(CXX) -print-file-name=libtsan.so))
bench: python
