#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "ps/internal/checkpoint_io.h"
#include "ps/internal/message.h"
#include "ps/internal/postoffice.h"

namespace ps {

std::optional<CheckpointInfo> LatestCheckpoint() {
  std::optional<CheckpointInfo> info;
  Postoffice* po = Postoffice::Get();
  Status s = po->ResumeCheckpoint(&info);
  if (!s.ok()) po->Die(s);
  return info;
}

namespace checkpoint {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'S', 'L', 'C', 'K', 'R', 'N', 'G', '\n'};
constexpr uint32_t kVersion = 1;
constexpr char kManifestName[] = "MANIFEST";
constexpr char kManifestFirstLine[] = "slackline-checkpoint 1";

// The fixed header of a range file. Sections after it start at multiples of 8 bytes.
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t key_bytes;
  int32_t val_type;
  uint32_t has_lens;
  uint64_t begin, end, num_keys, num_vals;
  uint64_t reserved;
};
static_assert(sizeof(FileHeader) == 64, "the range file header is 64 bytes");

size_t Pad8(size_t n) { return (n + 7) & ~size_t(7); }

std::string Errno(const std::string& what, const std::string& path) {
  return "checkpoint " + path + ": cannot " + what + ": " + std::strerror(errno);
}

// Writes all of "data" to "fd".
bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Flushes folder "dir", so that a rename in it survives a crash.
Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(Errno("open the folder", dir));
  int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) return Status::IOError(Errno("flush the folder", dir));
  return Status::OK();
}

// Writes the concatenation of "parts" to "path" atomically: a temporary file, flushed,
// renamed over "path", and the folder flushed. Returns its bytes and checksum.
Status WriteAtomic(const std::string& path,
                   const std::vector<std::pair<const void*, size_t>>& parts, uint64_t* bytes,
                   uint64_t* checksum) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(Errno("create", tmp));
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(st.get());
  uint64_t n = 0;
  for (const auto& p : parts) {
    if (p.second == 0) continue;
    if (!WriteAll(fd, static_cast<const char*>(p.first), p.second)) {
      Status s = Status::IOError(Errno("write", tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    XXH3_64bits_update(st.get(), p.first, p.second);
    n += p.second;
  }
  if (::fsync(fd) != 0) {
    Status s = Status::IOError(Errno("flush", tmp));
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::IOError(Errno("rename to " + path, tmp));
    ::unlink(tmp.c_str());
    return s;
  }
  Status s = SyncDir(fs::path(path).parent_path().string());
  if (!s.ok()) return s;
  *bytes = n;
  *checksum = XXH3_64bits_digest(st.get());
  return Status::OK();
}

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

bool Unhex(const std::string& hex, std::string* out) {
  if (hex.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (size_t j = i; j < i + 2; ++j) {
      char c = hex[j];
      int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (x < 0) return false;
      v = v * 16 + x;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

// The checksum of the bytes of "path", streamed, and their number.
Status ChecksumFile(const std::string& path, uint64_t* bytes, uint64_t* checksum) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(Errno("open", path));
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(st.get());
  std::vector<char> buf(1 << 20);
  uint64_t n = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      Status s = Status::IOError(Errno("read", path));
      ::close(fd);
      return s;
    }
    if (r == 0) break;
    XXH3_64bits_update(st.get(), buf.data(), static_cast<size_t>(r));
    n += static_cast<uint64_t>(r);
  }
  ::close(fd);
  *bytes = n;
  *checksum = XXH3_64bits_digest(st.get());
  return Status::OK();
}

// Whether the size and checksum of "got" match what the manifest says of "file".
Status CheckBytes(const std::string& path, const CheckpointFile& file, uint64_t bytes,
                  uint64_t checksum) {
  if (bytes < file.bytes) {
    return Status::IOError("checkpoint " + path + " is truncated: " + std::to_string(bytes) +
                           " of " + std::to_string(file.bytes) + " bytes");
  }
  if (bytes != file.bytes) {
    return Status::IOError("checkpoint " + path + " has " + std::to_string(bytes) +
                           " bytes, its manifest says " + std::to_string(file.bytes));
  }
  if (checksum != file.checksum) {
    std::ostringstream os;
    os << "checkpoint " << path << " has a wrong checksum (" << std::hex << checksum
       << ", its manifest says " << file.checksum << "): the file is damaged";
    return Status::IOError(os.str());
  }
  return Status::OK();
}

std::string KeyTypeMismatch(const std::string& path, int key_bytes) {
  return "checkpoint " + path + " holds " + std::to_string(key_bytes) +
         "-byte keys, this build uses " + std::to_string(sizeof(Key)) +
         "-byte keys (USE_KEY32): it was written by another build";
}

// Reads the manifest of step folder "dir" into "info". Without one the checkpoint is
// "incomplete" (being written when a job died).
Status ReadManifest(const std::string& dir, CheckpointInfo* info, bool* incomplete) {
  const std::string path = dir + "/" + kManifestName;
  std::ifstream in(path, std::ios::binary);
  *incomplete = !in;
  if (!in)
    return Status::IOError("checkpoint " + dir + " is incomplete (no " + kManifestName + ")");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) {
    return Status::IOError("checkpoint " + path + " is damaged: " + why);
  };
  // The last line checksums everything before it.
  size_t last = text.rfind("checksum ");
  if (last == std::string::npos || (last > 0 && text[last - 1] != '\n')) {
    return bad("it has no checksum line (truncated?)");
  }
  std::string body = text.substr(0, last);
  std::ostringstream want;
  want << "checksum " << std::hex << XXH3_64bits(body.data(), body.size()) << "\n";
  if (text.compare(last, std::string::npos, want.str()) != 0) {
    return bad("its checksum line does not match its contents");
  }
  std::istringstream lines(body);
  std::string line;
  if (!std::getline(lines, line) || line != kManifestFirstLine) {
    return bad("its first line is not '" + std::string(kManifestFirstLine) + "'");
  }
  CheckpointInfo out;
  out.path = dir;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::string field;
    ls >> field;
    bool ok = true;
    if (field == "job") {
      ok = static_cast<bool>(ls >> out.job);
    } else if (field == "kind") {
      ok = static_cast<bool>(ls >> out.kind);
    } else if (field == "app") {
      ok = static_cast<bool>(ls >> out.app_id);
    } else if (field == "key_bytes") {
      ok = static_cast<bool>(ls >> out.key_bytes);
    } else if (field == "val_type") {
      ok = static_cast<bool>(ls >> out.val_type);
    } else if (field == "step") {
      ok = static_cast<bool>(ls >> out.step);
    } else if (field == "app_state") {
      std::string hex;
      ls >> hex;  // empty state: nothing after the field
      ok = Unhex(hex, &out.app_state);
    } else if (field == "file") {
      CheckpointFile f;
      uint64_t b = 0, e = 0;
      ok = static_cast<bool>(ls >> f.name >> b >> e >> f.bytes >> std::hex >> f.checksum);
      f.begin = static_cast<Key>(b);
      f.end = static_cast<Key>(e);
      ok = ok && f.name.find('/') == std::string::npos;
      out.files.push_back(f);
    }  // unknown fields: from a later minor version, ignored
    if (!ok) return bad("line '" + line + "' does not parse");
  }
  if (out.step < 0 || out.job.empty() || out.files.empty()) {
    return bad("it lacks its step, job or files");
  }
  *info = std::move(out);
  return Status::OK();
}

