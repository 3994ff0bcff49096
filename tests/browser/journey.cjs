// The quiz app in real Chromium (Debian's, driven by playwright-core), as
// tests/browser/main.rs runs it against a live server:
//
//   sign in -> open a quiz -> answer -> submit (a fast double click) -> see
//   the score -> see it on the dashboard -> sign out -> signed-out pages ask
//   to sign in again
//
// once with JavaScript and once without; the same form resubmitted over
// HTTP; a teacher's cohort dashboard and a student's 403 there; the pages'
// error states. Every page shown is checked with axe-core (no serious or
// critical violation) and its served HTML, with the stylesheet, by the Nu
// Html Checker (no error). Screenshots, the pages' HTML and summary.json go
// to QB_ARTIFACTS; the Rust test counts the attempts in the database.
//
// Environment: QB_BASE_URL, QB_ARTIFACTS, QB_STATIC_DIR (static/ to check
// the stylesheet), QB_EXTRA_HTML (a folder of pages rendered without a
// server, e.g. the 500 page), QB_CHROMIUM (default /usr/bin/chromium),
// NODE_PATH (where playwright-core, axe-core and vnu-jar are installed).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { chromium } = require("playwright-core");

const BASE = process.env.QB_BASE_URL;
const OUT = process.env.QB_ARTIFACTS;
const PASSWORD = "quizbench";
const AXE = require.resolve("axe-core/axe.min.js");
const VNU = path.join(path.dirname(require.resolve("vnu-jar")), "build/dist/vnu.jar");

const htmlDir = path.join(OUT, "html");
const shotDir = path.join(OUT, "screenshots");
fs.mkdirSync(htmlDir, { recursive: true });
fs.mkdirSync(shotDir, { recursive: true });

const summary = { pages: [], axe: [], journeys: {}, resubmit: null, vnu: null };
let shots = 0;

