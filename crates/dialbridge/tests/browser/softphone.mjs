// Drives the toolbar's softphone in Debian's Chromium, headless, for dialbridge's CLI tests
// (crates/dialbridge/tests/cli/softphone.rs starts the server, the carrier and this script).
// Chromium's microphone is a WAV file of a tone the test wrote.
//
//   node softphone.mjs '{"server": "http://127.0.0.1:8080", "enterpriseId": "3000001", "cno": "2000",
//                        "password": "1234", "dial": "13800138000", "microphone": "/tmp/tone.wav",
//                        "tones": [440, 1300], "listenMs": 2000, "closeTab": false}'
//
// Prints one JSON line: the states shown, the tone powers heard from the carrier and sent by
// the microphone (Goertzel, at each of `tones`), and what happened at the end.

import { launchChromium } from "./chromium.mjs";

const config = JSON.parse(process.argv[2]);
const { browser, close } = await launchChromium([
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  `--use-file-for-fake-audio-capture=${config.microphone}`, "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
]);
const seen = { states: [], errors: [] };

try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => seen.errors.push(String(error)));
  seen.console = [];
  page.on("console", (message) => seen.console.push(message.text()));
  await page.goto(`${config.server}/toolbar`);
  await page.type("input[name=enterpriseId]", config.enterpriseId);
  await page.type("input[name=cno]", config.cno);
  await page.type("input[name=password]", config.password);
  await page.select("select[name=type]", "3");
  await page.type("input[name=bindTel]", config.cno);
  await page.select("select[name=lang]", "en");
  await page.click("button[type=submit]");
  await until(page, "idle");
  await page.evaluate(() => {
    window.shown = [];
    window.toolbar.on("softphoneConnected", () => { window.softphoneConnected = true; });
    setInterval(() => {
      const state = document.querySelector(".db-toolbar").dataset.state;
      if (window.shown[window.shown.length - 1] !== state) window.shown.push(state);
    }, 50);
  });
  await page.$eval(".db-number", (input, tel) => { input.value = tel; }, config.dial);
  await page.click(".db-dial");
  await until(page, "talking", 60);
  await page.waitForFunction(() => window.softphoneConnected === true, { timeout: 20000, polling: 100 });
  // What the page hears (the carrier) and what its microphone says (the capture file).
  const heard = await page.evaluate(listen, "remote", config.tones, config.listenMs);
  const spoken = await page.evaluate(listen, "microphone", config.tones, 1000);
  seen.heard = heard;
  seen.spoken = spoken;
  seen.states = await page.evaluate(() => window.shown);
  if (config.closeTab) {
    await page.close();
    seen.closed = Date.now();
  } else {
    await page.click(".db-hangup");
    await until(page, "wrapup", 30);
    seen.softphoneEnded = await page.evaluate(() => window.toolbar.softphone === null);
  }
} catch (error) {
  seen.errors.push(String(error && error.stack || error));
  for (const page of await browser.pages()) {
    seen.lastStates = await page.evaluate(() => window.shown).catch(() => null);
    seen.lastMessage = await page.$eval(".db-message", (m) => m.textContent).catch(() => null);
  }
} finally {
  await close();
}
console.log(JSON.stringify(seen));

async function until(page, state, seconds = 30) {
  await page.waitForFunction(
    (state) => document.querySelector(".db-toolbar") && document.querySelector(".db-toolbar").dataset.state === state,
    { timeout: seconds * 1000, polling: 100 },
    state,
  );
}

/// In the page: records `ms` of the softphone's `which` stream through WebAudio and returns, for
/// each frequency, its Goertzel power relative to the signal's (0..1: how much of it is that
/// tone), with the signal's RMS.
async function listen(which, tones, ms) {
  const stream = window.toolbar.softphone[which];
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const samples = [];
  const block = new Float32Array(analyser.fftSize);
  const started = performance.now();
  // Blocks read back to back (each 2048 samples, ~43 ms at 48 kHz): a stretch of real signal.
  while (performance.now() - started < ms) {
    await new Promise((resolve) => setTimeout(resolve, (analyser.fftSize / context.sampleRate) * 1000 * 0.9));
    analyser.getFloatTimeDomainData(block);
    samples.push(...block);
  }
  const rate = context.sampleRate;
  await context.close();
  let energy = 0;
  for (const s of samples) energy += s * s;
  const powers = {};
  for (const hz of tones) {
    // Goertzel over each block on its own (blocks may overlap or leave gaps between them).
    let total = 0;
    for (let start = 0; start + 2048 <= samples.length; start += 2048) {
      const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
      let s1 = 0, s2 = 0;
      for (let i = start; i < start + 2048; i++) {
        const s0 = samples[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
      }
      total += s1 * s1 + s2 * s2 - k * s1 * s2;
    }
    // A pure tone of the signal's energy E over N-sample blocks gives N·E/2.
    powers[hz] = energy > 0 ? total / ((2048 * energy) / 2) : 0;
  }
  return { rms: Math.sqrt(energy / Math.max(1, samples.length)), powers };
}