// Whether checkpoint "info" belongs to this job and build, and its files are whole.
Status Check(const CheckpointConfig& config, const CheckpointInfo& info) {
  const std::string manifest = info.path + "/" + kManifestName;
  if (info.job != config.job) {
    return Status::InvalidArgument("checkpoint " + manifest + " belongs to job '" + info.job +
                                   "', not to this job '" + config.job +
                                   "' (PS_JOB_ID; default the program's name)");
  }
  if (info.key_bytes != static_cast<int>(sizeof(Key))) {
    return Status::InvalidArgument(KeyTypeMismatch(manifest, info.key_bytes));
  }
  for (const CheckpointFile& f : info.files) {
    const std::string path = info.path + "/" + f.name;
    uint64_t bytes = 0, sum = 0;
    if (::access(path.c_str(), F_OK) != 0) {
      return Status::IOError("checkpoint " + path + " is missing (" + std::strerror(errno) + ")");
    }
    Status s = ChecksumFile(path, &bytes, &sum);
    if (!s.ok()) return s;
    s = CheckBytes(path, f, bytes, sum);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

// The steps of the checkpoint folders in "dir" ("step-<N>"), newest first.
std::vector<int> Steps(const std::string& dir) {
  std::vector<int> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    long n = 0;
    if (name.rfind("step-", 0) == 0 && Environment::ParseInt(name.substr(5), &n) && n >= 0 &&
        e.is_directory(ec)) {
      steps.push_back(static_cast<int>(n));
    }
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

}  // namespace

Status ParseConfig(const Environment& env, CheckpointConfig* config) {
  CheckpointConfig c;
  c.dir = env.GetString("PS_CHECKPOINT_DIR");
  Status s = env.GetInt("PS_CHECKPOINT_EVERY", 1, 1, INT_MAX, &c.every);
  if (!s.ok()) return s;
  s = env.GetInt("PS_CHECKPOINT_KEEP", 2, 2, INT_MAX, &c.keep);
  if (!s.ok()) {
    return Status::InvalidArgument(s.message() +
                                   ": at least 2 are kept, so that a damaged latest checkpoint "
                                   "can fall back to the one before");
  }
  c.job = env.GetString("PS_JOB_ID", program_invocation_short_name);
  if (c.job.empty() || c.job.find_first_of(" \t\r\n") != std::string::npos) {
    return Status::InvalidArgument(
        "PS_JOB_ID='" + c.job + "' must be one word (no blanks): it names the job's checkpoints");
  }
  *config = c;
  return Status::OK();
}

std::string StepPath(const std::string& dir, int step) {
  return dir + "/step-" + std::to_string(step);
}

Status WriteRange(const std::string& path, const RangeHeader& header, const void* keys,
                  const void* vals, const int* lens, CheckpointFile* file) {
  FileHeader h;
  std::memset(&h, 0, sizeof(h));
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.key_bytes = static_cast<uint32_t>(header.key_bytes);
  h.val_type = header.val_type;
  h.has_lens = header.has_lens ? 1 : 0;
  h.begin = header.begin;
  h.end = header.end;
  h.num_keys = header.num_keys;
  h.num_vals = header.num_vals;
  static const char zeros[8] = {0};
  const size_t kb = header.num_keys * header.key_bytes;
  const size_t vb = header.num_vals * DataTypeSize(static_cast<DataType>(header.val_type));
  const size_t lb = header.has_lens ? header.num_keys * sizeof(int) : 0;
  std::vector<std::pair<const void*, size_t>> parts = {
      {&h, sizeof(h)},        {keys, kb}, {zeros, Pad8(kb) - kb}, {vals, vb},
      {zeros, Pad8(vb) - vb}, {lens, lb}, {zeros, Pad8(lb) - lb}};
  CheckpointFile f;
  Status s = WriteFile(path, parts, &f);
  if (!s.ok()) return s;
  f.begin = header.begin;
  f.end = header.end;
  *file = f;
  return s;
}

Status WriteFile(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts,
                 CheckpointFile* file) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) {
    return Status::IOError("checkpoint " + path + ": cannot create its folder: " + ec.message());
  }
  CheckpointFile f;
  f.name = fs::path(path).filename().string();
  Status s = WriteAtomic(path, parts, &f.bytes, &f.checksum);
  if (s.ok()) *file = f;
  return s;
}