/// A browser tab that keeps the last page it was served.
async function tab(browser, javaScriptEnabled) {
  const context = await browser.newContext({
    javaScriptEnabled,
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const state = { page, context, js: javaScriptEnabled, last: null, quizPosts: 0 };
  page.on("response", (res) => {
    if (res.request().isNavigationRequest() && res.request().frame() === page.mainFrame()) {
      state.last = res;
    }
  });
  page.on("request", (req) => {
    if (req.method() === "POST" && /\/quizzes\/\d+$/.test(req.url())) state.quizPosts += 1;
  });
  return state;
}

/// Records the page on screen: its served HTML (for the checker), a
/// screenshot, and (with JavaScript) axe-core's violations.
async function record(t, name, expectedStatus = 200) {
  const { page } = t;
  await page.waitForLoadState("load");
  assert.ok(t.last, `${name}: no document was served`);
  assert.equal(t.last.status(), expectedStatus, `${name}: status of ${page.url()}`);
  const file = `${name}${t.js ? "" : "-nojs"}`;
  fs.writeFileSync(path.join(htmlDir, `${file}.html`), await t.last.text());
  shots += 1;
  const shot = path.join(shotDir, `${String(shots).padStart(2, "0")}-${file}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  summary.pages.push({ name: file, url: page.url(), status: t.last.status() });
  if (t.js) {
    await page.addScriptTag({ path: AXE });
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    for (const v of result.violations) {
      summary.axe.push({ page: file, id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help });
    }
  }
}

async function heading(page) {
  return (await page.locator("h1").first().textContent()).trim();
}

/// Goes to `url` by clicking `selector` and waits for it.
async function follow(page, selector, url) {
  await page.click(selector);
  await page.waitForURL(url);
}

async function signIn(t, username, password = PASSWORD) {
  const { page } = t;
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("#login button[type=submit]");
}

/// Ticks the first choice of every choice question, types `select` into
/// every text question.
async function answerAll(page) {
  for (const fieldset of await page.locator("form.quiz fieldset").all()) {
    await fieldset.locator("input").first().check();
  }
  for (const input of await page.locator('form.quiz input[type="text"]').all()) {
    await input.fill("select");
  }
}

/// One student's journey; `quizIndex` picks the quiz from the list.
async function journey(browser, { js, username, quizIndex }) {
  const t = await tab(browser, js);
  const { page } = t;
  await page.goto(`${BASE}/`);
  assert.equal(await heading(page), "Sign in");
  await record(t, "sign-in");

  await signIn(t, username, "not the password");
  await page.waitForURL(`${BASE}/`);
  assert.match(await page.locator("#form-error").textContent(), /Wrong username or password/);
  await record(t, "sign-in-refused", 401);

  await signIn(t, username);
  await page.waitForURL(`${BASE}/dashboard`);
  assert.match(await page.locator("header").textContent(), new RegExp(`Signed in as ${username}`));
  assert.equal(await page.locator("form#login").count(), 0, "no sign-in form once signed in");
  await page.goto(`${BASE}/`);
  assert.equal(page.url(), `${BASE}/dashboard`, "/ leads a signed-in visitor to the dashboard");

  await follow(page, "nav >> text=Quizzes", `${BASE}/quizzes`);
  await record(t, "quizzes");
  const link = page.locator(".quiz-list a").nth(quizIndex);
  const title = (await link.textContent()).trim();
  await link.click();
  await page.waitForURL(/\/quizzes\/\d+$/);
  const quizId = Number(page.url().split("/").pop());
  assert.equal(await heading(page), title);
  await record(t, "quiz");

  // Nothing answered: the form again, with what went wrong.
  await page.click("form.quiz button[type=submit]");
  await page.waitForSelector("#form-error");
  await record(t, "quiz-refused", 422);

  await answerAll(page);
  const postsBefore = t.quizPosts;
  await page.dblclick("form.quiz button[type=submit]");
  await page.waitForURL(/\/attempts\/\d+$/);
  const attemptId = Number(page.url().split("/").pop());
  const score = (await page.locator(".score strong").textContent()).trim();
  assert.match(score, /^\d+ \/ \d+$/);
  assert.equal(await page.locator(".outcome").count(), await page.locator("ol.questions > li").count());
  await record(t, "result");

  await follow(page, "nav >> text=Dashboard", `${BASE}/dashboard`);
  const row = page.locator("tbody tr", { hasText: title });
  assert.equal(await row.count(), 1, `the dashboard has a row for ${title}`);
  await record(t, "dashboard");
  await follow(page, "nav >> text=My attempts", `${BASE}/attempts`);
  assert.equal(await page.locator(`a[href="/attempts/${attemptId}"]`).count(), 1);
  await record(t, "attempts");

  await follow(page, "text=Sign out", `${BASE}/`);
  assert.equal(await heading(page), "Sign in");
  for (const [asked, landed] of [
    ["/dashboard", "/"],
    ["/attempts", "/?next=%2Fattempts"],
    [`/quizzes/${quizId}`, `/?next=%2Fquizzes%2F${quizId}`],
  ]) {
    await page.goto(`${BASE}${asked}`);
    assert.equal(page.url(), `${BASE}${landed}`, `signed out, ${asked} asks to sign in`);
    assert.equal(await heading(page), "Sign in");
  }
  await record(t, "signed-out");
  summary.journeys[js ? "js" : "nojs"] = {
    username, quizId, attemptId, score, quizPosts: t.quizPosts - postsBefore,
  };
  await t.context.close();
}

/// The keyboard alone: the skip link first, then the form in order, and
/// Enter submits.
async function keyboard(browser, username) {
  const t = await tab(browser, true);
  const { page } = t;
  await page.goto(`${BASE}/`);
  const order = [];
  for (let i = 0; i < 8; i += 1) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => {
      const e = document.activeElement;
      return e.id || e.getAttribute("href") || e.textContent.trim();
    }));
  }
  assert.equal(order[0], "#main", `the skip link comes first: ${order}`);
  const [u, p] = [order.indexOf("username"), order.indexOf("password")];
  assert.ok(u > 0 && p === u + 1 && order[p + 1] === "Sign in", `focus order: ${order}`);
  await page.focus("#username");
  await page.keyboard.type(username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${BASE}/dashboard`);
  summary.focusOrder = order;
  return t;
}

/// The same quiz form sent four times over HTTP (twice in a row, twice at
/// once), as a reload or a resubmitted POST sends it: one attempt.
async function resubmit(t) {
  const { page, context } = t;
  await page.goto(`${BASE}/quizzes/1`);
  await answerAll(page);
  const form = {};
  for (const input of await page.locator("form.quiz input").all()) {
    const type = await input.getAttribute("type");
    if ((type === "radio" || type === "checkbox") && !(await input.isChecked())) continue;
    form[await input.getAttribute("name")] = await input.inputValue();
  }
  const post = () => context.request.post(`${BASE}/quizzes/1`, {
    form, maxRedirects: 0, headers: { Origin: BASE },
  });
  const answers = [await post(), await post(), ...(await Promise.all([post(), post()]))];
  const locations = answers.map((r) => `${r.status()} ${r.headers().location}`);
  assert.equal(new Set(locations).size, 1, `every submit leads to the same attempt: ${locations}`);
  assert.match(locations[0], /^303 \/attempts\/\d+$/);
  // From another site, the same form is refused.
  const forged = await context.request.post(`${BASE}/quizzes/1`, {
    form, maxRedirects: 0, headers: { Origin: "http://evil.example" },
  });
  assert.equal(forged.status(), 403);
  summary.resubmit = { posts: answers.length, location: answers[0].headers().location };
}

async function teacherAndErrors(browser, teacher, student) {
  const t = await tab(browser, true);
  const { page } = t;
  await page.goto(`${BASE}/`);
  await signIn(t, teacher);
  await page.waitForURL(`${BASE}/dashboard`);
  await follow(page, "nav >> text=Cohort", `${BASE}/cohort`);
  const students = await page.locator("table.cohort tbody tr").count();
  assert.ok(students > 0, "the cohort has students");
  await record(t, "cohort");
  summary.cohort = { students, bytes: (await t.last.body()).length };
  await t.context.close();

  const s = await keyboard(browser, student);
  await resubmit(s);
  await s.page.goto(`${BASE}/cohort`);
  assert.equal(await heading(s.page), "You cannot open this page");
  await record(s, "forbidden", 403);
  await s.page.goto(`${BASE}/no/such/page`);
  assert.equal(await heading(s.page), "Page not found");
  await record(s, "not-found", 404);
  await s.context.close();

  const r = await tab(browser, true);
  await r.page.goto(`${BASE}/register`);
  await record(r, "register");
  await r.page.fill("#username", teacher);
  await r.page.fill("#password", "long enough password");
  await r.page.click("#register button[type=submit]");
  await r.page.waitForSelector("#form-error");
  await record(r, "register-refused", 409);
  await r.page.fill("#username", `new${Date.now() % 1e9}`);
  await r.page.fill("#password", "long enough password");
  await r.page.click("#register button[type=submit]");
  await r.page.waitForURL(`${BASE}/dashboard`);
  await record(r, "new-account-dashboard");
  await r.context.close();
}

/// The Nu Html Checker over every page kept, and the stylesheet.
function validate() {
  const files = fs.readdirSync(htmlDir).map((f) => path.join(htmlDir, f));
  const extra = process.env.QB_EXTRA_HTML;
  if (extra) files.push(...fs.readdirSync(extra).map((f) => path.join(extra, f)));
  const css = path.join(process.env.QB_STATIC_DIR, "style.css");
  const out = execFileSync("java", [
    "-jar", VNU, "--format", "json", "--stdout", "--exit-zero-always", "--also-check-css",
    ...files, css,
  ], { encoding: "utf8", maxBuffer: 64 << 20 });
  const messages = JSON.parse(out).messages;
  const errors = messages.filter((m) => m.type === "error" || m.type === "non-document-error");
  const warnings = messages.filter((m) => m.subType === "warning");
  summary.vnu = { documents: files.length + 1, errors, warnings };
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.QB_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    summary.browser = browser.version();
    const [js, nojs, student, teacher] = process.env.QB_USERS.split(",");
    await journey(browser, { js: true, username: js, quizIndex: 0 });
    await journey(browser, { js: false, username: nojs, quizIndex: 1 });
    await teacherAndErrors(browser, teacher, student);
  } finally {
    await browser.close();
  }
  validate();
  const serious = summary.axe.filter((v) => v.impact === "serious" || v.impact === "critical");
  fs.writeFileSync(path.join(OUT, "summary.json"), JSON.stringify(summary, null, 2));
  console.log(`pages: ${summary.pages.length}, axe violations: ${summary.axe.length} ` +
    `(${serious.length} serious or critical), Nu errors: ${summary.vnu.errors.length}, ` +
    `warnings: ${summary.vnu.warnings.length}`);
  for (const v of summary.axe) console.log(`axe ${v.impact} ${v.id} on ${v.page}: ${v.help}`);
  for (const m of [...summary.vnu.errors, ...summary.vnu.warnings]) {
    console.log(`Nu ${m.type}${m.subType ? `/${m.subType}` : ""} ${path.basename(m.url || "")}:${m.lastLine}: ${m.message}`);
  }
}

main().catch((e) => {
  fs.writeFileSync(path.join(OUT, "summary.json"), JSON.stringify(summary, null, 2));
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
