import { Type } from './typebox.ts';

export const HealthSchema = Type.Object({ status: Type.Literal('ok') });

export const StatusSchema = Type.Object({
  status: Type.Union([Type.Literal('active'), Type.Literal('sleeping')], { description: '`active` while any inference request is in flight.' }),
  dev_mode: Type.Boolean({ description: 'Maintenance: inference answers 503 maintenance while true.' }),
  models_running: Type.Array(Type.String()),
  uptime_s: Type.Number(),
});

export const StatusUpdateSchema = Type.Object(
  { dev_mode: Type.Boolean() },
  { additionalProperties: false },
);

export const ParamDescriptorSchema = Type.Object(
  {
    name: Type.String(),
    type: Type.String(),
    default: Type.Unknown(),
    min_value: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
    max_value: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
    increment: Type.Optional(Type.Number()),
    special_type: Type.Optional(Type.Union([Type.Literal('dropdown'), Type.Literal('path')])),
    options: Type.Optional(Type.Array(Type.Unknown())),
    description: Type.String(),
    scope: Type.Union([Type.Literal('load'), Type.Literal('request')]),
  },
  { $id: 'ParamDescriptor' },
);

export const EngineInfoSchema = Type.Object({
  name: Type.String(),
  object: Type.Literal('engine'),
  available: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  info: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  parameters: Type.Array(Type.Ref('ParamDescriptor')),
});

export const EngineListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(EngineInfoSchema),
});
