import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import register, { SecretsToolError } from "./index.js";
import { freshStore, argvLogger } from "./helpers.js";

const VALUE = "FAKE-openclaw-value-5d2e81";

const manifest_exec_allow = () => JSON.parse(readFileSync(new URL("../openclaw.plugin.json", import.meta.url))).configSchema.properties.exec_allow.default;

// load registers the plugin with a fake api and returns its tools by name.
function load(pluginConfig) {
  const tools = {};
  register({
    pluginConfig,
    registerTool(def, options) {
      tools[def.name] = { ...def, optional: options?.optional === true };
    },
  });
  return tools;
}

test("registers the tools, with JSON Schema parameters, add and killswitch optional", () => {
  const tools = load({});
  assert.deepEqual(Object.keys(tools).sort(), ["secrets_add", "secrets_audit", "secrets_exec", "secrets_killswitch", "secrets_lease", "secrets_revoke", "secrets_status"]);
  for (const t of Object.values(tools)) {
    assert.equal(t.parameters.type, "object", t.name);
    assert.equal(t.parameters.additionalProperties, false, t.name);
    assert.equal(typeof t.execute, "function");
  }
  assert.equal(tools.secrets_add.optional, true);
  assert.equal(tools.secrets_killswitch.optional, true);
  assert.equal(tools.secrets_lease.optional, true, "a tool that hands the model a value is opt-in");
  assert.equal(tools.secrets_exec.optional, false);
  assert.deepEqual(manifest_exec_allow(), []);
  const manifest = JSON.parse(readFileSync(new URL("../openclaw.plugin.json", import.meta.url)));
  assert.equal(manifest.configSchema.properties.cli_path.default, "secrets");
  assert.equal(manifest.configSchema.properties.default_ttl.default, "1h");
  assert.equal(manifest.configSchema.properties.client_id_prefix.default, "openclaw");
  assert.deepEqual(manifest.skills, ["skills/secret-management"]);
});

test("lease, status, audit and revoke run the CLI and return its envelope", async () => {
  freshStore({ github_token: VALUE });
  const { wrapper } = argvLogger();
  const tools = load({ cli_path: wrapper });
  const leased = await tools.secrets_lease.execute("call-1", { name: "github_token", ttl: "30m", client_id: "openclaw-task-123" });
  assert.equal(leased.details.value, VALUE);
  assert.equal(leased.details.client_id, "openclaw-task-123");
  assert.equal(leased.details.ttl, "30m");
  const status = await tools.secrets_status.execute("call-2", {});
  assert.equal(status.details.active_leases, 1);
  const audit = await tools.secrets_audit.execute("call-3", { event: "lease_grant", tail: 5 });
  assert.equal(audit.details.count, 1);
  assert.equal(audit.details.entries[0].client_id, "openclaw-task-123");
  await tools.secrets_revoke.execute("call-4", { lease_id: leased.details.lease_id });
  const after = await tools.secrets_status.execute("call-5", {});
  assert.equal(after.details.active_leases, 0);
  assert.ok(!JSON.stringify([status, audit, after]).includes(VALUE), "only secrets_lease returns a value");
});

test("errors come back as tool errors with code and fix", async () => {
  freshStore({ github_token: VALUE });
  const tools = load({ cli_path: argvLogger().wrapper });
  await assert.rejects(tools.secrets_lease.execute("c", { name: "missing" }), (err) => {
    assert.ok(err instanceof SecretsToolError);
    assert.equal(err.code, "secret_not_found");
    assert.match(err.fix, /secrets list/);
    return true;
  });
  await assert.rejects(tools.secrets_lease.execute("c", { name: "github_token", ttl: "99h" }), { code: "ttl_exceeds_max" });
  await assert.rejects(tools.secrets_lease.execute("c", { name: "github_token", ttl: "soon" }), { code: "usage" });
});

test("exec runs only the commands a person allowed, never secrets itself", async () => {
  freshStore({ github_token: VALUE });
  const tools = load({ cli_path: argvLogger().wrapper });
  for (const command of [["sh", "-c", "echo $GITHUB_TOKEN"], ["cat", "identity.age"], ["secrets", "lease", "github_token"]]) {
    await assert.rejects(tools.secrets_exec.execute("c", { command, secrets: [{ name: "github_token" }] }), { code: "command_not_allowed" }, command.join(" "));
  }
  const allowed = load({ cli_path: argvLogger().wrapper, exec_allow: ["secrets *", "printenv *"] });
  await assert.rejects(allowed.secrets_exec.execute("c", { command: ["secrets", "lease", "github_token"], secrets: [{ name: "github_token" }] }), { code: "command_not_allowed" });
  const r = await allowed.secrets_exec.execute("c", { command: ["printenv"], secrets: [{ name: "github_token", env_var: "GITHUB_TOKEN" }] });
  assert.equal(r.details.exit_code, 0);
  assert.match(r.details.stdout, /GITHUB_TOKEN=\[REDACTED:GITHUB_TOKEN\]/);
  assert.doesNotMatch(r.details.stdout, /^SECRETS_/m, "the command gets no SECRETS_ variable");
  assert.ok(!JSON.stringify(r).includes(VALUE));
});

