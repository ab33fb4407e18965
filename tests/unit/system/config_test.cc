#include <gtest/gtest.h>

#include "common/test_util.h"

namespace ps {
namespace {

std::string StartError(const test::Env& env) {
  Postoffice po(env);
  Status s = po.TryStart(0);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.message();
  return s.message();
}

test::Env Base() { return test::NodeEnv("worker", 9000, 1, 1); }

TEST(Config, NotANumberIsNamed) {
  test::Env env = Base();
  env["DMLC_NUM_WORKER"] = "abc";
  EXPECT_EQ(StartError(env), "DMLC_NUM_WORKER=abc is not a number");
  env = Base();
  env["DMLC_PS_ROOT_PORT"] = "90x";
  EXPECT_EQ(StartError(env), "DMLC_PS_ROOT_PORT=90x is not a number");
  env = Base();
  env["PS_VERBOSE"] = "";
  EXPECT_EQ(StartError(env), "PS_VERBOSE= is not a number");
  env = Base();
  env["PS_SPIN_US"] = "fast";
  EXPECT_EQ(StartError(env), "PS_SPIN_US=fast is not a number");
}

TEST(Config, OutOfRange) {
  test::Env env = Base();
  env["DMLC_PS_ROOT_PORT"] = "70000";
  EXPECT_EQ(StartError(env), "DMLC_PS_ROOT_PORT=70000 is out of range (1 to 65535)");
  env = Base();
  env["DMLC_NUM_SERVER"] = "-1";
  EXPECT_EQ(StartError(env), "DMLC_NUM_SERVER=-1 is out of range (0 to 1000000)");
}

TEST(Config, BadRole) {
  test::Env env = Base();
  env["DMLC_ROLE"] = "boss";
  EXPECT_EQ(StartError(env), "DMLC_ROLE=boss is not one of scheduler, server, worker");
}

TEST(Config, MissingVariables) {
  for (const char* key : {"DMLC_NUM_SERVER", "DMLC_NUM_WORKER", "DMLC_PS_ROOT_PORT"}) {
    test::Env env = Base();
    env.erase(key);
    unsetenv(key);
    EXPECT_EQ(StartError(env), std::string(key) + " is not set");
  }
  test::Env env = Base();
  env["DMLC_PS_ROOT_URI"] = " ";
  EXPECT_EQ(StartError(env), "DMLC_PS_ROOT_URI is not set (the scheduler's host)");
}

TEST(Config, Durations) {
  test::Env env = Base();
  env["PS_START_TIMEOUT"] = "soon";
  EXPECT_EQ(StartError(env), "PS_START_TIMEOUT=soon is not a number of seconds");
  env = Base();
  env["PS_HEARTBEAT_INTERVAL"] = "2";
  env["PS_HEARTBEAT_TIMEOUT"] = "3";
  EXPECT_EQ(StartError(env),
            "PS_HEARTBEAT_TIMEOUT=3 must be at least twice PS_HEARTBEAT_INTERVAL=2");
  env = Base();
  env["PS_HEARTBEAT_TIMEOUT"] = "0";
  EXPECT_EQ(StartError(env), "PS_HEARTBEAT_TIMEOUT=0 is too small (at least 0.1)");
}

TEST(Config, BadInterface) {
  test::Env env = Base();
  env["DMLC_INTERFACE"] = "nosuch0";
  EXPECT_EQ(StartError(env), "DMLC_INTERFACE=nosuch0: no such interface with an IPv4 address");
}

TEST(Config, AccessorsReadTheEnvironmentBeforeStart) {
  Postoffice po(test::NodeEnv("server", 9000, 3, 5));
  EXPECT_EQ(po.num_servers(), 3);
  EXPECT_EQ(po.num_workers(), 5);
  EXPECT_TRUE(po.is_server());
  EXPECT_FALSE(po.is_worker());
  EXPECT_FALSE(po.is_scheduler());
}

TEST(Config, EnvironmentValuesOverrideTheProcessEnvironment) {
  setenv("SLACKLINE_TEST_VAR", "process", 1);
  Environment env(test::Env{{"SLACKLINE_TEST_VAR", "given"}});
  EXPECT_STREQ(env.find("SLACKLINE_TEST_VAR"), "given");
  Environment plain;
  EXPECT_STREQ(plain.find("SLACKLINE_TEST_VAR"), "process");
  EXPECT_EQ(plain.find("SLACKLINE_SURELY_UNSET"), nullptr);
}

}  // namespace
}  // namespace ps
