// Reaping without stealing from libuv.
//
// Our children are of two kinds: the ones libuv spawned (execa -> runc), which libuv reaps
// itself with waitpid(pid) after SIGCHLD -- if we reaped one, Node's 'exit' event would never
// fire -- and the container processes re-parented to us as a child subreaper. reapExited()
// lists our children, skips every pid that has a live uv_process_t on this env's loop, and
// reaps the rest that have exited. It never blocks (WNOHANG). The JS side calls it on SIGCHLD.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "native.h"

namespace tsrunc {
namespace {

// Reads a whole small /proc file; false if it cannot be opened (e.g. the process is gone).
bool ReadSmallFile(const char* path, std::string& out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// The parent pid from /proc/PID/stat, or -1 if the process is gone. The command name (field 2)
// is in parentheses and may hold spaces or ')', so parse from the last ')'.
int ReadPpid(int pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  std::string stat;
  if (!ReadSmallFile(path, stat)) return -1;
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  char state = 0;
  int ppid = -1;
  if (sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

void ParsePids(const std::string& text, std::vector<int>& out) {
  const char* p = text.c_str();
  char* end = nullptr;
  for (long v = strtol(p, &end, 10); end != p; v = strtol(p, &end, 10)) {
    if (v > 0) out.push_back(static_cast<int>(v));
    p = end;
  }
}

bool IsNumeric(const char* s) {
  if (*s == 0) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

// Our children. A child belongs to the thread that forked it (re-parented orphans to a live
// thread of ours), so read every task's `children` file. Kernels without CONFIG_PROC_CHILDREN
// lack that file: then scan /proc for processes whose parent is us (slower, same result).
void ListChildren(Napi::Env env, std::vector<int>& out) {
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) throw SysError(env, errno, "opendir", "/proc/self/task");
  bool have_children_file = false;
  std::string text;
  while (struct dirent* entry = readdir(tasks)) {
    if (!IsNumeric(entry->d_name)) continue;
    std::string path = std::string("/proc/self/task/") + entry->d_name + "/children";
    if (!ReadSmallFile(path.c_str(), text)) continue;  // thread gone, or no such file
    have_children_file = true;
    ParsePids(text, out);
  }
  closedir(tasks);
  if (have_children_file) return;

  DIR* proc = opendir("/proc");
  if (proc == nullptr) throw SysError(env, errno, "opendir", "/proc");
  int self = getpid();
  while (struct dirent* entry = readdir(proc)) {
    if (!IsNumeric(entry->d_name)) continue;
    int pid = atoi(entry->d_name);
    if (ReadPpid(pid) == self) out.push_back(pid);
  }
  closedir(proc);
}

void CollectLibuvPid(uv_handle_t* handle, void* arg) {
  if (handle->type != UV_PROCESS) return;
  int pid = reinterpret_cast<uv_process_t*>(handle)->pid;
  if (pid > 0) static_cast<std::unordered_set<int>*>(arg)->insert(pid);
}

// reapExited(): Array<{pid, status, exitedAt}> -- every exited child that libuv did not spawn,
// reaped. status is containerd's encoding: the exit code, or 128 + signal number when killed.
// exitedAt is milliseconds since the epoch (CLOCK_REALTIME at reaping).
Napi::Value ReapExited(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    throw Napi::Error::New(env, "reapExited: no libuv loop");
  // libuv's children stay as UV_PROCESS handles until Node closes them after their exit event.
  // Everything here runs on the loop's thread, so no uv_spawn can slip in between.
  std::unordered_set<int> libuv_pids;
  uv_walk(loop, CollectLibuvPid, &libuv_pids);

  std::vector<int> children;
  ListChildren(env, children);

  Napi::Array out = Napi::Array::New(env);
  uint32_t count = 0;
  for (int pid : children) {
    if (libuv_pids.count(pid) != 0) continue;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int rc;
    do rc = waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 || si.si_pid == 0) continue;  // ECHILD (listing raced), or still running
    int status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Napi::Object exit = Napi::Object::New(env);
    exit.Set("pid", Napi::Number::New(env, pid));
    exit.Set("status", Napi::Number::New(env, status));
    exit.Set("exitedAt", Napi::Number::New(env, now.tv_sec * 1e3 + now.tv_nsec / 1e6));
    out.Set(count++, exit);
  }
  return out;
}

// isDescendant(pid): whether pid is a live (or zombie) descendant of ours, i.e. whether its
// exit will reach us as a subreaper. Walks the ppid chain; if an ancestor exits mid-walk (runc
// exiting re-parents its child to us), walk again.
Napi::Value IsDescendant(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  int self = getpid();
  for (int attempt = 0; attempt < 3; attempt++) {
    int current = pid;
    bool raced = false;
    for (int depth = 0; depth < 4096 && current > 1 && current != self; depth++) {
      int ppid = ReadPpid(current);
      if (ppid == self) return Napi::Boolean::New(env, true);
      if (ppid < 0) {
        raced = depth > 0;  // an ancestor vanished while we walked
        break;
      }
      current = ppid;
    }
    if (!raced) break;
  }
  return Napi::Boolean::New(env, false);
}

}  // namespace

void InitReaper(Napi::Env env, Napi::Object exports) {
  exports.Set("reapExited", Napi::Function::New(env, ReapExited, "reapExited"));
  exports.Set("isDescendant", Napi::Function::New(env, IsDescendant, "isDescendant"));
}

}  // namespace tsrunc
