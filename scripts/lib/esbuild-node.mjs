// The esbuild options every bundle of ours starts from (bundle-shim.mjs, bundle-cli.mjs,
// build-sea.mjs): one minified CommonJS file for Node 20, no license comments, quiet unless
// something is wrong. Each adds its entry, its output and what is its own (keepNames, externals).
export const nodeBundle = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
};
