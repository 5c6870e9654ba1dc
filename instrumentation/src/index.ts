export { instrument, toJson, NO_POST_HOOK, VERSION } from './instrument.js';
export { mergeHooks } from './merge.js';
export { Redactor, BUILTIN_RULES, isSensitiveKey } from './redact.js';
export type { RedactionRule, RedactionCounts } from './redact.js';
export type {
  CompletePayload,
  CompletionStatus,
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
  ScoreOptions,
  ScorePayload,
  ScoreSource,
  ScoreValue,
  SDKMessageLike,
  StepKind,
  TrackedQuery,
  StartPayload,
  StepPayload,
  StepSanitizer,
  TrackContext,
  UsagePayload,
} from './types.js';