Status DescribeFile(const std::string& path, CheckpointFile* file) {
  return ChecksumFile(path, &file->bytes, &file->checksum);
}

Status ReadFile(const CheckpointInfo& info, const CheckpointFile& file, SArray<char>* bytes) {
  const std::string path = info.path + "/" + file.name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(Errno("open", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = Status::IOError(Errno("stat", path));
    ::close(fd);
    return s;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  SArray<char> buf;
  size_t got = 0;
  // Mapped, not read into a new buffer: no copy, and no page faults of a fresh allocation.
  // Private and writable, so that a store that keeps the arrays may change them (copy on
  // write). Checkpoint files are never changed in place, only replaced or removed.
  void* map =
      size == 0 ? MAP_FAILED
                : ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (map != MAP_FAILED) {
    buf.reset(static_cast<char*>(map), size, [size](char* p) { ::munmap(p, size); });
    got = size;
  } else {
    buf = SArray<char>(new char[std::max<size_t>(size, 1)], size, true);
    while (got < size) {
      ssize_t r = ::read(fd, buf.data() + got, size - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
  }
  ::close(fd);
  Status s = CheckBytes(path, file, got, XXH3_64bits(buf.data(), got));
  if (s.ok()) *bytes = buf.segment(0, got);
  return s;
}

Status ReadRange(const CheckpointInfo& info, const CheckpointFile& file, RangeHeader* header,
                 SArray<char>* keys, SArray<char>* vals, SArray<int>* lens) {
  const std::string path = info.path + "/" + file.name;
  SArray<char> buf;
  Status s = ReadFile(info, file, &buf);
  if (!s.ok()) return s;
  const size_t size = buf.size();
  FileHeader h;
  if (size < sizeof(h)) return Status::IOError("checkpoint " + path + " has no header");
  std::memcpy(&h, buf.data(), sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0 || h.version != kVersion) {
    return Status::IOError("checkpoint " + path + " is not a range file of format version " +
                           std::to_string(kVersion));
  }
  if (h.key_bytes != sizeof(Key)) {
    return Status::InvalidArgument(KeyTypeMismatch(path, static_cast<int>(h.key_bytes)));
  }
  if (h.val_type != info.val_type || h.val_type < 0 || h.val_type >= kNumDataTypes) {
    return Status::InvalidArgument("checkpoint " + path + " holds values of type " +
                                   std::to_string(h.val_type) + ", its manifest says " +
                                   std::to_string(info.val_type));
  }
  const size_t vsize = DataTypeSize(static_cast<DataType>(h.val_type));
  const size_t kb = h.num_keys * sizeof(Key), vb = h.num_vals * vsize;
  const size_t lb = h.has_lens ? h.num_keys * sizeof(int) : 0;
  if (h.num_keys > size || h.num_vals > size ||
      sizeof(h) + Pad8(kb) + Pad8(vb) + Pad8(lb) != size) {
    return Status::IOError("checkpoint " + path + ": its header's counts do not match its size");
  }
  header->key_bytes = static_cast<int>(h.key_bytes);
  header->val_type = h.val_type;
  header->begin = static_cast<Key>(h.begin);
  header->end = static_cast<Key>(h.end);
  header->num_keys = h.num_keys;
  header->num_vals = h.num_vals;
  header->has_lens = h.has_lens != 0;
  size_t at = sizeof(h);
  *keys = buf.segment(at, at + kb);
  at += Pad8(kb);
  *vals = buf.segment(at, at + vb);
  at += Pad8(vb);
  *lens = h.has_lens ? SArray<int>(buf.segment(at, at + lb)) : SArray<int>();
  return Status::OK();
}

Status WriteManifest(const CheckpointInfo& info) {
  std::ostringstream os;
  os << kManifestFirstLine << "\n";
  os << "job " << info.job << "\n";
  os << "kind " << info.kind << "\n";
  os << "app " << info.app_id << "\n";
  os << "key_bytes " << info.key_bytes << "\n";
  os << "val_type " << info.val_type << "\n";
  os << "step " << info.step << "\n";
  os << "app_state " << Hex(info.app_state) << "\n";
  for (const CheckpointFile& f : info.files) {
    os << "file " << f.name << " " << static_cast<uint64_t>(f.begin) << " "
       << static_cast<uint64_t>(f.end) << " " << f.bytes << " " << std::hex << f.checksum
       << std::dec << "\n";
  }
  std::string body = os.str();
  std::ostringstream sum;
  sum << "checksum " << std::hex << XXH3_64bits(body.data(), body.size()) << "\n";
  body += sum.str();
  uint64_t bytes = 0, checksum = 0;
  return WriteAtomic(info.path + "/" + kManifestName, {{body.data(), body.size()}}, &bytes,
                     &checksum);
}

Status FindLatest(const CheckpointConfig& config, std::optional<CheckpointInfo>* latest) {
  latest->reset();
  if (config.dir.empty()) return Status::OK();
  std::string refused;  // the first refusal, for the error when none is usable
  int num_refused = 0;
  for (int step : Steps(config.dir)) {
    CheckpointInfo info;
    bool incomplete = false;
    Status s = ReadManifest(StepPath(config.dir, step), &info, &incomplete);
    if (incomplete) continue;  // being written when a job died: not a checkpoint
    if (s.ok()) s = Check(config, info);
    if (!s.ok()) {
      LOG(WARNING) << s.message();
      if (refused.empty()) refused = s.message();
      ++num_refused;
      continue;
    }
    if (num_refused > 0) {
      LOG(WARNING) << "falling back to checkpoint " << info.path << " (step " << info.step
                   << ") after " << num_refused << " newer one(s) could not be used";
    }
    *latest = std::move(info);
    return Status::OK();
  }
  if (num_refused > 0) {
    return Status::IOError("PS_CHECKPOINT_DIR=" + config.dir + " holds " +
                           std::to_string(num_refused) +
                           " checkpoint(s) and none can be used (the newest: " + refused +
                           "); remove them or set another PS_CHECKPOINT_DIR to start afresh");
  }
  return Status::OK();
}

void Prune(const CheckpointConfig& config, int step) {
  int complete = 0;
  for (int s : Steps(config.dir)) {
    const std::string path = StepPath(config.dir, s);
    std::error_code ec;
    const bool whole = fs::exists(path + "/" + kManifestName, ec);
    bool remove = false;
    if (whole) {
      remove = ++complete > config.keep;
    } else {
      remove = s < step;
    }
    if (!remove) continue;
    fs::remove_all(path, ec);
    if (ec) LOG(WARNING) << "cannot remove old checkpoint " << path << ": " << ec.message();
  }
}

}  // namespace checkpoint
}  // namespace ps
