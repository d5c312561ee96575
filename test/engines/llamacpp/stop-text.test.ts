import t from 'tap';
import { StopText } from '../../../src/engines/llamacpp/stop-text.ts';

t.test('StopText holds back a possible stop, cuts at the earliest match and says which matched', async (t) => {
  const out: string[] = [];
  const stop = new StopText(['END', '<tool_call>', '<tool'], (text) => out.push(text));
  t.notOk(stop.push('abc <to'));
  t.same(out, ['abc '], 'a piece that may grow into a stop waits');
  t.ok(stop.push('ol_call> x END'));
  t.equal(stop.text, 'abc ');
  t.equal(stop.matchedStop, '<tool_call>', 'of two stops at one place, the longer');
  t.ok(stop.push('more'), 'nothing after a match');
  t.same(out, ['abc ']);

  const none = new StopText(['END']);
  none.push('E');
  none.flush();
  t.equal(none.text, 'E');
  t.equal(none.matchedStop, undefined);
});
