//! Domain types shared by the collector, the store and the optimizer.
//!
//! Wire names are camelCase (the seed's contract); the store maps them to snake_case columns.

pub mod evidence;
pub mod ingest;
pub mod keys;
pub mod optimization;
pub mod query;
pub mod rollout;
pub mod score;
pub mod stats;
pub mod time;

// `evidence::Score` (an interval estimate) is reached by its path: `Score` at the root is a
// trajectory's score (`score::Score`).
pub use evidence::{
    CandidateEvaluation, CandidateScores, IntervalMethod, PairedDifference, RunEvidence, Split,
    SplitSizes, Verdict,
};
pub use ingest::{
    Completion, CompletionStatus, NewStep, NewTrajectory, StepKind, Usage, ValidationError,
};
pub use keys::{ApiKeyInfo, CreateKeyRequest, CreatedKey, NewApiKey, Scope};
pub use optimization::{
    CandidateStatus, NewPrompt, OptimizationRun, Prompt, PromptCandidate, RunStatus,
    RunWithCandidates, StoredLlmReply,
};
pub use query::{
    AgentStats, AgentSummary, Cursor, Stats, StatsFilter, Status, Step, TimeBucket, TimelinePoint,
    ToolStats, Trajectory, TrajectoryFilter, TrajectoryPage, TrajectoryWithSteps,
};
pub use score::{
    DataType, LabelCount, NewScore, PromptVersionScores, Score, ScoreFilter, ScoreSource,
    ScoreStats, ScoreTimelinePoint, ScoreValue,
};
