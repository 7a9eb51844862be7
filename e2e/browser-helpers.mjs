// What the browser tests share: Debian's chromium (scripts/bootstrap.sh installs it) driven by
// playwright-core, which downloads no browser; a desktop and a 375 px phone viewport; a page
// that records console errors, page errors and failed loads; and what every page must be.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 375, height: 667 } };

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // launch() gives the browser a fresh user-data-dir of its own (removed on close).
  });
}

/** A fresh page that records console errors, page errors and failed loads. */
export async function open(browser, viewport) {
  // A phone as Chrome emulates one (isMobile): it honours a page's viewport meta tag, and
  // without one lays the page out 980 px wide, as a phone does.
  const phone = viewport === 'phone' ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {};
  const context = await browser.newContext({ viewport: VIEWPORTS[viewport], ...phone });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    // Chrome reports a document's own 4xx status as a failed load; an error page has one on purpose.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|401|404|405|409)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && r.request().resourceType() !== 'document') problems.push(`${r.status()}: ${r.url()}`);
  });
  return { page, problems, context, close: () => context.close() };
}

/** What every page of `workerUrl` must be: HTML with the CSP, no JSON, nothing wider than the viewport. */
export async function assertUsable(workerUrl, { page, problems }, response, { status, title, text }) {
  assert.equal(response.status(), status, `${page.url()}: ${await page.content()}`);
  const headers = response.headers();
  assert.match(headers['content-type'], /text\/html/, page.url());
  if (page.url().startsWith(workerUrl)) assert.match(headers['content-security-policy'], /default-src 'none'/);
  const body = (await page.textContent('body')).trim();
  assert.ok(!body.startsWith('{') && !body.includes('"error"'), `raw JSON at ${page.url()}: ${body}`);
  if (title) assert.equal((await page.textContent('h1')).trim(), title);
  for (const t of [text].flat().filter(Boolean)) assert.ok(body.includes(t), `${page.url()} shows "${t}": ${body}`);
  const { scroll, client, layout } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth, layout: window.innerWidth,
  }));
  const screen = page.viewportSize().width;
  assert.equal(layout, screen, `${page.url()} is laid out ${layout} px wide on a ${screen} px screen (no viewport tag?)`);
  assert.ok(scroll <= client, `horizontal overflow at ${page.url()}: ${scroll} > ${client}`);
  await page.waitForLoadState('load');
  assert.deepEqual(problems, [], page.url());
}
