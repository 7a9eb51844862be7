// Every relative link in README.md and docs/*.md must resolve: the file (or folder) exists, and
// a `#anchor` names a heading of the target Markdown file as GitHub renders it. Links to other
// sites (http:, https:, mailto:) are not followed. Run by scripts/test.sh (and so by CI):
//   node tools/check-links.mjs [file.md …]     exit 1 and one line per broken link
// Fast and offline: it reads files only.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './common.mjs';

/** GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/<[^>]*>/g, '')
    .replace(/[^\p{L}\p{N}\p{M}\- _]/gu, '')
    .replace(/ /g, '-');
}

/** The lines of a Markdown text outside fenced code blocks, with their numbers. */
function proseLines(text) {
  const lines = [];
  let fence = null;
  text.split('\n').forEach((line, i) => {
    const m = line.match(/^\s*(```+|~~~+)/);
    if (m) {
      if (!fence) fence = m[1];
      else if (line.trim().startsWith(fence)) fence = null;
      return;
    }
    if (!fence) lines.push({ line: i + 1, text: line });
  });
  return lines;
}

/** The anchors a Markdown text defines: its headings (repeats get -1, -2, …), and `id`/`name` attributes. */
export function anchorsOf(text) {
  const anchors = new Set();
  const seen = new Map();
  for (const { text: line } of proseLines(text)) {
    const h = line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/);
    if (h) {
      const s = slug(h[1].replace(/`/g, ''));
      const n = seen.get(s) ?? 0;
      seen.set(s, n + 1);
      anchors.add(n === 0 ? s : `${s}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  }
  return anchors;
}

/** The links of a Markdown text outside code: `[label](target)`, with their line numbers. */
export function linksOf(text) {
  const links = [];
  for (const { line, text: prose } of proseLines(text)) {
    const withoutCode = prose.replace(/`[^`]*`/g, (code) => ' '.repeat(code.length));
    for (const m of withoutCode.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: m[1] });
  }
  return links;
}

/** The broken links of one Markdown file, as "file:line: target: why". */
export function brokenLinks(file, readText = (f) => readFileSync(f, 'utf8'), exists = existsSync) {
  const problems = [];
  const text = readText(file);
  const rel = path.relative(ROOT, file);
  for (const { line, target } of linksOf(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // another site, or mailto:
    const [pathPart, anchor] = target.split('#', 2);
    const resolved = pathPart ? path.resolve(path.dirname(file), decodeURIComponent(pathPart)) : file;
    if (pathPart && !exists(resolved)) {
      problems.push(`${rel}:${line}: ${target}: no such file`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!resolved.endsWith('.md')) {
      problems.push(`${rel}:${line}: ${target}: an anchor into a file that is not Markdown`);
      continue;
    }
    if (!anchorsOf(readText(resolved)).has(decodeURIComponent(anchor))) {
      problems.push(`${rel}:${line}: ${target}: no heading with that anchor in ${path.relative(ROOT, resolved)}`);
    }
  }
  return problems;
}

/** README.md and every Markdown page under docs/. */
export function documentationFiles(root = ROOT) {
  const docs = path.join(root, 'docs');
  const pages = existsSync(docs) && statSync(docs).isDirectory()
    ? readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(docs, f))
    : [];
  return [path.join(root, 'README.md'), ...pages];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : documentationFiles();
  const problems = files.flatMap((f) => brokenLinks(f));
  const count = files.reduce((n, f) => n + linksOf(readFileSync(f, 'utf8')).length, 0);
  if (problems.length) {
    console.error(problems.join('\n'));
    console.error(`${problems.length} broken relative link(s) in ${files.length} file(s)`);
    process.exit(1);
  }
  console.log(`${count} links in ${files.length} files: every relative link and anchor resolves`);
}