test("exec returns the command's exit code and redacted output", async () => {
  freshStore({ github_token: VALUE });
  const tools = load({ cli_path: argvLogger().wrapper, exec_allow: ["sh -c *"] });
  const r = await tools.secrets_exec.execute("c", {
    command: ["sh", "-c", 'echo "token=$GITHUB_TOKEN"; echo "$GITHUB_TOKEN" >&2; exit 3'],
    secrets: [{ name: "github_token", env_var: "GITHUB_TOKEN" }],
  });
  assert.equal(r.details.exit_code, 3);
  // Both streams of the command are one, in order, as for MCP's secrets_exec: a value
  // split between them meets one redactor. stderr is what secrets itself said.
  assert.equal(r.details.stdout, "token=[REDACTED:GITHUB_TOKEN]\n[REDACTED:GITHUB_TOKEN]\n");
  assert.doesNotMatch(r.details.stderr, /REDACTED/);
  assert.ok(!JSON.stringify(r).includes(VALUE));
});

test("add passes the value on stdin only; it never appears in any argv", async () => {
  freshStore({});
  const { wrapper, log } = argvLogger();
  const tools = load({ cli_path: wrapper });
  const nasty = `${VALUE} $(touch pwned) \`id\` '"; rm -rf /`;
  await tools.secrets_add.execute("c", { name: "new_key", value: nasty });
  const leased = await tools.secrets_lease.execute("c", { name: "new_key" });
  assert.equal(leased.details.value, nasty, "stored byte for byte");
  const argv = readFileSync(log, "utf8");
  assert.ok(argv.includes("add"), "the wrapper saw the calls");
  assert.ok(!argv.includes(VALUE), "the value reached an argv");
  assert.ok(!existsSync("pwned"));
});

test("hostile parameters are rejected, or reach the CLI as plain arguments", async () => {
  const dir = freshStore({ github_token: VALUE });
  const { wrapper, log } = argvLogger();
  const tools = load({ cli_path: wrapper, exec_allow: ["printf *"] });
  const hostile = ["; rm -rf /", "$(touch pwned)", "`touch pwned`", "a\nb", "--all", "../../etc/passwd", ""];
  for (const h of hostile) {
    await assert.rejects(tools.secrets_lease.execute("c", { name: h }), { code: "usage" }, `name ${JSON.stringify(h)}`);
    await assert.rejects(tools.secrets_revoke.execute("c", { lease_id: h }), { code: "usage" }, `lease_id ${JSON.stringify(h)}`);
    await assert.rejects(tools.secrets_exec.execute("c", { command: ["true"], secrets: [{ name: h }] }), { code: "usage" });
    await assert.rejects(tools.secrets_audit.execute("c", { event: h }), { code: "usage" });
  }
  await assert.rejects(tools.secrets_lease.execute("c", { name: "github_token", client_id: "a\nb" }), { code: "usage" });
  await assert.rejects(tools.secrets_lease.execute("c", { name: "github_token", extra: 1 }), { code: "usage" });
  await assert.rejects(tools.secrets_exec.execute("c", { command: "rm -rf /", secrets: [{ name: "github_token" }] }), { code: "usage" });
  // A command's own arguments are passed through untouched, never to a shell of ours.
  const r = await tools.secrets_exec.execute("c", { command: ["printf", "%s", "; rm -rf / $(touch pwned) `id`"], secrets: [{ name: "github_token" }] });
  assert.equal(r.details.stdout, "; rm -rf / $(touch pwned) `id`");
  assert.ok(!existsSync("pwned") && !existsSync(join(dir, "pwned")));
  const calls = readFileSync(log, "utf8").trim().split("\n");
  assert.equal(calls.length, 1, "only the legitimate exec reached the CLI");
});

test("killswitch locks the store down", async () => {
  freshStore({ github_token: VALUE });
  const tools = load({ cli_path: argvLogger().wrapper });
  const r = await tools.secrets_killswitch.execute("c", { reason: "test" });
  assert.equal(r.details.lockdown.trigger, "manual");
  await assert.rejects(tools.secrets_lease.execute("c", { name: "github_token" }), { code: "lockdown" });
});
