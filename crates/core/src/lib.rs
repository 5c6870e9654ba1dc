//! Domain types shared by the collector, the store and the optimizer.
//!
//! Wire names are camelCase (the seed's contract); the store maps them to snake_case columns.

pub mod ingest;
pub mod optimization;
pub mod query;
pub mod time;

pub use ingest::{
    Completion, CompletionStatus, NewStep, NewTrajectory, StepKind, Usage, ValidationError,
};
pub use optimization::{
    CandidateStatus, NewPrompt, OptimizationRun, Prompt, PromptCandidate, RunStatus,
    RunWithCandidates,
};
pub use query::{
    AgentStats, AgentSummary, Cursor, Stats, StatsFilter, Status, Step, TimeBucket, TimelinePoint,
    ToolStats, Trajectory, TrajectoryFilter, TrajectoryPage, TrajectoryWithSteps,
};
