// Writes the seed inputs of the fuzz targets: plausible messages in each target's input format
// (see each *_fuzz.cc), from which the fuzzers start. Run by `make fuzz` before fuzzing:
//   make_seeds DIR     writes DIR/<target>/seed-N
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "message/codec.h"
#include "ps/base.h"

namespace {

using ps::Control;
using ps::Meta;

std::string Field(const std::string& s) {
  std::string out;
  out += static_cast<char>(s.size() & 0xff);
  out += static_cast<char>(s.size() >> 8);
  return out + s;
}

std::string Encode(const Meta& m) {
  std::string s;
  ps::EncodeMeta(m, &s);
  return s;
}

// One van_fuzz message: connection, frames.
std::string VanMessage(int connection, const Meta& meta,
                       const std::vector<std::string>& data = {}) {
  std::string out;
  out += static_cast<char>(connection);
  out += static_cast<char>(1 + data.size());
  out += Field(Encode(meta));
  for (const auto& d : data) out += Field(d);
  return out;
}

void Write(const std::string& dir, const std::string& target, int n, const std::string& bytes) {
  std::string folder = dir + "/" + target;
  mkdir(dir.c_str(), 0755);
  mkdir(folder.c_str(), 0755);
  std::ofstream(folder + "/seed-" + std::to_string(n), std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int n = 0;
  // meta_fuzz: metas of every kind.
  Meta push;
  push.app_id = 0;
  push.sender = 9;
  push.recver = 8;
  push.request = true;
  push.push = true;
  push.timestamp = 3;
  push.data_type = {ps::UINT64, ps::FLOAT};
  push.filters.push_back(ps::FilterRecord{"zstd", {1, 2}});
  Write(dir, "meta_fuzz", n++, Encode(push));
  for (int cmd = 1; cmd < Control::kNumCommands; ++cmd) {
    Meta c;
    c.sender = ps::kScheduler;
    c.recver = 9;
    c.control.cmd = static_cast<Control::Command>(cmd);
    c.control.failed_node = 8;
    c.control.reason = "why";
    ps::Node node;
    node.role = ps::Node::SERVER;
    node.id = 8;
    node.hostname = "127.0.0.1";
    node.port = 40001;
    c.control.node.push_back(node);
    Write(dir, "meta_fuzz", n++, Encode(c));
  }
  // van_fuzz, as a worker (byte 0 even) and as the scheduler (odd).
  const std::string k8(8, '\0'), v4(4, '\0');
  std::string worker = std::string(1, 0);
  Meta data = push;
  data.sender = 8;
  data.recver = 9;
  data.request = false;
  data.filters.clear();
  worker += VanMessage(1, data, {k8, v4});  // a response from the server, on its connection
  worker += VanMessage(3, data, {k8, v4});  // the same on an unknown connection
  for (int cmd = 2; cmd < Control::kNumCommands; ++cmd) {
    Meta c;
    c.sender = ps::kScheduler;
    c.recver = 9;
    c.control.cmd = static_cast<Control::Command>(cmd);
    c.control.failed_node = cmd == Control::TERMINATE ? 0 : 8;
    c.control.barrier_group = 6;
    worker += VanMessage(0, c);
    worker += VanMessage(1, c);
  }
  Write(dir, "van_fuzz", 0, worker);
  std::string sched = std::string(1, 1);
  for (int who = 1; who <= 2; ++who) {
    Meta reg;
    reg.recver = ps::kScheduler;
    reg.request = true;
    reg.control.cmd = Control::ADD_NODE;
    ps::Node node;
    node.role = who == 1 ? ps::Node::SERVER : ps::Node::WORKER;
    node.hostname = "127.0.0.1";
    node.port = 40000 + who;
    reg.control.node.push_back(node);
    sched += VanMessage(who, reg);
  }
  for (int cmd : {Control::BARRIER, Control::HEARTBEAT, Control::NODE_FAILED}) {
    for (int who = 1; who <= 2; ++who) {
      Meta c;
      c.sender = who == 1 ? 8 : 9;
      c.recver = ps::kScheduler;
      c.request = true;
      c.control.cmd = static_cast<Control::Command>(cmd);
      c.control.barrier_group = 7;
      c.control.failed_node = c.sender;
      sched += VanMessage(who, c);
      sched += VanMessage(3 - who, c);  // claimed by the other node's connection
    }
  }
  Write(dir, "van_fuzz", 1, sched);
  // filter_fuzz and ssp_wire_fuzz start from small frames of each filter and type.
  for (int f = 0; f < 4; ++f) {
    std::string s(1, static_cast<char>(f));
    s += std::string("\x01\x01\x02", 3);
    s += static_cast<char>(ps::UINT64) + Field(k8);
    s += static_cast<char>(ps::FLOAT) + Field(v4);
    s += std::string("\x02", 1) + std::string(16, '\0');
    Write(dir, "filter_fuzz", f, s);
  }
  std::string ssp = std::string("\x04\x03", 2);
  int64_t entries[3] = {0, 7, 2};
  ssp += static_cast<char>(ps::INT64) +
         Field(std::string(reinterpret_cast<char*>(entries), sizeof(entries)));
  ssp += static_cast<char>(ps::UINT64) + Field("");
  ssp += static_cast<char>(ps::DOUBLE) + Field(std::string(16, '\0'));
  ssp += std::string("\x01\x00", 2);
  Write(dir, "ssp_wire_fuzz", 0, ssp);
  return 0;
}
