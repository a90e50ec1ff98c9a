// Drives the agent toolbar in Debian's Chromium, headless, for dialbridge's CLI tests
// (crates/dialbridge/tests/cli/toolbar.rs starts the server, SIPp and this script).
//
//   node toolbar.mjs '{"server": "http://127.0.0.1:8080", "enterpriseId": "3000001", "cno": "2000",
//                      "password": "1234", "type": 2, "bindTel": "801", "dial": "13800138000",
//                      "screenshots": "/tmp/shots", "admin": {"userName": "admin", "password": "…"}}'
//   (or "page": a CRM's page that embeds the widget, instead of logging in on /toolbar)
//
// Prints one JSON line of what it saw: the states in the order shown, each state's badge colour
// (the mean of its screenshot's pixels), whether dial was enabled in each, the replies of a
// double click, and what the kickout did to each page.

import { createHash } from "node:crypto";
import { join } from "node:path";
import { launchChromium } from "./chromium.mjs";

const config = JSON.parse(process.argv[2]);
const { browser, close } = await launchChromium(config.ignoreCertificateErrors ? ["--ignore-certificate-errors"] : []);
const seen = { states: [], polled: [], colours: {}, dialEnabled: {}, errors: [] };
// The states shown before a reload (the page's own record starts again with it).
let shownBefore = [];

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 800, height: 600 });
  page.on("pageerror", (error) => seen.errors.push(String(error)));
  // A CRM's own page embeds the widget (and logs the agent in itself), or the standalone page.
  if (config.page) await page.goto(config.page);
  else await logIn(page);
  await observe(page);
  await watch(page, "idle");
  if (config.breakLine) await breakLine(page);
  if (config.pauseReason) await pauseAndBack(page);
  if (config.dial) await call(page);
  const shown = shownBefore.concat(await page.evaluate(() => window.shownStates));
  seen.states = shown.map((s) => s.state);
  for (const { state, dialEnabled } of shown) {
    seen.dialEnabled[state] = dialEnabled;
  }
  if (config.kickout) await kickout(page);
} catch (error) {
  seen.errors.push(String(error && error.stack || error));
} finally {
  await close();
}
console.log(JSON.stringify(seen));

async function logIn(page) {
  await page.goto(`${config.server}/toolbar`);
  await page.type("input[name=enterpriseId]", config.enterpriseId);
  await page.type("input[name=cno]", config.cno);
  await page.type("input[name=password]", config.password);
  await page.select("select[name=type]", String(config.type));
  await page.type("input[name=bindTel]", config.bindTel);
  await page.select("select[name=lang]", config.lang || "zh-CN");
  await page.click("button[type=submit]");
}

/// Records every state the toolbar shows, as it draws it (however briefly), with whether dial
/// was enabled then: a MutationObserver in the page, not polling.
async function observe(page) {
  await page.evaluate(() => {
    window.shownStates = [];
    const record = () => {
      const toolbar = document.querySelector(".db-toolbar");
      if (!toolbar) return;
      const state = toolbar.dataset.state;
      const last = window.shownStates[window.shownStates.length - 1];
      if (!last || last.state !== state) {
        window.shownStates.push({ state, dialEnabled: !toolbar.querySelector(".db-dial").disabled });
      }
    };
    new MutationObserver(record).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"],
    });
    record();
  });
}

/// The toolbar's state now.
function state(page) {
  return page.$eval(".db-toolbar", (toolbar) => toolbar.dataset.state).catch(() => null);
}

