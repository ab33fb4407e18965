#!/usr/bin/env bash
# Installs the Debian packages Slackline builds and tests with. Idempotent: packages already
# installed are left alone. Runs apt-get directly as root, through sudo otherwise.
#   make/install_deps.sh            install what is missing
#   make/install_deps.sh --check    list what is missing, install nothing (exit 1 if any)
set -euo pipefail

packages=(
  build-essential pkg-config python3
  libzmq3-dev cppzmq-dev              # transport
  libprotobuf-dev protobuf-compiler   # wire meta
  libdmlc-dev                         # logging, libsvm parsing
  libzstd-dev liblz4-dev              # filters: compression
  libxxhash-dev                       # filters: key list signatures (XXH3)
  libgtest-dev                        # tests
  clang-format                        # make lint
  clang-14 libclang-rt-14-dev         # make fuzz: libFuzzer targets (make test replays them)
  openmpi-bin                         # launcher: mpi mode
  openssh-server openssh-client       # launcher: ssh mode
  iproute2                            # tests/cluster: network namespaces, veth, htb
  python3-dev pybind11-dev python3-pybind11 python3-numpy  # src/python: the slackline module
  slurm-wlm slurmctld slurmd munge    # launcher: slurm mode (tests run a one-host Slurm)
  prometheus-cpp-dev                  # metrics: Prometheus registry and pull exposer
  curl prometheus                     # tests: scrape metrics, promtool check metrics
  liblinear-tools                     # tests: reference optimum on generated data
  python3-matplotlib                  # bench and make demo: PNG plots (/usr/bin/python3)
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "missing Debian packages: ${missing[*]}"
  exit 1
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install_deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: installed ${missing[*]}"
