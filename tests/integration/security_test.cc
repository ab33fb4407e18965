// Rogue peers against running jobs inside one process, over real sockets on loopback: a peer
// that forges another node's id, the scheduler's control messages or a dead node's heartbeats,
// that sends oversized frames, floods app ids or registrations, or comes without the job key.
// Each test checks that the job's sums stay exact, that the rogue's messages were dropped and
// counted under the right reason, and that what the node holds stays bounded.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zmq.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <zmq.hpp>

#include "common/fault_injecting_transport.h"
#include "common/test_util.h"
#include "message/codec.h"

namespace ps {
namespace {

constexpr int kServersAndWorkers = kServerGroup + kWorkerGroup;
const test::Env kFastHeartbeat = {{"PS_HEARTBEAT_INTERVAL", "0.1"}, {"PS_HEARTBEAT_TIMEOUT", "1"}};

// A peer outside the job: DEALER sockets of its own, optionally with a CURVE key pair.
class Rogue {
 public:
  Rogue() : ctx_(1) {}
  ~Rogue() {
    for (auto& s : sockets_) s->close();
    ctx_.close();
  }
  // A new connection to 127.0.0.1:"port"; with "server_key", a CURVE client of that server
  // key with a key pair of its own; with "routing_id", carrying that routing id.
  zmq::socket_t* Connect(int port, const std::string& server_key = "",
                         const std::string& routing_id = "", int linger_ms = 2000) {
    sockets_.emplace_back(new zmq::socket_t(ctx_, zmq::socket_type::dealer));
    zmq::socket_t* s = sockets_.back().get();
    s->set(zmq::sockopt::linger, linger_ms);
    s->set(zmq::sockopt::sndhwm, 0);
    if (!routing_id.empty()) s->set(zmq::sockopt::routing_id, zmq::buffer(routing_id));
    if (!server_key.empty()) {
      char pub[41], sec[41];
      zmq_curve_keypair(pub, sec);
      s->set(zmq::sockopt::curve_serverkey, server_key);
      s->set(zmq::sockopt::curve_publickey, std::string(pub));
      s->set(zmq::sockopt::curve_secretkey, std::string(sec));
    }
    s->connect("tcp://127.0.0.1:" + std::to_string(port));
    return s;
  }
  static void Send(zmq::socket_t* s, const Meta& meta, const std::vector<std::string>& data = {}) {
    std::string m;
    EncodeMeta(meta, &m);
    s->send(zmq::buffer(m), data.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    for (size_t i = 0; i < data.size(); ++i) {
      s->send(zmq::buffer(data[i]),
              i + 1 < data.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

 private:
  zmq::context_t ctx_;
  std::vector<std::unique_ptr<zmq::socket_t>> sockets_;
};

// A push of "value" to key 0 as worker "sender" would send it to server "recver".
Meta ForgedPush(int sender, int recver, int app_id = 0) {
  Meta m;
  m.app_id = app_id;
  m.sender = sender;
  m.recver = recver;
  m.request = true;
  m.push = true;
  m.timestamp = 1;
  m.data_type = {GetDataType<Key>(), GetDataType<float>()};
  return m;
}
std::vector<std::string> PushData(float value) {
  Key k = 0;
  return {std::string(reinterpret_cast<char*>(&k), sizeof(k)),
          std::string(reinterpret_cast<char*>(&value), sizeof(value))};
}

int OpenDescriptors() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (d && readdir(d)) ++n;
  if (d) closedir(d);
  return n;
}

long ResidentMB() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE) / (1 << 20);
}

// Runs a job of "servers" KVServerDefaultHandle servers and "workers" workers, each pushing 1
// to key 0 "pushes" times; "rogue" runs on the scheduler's thread once every node started,
// before the workers push; each worker then checks that the pull gives workers * pushes.
void RunSummingJob(int servers, int workers, int pushes, const test::Env& env,
                   const std::function<void(test::LocalJob* job)>& rogue) {
  test::LocalJob job(servers, workers, env);
  std::atomic<int> started{0};
  std::atomic<bool> rogue_done{false};
  job.Run([&](Postoffice* po, const std::string& role, int) {
    ASSERT_TRUE(po->TryStart(0).ok());
    ++started;
    if (role == "scheduler") {
      ASSERT_TRUE(test::WaitFor([&] { return started.load() == job.num_nodes(); }, 30));
      rogue(&job);
      rogue_done = true;
    } else if (role == "server") {
      KVServer<float> server(0, po);
      server.set_request_handle(KVServerDefaultHandle<float>());
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    } else {
      ASSERT_TRUE(test::WaitFor([&] { return rogue_done.load(); }, 60));
      KVWorker<float> kv(0, 0, po);
      for (int i = 0; i < pushes; ++i) ASSERT_TRUE(kv.TryWait(kv.Push({0}, {1.0f})).ok());
      ASSERT_TRUE(po->TryBarrier(0, kWorkerGroup).ok());
      std::vector<float> out;
      ASSERT_TRUE(kv.TryWait(kv.Pull({0}, &out)).ok());
      EXPECT_EQ(out, std::vector<float>{static_cast<float>(workers * pushes)});
      ASSERT_TRUE(po->TryBarrier(0, kServersAndWorkers).ok());
    }
    EXPECT_TRUE(po->TryFinalize(0).ok());
  });
}

// Node "i" of a LocalJob: 0 the scheduler, then the servers, then the workers.
Van* VanOf(test::LocalJob* job, int i) { return job->node(i)->van(); }

TEST(Security, PushesForgedWithAWorkersIdAreDroppedAndTheSumsStayExact) {
  uint64_t forged = 0;
  RunSummingJob(1, 2, 20, {}, [&](test::LocalJob* job) {
    Van* server = VanOf(job, 1);
    const int worker_id = VanOf(job, 2)->my_node().id;
    Rogue rogue;
    zmq::socket_t* s = rogue.Connect(server->my_node().port);
    for (int i = 0; i < 100; ++i) {
      Rogue::Send(s, ForgedPush(worker_id, server->my_node().id), PushData(1000));
    }
    EXPECT_TRUE(
        test::WaitFor([&] { return server->dropped(DropReason::kForgedSender) >= 100; }, 30));
    forged = server->dropped(DropReason::kForgedSender);
  });
  EXPECT_EQ(forged, 100U);
}

TEST(Security, ControlForgedAsTheSchedulersIsDroppedAndTheJobFinishes) {
  RunSummingJob(1, 2, 10, {}, [&](test::LocalJob* job) {
    Rogue rogue;
    for (int i = 1; i <= 3; ++i) {
      Van* target = VanOf(job, i);
      zmq::socket_t* s = rogue.Connect(target->my_node().port);
      for (Control::Command cmd :
           {Control::TERMINATE, Control::NODE_FAILED, Control::ADD_NODE, Control::BARRIER}) {
        Meta m;
        m.sender = kScheduler;
        m.recver = target->my_node().id;
        m.control.cmd = cmd;
        m.control.failed_node = cmd == Control::TERMINATE ? 0 : VanOf(job, 1)->my_node().id;
        m.control.reason = "forged by a rogue peer";
        m.control.node = target->nodes();
        Rogue::Send(s, m);
      }
      EXPECT_TRUE(
          test::WaitFor([&] { return target->dropped(DropReason::kForgedSender) >= 4; }, 30));
      EXPECT_EQ(target->dropped(DropReason::kForgedSender), 4U) << target->my_node().ShortName();
      EXPECT_TRUE(target->fatal().ok()) << target->fatal().message();
    }
  });
}

TEST(Security, HeartbeatsForgedForAHungServerDoNotKeepItAlive) {
  std::atomic<test::FaultInjectingTransport*> hung{nullptr};
  test::LocalJob job(2, 1, kFastHeartbeat);
  job.node(2)->set_transport_factory(test::FaultInjectingTransport::Factory({}, &hung));
  std::atomic<bool> done{false};
  std::atomic<int> started{0};
  std::string victim;
  Status seen_by_worker;
  job.Run([&](Postoffice* po, const std::string& role, int index) {
    ASSERT_TRUE(po->TryStart(0).ok());
    ++started;
    ASSERT_TRUE(test::WaitFor([&] { return started.load() == job.num_nodes(); }, 30));
    if (role == "server" && index == 1) {
      victim = po->van()->NodeName(po->van()->my_node().id);
      const int my_id = po->van()->my_node().id;
      hung.load()->CutOff(kScheduler);  // it neither hears nor is heard by the scheduler
      // Meanwhile a rogue keeps it "alive" with heartbeats in its name, as fast as it can.
      Rogue rogue;
      zmq::socket_t* s = rogue.Connect(job.port());
      Van* scheduler = VanOf(&job, 0);
      while (!done.load() && scheduler->NodeStatus(my_id).ok()) {
        Meta m;
        m.sender = my_id;
        m.recver = kScheduler;
        m.request = true;
        m.control.cmd = Control::HEARTBEAT;
        Rogue::Send(s, m);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_FALSE(scheduler->NodeStatus(my_id).ok());
      EXPECT_GT(scheduler->dropped(DropReason::kForgedSender), 10U);
      ASSERT_TRUE(test::WaitFor([&] { return done.load(); }, 30));
      return;
    }
    if (role == "worker") {
      Status s = po->TryBarrier(0, kServersAndWorkers);
      EXPECT_EQ(s.code(), Status::Code::kNodeFailed) << s.message();
      seen_by_worker = s;
      done = true;
      return;
    }
    test::WaitFor([&] { return done.load(); }, 30);
  });
  EXPECT_NE(seen_by_worker.message().find(victim + " sent no heartbeat"), std::string::npos)
      << seen_by_worker.message();
}

TEST(Security, OversizedFramesDisconnectThePeerBeforeTheirBytesAreHeld) {
  RunSummingJob(1, 1, 10, {{"PS_MAX_MESSAGE_MB", "1"}}, [&](test::LocalJob* job) {
    Van* server = VanOf(job, 1);
    const uint64_t received = server->bytes_received();
    const uint64_t closed = server->connection_counts().closed;
    const long rss = ResidentMB();
    {
      Rogue rogue;
      const std::string big(64 << 20, 'x');
      for (int i = 0; i < 4; ++i) {
        zmq::socket_t* s = rogue.Connect(server->my_node().port, "", "", 0);
        Rogue::Send(s, ForgedPush(VanOf(job, 2)->my_node().id, server->my_node().id),
                    {std::string(8, '\0'), big});
      }
      EXPECT_TRUE(
          test::WaitFor([&] { return server->connection_counts().closed >= closed + 4; }, 30))
          << server->connection_counts().closed - closed << " of 4 connections closed";
    }
    // Nothing of the 256 MB reached the node; what the rogue itself held is gone with it.
    EXPECT_LT(server->bytes_received() - received, 1U << 20);
#ifndef __SANITIZE_ADDRESS__
    // (ASAN keeps freed memory in its quarantine, so there the rogue's own buffers stay resident.)
    EXPECT_LT(ResidentMB() - rss, 64);
#else
    (void)rss;
#endif
  });
}

TEST(Security, RequestsForAppsThatDoNotExistAreBoundedInBytesAndApps) {
  RunSummingJob(1, 1, 10, {{"PS_MAX_WAITING_MB", "8"}}, [&](test::LocalJob* job) {
    Van* server = VanOf(job, 1);
    Van* worker = VanOf(job, 2);
    const long rss = ResidentMB();
    // A member of the job floods the server with 1 MB requests to 200 apps that never come...
    for (int i = 0; i < 200; ++i) {
      Message m;
      m.meta = ForgedPush(worker->my_node().id, server->my_node().id, 1000 + i);
      m.meta.data_type = {CHAR};
      m.data.push_back(SArray<char>(1 << 20, 'x'));
      ASSERT_TRUE(worker->TrySend(m).ok());
    }
    // ...and with small ones to 100 more apps.
    for (int i = 0; i < 100; ++i) {
      Message m;
      m.meta = ForgedPush(worker->my_node().id, server->my_node().id, 2000 + i);
      m.meta.data_type.clear();
      ASSERT_TRUE(worker->TrySend(m).ok());
    }
    // 8 of the big ones fit in 8 MB; then 64 apps wait, the 56 others' requests are refused.
    const uint64_t expected = 192 + (100 - (64 - 8));
    EXPECT_TRUE(
        test::WaitFor([&] { return server->dropped(DropReason::kOverLimit) >= expected; }, 60));
    EXPECT_EQ(server->dropped(DropReason::kOverLimit), expected);
    EXPECT_LT(ResidentMB() - rss, 100);
  });
}

TEST(Security, RegistrationFloodIsRefusedWithBoundedDescriptorsAndNoticesAndTheJobFinishes) {
  RunSummingJob(1, 1, 10, {}, [&](test::LocalJob* job) {
    Van* scheduler = VanOf(job, 0);
    const int fds = OpenDescriptors();
    const uint64_t refused = scheduler->refused_registrations();
    const int kRegistrations = 3000;
    // The rogue's connection carries a well-formed token, as a real node's does: each
    // registration gets as far as the membership book, which refuses it.
    char pub[41], sec[41];
    zmq_curve_keypair(pub, sec);
    Rogue rogue;
    zmq::socket_t* s = rogue.Connect(job->port(), "", std::string(sec, 40));
    int max_fds = fds;
    for (int i = 0; i < kRegistrations; ++i) {
      Meta m;
      m.sender = Node::kEmpty;
      m.recver = kScheduler;
      m.request = true;
      m.control.cmd = Control::ADD_NODE;
      Node n;
      n.role = i % 2 ? Node::WORKER : Node::SERVER;
      n.hostname = "127.0.0.1";
      n.port = 1 + i % 60000;  // nothing listens there: each notice would wait for its linger
      m.control.node.push_back(n);
      Rogue::Send(s, m);
      if (i % 100 == 0) max_fds = std::max(max_fds, OpenDescriptors());
    }
    EXPECT_TRUE(test::WaitFor(
        [&] {
          max_fds = std::max(max_fds, OpenDescriptors());
          return scheduler->refused_registrations() - refused >= kRegistrations;
        },
        60));
    EXPECT_EQ(scheduler->refused_registrations() - refused, static_cast<uint64_t>(kRegistrations));
    // At most a few notices a second leave, each on a connection closed after its linger.
    EXPECT_LT(max_fds - fds, 200) << "descriptors before " << fds << ", at most " << max_fds;
  });
}

// A job key file in a private folder, removed at the end.
class KeyFile {
 public:
  KeyFile() {
    std::string dir =
        (std::filesystem::temp_directory_path() / "slackline-test-key-XXXXXX").string();
    dir_ = mkdtemp(&dir[0]);
    path_ = dir_ + "/job.key";
    char pub[41], sec[41];
    zmq_curve_keypair(pub, sec);
    public_key_ = pub;
    std::ofstream(path_) << sec << "\n";
    chmod(path_.c_str(), 0600);
  }
  ~KeyFile() {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  const std::string& public_key() const { return public_key_; }

 private:
  std::string dir_, path_, public_key_;
};

TEST(Security, AProgramWithoutTheJobKeyIsRefusedAndGetsNothing) {
  KeyFile key;
  test::Env env = {{"PS_KEY_FILE", key.path()}};
  uint64_t auth_refused = 0, server_drops = 0;
  Status keyless, wrong;
  RunSummingJob(1, 2, 20, env, [&](test::LocalJob* job) {
    Van* server = VanOf(job, 1);
    EXPECT_TRUE(server->authenticated());
    // A node started outside the launcher with the job's address but no key, and one with
    // another key: both fail at once, saying why.
    Postoffice outsider(test::NodeEnv("server", job->port(), 1, 2, {{"PS_START_TIMEOUT", "20"}}));
    keyless = outsider.TryStart(0);
    KeyFile other;
    Postoffice stranger(
        test::NodeEnv("worker", job->port(), 1, 2, {{"PS_KEY_FILE", other.path()}}));
    wrong = stranger.TryStart(0);
    // A raw peer that knows the job's public key but holds another key pair: refused in the
    // handshake, so its forged pushes never arrive.
    Rogue rogue;
    zmq::socket_t* s = rogue.Connect(server->my_node().port, key.public_key());
    for (int i = 0; i < 50; ++i) {
      Rogue::Send(s, ForgedPush(VanOf(job, 2)->my_node().id, server->my_node().id), PushData(1000));
    }
    EXPECT_TRUE(test::WaitFor([&] { return server->connection_counts().auth_refused >= 1; }, 30));
    auth_refused = VanOf(job, 0)->connection_counts().auth_refused;
    // Its pushes, had they arrived, would be dropped as forged (or counted in the sums).
    server_drops = server->dropped_total();
  });
  EXPECT_EQ(keyless.code(), Status::Code::kInvalidArgument) << keyless.message();
  EXPECT_NE(keyless.message().find("this node has no key"), std::string::npos) << keyless.message();
  EXPECT_NE(wrong.message().find("refused this node's key"), std::string::npos) << wrong.message();
  EXPECT_GE(auth_refused, 2U);
  EXPECT_EQ(server_drops, 0U);
}

TEST(Security, KeyFilesThatAreOpenUnreadableOrNotKeysAreOneLineErrors) {
  KeyFile key;
  int port = test::FreePort();
  auto start = [&](const std::string& path) {
    Postoffice po(test::NodeEnv("worker", port, 1, 1, {{"PS_KEY_FILE", path}}));
    return po.TryStart(0);
  };
  chmod(key.path().c_str(), 0644);
  Status open = start(key.path());
  EXPECT_NE(open.message().find("is open to other users"), std::string::npos) << open.message();
  chmod(key.path().c_str(), 0600);
  Status missing = start(key.path() + ".missing");
  EXPECT_NE(missing.message().find("cannot read the job key"), std::string::npos)
      << missing.message();
  std::ofstream(key.path()) << "not a key\n";
  Status garbage = start(key.path());
  EXPECT_NE(garbage.message().find("does not hold a job key"), std::string::npos)
      << garbage.message();
  for (const Status& s : {open, missing, garbage}) {
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace ps
