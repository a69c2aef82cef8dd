// secrets mcp, driven by the official TypeScript MCP SDK over stdio.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { freshStore, secretsBin } from "./helpers.js";

const VALUE = "FAKE-mcp-ts-value-93b1c7";

async function connect(args = []) {
  const dir = freshStore({ github_token: VALUE });
  const transport = new StdioClientTransport({ command: secretsBin(), args: ["mcp", ...args], env: { ...process.env, SECRETS_DIR: dir }, stderr: "ignore" });
  const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

test("tools are listed and called; no value comes back without --allow reveal", async () => {
  const client = await connect(["--exec", "sh -c *"]);
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ["secrets_audit", "secrets_exec", "secrets_leases", "secrets_list", "secrets_revoke", "secrets_status"]);
    const list = await client.callTool({ name: "secrets_list", arguments: {} });
    assert.equal(list.structuredContent.count, 1);
    const exec = await client.callTool({
      name: "secrets_exec",
      arguments: { command: ["sh", "-c", 'echo "$GITHUB_TOKEN"'], secrets: [{ name: "github_token" }] },
    });
    assert.equal(exec.structuredContent.exit_code, 0);
    assert.equal(exec.structuredContent.stdout, "[REDACTED:GITHUB_TOKEN]\n");
    const refused = await client.callTool({ name: "secrets_exec", arguments: { command: ["cat", "/etc/hostname"], secrets: [{ name: "github_token" }] } });
    assert.equal(refused.isError, true);
    assert.equal(refused.structuredContent.error.code, "command_not_allowed");
    const audit = await client.callTool({ name: "secrets_audit", arguments: { event: "lease_grant" } });
    assert.equal(audit.structuredContent.entries[0].client_id, "ts-sdk-test");
    assert.equal(audit.structuredContent.entries[0].actor.agent, "mcp");
    assert.ok(!JSON.stringify([list, exec, audit]).includes(VALUE));
    await assert.rejects(client.callTool({ name: "secrets_lease", arguments: { name: "github_token" } }));
  } finally {
    await client.close();
  }
});

test("--allow reveal adds secrets_lease", async () => {
  const client = await connect(["--allow", "reveal"]);
  try {
    const r = await client.callTool({ name: "secrets_lease", arguments: { name: "github_token", ttl: "5m" } });
    assert.equal(r.structuredContent.value, VALUE);
  } finally {
    await client.close();
  }
});
