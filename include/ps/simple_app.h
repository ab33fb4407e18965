// SimpleApp exchanges small requests and responses, an int head and a string body, between
// nodes: the ps-lite app for control traffic and tests. KVWorker and KVServer build on it.
//
// Threads: request handlers run on the app's customer thread, response handlers on the node's
// receiving thread (see Customer); neither may Wait. Request, Response and Wait may be called from
// any thread.
#ifndef PS_SIMPLE_APP_H_
#define PS_SIMPLE_APP_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "ps/internal/customer.h"
#include "ps/internal/message.h"
#include "ps/internal/postoffice.h"

namespace ps {

// A request or response as the handler sees it.
struct SimpleData {
  int head;
  std::string body;
  int sender;
  int timestamp;
  int customer_id;
};

class SimpleApp {
 public:
  // "postoffice" is the node the app lives on; null means the default node.
  // REQUIRES: (app_id, customer_id) unique on the node.
  explicit SimpleApp(int app_id, int customer_id, Postoffice* postoffice = nullptr)
      : SimpleApp(app_id, postoffice) {
    obj_.reset(new Customer(
        app_id, customer_id, [this](const Message& msg) { Process(msg); }, postoffice_));
  }

  virtual ~SimpleApp() { obj_.reset(); }

  // Sends a request to "recv_id" (a node id or a group, this node included if it belongs) and
  // returns its timestamp at once. Wait(timestamp) returns once every receiver has answered.
  virtual int Request(int req_head, const std::string& req_body, int recv_id) {
    if (!postoffice_->van()) {
      return obj_->NewFailedRequest(Status::Shutdown("SimpleApp used before Start"));
    }
    int ts = obj_->NewRequest(recv_id);
    Message msg;
    msg.meta.head = req_head;
    msg.meta.body = req_body;
    msg.meta.timestamp = ts;
    msg.meta.request = true;
    msg.meta.simple_app = true;
    msg.meta.app_id = app_id_;
    msg.meta.customer_id = obj_->customer_id();
    for (int r : postoffice_->GetNodeIDs(recv_id)) {
      msg.meta.recver = r;
      SendRequest(ts, msg);
    }
    return ts;
  }

  // Blocks until request "timestamp" is answered; on a failure (a receiver died) reports it
  // and ends the process. TryWait returns the failure instead.
  virtual void Wait(int timestamp) { obj_->WaitRequest(timestamp); }
  Status TryWait(int timestamp) { return obj_->TryWaitRequest(timestamp); }

  // Answers the request "recv_req" with "res_body". Any thread, now or later.
  virtual void Response(const SimpleData& recv_req, const std::string& res_body = "") {
    Message msg;
    msg.meta.head = recv_req.head;
    msg.meta.body = res_body;
    msg.meta.timestamp = recv_req.timestamp;
    msg.meta.request = false;
    msg.meta.simple_app = true;
    msg.meta.app_id = app_id_;
    msg.meta.customer_id = recv_req.customer_id;
    msg.meta.recver = recv_req.sender;
    postoffice_->van()->Send(msg);
  }

  using Handle = std::function<void(const SimpleData& recved, SimpleApp* app)>;

  // The handler of requests; the default answers each with an empty body. Requests that
  // arrive before this is called get the default answer: set it before peers may send (for
  // example before a barrier that they pass first). KVServer, unlike this, holds requests until
  // its handle is set.
  virtual void set_request_handle(const Handle& request_handle) {
    CHECK(request_handle) << "invalid request handle";
    std::lock_guard<std::mutex> lk(handle_mu_);
    request_handle_ = std::make_shared<Handle>(request_handle);
  }
  // The handler of responses, run before the request counts as answered; default: nothing.
  virtual void set_response_handle(const Handle& response_handle) {
    CHECK(response_handle) << "invalid response handle";
    std::lock_guard<std::mutex> lk(handle_mu_);
    response_handle_ = std::make_shared<Handle>(response_handle);
  }

  virtual Customer* get_customer() { return obj_.get(); }

 protected:
  // For apps that create their own customer (KVWorker, KVServer). A handler may run as soon as
  // the customer exists, before obj_ is set: what it uses must not depend on obj_.
  SimpleApp(int app_id, Postoffice* postoffice)
      : app_id_(app_id),
        postoffice_(postoffice ? postoffice : Postoffice::Get()),
        request_handle_(std::make_shared<Handle>(
            [](const SimpleData& recved, SimpleApp* app) { app->Response(recved); })),
        response_handle_(std::make_shared<Handle>([](const SimpleData&, SimpleApp*) {})) {}

  // Constant after construction.
  const int app_id_;
  Postoffice* const postoffice_;

  std::mutex handle_mu_;
  // Shared, not copied per message: a handle with state must see every message.
  std::shared_ptr<Handle> request_handle_;   // protected by handle_mu_
  std::shared_ptr<Handle> response_handle_;  // protected by handle_mu_
  std::unique_ptr<Customer> obj_;

  // Sends "msg", a message of request "ts", to msg.meta.recver. A send that fails fails the
  // request naming the receiver: its answer will not come.
  void SendRequest(int ts, Message& msg) {
    Status s = postoffice_->van()->TrySend(msg);
    if (!s.ok()) {
      obj_->FailSend(ts, msg.meta.recver,
                     s.Prefixed("request " + std::to_string(ts) + " failed: "));
    }
  }

  // Runs the request or response handle on a SimpleApp message.
  void Process(const Message& msg) {
    SimpleData recv{msg.meta.head, msg.meta.body, msg.meta.sender, msg.meta.timestamp,
                    msg.meta.customer_id};
    std::shared_ptr<Handle> handle;
    {
      std::lock_guard<std::mutex> lk(handle_mu_);
      handle = msg.meta.request ? request_handle_ : response_handle_;
    }
    (*handle)(recv, this);
  }
};

}  // namespace ps
#endif  // PS_SIMPLE_APP_H_
