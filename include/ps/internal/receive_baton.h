// ReceiveBaton says which thread receives for a van. Exactly one thread holds it at a time: the
// van's own thread, or a caller waiting for a response that takes the answer off the socket
// itself (saving a thread switch; see Van::ReceiveUntil). Only the holder touches the receive
// socket and the van's receive-side state (the tick, early messages, the scheduler's book).
//
// The hand-off: a caller asks for the baton (TryTakeForCaller), which makes the van thread give
// it up after its current receive (it waits in WaitForTurn until the caller releases it). One
// caller at a time; a second one gets false and waits for its answer the ordinary way.
// Stop() makes every wait return; after it the van thread gets no more turns.
//
// Lock order: mu_ (the baton itself) before turn_mu_; neither is held while the holder runs
// handlers other than mu_, which the holder owns for its whole turn.
#ifndef PS_INTERNAL_RECEIVE_BATON_H_
#define PS_INTERNAL_RECEIVE_BATON_H_

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace ps {

class ReceiveBaton {
 public:
  // The van thread: waits while a caller holds or wants the baton, then takes it. Returns an
  // unlocked guard once Stop() was called.
  std::unique_lock<std::mutex> TakeForVanThread() {
    while (!stopped_.load(std::memory_order_acquire)) {
      if (caller_wants_.load(std::memory_order_acquire)) {
        std::unique_lock<std::mutex> lk(turn_mu_);
        turn_cv_.wait(lk, [&] { return !caller_wants_ || stopped_; });
        continue;
      }
      std::unique_lock<std::mutex> held(mu_);
      holder_ = this;
      return held;
    }
    return std::unique_lock<std::mutex>();
  }

  // A caller: takes the baton unless another caller has it (then returns an unlocked guard).
  // "wake" must make the van thread's receive return, so that it gives the baton up.
  template <typename Wake>
  std::unique_lock<std::mutex> TryTakeForCaller(const Wake& wake) {
    if (stopped_.load(std::memory_order_acquire) ||
        caller_wants_.exchange(true, std::memory_order_acq_rel)) {
      return std::unique_lock<std::mutex>();
    }
    wake();
    std::unique_lock<std::mutex> held(mu_);
    holder_ = this;
    return held;
  }

  // Gives the baton back; a caller's release lets the van thread receive again.
  void Release(std::unique_lock<std::mutex>* held, bool caller) {
    holder_ = nullptr;
    held->unlock();
    if (!caller) return;
    {
      std::lock_guard<std::mutex> lk(turn_mu_);
      caller_wants_ = false;
    }
    turn_cv_.notify_one();
  }

  // Takes the baton for closing the socket, waiting for the holder to give it up; the holder
  // itself (a handler that stops the van) already has it and must not call this.
  std::unique_lock<std::mutex> TakeForClose() { return std::unique_lock<std::mutex>(mu_); }

  // Ends the van thread's turns and wakes it.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(turn_mu_);
      stopped_ = true;
    }
    turn_cv_.notify_all();
  }

  // True on the thread that holds the baton now.
  bool HeldByThisThread() const { return holder_ == this; }
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;  // held by the thread that receives, for its whole turn
  std::atomic<bool> stopped_{false};
  std::atomic<bool> caller_wants_{false};
  std::mutex turn_mu_;  // with turn_cv_: the van thread waits while a caller receives
  std::condition_variable turn_cv_;
  // The baton held by this thread, if any: a thread holds at most one van's baton at a time.
  static inline thread_local const ReceiveBaton* holder_ = nullptr;
};

}  // namespace ps
#endif  // PS_INTERNAL_RECEIVE_BATON_H_
