// FdPoll: readiness notifications for one fd on the libuv loop (a thin uv_poll_t).
//
// Why not tty.ReadStream for a pty master: libuv's stream code treats POLLHUP after a short
// read as EOF, but a pty master returns at most ~4 KiB per read while more output is still
// queued, so the tail of a container's output is lost when its last slave fd closes. With
// FdPoll the JS side reads the non-blocking fd itself until EAGAIN, and until EIO (the pty's
// end) -- see pty-stream.ts.
//
// new FdPoll(fd, callback(errorOrNull, readable, writable)) puts fd in O_NONBLOCK mode;
// start(readable, writable) sets the interest, stop(), close(). The fd stays the caller's: close
// it only after close() (uv_close stops polling synchronously, so right after is fine).
#include <errno.h>
#include <fcntl.h>
#include <uv.h>

#include "native.h"

namespace tsrunc {
namespace {

class FdPoll : public Napi::ObjectWrap<FdPoll> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoll",
                       {InstanceMethod<&FdPoll::Start>("start"), InstanceMethod<&FdPoll::Stop>("stop"),
                        InstanceMethod<&FdPoll::Close>("close")});
  }

  FdPoll(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdPoll>(info), async_context_(info.Env(), "tsrunc:FdPoll") {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    int flags = fcntl(fd_, F_GETFL);
    if (flags < 0 || fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0) throw SysError(env, errno, "fcntl");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
      throw Napi::Error::New(env, "FdPoll: no libuv loop");
    int rc = uv_poll_init(loop, &poll_, fd_);
    if (rc < 0) throw SysError(env, -rc, "uv_poll_init");
    poll_.data = this;
    open_ = true;
    Ref();  // alive until the handle is closed, even if JS drops us first
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!open_) return info.Env().Undefined();
    int events = (info[0].ToBoolean() ? UV_READABLE : 0) | (info[1].ToBoolean() ? UV_WRITABLE : 0);
    int rc = events == 0 ? uv_poll_stop(&poll_) : uv_poll_start(&poll_, events, OnEvent);
    if (rc < 0) throw SysError(info.Env(), -rc, "uv_poll_start");
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (open_) uv_poll_stop(&poll_);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (open_) uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);
    open_ = false;
    return info.Env().Undefined();
  }

  static void OnEvent(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<FdPoll*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Value error = status < 0 ? SysError(env, -status, "uv_poll").Value() : env.Null();
    try {
      // MakeCallback: runs microtasks and async hooks as for any libuv-driven JS callback.
      self->callback_.MakeCallback(env.Global(),
                                   {error, Napi::Boolean::New(env, (events & UV_READABLE) != 0),
                                    Napi::Boolean::New(env, (events & UV_WRITABLE) != 0)},
                                   self->async_context_);
    } catch (const Napi::Error& e) {
      // A throwing callback is an uncaught exception, as for any other event callback.
      napi_fatal_exception(env, e.Value());
    }
  }

  static void OnClosed(uv_handle_t* handle) {
    auto* self = static_cast<FdPoll*>(handle->data);
    Napi::HandleScope scope(self->Env());
    self->Unref();
  }

  Napi::FunctionReference callback_;
  Napi::AsyncContext async_context_;
  uv_poll_t poll_;
  int fd_ = -1;
  bool open_ = false;
};

}  // namespace

void InitFdPoll(Napi::Env env, Napi::Object exports) { exports.Set("FdPoll", FdPoll::Define(env)); }

}  // namespace tsrunc
