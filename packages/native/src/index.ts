// tsrunc's native pieces: subreaper and reaper, console socket, pty stream, eventfd, pipe and
// malloc trim (the shim), peer credentials (the shim and tsruncd). Each is also a subpath export
// (`@tsrunc/native/reaper`, …), so a caller loads only what it uses.
export { ADDON_ENV, ADDON_FILE, addonCandidates, addonPath } from "./addon.js";
export { closeFd, type ReceiveFdOptions, receiveFd } from "./console-socket.js";
export { EventCounter } from "./eventfd.js";
export { type PeerCredentials, peerCredentials, socketFd } from "./peer-credentials.js";
export { makePipe } from "./pipe.js";
export { openPty, PtyStream } from "./pty-stream.js";
export {
  createReaper,
  isChildSubreaper,
  type ProcessExit,
  type Reaper,
  type ReaperOptions,
  setChildSubreaper,
  type WatchOptions,
} from "./reaper.js";
export { trimWhenIdle } from "./trim.js";
