// The distribution client: references, the registry API, pull.
export * from "./media-types.js";
export * from "./platforms.js";
export * from "./pull.js";
export * from "./reference.js";
export * from "./registry-client.js";
export * from "./www-authenticate.js";
