import t from 'tap';
import { chatTemplateProblem } from '../../src/engines/llamacpp/chat-template-check.ts';
import { buildTestApp, modelsFolder } from '../helpers/app.ts';
import { CHATML_TEMPLATE, LLAMA_TEST_CONFIG, writeFixtureModel } from '../helpers/llama-fixtures.ts';

// node-llama-cpp renders a GGUF's Jinja chat template synchronously on the event loop, dozens of
// times at load: before the trial render, the first template froze this whole server for minutes
// and the second crashed it out of memory (a 10^8-item range), both from one model file.
const RUNAWAY = '{% set ns = namespace(x=0) %}{% for i in range(100000) %}{% for j in range(3000) %}{% set ns.x = ns.x + 1 %}{% endfor %}{% endfor %}' + CHATML_TEMPLATE;
const HUGE_RANGE = '{% for i in range(100000000) %}{% endfor %}' + CHATML_TEMPLATE;

t.test('the trial render: a runaway loop and a runaway heap are findings; a broken template is not', async (t) => {
  t.equal(await chatTemplateProblem(CHATML_TEMPLATE), undefined, 'ChatML renders');
  t.equal(await chatTemplateProblem('{% for m in messages %}{{ m.content }'), undefined, 'a parse error is left to node-llama-cpp');
  t.equal(await chatTemplateProblem('{{ raise_exception("no system role") }}'), undefined, 'a template that raises is left to node-llama-cpp');
  t.equal(await chatTemplateProblem('{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}'), undefined, 'endless recursion ends in a caught stack overflow');
  const started = Date.now();
  t.match(await chatTemplateProblem(RUNAWAY, { limitMs: 500 }), /did not finish rendering a four-message chat within 0\.5 s/);
  t.ok(Date.now() - started < 3000, 'cut at the limit');
  t.match(await chatTemplateProblem(HUGE_RANGE), /took more than 256 MiB of memory/);
});

const dir = await modelsFolder(t);
await writeFixtureModel(dir, 'runaway', { gguf: { chatTemplate: RUNAWAY }, parameters: { ctx_len: 128, n_parallel: 1 } });
await writeFixtureModel(dir, 'hugerange', { gguf: { chatTemplate: HUGE_RANGE }, parameters: { ctx_len: 128, n_parallel: 1 } });
await writeFixtureModel(dir, 'chatml', { gguf: { chatTemplate: CHATML_TEMPLATE }, parameters: { ctx_len: 128, n_parallel: 1 } });
const { app } = await buildTestApp(t, { modelsDir: dir, config: LLAMA_TEST_CONFIG });

t.test('a model whose template runs away loads without it and answers on the real engine; the server goes on', async (t) => {
  for (const [model, said] of [['runaway', /did not finish rendering a four-message chat within 3 s/], ['hugerange', /took more than 256 MiB/]] as const) {
    let lag = 0;
    let last = Date.now();
    const watch = setInterval(() => { lag = Math.max(lag, Date.now() - last); last = Date.now(); }, 20);
    const start = await app.inject({ method: 'POST', url: `/v1/models/${model}/start` });
    clearInterval(watch);
    t.equal(start.statusCode, 200, `${model}: ${start.body.slice(0, 300)}`);
    t.ok(lag < 1000, `${model}: the event loop kept turning during the load (longest gap ${lag} ms)`);
    const state = (await app.inject(`/v1/models/${model}/state`)).json();
    t.equal(state.state, 'running', model);
    t.match(state.info.chat_template_set_aside, said, `${model}: the state says why its template was set aside`);
    t.match(state.info.chat_template, /\w/, `${model}: a chat format was chosen without it`);
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ignore_eos: true } });
    t.equal(res.statusCode, 200, `${model}: ${res.body.slice(0, 300)}`);
    t.equal(res.json().usage.completion_tokens, 2);
  }
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'chatml', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 } });
  t.equal(res.statusCode, 200);
  const state = (await app.inject('/v1/models/chatml/state')).json();
  t.equal(state.info.chat_template_set_aside, undefined, 'a healthy template is used');
  t.equal(state.info.chat_template, 'ChatML');
});
