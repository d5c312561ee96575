import { randomUUID } from 'node:crypto';

/** A random id as the APIs spell theirs: `prefix` then `length` hex digits (a UUID's 32 at most). */
export const randomId = (prefix: string, length = 32) => `${prefix}${randomUUID().replaceAll('-', '').slice(0, length)}`;
