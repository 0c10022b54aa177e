// Shared declarations of the tsrunc native addon. Linux only.
#pragma once

#include <napi.h>

#include <string>

namespace tsrunc {

// An Error shaped like Node's system errors: message, code ("ENOENT"), errno (negative), syscall.
Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail = "");

void InitReaper(Napi::Env env, Napi::Object exports);
void InitFdReceiver(Napi::Env env, Napi::Object exports);
void InitFdPoll(Napi::Env env, Napi::Object exports);
void InitEventFd(Napi::Env env, Napi::Object exports);

}  // namespace tsrunc