/// Waits until the toolbar shows `wanted` (recording every state it passes through, with a
/// screenshot of each), within `seconds`.
async function watch(page, wanted, seconds = 30) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const now = await state(page);
    if (now && now !== seen.polled[seen.polled.length - 1]) await record(page, now);
    if (now === wanted) return;
    if (Date.now() > until) throw new Error(`the toolbar never showed ${wanted}: ${seen.polled.join(" → ")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function record(page, now) {
  seen.polled.push(now);
  if (!config.screenshots || seen.colours[now]) return;
  await page.screenshot({ path: join(config.screenshots, `${seen.polled.length}-${now}.png`) });
  const badge = await page.$(".db-badge");
  const png = await badge.screenshot({ encoding: "base64" });
  // The mean colour of the badge as drawn (its label's pixels included).
  const colour = await page.evaluate(async (data) => {
    const image = new Image();
    image.src = `data:image/png;base64,${data}`;
    await image.decode();
    const canvas = new OffscreenCanvas(image.width, image.height);
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, image.width, image.height).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < pixels.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += pixels[i + c];
    const count = pixels.length / 4;
    return sum.map((total) => Math.round(total / count));
  }, png);
  // Kept only if the state did not move on while it was taken (it may show up again).
  if ((await state(page)) === now) seen.colours[now] = colour;
}

async function call(page) {
  await page.$eval(".db-number", (input, tel) => { input.value = tel; }, config.dial);
  // A double click: the second must not place a second call.
  await page.$eval(".db-dial", (dial) => { dial.click(); dial.click(); });
  await watch(page, "talking", 60);
  if (config.keypad) {
    // A key of the keypad during the call: answered without an error.
    await page.click(`.db-keypad button[data-digit="${config.keypad}"]`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    seen.keypadMessage = await page.$eval(".db-toolbar .db-message", (m) => m.textContent);
  }
  if (config.pauseRecordingMs) {
    // The recording paused for a while and resumed: the button says which it will do next.
    const label = () => page.$eval(".db-recording", (b) => [b.textContent, b.getAttribute("aria-pressed")]);
    seen.recordingButton = [await label()];
    await page.click(".db-recording");
    await page.waitForSelector(".db-recording[aria-pressed=true]", { timeout: 10000 });
    seen.recordingButton.push(await label());
    await new Promise((resolve) => setTimeout(resolve, config.pauseRecordingMs));
    await page.click(".db-recording");
    await page.waitForSelector(".db-recording[aria-pressed=false]", { timeout: 10000 });
    seen.recordingButton.push(await label());
  }
  if (config.hold) {
    await page.click(".db-hold");
    await watch(page, "onHold");
  }
  if (config.pauseAfterCall) {
    // Asked during the call: taken when it (and its wrap-up) ends.
    await page.evaluate((reason) => window.toolbar.pause({ pauseDescription: reason }), config.pauseAfterCall);
  }
  if (config.reloadDuringCall) {
    // A page loaded during the call shows it as it is, never "calling".
    shownBefore = shownBefore.concat(await page.evaluate(() => window.shownStates));
    await logIn(page);
    await observe(page);
    await watch(page, config.hold ? "onHold" : "talking");
    seen.afterReload = await page.evaluate(() => window.shownStates.map((s) => s.state));
  }
  if (config.hold) {
    await page.click(".db-unhold");
    await watch(page, "talking");
  }
  if (config.talkMs) await new Promise((resolve) => setTimeout(resolve, config.talkMs));
  await page.click(".db-hangup");
  await watch(page, "wrapup");
  if (config.prolong) {
    // More wrap-up time (through the widget's API: the button asks for 30 s).
    const before = await page.$eval(".db-since", (since) => parseInt(since.textContent.replace(/\D+/g, " ").trim(), 10));
    await page.evaluate((seconds) => window.toolbar.prolongWrapup({ seconds }), config.prolong);
    await page.waitForFunction((before) => parseInt(document.querySelector(".db-since").textContent.replace(/\D+/g, " ").trim(), 10) > before, { timeout: 5000, polling: 100 }, before);
    seen.prolonged = true;
  }
  await watch(page, config.pauseAfterCall ? "paused" : "idle", 60);
  await page.waitForFunction(() => document.querySelectorAll(".db-calls li").length > 0, { timeout: 10000, polling: 100 });
  seen.lastCalls = await page.$$eval(".db-calls li", (items) => items.map((item) => item.textContent));
}

async function pauseAndBack(page) {
  await page.waitForFunction((reason) => [...document.querySelectorAll(".db-reason option")].some((o) => o.value === reason), { timeout: 10000, polling: 100 }, config.pauseReason);
  await page.select(".db-reason", config.pauseReason);
  await page.click(".db-pause");
  await watch(page, "paused");
  seen.pausedWith = await page.evaluate(() => window.toolbar.status.pauseDescription);
  await page.click(".db-unpause");
  await watch(page, "idle");
}

async function kickout(first) {
  // An admin observer on the same enterprise, in a page of its own.
  const observer = await browser.newPage();
  await observer.goto(`${config.server}/toolbar/toolbar.css`);
  const md5 = (text) => createHash("md5").update(text).digest("hex");
  const pwd = md5(md5(config.admin.password) + "42");
  const observed = observer.evaluate(async ({ server, enterpriseId, admin }, pwd) => {
    const session = await fetch(`${server}/api/v1/session`, {
      method: "POST",
      body: new URLSearchParams({ enterpriseId, userName: admin.userName, seed: "42", pwd }),
    });
    const { token } = await session.json();
    const socket = new WebSocket(`${server.replace(/^http/, "ws")}/api/v1/events?token=${token}`);
    window.observerClosed = null;
    socket.onclose = (close) => { window.observerClosed = close.code; };
    await new Promise((resolve) => { socket.onopen = resolve; });
    return true;
  }, config, pwd);
  await observed;
  const second = await browser.newPage();
  await logIn(second);
  await second.waitForSelector(".db-toolbar", { timeout: 20000 });
  // Looked at in front, polled by interval: a page in the background gets no animation frames
  // (puppeteer's default polling).
  await first.bringToFront();
  await first.waitForFunction(
    () => document.querySelector(".db-toolbar .db-message").textContent !== "" && document.querySelector(".db-toolbar").dataset.state === "offline",
    { timeout: 20000, polling: 100 },
  );
  seen.kickedMessage = await first.$eval(".db-toolbar .db-message", (m) => m.textContent);
  seen.secondState = await state(second);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  seen.observerClosed = await observer.evaluate(() => window.observerClosed);
}

/// The connection drops: the toolbar says so (`breakLine`), reconnects with `since`, takes its
/// session back (the call placed next needs it) and clears the message.
async function breakLine(page) {
  await page.evaluate(() => {
    window.breakLines = 0;
    window.toolbar.on("resumed", () => { window.resumed = true; });
    window.toolbar.on("breakLine", () => {
      window.breakLines += 1;
      // Read as it is drawn: the reconnect clears it soon after.
      setTimeout(() => { window.lostMessage = document.querySelector(".db-toolbar .db-message").textContent; }, 0);
    });
    window.toolbar.socket.close();
  });
  await page.waitForFunction(() => window.breakLines > 0, { timeout: 10000, polling: 100 });
  await page.waitForFunction(() => window.lostMessage !== undefined, { timeout: 10000, polling: 100 });
  seen.lostMessage = await page.evaluate(() => window.lostMessage);
  await page.waitForFunction(
    () => document.querySelector(".db-toolbar .db-message").textContent === "" && window.toolbar.socket.readyState === WebSocket.OPEN,
    { timeout: 20000, polling: 100 },
  );
  await page.waitForFunction(() => window.resumed === true, { timeout: 20000, polling: 100 });
  await watch(page, "idle");
  seen.reconnected = true;
}
