#pragma once

// evcxx::StopToken, StopSource and StopCallback: std::stop_token, std::stop_source and
// std::stop_callback where the standard library has them (libstdc++), and a small equivalent
// where it does not (libc++ 16 has no <stop_token>). Include <evcxx/coro.hpp>.

#include <version>

#if defined(__cpp_lib_jthread)
#include <stop_token>
#else
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#endif

#include "evcxx/export.hpp"

EVCXX_BEGIN_NAMESPACE

#if defined(__cpp_lib_jthread)

/// std::stop_token (this standard library has one).
using StopToken = std::stop_token;
/// std::stop_source.
using StopSource = std::stop_source;
/// std::stop_callback.
template <class Callback>
using StopCallback = std::stop_callback<Callback>;

#else

namespace detail::coro {

// The state a StopSource shares with its tokens: the flag and the registered callbacks.
class StopState {
 public:
  struct Entry {
    virtual void invoke() noexcept = 0;
    Entry* prev = nullptr;
    Entry* next = nullptr;

   protected:
    ~Entry() = default;
  };

  bool requested() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  }
  bool request() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopped_) return false;
    stopped_ = true;
    running_thread_ = std::this_thread::get_id();
    while (head_ != nullptr) {
      Entry* entry = head_;
      unlink(*entry);
      running_ = entry;
      lock.unlock();
      entry->invoke();
      lock.lock();
      running_ = nullptr;
      done_.notify_all();
    }
    return true;
  }
  // False (and nothing registered) when a stop was already requested: call it yourself then.
  bool add(Entry& entry) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return false;
    entry.prev = nullptr;
    entry.next = head_;
    if (head_ != nullptr) head_->prev = &entry;
    head_ = &entry;
    return true;
  }
  // Unregisters entry; waits while another thread is running it.
  void remove(Entry& entry) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (entry.prev != nullptr || head_ == &entry) {
      unlink(entry);
      return;
    }
    if (running_ == &entry && running_thread_ != std::this_thread::get_id()) {
      done_.wait(lock, [&] { return running_ != &entry; });
    }
  }

 private:
  void unlink(Entry& entry) noexcept {
    if (entry.prev != nullptr) {
      entry.prev->next = entry.next;
    } else {
      head_ = entry.next;
    }
    if (entry.next != nullptr) entry.next->prev = entry.prev;
    entry.prev = entry.next = nullptr;
  }

  mutable std::mutex mutex_;
  std::condition_variable done_;
  bool stopped_ = false;
  Entry* head_ = nullptr;
  Entry* running_ = nullptr;
  std::thread::id running_thread_;
};

}  // namespace detail::coro

/// What std::stop_token offers, for standard libraries without `<stop_token>`.
/// Thread-safety: ANY thread, as std::stop_token.
class StopToken {
 public:
  /// A token no stop can be requested on.
  StopToken() noexcept = default;
  /// A stop can be requested on it.
  bool stop_possible() const noexcept { return state_ != nullptr; }
  /// A stop was requested.
  bool stop_requested() const { return state_ != nullptr && state_->requested(); }

 private:
  friend class StopSource;
  template <class Callback>
  friend class StopCallback;
  explicit StopToken(std::shared_ptr<detail::coro::StopState> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<detail::coro::StopState> state_;
};

/// What std::stop_source offers, for standard libraries without `<stop_token>`.
/// Thread-safety: ANY thread.
class StopSource {
 public:
  /// A new stop state.
  StopSource() : state_(std::make_shared<detail::coro::StopState>()) {}
  /// A token of this source.
  StopToken get_token() const noexcept { return StopToken(state_); }
  /// Requests a stop, running the registered callbacks on this thread; false if one was already.
  bool request_stop() { return state_->request(); }
  /// A stop was requested.
  bool stop_requested() const { return state_->requested(); }

 private:
  std::shared_ptr<detail::coro::StopState> state_;
};

/// What std::stop_callback offers, for standard libraries without `<stop_token>`: runs callback
/// once a stop is requested (at once, if it was already).
/// Lifetime: the destructor waits for the callback running on another thread to return.
template <class Callback>
class StopCallback final : private detail::coro::StopState::Entry {
 public:
  /// Registers callback on token's stop state.
  template <class C>
  StopCallback(StopToken token, C&& callback) noexcept(std::is_nothrow_constructible_v<Callback, C>)
      : callback_(std::forward<C>(callback)), state_(std::move(token.state_)) {
    if (state_ != nullptr && !state_->add(*this)) {
      state_ = nullptr;
      callback_();
    }
  }
  /// Unregisters the callback.
  ~StopCallback() {
    if (state_ != nullptr) state_->remove(*this);
  }
  StopCallback(const StopCallback&) = delete;
  StopCallback& operator=(const StopCallback&) = delete;

 private:
  void invoke() noexcept override { callback_(); }
  Callback callback_;
  std::shared_ptr<detail::coro::StopState> state_;
};

#endif

EVCXX_END_NAMESPACE
