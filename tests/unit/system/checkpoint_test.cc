// The checkpoint files (ps/internal/checkpoint_io.h) on a real folder: writing, finding the
// latest usable checkpoint, refusing damaged or foreign ones by name, falling back, pruning.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "common/test_util.h"
#include "ps/internal/checkpoint_io.h"
#include "ps/internal/message.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ckpt_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    config_.dir = tmpl;
    config_.job = "job_a";
  }
  void TearDown() override { fs::remove_all(config_.dir); }

  // Writes a complete checkpoint at "step" of two ranges; key i holds float value step * i.
  void Write(int step, int key_bytes = sizeof(Key), const std::string& job = "job_a") {
    CheckpointInfo info;
    info.step = step;
    info.app_state = "it=" + std::to_string(step) + "\n\x01";
    info.path = checkpoint::StepPath(config_.dir, step);
    info.job = job;
    info.key_bytes = key_bytes;
    info.val_type = FLOAT;
    const Key mid = kMaxKey / 2;
    for (int r = 0; r < 2; ++r) {
      std::vector<Key> keys = {r == 0 ? Key(1) : mid, r == 0 ? Key(7) : kMaxKey};
      std::vector<float> vals = {1.0f * step, 7.0f * step};
      checkpoint::RangeHeader h;
      h.key_bytes = key_bytes;
      h.val_type = FLOAT;
      h.begin = r == 0 ? 0 : mid;
      h.end = r == 0 ? mid : kMaxKey;
      h.num_keys = keys.size();
      h.num_vals = vals.size();
      CheckpointFile f;
      ASSERT_TRUE(checkpoint::WriteRange(info.path + "/range-" + std::to_string(r), h, keys.data(),
                                         vals.data(), nullptr, &f)
                      .ok());
      info.files.push_back(f);
    }
    ASSERT_TRUE(checkpoint::WriteManifest(info).ok());
  }

  std::optional<CheckpointInfo> Latest(Status* s) {
    std::optional<CheckpointInfo> latest;
    *s = checkpoint::FindLatest(config_, &latest);
    return latest;
  }

  std::string Path(int step, const std::string& file) {
    return checkpoint::StepPath(config_.dir, step) + "/" + file;
  }

  CheckpointConfig config_;
};

TEST_F(CheckpointTest, LatestCompleteOneIsFoundWithItsAppState) {
  Write(3);
  Write(5);
  fs::create_directories(checkpoint::StepPath(config_.dir, 9));  // being written: no manifest
  Status s;
  auto latest = Latest(&s);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 5);
  EXPECT_EQ(latest->app_state, "it=5\n\x01");
  EXPECT_EQ(latest->job, "job_a");
  ASSERT_EQ(latest->files.size(), 2u);
  checkpoint::RangeHeader h;
  SArray<char> keys, vals;
  SArray<int> lens;
  ASSERT_TRUE(checkpoint::ReadRange(*latest, latest->files[1], &h, &keys, &vals, &lens).ok());
  SArray<Key> k(keys);
  SArray<float> v(vals);
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0], kMaxKey / 2);
  EXPECT_EQ(k[1], kMaxKey);
  EXPECT_EQ(v[0], 5.0f);
  EXPECT_EQ(v[1], 35.0f);
  EXPECT_TRUE(lens.empty());
}

TEST_F(CheckpointTest, EmptyOrMissingFolderIsAFreshStart) {
  Status s;
  EXPECT_FALSE(Latest(&s).has_value());
  EXPECT_TRUE(s.ok());
  config_.dir += "/not-there";
  EXPECT_FALSE(Latest(&s).has_value());
  EXPECT_TRUE(s.ok());
}

TEST_F(CheckpointTest, TruncatedFileFallsBackToThePreviousOne) {
  Write(3);
  Write(5);
  fs::resize_file(Path(5, "range-1"), 70);
  Status s;
  auto latest = Latest(&s);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 3);
}

TEST_F(CheckpointTest, EachDamageIsOneLineNamingTheFile) {
  Write(5);
  const std::string file = Path(5, "range-1");
  const uintmax_t size = fs::file_size(file);
  fs::resize_file(file, 70);
  Status s;
  EXPECT_FALSE(Latest(&s).has_value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("checkpoint " + file + " is truncated: 70 of " + std::to_string(size) +
                             " bytes"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);

  // The same size, one byte changed.
  Write(5);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(70);
    f.put('\x55');
  }
  EXPECT_FALSE(Latest(&s).has_value());
  EXPECT_NE(s.message().find("checkpoint " + file + " has a wrong checksum"), std::string::npos)
      << s.message();

  Write(5);
  fs::remove(file);
  EXPECT_FALSE(Latest(&s).has_value());
  EXPECT_NE(s.message().find("checkpoint " + file + " is missing"), std::string::npos)
      << s.message();

  Write(5);
  {
    std::ofstream f(Path(5, "MANIFEST"), std::ios::app);
    f << "step 6\n";  // after its checksum line
  }
  EXPECT_FALSE(Latest(&s).has_value());
  EXPECT_NE(s.message().find("checkpoint " + Path(5, "MANIFEST") + " is damaged"),
            std::string::npos)
      << s.message();
}

