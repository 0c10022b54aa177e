// FdReceiver: runc's --console-socket, the receiving end.
//
// new FdReceiver(path, timeoutMs) binds a unix stream socket at path (mode 0600), accepts one
// connection and receives one fd sent with SCM_RIGHTS (the pty master); `.promise` resolves to
// that fd, `.cancel()` rejects it with ECANCELED. Everything is non-blocking on the libuv loop
// (uv_poll + uv_timer): a worker thread would hold one of libuv's four pool threads for as long
// as runc takes. The socket file is removed as soon as the connection is accepted, or on failure.
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <vector>

#include "native.h"

namespace tsrunc {
namespace {

constexpr int kMaxFds = 16;  // more than runc ever sends; extra fds are closed

class FdReceiver : public Napi::ObjectWrap<FdReceiver> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdReceiver", {InstanceMethod<&FdReceiver::Cancel>("cancel")});
  }

  FdReceiver(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdReceiver>(info),
        deferred_(Napi::Promise::Deferred::New(info.Env())),
        async_context_(info.Env(), "tsrunc:receiveFd") {
    Napi::Env env = info.Env();
    path_ = info[0].As<Napi::String>().Utf8Value();
    double timeout_ms = info[1].As<Napi::Number>().DoubleValue();

    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (path_.empty() || path_.size() >= sizeof(addr.sun_path) || path_.find('\0') != std::string::npos)
      throw SysError(env, path_.empty() ? EINVAL : ENAMETOOLONG, "bind", path_);
    memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw SysError(env, errno, "socket");
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) {
      int err = errno;
      close(fd);
      throw SysError(env, err, "bind", path_);
    }
    // The mode of a socket file is fixed only after bind; callers put it in a private directory
    // so that the moment between bind and chmod does not matter.
    const char* failed = nullptr;
    if (chmod(path_.c_str(), 0600) < 0) failed = "chmod";
    else if (listen(fd, 1) < 0) failed = "listen";
    uv_loop_t* loop = nullptr;
    if (failed == nullptr && (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)) {
      errno = EINVAL;
      failed = "napi_get_uv_event_loop";
    }
    if (failed != nullptr) {
      int err = errno;
      close(fd);
      unlink(path_.c_str());
      throw SysError(env, err, failed, path_);
    }
    listen_fd_ = fd;
    bound_ = true;

    // From here on nothing throws: the handles are live and close asynchronously.
    uv_poll_init(loop, &listen_poll_, listen_fd_);
    listen_poll_.data = this;
    listen_poll_open_ = true;
    open_handles_++;
    uv_poll_start(&listen_poll_, UV_READABLE, OnListenReadable);

    uv_timer_init(loop, &timer_);
    timer_.data = this;
    timer_open_ = true;
    open_handles_++;
    if (timeout_ms > 0 && timeout_ms < 1e12) uv_timer_start(&timer_, OnTimeout, static_cast<uint64_t>(timeout_ms), 0);

    // If the process exits while we wait, still remove the socket file.
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    Ref();  // keep this object alive until its uv handles are closed
    info.This().As<Napi::Object>().Set("promise", deferred_.Promise());
  }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Finish(-1, ECANCELED, "receiveFd", false);
    return info.Env().Undefined();
  }

  static void OnListenReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<FdReceiver*>(handle->data);
    if (status < 0) return self->Finish(-1, -status, "uv_poll", true);
    int fd = accept4(self->listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      return self->Finish(-1, errno, "accept4", true);
    }
    // runc connects once: stop listening and remove the socket file now.
    self->CloseListener();
    self->conn_fd_ = fd;
    uv_poll_init(self->listen_poll_.loop, &self->conn_poll_, fd);
    self->conn_poll_.data = self;
    self->conn_poll_open_ = true;
    self->open_handles_++;
    uv_poll_start(&self->conn_poll_, UV_READABLE, OnConnReadable);
  }

  static void OnConnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<FdReceiver*>(handle->data);
    if (status < 0) return self->Finish(-1, -status, "uv_poll", true);
    // runc sends the pty's name as data with the fd attached (SCM_RIGHTS) in one sendmsg.
    char data[512];
    struct iovec iov = {data, sizeof(data)};
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * kMaxFds)];
    } control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    ssize_t n = recvmsg(self->conn_fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return self->Finish(-1, errno, "recvmsg", true);
    }
    std::vector<int> fds;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(fd);
      }
    }
    if (fds.empty()) {
      // The fd travels with the first byte: data without it, or EOF, means none is coming.
      return self->Finish(-1, n == 0 ? ECONNRESET : EPROTO, "recvmsg", true);
    }
    for (size_t i = 1; i < fds.size(); i++) close(fds[i]);
    self->Finish(fds[0], 0, nullptr, true);
  }

  static void OnTimeout(uv_timer_t* handle) {
    static_cast<FdReceiver*>(handle->data)->Finish(-1, ETIMEDOUT, "receiveFd", true);
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<FdReceiver*>(arg);
    if (self->bound_) unlink(self->path_.c_str());
    self->bound_ = false;
  }

  static void OnClosed(uv_handle_t* handle) {
    auto* self = static_cast<FdReceiver*>(handle->data);
    if (--self->open_handles_ == 0) {
      Napi::HandleScope scope(self->Env());
      self->Unref();  // now the GC may collect us
    }
  }

  // uv_close stops the poll (and removes the fd from epoll) synchronously, so the fd may be
  // closed right after; closing it first could let libuv touch a reused fd number.
  void CloseListener() {
    if (listen_poll_open_) uv_close(reinterpret_cast<uv_handle_t*>(&listen_poll_), OnClosed);
    listen_poll_open_ = false;
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    if (bound_) unlink(path_.c_str());
    bound_ = false;
  }

  // Settles the promise once: with fd (err == 0), or with the error. from_loop: called from a
  // libuv callback, so open a callback scope (runs microtasks, async hooks) around settling.
  void Finish(int fd, int err, const char* syscall, bool from_loop) {
    if (done_) {
      if (fd >= 0) close(fd);
      return;
    }
    done_ = true;
    CloseListener();
    if (conn_poll_open_) uv_close(reinterpret_cast<uv_handle_t*>(&conn_poll_), OnClosed);
    conn_poll_open_ = false;
    if (conn_fd_ >= 0) close(conn_fd_);
    conn_fd_ = -1;
    if (timer_open_) uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
    timer_open_ = false;
    Napi::Env env = Env();
    napi_remove_env_cleanup_hook(env, OnEnvCleanup, this);

    Napi::HandleScope scope(env);
    auto settle = [&] {
      if (err == 0) deferred_.Resolve(Napi::Number::New(env, fd));
      else deferred_.Reject(SysError(env, err, syscall, path_).Value());
    };
    if (from_loop) {
      Napi::CallbackScope callback_scope(env, async_context_);
      settle();
    } else {
      settle();
    }
  }

  Napi::Promise::Deferred deferred_;
  Napi::AsyncContext async_context_;
  std::string path_;
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  bool bound_ = false;  // the socket file exists and is ours to remove
  bool done_ = false;
  uv_poll_t listen_poll_;
  uv_poll_t conn_poll_;
  uv_timer_t timer_;
  bool listen_poll_open_ = false;
  bool conn_poll_open_ = false;
  bool timer_open_ = false;
  int open_handles_ = 0;
};

}  // namespace

void InitFdReceiver(Napi::Env env, Napi::Object exports) {
  exports.Set("FdReceiver", FdReceiver::Define(env));
}

}  // namespace tsrunc
