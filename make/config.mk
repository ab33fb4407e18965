# Build options. Override on the command line (make ASAN=1 test) or in the environment.

# Compiler and optimisation.
CXX ?= g++
DEBUG ?= 0

# Sanitizers: each builds into its own folder under build/, so switching costs no clean.
ASAN ?= 0
TSAN ?= 0
UBSAN ?= 0

# 32-bit keys instead of 64-bit (ps::Key). Changes the ABI; also in the installed ps.pc.
USE_KEY32 ?= 0

# Where `make install` puts headers, libraries and ps.pc.
PREFIX ?= /usr/local