TEST_F(CheckpointTest, AnotherJobsCheckpointIsRefusedByName) {
  Write(4, sizeof(Key), "job_b");
  Status s;
  EXPECT_FALSE(Latest(&s).has_value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("checkpoint " + Path(4, "MANIFEST") +
                             " belongs to job 'job_b', not to this job 'job_a'"),
            std::string::npos)
      << s.message();
  // And an older one of this job is taken instead.
  Write(2);
  auto latest = Latest(&s);
  ASSERT_TRUE(latest.has_value()) << s.message();
  EXPECT_EQ(latest->step, 2);
}

TEST_F(CheckpointTest, AnotherKeyTypeIsRefusedByName) {
  const int other = sizeof(Key) == 8 ? 4 : 8;
  Write(4, other);
  Status s;
  EXPECT_FALSE(Latest(&s).has_value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(
      s.message().find("checkpoint " + Path(4, "MANIFEST") + " holds " + std::to_string(other) +
                       "-byte keys, this build uses " + std::to_string(sizeof(Key)) + "-byte keys"),
      std::string::npos)
      << s.message();
  // A range file of another key type (under a manifest that says otherwise): named too.
  CheckpointInfo info;
  info.path = checkpoint::StepPath(config_.dir, 4);
  info.val_type = FLOAT;
  std::vector<Key> keys = {1, 2};
  std::vector<float> vals = {1, 2};
  checkpoint::RangeHeader h;
  h.key_bytes = other;
  h.val_type = FLOAT;
  h.num_keys = 2;
  h.num_vals = 2;
  CheckpointFile f;
  ASSERT_TRUE(
      checkpoint::WriteRange(info.path + "/range-9", h, keys.data(), vals.data(), nullptr, &f)
          .ok());
  SArray<char> k, v;
  SArray<int> l;
  s = checkpoint::ReadRange(info, f, &h, &k, &v, &l);
  EXPECT_NE(s.message().find("checkpoint " + info.path + "/range-9 holds " + std::to_string(other) +
                             "-byte keys"),
            std::string::npos)
      << s.message();
}

TEST_F(CheckpointTest, PruneKeepsTheNewestCompleteOnes) {
  for (int step : {1, 2, 3, 4}) Write(step);
  fs::create_directories(checkpoint::StepPath(config_.dir, 0));  // a dead job's leftover
  fs::create_directories(checkpoint::StepPath(config_.dir, 9));  // newer: may be in writing
  config_.keep = 2;
  checkpoint::Prune(config_, 4);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(config_.dir)) {
    left.push_back(e.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step-3", "step-4", "step-9"}));
}

Environment Env(std::unordered_map<std::string, std::string> values) {
  return Environment(std::move(values));
}

TEST_F(CheckpointTest, ConfigErrorsAreOneLine) {
  CheckpointConfig c;
  EXPECT_EQ(checkpoint::ParseConfig(Env({{"PS_CHECKPOINT_EVERY", "0"}}), &c).message(),
            "PS_CHECKPOINT_EVERY=0 is out of range (1 to 2147483647)");
  EXPECT_EQ(checkpoint::ParseConfig(Env({{"PS_CHECKPOINT_EVERY", "x"}}), &c).message(),
            "PS_CHECKPOINT_EVERY=x is not a number");
  EXPECT_NE(checkpoint::ParseConfig(Env({{"PS_CHECKPOINT_KEEP", "1"}}), &c)
                .message()
                .find("PS_CHECKPOINT_KEEP=1 is out of range (2 to"),
            std::string::npos);
  EXPECT_EQ(checkpoint::ParseConfig(Env({{"PS_JOB_ID", "a b"}}), &c).message(),
            "PS_JOB_ID='a b' must be one word (no blanks): it names the job's checkpoints");
  ASSERT_TRUE(checkpoint::ParseConfig(Env({{"PS_CHECKPOINT_DIR", "d"}}), &c).ok());
  EXPECT_EQ(c.dir, "d");
  EXPECT_EQ(c.every, 1);
  EXPECT_EQ(c.keep, 2);
  EXPECT_FALSE(c.job.empty());
}

}  // namespace
}  // namespace ps
