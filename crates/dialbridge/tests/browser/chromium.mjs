// Debian's Chromium, headless, with a throwaway profile: what every browser script here starts.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

/// Starts Chromium with `extraArgs` besides the quiet defaults; `close()` stops it and removes
/// its profile.
export async function launchChromium(extraArgs = []) {
  const profile = mkdtempSync(join(tmpdir(), "dialbridge-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`,
      ...extraArgs,
    ],
  });
  const close = async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}
