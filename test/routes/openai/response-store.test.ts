import t from 'tap';
import { ResponseStore } from '../../../src/routes/openai/response-store.ts';
import type { ResponseObject } from '../../../src/schemas/openai/responses.ts';

const stored = (id: string) => ({ response: { id } as ResponseObject, items: [], input: [] });

t.test('keeps the most recently used: a read counts as a use', async (t) => {
  const store = new ResponseStore(2);
  store.put(stored('a'));
  store.put(stored('b'));
  t.ok(store.get('a'), 'a is read, so b is now the least recently used');
  store.put(stored('c'));
  t.equal(store.size, 2);
  t.ok(store.get('a'));
  t.notOk(store.get('b'), 'b was dropped');
  t.ok(store.get('c'));
  t.ok(store.delete('a'));
  t.notOk(store.delete('a'), 'deleted once');
});
