/**
 * Lifecycle: how long a model takes to start and how much resident memory it
 * adds, in modeld (`POST /v1/models/{id}/start`, timed at the client, RSS of
 * the server process) against node-llama-cpp loading the same model and
 * context directly; and the RSS left after stopping it.
 */
import { SHAPE_LABEL, ensureBenchModel, type BenchShape } from '../lib/models.ts';
import { llamaModelObject, startModeld, writeModelsDir } from '../lib/modeld-server.ts';
import { runInprocess } from '../lib/inprocess-runner.ts';
import { sleep } from '../lib/process.ts';
import { SectionRecorder } from '../lib/results.ts';
import { sectionArgs } from '../lib/section-cli.ts';

const args = sectionArgs('lifecycle');
const rec = new SectionRecorder('lifecycle', 'Lifecycle', args.quick);
const reps = args.quick ? 2 : 3;
const ctx = 512;
/** Settle time before reading RSS after a stop: native frees and the allocator trimming are not synchronous. */
const SETTLE_MS = 500;

rec.setup(`one sequence of ${ctx} tokens, ${args.threads} threads, mmap on (both), CPU only; ${reps} start/stop cycles in one process each`);
rec.setup('start time: modeld = POST /v1/models/{id}/start round trip until it answers running; direct = loadModel + createContext');
rec.setup(`RSS from /proc/<pid>/status (VmRSS) of the server / direct process; "after stop" read ${SETTLE_MS} ms after the stop returns`);

async function shapeRun(shape: BenchShape): Promise<void> {
  const model = await ensureBenchModel(shape);
  const group = SHAPE_LABEL[shape];
  const id = `bench-${shape}`;
  const dir = await writeModelsDir([{ id, object: llamaModelObject(model.path, { ctx_len: ctx, n_parallel: 1, threads: args.threads }) }]);
  const modeld = await startModeld({ modelsDir: dir, threads: args.threads, repoRoot: args.modeldRoot });
  try {
    const idle = modeld.rssMiB();
    if (idle !== undefined) rec.add({ id: `lifecycle.modeld.idle_rss_mib`, group: 'Server processes', label: 'modeld idle (no model loaded)', unit: 'MiB', better: 'lower', runs: [idle] });
    for (let r = 0; r < reps; r++) {
      const before = modeld.rssMiB() ?? NaN;
      const t0 = performance.now();
      await modeld.startModel(id, { n_parallel: 1, ctx_len: ctx });
      const startMs = performance.now() - t0;
      const loaded = modeld.rssMiB() ?? NaN;
      await modeld.stopModel(id);
      await sleep(SETTLE_MS);
      const after = modeld.rssMiB() ?? NaN;
      rec.add({ id: `lifecycle.${shape}.modeld.start_ms`, group, label: 'modeld start', unit: 'ms', better: 'lower', runs: [startMs] });
      rec.add({ id: `lifecycle.${shape}.modeld.rss_delta_mib`, group, label: 'modeld RSS added by the loaded model', unit: 'MiB', better: 'lower', runs: [loaded - before] });
      rec.add({ id: `lifecycle.${shape}.modeld.rss_after_stop_delta_mib`, group, label: 'modeld RSS left after stop (vs before start)', unit: 'MiB', better: 'lower', runs: [after - before] });
    }
  } catch (err) {
    rec.note(`modeld ${shape}: ${(err as Error).message.slice(0, 300)}`);
  } finally {
    await modeld.stopAndClean();
  }

  const direct = await runInprocess({ kind: 'lifecycle', model: model.path, threads: args.threads, ctx, reps });
  rec.fact('node-llama-cpp direct runtime', direct.runtime);
  let before = direct.baseRssMiB;
  for (const run of direct.runs) {
    rec.add({ id: `lifecycle.${shape}.direct.start_ms`, group, label: 'node-llama-cpp direct start', unit: 'ms', better: 'lower', runs: [run.startMs] });
    rec.add({ id: `lifecycle.${shape}.direct.rss_delta_mib`, group, label: 'node-llama-cpp direct RSS added', unit: 'MiB', better: 'lower', runs: [run.loadedRssMiB - before] });
    rec.add({ id: `lifecycle.${shape}.direct.rss_after_stop_delta_mib`, group, label: 'node-llama-cpp direct RSS left after dispose', unit: 'MiB', better: 'lower', runs: [run.afterStopRssMiB - before] });
    before = run.afterStopRssMiB;
  }
}

for (const shape of args.shapes) await shapeRun(shape);
await rec.write(args.out);
