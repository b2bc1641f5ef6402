// Writes .ci/openhim/package-lock.json so that `npm ci` installs openhim-core 4.0.5 with the dependency tree of
// its repository's package-lock.json at tag v4.0.5 (koa 2.3.0, mongoose 4.12.0, ...), the tree `npm i` gave the
// project's own Docker build, instead of what npm resolves today for the published package (which ships no lock).
//
// Usage: node lock-from-repo.js CONVERTED_LOCK > package-lock.json
//   CONVERTED_LOCK is the repository's package-lock.json (lockfile v1) after `npm install --package-lock-only`
//   in a directory holding it and the tag's package.json, which rewrites it as lockfile v3 without changing the tree.
'use strict'
const fs = require('fs')
const repo = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const current = JSON.parse(fs.readFileSync(__dirname + '/package-lock.json', 'utf8'))
const core = current.packages['node_modules/openhim-core']
if (!core || core.version !== '4.0.5') throw new Error('package-lock.json has no openhim-core 4.0.5 entry')
const root = repo.packages['']
if (JSON.stringify(root.dependencies) !== JSON.stringify(core.dependencies)) {
  throw new Error('the repository lock is not for the dependencies of the published openhim-core 4.0.5')
}
const out = {
  name: current.name,
  version: current.version,
  lockfileVersion: 3,
  requires: true,
  packages: {'': current.packages[''], 'node_modules/openhim-core': core}
}
for (const [path, entry] of Object.entries(repo.packages)) {
  if (path === '' || entry.dev) continue // the project's dev tools are not installed (npm ci --omit=dev)
  out.packages[path] = entry
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
