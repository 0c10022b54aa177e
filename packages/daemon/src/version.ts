export const daemonVersion = "0.1.0";
