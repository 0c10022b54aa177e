// eventfd(2) for cgroup v1 OOM notifications. The memory controller signals an OOM only through
// an eventfd registered in cgroup.event_control ("<eventfd> <memory.oom_control fd>"); Node has
// no way to create one. The fd is non-blocking and close-on-exec (runc must not inherit it); the
// JS side polls it with FdPoll and reads its 8-byte counter itself.
#include <errno.h>
#include <sys/eventfd.h>

#include "native.h"

namespace tsrunc {
namespace {

Napi::Value EventFd(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw SysError(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
}

}  // namespace tsrunc
