'use strict';
/*
 * node corrupt.cjs MODE IN OUT: writes IN, a Chrome Trace Event file made
 * by weft-view (one event a line), to OUT with one fault, so that
 * perfetto.sh can see its checks fail on it:
 *   flow-off    the first flow end moved 5 ms later, off any slice
 *   comma       the comma after the first complete event dropped (not JSON)
 *   outlive     a complete event made to end halfway through a later one on
 *               its thread, which then starts inside it and outlives it
 *   negative    the first pool slice made to end before it begins
 */
const fs = require('fs');
const [mode, input, output] = process.argv.slice(2);
const text = fs.readFileSync(input, 'utf8');
const doc = JSON.parse(text);
const ev = doc.traceEvents;
const fail = (why) => { console.error(`corrupt.cjs ${mode}: ${why}`); process.exit(2); };
let out;
if (mode === 'comma') {
  const at = text.indexOf('\n{"ph":"X"');
  const next = at < 0 ? -1 : text.indexOf('},\n', at);
  if (next < 0) fail('no complete event followed by another event');
  out = text.slice(0, next + 1) + text.slice(next + 2);
} else {
  if (mode === 'flow-off') {
    const f = ev.find((e) => e.ph === 'f') || fail('no flow end');
    f.ts += 5000;
  } else if (mode === 'outlive') {
    const xs = ev.filter((e) => e.ph === 'X');
    let done = false;
    for (const a of xs) {
      const b = xs.find((b) => b !== a && b.pid === a.pid && b.tid === a.tid &&
                               b.ts >= a.ts + a.dur && b.dur >= 0.5);
      if (b) {
        a.dur = b.ts - a.ts + b.dur / 2;
        done = true;
        break;
      }
    }
    if (!done) fail('no two complete events one after the other on a thread');
  } else if (mode === 'negative') {
    const x = ev.find((e) => e.ph === 'X' && e.cat === 'pool') || fail('no pool slice');
    x.dur = -x.dur;
  } else {
    fail('unknown mode');
  }
  out = JSON.stringify(doc);
}
fs.writeFileSync(output, out);
