export { instrument, toJson, NO_POST_HOOK, VERSION } from './instrument.js';
export { mergeHooks } from './merge.js';
export { Redactor, BUILTIN_RULES, isSensitiveKey } from './redact.js';
export type { RedactionRule, RedactionCounts } from './redact.js';
export type {
  CompletePayload,
  EmptyHookOutput,
  HookInputLike,
  InstrumentOptions,
  InstrumentedEvent,
  JsonValue,
  Lightning,
  LightningHookCallback,
  LightningHookMatcher,
  LightningHooks,
  LightningStats,
  Logger,
  PromptResult,
  RedactOptions,
  RetryOptions,
  StartPayload,
  StepPayload,
  StepSanitizer,
  TrackContext,
  UsagePayload,
} from './types.js';
