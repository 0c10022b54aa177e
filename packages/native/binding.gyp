{
  # tsrunc's native addon: subreaper, reaping, SCM_RIGHTS fd passing, SO_PEERCRED, pty polling.
  # Linux only. Built offline against the installed Node headers (npm's nodedir).
  "targets": [
    {
      "target_name": "tsrunc_native",
      "sources": ["src/addon.cc", "src/reaper.cc", "src/fd_receiver.cc", "src/fd_poll.cc", "src/eventfd.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
