// OpenClaw plugin for the secrets CLI. Every tool runs the CLI with an argument vector
// (execFile, never a shell), after checking each parameter against the CLI's own rules;
// a value to store travels on stdin only. Results are the CLI's JSON envelopes; failures
// are thrown as SecretsToolError carrying error.code and fix.
import { execFile } from "node:child_process";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$/;
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const LEASE_ID = /^lease_[0-9A-Z]{26}$/;
const TTL = /^(?=.)(\d+d)?((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))*$/;
const EVENT = /^[a-z_]{1,64}$/;
const MAX_VALUE = 1 << 20;

export class SecretsToolError extends Error {
  constructor(code, message, fix) {
    super(`${code}: ${message}${fix ? ` (fix: ${fix})` : ""}`);
    this.name = "SecretsToolError";
    this.code = code;
    this.fix = fix;
  }
}

const usage = (message) => new SecretsToolError("usage", message, "check the tool's parameters");

// check validates params against a small spec: {key: [test, required]}. Unknown keys
// are refused, like additionalProperties: false.
function check(params, spec) {
  const p = params ?? {};
  if (typeof p !== "object" || Array.isArray(p)) throw usage("parameters must be an object");
  for (const key of Object.keys(p)) {
    if (!(key in spec)) throw usage(`unknown parameter ${JSON.stringify(key)}`);
  }
  for (const [key, [test, required]] of Object.entries(spec)) {
    if (p[key] === undefined) {
      if (required) throw usage(`${key} is required`);
      continue;
    }
    const why = test(p[key]);
    if (why) throw usage(`${key}: ${why}`);
  }
  return p;
}

const matches = (re, what) => (v) => (typeof v === "string" && re.test(v) ? "" : `must be ${what}`);
const isName = matches(NAME, "a secret name (letters, digits, _ . - /)");
const isTTL = matches(TTL, "a duration such as 30m, 1h30m or 2d");
const isBool = (v) => (typeof v === "boolean" ? "" : "must be true or false");
const isClient = (v) =>
  typeof v === "string" && v.length > 0 && v.length <= 128 && !/[\x00-\x1f\x7f]/.test(v) ? "" : "must be 1-128 printable characters";

const stringSchema = (description, extra = {}) => ({ type: "string", description, ...extra });
const object = (properties, required = []) => ({ type: "object", properties, required, additionalProperties: false });

