// The console, driven in real Chromium against a real `oma serve` (started by run.sh with a
// scripted fake model): sign in, create an agent, an environment and a session, send a
// message, watch the turn arrive live with a bash tool call, answer its confirmation, see the
// cost; then the agent's version diff and the operator pages.
//
// Every wait is on a condition with a deadline; nothing sleeps.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.OMA_BASE_URL;
const KEY = process.env.OMA_API_KEY;
const KEY_2 = process.env.OMA_API_KEY_2;
const ADMIN_KEY = process.env.OMA_ADMIN_KEY;
let firstSessionPath = "";
const WAIT = { timeout: 30_000 };

let browser;
let page;
const pageErrors = [];
const requests = [];
// The console's navigation bar (page bodies can link to the same pages, e.g. breadcrumbs).
const nav = (name) => page.getByRole("navigation", { name: "Console" }).getByRole("link", { name, exact: true });

before(async () => {
  assert.ok(BASE && KEY && KEY_2 && ADMIN_KEY, "run through e2e/console/run.sh");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--headless"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
  page.on("request", (r) => requests.push(r.url()));
});

after(async () => {
  if (browser) await browser.close();
});

describe("the oma console", () => {
  it("is served by the binary, with a strict content security policy", async () => {
    const resp = await page.goto(`${BASE}/`);
    assert.equal(resp.status(), 200);
    const csp = resp.headers()["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    await page.waitForURL(`${BASE}/console/sign-in`, WAIT);
  });

  it("refuses a wrong key with the API's message", async () => {
    await page.getByLabel("API key", { exact: true }).fill("sk-not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "invalid API key" }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    // The browser reports the refused probe as a failed resource load: expected here.
    pageErrors.length = 0;
  });

  it("signs in with an API key and the admin key, kept in session storage only", async () => {
    await page.getByLabel("API key", { exact: true }).fill(KEY);
    await page.getByLabel("Admin key (optional)").fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${BASE}/console/sessions`, WAIT);
    const stored = await page.evaluate(() => ({
      session: Object.values(sessionStorage),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert.ok(stored.session.includes(KEY));
    assert.equal(stored.local, 0);
    assert.equal(stored.cookie, "");
    await nav("Operations").waitFor(WAIT);
  });

  it("creates an agent whose built-in tools ask before running", async () => {
    await nav("Agents").click();
    await page.getByText("New agent").click();
    const f = page.getByRole("form", { name: "New agent" });
    await f.getByLabel("Name").fill("console-agent");
    await f.getByLabel("System prompt").fill("You are tested from a browser.");
    await f.getByLabel(/Built-in tools/).selectOption("always_ask");
    await f.getByRole("button", { name: "Create agent" }).click();
    await page.getByRole("heading", { name: /console-agent/ }).waitFor(WAIT);
    await page.locator("dl.facts").getByText("always_ask", { exact: true }).waitFor(WAIT);
  });

  it("creates an environment", async () => {
    await nav("Environments").click();
    await page.getByText("New environment").click();
    const f = page.getByRole("form", { name: "New environment" });
    await f.getByLabel("Name").fill("console-env");
    await f.getByRole("button", { name: "Create environment" }).click();
    await page.getByRole("heading", { name: "console-env" }).waitFor(WAIT);
  });

  it("starts a session, sends a message and watches the turn live", async () => {
    await nav("Sessions").click();
    await page.getByText("New session").click();
    const f = page.getByRole("form", { name: "New session" });
    await f.getByLabel("Agent").selectOption({ label: "console-agent (v1)" });
    await f.getByLabel("Environment").selectOption({ label: "console-env" });
    await f.getByLabel("Title (optional)").fill("Console session");
    await f.getByRole("button", { name: "Start session" }).click();
    await page.getByRole("heading", { name: "Console session" }).waitFor(WAIT);
    firstSessionPath = new URL(page.url()).pathname;
    await page.getByText("● live").waitFor(WAIT);

    const navigations = [];
    page.on("framenavigated", (fr) => { if (fr === page.mainFrame()) navigations.push(fr.url()); });
    await page.getByLabel("Message", { exact: true }).fill("Please run a command.");
    await page.getByRole("button", { name: "Send", exact: true }).click();

    // The user's message, then the model's bash call, arrive over SSE without a reload.
    const timeline = page.getByRole("list", { name: "Timeline" });
    await timeline.getByText("Please run a command.").waitFor(WAIT);
    await timeline.getByText("I will run a command.").waitFor(WAIT);
    const tool = timeline.locator("li[data-type='agent.tool_use']");
    await tool.getByText("$ echo hello-from-the-console").waitFor(WAIT);
    await tool.getByText("ask", { exact: true }).waitFor(WAIT);
    await page.locator("#session-status").getByText("idle").waitFor(WAIT);
    assert.deepEqual(navigations, [], "live data must not reload the page");
  });

  it("answers the confirmation and sees the result, the reply and the cost", async () => {
    const timeline = page.getByRole("list", { name: "Timeline" });
    const tool = timeline.locator("li[data-type='agent.tool_use']");
    await tool.getByRole("button", { name: "Allow" }).click();
    await tool.getByText("Allowed").waitFor(WAIT);
    await tool.locator(".result").getByText("hello-from-the-console").waitFor(WAIT);
    await timeline.getByText("The command printed hello-from-the-console.").waitFor(WAIT);
    await page.locator("#session-status").getByText("idle").waitFor(WAIT);
    // Two model requests of 100k input and 20k output tokens at claude-sonnet-4 list prices
    // ($3 and $15 per million): $1.20.
    await page.locator("#session-cost").getByText("$1.20").waitFor(WAIT);
    const shot = process.env.OMA_CONSOLE_SCREENSHOT;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
  });

  it("lists the session with its status and cost", async () => {
    await nav("Sessions").click();
    const row = page.getByRole("row").filter({ hasText: "Console session" });
    await row.getByText("$1.20").waitFor(WAIT);
    await row.getByText("idle").waitFor(WAIT);
    await page.getByLabel("Status").selectOption("terminated");
    await page.getByText("No sessions match.").waitFor(WAIT);
  });

  it("answers a custom tool call from the page", async () => {
    await nav("Agents").click();
    await page.getByText("New agent").click();
    const f = page.getByRole("form", { name: "New agent" });
    await f.getByLabel("Name").fill("orders-agent");
    await f.getByLabel(/Built-in tools/).selectOption("none");
    await f.getByLabel(/Custom tools/).fill(JSON.stringify([{ type: "custom", name: "lookup_order", description: "Looks up an order", input_schema: { type: "object", properties: { order: { type: "string" } } } }]));
    await f.getByRole("button", { name: "Create agent" }).click();
    await page.getByRole("heading", { name: /orders-agent/ }).waitFor(WAIT);
    await nav("Sessions").click();
    await page.getByText("New session").click();
    const s = page.getByRole("form", { name: "New session" });
    await s.getByLabel("Agent").selectOption({ label: "orders-agent (v1)" });
    await s.getByLabel("Title (optional)").fill("Orders session");
    await s.getByRole("button", { name: "Start session" }).click();
    await page.getByRole("heading", { name: "Orders session" }).waitFor(WAIT);
    await page.getByText("● live").waitFor(WAIT);
    await page.getByLabel("Message", { exact: true }).fill("Where is order A-17?");
    await page.getByRole("button", { name: "Send", exact: true }).click();
    const card = page.locator("li[data-type='agent.custom_tool_use']");
    await card.getByText("custom tool · lookup_order").waitFor(WAIT);
    const answer = card.getByRole("form", { name: "Result of lookup_order" });
    await answer.getByLabel("Result").fill("shipped on Monday");
    await answer.getByRole("button", { name: "Send result" }).click();
    await card.getByText("Result sent").waitFor(WAIT);
    await page.getByRole("list", { name: "Timeline" }).getByText("Order A-17 has shipped.").waitFor(WAIT);
  });

  it("interrupts a running turn", async () => {
    await page.locator("#session-status").getByText("idle").waitFor(WAIT);
    await page.getByLabel("Message", { exact: true }).fill("Take your time.");
    await page.getByRole("button", { name: "Send", exact: true }).click();
    // The reply streams in as a preview, then stalls: the turn is running.
    await page.locator("li[data-type='preview']").getByText(/Working/).waitFor(WAIT);
    await page.locator("#session-status").getByText("running").waitFor(WAIT);
    await page.getByRole("button", { name: "Interrupt" }).click();
    await page.getByRole("list", { name: "Timeline" }).getByText("Interrupted").waitFor(WAIT);
    await page.locator("#session-status").getByText("idle").waitFor(WAIT);
  });

  it("edits a memory with its versions kept", async () => {
    await nav("Memory").click();
    await page.getByText("New memory store").click();
    await page.getByRole("form", { name: "New memory store" }).getByLabel("Name").fill("console-notes");
    await page.getByRole("button", { name: "Create memory store" }).click();
    await page.getByRole("heading", { name: "console-notes" }).waitFor(WAIT);
    await page.getByText("New memory", { exact: true }).click();
    const c = page.getByRole("form", { name: "New memory" });
    await c.getByLabel("Path").fill("/team/notes.md");
    await c.getByLabel("Content").fill("first draft");
    await c.getByRole("button", { name: "Create memory" }).click();
    const e = page.getByRole("form", { name: "Edit memory" });
    await e.getByLabel("Content").fill("second draft");
    await e.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Versions (2)" }).waitFor(WAIT);
    await page.getByRole("row").filter({ hasText: "created" }).getByRole("button", { name: "View" }).click();
    await page.locator("pre").filter({ hasText: "first draft" }).waitFor(WAIT);
    await page.getByRole("link", { name: "/", exact: true }).click();
    await page.getByRole("link", { name: /team\// }).waitFor(WAIT);
  });

  it("uploads a file and a skill folder", async () => {
    await nav("Files").click();
    await page.getByLabel("File", { exact: true }).setInputFiles({ name: "report.txt", mimeType: "text/plain", buffer: Buffer.from("quarterly numbers") });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.getByRole("row").filter({ hasText: "report.txt" }).waitFor(WAIT);
    const [dl] = await Promise.all([
      page.waitForEvent("download", WAIT),
      page.getByRole("row").filter({ hasText: "report.txt" }).getByRole("button", { name: "Download" }).click(),
    ]);
    assert.equal(dl.suggestedFilename(), "report.txt");

    // A skill is a folder with SKILL.md at its root, uploaded with its relative paths.
    const dir = mkdtempSync(join(tmpdir(), "oma-skill-"));
    mkdirSync(join(dir, "greeter", "scripts"), { recursive: true });
    writeFileSync(join(dir, "greeter", "SKILL.md"), "---\nname: greeter\ndescription: Greets people\n---\n# Greeter\n");
    writeFileSync(join(dir, "greeter", "scripts", "greet.sh"), "echo hello\n");
    await nav("Skills").click();
    await page.getByText("Upload a skill").click();
    await page.getByLabel(/Skill folder/).setInputFiles(join(dir, "greeter"));
    await page.getByRole("button", { name: "Upload skill" }).click();
    await page.getByRole("heading", { name: "greeter" }).waitFor(WAIT);
    await page.getByRole("row").filter({ hasText: "Greets people" }).waitFor(WAIT);
    rmSync(dir, { recursive: true, force: true });
  });

  it("diffs two versions of an agent", async () => {
    await nav("Agents").click();
    await page.getByRole("link", { name: "console-agent" }).click();
    const edit = page.getByRole("form", { name: "Edit agent" });
    await edit.getByLabel("System prompt").fill("You are tested from a browser, twice.");
    await edit.getByRole("button", { name: "Save as a new version" }).click();
    await page.getByRole("heading", { name: /v2/ }).waitFor(WAIT);
    const diff = page.getByLabel("Differences between versions");
    await diff.locator(".add").filter({ hasText: "twice" }).waitFor(WAIT);
    await diff.locator(".del").filter({ hasText: "You are tested from a browser." }).waitFor(WAIT);
  });

  it("keeps credential secrets write-only", async () => {
    await nav("Vaults").click();
    await page.getByText("New vault").click();
    await page.getByRole("form", { name: "New vault" }).getByLabel("Name").fill("console-vault");
    await page.getByRole("button", { name: "Create vault" }).click();
    await page.getByRole("heading", { name: "console-vault" }).waitFor(WAIT);
    const f = page.getByRole("form", { name: "New credential" });
    await f.getByLabel("Name").fill("mcp-token");
    await f.getByLabel("MCP server URL").fill("https://mcp.example.com/sse");
    await f.getByLabel("Token").fill("secret-token-never-shown");
    await f.getByRole("button", { name: "Add credential" }).click();
    await page.getByRole("row").filter({ hasText: "mcp-token" }).waitFor(WAIT);
    assert.equal(await page.getByText("secret-token-never-shown").count(), 0);
    assert.ok(!(await page.content()).includes("secret-token-never-shown"));
  });

  it("shows operational events as charts and tails the live log", async () => {
    await nav("Operations").click();
    await page.getByRole("heading", { name: "Operations" }).waitFor(WAIT);
    // The chart's accessible name carries its data: the bash call of the turn above is there.
    await page.locator("svg.chart[aria-label^='Events by kind:'][aria-label*='tool_call 1']").waitFor(WAIT);
    await page.locator("#tool-errors").getByText("0", { exact: true }).waitFor(WAIT);
    await nav("Logs").click();
    await page.getByText("● live").waitFor(WAIT);
    // A session whose agent has the built-in tools starts its box at create, and the sandbox
    // logs it: create one and watch the
    // record arrive on the open tail.
    await page.evaluate(async (key) => {
      const h = { "x-api-key": key, "anthropic-beta": "managed-agents-2026-04-01", "content-type": "application/json" };
      const agents = await (await fetch("/v1/agents", { headers: h })).json();
      const envs = await (await fetch("/v1/environments", { headers: h })).json();
      const agent = agents.data.find((a) => a.name === "console-agent");
      const body = JSON.stringify({ agent: agent.id, environment_id: envs.data[0].id });
      const r = await fetch("/v1/sessions", { method: "POST", headers: h, body });
      if (!r.ok) throw new Error(`session create: ${r.status}`);
    }, KEY);
    await page.getByRole("list", { name: "Log records" }).locator("li").filter({ hasText: "started an isolated sandbox" }).first().waitFor(WAIT);
  });

  it("is scoped to the signed-in key's tenant", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${BASE}/console/sign-in`, WAIT);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.getByLabel("API key", { exact: true }).fill(KEY_2);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${BASE}/console/sessions`, WAIT);
    await page.getByText("No sessions match.").waitFor(WAIT);
    assert.equal(await nav("Operations").count(), 0, "no admin pages without the admin key");
    await nav("Agents").click();
    await page.getByText("No agents yet").waitFor(WAIT);
    // Another tenant's session by its id is a 404 here, as in the API.
    await page.goto(`${BASE}${firstSessionPath}`);
    await page.getByRole("alert").filter({ hasText: "404" }).waitFor(WAIT);
  });

  it("never put a key in a URL and raised no page errors", () => {
    // The cross-tenant 404 above is a failed load the browser reports; nothing else may be.
    const unexpected = pageErrors.filter((e) => !/status of 404/.test(e));
    pageErrors.length = 0;
    pageErrors.push(...unexpected);
    for (const url of requests) {
      assert.ok(!url.includes(KEY) && !url.includes(KEY_2) && !url.includes(ADMIN_KEY), `a key in ${url}`);
    }
    assert.deepEqual(pageErrors, []);
  });
});
