// checkpoint_bench: what a checkpoint costs (PS_CHECKPOINT_DIR), next to writing and reading
// the same bytes plainly on the same disk, in the same run.
//
//   checkpoint_bench [--runs R] [--max-keys N]
//
// Started without DMLC_ROLE it is the driver; the job's nodes are copies of this program. For
// 1e6 and 1e7 keys (one float each, spread over the key space; up to --max-keys):
//  - write: a job of 1 server (KVServerDefaultHandle) and 1 worker; the worker pushes every
//    key, then R times (interleaved, the order alternating) times KVWorker::Checkpoint (barriers,
//    the server's snapshot, the range file written and flushed, the manifest) against a plain
//    write loop of as many bytes to one file in the same folder, then fsync (the yardstick, what
//    dd conv=fsync does).
//  - load: in the driver, R times (interleaved) what a resuming server does, finding the latest
//    checkpoint (which reads every file to check its checksum), reading its range file and
//    restoring it into a KVServerDefaultHandle, against a plain read loop of the same files.
//    Both read from the page cache, most likely: the files were just written.
// The scratch folder is BUILD/bench/checkpoint-scratch, removed afterwards. Every line is JSON:
// per size the medians in ms, the bytes, and the ratio (1.0: as fast as the plain I/O).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/programs.h"
#include "ps/internal/checkpoint_io.h"
#include "ps/ps.h"

namespace {

namespace fs = std::filesystem;
using ps::test::IntFlag;
using ps::test::Median;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "checkpoint_bench: %s\n", what.c_str());
  std::exit(1);
}

uint64_t FolderBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += fs::file_size(e.path());
  return n;
}

// The yardstick: "bytes" bytes written to "path" in 1 MiB writes, then fsync.
double PlainWrite(const std::string& path, const std::vector<char>& buf, uint64_t bytes) {
  const auto t = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Fail("cannot create " + path);
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - done));
    if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) Fail("cannot write " + path);
    done += n;
  }
  if (::fsync(fd) != 0) Fail("cannot fsync " + path);
  ::close(fd);
  const double secs = Since(t);
  ::unlink(path.c_str());
  return secs;
}

// The yardstick: every file of "dir" read in 1 MiB reads.
double PlainRead(const std::string& dir, std::vector<char>* buf) {
  const auto t = Clock::now();
  for (const auto& e : fs::directory_iterator(dir)) {
    int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) Fail("cannot open " + e.path().string());
    while (::read(fd, buf->data(), buf->size()) > 0) {
    }
    ::close(fd);
  }
  return Since(t);
}

// The worker of the write job: pushes "n" keys, then times checkpoints against plain writes.
void WriteJob(size_t n, int runs) {
  ps::KVWorker<float> kv(0, 0);
  ps::SArray<ps::Key> keys(n);
  ps::SArray<float> vals(n);
  for (size_t i = 0; i < n; ++i) {
    keys[i] = static_cast<ps::Key>(i) * (ps::kMaxKey / n);
    vals[i] = static_cast<float>(i % 1000) * 0.5f;
  }
  kv.Wait(kv.ZPush(keys, vals));
  const std::string dir = ps::Postoffice::Get()->checkpoint_config().dir;
  std::vector<char> buf(1 << 20, 'x');
  std::vector<double> ours, plain;
  uint64_t bytes = 0;
  for (int r = 0; r < runs; ++r) {
    const std::string step = ps::checkpoint::StepPath(dir, r + 1);
    auto checkpoint = [&] {
      const auto t = Clock::now();
      kv.Checkpoint(r + 1);
      ours.push_back(Since(t));
      bytes = FolderBytes(step);
    };
    if (r % 2 == 0) checkpoint();
    plain.push_back(PlainWrite(dir + "/plain", buf, bytes ? bytes : n * 12 + 512));
    if (r % 2 == 1) checkpoint();
  }
  std::printf(
      "{\"case\": \"checkpoint_write\", \"keys\": %zu, \"bytes\": %llu, \"runs\": %d, "
      "\"slackline_ms\": %.2f, \"plain_write_fsync_ms\": %.2f, \"ratio\": %.3f, "
      "\"slackline_mb_per_s\": %.1f}\n",
      n, static_cast<unsigned long long>(bytes), runs, Median(ours) * 1e3, Median(plain) * 1e3,
      Median(ours) / Median(plain), bytes / Median(ours) / 1e6);
  std::fflush(stdout);
}

// Where a load's time went: finding the checkpoint (checksums), reading, restoring.
struct LoadParts {
  std::vector<double> find, read, restore;
};