export default function register(api) {
  const cfg = { cli_path: "secrets", default_ttl: "1h", client_id_prefix: "openclaw", exec_allow: [], ...(api.pluginConfig ?? {}) };
  if (!Array.isArray(cfg.exec_allow) || !cfg.exec_allow.every((c) => typeof c === "string" && c.length > 0 && !c.includes("\0"))) {
    throw new Error("agent-secrets: exec_allow must be a list of commands, such as [\"npm test\"]");
  }
  const client = (p) => p.client_id ?? cfg.client_id_prefix;

  // run executes the CLI and resolves with its exit code and output.
  const run = (args, stdin) =>
    new Promise((resolve) => {
      const child = execFile(cfg.cli_path, args, { maxBuffer: 8 << 20, env: process.env }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr, spawnError: err && typeof err.code === "string" ? err : null });
      });
      child.stdin.end(stdin ?? "");
    });

  // envelope runs a command whose stdout is a JSON envelope and returns its result.
  const envelope = async (args, stdin) => {
    const { stdout, stderr, spawnError } = await run(args, stdin);
    if (spawnError) throw new SecretsToolError("generic_error", `cannot run ${cfg.cli_path}: ${spawnError.message}`, "set cli_path in the plugin config");
    let env;
    try {
      env = JSON.parse(stdout);
    } catch {
      throw new SecretsToolError("generic_error", stderr.trim() || "no output from secrets", "run secrets status");
    }
    if (!env.ok) throw new SecretsToolError(env.error?.code ?? "generic_error", env.error?.message ?? "failed", env.fix);
    return env.result;
  };

  const reply = (result) => ({ content: [{ type: "text", text: JSON.stringify(result, null, 2) }], details: result });

  const tool = (def, build, options) =>
    api.registerTool(
      {
        name: def.name,
        description: def.description,
        parameters: def.parameters,
        async execute(_id, params) {
          return reply(await build(params));
        },
      },
      options,
    );

  tool(
    {
      name: "secrets_lease",
      description: "Lease a secret for a limited time and return its value. Prefer secrets_exec, which never shows you the value.",
      parameters: object(
        { name: stringSchema("secret name"), ttl: stringSchema("lease TTL, e.g. 30m"), client_id: stringSchema("who is asking, for the audit log") },
        ["name"],
      ),
    },
    (params) => {
      const p = check(params, { name: [isName, true], ttl: [isTTL], client_id: [isClient] });
      return envelope(["lease", "--json", "--ttl", p.ttl ?? cfg.default_ttl, "--client-id", client(p), "--", p.name]);
    },
    // It hands the model a value, like MCP's --allow reveal: only when a person turns it on.
    { optional: true },
  );

  tool(
    { name: "secrets_status", description: "Show the store: secret and lease counts, audit log health, lockdown, heartbeat.", parameters: object({}) },
    (params) => (check(params, {}), envelope(["status"])),
  );

  tool(
    {
      name: "secrets_revoke",
      description: "Revoke one lease (lease_id) or every lease (all: true). Revoking removes .env files and stops exec commands.",
      parameters: object({ lease_id: stringSchema("lease id from secrets_lease or the audit"), all: { type: "boolean" }, client_id: stringSchema("who is asking") }),
    },
    (params) => {
      const p = check(params, { lease_id: [matches(LEASE_ID, "a lease id (lease_ and 26 characters)")], all: [isBool], client_id: [isClient] });
      if (!!p.all === (p.lease_id !== undefined)) throw usage("give lease_id or all: true");
      return envelope(p.all ? ["revoke", "--all", "--client-id", client(p)] : ["revoke", "--client-id", client(p), "--", p.lease_id]);
    },
  );

  tool(
    {
      name: "secrets_audit",
      description: "Read the newest entries of the tamper-evident audit log.",
      parameters: object({
        tail: { type: "integer", minimum: 1, maximum: 1000, description: "how many entries (default 50)" },
        secret: stringSchema("only this secret"),
        client_id: stringSchema("only this client"),
        event: stringSchema("only this event, e.g. lease_grant"),
      }),
    },
    (params) => {
      const p = check(params, {
        tail: [(v) => (Number.isInteger(v) && v >= 1 && v <= 1000 ? "" : "must be an integer from 1 to 1000")],
        secret: [isName],
        client_id: [isClient],
        event: [matches(EVENT, "an event name such as lease_grant")],
      });
      const args = ["audit", "--tail", String(p.tail ?? 50)];
      if (p.secret) args.push("--secret", p.secret);
      if (p.client_id) args.push("--client-id", p.client_id);
      if (p.event) args.push("--event", p.event);
      return envelope(args);
    },
  );

  tool(
    {
      name: "secrets_exec",
      description:
        "Run a command with secrets in its environment and return its exit code and output, with every secret value redacted " +
        "(stdout: the command's stdout and stderr in order, as 2>&1; stderr: what secrets itself reports). " +
        "Only the exact commands a person allowed run (each secret's policy exec rules, or this plugin's exec_allow); never secrets itself. " +
        "The command gets no SECRETS_* variables and, where the kernel allows, cannot see the store. " +
        "An allowed command you can change (a test script, say) can still print or send what it holds: injection is the way to use a credential without holding it.",
      parameters: object(
        {
          command: { type: "array", items: { type: "string" }, minItems: 1, description: 'argv, e.g. ["gh", "issue", "list"]' },
          secrets: { type: "array", items: object({ name: stringSchema("secret"), env_var: stringSchema("variable") }, ["name"]) },
          ttl: stringSchema("lease TTL, e.g. 10m"),
          client_id: stringSchema("who is asking"),
        },
        ["command", "secrets"],
      ),
    },
    async (params) => {
      const p = check(params, {
        command: [(v) => (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string" && !s.includes("\0")) ? "" : "must be a non-empty array of strings"), true],
        secrets: [(v) => (Array.isArray(v) && v.length > 0 ? "" : "must be a non-empty array"), true],
        ttl: [isTTL],
        client_id: [isClient],
      });
      // --tool makes the CLI gate the command as MCP's secrets_exec does.
      const args = ["exec", "--tool", "openclaw", "--ttl", p.ttl ?? cfg.default_ttl, "--client-id", client(p)];
      for (const allowed of cfg.exec_allow) args.push("--tool-exec", allowed);
      for (const s of p.secrets) {
        check(s, { name: [isName, true], env_var: [matches(ENV_VAR, "an environment variable name")] });
        args.push("--secret", s.env_var ? `${s.name}=${s.env_var}` : s.name);
      }
      const { code, stdout, stderr, spawnError } = await run([...args, "--", ...p.command]);
      if (spawnError) throw new SecretsToolError("generic_error", `cannot run ${cfg.cli_path}: ${spawnError.message}`, "set cli_path in the plugin config");
      // Refused before the command ran: with --tool the CLI says why in an envelope.
      if (code !== 0 && stdout.startsWith("{") && stderr.startsWith("secrets: error: ")) {
        let env = null;
        try {
          env = JSON.parse(stdout);
        } catch {}
        if (env && env.ok === false && env.error) throw new SecretsToolError(env.error.code ?? "generic_error", env.error.message, env.fix);
      }
      return { exit_code: code, stdout, stderr, store_hidden: !/the store could be seen by the command/.test(stderr) };
    },
  );

  tool(
    {
      name: "secrets_add",
      description: "Store a new secret. The value is passed to the CLI on stdin, never in arguments.",
      parameters: object({ name: stringSchema("secret name"), value: stringSchema("the value"), rotate_via: stringSchema("rotation hook command") }, ["name", "value"]),
    },
    (params) => {
      const p = check(params, {
        name: [isName, true],
        value: [(v) => (typeof v === "string" && v.length > 0 && Buffer.byteLength(v) <= MAX_VALUE ? "" : "must be a non-empty string of at most 1 MiB"), true],
        rotate_via: [(v) => (typeof v === "string" && !v.includes("\0") ? "" : "must be a string")],
      });
      const args = ["add"];
      if (p.rotate_via) args.push("--rotate-via", p.rotate_via);
      return envelope([...args, "--client-id", cfg.client_id_prefix, "--", p.name], p.value);
    },
    { optional: true },
  );

  tool(
    {
      name: "secrets_killswitch",
      description: "Emergency: revoke every lease and lock the store down; optionally rotate all secrets and wipe the store.",
      parameters: object({ rotate_all: { type: "boolean" }, wipe: { type: "boolean" }, reason: stringSchema("why") }),
    },
    (params) => {
      const p = check(params, { rotate_all: [isBool], wipe: [isBool], reason: [(v) => (typeof v === "string" && v.length <= 500 && !/[\x00-\x1f]/.test(v) ? "" : "must be one line of text")] });
      const args = ["killswitch", "--yes", "--client-id", cfg.client_id_prefix];
      if (p.rotate_all) args.push("--rotate-all");
      if (p.wipe) args.push("--wipe");
      if (p.reason) args.push("--reason", p.reason);
      return envelope(args);
    },
    { optional: true },
  );
}
