// The one import point for TypeBox, so the whole project stays on one TypeBox line
// (typebox 1.x with @fastify/type-provider-typebox 6).
export { default as Type } from 'typebox';
export type { Static, TSchema } from 'typebox';
