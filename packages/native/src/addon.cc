// Entry point of the tsrunc native addon, plus the two one-syscall helpers:
// the child-subreaper flag and a unix socket's peer credentials.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <vector>

#include "native.h"

namespace tsrunc {

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  std::string message = std::string(syscall) + ": " + strerror(err);
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  // uv_err_name maps -errno to its symbolic name, as Node does for its own errors.
  error.Set("code", Napi::String::New(env, uv_err_name(-err)));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

namespace {

// runc create/exec --detach fork the container's process and exit. As a child subreaper the
// orphan is re-parented to us rather than to pid 1, so we can reap it and learn its status.
void SetChildSubreaper(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) throw SysError(info.Env(), errno, "prctl");
}

Napi::Value IsChildSubreaper(const Napi::CallbackInfo& info) {
  int flag = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) < 0) throw SysError(info.Env(), errno, "prctl");
  return Napi::Boolean::New(info.Env(), flag != 0);
}

// An anonymous pipe, both ends close-on-exec: the read end becomes a container process's stdin
// (Node's spawn dup2s it into runc, which clears the flag there only). Node has no pipe(2):
// its "pipe" stdio is a socketpair owned by the child's handle and destroyed when runc exits.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw SysError(info.Env(), errno, "pipe2");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(uint32_t(0), Napi::Number::New(info.Env(), fds[0]));
  out.Set(uint32_t(1), Napi::Number::New(info.Env(), fds[1]));
  return out;
}

// execve(2): replaces this process (same pid) with another program. Node has no exec before
// 23.11; a single-file tsruncd uses it once at start to run itself again with the V8 heap flags
// it needs at isolate creation (NODE_OPTIONS), which v8.setFlagsFromString is too late to set.
void Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray())
    throw Napi::TypeError::New(env, "execve(file, argv[], env[])");
  std::string file = info[0].As<Napi::String>().Utf8Value();
  auto strings = [](Napi::Array a) {
    std::vector<std::string> out;
    for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).ToString().Utf8Value());
    return out;
  };
  std::vector<std::string> args = strings(info[1].As<Napi::Array>());
  std::vector<std::string> envs = strings(info[2].As<Napi::Array>());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  // Node marks the standard descriptors close-on-exec; the next program must keep them.
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  execve(file.c_str(), argv.data(), envp.data());
  throw SysError(env, errno, "execve", file);
}

// glibc keeps memory that was allocated and freed (start-up's module loading frees a lot) in its
// arenas instead of returning it to the kernel; for an idle shim that is megabytes of RSS.
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

// SO_PEERCRED: who is on the other end of a connected unix socket (as of connect()).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) throw SysError(env, errno, "getsockopt");
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

// TIOCSWINSZ on a pty master: the Task API's ResizePty. The kernel sends SIGWINCH to the
// slave's foreground process group.
void SetWindowSize(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct winsize size = {};
  size.ws_row = static_cast<unsigned short>(info[1].As<Napi::Number>().Uint32Value());
  size.ws_col = static_cast<unsigned short>(info[2].As<Napi::Number>().Uint32Value());
  if (ioctl(fd, TIOCSWINSZ, &size) < 0) throw SysError(info.Env(), errno, "ioctl", "TIOCSWINSZ");
}

// TIOCGPTPEER: an fd for the slave side of a pty master, even when the slave lives in another
// mount namespace's devpts (a container's), where no path of ours would reach it. Holding one
// keeps the master from reading EIO before the container opens its slave, or between two users.
Napi::Value OpenPtyPeer(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int peer = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (peer < 0) throw SysError(info.Env(), errno, "ioctl", "TIOCGPTPEER");
  return Napi::Number::New(info.Env(), peer);
}

}  // namespace
}  // namespace tsrunc

// NODE_API_MODULE wants an unqualified name.
static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace tsrunc;
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("isChildSubreaper", Napi::Function::New(env, IsChildSubreaper, "isChildSubreaper"));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize, "setWindowSize"));
  exports.Set("openPtyPeer", Napi::Function::New(env, OpenPtyPeer, "openPtyPeer"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("execve", Napi::Function::New(env, Execve, "execve"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  InitReaper(env, exports);
  InitFdReceiver(env, exports);
  InitFdPoll(env, exports);
  InitEventFd(env, exports);
  return exports;
}

NODE_API_MODULE(tsrunc_native, InitAddon)