// What a resuming server does with the latest checkpoint in "dir", timed.
double Load(const std::string& dir, size_t n, LoadParts* parts) {
  ps::CheckpointConfig config;
  ps::Status s =
      ps::checkpoint::ParseConfig(ps::Environment({{"PS_CHECKPOINT_DIR", dir}}), &config);
  if (!s.ok()) Fail(s.message());
  ps::KVServerDefaultHandle<float> handle;
  const auto t = Clock::now();
  std::optional<ps::CheckpointInfo> info;
  s = ps::checkpoint::FindLatest(config, &info);
  if (!s.ok() || !info) Fail("no checkpoint to load in " + dir + ": " + s.message());
  parts->find.push_back(Since(t));
  double read = 0, restore = 0;
  size_t restored = 0;
  for (const ps::CheckpointFile& f : info->files) {
    ps::checkpoint::RangeHeader h;
    ps::SArray<char> keys, vals;
    ps::SArray<int> lens;
    const auto r = Clock::now();
    s = ps::checkpoint::ReadRange(*info, f, &h, &keys, &vals, &lens);
    if (!s.ok()) Fail(s.message());
    read += Since(r);
    const auto w = Clock::now();
    ps::KVPairs<float> pairs;
    pairs.keys = ps::SArray<ps::Key>(keys);
    pairs.vals = ps::SArray<float>(vals);
    pairs.lens = lens;
    handle.Restore(pairs);
    restore += Since(w);
    restored += pairs.keys.size();
  }
  parts->read.push_back(read);
  parts->restore.push_back(restore);
  const double secs = Since(t);
  if (restored != n)
    Fail("restored " + std::to_string(restored) + " keys, not " + std::to_string(n));
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = IntFlag(argc, argv, "--runs", 5);
  const size_t max_keys = static_cast<size_t>(IntFlag(argc, argv, "--max-keys", 10000000));
  if (const char* n = std::getenv("BENCH_KEYS")) {
    // A node of the write job.
    ps::Start(0, argv[0]);
    if (ps::IsServer()) {
      ps::KVServer<float> server(0);
      server.set_request_handle(ps::KVServerDefaultHandle<float>());
      ps::Finalize(0, true);
      return 0;
    }
    if (ps::IsWorker()) WriteJob(static_cast<size_t>(std::atol(n)), runs);
    ps::Finalize(0, true);
    return 0;
  }
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) Fail("cannot find this program");
  const std::string scratch =
      ps::test::ParentDir(std::string(exe, static_cast<size_t>(len))) + "/checkpoint-scratch";
  for (size_t n : {size_t(1000000), size_t(10000000)}) {
    if (n > max_keys) continue;
    const std::string dir = scratch + "/" + std::to_string(n);
    fs::remove_all(dir);
    fs::create_directories(dir);
    // Keep them all: the load reads the latest.
    if (ps::test::RunSelfJob(
            argv, 1,
            {"BENCH_KEYS=" + std::to_string(n), "PS_CHECKPOINT_DIR=" + dir,
             "PS_CHECKPOINT_KEEP=" + std::to_string(runs + 2), "PS_HEARTBEAT_INTERVAL=0"}) != 0) {
      Fail("the write job failed");
    }
    std::vector<double> ours, plain;
    LoadParts parts;
    std::vector<char> buf(1 << 20);
    const std::string latest = ps::checkpoint::StepPath(dir, runs);
    for (int r = 0; r < runs; ++r) {
      if (r % 2 == 0) ours.push_back(Load(dir, n, &parts));
      plain.push_back(PlainRead(latest, &buf));
      if (r % 2 == 1) ours.push_back(Load(dir, n, &parts));
    }
    std::printf(
        "{\"case\": \"checkpoint_load\", \"keys\": %zu, \"bytes\": %llu, \"runs\": %d, "
        "\"slackline_ms\": %.2f, \"plain_read_ms\": %.2f, \"ratio\": %.3f, "
        "\"slackline_mb_per_s\": %.1f, \"find_and_check_ms\": %.2f, \"read_ms\": %.2f, "
        "\"restore_ms\": %.2f}\n",
        n, static_cast<unsigned long long>(FolderBytes(latest)), runs, Median(ours) * 1e3,
        Median(plain) * 1e3, Median(ours) / Median(plain), FolderBytes(latest) / Median(ours) / 1e6,
        Median(parts.find) * 1e3, Median(parts.read) * 1e3, Median(parts.restore) * 1e3);
    std::fflush(stdout);
    fs::remove_all(dir);
  }
  fs::remove_all(scratch);
  return 0;
}
