// tools/check-links.mjs: a broken relative link or anchor is reported, a good one is not, and
// the repository's README.md and docs/ have none.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { anchorsOf, brokenLinks, documentationFiles, linksOf, slug } from './check-links.mjs';
import { ROOT } from './common.mjs';

test("headings become GitHub's anchors, repeats numbered", () => {
  assert.equal(slug('Status codes of POST /webhook'), 'status-codes-of-post-webhook');
  assert.equal(slug('Why a card is saved once, from either path'), 'why-a-card-is-saved-once-from-either-path');
  const anchors = anchorsOf('# A\n\n## Notes\n\n```sh\n# not a heading\n```\n\n## Notes\n\n### `POST /charges`\n');
  assert.deepEqual([...anchors].sort(), ['a', 'notes', 'notes-1', 'post-charges']);
});

test('a missing file, a missing anchor and an anchor of another page are reported; good links and code are not', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'links-'));
  mkdirSync(path.join(dir, 'docs'));
  writeFileSync(path.join(dir, 'docs', 'B.md'), '# B\n\n## Here\n');
  const page = path.join(dir, 'README.md');
  writeFileSync(page, [
    '# Top', '',
    '[ok](docs/B.md) [ok](docs/B.md#here) [ok](#top) [web](https://example.com/#x) `[code](nope.md)`',
    '[gone](docs/C.md)',
    '[no anchor](docs/B.md#there)',
    '[not here](#here)',
    '```', '[in a fence](missing.md)', '```',
  ].join('\n'));
  const problems = brokenLinks(page);
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0], /:4: docs\/C\.md: no such file/);
  assert.match(problems[1], /:5: docs\/B\.md#there: no heading/);
  assert.match(problems[2], /:6: #here: no heading/);
});

test("README.md and every page of docs/ link only to what exists", () => {
  const files = documentationFiles();
  assert.ok(files.length >= 10, `only ${files.length} documentation files`);
  assert.deepEqual(files.flatMap((f) => brokenLinks(f)), []);
});

test('README.md stays short (at most 250 lines) and its map links every page of docs/', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const lines = readme.replace(/\n$/, '').split('\n').length;
  assert.ok(lines <= 250, `README.md has ${lines} lines; move reference to a page of docs/`);
  const linked = new Set(linksOf(readme).map((l) => l.target.split('#')[0]));
  const pages = readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md'));
  assert.deepEqual(pages.filter((p) => !linked.has(`docs/${p}`)), [], 'pages of docs/ the README does not link');
});
