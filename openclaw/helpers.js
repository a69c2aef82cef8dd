// Test helpers: build the secrets binary once and make a fresh store for each test.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let built;

// secretsBin builds ./secrets as make build does (or uses $SECRETS_BIN).
export function secretsBin() {
  if (process.env.SECRETS_BIN) return process.env.SECRETS_BIN;
  if (!built) {
    built = join(mkdtempSync(join(tmpdir(), "secrets-bin-")), "secrets");
    execFileSync("go", ["build", "-o", built, "."], { cwd: root, env: { ...process.env, CGO_ENABLED: "0" }, stdio: "inherit" });
  }
  return built;
}

// freshStore makes a store with the given secrets and points SECRETS_DIR at it.
export function freshStore(secrets = {}) {
  const dir = join(mkdtempSync(join(tmpdir(), "secrets-store-")), "store");
  process.env.SECRETS_DIR = dir;
  const bin = secretsBin();
  execFileSync(bin, ["init"], { stdio: "ignore" });
  for (const [name, value] of Object.entries(secrets)) {
    execFileSync(bin, ["add", name], { input: value, stdio: ["pipe", "ignore", "inherit"] });
  }
  return dir;
}

// argvLogger is a cli_path that records every argv it is given, then runs secrets.
export function argvLogger() {
  const dir = mkdtempSync(join(tmpdir(), "secrets-argv-"));
  const log = join(dir, "argv.log");
  const wrapper = join(dir, "secrets-logged");
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${secretsBin()}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  return { wrapper, log };
}
