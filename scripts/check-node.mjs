// Run first by `npm start`, `npm test`, `npm run test:reliability` and `npm run bench`: effect-wire, Effect 4
// and vitest 5 need Node >= 22.19. `npm install` brings Node 24 as
// node_modules/.bin/node where the npm registry has a build for this machine
// (scripts/node/package.json), and npm scripts run on it; elsewhere the Node on
// the PATH must be recent enough.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `effect-wire needs Node >= 22.19 (Node 24 LTS recommended); this is Node ${process.version} at ${process.execPath}. Install Node 24 and run npm install again.`
  )
  process.exit(1)
}
